"""The committed-offsets log is compacted on open once it holds many stale records."""
import os

import numpy as np

import mofka_py as mp

from _helpers import committed


def _offsets_bytes(path):
    d = os.path.join(path, "__offsets")
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))


def test_offsets_log_compacts_and_keeps_latest_positions(tmp_path):
    url = f"file://{tmp_path}"
    n = 100_500
    with mp.connect(url) as fab:
        topic = fab.create_topic("t", partitions=1)
        with topic.producer() as prod:
            prod.push_many(np.zeros((n, 8), dtype=np.uint8))
        cons = topic.consumer("g", auto_commit_ms=0)
        for off in range(n):
            ev = cons.pull(timeout=30)
            assert ev.offset == off
            ev.ack()
            cons.commit()
        cons.close()
        before = _offsets_bytes(str(tmp_path))
        assert committed(topic, "g") == [n]
    with mp.connect(url) as fab:  # reopening compacts
        assert committed(fab.topic("t"), "g") == [n]
        after = _offsets_bytes(str(tmp_path))
        assert after < before / 100
        topic = fab.topic("t")
        with topic.producer() as prod:
            prod.push({"last": True})
        with topic.consumer("g") as cons:
            ev = cons.pull(timeout=5)
            assert ev is not None and ev.offset == n and ev.metadata == {"last": True}
            ev.ack()
    with mp.connect(url) as fab:  # the compacted log keeps taking commits
        assert committed(fab.topic("t"), "g") == [n + 1]
        assert not os.path.exists(os.path.join(str(tmp_path), "__offsets.new"))
