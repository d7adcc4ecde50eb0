"""Property tests: whatever events go in come back out, in order, bit for bit."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mofka_py as mp

from _helpers import consume_all, end_offsets, pull_n, segment_files

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Data sizes around the interesting edges: empty, padding to 8, the 16 KiB inline/reference threshold.
data_sizes = st.one_of(st.integers(0, 80), st.sampled_from([8, 63, 64, 65, 16 * 1024 - 1, 16 * 1024, 16 * 1024 + 1,
                                                            40_000]))


@st.composite
def events(draw, max_events=40):
    n = draw(st.integers(0, max_events))
    out = []
    for _i in range(n):
        meta = draw(st.binary(max_size=100))
        size = draw(data_sizes)
        seed = draw(st.integers(0, 255))
        data = bytes((seed + 31 * k) & 0xFF for k in range(size)) if size < 2000 else \
            np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()
        split = draw(st.booleans())  # data as one buffer or as a list of pieces
        part = draw(st.one_of(st.none(), st.integers(0, 2)))
        out.append((meta, data, split, part))
    return out


def _produce(topic, evs, batch_size):
    with topic.producer(batch_size=batch_size) as prod:
        futs = []
        for meta, data, split, part in evs:
            d = [data[: len(data) // 3], memoryview(data)[len(data) // 3:]] if split else data
            futs.append(prod.push(meta, data=d, partition=part))
        return [f.result(timeout=60) for f in futs]


def _check(got, evs, ids):
    by_id = {tuple(i): (m, d) for i, (m, d, _, _) in zip(ids, evs)}
    assert len(by_id) == len(evs), "event ids are unique"
    assert len(got) == len(evs)
    for p, o, m, d in got:
        assert by_id[(p, o)] == (m, d)
    for p in range(3):
        offs = [o for q, o, _, _ in got if q == p]
        assert offs == list(range(len(offs))), "dense offsets, in order"
        pushed = [i for i, eid in enumerate(ids) if eid.partition == p]
        assert [ids[i].offset for i in pushed] == list(range(len(pushed))), "push order == offset order"


@SETTINGS
@given(evs=events(), batch_size=st.integers(1, 50))
def test_memory_round_trip(evs, batch_size):
    with mp.connect("memory://") as fab:
        t = fab.create_topic("p", partitions=3)
        ids = _produce(t, evs, batch_size)
        t.mark_complete()
        _check(consume_all(t), evs, ids)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(evs=events(max_events=60), batch_size=st.integers(1, 20), segment_bytes=st.sampled_from([4096, 8192, 1 << 20]))
def test_file_round_trip_across_reopen(evs, batch_size, segment_bytes):
    with tempfile.TemporaryDirectory() as tmp:
        url = f"file://{Path(tmp) / 'fab'}"
        with mp.connect(url) as fab:
            t = fab.create_topic("p", partitions=3, segment_bytes=segment_bytes)
            ids = _produce(t, evs, batch_size)
            t.mark_complete()
            first = consume_all(t)
        _check(first, evs, ids)
        with mp.connect(url) as fab:
            t = fab.topic("p")
            assert sum(end_offsets(t)) == len(evs)
            assert consume_all(t) == first
            for p in range(3):
                bases = [int(s.stem) for s in segment_files(Path(tmp) / "fab", "p", p)]
                assert bases == sorted(bases) and bases[0] == 0


@SETTINGS
@given(n=st.integers(1, 3000), width=st.integers(1, 64), batch_size=st.integers(1, 5000),
       max_events=st.integers(1, 4000))
def test_push_many_pull_batch_round_trip(n, width, batch_size, max_events):
    recs = np.random.default_rng(n * 131 + width).integers(0, 256, (n, width), dtype=np.uint8)
    with mp.connect("memory://") as fab:
        t = fab.create_topic("v", partitions=1)
        with t.producer(batch_size=batch_size) as prod:
            assert prod.push_many(recs).result(timeout=60) == mp.EventId(0, n - 1)
        t.mark_complete()
        chunks = []
        next_offset = 0
        with t.consumer() as cons:
            while (b := cons.pull_batch(max_events=max_events)) is not None:
                assert 1 <= len(b) <= max_events
                assert b.first_offset == next_offset
                next_offset = b.last_offset + 1
                chunks.append(np.frombuffer(b.metadata_view(), dtype=np.uint8).reshape(len(b), width))
        assert np.array_equal(np.concatenate(chunks), recs)


@SETTINGS
@given(data=st.binary(max_size=300), off=st.integers(0, 400), size=st.integers(0, 400))
def test_byte_range_selection_is_a_slice(data, off, size):
    with mp.connect("memory://") as fab:
        t = fab.create_topic("r", partitions=1)
        with t.producer() as prod:
            prod.push(b"m", data=data)
        t.mark_complete()
        with t.consumer(data=(off, size)) as cons:
            ev = cons.pull()
            assert bytes(ev.data) == data[off:off + size]
            assert ev.metadata_bytes == b"m"


@SETTINGS
@given(n=st.integers(1, 200), start=st.integers(0, 250), batch_size=st.integers(1, 30))
def test_start_offset_property(n, start, batch_size):
    with mp.connect("memory://") as fab:
        t = fab.create_topic("s", partitions=1)
        with t.producer(batch_size=batch_size) as prod:
            for i in range(n):
                prod.push(b"%d" % i)
        with t.consumer(start=start) as cons:
            want = max(0, n - start)
            evs = pull_n(cons, want)
            assert [ev.offset for ev in evs] == list(range(start, n))
            assert [ev.metadata_bytes for ev in evs] == [b"%d" % i for i in range(start, n)]
            assert cons.pull(timeout=0) is None


@SETTINGS
@given(keys=st.lists(st.one_of(st.text(max_size=20), st.binary(max_size=20)), min_size=1, max_size=30),
       partitions=st.integers(1, 16))
def test_key_placement_property(keys, partitions):
    with mp.connect("memory://") as fab:
        t = fab.create_topic("k", partitions=partitions)
        with t.producer() as prod:
            for k in keys:
                kb = k.encode() if isinstance(k, str) else k
                assert prod.push(None, key=k).result(timeout=30).partition == \
                    mp._core.partition_for_key(kb, partitions)
