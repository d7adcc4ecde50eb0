"""Bad input raises the specific mofka_py.Error subclass and writes nothing."""
from __future__ import annotations

import builtins
import os

import numpy as np
import pytest

import mofka_py as mp
from mofka_py.api import Topic

from _helpers import consume_all, end_offsets, tree


def test_error_hierarchy():
    for name in ("InvalidArgument", "TopicNotFound", "TopicExists", "TimeoutError", "ConnectionError",
                 "AuthError", "CorruptionError", "Closed", "FabricLocked", "NotAFabric", "EventTooLarge",
                 "BufferFull"):
        cls = getattr(mp, name)
        assert issubclass(cls, mp.Error) and issubclass(cls, Exception)
    assert issubclass(mp.InvalidArgument, ValueError)
    assert issubclass(mp.EventTooLarge, mp.InvalidArgument)
    assert issubclass(mp.TopicNotFound, LookupError)
    assert issubclass(mp.TimeoutError, builtins.TimeoutError)
    assert issubclass(mp.ConnectionError, builtins.ConnectionError)


@pytest.fixture
def fab_with_topic(fab_dir):
    """A file:// fabric with topic 'good' (2 partitions, 3 events) and a snapshot helper."""
    fab = mp.connect(f"file://{fab_dir}")
    t = fab.create_topic("good", partitions=2)
    with t.producer() as prod:
        for i in range(3):
            prod.push({"i": i}, data=b"d" * i, partition=i % 2)
    yield fab, t
    fab.close()


def _state(fab, fab_dir):
    return (tree(fab_dir), fab.topics(), {n: end_offsets(fab.topic(n)) for n in fab.topics()})


# ----------------------------------------------------------------------------- URLs


@pytest.mark.parametrize("url", ["", "no-scheme", "/abs/path/without/scheme", "bogus://x", "http://host/x",
                                 "file://", "memory:/", "FILE:///tmp/x"])
def test_invalid_url(url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(mp.InvalidArgument):
        mp.connect(url)
    assert os.listdir(tmp_path) == []


def test_unknown_scheme_creates_nothing(tmp_path):
    target = tmp_path / "wouldbe"
    with pytest.raises(mp.InvalidArgument) as ei:
        mp.connect(f"bogus://{target}")
    assert "bogus" in str(ei.value)
    assert not target.exists()


def test_url_must_be_given(monkeypatch):
    with pytest.raises(mp.InvalidArgument):
        mp.connect()
    with pytest.raises(mp.InvalidArgument):
        mp.connect(123)  # type: ignore[arg-type]
    monkeypatch.setenv("MOFKA_PY_URL", "memory://")
    with mp.connect() as fab:
        assert fab.url == "memory://"


@pytest.mark.parametrize("kw", [{"segment_bytes": -1}, {"retention_bytes": -5}, {"retention_ms": -1},
                                {"max_event_bytes": -1}, {"sync": "sometimes"}, {"segment_bytes": 100},
                                {"max_event_bytes": 0}, {"sync_interval_ms": 0}, {"segment_bytes": 1.5}])
def test_invalid_fabric_settings(kw, fab_dir):
    with pytest.raises(mp.InvalidArgument):
        mp.connect(f"file://{fab_dir}", **kw)
    assert not fab_dir.exists()


# ----------------------------------------------------------------------------- topics


def test_unknown_topic(fab_with_topic, fab_dir):
    fab, _ = fab_with_topic
    before = _state(fab, fab_dir)
    with pytest.raises(mp.TopicNotFound) as ei:
        fab.topic("nope")
    assert "nope" in str(ei.value)
    ghost = Topic(fab, "nope")
    for action in (ghost.producer, ghost.consumer, ghost.mark_complete, ghost.describe,
                   lambda: ghost.partitions, lambda: ghost.complete, lambda: ghost.consumer("g")):
        with pytest.raises(mp.TopicNotFound):
            action()
    assert _state(fab, fab_dir) == before
    assert not (fab_dir / "topics" / "nope").exists()


@pytest.mark.parametrize("n", [0, -1, -100, 65537, True, 2.0, "3", None])
def test_invalid_partition_count(fab_with_topic, fab_dir, n):
    fab, _ = fab_with_topic
    before = _state(fab, fab_dir)
    with pytest.raises(mp.InvalidArgument):
        fab.create_topic("bad-parts", partitions=n)
    assert _state(fab, fab_dir) == before


def test_duplicate_topic(fab_with_topic, fab_dir):
    fab, t = fab_with_topic
    conf = (fab_dir / "topics" / "good" / "topic.conf").read_bytes()
    before = _state(fab, fab_dir)
    with pytest.raises(mp.TopicExists):
        fab.create_topic("good", partitions=5, segment_bytes=8192)
    assert _state(fab, fab_dir) == before
    assert (fab_dir / "topics" / "good" / "topic.conf").read_bytes() == conf
    assert t.partitions == 2


def test_duplicate_topic_in_memory(mem_fab):
    mem_fab.create_topic("x", partitions=1)
    with pytest.raises(mp.TopicExists):
        mem_fab.create_topic("x", partitions=3)
    assert mem_fab.topic("x").partitions == 1


@pytest.mark.parametrize("name", ["", "a/b", "../escape", "..", ".", ".hidden", "-dash", "_under", "sp ace",
                                  "tab\t", "new\nline", "x" * 201, "é", "a:b", "a\\b", "nul\x00"])
def test_invalid_topic_names(fab_with_topic, fab_dir, name):
    fab, _ = fab_with_topic
    before = _state(fab, fab_dir)
    with pytest.raises(mp.InvalidArgument):
        fab.create_topic(name)
    assert _state(fab, fab_dir) == before
    assert sorted(os.listdir(fab_dir.parent)) == ["fab"]


def test_non_string_topic_name(mem_fab):
    for bad in (None, 3, b"bytes"):
        with pytest.raises(mp.InvalidArgument):
            mem_fab.create_topic(bad)  # type: ignore[arg-type]
    assert mem_fab.topics() == []


def test_valid_topic_name_edges(mem_fab):
    for name in ("a", "0", "A.b_c-d", "x" * 200):
        mem_fab.create_topic(name)
    assert len(mem_fab.topics()) == 4


@pytest.mark.parametrize("cfg", [{"segment_bytes": 100}, {"colour": "blue"}, {"sync": "maybe"},
                                 {"max_event_bytes": 0}, {"sync_interval_ms": 0}, {"retention_ms": -1},
                                 {"retention_bytes": -1}, {"segment_bytes": "big"}, {"retention_bytes": 1.5},
                                 {"max_event_bytes": True}, {"segment_bytes": None}])
def test_invalid_topic_settings(fab_with_topic, fab_dir, cfg):
    fab, _ = fab_with_topic
    before = _state(fab, fab_dir)
    with pytest.raises(mp.InvalidArgument):
        fab.create_topic("cfg", **cfg)
    assert _state(fab, fab_dir) == before


# ----------------------------------------------------------------------------- producer input


def test_metadata_not_json_serialisable(fab_with_topic, fab_dir):
    fab, t = fab_with_topic
    with t.producer() as prod:
        for bad in ({"s": {1, 2}}, {"o": object()}, object(), {1: "int key"}, {"f": lambda: 0}):
            with pytest.raises(mp.InvalidArgument):
                prod.push(bad)
        with pytest.raises(mp.InvalidArgument):
            prod.push_many([{"ok": 1}, {"bad": object()}])
        prod.flush()
    assert end_offsets(t) == [2, 1]


def test_numpy_scalars_in_metadata_are_fine(mem_fab):
    t = mem_fab.create_topic("np", partitions=1)
    with t.producer() as prod:
        prod.push({"a": np.int64(3), "b": np.float32(0.5), "c": np.arange(3)})
    t.mark_complete()
    with t.consumer() as c:
        assert c.pull().metadata == {"a": 3, "b": 0.5, "c": [0, 1, 2]}


def test_event_too_large(fab_dir):
    with mp.connect(f"file://{fab_dir}") as fab:
        t = fab.create_topic("small", partitions=1, max_event_bytes=1000)
        before = tree(fab_dir)
        with t.producer() as prod:
            with pytest.raises(mp.EventTooLarge) as ei:
                prod.push(None, data=b"x" * 1001)
            assert "max_event_bytes" in str(ei.value)
            with pytest.raises(mp.EventTooLarge):
                prod.push(b"m" * 600, data=b"d" * 401)  # metadata counts too
            with pytest.raises(mp.EventTooLarge):
                prod.push(None, data=[b"a" * 600, b"b" * 401])
            with pytest.raises(mp.EventTooLarge):
                prod.push_many(np.zeros((3, 1001), dtype=np.uint8))
            with pytest.raises(mp.EventTooLarge):
                prod.push_many([b"ok", b"z" * 1001])
            prod.flush()
        assert tree(fab_dir) == before
        assert end_offsets(t) == [0]
        with t.producer() as prod:
            assert prod.push(b"m" * 500, data=b"d" * 500).result(timeout=30).partition == 0


def test_event_too_large_stores_nothing(mem_fab):
    t = mem_fab.create_topic("small2", partitions=1, max_event_bytes=100)
    with t.producer() as prod:
        with pytest.raises(mp.EventTooLarge):
            prod.push(None, data=b"x" * 101)
        with pytest.raises(mp.EventTooLarge):
            prod.push_many(np.zeros((5, 101), dtype=np.uint8))
        prod.flush()
    assert end_offsets(t) == [0]


def test_push_to_closed_producer(fab_with_topic, fab_dir):
    fab, t = fab_with_topic
    prod = t.producer()
    prod.close()
    before = _state(fab, fab_dir)
    with pytest.raises(mp.Closed):
        prod.push({"late": True})
    with pytest.raises(mp.Closed):
        prod.push_many(np.zeros((2, 4), dtype=np.uint8))
    assert _state(fab, fab_dir) == before


def test_push_to_complete_topic(fab_with_topic, fab_dir):
    fab, t = fab_with_topic
    t.mark_complete()
    before = _state(fab, fab_dir)
    prod = t.producer()
    f = prod.push({"late": 1}, partition=0)
    with pytest.raises(mp.Closed) as ei:
        f.result(timeout=30)
    assert "complete" in str(ei.value)
    # Once a batch to a partition failed, the producer refuses its later events there (no gaps).
    with pytest.raises(mp.Closed, match="complete"):
        prod.push({"late": 2})
    with pytest.raises(mp.Closed, match="1 event"):
        prod.flush()
    prod.flush()  # the failure is reported once
    prod.close()
    assert _state(fab, fab_dir) == before
    # the producer context manager surfaces it too
    with pytest.raises(mp.Closed):
        with t.producer() as p2:
            p2.push({"late": 3})
    assert end_offsets(t) == [2, 1]


def test_non_contiguous_numpy_data(fab_with_topic, fab_dir):
    fab, t = fab_with_topic
    a = np.arange(100, dtype=np.float64).reshape(10, 10)
    with t.producer() as prod:
        for bad in (a[:, 0], a[::2], a.T[::2], np.arange(10)[::3]):
            with pytest.raises(mp.InvalidArgument) as ei:
                prod.push({"x": 1}, data=bad)
            assert "contiguous" in str(ei.value)
        with pytest.raises(mp.InvalidArgument):
            prod.push({"x": 1}, data=[b"fine", a[:, 1]])
        with pytest.raises(mp.InvalidArgument):
            prod.push_many(a[:, ::2])  # records not contiguous inside
        prod.flush()
    assert end_offsets(t) == [2, 1]


def test_invalid_data_types(mem_fab):
    t = mem_fab.create_topic("types", partitions=1)
    with t.producer() as prod:
        for bad in ("a string", 3, 4.5, {"a": 1}, object()):
            with pytest.raises(mp.InvalidArgument):
                prod.push(None, data=bad)
        prod.flush()
    assert end_offsets(t) == [0]


def test_invalid_partition_and_producer_settings(mem_fab):
    t = mem_fab.create_topic("p", partitions=2)
    with t.producer() as prod:
        for bad in (2, 99):
            with pytest.raises(mp.InvalidArgument):
                prod.push({"a": 1}, partition=bad)
        with pytest.raises(mp.InvalidArgument):
            prod.push_many([b"x"], partition=5)
        prod.flush()
    assert end_offsets(t) == [0, 0]
    with pytest.raises(mp.InvalidArgument):
        t.producer(selector="random")
    with pytest.raises(mp.InvalidArgument):
        t.producer(batch_size=0)
    with pytest.raises(mp.InvalidArgument):
        t.producer(linger_ms=-1)


def test_invalid_consumer_arguments(mem_fab):
    t = mem_fab.create_topic("c", partitions=2)
    for kw in ({"start": "middle"}, {"start": -1}, {"start": True}, {"start": 1.5}, {"data": "all"},
               {"data": (1, 2, 3)}, {"data": (-1, 4)}, {"partitions": [2]}, {"prefetch_bytes": 0}):
        with pytest.raises(mp.InvalidArgument):
            t.consumer(**kw)
    with t.consumer() as c:
        with pytest.raises(mp.InvalidArgument):
            c.pull(timeout=-1)
    assert t.groups() == []


def test_closed_fabric_refuses_calls(fab_dir):
    fab = mp.connect(f"file://{fab_dir}")
    t = fab.create_topic("t")
    fab.close()
    for action in (lambda: fab.create_topic("u"), lambda: fab.topic("t"), t.describe, t.mark_complete,
                   t.producer, t.consumer):
        with pytest.raises(mp.Closed):
            action()
    assert sorted(os.listdir(fab_dir / "topics")) == ["t"]
    with mp.connect(f"file://{fab_dir}") as fab2:
        assert not fab2.topic("t").complete


def test_bad_input_leaves_existing_events_intact(fab_with_topic, fab_dir):
    fab, t = fab_with_topic
    with t.producer() as prod:
        with pytest.raises(mp.InvalidArgument):
            prod.push({"x": object()})
        with pytest.raises(mp.InvalidArgument):
            prod.push(None, data=np.arange(10)[::2])
    t.mark_complete()
    got = consume_all(t)
    assert sorted((p, o, d) for p, o, _, d in got) == [(0, 0, b""), (0, 1, b"dd"), (1, 0, b"d")]
