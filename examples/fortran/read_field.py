"""Read and check the fields that field_stream (field_stream.f90) streams.

Two ways to run it (README.md):

* in the same MPI job, as rank 0 (the fabric's server, and a client: colocated), with the Fortran
  ranks after it::

    mpiexec -n 1 python read_field.py --steps 10 --n 64 : -n 2 ./field_stream 10 64

* after the job, on the directory a file:// run left (``--dir``; server rank r keeps dir/rank<r>)::

    mpiexec -n 2 ./field_stream 10 64 file:///tmp/run1 && python read_field.py --dir /tmp/run1 --ranks 2 \
        --steps 10 --n 64

Every field is checked against the checksum in its metadata (the sum of its values) and against
the same simulation recomputed here with numpy (the initial condition of each rank and the
diffusion steps). Prints one summary line; exits 1 if a field is missing, duplicated or wrong.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Dict, Tuple

import numpy as np

import mofka_py

TOPIC = "field"
ALPHA = 0.1
RTOL = 1e-12  # the Fortran sum and numpy's add in other orders


def initial_field(rank: int, n: int) -> np.ndarray:
    """field_stream's initial condition, indexed [i, j] like the Fortran array u(i, j)."""
    x = np.arange(n, dtype=np.float64) / float(n - 1)
    y = np.arange(n, dtype=np.float64) / float(n - 1)
    fx = x * (1.0 - x)
    fy = y * (1.0 - y)
    return (float(rank + 1) * fx)[:, None] * fy[None, :]


def diffuse(u: np.ndarray) -> np.ndarray:
    """One step of field_stream's explicit diffusion (zero boundary)."""
    v = np.zeros_like(u)
    c = u[1:-1, 1:-1]
    v[1:-1, 1:-1] = c + ALPHA * ((u[:-2, 1:-1] + u[2:, 1:-1] - 2.0 * c) + (u[1:-1, :-2] + u[1:-1, 2:] - 2.0 * c))
    return v


def reference(rank: int, n: int, steps: int) -> list:
    fields = [initial_field(rank, n)]
    for _ in range(steps - 1):
        fields.append(diffuse(fields[-1]))
    return fields


class Checker:
    """Collects the fields and what is wrong with them."""

    def __init__(self, ranks: list, steps: int, n: int):
        self.ranks, self.steps, self.n = ranks, steps, n
        self.seen: Dict[Tuple[int, int], bool] = {}
        self.errors: list = []
        self.max_dev = 0.0
        self._ref = {r: reference(r, n, steps) for r in ranks}

    @property
    def expected(self) -> int:
        return len(self.ranks) * self.steps

    def add(self, metadata: dict, data: memoryview) -> None:
        step, rank = int(metadata["step"]), int(metadata["rank"])
        key = (rank, step)
        if rank not in self._ref or not 0 <= step < self.steps:
            self.errors.append(f"unexpected field rank {rank} step {step}")
            return
        if key in self.seen:
            self.errors.append(f"rank {rank} step {step} received twice")
            return
        self.seen[key] = True
        nx, ny = int(metadata["nx"]), int(metadata["ny"])
        field = np.frombuffer(data, dtype=np.float64)
        if (nx, ny) != (self.n, self.n) or field.size != nx * ny:
            self.errors.append(f"rank {rank} step {step}: {field.size} values for nx={nx} ny={ny} (expected n={self.n})")
            return
        field = field.reshape((nx, ny), order="F")  # the Fortran array u(i, j), column-major
        total = float(field.sum())
        if not np.isclose(total, float(metadata["checksum"]), rtol=RTOL, atol=0.0):
            self.errors.append(f"rank {rank} step {step}: sum {total!r} != checksum {metadata['checksum']!r}")
        ref = self._ref[rank][step]
        scale = max(float(np.abs(ref).max()), 1e-300)
        dev = float(np.abs(field - ref).max()) / scale
        self.max_dev = max(self.max_dev, dev)
        if dev > RTOL:
            self.errors.append(f"rank {rank} step {step}: differs from the recomputed field by {dev:.3e} (relative)")

    def summary(self) -> Tuple[bool, str]:
        missing = [(r, s) for r in self.ranks for s in range(self.steps) if (r, s) not in self.seen]
        ok = not self.errors and not missing
        line = (f"read_field: {'OK' if ok else 'FAILED'}: received={len(self.seen)} expected={self.expected} "
                f"ranks={len(self.ranks)} steps={self.steps} n={self.n} checksums={'ok' if not self.errors else 'bad'} "
                f"max_rel_dev={self.max_dev:.1e}")
        if missing:
            line += f" missing={missing[:5]}{'...' if len(missing) > 5 else ''}"
        if self.errors:
            line += f" first_error={self.errors[0]!r} errors={len(self.errors)}"
        return ok, line


def consume(topic: "mofka_py.Topic", checker: Checker, timeout: float) -> None:
    """Pull until every expected field came, or nothing came for ``timeout`` seconds."""
    with topic.consumer(start="earliest") as consumer:
        while len(checker.seen) < checker.expected:
            ev = consumer.pull(timeout=timeout)
            if ev is None:
                break  # stalled: the summary lists what is missing
            checker.add(ev.metadata, ev.data)  # metadata: the decoded JSON (a dict)


def run_in_job(args: argparse.Namespace) -> Checker:
    from mpi4py import MPI

    import mofka_py.mpi

    comm = MPI.COMM_WORLD
    if comm.rank != 0:
        raise SystemExit("read_field.py must be rank 0 of the job (put it first on the mpiexec line)")
    ranks = list(range(1, comm.size))  # the Fortran ranks after this one
    checker = Checker(ranks, args.steps, args.n)
    # The same fabric options as field_stream passes: servers [0], colocated, the storage.
    with mofka_py.mpi.fabric(comm, servers=[0], storage=args.storage, colocated=True) as fab:
        try:
            topic = fab.create_topic(TOPIC)  # or a producer rank created it first
        except mofka_py.TopicExists:
            topic = fab.topic(TOPIC)
        consume(topic, checker, args.timeout)
    return checker


def run_on_dir(args: argparse.Namespace) -> Checker:
    checker = Checker(list(range(args.ranks)), args.steps, args.n)
    with mofka_py.connect(f"file://{args.dir}/rank0") as fab:
        topic = fab.topic(TOPIC)
        consume(topic, checker, args.timeout)
    return checker


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10, help="time steps of each rank (field_stream's first argument)")
    ap.add_argument("--n", type=int, default=64, help="grid size (field_stream's second argument)")
    ap.add_argument("--storage", default="memory://", help="the fabric's storage, as field_stream's third argument")
    ap.add_argument("--timeout", type=float, default=60.0, help="give up when no field came for this many seconds")
    ap.add_argument("--dir", help="read a finished file:// run from this directory instead of joining the job")
    ap.add_argument("--ranks", type=int, default=1, help="with --dir: how many ranks streamed")
    args = ap.parse_args()
    start = time.perf_counter()
    checker = run_on_dir(args) if args.dir else run_in_job(args)
    ok, line = checker.summary()
    print(f"{line} seconds={time.perf_counter() - start:.2f}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
