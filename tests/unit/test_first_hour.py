"""What a new user trips over first (issue 12): every public argument checked in Python with an
InvalidArgument naming it and its range (never a pybind11 TypeError), NaN/inf refused in
metadata unless an encoding is chosen, waits that report their real timeout."""
from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

import mofka_py as mp


@pytest.fixture
def topic(mem_fab):
    return mem_fab.create_topic("t", partitions=2)


@pytest.mark.parametrize("kw, name", [
    ({"batch_size": -1}, "batch_size"), ({"batch_size": 2 ** 70}, "batch_size"), ({"batch_size": "10"}, "batch_size"),
    ({"batch_size": 0}, "batch_size"), ({"batch_bytes": 0}, "batch_bytes"), ({"linger_ms": -1}, "linger_ms"),
    ({"linger_ms": float("nan")}, "linger_ms"), ({"max_pending_bytes": 2 ** 64}, "max_pending_bytes"),
    ({"selector": "random"}, "selector"), ({"non_finite": "drop"}, "non_finite"),
])
def test_bad_producer_settings_name_the_argument(topic, kw, name):
    with pytest.raises(mp.InvalidArgument, match=name):
        topic.producer(**kw)


@pytest.mark.parametrize("partition", [-1, 2, 2 ** 70, "0", 1.0, True])
def test_bad_partition_is_refused_and_writes_nothing(topic, partition):
    with topic.producer() as prod:
        with pytest.raises(mp.InvalidArgument, match="partition"):
            prod.push({"x": 1}, partition=partition)
        with pytest.raises(mp.InvalidArgument, match="partition"):
            prod.push_many([{"x": 1}], partition=partition)
    assert [p["end_offset"] for p in topic.describe()["partitions"]] == [0, 0]


@pytest.mark.parametrize("kw, name", [
    ({"start": "first"}, "start"), ({"start": -3}, "start"), ({"prefetch_bytes": 0}, "prefetch_bytes"),
    ({"auto_commit_ms": -1}, "auto_commit_ms"), ({"partitions": [-1]}, "partitions"), ({"data": (1,)}, "data"),
    ({"data": (-1, 4)}, "data"), ({"data": "all"}, "data"), ({"member_id": 7}, "member_id"),
])
def test_bad_consumer_settings_name_the_argument(topic, kw, name):
    with pytest.raises(mp.InvalidArgument, match=name):
        topic.consumer(**kw)


@pytest.mark.parametrize("kw, name", [
    ({"segment_bytes": 10}, "segment_bytes"), ({"retention_bytes": -1}, "retention_bytes"),
    ({"sync": "always"}, "sync"), ({"request_timeout_ms": 0}, "request_timeout_ms"), ({"repair": "yes"}, "repair"),
    ({"max_event_bytes": 2 ** 70}, "max_event_bytes"),
])
def test_bad_connect_settings_name_the_argument(kw, name):
    with pytest.raises(mp.InvalidArgument, match=name):
        mp.connect("memory://", **kw)


@pytest.mark.parametrize("kw, name", [({"partitions": 0}, "partitions"), ({"partitions": "4"}, "partitions"),
                                      ({"retention_ms": -5}, "retention_ms"), ({"sync": "often"}, "sync")])
def test_bad_topic_settings_name_the_argument(mem_fab, kw, name):
    with pytest.raises(mp.InvalidArgument, match=name):
        mem_fab.create_topic("bad", **kw)
    assert mem_fab.topics() == []


@pytest.mark.parametrize("timeout", [-1, float("nan"), "1", float("inf")])
def test_bad_timeouts_name_the_argument(topic, timeout):
    with topic.producer() as prod:
        with pytest.raises(mp.InvalidArgument, match="timeout"):
            prod.flush(timeout=timeout)
    with topic.consumer() as cons:
        with pytest.raises(mp.InvalidArgument, match="timeout"):
            cons.pull(timeout=timeout)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), np.float32("nan"),
                                   np.array([1.0, np.inf]), [1, {"deep": [math.nan]}]])
def test_non_finite_metadata_is_refused_by_default(topic, value):
    with topic.producer() as prod:
        with pytest.raises(mp.InvalidArgument, match="NaN or infinite"):
            prod.push({"v": value})
        with pytest.raises(mp.InvalidArgument, match="NaN or infinite"):
            prod.push_many([{"ok": 1}, {"v": value}])
    assert [p["end_offset"] for p in topic.describe()["partitions"]] == [0, 0]


def test_non_finite_metadata_with_a_chosen_encoding(topic):
    meta = {"a": float("nan"), "b": [float("inf"), -float("inf"), 1.5], "c": None}
    with topic.producer(non_finite="string") as prod:
        prod.push(meta, partition=0)
    with topic.producer(non_finite="null") as prod:
        prod.push(meta, partition=1)
    topic.mark_complete()
    got = {ev.partition: orjson.loads(ev.metadata_bytes) for ev in topic.consumer()}
    assert got[0] == {"a": "NaN", "b": ["Infinity", "-Infinity", 1.5], "c": None}
    assert got[1] == {"a": None, "b": [None, None, 1.5], "c": None}


def test_real_nulls_are_not_mistaken_for_nan(topic):
    with topic.producer() as prod:
        prod.push({"a": None, "b": [None, 1.0], "s": "null"}).result(timeout=30)


def test_result_timeout_names_the_real_timeout():
    with mp.connect("memory://") as fab:
        t = fab.create_topic("slow")
        with t.producer(linger_ms=60_000, batch_size=1_000_000) as prod:  # the batch lingers: not stored yet
            fut = prod.push({"x": 1})
            with pytest.raises(mp.TimeoutError, match=r"within 0\.25 s"):
                fut.result(0.25)
            prod.flush()
            assert fut.result(0.25).offset == 0
