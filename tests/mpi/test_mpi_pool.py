"""MPI ranks as pool workers: one client rank steers, the others serve tasks (mpiexec -n 3 or 4)."""
from __future__ import annotations

import threading

import numpy as np
import pytest

MPI = pytest.importorskip("mpi4py.MPI")
mpi = pytest.importorskip("mofka_py.mpi")
from mofka_py.services import Pool, Worker  # noqa: E402

pytestmark = [pytest.mark.mpi(min_size=3), pytest.mark.timeout(180)]

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
        if c.rank == 0:
            pool = Pool(fab, "ranks", stream=False, health=False)
            c.Barrier()  # pool topics exist
            futs = [pool.submit("triple", i) for i in range(n)]
            arr = np.arange(1 << 16, dtype=np.float64)
            big = pool.submit("norm", arr)
            assert [f.result(timeout=120) for f in futs] == [3 * i for i in range(n)]
            assert big.result(timeout=120) == pytest.approx(float(np.linalg.norm(arr)))
            pool.close()
            done = c.bcast(True, root=0)
        else:
            c.Barrier()
            worker = Worker(fab, "ranks", {"triple": triple, "norm": norm}, worker_id=f"rank{c.rank}")
            t = threading.Thread(target=worker.run, daemon=True)
            t.start()
            done = c.bcast(None, root=0)
            worker.stop()
            t.join(60)
            served = worker.done
        counts = c.gather(0 if c.rank == 0 else served, root=0)
        if c.rank == 0:
            assert sum(counts) == n + 1
            if c.size > 2:
                assert sum(1 for k in counts[1:] if k > 0) >= 1
        assert done
