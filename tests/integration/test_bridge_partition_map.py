"""Where a source partition lands in the target: the v2 mapping uses every target partition (cloud consumers
keep their parallelism), v1 stays as it was for existing deployments, and a rule switching from v1 to v2 right
after a crash (target acknowledged, source commit lost) still forwards every event exactly once."""
from __future__ import annotations

import textwrap
import zlib
from collections import Counter, defaultdict

import orjson
import pytest

import mofka_py as mp
from mofka_py.bridge import Bridge, ConfigError, load_config, parse_origin, target_partition

from kafka_helpers import tansu  # noqa: F401 - fixture
from test_bridge import check_kafka_exactly_once, produce_frames

SITES = ["beamline-7", "site-a", "site-b", "alcf", "nersc", "aps", "s", "olcf.frontier"]
SIZES = [(2, 2), (3, 2), (4, 4), (8, 4), (5, 3), (16, 16), (7, 2)]   # (source partitions, target partitions)


@pytest.mark.parametrize("sources,targets", SIZES)
def test_v2_uses_every_target_partition_evenly(sources, targets):
    for site in SITES:
        for topic in ("frames", "events"):
            got = Counter(target_partition(f"{site}/{topic}/{p}", targets) for p in range(sources))
            assert set(got) == set(range(targets)), (site, topic, dict(got))
            assert max(got.values()) - min(got.values()) <= 1, (site, topic, dict(got))


def test_v2_fewer_sources_than_targets_never_share():
    for site in SITES:
        for sources, targets in ((2, 4), (3, 8), (1, 5)):
            got = [target_partition(f"{site}/frames/{p}", targets) for p in range(sources)]
            assert len(set(got)) == sources, (site, got)


def test_mappings_are_pinned():
    """Both mappings decide where existing data is and where a restarted bridge looks for it: they must not
    change from one release to the next."""
    for site in SITES:
        for p in range(8):
            prefix = f"{site}/frames/{p}"
            assert target_partition(prefix, 4, "v1") == zlib.crc32(prefix.encode()) % 4
    assert [target_partition(f"aps/frames/{p}", 4) for p in range(6)] == [2, 3, 0, 1, 2, 3]
    assert [target_partition(f"site-b/frames/{p}", 4) for p in range(4)] == [3, 0, 1, 2]
    assert target_partition("beamline-7/frames/0", 7) == target_partition("beamline-7/frames/0", 7, "v2")
    # v1 is what v2 replaces: it piles source partitions together for every one of these sites.
    for site in SITES:
        assert len({target_partition(f"{site}/frames/{p}", 4, "v1") for p in range(4)}) < 4


def test_partition_map_setting(tmp_path):
    text = textwrap.dedent("""
        [bridge]
        site = "s"
        partition_map = "v1"

        [endpoints.a]
        url = "memory://"

        [endpoints.b]
        url = "memory://"

        [[rules]]
        name = "old"
        from = "a/x"
        to = "b/x"

        [[rules]]
        name = "new"
        from = "a/y"
        to = "b/y"
        partition_map = "v2"
    """)
    cfg = tmp_path / "b.toml"
    cfg.write_text(text)
    rules = {r.name: r.partition_map for r in load_config(str(cfg)).rules}
    assert rules == {"old": "v1", "new": "v2"}
    assert [r.partition_map for r in load_config({"bridge": {"site": "s"}, "endpoints": {"a": {"url": "memory://"}},
                                                  "rules": [{"from": "a/x", "to": "a/y"}]}).rules] == ["v2"]
    cfg.write_text(text.replace('partition_map = "v2"', 'partition_map = "v3"'))
    line = text.splitlines().index('partition_map = "v2"') + 1
    with pytest.raises(ConfigError, match=f"b.toml:{line}: rule 'new': partition_map must be one of 'v1', 'v2'"):
        load_config(str(cfg))


def test_bridge_spreads_source_partitions_over_kafka(tansu, tmp_path):  # noqa: F811
    """Through a real bridge: 4 source partitions into 4 Kafka partitions and 3 into 2 fill every Kafka
    partition, each source partition stays whole and in order in the one partition the mapping names."""
    n = 1200
    with mp.connect("memory://") as fab:
        produce_frames(fab.create_topic("four", partitions=4), 0, n, size=32)
        produce_frames(fab.create_topic("three", partitions=3), 0, n, size=32)
        cfg = {"bridge": {"site": "beamline-7", "state_dir": str(tmp_path / "state")},
               "endpoints": {"site": {}, "cloud": {"url": tansu.url}},
               "rules": [{"name": "four", "from": "site/four", "to": "cloud/spread-4"},
                         {"name": "three", "from": "site/three", "to": "cloud/spread-2", "partitions": 2}]}
        with Bridge(cfg, fabrics={"site": fab}) as bridge:
            assert bridge.wait_idle(60), bridge.status()
    for topic, sources, targets in (("spread-4", 4, 4), ("spread-2", 3, 2)):
        recs = tansu.wait_count(topic, n)
        check_kafka_exactly_once(recs, range(n), site="beamline-7")
        placed = defaultdict(set)
        order = defaultdict(list)
        for r in recs:
            _, src_topic, p, off = parse_origin(r["headers"]["mofka.origin"])
            placed[p].add(r["partition"])
            order[p].append((r["offset"], off))
        assert {r["partition"] for r in recs} == set(range(targets)), topic
        for p in range(sources):
            assert placed[p] == {target_partition(f"beamline-7/{src_topic}/{p}", targets)}, (topic, p, placed[p])
            offs = [off for _, off in sorted(order[p])]
            assert offs == sorted(offs), f"{topic}: source partition {p} out of order"


def _fabric_target_records(fab: mp.Fabric, topic: str) -> list:
    t = fab.topic(topic)
    out = []
    with t.consumer(start="earliest", data=True) as cons:
        ends = {p["partition"]: p["end_offset"] for p in t.describe()["partitions"]}
        while len(out) < sum(ends.values()):
            ev = cons.pull(timeout=10)
            assert ev is not None, f"read {len(out)} of {sum(ends.values())} events of {topic}"
            out.append({"partition": ev.partition, "offset": ev.offset, "meta": ev.metadata,
                        "data": bytes(ev.data)})
    return out


@pytest.mark.parametrize("target", ["kafka", "fabric"])
def test_switch_v1_to_v2_after_a_lost_commit_sends_nothing_twice(tansu, tmp_path, target):  # noqa: F811
    """The crash window of a switch: a v1 bridge's last rounds reached the target but their source commit was
    lost (simulated by resetting the source group to the start), then the rule restarts under v2. The restarted
    bridge must find those events in the v1 partitions and forward only what is new."""
    first, more = 900, 600
    dst = f"switch-{target}"
    with mp.connect("memory://") as fab, mp.connect("memory://") as cloud_fab:
        frames = fab.create_topic("frames", partitions=4)
        produce_frames(frames, 0, first, size=64)
        cloud = {"url": tansu.url} if target == "kafka" else {}
        fabrics = {"site": fab} if target == "kafka" else {"site": fab, "cloud": cloud_fab}

        def config(mapping):
            return {"bridge": {"site": "site-m", "state_dir": str(tmp_path / "state")},
                    "endpoints": {"site": {}, "cloud": cloud},
                    "rules": [{"name": "up", "from": "site/frames", "to": f"cloud/{dst}", "partitions": 4,
                               "partition_map": mapping}]}

        with Bridge(config("v1"), fabrics=fabrics) as bridge:
            assert bridge.wait_idle(60), bridge.status()
        frames.reset_group("mofka-bridge.site-m.up", "earliest")       # the lost commit
        produce_frames(frames, first, more, size=64)
        with Bridge(config("v2"), fabrics=fabrics) as bridge:
            assert bridge.wait_idle(60), bridge.status()
            st = bridge.status()["routes"][0]
        assert (st["duplicates"], st["forwarded"]) == (first, more), st
        if target == "kafka":
            recs = tansu.wait_count(dst, first + more)
            check_kafka_exactly_once(recs, range(first + more), site="site-m")
            rows = [(r["partition"], orjson.loads(r["value"])["i"], r["headers"]["mofka.origin"]) for r in recs]
        else:
            recs = _fabric_target_records(cloud_fab, dst)
            seen = Counter(r["meta"]["i"] for r in recs)
            assert seen == Counter(range(first + more)), "each event exactly once"
            rows = [(r["partition"], r["meta"]["i"], r["meta"]["mofka_origin"]) for r in recs]
    for q, i, origin in rows:
        site, topic, p, _ = parse_origin(origin)
        mapping = "v1" if i < first else "v2"
        assert q == target_partition(f"{site}/{topic}/{p}", 4, mapping), (i, q, mapping)
