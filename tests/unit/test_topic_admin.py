"""Data that can be removed: delete a topic (refused with live consumers unless forced; its
segments and group offsets go; a crash in the middle is finished at the next open), purge a
topic's events, change its retention."""
from __future__ import annotations

import shutil

import pytest

import mofka_py as mp

from _group_scenarios import fill
from _helpers import end_offsets, pull_n, segment_files


def test_delete_topic_removes_events_and_group_offsets(any_fab):
    t = any_fab.create_topic("gone", partitions=2)
    fill(t, 100)
    with t.consumer("g") as c:
        for ev in pull_n(c, 10):
            ev.ack()
    assert t.describe_group("g")["partitions"][0]["committed"] is not None
    any_fab.delete_topic("gone")
    assert "gone" not in any_fab.topics()
    with pytest.raises(mp.TopicNotFound):
        any_fab.topic("gone")
    # A topic created again under the name starts empty, with no group offsets.
    t2 = any_fab.create_topic("gone", partitions=3)
    assert end_offsets(t2) == [0, 0, 0]
    assert all(p["committed"] is None for p in t2.describe_group("g")["partitions"])
    assert t2.groups() == []


def test_delete_is_refused_while_a_group_has_live_members_unless_forced(any_fab):
    t = any_fab.create_topic("busy")
    fill(t, 5)
    with t.consumer("readers", member_id="worker-1"):
        with pytest.raises(mp.GroupActive, match="worker-1"):
            any_fab.delete_topic("busy")
        assert end_offsets(any_fab.topic("busy")) == [5], "a refused delete writes nothing"
        any_fab.delete_topic("busy", force=True)
    assert any_fab.topics() == []


def test_delete_on_disk_leaves_nothing_and_survives_reopen(fab_dir):
    with mp.connect(f"file://{fab_dir}") as fab:
        t = fab.create_topic("big", partitions=2)
        fill(t, 1000)
        with t.consumer("g") as c:
            for ev in pull_n(c, 100):
                ev.ack()
        keep = fab.create_topic("keep")
        fill(keep, 10)
        fab.delete_topic("big")
        assert not (fab_dir / "topics" / "big").exists()
        assert [p.name for p in (fab_dir / "topics").iterdir()] == ["keep"]
    with mp.connect(f"file://{fab_dir}") as fab:
        assert fab.topics() == ["keep"]
        t = fab.create_topic("big")
        assert t.describe_group("g")["partitions"][0]["committed"] is None, "offsets came back after reopen"


def test_a_delete_cut_short_by_a_crash_is_finished_at_the_next_open(fab_dir):
    with mp.connect(f"file://{fab_dir}") as fab:
        t = fab.create_topic("half", partitions=2)
        fill(t, 200)
        t.reset_group("g", to=50)
    # The state a crash right after the delete's rename leaves behind: the topic directory
    # renamed away, its offsets still in the offsets log.
    topics = fab_dir / "topics"
    shutil.move(str(topics / "half"), str(topics / ".deleting-half.7"))
    with mp.connect(f"file://{fab_dir}") as fab:
        assert fab.topics() == []
        assert [p.name for p in topics.iterdir()] == []
        t = fab.create_topic("half")
        assert t.describe_group("g")["partitions"][0]["committed"] is None
    # ... and a crash before the rename leaves the topic whole.
    with mp.connect(f"file://{fab_dir}") as fab:
        assert fab.topics() == ["half"]


def test_purge_drops_events_and_offsets_continue(any_fab):
    t = any_fab.create_topic("p", partitions=2, segment_bytes=4096)
    fill(t, 400)
    assert t.purge() == 400
    info = t.describe()["partitions"]
    assert [(p["start_offset"], p["end_offset"]) for p in info] == [(200, 200), (200, 200)]
    fill(t, 10, first=400)
    t.mark_complete()
    assert sorted(ev.metadata["i"] for ev in t.consumer()) == list(range(400, 410))
    # A consumer that was behind meets the gap the purge left.
    with t.consumer(start=0) as c:
        with pytest.raises(mp.OffsetOutOfRange):
            c.pull(timeout=10)


def test_purge_removes_segment_files(fab_dir):
    with mp.connect(f"file://{fab_dir}") as fab:
        t = fab.create_topic("p", segment_bytes=4096)
        with t.producer(batch_size=1) as prod:
            for i in range(50):
                prod.push({"i": i}, data=b"x" * 1000)
        assert len(segment_files(fab_dir, "p")) > 5
        t.purge()
        assert len(segment_files(fab_dir, "p")) == 1
        assert t.describe()["partitions"][0]["size_bytes"] == 0
    with mp.connect(f"file://{fab_dir}") as fab:
        p = fab.topic("p").describe()["partitions"][0]
        assert p["start_offset"] == p["end_offset"] == 50


def test_alter_retention_applies_now(any_fab):
    t = any_fab.create_topic("r", segment_bytes=4096)
    with t.producer(batch_size=1) as prod:
        for i in range(60):
            prod.push({"i": i}, data=b"y" * 1000)
    assert t.describe()["partitions"][0]["start_offset"] == 0
    t.alter(retention_bytes=8192, retention_ms=60_000)
    info = t.describe()
    p = info["partitions"][0]
    assert p["start_offset"] > 0 and p["size_bytes"] <= 8192 + 4096
    assert (info["retention_bytes"], info["retention_ms"]) == (8192, 60_000)


def test_alter_retention_is_kept(fab_dir):
    with mp.connect(f"file://{fab_dir}") as fab:
        fab.create_topic("r", segment_bytes=4096).alter(retention_bytes=8192)
    with mp.connect(f"file://{fab_dir}") as fab:
        assert fab.topic("r").describe()["retention_bytes"] == 8192


@pytest.mark.parametrize("kw", [{}, {"retention_bytes": -1}, {"retention_ms": "1"}])
def test_alter_bad_values(mem_fab, kw):
    t = mem_fab.create_topic("a")
    with pytest.raises(mp.InvalidArgument):
        t.alter(**kw)
