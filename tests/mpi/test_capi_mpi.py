"""The MPI entry points of the C API, driven through cffi on every rank of the job."""
from __future__ import annotations

import zlib

import numpy as np
import pytest

MPI = pytest.importorskip("mpi4py.MPI")
cffi = pytest.importorskip("cffi")
import mofka_py as mp  # noqa: E402
from mofka_py import capi  # noqa: E402

from mpi_checks import rank_part, reraise  # noqa: E402

pytestmark = [pytest.mark.mpi(min_size=2), pytest.mark.timeout(120, method="thread")]

WORLD = MPI.COMM_WORLD

if not mp._core.build_info.get("mpi"):
    pytest.skip("built without MPI", allow_module_level=True)


@pytest.fixture(scope="module")
def c():
    return capi.load()


def ok(c, rc):
    ffi, lib = c
    assert rc == 0, f"{ffi.string(lib.mofka_py_error_name(rc)).decode()}: {ffi.string(lib.mofka_py_last_error())}"


def test_mpi_init_reports_the_world(c):
    ffi, lib = c
    world, rank, size = ffi.new("int32_t*"), ffi.new("int32_t*"), ffi.new("int32_t*")
    ok(c, lib.mofka_py_mpi_init(world, rank, size))  # MPI is up (mpi4py): nothing to initialise
    assert (world[0], rank[0], size[0]) == (WORLD.py2f(), WORLD.rank, WORLD.size)
    ok(c, lib.mofka_py_mpi_finalize())  # not initialised by the library: does nothing
    assert not MPI.Is_finalized()
    out = ffi.new("mofka_py_mpi_fabric_t*")
    rc = lib.mofka_py_mpi_fabric_create_f(MPI.COMM_NULL.py2f(), ffi.NULL, out)
    assert rc == lib.MOFKA_PY_ERR_INVALID_ARGUMENT
    assert b"not a communicator" in ffi.string(lib.mofka_py_last_error())
    # A value that is no communicator at all: an error code, not an abort of the job.
    assert lib.mofka_py_mpi_fabric_create_f(12345, ffi.NULL, out) == lib.MOFKA_PY_ERR_INVALID_ARGUMENT
    MPI.COMM_WORLD.Set_errhandler(MPI.ERRORS_ARE_FATAL)  # as a C or Fortran program has it
    try:
        assert lib.mofka_py_mpi_fabric_create_f(12345, ffi.NULL, out) == lib.MOFKA_PY_ERR_INVALID_ARGUMENT
    finally:
        MPI.COMM_WORLD.Set_errhandler(MPI.ERRORS_RETURN)
    opts = ffi.new("mofka_py_mpi_options_t*")
    ok(c, lib.mofka_py_mpi_options_init(opts))
    opts.struct_size = 3
    assert lib.mofka_py_mpi_fabric_create_f(WORLD.py2f(), opts, out) == lib.MOFKA_PY_ERR_INVALID_ARGUMENT
    opts.struct_size = ffi.sizeof("mofka_py_mpi_options_t")
    opts.num_servers = 1  # servers NULL with a count
    assert lib.mofka_py_mpi_fabric_create_f(WORLD.py2f(), opts, out) == lib.MOFKA_PY_ERR_INVALID_ARGUMENT
    assert lib.mofka_py_mpi_fabric_create_f(WORLD.py2f(), ffi.NULL, ffi.NULL) == lib.MOFKA_PY_ERR_INVALID_ARGUMENT


def test_every_rank_produces_and_rank_zero_reads_through_the_c_api(c):
    ffi, lib = c
    opts = ffi.new("mofka_py_mpi_options_t*")
    ok(c, lib.mofka_py_mpi_options_init(opts))
    servers = ffi.new("int32_t[1]", [0])
    opts.servers, opts.num_servers, opts.colocated = servers, 1, 1
    mf = ffi.new("mofka_py_mpi_fabric_t*")
    ok(c, lib.mofka_py_mpi_fabric_create_f(WORLD.py2f(), opts, mf))  # collective
    flag = ffi.new("int*")
    ok(c, lib.mofka_py_mpi_fabric_is_server(mf[0], flag))
    assert flag[0] == (1 if WORLD.rank == 0 else 0)
    ok(c, lib.mofka_py_mpi_fabric_is_client(mf[0], flag))
    assert flag[0] == 1
    fab = ffi.new("mofka_py_fabric_t*")
    ok(c, lib.mofka_py_mpi_fabric_fabric(mf[0], fab))
    n = 25

    def make_topic():
        cfg = ffi.new("mofka_py_topic_config_t*")
        ok(c, lib.mofka_py_topic_config_init(cfg))
        cfg.partitions = 2
        ok(c, lib.mofka_py_topic_create(fab[0], b"field", cfg))

    failure = rank_part(make_topic) if WORLD.rank == 0 else None
    reraise(WORLD, failure)

    def produce():
        topic = ffi.new("mofka_py_topic_t*")
        ok(c, lib.mofka_py_topic_open(fab[0], b"field", topic))
        prod = ffi.new("mofka_py_producer_t*")
        ok(c, lib.mofka_py_producer_create(topic[0], ffi.NULL, prod))
        arrays = []
        for step in range(n):
            arr = np.full(3000 if step % 5 else 40_000, WORLD.rank * 1000 + step, dtype=np.float64)
            arrays.append(arr)  # kept until the flush: large ones are sent from this memory
            meta = f'{{"rank": {WORLD.rank}, "step": {step}, "crc": {zlib.crc32(arr)}}}'.encode()
            ok(c, lib.mofka_py_producer_push(prod[0], meta, len(meta), ffi.from_buffer(arr), arr.nbytes, -1,
                                             ffi.NULL))
        ok(c, lib.mofka_py_producer_flush(prod[0], -1))
        ok(c, lib.mofka_py_producer_release(prod[0]))
        ok(c, lib.mofka_py_topic_release(topic[0]))

    failure = rank_part(produce)
    reraise(WORLD, failure)

    def consume():
        import json

        topic = ffi.new("mofka_py_topic_t*")
        ok(c, lib.mofka_py_topic_open(fab[0], b"field", topic))
        cons = ffi.new("mofka_py_consumer_t*")
        o = ffi.new("mofka_py_consumer_options_t*")
        ok(c, lib.mofka_py_consumer_options_init(o))
        o.start = lib.MOFKA_PY_START_EARLIEST
        ok(c, lib.mofka_py_consumer_create(topic[0], o, cons))
        ev = ffi.new("mofka_py_event_t*")
        ev.struct_size = ffi.sizeof("mofka_py_event_t")
        seen = set()
        while len(seen) < n * WORLD.size:
            ok(c, lib.mofka_py_consumer_pull(cons[0], 30_000, ev))
            meta = json.loads(ffi.unpack(ev.metadata, ev.metadata_size))
            data = np.frombuffer(ffi.buffer(ev.data, ev.data_size), dtype=np.float64)
            assert zlib.crc32(data) == meta["crc"]
            assert np.all(data == meta["rank"] * 1000 + meta["step"])
            key = (meta["rank"], meta["step"])
            assert key not in seen
            seen.add(key)
            ok(c, lib.mofka_py_event_release(ev))
        assert seen == {(r, s) for r in range(WORLD.size) for s in range(n)}
        ok(c, lib.mofka_py_consumer_release(cons[0]))
        ok(c, lib.mofka_py_topic_release(topic[0]))

    failure = rank_part(consume) if WORLD.rank == 0 else None
    reraise(WORLD, failure)
    ok(c, lib.mofka_py_fabric_release(fab[0]))
    ok(c, lib.mofka_py_mpi_fabric_close(mf[0]))  # collective
    ok(c, lib.mofka_py_mpi_fabric_release(mf[0]))  # closed already: just frees the handle
    assert lib.mofka_py_mpi_fabric_close(mf[0]) == lib.MOFKA_PY_ERR_INVALID_ARGUMENT
