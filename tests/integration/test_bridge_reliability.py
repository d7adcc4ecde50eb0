"""Bridge reliability: kill -9 at random points and a broker outage (SIGSTOP/SIGCONT) leave every source
event exactly once, with intact payload, in the target."""
from __future__ import annotations

import os
import random
import signal
import textwrap
import time

import mofka_py as mp
from kafka_helpers import run_bridge_process, stop_process, tansu  # noqa: F401 - fixture
from mofka_py.bridge import Bridge
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
        batch_events = 150
    """))
    total, per_round = 0, 1500
    for rnd in range(4):
        with mp.connect(src) as fab:     # the source can be appended to while the bridge is down
            produce_frames(fab.topic("frames"), total, per_round, size=512)
        total += per_round
        proc = run_bridge_process(cfg)
        time.sleep(rng.uniform(0.05, 1.5))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    proc = run_bridge_process(cfg)
    try:
        recs = tansu.wait_count("killed", total, timeout=90)
        time.sleep(1.0)   # anything beyond `total` would be a duplicate; give it a moment to show up
        recs = tansu.read_all("killed")
    finally:
        assert stop_process(proc) == 0
    print(f"seed {seed}: {len(recs)} records")
    check_kafka_exactly_once(recs, range(total), site="site-k")


def test_broker_outage_keeps_source_and_catches_up(tansu, tmp_path):  # noqa: F811
    with mp.connect("memory://") as fab:
        frames = fab.create_topic("frames", partitions=2)
        cfg = {"bridge": {"site": "site-o", "state_dir": str(tmp_path / "state")},
               "endpoints": {"site": {}, "cloud": {"url": tansu.url}},
               "rules": [{"name": "up", "from": "site/frames", "to": "cloud/outage", "batch_events": 300}]}
        with Bridge(cfg, fabrics={"site": fab}) as bridge:
            produce_frames(frames, 0, 1000)
            assert bridge.wait_idle(60), bridge.status()
            tansu.pause()
            try:
                produce_frames(frames, 1000, 2000)
                deadline = time.monotonic() + 15
                saw_waiting = False
                while time.monotonic() < deadline:
                    st = bridge.status()["routes"][0]
                    saw_waiting = saw_waiting or st["state"].startswith("waiting")
                    time.sleep(0.25)
                st = bridge.status()["routes"][0]
                assert saw_waiting, st
                assert st["lag"] and st["lag"] > 0, st          # the source still holds what is not in Kafka
                committed = sum(p["committed"] or 0 for p in frames.describe_group("mofka-bridge.site-o.up")["partitions"])
                assert committed < 3000
            finally:
                tansu.resume()
            deadline = time.monotonic() + 90
            while bridge.status()["routes"][0]["committed_events"] < 3000:
                assert time.monotonic() < deadline, bridge.status()
                time.sleep(0.2)
            assert bridge.wait_idle(60), bridge.status()
        recs = tansu.wait_count("outage", 3000)
        check_kafka_exactly_once(recs, range(3000), site="site-o")
