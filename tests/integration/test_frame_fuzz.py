"""Fuzzing the service's frame and login decoders through the bindings, for a bounded time.

Any byte string must either decode or raise CorruptionError: never crash,
hang or raise anything else.
"""
from __future__ import annotations

import struct
import subprocess
import sys
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mofka_py as mp
from mofka_py import _core

from service_helpers import stored_batch_bytes

FRAME = struct.Struct("<IHHIIQQ")
MAGIC = 0x4659504D


def frame(mtype: int, body: bytes, version: int = 1) -> bytes:
    return FRAME.pack(MAGIC, version, mtype, 0, 0, 1, len(body)) + body


def s(x: str) -> bytes:
    return struct.pack("<I", len(x)) + x.encode()


def produce_frame() -> bytes:
    """A PRODUCE request carrying a real stored batch."""
    trailer = s("x") + struct.pack("<I", 0)
    return frame(13, stored_batch_bytes() + trailer + struct.pack("<I", len(trailer)))


VALID = [
    produce_frame(),
    frame(2, bytes(64)),                                                  # login
    frame(14, s("t") + struct.pack("<IQQq", 0, 5, 1 << 20, 100)),         # fetch
    frame(15, s("t") + struct.pack("<Qq", 7, 100)),                       # wait for a topic change
    frame(26, b""),                                                       # status
    frame(40, struct.pack("<H", 10)),                                     # control: list topics
    frame(40, struct.pack("<H", 11) + s("topic")),                        # control: describe
    frame(40, struct.pack("<H", 19) + s("g") + s("t") + struct.pack("<I", 1) + struct.pack("<IQ", 0, 9) + s("m")),  # commit
    frame(40, struct.pack("<H", 18) + s("g") + s("t") + s("m") + struct.pack("<II", 1, 3)),  # release
    frame(40, struct.pack("<H", 17) + s("g") + s("t") + s("m") + struct.pack("<qI", 10000, 1) + struct.pack("<IQ", 3, 70)),  # assignment
    frame(40, struct.pack("<H", 1) + s("g") + s("t")),                    # control: describe group
    frame(40, struct.pack("<H", 2) + s("g") + s("t") + struct.pack("<I", 1) + struct.pack("<IQ", 0, 9)),  # reset
    frame(40, struct.pack("<H", 4) + s("t") + struct.pack("<Iq", 0, 1_700_000_000_000_000)),  # offset for time
]


def check(data: bytes) -> None:
    try:
        _core.decode_frame(data)
    except mp.CorruptionError:
        pass


def test_valid_frames_decode():
    for f in VALID:
        assert _core.decode_frame(f) == struct.unpack_from("<H", f, 6)[0]


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_random_bytes_never_crash(data):
    check(data)


@settings(max_examples=3000, deadline=None)
@given(st.sampled_from(VALID), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8),
       st.integers(0, 64))
def test_mutated_frames_never_crash(base, flips, cut):
    data = bytearray(base)
    for pos, val in flips:
        data[pos % len(data)] = val
    check(bytes(data[: max(0, len(data) - cut)]))


def test_atheris_bounded_run(tmp_path):
    pytest.importorskip("atheris")
    target = tmp_path / "fuzz_frames.py"
    seeds = tmp_path / "corpus"
    seeds.mkdir()
    for i, f in enumerate(VALID):
        (seeds / f"seed{i}").write_bytes(f)
    target.write_text(textwrap.dedent("""
        import sys, atheris
        with atheris.instrument_imports():
            import mofka_py
            from mofka_py import _core

        def one(data):
            try:
                _core.decode_frame(data)
            except mofka_py.CorruptionError:
                pass

        atheris.Setup(sys.argv, one)
        atheris.Fuzz()
    """))
    out = subprocess.run([sys.executable, str(target), "-runs=200000", "-max_total_time=30", "-max_len=4096",
                          str(seeds)], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Done" in out.stderr or "DONE" in out.stderr.upper()
