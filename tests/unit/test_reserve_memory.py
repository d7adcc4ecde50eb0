"""Pre-faulted memory for memory:// segments (mofka_py.reserve_memory).

Reserved 2 MiB pieces are moved (mremap) into segments just past their written
end; these tests check that no stored byte is ever replaced, across piece and
segment boundaries, when the reserve runs out mid-segment and is refilled, and
when retention recycles segments.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

import mofka_py as mp
from mofka_py import _core

MiB = 1 << 20


def produce_random(topic, sizes, seed: int, first: int = 0) -> list:
    """Push events of the given data sizes (random bytes); returns their sha256 digests in order."""
    rng = np.random.default_rng(seed)
    digests = []
    with topic.producer(batch_bytes=3 * MiB // 2, batch_size=64) as prod:
        for i, n in enumerate(sizes):
            data = rng.integers(0, 256, int(n), dtype=np.uint8)
            digests.append(hashlib.sha256(data.tobytes()).hexdigest())
            prod.push({"i": first + i}, data=data)
    return digests


def read_digests(topic, count: int) -> list:
    out = []
    with topic.consumer() as cons:
        for _ in range(count):
            ev = cons.pull(timeout=10)
            assert ev is not None, f"only {len(out)} of {count} events came back"
            assert ev.metadata["i"] == len(out)
            out.append(hashlib.sha256(bytes(ev.data)).hexdigest())
    return out


def test_reserved_memory_is_used_and_nothing_stored_is_replaced():
    before = _core.reserved_memory()
    held = mp.reserve_memory(9 * MiB)  # rounded up to whole 2 MiB pieces
    assert held >= before + 10 * MiB
    with mp.connect("memory://") as fab:
        topic = fab.create_topic("frames", segment_bytes=4 * MiB)
        rng = np.random.default_rng(7)
        sizes = rng.integers(1, 700 * 1024, 60)  # ~20 MiB: batches straddle pieces and segments
        want = produce_random(topic, sizes, seed=1)
        assert _core.reserved_memory() < held, "appends did not take memory from the reserve"
        assert read_digests(topic, len(sizes)) == want


def test_reserve_running_out_mid_segment_and_refilled():
    with mp.connect("memory://") as fab:
        topic = fab.create_topic("t", segment_bytes=32 * MiB)
        mp.reserve_memory(4 * MiB)
        sizes = [300 * 1024 + 8 * i for i in range(40)]  # ~12 MiB: the reserve runs dry inside the segment
        want = produce_random(topic, sizes, seed=2)
        mp.reserve_memory(6 * MiB)  # refilled: pieces go only past what is already written
        sizes2 = [250 * 1024 + 3 * i for i in range(40)]
        want += produce_random(topic, sizes2, seed=3, first=len(want))
        assert read_digests(topic, len(want)) == want


def test_reserve_with_retention_recycled_segments():
    mp.reserve_memory(8 * MiB)
    with mp.connect("memory://") as fab:
        topic = fab.create_topic("r", segment_bytes=2 * MiB, retention_bytes=6 * MiB)
        want = produce_random(topic, [200 * 1024] * 80, seed=4)  # ~16 MiB through a 6 MiB window
        start = topic.describe()["partitions"][0]["start_offset"]
        assert start > 0, "retention did not drop old segments"
        with topic.consumer(start="earliest") as cons:
            got = []
            while True:
                ev = cons.pull(timeout=2)
                if ev is None:
                    break
                got.append((ev.metadata["i"], hashlib.sha256(bytes(ev.data)).hexdigest()))
        assert got and got[-1][0] == 79
        assert all(d == want[i] for i, d in got)


@pytest.mark.parametrize("bad", [-1, True, 1.5, "1G"])
def test_reserve_memory_rejects_bad_sizes(bad):
    with pytest.raises(mp.InvalidArgument, match="non-negative integer"):
        mp.reserve_memory(bad)


def test_parse_size():
    from mofka_py.service import parse_size

    assert parse_size("2G") == 2 << 30
    assert parse_size("512M") == 512 << 20
    assert parse_size("64k") == 64 << 10
    assert parse_size("2GiB") == 2 << 30
    assert parse_size("1048576") == 1 << 20
    for bad in ("", "G", "1.5G", "-1", "12X"):
        with pytest.raises(mp.InvalidArgument, match="K, M, G or T"):
            parse_size(bad)
