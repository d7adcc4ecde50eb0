"""Consumer groups: partition sharing, rebalancing, exactly-once hand-off, durable committed offsets."""
from __future__ import annotations

import time

import orjson
import pytest

import mofka_py as mp

from _helpers import committed, pull_n, wait_until

P = 4


def _split(c1, c2, n=P):
    a, b = c1.partitions, c2.partitions
    return bool(a) and bool(b) and not set(a) & set(b) and sorted(a + b) == list(range(n))


def _produce(topic, n, **kw):
    with topic.producer(**kw) as prod:
        for i in range(n):
            prod.push({"i": i}, data=i.to_bytes(4, "little"))


def test_two_members_split_partitions(any_fab):
    t = any_fab.create_topic("split", partitions=P)
    with t.consumer("g") as c1:
        wait_until(lambda: c1.partitions == list(range(P)), what="single member owns all")
        with t.consumer("g") as c2:
            wait_until(lambda: _split(c1, c2), what="two members split the partitions")
            assert len(c1.partitions) == len(c2.partitions) == P // 2
        # c2 left: c1 gets everything back
        wait_until(lambda: c1.partitions == list(range(P)), what="partitions back to the remaining member")


def test_closing_one_member_hands_all_partitions_to_the_other(mem_fab):
    t = mem_fab.create_topic("handoff", partitions=3)
    c1 = t.consumer("g")
    c2 = t.consumer("g")
    try:
        wait_until(lambda: _split(c1, c2, 3), what="split")
        c1.close()
        wait_until(lambda: c2.partitions == [0, 1, 2], what="all partitions to c2")
    finally:
        c1.close()
        c2.close()


def _drain_pair(c1, c2, total, ack=True, timeout=60.0):
    """Pull alternately from both members until both are exhausted; returns [(member, partition, offset, i)]."""
    out = []
    deadline = time.monotonic() + timeout
    while not (c1.exhausted and c2.exhausted):
        progressed = False
        for who, c in ((1, c1), (2, c2)):
            ev = c.pull(timeout=0.05)
            if ev is not None:
                progressed = True
                out.append((who, ev.partition, ev.offset, ev.metadata["i"]))
                assert int.from_bytes(ev.data, "little") == ev.metadata["i"]
                if ack:
                    ev.ack()
        if not progressed:
            assert time.monotonic() < deadline, f"group stalled after {len(out)} of {total} events"
    return out


def test_every_event_delivered_exactly_once_across_group(any_fab):
    t = any_fab.create_topic("once", partitions=P)
    n = 2000
    with t.consumer("workers") as c1, t.consumer("workers") as c2:
        wait_until(lambda: _split(c1, c2), what="split")
        _produce(t, n)
        t.mark_complete()
        got = _drain_pair(c1, c2, n)
        parts1, parts2 = set(c1.partitions), set(c2.partitions)
    assert sorted(i for *_, i in got) == list(range(n)), "each event exactly once"
    assert len({(p, o) for _, p, o, _ in got}) == n
    # Each member only read its own partitions.
    assert {p for w, p, _, _ in got if w == 1} <= parts1
    assert {p for w, p, _, _ in got if w == 2} <= parts2
    assert {w for w, *_ in got} == {1, 2}


def test_member_leaving_mid_stream_hands_off_at_committed_position(mem_fab):
    t = mem_fab.create_topic("midstream", partitions=P)
    n = 1200
    _produce(t, n)
    t.mark_complete()
    c1 = t.consumer("g", auto_commit_ms=0)
    c2 = t.consumer("g", auto_commit_ms=0)
    got = []
    try:
        wait_until(lambda: _split(c1, c2), what="split")
        # c1 reads (and acks) part of its share, then leaves: close commits what it acked.
        for ev in pull_n(c1, 100):
            got.append(ev.metadata["i"])
            ev.ack()
        c1.close()
        wait_until(lambda: c2.partitions == list(range(P)), what="c2 owns all")
        for ev in c2:
            got.append(ev.metadata["i"])
            ev.ack()
    finally:
        c1.close()
        c2.close()
    assert sorted(got) == list(range(n))


def test_resume_after_last_acked_event(any_fab):
    t = any_fab.create_topic("resume", partitions=1)
    _produce(t, 50)
    with t.consumer("g", auto_commit_ms=0) as c:
        evs = pull_n(c, 20)
        assert [ev.offset for ev in evs] == list(range(20))
        evs[12].ack()
        evs[5].ack()  # acking an earlier event does not move the position back
    assert committed(t, "g") == [13]
    with t.consumer("g", auto_commit_ms=0) as c:
        ev = c.pull(timeout=30)
        assert ev.offset == 13 and ev.metadata == {"i": 13}
    # another group is independent
    with t.consumer("other") as c:
        assert c.pull(timeout=30).offset == 0


def test_resume_per_partition(mem_fab):
    t = mem_fab.create_topic("multi", partitions=3)
    with t.producer() as prod:
        for i in range(60):
            prod.push({"i": i}, partition=i % 3)
    acked = {0: 4, 1: 0, 2: None}  # ack up to these offsets
    with t.consumer("g", auto_commit_ms=0) as c:
        evs = pull_n(c, 60)
        for ev in evs:
            lim = acked[ev.partition]
            if lim is not None and ev.offset <= lim:
                ev.ack()
    assert committed(t, "g") == [5, 1, 0]
    with t.consumer("g") as c:
        evs = pull_n(c, 54 + 0)
        firsts = {}
        for ev in evs:
            firsts.setdefault(ev.partition, ev.offset)
        assert firsts == {0: 5, 1: 1, 2: 0}
        assert c.pull(timeout=0.2) is None


def test_committed_offsets_survive_fabric_reopen(fab_dir):
    url = f"file://{fab_dir}"
    with mp.connect(url) as fab:
        t = fab.create_topic("durable", partitions=2)
        with t.producer() as prod:
            for i in range(40):
                prod.push({"i": i}, partition=i % 2)
        with t.consumer("g", auto_commit_ms=0) as c:
            for ev in pull_n(c, 40):
                if ev.offset < (7 if ev.partition == 0 else 3):
                    ev.ack()
            c.commit()
            assert committed(t, "g") == [7, 3]
        # A later, smaller commit from another run of the group wins (last write).
        with t.consumer("h", auto_commit_ms=0) as c:
            for ev in pull_n(c, 40):
                if ev.partition == 0 and ev.offset <= 10:
                    ev.ack()
    with mp.connect(url) as fab:
        t = fab.topic("durable")
        assert committed(t, "g") == [7, 3]
        assert committed(t, "h")[0] == 11
        assert t.groups() == ["g", "h"]
        with t.consumer("g") as c:
            evs = pull_n(c, 20 - 7 + 20 - 3)
            assert c.pull(timeout=0.2) is None
        firsts = {}
        for ev in evs:
            firsts.setdefault(ev.partition, ev.offset)
            assert orjson.loads(ev.metadata_bytes)["i"] == ev.offset * 2 + ev.partition
        assert firsts == {0: 7, 1: 3}


def test_auto_commit_stores_acked_positions(mem_fab):
    t = mem_fab.create_topic("auto", partitions=1)
    _produce(t, 10)
    with t.consumer("g", auto_commit_ms=50) as c:
        for ev in pull_n(c, 10):
            ev.ack()
        wait_until(lambda: committed(t, "g") == [10], what="auto commit")


def test_commit_without_group_is_invalid(mem_fab):
    t = mem_fab.create_topic("nogroup", partitions=1)
    with t.consumer() as c:
        with pytest.raises(mp.InvalidArgument):
            c.commit()
    assert t.groups() == []


def test_group_and_explicit_partitions_conflict(mem_fab):
    t = mem_fab.create_topic("conflict", partitions=2)
    with pytest.raises(mp.InvalidArgument):
        t.consumer("g", partitions=[0])
    assert t.groups() == []
