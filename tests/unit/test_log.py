"""Storage: memory:// and file:// round trips, persistence, segment rolling, retention."""
from __future__ import annotations

import gc
import os

import numpy as np
import pytest

import mofka_py as mp

from _helpers import consume_all, end_offsets, payload, pull_n, segment_files, wait_until

SIZES = [0, 1, 7, 64, 1024, 16 * 1024 - 1, 16 * 1024, 100_000, 1 << 20]


def test_event_sizes_round_trip(any_fab):
    t = any_fab.create_topic("sizes", partitions=1)
    rng = np.random.default_rng(1)
    blobs = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in SIZES]
    with t.producer() as prod:
        ids = [prod.push({"n": len(b)}, data=b).result(timeout=30) for b in blobs]
    assert ids == [mp.EventId(0, i) for i in range(len(blobs))]
    t.mark_complete()
    with t.consumer() as cons:
        evs = list(cons)
    assert [ev.metadata for ev in evs] == [{"n": n} for n in SIZES]
    for ev, blob in zip(evs, blobs):
        assert isinstance(ev.data, memoryview)
        assert ev.data.readonly
        assert ev.data.nbytes == ev.data_size == len(blob)
        assert bytes(ev.data) == blob


DTYPES = [np.uint8, np.int16, np.uint32, np.int64, np.float32, np.float64, np.complex128, np.bool_]
SHAPES = [(0,), (1,), (5,), (3, 4), (2, 3, 5), (64, 64)]


def test_numpy_arrays_round_trip_bit_identical(any_fab):
    t = any_fab.create_topic("arrays", partitions=3)
    rng = np.random.default_rng(7)
    arrays = []
    for dt in DTYPES:
        for shape in SHAPES:
            if dt == np.bool_:
                a = rng.integers(0, 2, shape).astype(dt)
            elif np.issubdtype(dt, np.complexfloating):
                a = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dt)
            elif np.issubdtype(dt, np.floating):
                a = rng.standard_normal(shape).astype(dt)
            else:
                a = rng.integers(0, 100, shape).astype(dt)
            arrays.append(a)
    # Special values must survive bit for bit.
    arrays.append(np.array([np.nan, -0.0, np.inf, -np.inf, 5e-324], dtype=np.float64))
    # A Fortran-ordered array is contiguous too: its bytes are stored in memory order.
    arrays.append(np.asfortranarray(rng.standard_normal((7, 9)).astype(np.float32)))
    # Structured dtype.
    rec = np.zeros(10, dtype=[("id", "<u4"), ("x", "<f8"), ("tag", "S3")])
    rec["id"] = np.arange(10)
    rec["x"] = rng.standard_normal(10)
    rec["tag"] = b"abc"
    arrays.append(rec)

    with t.producer() as prod:
        for i, a in enumerate(arrays):
            order = "F" if (a.ndim > 1 and a.flags.f_contiguous and not a.flags.c_contiguous) else "C"
            prod.push({"i": i, "dtype": a.dtype.str if a.dtype.names is None else None, "shape": list(a.shape),
                       "order": order}, data=a)
    t.mark_complete()
    seen = set()
    with t.consumer() as cons:
        for ev in cons:
            md = ev.metadata
            a = arrays[md["i"]]
            got = np.frombuffer(ev.data, dtype=a.dtype).reshape(md["shape"], order=md["order"])
            assert got.dtype == a.dtype and got.shape == a.shape
            assert got.tobytes(order="A") == a.tobytes(order="A")
            assert not got.flags.writeable
            if a.dtype.kind in "fc":
                assert np.array_equal(np.ascontiguousarray(got).view(np.uint8), np.ascontiguousarray(a).view(np.uint8))
            seen.add(md["i"])
    assert seen == set(range(len(arrays)))


def test_data_as_list_of_buffers_is_concatenated(any_fab):
    t = any_fab.create_topic("pieces", partitions=1)
    big = np.arange(50_000, dtype=np.uint8)
    parts = [b"head", memoryview(b"-mid-"), bytearray(b"x" * 3), np.arange(5, dtype=np.int32), big, b""]
    with t.producer() as prod:
        prod.push({"k": 1}, data=parts)
        prod.push({"k": 2}, data=(b"a", b"b"))
    t.mark_complete()
    got = consume_all(t)
    assert got[0][3] == b"".join(bytes(memoryview(p).cast("B")) for p in parts)
    assert got[1][3] == b"ab"


def test_no_data_and_no_metadata(any_fab):
    t = any_fab.create_topic("empty", partitions=1)
    with t.producer() as prod:
        prod.push()
        prod.push(None, data=None)
        prod.push(b"", data=b"")
        prod.push({}, data=b"z")
    t.mark_complete()
    with t.consumer() as cons:
        evs = list(cons)
    assert [ev.metadata for ev in evs] == [None, None, None, {}]
    assert [ev.metadata_bytes for ev in evs] == [b"", b"", b"", b"{}"]
    assert [bytes(ev.data) for ev in evs] == [b"", b"", b"", b"z"]


def test_raw_bytes_metadata_is_kept_verbatim(any_fab):
    t = any_fab.create_topic("raw", partitions=1)
    raw = [bytes(range(256)), b"\x00\x01", b"not json {"]
    with t.producer() as prod:
        for r in raw:
            prod.push(r)
    t.mark_complete()
    assert [m for _, _, m, _ in consume_all(t)] == raw


@pytest.mark.parametrize("close_fabric", [False, True])
def test_data_view_outlives_consumer_and_fabric(any_fab, close_fabric):
    t = any_fab.create_topic("views", partitions=2)
    blobs = [payload(i, 20_000 + i) for i in range(40)]
    with t.producer() as prod:
        for i, b in enumerate(blobs):
            prod.push({"i": i}, data=b)
    t.mark_complete()
    cons = t.consumer()
    views = {}
    for ev in cons:
        views[ev.metadata["i"]] = (ev.data, np.frombuffer(ev.data, dtype=np.uint8))
    cons.close()
    del cons, ev
    if close_fabric:
        any_fab.close()
    gc.collect()
    assert sorted(views) == list(range(40))
    for i, (mv, arr) in views.items():
        assert bytes(mv) == blobs[i]
        assert arr.tobytes() == blobs[i]


def test_view_stays_valid_while_consumer_moves_on(mem_fab):
    t = mem_fab.create_topic("moving", partitions=1, segment_bytes=4096, retention_bytes=8192)
    first = None
    with t.producer(batch_size=1) as prod:
        prod.push({"i": 0}, data=b"A" * 3000).result(timeout=30)
        with t.consumer(on_gap="earliest") as cons:
            first = cons.pull(timeout=30)
            keep = first.data
            # Enough later events to roll and drop the segment holding the first one.
            for i in range(1, 60):
                prod.push({"i": i}, data=bytes([i]) * 3000)
            prod.flush()
            assert t.describe()["partitions"][0]["start_offset"] > 0
            # A lagging consumer told to skip events dropped by retention (on_gap="earliest"):
            # what it gets is intact, in order, and what it skipped is counted.
            seen = []
            while not seen or seen[-1] != 59:
                ev = cons.pull(timeout=30)
                assert ev is not None
                assert bytes(ev.data) == bytes([ev.offset]) * 3000 and ev.metadata == {"i": ev.offset}
                seen.append(ev.offset)
            assert seen == sorted(set(seen)) and seen[0] >= 1
            assert len(seen) + cons.stats["skipped"] == 59
    assert bytes(keep) == b"A" * 3000
    assert bytes(first.data) == b"A" * 3000


def test_file_fabric_persists_topics_events_and_complete_flag(fab_dir):
    url = f"file://{fab_dir}"
    rng = np.random.default_rng(3)
    written = {}
    with mp.connect(url) as fab:
        a = fab.create_topic("alpha", partitions=3, retention_bytes=0, sync="batch")
        b = fab.create_topic("beta.v2", partitions=1)
        fab.create_topic("gamma_empty", partitions=2)
        with a.producer() as prod:
            for i in range(300):
                d = rng.integers(0, 256, int(rng.integers(0, 3000)), dtype=np.uint8).tobytes()
                written[("alpha", i)] = d
                prod.push({"i": i}, data=d, partition=i % 3)
        with b.producer() as prod:
            for i in range(50):
                written[("beta.v2", i)] = payload(i)
                prod.push({"i": i}, data=payload(i))
        a.mark_complete()
        before = {n: fab.topic(n).describe() for n in fab.topics()}
        alpha_before = consume_all(a)
    assert sorted(os.listdir(fab_dir / "topics")) == ["alpha", "beta.v2", "gamma_empty"]
    with mp.connect(url) as fab:
        assert fab.topics() == ["alpha", "beta.v2", "gamma_empty"]
        after = {n: fab.topic(n).describe() for n in fab.topics()}
        assert after == before
        a, b = fab.topic("alpha"), fab.topic("beta.v2")
        assert a.complete and not b.complete
        assert a.partitions == 3 and b.partitions == 1
        assert a.describe()["sync"] == "batch"
        got = consume_all(a)
        assert got == alpha_before
        assert sorted((p, o) for p, o, _, _ in got) == sorted((i % 3, i // 3) for i in range(300))
        for p, o, m, d in got:
            i = int(m[5:-1])
            assert (p, o) == (i % 3, i // 3) and d == written[("alpha", i)]
        # The incomplete topic accepts more events, continuing its offsets.
        with b.producer() as prod:
            assert prod.push({"i": 50}, data=payload(50)).result(timeout=30) == mp.EventId(0, 50)
        b.mark_complete()
        got_b = consume_all(b)
        assert [d for _, _, _, d in got_b] == [payload(i) for i in range(51)]
        assert [o for _, o, _, _ in got_b] == list(range(51))


def test_segment_rolling_keeps_all_events_in_order(fab_dir):
    url = f"file://{fab_dir}"
    n = 1500
    with mp.connect(url) as fab:
        t = fab.create_topic("roll", partitions=1, segment_bytes=64 * 1024)
        with t.producer(batch_size=8) as prod:
            for i in range(n):
                prod.push({"i": i}, data=payload(i, 1000 + i % 50))
        t.mark_complete()
        total = t.describe()["partitions"][0]["size_bytes"]
        assert total > 1_500_000
        segs = segment_files(fab_dir, "roll")
        # Segments roll near segment_bytes (at most one batch past it).
        assert len(segs) >= total // (128 * 1024)
        assert all(s.stat().st_size <= 128 * 1024 for s in segs)
        bases = [int(s.stem) for s in segs]
        assert bases[0] == 0 and bases == sorted(bases)
        got = consume_all(t)
    assert [o for _, o, _, _ in got] == list(range(n))
    assert [d for _, _, _, d in got] == [payload(i, 1000 + i % 50) for i in range(n)]
    with mp.connect(url) as fab:
        got2 = consume_all(fab.topic("roll"))
        assert got2 == got
        # Reading from an offset in the middle of a later segment.
        with fab.topic("roll").consumer(start=1234) as cons:
            evs = pull_n(cons, 10)
        assert [ev.offset for ev in evs] == list(range(1234, 1244))
        assert [bytes(ev.data) for ev in evs] == [payload(i, 1000 + i % 50) for i in range(1234, 1244)]


@pytest.mark.parametrize("scheme", ["memory", "file"])
def test_retention_by_bytes_drops_old_segments(tmp_path, scheme):
    url = "memory://" if scheme == "memory" else f"file://{tmp_path / 'fab'}"
    seg, keep = 16 * 1024, 64 * 1024
    n = 600
    with mp.connect(url) as fab:
        t = fab.create_topic("ret", partitions=1, segment_bytes=seg, retention_bytes=keep)
        with t.producer(batch_size=4) as prod:
            for i in range(n):
                prod.push({"i": i}, data=payload(i, 1000))
        t.mark_complete()
        # Retention runs as segments roll and in the background: wait until it has caught up with
        # the last appends (the active segment grew past the limit), so the start stays put below.
        wait_until(lambda: t.describe()["partitions"][0]["size_bytes"] <= keep, what="retention applied")
        p = t.describe()["partitions"][0]
        assert p["end_offset"] == n
        assert p["start_offset"] > 0
        assert p["size_bytes"] <= keep + seg + 8192
        if scheme == "file":
            segs = segment_files(tmp_path / "fab", "ret")
            assert int(segs[0].stem) == p["start_offset"]
            assert sum(s.stat().st_size for s in segs) == p["size_bytes"]
        got = consume_all(t)
        start = p["start_offset"]
        assert [o for _, o, _, _ in got] == list(range(start, n))
        assert [d for _, _, _, d in got] == [payload(i, 1000) for i in range(start, n)]
        # An explicit start before the retained range: an error by default (as Kafka's
        # OffsetOutOfRange), or the first retained event with the skip counted.
        with t.consumer(start=0) as cons:
            with pytest.raises(mp.OffsetOutOfRange, match="deleted by retention"):
                cons.pull(timeout=30)
        with t.consumer(start=0, on_gap="earliest") as cons:
            first = cons.pull(timeout=30).offset
            assert first == start
            assert cons.stats["skipped"] == first


@pytest.mark.parametrize("scheme", ["memory", "file"])
def test_retention_by_age_drops_old_segments(tmp_path, scheme):
    url = "memory://" if scheme == "memory" else f"file://{tmp_path / 'fab'}"
    with mp.connect(url) as fab:
        t = fab.create_topic("aged", partitions=1, segment_bytes=8192, retention_ms=300)
        with t.producer(batch_size=2) as prod:
            for i in range(100):
                prod.push({"i": i}, data=payload(i, 1000))
        # Housekeeping runs every 100 ms: eventually only the active segment is left.
        if scheme == "file":
            wait_until(lambda: len(segment_files(tmp_path / "fab", "aged")) == 1, what="old segments deleted")
            last_base = int(segment_files(tmp_path / "fab", "aged")[0].stem)
        else:
            last_base = None
        p = wait_until(lambda: (lambda q: q if q["start_offset"] > 0 and q["size_bytes"] <= 8192 + 4096 else None)(
            t.describe()["partitions"][0]), what="start offset advanced")
        assert p["end_offset"] == 100
        if last_base is not None:
            assert p["start_offset"] == last_base
        t.mark_complete()
        got = consume_all(t)
        assert [o for _, o, _, _ in got] == list(range(p["start_offset"], 100))
        assert [d for _, _, _, d in got] == [payload(i, 1000) for i in range(p["start_offset"], 100)]


def test_retention_settings_survive_reopen(fab_dir):
    url = f"file://{fab_dir}"
    with mp.connect(url) as fab:
        t = fab.create_topic("r", partitions=2, segment_bytes=8192, retention_bytes=32768, retention_ms=0)
        d = t.describe()
    with mp.connect(url) as fab:
        d2 = fab.topic("r").describe()
    for k in ("segment_bytes", "retention_bytes", "retention_ms", "sync", "max_event_bytes"):
        assert d2[k] == d[k]
    assert d2["segment_bytes"] == 8192 and d2["retention_bytes"] == 32768


def test_fabric_defaults_apply_to_new_topics(tmp_path):
    with mp.connect(f"file://{tmp_path / 'fab'}", segment_bytes=8192, retention_bytes=65536,
                    max_event_bytes=1000, sync="batch") as fab:
        d = fab.create_topic("t").describe()
        assert (d["segment_bytes"], d["retention_bytes"], d["max_event_bytes"], d["sync"]) == (8192, 65536, 1000, "batch")
        with fab.topic("t").producer() as prod:
            with pytest.raises(mp.EventTooLarge):
                prod.push(None, data=b"x" * 1001)
        assert end_offsets(fab.topic("t")) == [0]
