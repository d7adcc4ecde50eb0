"""The application's own collectives on the communicator it gave the fabric work inside the
block on every rank, server-only ranks included (they run the block with ``fab`` None while
their progress thread serves, and wait for the clients at the end)."""
from __future__ import annotations

import pytest

MPI = pytest.importorskip("mpi4py.MPI")
mpi = pytest.importorskip("mofka_py.mpi")

pytestmark = [pytest.mark.mpi(min_size=2), pytest.mark.timeout(120, method="thread")]

WORLD = MPI.COMM_WORLD


@pytest.mark.parametrize("servers", ["count", "ranks"])
def test_application_collectives_inside_the_block(servers):
    nservers = 2 if WORLD.size >= 3 else 1
    given = nservers if servers == "count" else [WORLD.size - 1 - k for k in range(nservers)]
    server_ranks = list(range(nservers)) if servers == "count" else sorted(given)
    with mpi.fabric(WORLD, servers=given) as fab:
        assert (fab is None) == (WORLD.rank in server_ranks)
        WORLD.Barrier()  # every rank, server-only ones too
        if fab is not None and fab.comm.rank == 0:
            fab.create_topic("steps", partitions=2)
        WORLD.Barrier()
        produced = 0
        if fab is not None:
            with fab.topic("steps").producer() as prod:
                for step in range(10):
                    prod.push({"rank": WORLD.rank, "step": step})
                    produced += 1
        # A simulation's reduction across all ranks while the fabric is serving.
        total = WORLD.allreduce(produced, op=MPI.SUM)
        assert total == 10 * (WORLD.size - nservers)
        if fab is not None:
            fab.comm.Barrier()
            info = fab.topic("steps").describe()
            assert sum(p["end_offset"] for p in info["partitions"]) == total
        WORLD.Barrier()
