"""A failed fdatasync on a file:// fabric (issue 15): the batch fails with StorageError and
nothing of it is stored, the partition refuses writes until the fabric is reopened, events
acknowledged before stay readable, and reopening loses none of them.

The sync failure comes from the core's internal test hook: MOFKA_PY_TEST_FAIL_SYNC names a
file, and the first sync that finds it removes it and fails with EIO. The variable is read
once per process, so the scenario runs in a child process of its own.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCENARIO = textwrap.dedent('''
    import os, sys
    import mofka_py as mp

    url, trigger = sys.argv[1], sys.argv[2]

    def metadata(topic):
        with topic.consumer(start="earliest") as cons:
            got = []
            while (ev := cons.pull(timeout=0.5)) is not None:
                got.append((ev.offset, ev.metadata["i"], bytes(ev.data)))
            return got

    with mp.connect(url, sync="batch") as fab:
        topic = fab.create_topic("frames", partitions=1)
        with topic.producer(linger_ms=0) as prod:
            ids = [prod.push({"i": i}, data=b"ok%d" % i) for i in range(2)]
            prod.flush()
            assert [f.result().offset for f in ids] == [0, 1]

            open(trigger, "w").close()  # the next sync in this process fails with EIO
            lost = prod.push({"i": 2}, data=b"lost")
            try:
                prod.flush()
                raise AssertionError("flush after a failed sync did not raise")
            except mp.StorageError as e:
                msg = str(e)
            assert not os.path.exists(trigger), "the hook did not fire"
            assert "cannot sync" in msg and "Input/output error" in msg, msg
            assert "takes no more writes until it is reopened" in msg, msg
            try:
                lost.result(timeout=5)
                raise AssertionError("the failed event was acknowledged")
            except mp.StorageError:
                pass
        # Nothing of the failed batch is readable; the events acknowledged before are.
        assert metadata(topic) == [(0, 0, b"ok0"), (1, 1, b"ok1")], metadata(topic)

        # Any producer is refused now, with what happened and what to do.
        with topic.producer(linger_ms=0) as again:
            refused = again.push({"i": 3})
            try:
                again.flush()
                raise AssertionError("produce to an unwritable partition did not raise")
            except mp.StorageError as e:
                msg = str(e)
            assert "is unwritable since a failed sync" in msg, msg
            assert "restart the service or reopen the fabric" in msg, msg
            try:
                refused.result(timeout=5)
                raise AssertionError("an event was acknowledged by an unwritable partition")
            except mp.StorageError:
                pass
        assert metadata(topic) == [(0, 0, b"ok0"), (1, 1, b"ok1")]

    # Reopened (a service restart): writable again, no acknowledged event lost.
    with mp.connect(url, sync="batch") as fab:
        topic = fab.topic("frames")
        with topic.producer(linger_ms=0) as prod:
            assert prod.push({"i": 4}, data=b"ok4").result(timeout=10).offset == 2
        assert metadata(topic) == [(0, 0, b"ok0"), (1, 1, b"ok1"), (2, 4, b"ok4")], metadata(topic)
    print("scenario ok")
''')


def test_failed_sync_fails_the_batch_and_the_partition_until_reopened(tmp_path):
    trigger = tmp_path / "fail-next-sync"
    env = dict(os.environ, MOFKA_PY_TEST_FAIL_SYNC=str(trigger))
    r = subprocess.run([sys.executable, "-c", SCENARIO, f"file://{tmp_path / 'fab'}", str(trigger)],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "scenario ok" in r.stdout, r.stdout + r.stderr
