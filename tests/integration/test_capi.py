"""The C API (mofka_py/mofka_py.h, libmofka_py_c) driven from Python through cffi in ABI mode.

Every C function is called on its success path and on its error paths: NULL pointers, handles
that were released, forged or of another kind, closed objects and structures whose struct_size
is wrong all give an error code and a message, never a crash, and write nothing.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mofka_py as mp
from mofka_py import capi

from service_helpers import Service, free_port

cffi = pytest.importorskip("cffi")

HANDLE_TYPES = ["mofka_py_fabric_t", "mofka_py_topic_t", "mofka_py_producer_t", "mofka_py_future_t",
                "mofka_py_consumer_t", "mofka_py_mpi_fabric_t"]


@pytest.fixture(scope="module")
def c():
    ffi, lib = capi.load()
    return ffi, lib


def ok(c, rc):
    ffi, lib = c
    assert rc == lib.MOFKA_PY_OK, f"{ffi.string(lib.mofka_py_error_name(rc)).decode()}: " \
                                  f"{ffi.string(lib.mofka_py_last_error()).decode()}"


def err(c, rc, code, match=None):
    """Assert a call failed with @code and left a message (matching @match) for this thread."""
    ffi, lib = c
    name = ffi.string(lib.mofka_py_error_name(code)).decode()
    msg = ffi.string(lib.mofka_py_last_error()).decode()
    assert rc == code, f"expected {name}, got {ffi.string(lib.mofka_py_error_name(rc)).decode()} ({msg})"
    assert lib.mofka_py_last_status() == code
    assert msg, "an error must come with a message"
    if match:
        assert re.search(match, msg), msg
    return msg


class Api:
    """Small conveniences over the raw C calls (each still checked)."""

    def __init__(self, c):
        self.c = c
        self.ffi, self.lib = c

    def options(self, ctype, **fields):
        """A ``ctype`` struct filled by its ``*_init`` function, then ``fields`` (strings as C strings).

        Returns it with the C strings, which must outlive the call that reads it."""
        ffi, lib = self.c
        o = ffi.new(ctype + "*")
        ok(self.c, getattr(lib, ctype[:-2] + "_init")(o))  # mofka_py_X_t -> mofka_py_X_init
        keep = []
        for k, v in fields.items():
            if isinstance(v, str):
                keep.append(ffi.new("char[]", v.encode()))
                v = keep[-1]
            setattr(o, k, v)
        return o, keep

    def connect(self, url, **opts):
        ffi, lib = self.c
        out = ffi.new("mofka_py_fabric_t*")
        if opts:
            o, _keep = self.options("mofka_py_connect_options_t", **opts)
            ok(self.c, lib.mofka_py_connect_ex(url.encode(), o, out))
        else:
            ok(self.c, lib.mofka_py_connect(url.encode(), out))
        return out[0]

    def create(self, fab, name, **cfg):
        ffi, lib = self.c
        conf = self.options("mofka_py_topic_config_t", **cfg)[0] if cfg else ffi.NULL
        ok(self.c, lib.mofka_py_topic_create(fab, name.encode(), conf))
        out = ffi.new("mofka_py_topic_t*")
        ok(self.c, lib.mofka_py_topic_open(fab, name.encode(), out))
        return out[0]

    def producer(self, topic, **opts):
        ffi, lib = self.c
        o = self.options("mofka_py_producer_options_t", **opts)[0] if opts else ffi.NULL
        out = ffi.new("mofka_py_producer_t*")
        ok(self.c, lib.mofka_py_producer_create(topic, o, out))
        return out[0]

    def consumer(self, topic, group=None, start=None, **opts):
        ffi, lib = self.c
        if group:
            opts["group"] = group
        opts["start"] = lib.MOFKA_PY_START_EARLIEST if start is None else start
        o, _keep = self.options("mofka_py_consumer_options_t", **opts)
        out = ffi.new("mofka_py_consumer_t*")
        ok(self.c, lib.mofka_py_consumer_create(topic, o, out))
        return out[0]

    def event(self):
        ev = self.ffi.new("mofka_py_event_t*")
        ev.struct_size = self.ffi.sizeof("mofka_py_event_t")
        return ev

    def pull(self, cons, timeout_ms=5000):
        """(metadata bytes, data bytes, partition, offset) of the next event, releasing it; None at the end."""
        ffi, lib = self.c
        ev = self.event()
        rc = lib.mofka_py_consumer_pull(cons, timeout_ms, ev)
        if rc == lib.MOFKA_PY_END:
            return None
        ok(self.c, rc)
        out = (ffi.unpack(ev.metadata, ev.metadata_size), bytes(ffi.buffer(ev.data, ev.data_size)),
               ev.partition, ev.offset)
        ok(self.c, lib.mofka_py_event_release(ev))
        return out

    def release(self, *handles):
        """Release handles of any kind, in the order given (each release checked)."""
        for h in handles:
            kind = self.ffi.typeof(h).cname.split("mofka_py_")[1].split("_s")[0]  # "struct mofka_py_topic_s *"
            ok(self.c, getattr(self.lib, f"mofka_py_{kind}_release")(h))

    def topics(self, fab):
        ffi, lib = self.c
        needed = ffi.new("size_t*")
        buf = ffi.new("char[]", 4096)
        ok(self.c, lib.mofka_py_fabric_topics(fab, buf, 4096, needed))
        return ffi.string(buf).decode().splitlines()


@pytest.fixture
def api(c):
    return Api(c)


# ---------------------------------------------------------------- versions, names, symbols

def test_versions_and_error_names_match_python(c):
    ffi, lib = c
    assert lib.mofka_py_abi_version() == lib.MOFKA_PY_C_ABI_VERSION == 1
    nums = ffi.new("int[3]")
    version = ffi.string(lib.mofka_py_version(nums, nums + 1, nums + 2)).decode()
    assert version == mp.__version__
    assert version.startswith(f"{nums[0]}.{nums[1]}.{nums[2]}")
    assert ffi.string(lib.mofka_py_version(ffi.NULL, ffi.NULL, ffi.NULL)).decode() == version
    assert ffi.string(lib.mofka_py_error_name(lib.MOFKA_PY_OK)) == b"OK"
    assert ffi.string(lib.mofka_py_error_name(lib.MOFKA_PY_END)) == b"End"
    assert ffi.string(lib.mofka_py_error_name(99)) == b"Unknown"
    assert ffi.string(lib.mofka_py_error_name(-3)) == b"Unknown"
    # Every code names the Python class of the same error, and the header's names agree.
    header_codes = {k: getattr(lib, k) for k in dir(lib) if k.startswith("MOFKA_PY_ERR_")}
    assert len(header_codes) == 20 and sorted(header_codes.values()) == list(range(1, 21))
    for macro, code in header_codes.items():
        name = ffi.string(lib.mofka_py_error_name(code)).decode()
        cls = getattr(mp, name)
        assert issubclass(cls, mp.Error), name
        words = macro[len("MOFKA_PY_ERR_"):].lower().split("_")
        assert "".join(words) in name.lower().replace("error", "") + ("generic" if name == "Error" else ""), \
            (macro, name)


def test_exports_only_versioned_c_symbols(c):
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm (binutils) is not installed")
    out = subprocess.run([nm, "-D", "--defined-only", str(capi.library_path())], capture_output=True, text=True,
                         check=True).stdout
    exported = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == "T":
            sym, _, version = parts[2].partition("@@")
            exported[sym] = version
    declared = set(re.findall(r"\b(mofka_py_\w+)\s*\(", capi.cdef()))
    assert declared, "no functions found in the header"
    assert declared == set(exported), (declared ^ set(exported))
    assert set(exported.values()) == {"MOFKA_PY_C_1"}


UNLOAD_SCRIPT = r"""
import gc, sys, time
import numpy as np
from mofka_py import capi

ffi, lib = capi.load()
fab, topic, prod = ffi.new("mofka_py_fabric_t*"), ffi.new("mofka_py_topic_t*"), ffi.new("mofka_py_producer_t*")
assert lib.mofka_py_connect(b"memory://", fab) == 0
assert lib.mofka_py_topic_create(fab[0], b"t", ffi.NULL) == 0
assert lib.mofka_py_topic_open(fab[0], b"t", topic) == 0
assert lib.mofka_py_producer_create(topic[0], ffi.NULL, prod) == 0
data = np.ones(1 << 20, dtype=np.uint8)
for i in range(64):   # 64 MiB: segments taken from the prefault reservoir, whose thread refills it
    assert lib.mofka_py_producer_push(prod[0], b"{}", 2, ffi.from_buffer(data), data.nbytes, -1, ffi.NULL) == 0
assert lib.mofka_py_producer_close(prod[0], -1) == 0
for release, h in ((lib.mofka_py_producer_release, prod), (lib.mofka_py_topic_release, topic)):
    assert release(h[0]) == 0
assert lib.mofka_py_fabric_close(fab[0]) == 0 and lib.mofka_py_fabric_release(fab[0]) == 0
del ffi, lib, fab, topic, prod
gc.collect()     # cffi dlcloses the library with its last reference
time.sleep(1.0)  # the library's background threads wake up meanwhile
print("survived")
"""


def test_the_library_stays_mapped_after_cffi_lets_it_go(tmp_path):
    """cffi dlcloses a library it opened once its last reference goes. libmofka_py_c runs process-wide
    threads (the memory log's prefault reservoir refills in the background), so it is linked
    NODELETE: unmapped under them, the next wake-up would jump into nothing (a pytest run crashed so)."""
    script = tmp_path / "unload.py"
    script.write_text(UNLOAD_SCRIPT)
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "survived" in r.stdout, (r.returncode, r.stdout, r.stderr[-2000:])
    readelf = shutil.which("readelf")
    if readelf is not None:
        dyn = subprocess.run([readelf, "-d", str(capi.library_path())], capture_output=True, text=True).stdout
        assert "NODELETE" in dyn, dyn


def test_pkg_config_and_cli_flags(tmp_path):
    pc = capi.pkg_config_dir() / "mofka_py_c.pc"
    assert pc.exists()
    if shutil.which("pkg-config"):
        env = dict(os.environ, PKG_CONFIG_PATH=str(capi.pkg_config_dir()))
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "mofka_py_c"], env=env, capture_output=True,
                               text=True, check=True).stdout
        words = flags.split()
        incs = [Path(w[2:]).resolve() for w in words if w.startswith("-I")]
        libs = [Path(w[2:]).resolve() for w in words if w.startswith("-L")]
        assert incs == [capi.include_dir().resolve()] and libs == [capi.library_dir().resolve()], flags
        assert "-lmofka_py_c" in words
    cli = subprocess.run([sys.executable, "-m", "mofka_py.cli", "capi", "--cflags", "--libs"], capture_output=True,
                         text=True)
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.split() == (capi.compile_flags() + " " + capi.link_flags()).split()


# ---------------------------------------------------------------- round trips

@pytest.mark.parametrize("scheme", ["memory", "file"])
def test_produce_and_consume_every_way(c, api, tmp_path, scheme):
    ffi, lib = c
    url = "memory://" if scheme == "memory" else f"file://{tmp_path / 'fab'}"
    fab = api.connect(url)
    topic = api.create(fab, "field", partitions=3)
    n = ffi.new("uint32_t*")
    ok(c, lib.mofka_py_topic_partitions(topic, n))
    assert n[0] == 3
    exists = ffi.new("int*")
    ok(c, lib.mofka_py_topic_exists(fab, b"field", exists))
    assert exists[0] == 1
    ok(c, lib.mofka_py_topic_exists(fab, b"nope", exists))
    assert exists[0] == 0
    assert api.topics(fab) == ["field"]

    prod = api.producer(topic, batch_size=7, linger_ms=-1.0)
    big = np.arange(300_000, dtype=np.float64)  # 2.4 MB: referenced, not copied, until stored
    small = b"s" * 100
    fut = ffi.new("mofka_py_future_t*")
    expected = []
    for i in range(20):
        meta = f'{{"i": {i}}}'.encode()
        data = big.tobytes() if i % 5 == 0 else small + bytes([i])
        if i % 5 == 0:
            ok(c, lib.mofka_py_producer_push(prod, meta, len(meta), ffi.from_buffer(big), big.nbytes, 1, fut))
        else:
            ok(c, lib.mofka_py_producer_push(prod, meta, len(meta), data, len(data), i % 3, fut))
        part, off = ffi.new("uint32_t*"), ffi.new("uint64_t*")
        ok(c, lib.mofka_py_future_wait(fut[0], -1, part, off))
        done = ffi.new("int*")
        ok(c, lib.mofka_py_future_test(fut[0], done))
        assert done[0] == 1
        ok(c, lib.mofka_py_future_release(fut[0]))
        expected.append((meta, data, part[0], off[0]))
    # Pushes without a future, metadata only, then a flush.
    for i in range(20, 30):
        meta = f'{{"i": {i}}}'.encode()
        ok(c, lib.mofka_py_producer_push(prod, meta, len(meta), ffi.NULL, 0, 2, ffi.NULL))
        expected.append((meta, b"", 2, None))
    ok(c, lib.mofka_py_producer_flush(prod, -1))
    end = ffi.new("uint64_t*")
    ok(c, lib.mofka_py_topic_end_offset(topic, 2, end))
    assert end[0] == sum(1 for e in expected if e[2] == 2)
    ok(c, lib.mofka_py_producer_close(prod, -1))
    ok(c, lib.mofka_py_producer_release(prod))
    ok(c, lib.mofka_py_topic_mark_complete(topic))

    cons = api.consumer(topic)
    got = []
    while True:
        e = api.pull(cons)
        if e is None:
            break
        got.append(e)
    by_meta = {g[0]: g for g in got}
    assert len(got) == len(expected) == len(by_meta)
    for meta, data, part, off in expected:
        g = by_meta[meta]
        assert g[1] == data and g[2] == part and (off is None or g[3] == off)
    # The end is sticky and not an error.
    ev = api.event()
    assert lib.mofka_py_consumer_pull(cons, 0, ev) == lib.MOFKA_PY_END
    assert lib.mofka_py_last_status() == lib.MOFKA_PY_END
    ok(c, lib.mofka_py_consumer_close(cons))
    ok(c, lib.mofka_py_consumer_release(cons))
    ok(c, lib.mofka_py_topic_release(topic))
    ok(c, lib.mofka_py_fabric_delete_topic(fab, b"field", 0))
    assert api.topics(fab) == []
    ok(c, lib.mofka_py_fabric_close(fab))
    ok(c, lib.mofka_py_fabric_release(fab))


def test_c_events_read_by_python_and_python_events_by_c(c, api, tmp_path):
    ffi, lib = c
    url = f"file://{tmp_path / 'fab'}"
    fab = api.connect(url)
    topic = api.create(fab, "mixed", partitions=2)
    prod = api.producer(topic)
    field = np.linspace(0.0, 1.0, 8192)  # 64 KiB: zero copy
    meta = b'{"step": 1, "n": 8192}'
    ok(c, lib.mofka_py_producer_push(prod, meta, len(meta), ffi.from_buffer(field), field.nbytes, 0, ffi.NULL))
    ok(c, lib.mofka_py_producer_release(prod))
    ok(c, lib.mofka_py_fabric_release(fab))  # closes the file fabric: Python may open it now

    with mp.connect(url) as pyfab:
        t = pyfab.topic("mixed")
        with t.consumer(start="earliest") as pc:
            ev = pc.pull(timeout=5)
            assert ev.metadata == {"step": 1, "n": 8192}
            np.testing.assert_array_equal(np.frombuffer(ev.data, dtype=np.float64), field)
        with t.producer() as pp:
            pp.push({"from": "python"}, np.full(10, 7, dtype=np.int32), partition=1)

    fab = api.connect(url)
    topic_h = ffi.new("mofka_py_topic_t*")
    ok(c, lib.mofka_py_topic_open(fab, b"mixed", topic_h))
    parts = ffi.new("uint32_t[1]", [1])
    cons = api.consumer(topic_h[0], partitions=parts, num_partitions=1)
    meta, data, part, off = api.pull(cons)
    assert b'"from"' in meta and part == 1 and off == 0
    assert np.array_equal(np.frombuffer(data, dtype=np.int32), np.full(10, 7, dtype=np.int32))
    api.release(cons, topic_h[0], fab)


def test_push_ex_pieces_key_and_release_callback(c, api):
    ffi, lib = c
    fab = api.connect("memory://")
    topic = api.create(fab, "t", partitions=4)
    prod = api.producer(topic)
    released = []

    @ffi.callback("void(void*)")
    def on_release(ctx):
        released.append(int(ffi.cast("intptr_t", ctx)))

    a = np.arange(10_000, dtype=np.int64)  # 80 KB, referenced
    b = b"tail-bytes"
    pieces = ffi.new("mofka_py_buffer_t[2]")
    pieces[0].data, pieces[0].size = ffi.from_buffer(a), a.nbytes
    pieces[1].data, pieces[1].size = ffi.new("char[]", b), len(b)
    keep = pieces[1].data  # noqa: F841 - keeps the piece alive
    fut = ffi.new("mofka_py_future_t*")
    key = b"sensor-7"
    for i in range(3):
        ok(c, lib.mofka_py_producer_push_ex(prod, b"{}", 2, pieces, 2, -1, key, len(key), 0, on_release,
                                            ffi.cast("void*", 100 + i), fut if i == 0 else ffi.NULL))
    part = ffi.new("uint32_t*")
    ok(c, lib.mofka_py_future_wait(fut[0], -1, part, ffi.NULL))
    ok(c, lib.mofka_py_future_release(fut[0]))
    ok(c, lib.mofka_py_producer_flush(prod, -1))
    # Once stored, the producer holds no reference: each callback ran exactly once.
    assert sorted(released) == [100, 101, 102]
    # The key decides the partition, as Kafka's murmur2 partitioner (and Python's) does.
    assert part[0] == mp._core.partition_for_key(key, 4)
    # Small pieces only (copied at push): the callback runs before push_ex returns.
    ok(c, lib.mofka_py_producer_push_ex(prod, b"{}", 2, pieces + 1, 1, 0, ffi.NULL, 0, 0, on_release,
                                        ffi.cast("void*", 7), ffi.NULL))
    assert released[-1] == 7
    # A failed push never calls it: a closed producer refuses.
    ok(c, lib.mofka_py_producer_close(prod, -1))
    err(c, lib.mofka_py_producer_push_ex(prod, b"{}", 2, pieces, 2, -1, ffi.NULL, 0, 0, on_release,
                                         ffi.cast("void*", 9), ffi.NULL), lib.MOFKA_PY_ERR_CLOSED, "closed")
    assert 9 not in released
    err(c, lib.mofka_py_producer_push_ex(prod, b"{}", 2, pieces, 2, -1, ffi.NULL, 0, 4, ffi.NULL, ffi.NULL,
                                         ffi.NULL), lib.MOFKA_PY_ERR_INVALID_ARGUMENT, "flags")
    ok(c, lib.mofka_py_producer_release(prod))
    cons = api.consumer(topic)
    seen = []
    for _ in range(4):
        meta, data, p, _off = api.pull(cons)
        seen.append((p, len(data)))
    assert sorted(seen) == sorted([(part[0], a.nbytes + len(b))] * 3 + [(0, len(b))])
    api.release(cons, topic, fab)


def test_group_commit_and_resume(c, api, tmp_path):
    ffi, lib = c
    url = f"file://{tmp_path / 'fab'}"
    fab = api.connect(url)
    topic = api.create(fab, "jobs")
    prod = api.producer(topic)
    for i in range(10):
        m = f'{{"job": {i}}}'.encode()
        ok(c, lib.mofka_py_producer_push(prod, m, len(m), ffi.NULL, 0, -1, ffi.NULL))
    ok(c, lib.mofka_py_producer_release(prod))
    cons = api.consumer(topic, group="workers", start=lib.MOFKA_PY_START_COMMITTED, auto_commit_ms=-1)
    ev = api.event()
    for i in range(4):
        ok(c, lib.mofka_py_consumer_pull(cons, 5000, ev))
        assert ev.offset == i
        if i == 3:
            ok(c, lib.mofka_py_consumer_ack(cons, ev))
        ok(c, lib.mofka_py_event_release(ev))
        ok(c, lib.mofka_py_event_release(ev))  # twice is allowed
        assert ev.internal == ffi.NULL and ev.metadata == ffi.NULL
    ok(c, lib.mofka_py_consumer_commit(cons))
    ok(c, lib.mofka_py_consumer_release(cons))
    ok(c, lib.mofka_py_topic_release(topic))
    ok(c, lib.mofka_py_fabric_release(fab))

    fab = api.connect(url)
    t = ffi.new("mofka_py_topic_t*")
    ok(c, lib.mofka_py_topic_open(fab, b"jobs", t))
    cons = api.consumer(t[0], group="workers", start=lib.MOFKA_PY_START_COMMITTED)
    assert api.pull(cons)[3] == 4  # resumes after what the group committed, never re-reads it
    # A consumer from an explicit offset, metadata only.
    c2 = api.consumer(t[0], start=lib.MOFKA_PY_START_OFFSET, start_offset=8, data=lib.MOFKA_PY_DATA_NONE)
    meta, data, _p, off = api.pull(c2)
    assert off == 8 and meta == b'{"job": 8}' and data == b""
    api.release(c2, cons, t[0], fab)


# ---------------------------------------------------------------- error paths

def _live_objects(c, api):
    ffi, lib = c
    fab = api.connect("memory://")
    topic = api.create(fab, "t")
    prod = api.producer(topic)
    fut = ffi.new("mofka_py_future_t*")
    ok(c, lib.mofka_py_producer_push(prod, b"{}", 2, ffi.NULL, 0, -1, fut))
    cons = api.consumer(topic)
    return {"mofka_py_fabric_t": fab, "mofka_py_topic_t": topic, "mofka_py_producer_t": prod,
            "mofka_py_future_t": fut[0], "mofka_py_consumer_t": cons}


def _handle_calls(c):
    """One call per function taking a handle: (function name, handle type, call(handle))."""
    ffi, lib = c
    u32, u64, i32 = ffi.new("uint32_t*"), ffi.new("uint64_t*"), ffi.new("int*")
    ev = ffi.new("mofka_py_event_t*")
    ev.struct_size = ffi.sizeof("mofka_py_event_t")
    buf = ffi.new("char[64]")
    return [
        ("fabric_topics", "mofka_py_fabric_t", lambda h: lib.mofka_py_fabric_topics(h, buf, 64, ffi.NULL)),
        ("fabric_delete_topic", "mofka_py_fabric_t", lambda h: lib.mofka_py_fabric_delete_topic(h, b"t", 0)),
        ("fabric_close", "mofka_py_fabric_t", lambda h: lib.mofka_py_fabric_close(h)),
        ("fabric_release", "mofka_py_fabric_t", lambda h: lib.mofka_py_fabric_release(h)),
        ("topic_create", "mofka_py_fabric_t", lambda h: lib.mofka_py_topic_create(h, b"x", ffi.NULL)),
        ("topic_open", "mofka_py_fabric_t",
         lambda h: lib.mofka_py_topic_open(h, b"t", ffi.new("mofka_py_topic_t*"))),
        ("topic_exists", "mofka_py_fabric_t", lambda h: lib.mofka_py_topic_exists(h, b"t", i32)),
        ("topic_partitions", "mofka_py_topic_t", lambda h: lib.mofka_py_topic_partitions(h, u32)),
        ("topic_end_offset", "mofka_py_topic_t", lambda h: lib.mofka_py_topic_end_offset(h, 0, u64)),
        ("topic_mark_complete", "mofka_py_topic_t", lambda h: lib.mofka_py_topic_mark_complete(h)),
        ("topic_release", "mofka_py_topic_t", lambda h: lib.mofka_py_topic_release(h)),
        ("producer_create", "mofka_py_topic_t",
         lambda h: lib.mofka_py_producer_create(h, ffi.NULL, ffi.new("mofka_py_producer_t*"))),
        ("consumer_create", "mofka_py_topic_t",
         lambda h: lib.mofka_py_consumer_create(h, ffi.NULL, ffi.new("mofka_py_consumer_t*"))),
        ("producer_push", "mofka_py_producer_t",
         lambda h: lib.mofka_py_producer_push(h, b"{}", 2, ffi.NULL, 0, -1, ffi.NULL)),
        ("producer_push_ex", "mofka_py_producer_t",
         lambda h: lib.mofka_py_producer_push_ex(h, b"{}", 2, ffi.NULL, 0, -1, ffi.NULL, 0, 0, ffi.NULL, ffi.NULL,
                                                 ffi.NULL)),
        ("producer_flush", "mofka_py_producer_t", lambda h: lib.mofka_py_producer_flush(h, 0)),
        ("producer_close", "mofka_py_producer_t", lambda h: lib.mofka_py_producer_close(h, 0)),
        ("producer_release", "mofka_py_producer_t", lambda h: lib.mofka_py_producer_release(h)),
        ("future_test", "mofka_py_future_t", lambda h: lib.mofka_py_future_test(h, i32)),
        ("future_wait", "mofka_py_future_t", lambda h: lib.mofka_py_future_wait(h, 0, u32, u64)),
        ("future_release", "mofka_py_future_t", lambda h: lib.mofka_py_future_release(h)),
        ("consumer_pull", "mofka_py_consumer_t", lambda h: lib.mofka_py_consumer_pull(h, 0, ev)),
        ("consumer_ack", "mofka_py_consumer_t", lambda h: lib.mofka_py_consumer_ack(h, ev)),
        ("consumer_commit", "mofka_py_consumer_t", lambda h: lib.mofka_py_consumer_commit(h)),
        ("consumer_close", "mofka_py_consumer_t", lambda h: lib.mofka_py_consumer_close(h)),
        ("consumer_release", "mofka_py_consumer_t", lambda h: lib.mofka_py_consumer_release(h)),
        ("mpi_fabric_is_server", "mofka_py_mpi_fabric_t", lambda h: lib.mofka_py_mpi_fabric_is_server(h, i32)),
        ("mpi_fabric_is_client", "mofka_py_mpi_fabric_t", lambda h: lib.mofka_py_mpi_fabric_is_client(h, i32)),
        ("mpi_fabric_fabric", "mofka_py_mpi_fabric_t",
         lambda h: lib.mofka_py_mpi_fabric_fabric(h, ffi.new("mofka_py_fabric_t*"))),
        ("mpi_fabric_close", "mofka_py_mpi_fabric_t", lambda h: lib.mofka_py_mpi_fabric_close(h)),
        ("mpi_fabric_release", "mofka_py_mpi_fabric_t", lambda h: lib.mofka_py_mpi_fabric_release(h)),
    ]


def test_every_handle_function_refuses_null_forged_released_and_wrong_kind(c, api):
    ffi, lib = c
    live = _live_objects(c, api)
    mpi_built = lib.mofka_py_mpi_fabric_is_server(ffi.NULL, ffi.new("int*")) != lib.MOFKA_PY_ERR_GENERIC
    # A released handle of each kind (its slot may be reused later: the generation still differs).
    released = {}
    fab2 = api.connect("memory://")
    topic2 = api.create(fab2, "t2")
    prod2 = api.producer(topic2)
    fut2 = ffi.new("mofka_py_future_t*")
    ok(c, lib.mofka_py_producer_push(prod2, b"{}", 2, ffi.NULL, 0, -1, fut2))
    cons2 = api.consumer(topic2)
    ok(c, lib.mofka_py_future_release(fut2[0]))
    ok(c, lib.mofka_py_consumer_release(cons2))
    ok(c, lib.mofka_py_producer_release(prod2))
    ok(c, lib.mofka_py_topic_release(topic2))
    ok(c, lib.mofka_py_fabric_release(fab2))
    released.update({"mofka_py_fabric_t": fab2, "mofka_py_topic_t": topic2, "mofka_py_producer_t": prod2,
                     "mofka_py_future_t": fut2[0], "mofka_py_consumer_t": cons2})
    calls = _handle_calls(c)
    assert {n for n, _, _ in calls} | {"abi_version", "version", "error_name", "last_error", "last_status",
                                       "connect", "connect_ex", "connect_options_init", "topic_config_init",
                                       "producer_options_init", "consumer_options_init", "event_release",
                                       "mpi_options_init", "mpi_fabric_create_f", "mpi_init", "mpi_finalize"} \
        == {n[len("mofka_py_"):] for n in re.findall(r"\b(mofka_py_\w+)\s*\(", capi.cdef())}
    for name, htype, call in calls:
        if htype == "mofka_py_mpi_fabric_t" and not mpi_built:
            err(c, call(ffi.NULL), lib.MOFKA_PY_ERR_GENERIC, "without MPI")
            continue
        bad = [("NULL", ffi.NULL), ("forged", ffi.cast(htype, 0x5A5A5A51)), ("forged", ffi.cast(htype, 1 << 40))]
        if htype in released:
            bad.append(("released", ffi.cast(htype, released[htype])))
        for other_type, other in live.items():
            if other_type != htype:
                bad.append((f"a {other_type}", ffi.cast(htype, other)))
        for what, h in bad:
            msg = err(c, call(h), lib.MOFKA_PY_ERR_INVALID_ARGUMENT)
            assert ("NULL" in msg) if what == "NULL" else ("not a live" in msg), (name, what, msg)
    # The live objects still work after all that.
    ok(c, lib.mofka_py_future_wait(live["mofka_py_future_t"], -1, ffi.NULL, ffi.NULL))
    assert api.pull(live["mofka_py_consumer_t"])[0] == b"{}"
    for t in ("future", "consumer", "producer", "topic", "fabric"):
        ok(c, getattr(lib, f"mofka_py_{t}_release")(live[f"mofka_py_{t}_t"]))


def test_null_pointers_and_bad_values(c, api):
    ffi, lib = c
    E = lib.MOFKA_PY_ERR_INVALID_ARGUMENT
    out_f = ffi.new("mofka_py_fabric_t*")
    err(c, lib.mofka_py_connect(ffi.NULL, out_f), E, "url is NULL")
    err(c, lib.mofka_py_connect(b"memory://", ffi.NULL), E, "fabric .*NULL")
    err(c, lib.mofka_py_connect(b"bogus://x", out_f), E)
    err(c, lib.mofka_py_connect_ex(ffi.NULL, ffi.NULL, out_f), E, "url is NULL")
    for init in ("connect_options_init", "topic_config_init", "producer_options_init", "consumer_options_init",
                 "mpi_options_init"):
        err(c, getattr(lib, f"mofka_py_{init}")(ffi.NULL), E, "NULL")
    fab = api.connect("memory://")
    topic = api.create(fab, "t")
    err(c, lib.mofka_py_topic_create(fab, ffi.NULL, ffi.NULL), E, "name is NULL")
    err(c, lib.mofka_py_topic_open(fab, b"t", ffi.NULL), E, "NULL")
    err(c, lib.mofka_py_topic_open(fab, ffi.NULL, ffi.new("mofka_py_topic_t*")), E, "name")
    err(c, lib.mofka_py_topic_exists(fab, b"t", ffi.NULL), E, "exists")
    err(c, lib.mofka_py_topic_partitions(topic, ffi.NULL), E)
    err(c, lib.mofka_py_topic_end_offset(topic, 0, ffi.NULL), E)
    err(c, lib.mofka_py_topic_end_offset(topic, 5, ffi.new("uint64_t*")), E, "partition 5")
    err(c, lib.mofka_py_fabric_delete_topic(fab, ffi.NULL, 0), E)
    err(c, lib.mofka_py_producer_create(topic, ffi.NULL, ffi.NULL), E)
    err(c, lib.mofka_py_consumer_create(topic, ffi.NULL, ffi.NULL), E)
    prod = api.producer(topic)
    err(c, lib.mofka_py_producer_push(prod, ffi.NULL, 5, ffi.NULL, 0, -1, ffi.NULL), E, "metadata is NULL")
    err(c, lib.mofka_py_producer_push(prod, b"{}", 2, ffi.NULL, 10, -1, ffi.NULL), E, "data is NULL")
    err(c, lib.mofka_py_producer_push(prod, b"{}", 2, ffi.NULL, 0, 3, ffi.NULL), E, "partition")
    pieces = ffi.new("mofka_py_buffer_t[1]")
    pieces[0].size = 4
    err(c, lib.mofka_py_producer_push_ex(prod, b"{}", 2, ffi.NULL, 1, -1, ffi.NULL, 0, 0, ffi.NULL, ffi.NULL,
                                         ffi.NULL), E, "pieces is NULL")
    err(c, lib.mofka_py_producer_push_ex(prod, b"{}", 2, pieces, 1, -1, ffi.NULL, 0, 0, ffi.NULL, ffi.NULL,
                                         ffi.NULL), E, r"pieces\[0\]")
    err(c, lib.mofka_py_producer_push_ex(prod, b"{}", 2, ffi.NULL, 0, -1, ffi.NULL, 3, 0, ffi.NULL, ffi.NULL,
                                         ffi.NULL), E, "key is NULL")
    fut = ffi.new("mofka_py_future_t*")
    ok(c, lib.mofka_py_producer_push(prod, b"{}", 2, ffi.NULL, 0, -1, fut))
    err(c, lib.mofka_py_future_test(fut[0], ffi.NULL), E, "done")
    ok(c, lib.mofka_py_future_release(fut[0]))
    ok(c, lib.mofka_py_producer_release(prod))
    # Nothing was written by the refused pushes: exactly one event.
    end = ffi.new("uint64_t*")
    ok(c, lib.mofka_py_topic_end_offset(topic, 0, end))
    assert end[0] == 1
    cons = api.consumer(topic)
    err(c, lib.mofka_py_consumer_pull(cons, 0, ffi.NULL), E, "event is NULL")
    err(c, lib.mofka_py_consumer_ack(cons, ffi.NULL), E, "event is NULL")
    err(c, lib.mofka_py_event_release(ffi.NULL), E, "event is NULL")
    ev = api.event()
    ev.internal = ffi.cast("void*", 0x123450)
    err(c, lib.mofka_py_event_release(ev), E, "not a live event")
    # Bad enumerations in option structures.
    o = ffi.new("mofka_py_consumer_options_t*")
    ok(c, lib.mofka_py_consumer_options_init(o))
    o.start = 42
    err(c, lib.mofka_py_consumer_create(topic, o, ffi.new("mofka_py_consumer_t*")), E, "MOFKA_PY_START")
    o.start, o.data = 0, 9
    err(c, lib.mofka_py_consumer_create(topic, o, ffi.new("mofka_py_consumer_t*")), E, "MOFKA_PY_DATA")
    o.data, o.num_partitions = 0, 2
    err(c, lib.mofka_py_consumer_create(topic, o, ffi.new("mofka_py_consumer_t*")), E, "partitions")
    cfg = ffi.new("mofka_py_topic_config_t*")
    ok(c, lib.mofka_py_topic_config_init(cfg))
    cfg.sync = 17
    err(c, lib.mofka_py_topic_create(fab, b"u", cfg), E, "MOFKA_PY_SYNC")
    # Too small a buffer for the topic names: an error, the size needed, and nothing written.
    needed = ffi.new("size_t*")
    small = ffi.new("char[2]", b"a")
    err(c, lib.mofka_py_fabric_topics(fab, small, 2, needed), E, "buffer of 3 bytes")
    assert needed[0] == 3 and ffi.string(small) == b"a"
    err(c, lib.mofka_py_fabric_topics(fab, ffi.NULL, 0, needed), E)
    big = ffi.new("char[3]")
    ok(c, lib.mofka_py_fabric_topics(fab, big, needed[0], ffi.NULL))
    assert ffi.string(big) == b"t\n"
    assert api.topics(fab) == ["t"]  # the refused create wrote nothing
    api.release(cons, topic, fab)


def test_wrong_struct_sizes_are_refused_and_write_nothing(c, api):
    ffi, lib = c
    E = lib.MOFKA_PY_ERR_INVALID_ARGUMENT
    fab = api.connect("memory://")
    topic = api.create(fab, "t")
    for tname, init in (("mofka_py_connect_options_t", lib.mofka_py_connect_options_init),
                        ("mofka_py_topic_config_t", lib.mofka_py_topic_config_init),
                        ("mofka_py_producer_options_t", lib.mofka_py_producer_options_init),
                        ("mofka_py_consumer_options_t", lib.mofka_py_consumer_options_init),
                        ("mofka_py_mpi_options_t", lib.mofka_py_mpi_options_init)):
        o = ffi.new(tname + "*")
        ok(c, init(o))
        assert o.struct_size == ffi.sizeof(tname)
        for wrong in (0, ffi.sizeof(tname) - 8, ffi.sizeof(tname) + 8, 1 << 40):
            o.struct_size = wrong
            if tname == "mofka_py_connect_options_t":
                rc = lib.mofka_py_connect_ex(b"memory://", o, ffi.new("mofka_py_fabric_t*"))
            elif tname == "mofka_py_topic_config_t":
                rc = lib.mofka_py_topic_create(fab, b"sized", o)
            elif tname == "mofka_py_producer_options_t":
                rc = lib.mofka_py_producer_create(topic, o, ffi.new("mofka_py_producer_t*"))
            elif tname == "mofka_py_consumer_options_t":
                rc = lib.mofka_py_consumer_create(topic, o, ffi.new("mofka_py_consumer_t*"))
            else:
                rc = lib.mofka_py_mpi_fabric_create_f(0, o, ffi.new("mofka_py_mpi_fabric_t*"))
                if rc == lib.MOFKA_PY_ERR_GENERIC:  # a build without MPI says so first
                    continue
            err(c, rc, E, f"{tname}.struct_size is {wrong}")
    assert api.topics(fab) == ["t"]
    prod = api.producer(topic)
    ok(c, lib.mofka_py_producer_push(prod, b"{}", 2, ffi.NULL, 0, -1, ffi.NULL))
    ok(c, lib.mofka_py_producer_release(prod))
    cons = api.consumer(topic)
    ev = api.event()
    ev.struct_size = 8
    err(c, lib.mofka_py_consumer_pull(cons, 1000, ev), E, "mofka_py_event_t.struct_size is 8")
    assert ev.internal == ffi.NULL
    err(c, lib.mofka_py_consumer_ack(cons, ev), E, "struct_size")
    err(c, lib.mofka_py_event_release(ev), E, "struct_size")
    # The refused pull consumed nothing: the event is still there.
    assert api.pull(cons)[3] == 0
    api.release(cons, topic, fab)


def test_closed_objects_and_error_classes(c, api, tmp_path):
    ffi, lib = c
    url = f"file://{tmp_path / 'fab'}"
    fab = api.connect(url)
    topic = api.create(fab, "t", max_event_bytes=1024)
    err(c, lib.mofka_py_topic_create(fab, b"t", ffi.NULL), lib.MOFKA_PY_ERR_TOPIC_EXISTS, "t")
    err(c, lib.mofka_py_topic_open(fab, b"missing", ffi.new("mofka_py_topic_t*")),
        lib.MOFKA_PY_ERR_TOPIC_NOT_FOUND, "missing")
    err(c, lib.mofka_py_fabric_delete_topic(fab, b"missing", 0), lib.MOFKA_PY_ERR_TOPIC_NOT_FOUND)
    err(c, lib.mofka_py_connect(url.encode(), ffi.new("mofka_py_fabric_t*")), lib.MOFKA_PY_ERR_FABRIC_LOCKED)
    prod = api.producer(topic, max_pending_bytes=4096, linger_ms=10_000.0, batch_size=1_000_000)
    big = b"x" * 2000
    err(c, lib.mofka_py_producer_push(prod, b"{}", 2, big, len(big), -1, ffi.NULL), lib.MOFKA_PY_ERR_EVENT_TOO_LARGE)
    # Non-blocking pushes fill the producer's memory, then BufferFull (nothing queued by that call).
    pieces = ffi.new("mofka_py_buffer_t[1]")
    chunk = ffi.new("char[900]")
    pieces[0].data, pieces[0].size = chunk, 900
    rcs = [lib.mofka_py_producer_push_ex(prod, b"{}", 2, pieces, 1, -1, ffi.NULL, 0, lib.MOFKA_PY_PUSH_NONBLOCK,
                                         ffi.NULL, ffi.NULL, ffi.NULL) for _ in range(20)]
    assert lib.MOFKA_PY_ERR_BUFFER_FULL in rcs
    queued = rcs.index(lib.MOFKA_PY_ERR_BUFFER_FULL)
    ok(c, lib.mofka_py_producer_flush(prod, -1))
    end = ffi.new("uint64_t*")
    ok(c, lib.mofka_py_topic_end_offset(topic, 0, end))
    assert end[0] == rcs.count(lib.MOFKA_PY_OK) and queued >= 1
    # Closed objects: the handle stays valid and says so.
    ok(c, lib.mofka_py_producer_close(prod, -1))
    err(c, lib.mofka_py_producer_push(prod, b"{}", 2, ffi.NULL, 0, -1, ffi.NULL), lib.MOFKA_PY_ERR_CLOSED,
        "closed")
    ok(c, lib.mofka_py_producer_release(prod))
    cons = api.consumer(topic)
    err(c, lib.mofka_py_consumer_commit(cons), lib.MOFKA_PY_ERR_INVALID_ARGUMENT, "group")
    ok(c, lib.mofka_py_consumer_close(cons))
    err(c, lib.mofka_py_consumer_pull(cons, 0, api.event()), lib.MOFKA_PY_ERR_CLOSED)
    ok(c, lib.mofka_py_consumer_release(cons))
    ok(c, lib.mofka_py_fabric_close(fab))
    err(c, lib.mofka_py_topic_open(fab, b"t", ffi.new("mofka_py_topic_t*")), lib.MOFKA_PY_ERR_CLOSED)
    err(c, lib.mofka_py_producer_create(topic, ffi.NULL, ffi.new("mofka_py_producer_t*")), lib.MOFKA_PY_ERR_CLOSED)
    ok(c, lib.mofka_py_topic_release(topic))
    ok(c, lib.mofka_py_fabric_release(fab))
    # Not a fabric directory.
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("not mofka-py")
    err(c, lib.mofka_py_connect(f"file://{tmp_path / 'plain'}".encode(), ffi.new("mofka_py_fabric_t*")),
        lib.MOFKA_PY_ERR_NOT_A_FABRIC)


def test_errors_are_per_thread(c):
    ffi, lib = c
    import threading

    err(c, lib.mofka_py_connect(ffi.NULL, ffi.new("mofka_py_fabric_t*")), lib.MOFKA_PY_ERR_INVALID_ARGUMENT)
    seen = {}

    def other():
        seen["status"] = lib.mofka_py_last_status()
        seen["msg"] = ffi.string(lib.mofka_py_last_error())

    th = threading.Thread(target=other)
    th.start()
    th.join()
    assert seen == {"status": 0, "msg": b""}
    assert lib.mofka_py_last_status() == lib.MOFKA_PY_ERR_INVALID_ARGUMENT


# ---------------------------------------------------------------- a service over TCP

@pytest.fixture
def service(tmp_path):
    token = tmp_path / "token"
    token.write_text("s3cret-token-for-capi")
    svc = Service(tmp_path / "data", free_port(), token_file=token, sync="none").start()
    yield svc
    svc.stop()


def test_tcp_service_token_timeouts_and_errors(c, api, service):
    ffi, lib = c
    url = service.url.encode()
    err(c, lib.mofka_py_connect(url, ffi.new("mofka_py_fabric_t*")), lib.MOFKA_PY_ERR_AUTH)
    o = ffi.new("mofka_py_connect_options_t*")
    ok(c, lib.mofka_py_connect_options_init(o))
    wrong = ffi.new("char[]", b"wrong")
    o.token = wrong
    err(c, lib.mofka_py_connect_ex(url, o, ffi.new("mofka_py_fabric_t*")), lib.MOFKA_PY_ERR_AUTH)
    fab = api.connect(service.url, token="s3cret-token-for-capi", request_timeout_ms=60_000)
    topic = api.create(fab, "remote", partitions=2)
    prod = api.producer(topic)
    payload = np.arange(1 << 16, dtype=np.uint8)
    fut = ffi.new("mofka_py_future_t*")
    ok(c, lib.mofka_py_producer_push(prod, b'{"n": 0}', 8, ffi.from_buffer(payload), payload.nbytes, 0, fut))
    ok(c, lib.mofka_py_future_wait(fut[0], -1, ffi.NULL, ffi.NULL))
    ok(c, lib.mofka_py_future_release(fut[0]))
    # A paused service: the future is not done and a bounded wait says Timeout; then it completes.
    os.kill(service.proc.pid, signal.SIGSTOP)
    try:
        ok(c, lib.mofka_py_producer_push(prod, b'{"n": 1}', 8, ffi.NULL, 0, 1, fut))
        done = ffi.new("int*")
        ok(c, lib.mofka_py_future_test(fut[0], done))
        assert done[0] == 0
        err(c, lib.mofka_py_future_wait(fut[0], 300, ffi.NULL, ffi.NULL), lib.MOFKA_PY_ERR_TIMEOUT)
        err(c, lib.mofka_py_producer_flush(prod, 200), lib.MOFKA_PY_ERR_TIMEOUT)
    finally:
        os.kill(service.proc.pid, signal.SIGCONT)
    off = ffi.new("uint64_t*")
    ok(c, lib.mofka_py_future_wait(fut[0], -1, ffi.NULL, off))
    assert off[0] == 0
    ok(c, lib.mofka_py_future_release(fut[0]))
    ok(c, lib.mofka_py_producer_release(prod))
    cons = api.consumer(topic)
    got = sorted(api.pull(cons)[:3] for _ in range(2))
    assert got == [(b'{"n": 0}', payload.tobytes(), 0), (b'{"n": 1}', b"", 1)]
    err(c, lib.mofka_py_consumer_pull(cons, 50, api.event()), lib.MOFKA_PY_ERR_TIMEOUT, "no event")
    api.release(cons, topic, fab)
    # Nobody listening: a connection error once the (short) connect timeout passes.
    o.token = ffi.NULL
    o.connect_timeout_ms = 500
    err(c, lib.mofka_py_connect_ex(f"tcp://127.0.0.1:{free_port()}".encode(), o, ffi.new("mofka_py_fabric_t*")),
        lib.MOFKA_PY_ERR_CONNECTION)


def test_fortran_module_matches_the_header(c):
    """The Fortran module declares every constant with the header's value and binds every C function."""
    ffi, lib = c
    source = Path(__file__).resolve().parents[2] / "csrc" / "fortran" / "mofka_py.f90"
    if not source.exists():
        pytest.skip("the source tree's csrc/fortran is not here")
    text = source.read_text()
    consts = dict(re.findall(r"parameter\s*::\s*(MOFKA_PY_\w+)\s*=\s*(-?\d+)", text))
    header_consts = set(re.findall(r"#define\s+(MOFKA_PY_\w+)\s+-?\d+", capi.cdef()))
    assert header_consts and header_consts == set(consts), header_consts ^ set(consts)
    for name, value in consts.items():
        assert getattr(lib, name) == int(value), name
    bound = set(re.findall(r'bind\(c,\s*name="(mofka_py_\w+)"\)', text))
    declared = set(re.findall(r"\b(mofka_py_\w+)\s*\(", capi.cdef()))
    assert declared <= bound, declared - bound
