"""Bridge reliability: kill -9 at random points and a broker outage (SIGSTOP/SIGCONT) leave every source
event exactly once, with intact payload, in the target."""
from __future__ import annotations

import os
import random
import signal
import textwrap
import time

import mofka_py as mp
from mofka_py.bridge import Bridge, load_config, read_status
from waiting import wait_until

from kafka_helpers import run_bridge_process, stop_process, tansu  # noqa: F401 - fixture
from test_bridge import check_kafka_exactly_once, produce_frames


def test_kill9_at_random_points_then_exactly_once(tansu, tmp_path):  # noqa: F811
    seed = int(os.environ.get("BRIDGE_KILL_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    src = f"file://{tmp_path}/site"
    with mp.connect(src) as fab:
        fab.create_topic("frames", partitions=3)
    cfg = tmp_path / "bridge.toml"
    cfg.write_text(textwrap.dedent(f"""
        [bridge]
        site = "site-k"

        [endpoints.site]
        url = "{src}"

        [endpoints.cloud]
        url = "{tansu.url}"

        [[rules]]
        name = "up"
        from = "site/frames"
        to = "cloud/killed"
        partitions = 2
        batch_size = 150
    """))
    total, per_round = 0, 1500
    for _rnd in range(4):
        with mp.connect(src) as fab:     # the source can be appended to while the bridge is down
            produce_frames(fab.topic("frames"), total, per_round, size=512)
        total += per_round
        proc = run_bridge_process(cfg)
        time.sleep(rng.uniform(0.05, 1.5))     # a random moment to kill it: the moment is what is tested
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    proc = run_bridge_process(cfg)
    try:
        def drained() -> bool:
            st = read_status(load_config(str(cfg)))
            assert proc.poll() is None, f"bridge exited with {proc.returncode}"
            return bool(st and st["pid"] == proc.pid and st["routes"] and st["routes"][0]["lag"] == 0)

        # Lag 0: every source event committed, which the bridge does only after Kafka acknowledged it.
        wait_until(drained, 90, "the bridge to commit every source event")
    finally:
        assert stop_process(proc) == 0
    # The bridge is gone: every record it will ever write, duplicates included, is in Kafka now.
    recs = tansu.read_all("killed")
    print(f"seed {seed}: {len(recs)} records")
    check_kafka_exactly_once(recs, range(total), site="site-k")


def test_broker_outage_keeps_source_and_catches_up(tansu, tmp_path):  # noqa: F811
    with mp.connect("memory://") as fab:
        frames = fab.create_topic("frames", partitions=2)
        cfg = {"bridge": {"site": "site-o", "state_dir": str(tmp_path / "state")},
               "endpoints": {"site": {}, "cloud": {"url": tansu.url}},
               "rules": [{"name": "up", "from": "site/frames", "to": "cloud/outage", "batch_size": 300}]}
        with Bridge(cfg, fabrics={"site": fab}) as bridge:
            produce_frames(frames, 0, 1000)
            assert bridge.wait_idle(60), bridge.status()
            tansu.pause()
            try:
                produce_frames(frames, 1000, 2000)

                def stalled():
                    st = bridge.status()["routes"][0]
                    # Waiting for the broker, and the source still holds what is not in Kafka.
                    return st if st["state"].startswith("waiting") and st["lag"] else None

                wait_until(stalled, 60, "the route waiting for the paused broker, with a lag")
                group = frames.describe_group("mofka-bridge.site-o.up")
                assert sum(p["committed"] or 0 for p in group["partitions"]) < 3000
            finally:
                tansu.resume()
            wait_until(lambda: bridge.status()["routes"][0]["committed_events"] >= 3000, 90,
                       "every event committed after the broker came back")
            assert bridge.wait_idle(60), bridge.status()
        recs = tansu.wait_count("outage", 3000)
        check_kafka_exactly_once(recs, range(3000), site="site-o")
