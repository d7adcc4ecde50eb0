"""Consumer groups with Kafka's semantics on embedded fabrics (memory://, file://): `start` only
for partitions the group never committed, hand-offs without duplicates, explicit resets,
describe with lag, gaps left by retention, fair interleaving of partitions."""
from __future__ import annotations

import datetime as dt
import time

import pytest

import mofka_py as mp

from _group_scenarios import P, fill, scenario_churn, scenario_late_joiner, scenario_restart_resumes_after_commit
from _helpers import committed, pull_n, wait_until


@pytest.mark.parametrize("start", ["earliest", None])
def test_late_joiner_delivers_every_event_once(any_fab, start):
    got = scenario_late_joiner(any_fab, start)
    assert set(got) == {"A", "B"}, "both members took part"


@pytest.mark.parametrize("start", ["earliest", None])
def test_members_joining_leaving_and_restarting_mid_stream(any_fab, start):
    scenario_churn(any_fab, start)


def test_restarted_member_with_start_earliest_resumes_after_the_commit(any_fab):
    scenario_restart_resumes_after_commit(any_fab)


def test_restart_after_reopening_a_file_fabric_resumes_after_the_commit(fab_dir):
    with mp.connect(f"file://{fab_dir}") as fab:
        t = fab.create_topic("t", partitions=2)
        fill(t, 400)
        with t.consumer("g", start="earliest") as c:
            for ev in pull_n(c, 100):
                ev.ack()
    with mp.connect(f"file://{fab_dir}") as fab:
        t = fab.topic("t")
        t.mark_complete()
        with t.consumer("g", start="earliest") as c:
            rest = [ev.metadata["i"] for ev in c]
        assert len(rest) == 300 and len(set(rest)) == 300


def test_start_applies_only_where_the_group_never_committed(mem_fab):
    t = mem_fab.create_topic("t", partitions=2)
    fill(t, 100)  # round robin: 50 per partition
    t.reset_group("g", to={0: 20})  # the group committed partition 0 only
    with t.consumer("g", start="latest") as c:
        evs = pull_n(c, 30)
        # Partition 0 resumes at the commit; partition 1 (never committed) starts at its end.
        assert sorted((ev.partition, ev.offset) for ev in evs) == [(0, k) for k in range(20, 50)]
        assert c.pull(timeout=0.3) is None


def test_reset_group_to_earliest_offset_dict_and_time(any_fab):
    t = any_fab.create_topic("r", partitions=2)
    fill(t, 40)
    t.mark_complete()
    with t.consumer("g") as c:
        for ev in c:
            ev.ack()
    assert t.describe_group("g")["lag"] == 0
    assert t.reset_group("g", to="earliest") == {0: 0, 1: 0}
    with t.consumer("g") as c:
        again = [ev.metadata["i"] for ev in c]
    assert sorted(again) == list(range(40))
    assert t.reset_group("g", to=15) == {0: 15, 1: 15}
    assert t.describe_group("g")["lag"] == 10
    t.reset_group("g", to={1: 19})
    assert [p["committed"] for p in t.describe_group("g")["partitions"]] == [15, 19]
    assert t.reset_group("g", to="latest") == {0: 20, 1: 20}
    # By time: everything was stored before `now`; nothing at or after a time in the future.
    assert t.reset_group("g", to=dt.datetime.now() + dt.timedelta(hours=1)) == {0: 20, 1: 20}
    assert t.reset_group("g", to=dt.datetime(2000, 1, 1)) == {0: 0, 1: 0}


def test_reset_group_by_time_finds_the_first_later_batch(mem_fab):
    t = mem_fab.create_topic("times", partitions=1)
    fill(t, 50)
    # The gaps are what is tested: batches stored before and after `middle` have distinct timestamps.
    time.sleep(0.05)
    middle = dt.datetime.now()
    time.sleep(0.05)
    fill(t, 50, first=50)
    assert t.reset_group("g", to=middle) == {0: 50}


def test_reset_group_is_refused_while_members_are_live(any_fab):
    t = any_fab.create_topic("busy", partitions=2)
    fill(t, 10)
    with t.consumer("g", member_id="worker-7"):
        with pytest.raises(mp.GroupActive, match="worker-7"):
            t.reset_group("g", to="earliest")
        # Refused means nothing was written.
        assert all(p["committed"] in (None, 0) for p in t.describe_group("g")["partitions"])
    t.reset_group("g", to="latest")
    assert [p["committed"] for p in t.describe_group("g")["partitions"]] == [5, 5]


@pytest.mark.parametrize("bad", ["middle", -1, 999, {7: 0}, {0: 999}, 1.5, True])
def test_reset_group_bad_targets_write_nothing(mem_fab, bad):
    t = mem_fab.create_topic("bad", partitions=2)
    fill(t, 10)
    with pytest.raises(mp.InvalidArgument):
        t.reset_group("g", to=bad)
    assert all(p["committed"] is None for p in t.describe_group("g")["partitions"])


def test_describe_group_shows_members_partitions_and_lag(any_fab):
    t = any_fab.create_topic("lag", partitions=P)
    fill(t, 400)  # 100 per partition
    with t.consumer("g", member_id="m1", auto_commit_ms=0) as c1, t.consumer("g", member_id="m2", auto_commit_ms=0) as c2:
        wait_until(lambda: sorted(c1.partitions + c2.partitions) == list(range(P)) and c1.partitions and c2.partitions,
                   what="the partitions split between both members")
        for ev in pull_n(c1, 30):
            ev.ack()
        c1.commit()
        desc = t.describe_group("g")
        assert sorted(m["id"] for m in desc["members"]) == ["m1", "m2"]
        owners = {p["partition"]: p["owner"] for p in desc["partitions"]}
        assert {p for p, o in owners.items() if o == "m1"} == set(c1.partitions)
        assert {p for p, o in owners.items() if o == "m2"} == set(c2.partitions)
        # m1 committed 30 events; lag counts from the commit (from the start where none).
        assert desc["lag"] == 400 - 30
        for p in desc["partitions"]:
            assert p["end_offset"] == 100
            assert p["lag"] == 100 - (p["committed"] or 0)


def test_gap_left_by_retention_is_an_error_by_default_and_counted_when_skipped(any_fab):
    t = any_fab.create_topic("gap", partitions=1, segment_bytes=4096, retention_bytes=8192)
    with t.producer(batch_size=1) as prod:
        for i in range(40):
            prod.push({"i": i}, data=bytes([i]) * 1000)
    start = t.describe()["partitions"][0]["start_offset"]
    assert start > 0
    with t.consumer("g", start=0) as c:
        with pytest.raises(mp.OffsetOutOfRange, match="on_gap='earliest'"):
            c.pull(timeout=30)
    with t.consumer("g", start=0, on_gap="earliest") as c:
        ev = c.pull(timeout=30)
        assert ev.offset == start
        ev.ack()
        assert c.stats["skipped"] == start
    desc = t.describe_group("g")
    assert desc["skipped"] == start and desc["partitions"][0]["committed"] == start + 1


def test_gap_after_events_already_delivered_comes_in_order(mem_fab):
    """Events before the gap are handed out first; the error comes when the consumer reaches it."""
    t = mem_fab.create_topic("gap2", partitions=1, segment_bytes=4096, retention_bytes=8192)
    with t.producer(batch_size=1) as prod:
        prod.push({"i": 0}, data=b"x" * 1000).result(timeout=30)
        with t.consumer(prefetch_bytes=1) as c:
            first = c.pull(timeout=30)
            assert first.offset == 0
            for i in range(1, 40):
                prod.push({"i": i}, data=bytes([i]) * 1000)
            prod.flush()
            start = t.describe()["partitions"][0]["start_offset"]
            got = []
            with pytest.raises(mp.OffsetOutOfRange):
                while True:
                    ev = c.pull(timeout=30)
                    assert ev is not None
                    got.append(ev.offset)
            assert got == list(range(1, len(got) + 1)) and len(got) < start


def test_a_backlog_on_several_partitions_is_interleaved(any_fab):
    t = any_fab.create_topic("fair", partitions=P)
    for p in range(P):
        with t.producer() as prod:
            for i in range(3000):
                prod.push({"i": i}, data=b"", partition=p)
    t.mark_complete()
    with t.consumer("g") as c:
        wait_until(lambda: c.partitions == list(range(P)), what="every partition assigned")
        # The backlog is there when every partition's events were fetched.
        wait_until(lambda: c.stats["prefetched"] == P * 3000, what="the backlog prefetched")
        first = [ev.partition for ev in pull_n(c, 2000)]
    # Every partition got its turn early, not partition 0's whole backlog first.
    assert set(first[:P * 256]) == set(range(P))
    assert all(first.count(p) >= 300 for p in range(P)), [first.count(p) for p in range(P)]


def test_session_timeout_and_rebalance_timeout_are_checked(mem_fab):
    t = mem_fab.create_topic("opts")
    for bad in ({"session_timeout_ms": 10}, {"session_timeout_ms": "1"}, {"rebalance_timeout_ms": -1},
                {"on_gap": "skip"}):
        with pytest.raises(mp.InvalidArgument):
            t.consumer("g", **bad)


def test_an_ack_from_before_a_partition_moved_away_and_back_is_ignored(mem_fab):
    """Acks cover everything before them in the partition: an ack of an event handed out before the
    partition moved away (and came back) must not cover events handed out again since."""
    t = mem_fab.create_topic("epochs", partitions=1)
    fill(t, 10)
    with t.consumer("g", member_id="m", rebalance_timeout_ms=0, auto_commit_ms=0) as a:
        stale = pull_n(a, 6)[-1]  # offset 5, not acknowledged
        with t.consumer("g", member_id="0-first", auto_commit_ms=0) as b:  # sorts first: takes partition 0
            wait_until(lambda: b.partitions == [0] and a.partitions == [], what="partition 0 moved to b")
        wait_until(lambda: a.partitions == [0], what="partition 0 back to a")
        assert a.pull(timeout=10).offset == 0, "a starts again at the group's commit"
        stale.ack()  # from the earlier ownership: ignored
        a.commit()
        assert committed(mem_fab.topic("epochs"), "g")[0] in (None, 0)
