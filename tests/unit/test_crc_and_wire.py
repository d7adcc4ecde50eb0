"""CRC32C (hardware vs portable vs a reference) and the stored record-batch format."""
from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mofka_py as mp
from mofka_py import _core

from _helpers import BATCH_MAGIC, parse_batches, payload, segment_files

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def crc32c_reference(data: bytes, crc: int = 0) -> int:
    """Bitwise CRC32C (Castagnoli, reflected 0x82F63B78)."""
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


KNOWN = [
    (b"", 0x00000000),
    (b"123456789", 0xE3069283),
    (b"a", 0xC1D04330),
    (bytes(32), 0x8A9136AA),          # RFC 3720 B.4: 32 bytes of zeros
    (b"\xff" * 32, 0x62A8AB43),       # RFC 3720 B.4: 32 bytes of 0xff
    (bytes(range(32)), 0x46DD794E),   # RFC 3720 B.4: incrementing
    (bytes(range(31, -1, -1)), 0x113FDB5C),  # RFC 3720 B.4: decrementing
]


@pytest.mark.parametrize("data,expected", KNOWN)
@pytest.mark.parametrize("portable", [False, True])
def test_crc32c_known_vectors(data, expected, portable):
    assert _core.crc32c(data, portable=portable) == expected
    assert crc32c_reference(data) == expected


def test_crc32c_check_value():
    assert _core.crc32c(b"123456789") == 0xE3069283
    assert isinstance(_core.crc32c_is_hardware(), bool)


@SETTINGS
@given(data=st.binary(min_size=0, max_size=5000), align=st.integers(0, 15), seed=st.integers(0, 2**32 - 1))
def test_crc32c_hardware_equals_portable(data, align, seed):
    # Place the data at every alignment inside a larger buffer.
    buf = bytearray(align) + bytearray(data) + bytearray(7)
    view = memoryview(buf)[align:align + len(data)]
    hw = _core.crc32c(view, seed)
    sw = _core.crc32c(view, seed, portable=True)
    assert hw == sw
    if len(data) <= 300:
        assert hw == crc32c_reference(data, seed)


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 255, 256, 257, 1023, 4096, 8191, 65537,
                               (1 << 20) + 3])
def test_crc32c_lengths_and_alignments(n):
    rng = np.random.default_rng(n)
    big = rng.integers(0, 256, n + 64, dtype=np.uint8).tobytes()
    for off in (0, 1, 3, 5, 8, 13):
        view = memoryview(big)[off:off + n]
        assert _core.crc32c(view) == _core.crc32c(view, portable=True)


@SETTINGS
@given(a=st.binary(max_size=2000), b=st.binary(max_size=2000), portable=st.booleans())
def test_crc32c_chaining(a, b, portable):
    whole = _core.crc32c(a + b, portable=portable)
    assert _core.crc32c(b, _core.crc32c(a, portable=portable), portable=portable) == whole


def test_crc32c_accepts_numpy_buffers():
    arr = np.arange(1000, dtype=np.float64).reshape(10, 100)
    assert _core.crc32c(arr) == _core.crc32c(arr.tobytes())
    assert _core.crc32c(arr, portable=True) == _core.crc32c(arr.tobytes())


def _kafka_murmur2(data: bytes) -> int:
    m, r = 0x5BD1E995, 24
    h = (0x9747B28C ^ len(data)) & 0xFFFFFFFF
    n4 = len(data) // 4
    for i in range(n4):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    tail = data[4 * n4:]
    if len(tail) >= 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if len(tail) >= 1:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


# Kafka's own murmur2 test vectors (signed 32-bit results).
KAFKA_MURMUR2 = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
]


@pytest.mark.parametrize("key,signed", KAFKA_MURMUR2)
def test_partition_for_key_is_kafka_murmur2(key, signed):
    assert _kafka_murmur2(key) == signed & 0xFFFFFFFF
    # partition = toPositive(murmur2(key)) % n; with n = 2**32 - 1 the modulo is the identity.
    assert _core.partition_for_key(key, 0xFFFFFFFF) == signed & 0x7FFFFFFF
    for n in (1, 2, 3, 7, 64, 1000):
        assert _core.partition_for_key(key, n) == (signed & 0x7FFFFFFF) % n


@SETTINGS
@given(key=st.binary(max_size=64), n=st.integers(1, 10000))
def test_partition_for_key_matches_reference(key, n):
    assert _core.partition_for_key(key, n) == (_kafka_murmur2(key) & 0x7FFFFFFF) % n


def test_partition_for_key_rejects_zero_partitions():
    with pytest.raises(mp.InvalidArgument):
        _core.partition_for_key(b"k", 0)


def test_stored_batches_follow_the_wire_format(tmp_path):
    """Segment bytes are record batches: magic, version, self-checked length, dense
    offsets, CRC32C over bytes [32, length), and the event tables/blocks as documented."""
    d = tmp_path / "fab"
    events = [(b'{"i":%d}' % i, payload(i)) for i in range(200)]
    with mp.connect(f"file://{d}") as fab:
        t = fab.create_topic("w", partitions=1)
        with t.producer(batch_size=17) as prod:
            for m, data in events:
                prod.push(m, data=data)
    segs = segment_files(d, "w")
    assert len(segs) == 1
    buf = segs[0].read_bytes()
    batches = parse_batches(buf)
    assert batches, "no batch found"
    assert sum(length for _, length, _ in batches) == len(buf), "segment holds only whole batches"
    next_offset = 0
    got = []
    for pos, length, h in batches:
        raw = buf[pos:pos + length]
        assert h["magic"] == BATCH_MAGIC and raw[:4] == b"MPYB"
        assert h["version"] == 1
        assert length % 8 == 0 and pos % 8 == 0
        assert h["length_check"] == _core.crc32c(struct.pack("<Q", length))
        assert h["crc"] == _core.crc32c(raw[32:]) == _core.crc32c(raw[32:], portable=True)
        assert h["base_offset"] == next_offset
        assert 1 <= h["count"] <= 17
        assert h["first_ts"] <= h["last_ts"]
        assert h["producer_id"] != 0
        next_offset += h["count"]
        # Decode the events: metaLen[count] (pad 8), dataLen[count], metadata (pad 64), data (each pad 8).
        n = h["count"]
        meta_lens = struct.unpack_from(f"<{n}I", raw, 96)
        data_table = (96 + 4 * n + 7) & ~7
        data_lens = struct.unpack_from(f"<{n}Q", raw, data_table)
        meta_start = data_table + 8 * n
        assert sum(meta_lens) == h["meta_bytes"]
        mpos = meta_start
        dpos = (meta_start + h["meta_bytes"] + 63) & ~63
        assert h["data_bytes"] == length - dpos
        for ml, dl in zip(meta_lens, data_lens):
            got.append((raw[mpos:mpos + ml], raw[dpos:dpos + dl]))
            mpos += ml
            dpos += (dl + 7) & ~7
        assert dpos == length
    assert next_offset == len(events)
    assert got == events
