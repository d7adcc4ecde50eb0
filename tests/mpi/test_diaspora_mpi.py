"""The Diaspora Stream API (mofka_py.diaspora) on an MPI fabric, run under mpiexec like the other MPI
tests: every client rank produces through a Diaspora producer, the ranks read the topic as one named
consumer (each event once across them), and a named consumer restarted after acknowledging part of the
topic reads on from there."""
from __future__ import annotations

import zlib

import pytest

MPI = pytest.importorskip("mpi4py.MPI")
mpi = pytest.importorskip("mofka_py.mpi")

from mofka_py.diaspora import ByteArrayAllocator, Driver, FullDataSelector  # noqa: E402

from mpi_checks import rank_part, reraise  # noqa: E402

pytestmark = [pytest.mark.mpi(min_size=2), pytest.mark.timeout(180, method="thread")]

WORLD = MPI.COMM_WORLD
N = 400   # events per client rank


def data_of(rank: int, i: int) -> bytes:
    return bytes((rank * 31 + i + k) % 256 for k in range(1 + (i * 13) % 700))


def test_diaspora_producers_and_a_named_consumer_across_ranks():
    with mpi.fabric(WORLD, servers=1) as fab:
        if fab is None:
            return   # the server rank serves until the clients leave
        c = fab.comm
        driver = Driver(backend="mofka_py", options={"fabric": fab})
        if c.rank == 0:
            driver.create_topic("frames", options={"num_partitions": 3})
        c.Barrier()
        topic = driver.open_topic("frames")

        def produce():
            producer = topic.producer(name="ranks")
            for i in range(N):
                data = data_of(c.rank, i)
                producer.push(metadata={"rank": c.rank, "i": i, "crc": zlib.crc32(data)}, data=data)
            assert producer.flush().wait(-1)
            producer.close()

        reraise(c, rank_part(produce))
        if c.rank == 0:
            driver.fabric.topic("frames").mark_complete()
        c.Barrier()
        consumer = topic.consumer("analysis", data_selector=FullDataSelector, data_allocator=ByteArrayAllocator)
        c.Barrier()   # every member joined before any reads
        got = []

        def consume():
            for event in consumer:
                meta = event.metadata
                assert zlib.crc32(event.data[0]) == meta["crc"], f"data of {meta} damaged"
                got.append((meta["rank"], meta["i"]))
                event.acknowledge()
            consumer.close()

        failure = rank_part(consume)
        everything = [r for part in c.allgather(got) for r in part]
        reraise(c, failure)
        assert sorted(everything) == [(r, i) for r in range(c.size) for i in range(N)], "each event once"

        def restart():
            first = topic.consumer(f"restart-{c.rank}")
            for _ in range(N // 2):
                first.pull().wait(-1).acknowledge()
            first.close()
            second = topic.consumer(f"restart-{c.rank}")
            rest = [e for e in second]
            second.close()
            assert len(rest) == c.size * N - N // 2, "resumed after the acknowledged events, none read again"

        reraise(c, rank_part(restart))
        driver.close()
        c.Barrier()
