"""Producer (futures, ordering, selectors, flow control, push_many) and consumer (start, data selection, end)."""
from __future__ import annotations

import sys
import threading

import numpy as np
import orjson
import pytest

import mofka_py as mp
from mofka_py import _core

from _helpers import committed, consume_all, end_offsets, flush_while_pushing_keeps_order, payload, pull_n

# ----------------------------------------------------------------------------- producer


def test_futures_resolve_to_event_ids(any_fab):
    t = any_fab.create_topic("ids", partitions=1)
    with t.producer() as prod:
        futs = [prod.push({"i": i}) for i in range(100)]
        ids = [f.result(timeout=30) for f in futs]
        assert all(f.done() for f in futs)
    assert ids == [mp.EventId(0, i) for i in range(100)]
    assert all(type(i) is mp.EventId for i in ids)
    assert ids[5].partition == 0 and ids[5].offset == 5


def test_strict_per_partition_order(any_fab):
    t = any_fab.create_topic("order", partitions=4)
    n = 4000
    with t.producer(batch_size=37, linger_ms=0.5) as prod:
        futs = [prod.push({"seq": i}, data=i.to_bytes(4, "little")) for i in range(n)]
        ids = [f.result(timeout=60) for f in futs]
    # Per partition, push order == offset order, offsets dense from 0.
    per = {}
    for i, eid in enumerate(ids):
        per.setdefault(eid.partition, []).append((eid.offset, i))
    assert sorted(per) == [0, 1, 2, 3]
    for _p, lst in per.items():
        assert [o for o, _ in lst] == list(range(len(lst)))
        assert [i for _, i in lst] == sorted(i for _, i in lst)
    assert end_offsets(t) == [len(per[p]) for p in range(4)]
    t.mark_complete()
    got = consume_all(t)
    assert len(got) == n
    last = {}
    for p, o, m, d in got:
        seq = orjson.loads(m)["seq"]
        assert int.from_bytes(d, "little") == seq
        assert ids[seq] == (p, o)
        assert seq > last.get(p, -1)
        last[p] = seq


def test_explicit_partition(mem_fab):
    t = mem_fab.create_topic("explicit", partitions=3)
    with t.producer() as prod:
        ids = [prod.push({"i": i}, partition=2, key="ignored-when-explicit").result(timeout=30) for i in range(10)]
        ids0 = prod.push({"i": 10}, partition=0).result(timeout=30)
    assert ids == [mp.EventId(2, i) for i in range(10)]
    assert ids0 == mp.EventId(0, 0)
    assert end_offsets(t) == [1, 0, 10]


def test_key_hash_is_stable_and_kafka_compatible(tmp_path):
    keys = [f"sensor-{i}" for i in range(40)] + ["", "é-unicode-ключ"]
    placements = []
    for attempt in range(2):
        with mp.connect(f"file://{tmp_path / str(attempt)}") as fab:
            t = fab.create_topic("keys", partitions=7)
            with t.producer() as prod:
                got = {}
                for _rep in range(3):
                    for k in keys:
                        pid = prod.push({"k": k}, key=k).result(timeout=30).partition
                        got.setdefault(k, set()).add(pid)
                # bytes keys hash like their str encoding
                for k in keys[:5]:
                    assert prod.push(None, key=k.encode()).result(timeout=30).partition in got[k]
            assert all(len(v) == 1 for v in got.values()), "same key must always go to the same partition"
            placements.append({k: v.pop() for k, v in got.items()})
    assert placements[0] == placements[1]
    for k, p in placements[0].items():
        assert p == _core.partition_for_key(k.encode(), 7)
    assert len(set(placements[0].values())) > 3, "keys should spread over partitions"


def test_round_robin_selector_spreads(mem_fab):
    t = mem_fab.create_topic("rr", partitions=3)
    with t.producer(selector="round_robin") as prod:
        ids = [prod.push({"i": i}, key="same-key").result(timeout=30) for i in range(30)]
    assert [i.partition for i in ids] == [i % 3 for i in range(30)]
    assert end_offsets(t) == [10, 10, 10]
    # key_hash without a key also spreads round robin
    t2 = mem_fab.create_topic("nokey", partitions=4)
    with t2.producer() as prod:
        for i in range(40):
            prod.push({"i": i})
    assert end_offsets(t2) == [10, 10, 10, 10]


def test_flush_stores_everything(mem_fab):
    t = mem_fab.create_topic("flush", partitions=2)
    prod = t.producer(linger_ms=10_000, batch_size=1_000_000)
    try:
        futs = [prod.push({"i": i}, data=payload(i)) for i in range(500)]
        prod.flush()
        assert all(f.done() for f in futs)
        assert prod.pending_bytes == 0
        assert sum(end_offsets(t)) == 500
        assert prod.stats == {"appended_events": 500, "pending_bytes": 0}
        prod.flush()  # nothing queued: returns at once
    finally:
        prod.close()


def test_flush_from_other_threads_while_pushing_keeps_order(any_fab):
    # flush() hands sealed batches to the transport itself: never out of turn with the sender thread
    flush_while_pushing_keeps_order(any_fab.create_topic("racing", partitions=1))


def test_close_flushes_and_push_after_close_is_closed(mem_fab):
    t = mem_fab.create_topic("closed", partitions=1)
    prod = t.producer(linger_ms=10_000)
    f = prod.push({"a": 1})
    prod.close()
    assert f.result(timeout=30) == mp.EventId(0, 0)
    prod.close()  # idempotent
    with pytest.raises(mp.Closed):
        prod.push({"a": 2})
    with pytest.raises(mp.Closed):
        prod.push_many([b"x"])
    assert end_offsets(t) == [1]


def test_non_blocking_push_raises_buffer_full(mem_fab):
    t = mem_fab.create_topic("full", partitions=1)
    big = np.zeros(1 << 20, dtype=np.uint8)
    ok = 0
    with t.producer(max_pending_bytes=64 * 1024, linger_ms=200) as prod:
        with pytest.raises(mp.BufferFull):
            for _ in range(1000):
                prod.push({"n": ok}, data=big, block=False)
                ok += 1
        assert ok >= 1
        prod.flush()
        # block=True waits for space instead
        for _ in range(3):
            prod.push({"n": ok}, data=big)
            ok += 1
    assert end_offsets(t) == [ok]
    t.mark_complete()
    assert [orjson.loads(m)["n"] for _, _, m, _ in consume_all(t)] == list(range(ok))


def test_user_buffer_referenced_until_append_then_released(mem_fab):
    t = mem_fab.create_topic("refs", partitions=1)
    arr = np.arange(100_000, dtype=np.uint8)
    small = np.arange(100, dtype=np.uint8)
    rc_big, rc_small = sys.getrefcount(arr), sys.getrefcount(small)
    with t.producer(linger_ms=60_000) as prod:
        f = prod.push(None, data=arr)
        prod.push(None, data=small)
        assert not f.done()
        assert sys.getrefcount(arr) > rc_big, "large data is referenced, not copied, until appended"
        assert sys.getrefcount(small) == rc_small, "small data is copied at push time"
        prod.flush()
        assert f.done()
        assert sys.getrefcount(arr) == rc_big, "the reference is dropped once stored"
    t.mark_complete()
    assert [d for _, _, _, d in consume_all(t)] == [arr.tobytes(), small.tobytes()]


def test_push_many_structured_array(mem_fab):
    t = mem_fab.create_topic("records", partitions=3)
    dt = np.dtype([("frame", "<u4"), ("x", "<f8"), ("flag", "u1")])
    n = 5000
    recs = np.zeros(n, dtype=dt)
    recs["frame"] = np.arange(n)
    recs["x"] = np.linspace(0, 1, n)
    recs["flag"] = np.arange(n) % 2
    with t.producer() as prod:
        last = prod.push_many(recs)
        assert isinstance(last.result(timeout=30), mp.EventId)
        assert prod.push_many(recs[:0]) is None
    assert sum(end_offsets(t)) == n
    t.mark_complete()
    got = []
    with t.consumer() as cons:
        while True:
            b = cons.pull_batch(timeout=None)
            if b is None:
                break
            assert len(b) >= 1
            assert b.uniform_metadata_size() == dt.itemsize
            assert b.metadata_lengths() == [dt.itemsize] * len(b)
            view = b.metadata_view()
            assert view.readonly and view.nbytes == len(b) * dt.itemsize
            arr = np.frombuffer(view, dtype=dt)
            assert b.last_offset - b.first_offset + 1 == len(b)
            assert arr[0].tobytes() == b[0].metadata_bytes and arr[-1].tobytes() == b[-1].metadata_bytes
            assert b[-1].offset == b.last_offset
            got.append(arr)
    allrec = np.concatenate(got)
    assert len(allrec) == n
    assert np.array_equal(np.sort(allrec, order="frame"), recs)


def test_push_many_2d_uint8_explicit_partition_in_order(any_fab):
    t = any_fab.create_topic("rows", partitions=2)
    rows = np.random.default_rng(5).integers(0, 256, (3000, 24), dtype=np.uint8)
    with t.producer(batch_size=1000) as prod:
        assert prod.push_many(rows, partition=1).result(timeout=30) == mp.EventId(1, 2999)
        # strided rows (every other one) are fine: each record is contiguous
        assert prod.push_many(rows[::2], partition=0).result(timeout=30) == mp.EventId(0, 1499)
    t.mark_complete()
    out = {0: [], 1: []}
    with t.consumer() as cons:
        while (b := cons.pull_batch(max_events=700)) is not None:
            assert len(b) <= 700
            out[b.partition].append(np.frombuffer(b.metadata_view(), dtype=np.uint8).reshape(-1, 24))
    assert np.array_equal(np.concatenate(out[1]), rows)
    assert np.array_equal(np.concatenate(out[0]), rows[::2])


def test_push_many_bytes_and_dicts(mem_fab):
    t = mem_fab.create_topic("lists", partitions=1)
    blobs = [b"", b"a", b"bb" * 100, bytes(range(256))] * 50
    dicts = [{"i": i, "name": f"n{i}", "vals": [i, i + 0.5]} for i in range(300)]
    with t.producer() as prod:
        assert prod.push_many(blobs).result(timeout=30) == mp.EventId(0, len(blobs) - 1)
        assert prod.push_many(dicts).result(timeout=30) == mp.EventId(0, len(blobs) + len(dicts) - 1)
        assert prod.push_many([]) is None
        # a mix is fine too (each item bytes or JSON-serialisable)
        prod.push_many([b"raw", {"x": 1}, [1, 2], "s", 3])
    t.mark_complete()
    got = [m for _, _, m, _ in consume_all(t)]
    assert got[:len(blobs)] == blobs
    assert [orjson.loads(m) for m in got[len(blobs):len(blobs) + 300]] == dicts
    assert got[-5:] == [b"raw", b'{"x":1}', b"[1,2]", b'"s"', b"3"]


def test_pull_batch_record_round_trip_with_ack(mem_fab):
    t = mem_fab.create_topic("vec", partitions=1)
    dt = np.dtype([("t", "<f8"), ("v", "<i4", (3,))])
    recs = np.zeros(1000, dtype=dt)
    recs["t"] = np.arange(1000) * 0.1
    recs["v"] = np.arange(3000).reshape(1000, 3)
    with t.producer(batch_size=256) as prod:
        prod.push_many(recs)
    t.mark_complete()
    parts = []
    with t.consumer(group="vec-g", auto_commit_ms=0) as cons:
        while (b := cons.pull_batch()) is not None:
            parts.append(np.frombuffer(b.metadata_view(), dtype=dt).copy())
            b.ack()
        cons.commit()
        assert committed(t, "vec-g") == [1000]
    assert np.array_equal(np.concatenate(parts), recs)


def test_concurrent_producers(mem_fab):
    t = mem_fab.create_topic("conc", partitions=2)
    errors = []

    def run(w):
        try:
            with t.producer() as prod:
                for i in range(500):
                    prod.push({"w": w, "i": i}, key=f"w{w}")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    t.mark_complete()
    seen = {}
    for p, _o, m, _ in consume_all(t):
        md = orjson.loads(m)
        assert p == _core.partition_for_key(f"w{md['w']}".encode(), 2)
        assert md["i"] == seen.get(md["w"], -1) + 1, "each writer's events in order"
        seen[md["w"]] = md["i"]
    assert seen == {0: 499, 1: 499, 2: 499, 3: 499}


# ----------------------------------------------------------------------------- consumer


@pytest.fixture
def filled(mem_fab):
    t = mem_fab.create_topic("filled", partitions=2)
    with t.producer() as prod:
        for i in range(20):
            prod.push({"i": i}, data=bytes([i]) * 10, partition=i % 2)
    return t


def test_start_earliest(filled):
    with filled.consumer(start="earliest") as cons:
        evs = pull_n(cons, 20)
    assert sorted(ev.metadata["i"] for ev in evs) == list(range(20))
    assert cons.partitions == [0, 1]


def test_start_latest_sees_only_new_events(filled):
    with filled.consumer(start="latest") as cons:
        assert cons.pull(timeout=0.3) is None
        with filled.producer() as prod:
            prod.push({"i": 100}, partition=0)
            prod.push({"i": 101}, partition=1)
        evs = pull_n(cons, 2)
        assert sorted(ev.metadata["i"] for ev in evs) == [100, 101]
        assert sorted(ev.offset for ev in evs) == [10, 10]
        assert cons.pull(timeout=0.2) is None


def test_start_explicit_offset(filled):
    with filled.consumer(start=7) as cons:
        evs = pull_n(cons, 6)
        assert cons.pull(timeout=0.2) is None
    assert sorted((ev.partition, ev.offset) for ev in evs) == [(p, o) for p in (0, 1) for o in (7, 8, 9)]
    for ev in evs:
        assert ev.metadata["i"] == ev.offset * 2 + ev.partition
        assert ev.id == mp.EventId(ev.partition, ev.offset)
    with filled.consumer(start=0, partitions=[1]) as cons:
        evs = pull_n(cons, 10)
        assert cons.partitions == [1]
        assert [ev.offset for ev in evs] == list(range(10))
        assert all(ev.partition == 1 for ev in evs)
    # past the end: nothing until new events reach that offset
    with filled.consumer(start=50) as cons:
        assert cons.pull(timeout=0.2) is None


def test_start_committed_without_commits_is_earliest(filled):
    with filled.consumer(group="fresh") as cons:  # default start with a group: committed
        evs = pull_n(cons, 20)
    assert sorted(ev.metadata["i"] for ev in evs) == list(range(20))


def test_data_false_gives_metadata_only(filled):
    filled.mark_complete()
    with filled.consumer(data=False) as cons:
        evs = list(cons)
    assert len(evs) == 20
    for ev in evs:
        assert len(ev.data) == 0 and ev.data_size == 0
        assert ev.metadata["i"] in range(20)


def test_data_byte_range(mem_fab):
    t = mem_fab.create_topic("range", partitions=1)
    blobs = [bytes(range(n)) for n in (0, 3, 10, 100)]
    with t.producer() as prod:
        for b in blobs:
            prod.push(None, data=b)
    t.mark_complete()
    with t.consumer(data=(2, 5)) as cons:
        got = [bytes(ev.data) for ev in cons]
    assert got == [b[2:7] for b in blobs]
    with t.consumer(data=(0, 0)) as cons:
        assert [bytes(ev.data) for ev in cons] == [b""] * 4


def test_data_callable_selector(mem_fab):
    t = mem_fab.create_topic("sel", partitions=1)
    blob = bytes(range(200))
    with t.producer() as prod:
        prod.push({"want": "all"}, data=blob)
        prod.push({"want": "none"}, data=blob)
        prod.push({"want": "head"}, data=blob)
    t.mark_complete()
    calls = []

    def choose(md):
        calls.append(md)
        return {"all": True, "none": False, "head": (0, 16)}[md["want"]]

    with t.consumer(data=choose) as cons:
        evs = list(cons)
        got = [bytes(ev.data) for ev in evs]
        assert [ev.offset for ev in evs] == [0, 1, 2]
        for ev in evs:
            ev.ack()
    assert got == [blob, b"", blob[:16]]
    assert calls == [{"want": "all"}, {"want": "none"}, {"want": "head"}]


def test_mark_complete_ends_iteration(mem_fab):
    t = mem_fab.create_topic("ends", partitions=3)
    cons = t.consumer()
    got = []
    done = threading.Event()

    def reader():
        for ev in cons:
            got.append(ev.metadata["i"])
        done.set()

    th = threading.Thread(target=reader)
    th.start()
    with t.producer() as prod:
        for i in range(300):
            prod.push({"i": i})
    assert not t.complete
    t.mark_complete()
    assert t.complete
    th.join(timeout=60)
    assert done.is_set(), "iteration did not end after mark_complete"
    assert sorted(got) == list(range(300))
    assert cons.exhausted
    assert cons.pull(timeout=0.1) is None
    assert cons.pull() is None
    cons.close()


def test_complete_empty_topic_iterates_nothing(mem_fab):
    t = mem_fab.create_topic("nothing", partitions=2)
    t.mark_complete()
    t.mark_complete()  # idempotent
    with t.consumer() as cons:
        assert list(cons) == []
        assert cons.exhausted
        assert cons.pull_batch() is None


def test_pull_timeout_returns_none(mem_fab):
    t = mem_fab.create_topic("quiet", partitions=1)
    with t.consumer() as cons:
        assert cons.pull(timeout=0.2) is None
        assert cons.pull(timeout=0) is None
        assert cons.pull_batch(timeout=0.1) is None
        assert not cons.exhausted


def test_pull_after_close_raises_closed(mem_fab):
    t = mem_fab.create_topic("cc", partitions=1)
    cons = t.consumer()
    cons.close()
    cons.close()
    with pytest.raises(mp.Closed):
        cons.pull(timeout=0.1)


def test_event_timestamp_and_repr(mem_fab):
    t = mem_fab.create_topic("ts", partitions=1)
    with t.producer() as prod:
        prod.push({"a": 1})
    t.mark_complete()
    with t.consumer() as cons:
        ev = cons.pull()
    assert ev.timestamp_us > 1_600_000_000_000_000
    assert "ts" in repr(t)
    assert "memory://" in repr(mem_fab)
    assert mem_fab.url == "memory://"
