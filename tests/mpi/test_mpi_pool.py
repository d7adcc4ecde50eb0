"""MPI ranks as pool workers: one client rank steers, the others serve tasks (mpiexec -n 3 or 4)."""
from __future__ import annotations

import threading

import numpy as np
import pytest

MPI = pytest.importorskip("mpi4py.MPI")
mpi = pytest.importorskip("mofka_py.mpi")
from mofka_py.services import Pool, Worker  # noqa: E402

from mpi_checks import rank_part, reraise  # noqa: E402

pytestmark = [pytest.mark.mpi(min_size=3), pytest.mark.timeout(180, method="thread")]

WORLD = MPI.COMM_WORLD


def norm(a):
    return float(np.linalg.norm(a))


def triple(i):
    return 3 * i


def test_ranks_serve_a_pool():
    with mpi.fabric(WORLD, servers=1) as fab:
        if fab is None:
            return
        c = fab.comm
        n = 2000
        served = 0
        if c.rank == 0:
            pool = Pool(fab, "ranks", stream=False, health=False)
            c.Barrier()  # pool topics exist

            def steer():
                futs = [pool.submit("triple", i) for i in range(n)]
                arr = np.arange(1 << 16, dtype=np.float64)
                big = pool.submit("norm", arr)
                assert [f.result(timeout=120) for f in futs] == [3 * i for i in range(n)]
                assert big.result(timeout=120) == pytest.approx(float(np.linalg.norm(arr)))
                pool.close()

            failure = rank_part(steer)
            c.bcast(True, root=0)  # the workers may stop, whatever happened
        else:
            c.Barrier()
            worker = Worker(fab, "ranks", {"triple": triple, "norm": norm}, worker_id=f"rank{c.rank}")
            t = threading.Thread(target=worker.run, daemon=True)
            t.start()
            c.bcast(None, root=0)
            worker.stop()
            t.join(60)
            served = worker.done
            failure = None
        counts = c.gather(served, root=0)
        reraise(c, failure)
        if c.rank == 0:
            assert sum(counts) == n + 1
            assert sum(1 for k in counts[1:] if k > 0) >= 1
