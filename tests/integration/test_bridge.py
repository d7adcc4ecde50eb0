"""Bridge against a real Kafka-protocol broker (tansu): upward with filter/transform, downward steering,
a three-level chain, bad configs and the status command. Every check: each event exactly once, payload intact."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from collections import Counter

import orjson
import pytest

import mofka_py as mp
from mofka_py.bridge import Bridge, ConfigError, parse_origin
from waiting import wait_until

from kafka_helpers import crc, payload, run_bridge_process, stop_process, tansu  # noqa: F401 - fixture
from service_helpers import Service, free_port


def produce_frames(topic: mp.Topic, start: int, n: int, size: int = 256) -> None:
    with topic.producer(linger_ms=1) as prod:
        for i in range(start, start + n):
            data = payload(i, size)
            prod.push({"i": i, "kind": "calib" if i % 5 == 0 else "frame", "crc": crc(data)}, data=data)


def check_kafka_exactly_once(recs, expected_ids, site: str = None):
    seen = Counter()
    for r in recs:
        meta = orjson.loads(r["value"])
        data = r["headers"].get("mofka.data", b"")
        assert crc(data) == meta["crc"], f"payload of event {meta['i']} corrupted"
        assert parse_origin(r["headers"]["mofka.origin"]) is not None
        if site:
            assert meta["site"] == site
        seen[meta["i"]] += 1
    dups = {i: c for i, c in seen.items() if c > 1}
    assert not dups, f"duplicates: {list(dups.items())[:10]}"
    missing = set(expected_ids) - set(seen)
    assert not missing, f"{len(missing)} missing, e.g. {sorted(missing)[:10]}"
    assert set(seen) == set(expected_ids)


def test_upward_filter_and_transform(tansu, tmp_path, monkeypatch):  # noqa: F811
    (tmp_path / "bridge_xform.py").write_text(textwrap.dedent("""
        def enrich(meta, data):
            if meta["i"] % 7 == 0:
                return None                       # a transform may drop events too
            meta["energy_keV"] = meta["i"] * 2
            return meta, data
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    n = 3000
    with mp.connect("memory://") as fab:
        frames = fab.create_topic("frames", partitions=3)
        produce_frames(frames, 0, n)
        cfg = {"bridge": {"site": "beamline-7", "state_dir": str(tmp_path / "state")},
               "endpoints": {"site": {"url": "memory://"}, "cloud": {"url": tansu.url}},
               "rules": [{"name": "up", "from": "site/frames", "to": "cloud/frames-up", "filter": "kind == 'frame'",
                          "transform": "bridge_xform:enrich", "partitions": 2}]}
        with Bridge(cfg, fabrics={"site": fab}) as bridge:
            assert bridge.wait_idle(60), bridge.status()
            st = bridge.status()["routes"][0]
        expected = [i for i in range(n) if i % 5 != 0 and i % 7 != 0]
        assert st["forwarded"] == len(expected)
        assert st["filtered"] == n - len(expected)
        recs = tansu.wait_count("frames-up", len(expected))
        check_kafka_exactly_once(recs, expected, site="beamline-7")
        for r in recs:
            meta = orjson.loads(r["value"])
            assert meta["energy_keV"] == meta["i"] * 2
            site, topic, part, off = parse_origin(r["headers"]["mofka.origin"])
            assert (site, topic) == ("beamline-7", "frames")
            # The origin leads back to the source event.
            with frames.consumer(partitions=[part], start=off, data=False) as c:
                assert c.pull(timeout=5).metadata["i"] == meta["i"]
            break
        # One source partition -> one target partition, in source order.
        by_origin = {}
        for r in recs:
            _, _, part, off = parse_origin(r["headers"]["mofka.origin"])
            by_origin.setdefault(part, set()).add(r["partition"])
        assert all(len(v) == 1 for v in by_origin.values())


@pytest.mark.parametrize("queue", ["roomy", "full"])
def test_metadata_only_and_mixed_data_events(tansu, tmp_path, queue):  # noqa: F811
    """Batches without data (the fast path: no data views at all) and batches mixing empty and non-empty data:
    ``mofka.data`` exactly when an event has data, one origin header on every record, each event once; also
    when the producer's queue keeps filling up mid-round (``full``: the retry path after ``BufferError``)."""
    n = 2000
    with mp.connect("memory://") as fab:
        t = fab.create_topic("mixed", partitions=2)
        with t.producer(linger_ms=1) as prod:
            prod.push_many([{"i": i, "crc": crc(b"")} for i in range(n // 2)])     # metadata-only batches
            for i in range(n // 2, n):
                data = payload(i, 64) if i % 3 else b""
                prod.push({"i": i, "crc": crc(data)}, data=data)
        with t.consumer(group="check") as c:                    # the batch views the bridge reads
            b = c.pull_batch(100, 5)
            assert b.data_size() == sum(b[i].data_size for i in range(len(b)))
            assert [bytes(v) for v in b.data_views()] == [bytes(b[i].data) for i in range(len(b))]
        cfg = {"bridge": {"site": "s", "state_dir": str(tmp_path / "state")},
               "endpoints": {"site": {"url": "memory://"}, "cloud": {"url": tansu.url}},
               "rules": [{"name": "up", "from": "site/mixed", "to": f"cloud/mixed-{queue}", "batch_size": 300}]}
        if queue == "full":
            cfg["endpoints"]["cloud"]["librdkafka"] = {"queue.buffering.max.messages": 50}
        with Bridge(cfg, fabrics={"site": fab}) as bridge:
            assert bridge.wait_idle(60), bridge.status()
    recs = tansu.wait_count(f"mixed-{queue}", n)
    check_kafka_exactly_once(recs, range(n), site="s")
    for r in recs:
        i = orjson.loads(r["value"])["i"]
        assert ("mofka.data" in r["headers"]) == (i >= n // 2 and i % 3 != 0)


def test_downward_steering_commands(tansu, tmp_path):  # noqa: F811
    tansu.create_topic("steer", partitions=2)
    cmds = [orjson.dumps({"cmd": "set_exposure", "seq": k, "value_ms": 10 + k}) for k in range(200)]
    tansu.produce("steer", cmds[:100])
    with mp.connect("memory://") as fab:
        cfg = {"bridge": {"site": "beamline-7", "state_dir": str(tmp_path / "state")},
               "endpoints": {"site": {"url": "memory://"}, "cloud": {"url": tansu.url}},
               "rules": [{"name": "down", "from": "cloud/steer", "to": "site/commands", "data": "metadata"}]}
        with Bridge(cfg, fabrics={"site": fab}) as bridge:
            tansu.produce("steer", cmds[100:])
            wait_until(lambda: bridge.status()["routes"][0]["forwarded"] >= 200, 60, "200 commands forwarded")
            assert bridge.wait_idle(60), bridge.status()
        # Restarting the bridge forwards nothing twice (offsets committed in the Kafka group).
        with Bridge(cfg, fabrics={"site": fab}) as bridge:
            assert bridge.wait_idle(60), bridge.status()
            assert bridge.status()["routes"][0]["forwarded"] == 0
        topic = fab.topic("commands")
        topic.mark_complete()
        got = [ev.metadata for ev in topic.consumer()]
    assert sorted(m["seq"] for m in got) == list(range(200))
    assert all(m["value_ms"] == 10 + m["seq"] and m["site"] == "beamline-7" for m in got)
    assert all(parse_origin(m["mofka_origin"])[1] == "steer" for m in got)


def test_three_level_chain(tansu, tmp_path):  # noqa: F811
    """embedded (in the job) -> site service (tcp://) -> cloud Kafka, every event once with its payload."""
    service = Service(None, free_port(), sync="none").start()
    try:
        cfg2 = tmp_path / "site.toml"
        cfg2.write_text(textwrap.dedent(f"""
            [bridge]
            site = "site-a"

            [endpoints.service]
            url = "{service.url}"

            [endpoints.cloud]
            url = "{tansu.url}"

            [[rules]]
            name = "to-cloud"
            from = "service/frames"
            to = "cloud/chain"
            batch_size = 500
        """))
        n = 2000
        with mp.connect("memory://") as job, mp.connect(service.url) as svc:
            svc.create_topic("frames", partitions=2)
            proc = run_bridge_process(cfg2)
            try:
                frames = job.create_topic("frames", partitions=4)
                cfg1 = {"bridge": {"site": "node-0", "state_dir": str(tmp_path / "node-state")},
                        "endpoints": {"job": {}, "service": {"url": service.url}},
                        "rules": [{"name": "to-site", "from": "job/frames", "to": "service/frames"}]}
                with Bridge(cfg1, fabrics={"job": job}) as b1:
                    produce_frames(frames, 0, n // 2)
                    produce_frames(frames, n // 2, n // 2)
                    assert b1.wait_idle(60), b1.status()
                recs = tansu.wait_count("chain", n)
                out = subprocess.run([sys.executable, "-m", "mofka_py.cli", "bridge", "status", str(cfg2)],
                                     capture_output=True, text=True, timeout=60)
                assert out.returncode == 0, out.stderr
                assert "to-cloud" in out.stdout and "service/frames -> cloud/chain" in out.stdout
            finally:
                assert stop_process(proc) == 0
        check_kafka_exactly_once(recs, range(n), site="node-0")
        for r in recs[:50]:
            meta = orjson.loads(r["value"])
            assert parse_origin(meta["mofka_origin"])[:2] == ("node-0", "frames")     # the first hop
            assert parse_origin(r["headers"]["mofka.origin"])[:2] == ("site-a", "frames")  # the last hop
    finally:
        service.stop()


@pytest.mark.parametrize("case", ["endpoint", "filter", "unreachable", "transform"])
def test_bad_config_names_the_line(tansu, tmp_path, case):  # noqa: F811
    port = free_port()
    rule = {"endpoint": 'from = "site/frames"\nto = "clod/frames"',
            "filter": 'from = "site/frames"\nto = "cloud/frames"\nfilter = "kind = \'frame\'"',
            "unreachable": 'from = "site/frames"\nto = "nowhere/frames"',
            "transform": 'from = "site/frames"\nto = "cloud/frames"\ntransform = "no_such_module:fn"'}[case]
    text = textwrap.dedent(f"""
        [bridge]
        site = "s"
        connect_timeout = 2

        [endpoints.site]
        url = "file://{tmp_path}/fab"

        [endpoints.cloud]
        url = "{tansu.url}"

        [endpoints.nowhere]
        url = "kafka://127.0.0.1:{port}"

        [[rules]]
        name = "r"
    """) + rule + "\n"
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    lines = text.splitlines()
    want = {"endpoint": "to = ", "filter": "filter = ", "unreachable": 'url = "kafka://127.0.0.1:' + str(port),
            "transform": "transform = "}[case]
    line = next(k for k, s in enumerate(lines, 1) if s.startswith(want))
    with mp.connect(f"file://{tmp_path}/fab") as fab:
        fab.create_topic("frames")
    with pytest.raises(ConfigError, match=f"bad.toml:{line}:"):
        Bridge(str(cfg))
    out = subprocess.run([sys.executable, "-m", "mofka_py.cli", "bridge", str(cfg)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 1 and f"bad.toml:{line}:" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert tansu.read_all("frames") == []
