"""MPI fabric beside raw MPI, in one run: ping-pong vs produce / consume over MPI.

    mpiexec -n 2 python benchmarks/bench_mpi.py [--quick] [--repeats 3]

Rank 0 is the server, rank 1 the client. For each size (64 B .. 16 MiB) it
measures raw mpi4py ping-pong (one-way latency and bandwidth, buffers, blocking
calls) and then, through mofka_py.mpi.fabric, the producer's throughput
(push + flush), one synchronous push's latency (push().result()) and the
consumer's throughput. One JSON line per size with the ratios to raw MPI.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
from mpi4py import MPI

import mofka_py.mpi

SIZES = [64, 1 << 10, 64 << 10, 1 << 20, 16 << 20]


def pingpong(comm, size: int, iters: int) -> float:
    """Median one-way time in seconds of a `size`-byte message between ranks 0 and 1."""
    buf = np.zeros(max(size, 1), dtype=np.uint8)
    times = []
    for _ in range(3):
        comm.Barrier()
        t = time.perf_counter()
        for _ in range(iters):
            if comm.rank == 0:
                comm.Send(buf, dest=1, tag=7)
                comm.Recv(buf, source=1, tag=7)
            else:
                comm.Recv(buf, source=0, tag=7)
                comm.Send(buf, dest=0, tag=7)
        times.append((time.perf_counter() - t) / (2 * iters))
    return statistics.median(times)


def fabric_case(fab, size: int, count: int, repeats: int) -> dict:
    data = np.ones(size, dtype=np.uint8)
    prod_rates, cons_rates, lat = [], [], []
    for r in range(repeats):
        topic = fab.create_topic(f"s{size}-{r}", partitions=1)
        with topic.producer() as prod:
            t = time.perf_counter()
            for _ in range(count):
                prod.push(None, data=data)
            prod.flush()
            prod_rates.append(count * size / (time.perf_counter() - t))
            for _ in range(min(50, count)):
                t = time.perf_counter()
                prod.push(None, data=data).result()
                lat.append(time.perf_counter() - t)
        topic.mark_complete()
        t = time.perf_counter()
        n = 0
        with topic.consumer(prefetch_bytes=max(64 << 20, 4 * size)) as cons:
            while True:
                b = cons.pull_batch(timeout=30)
                if b is None:
                    break
                n += len(b)
        cons_rates.append(count * size / (time.perf_counter() - t))
        assert n == count + min(50, count), n
    return {"produce_Bps": statistics.median(prod_rates), "consume_Bps": statistics.median(cons_rates),
            "push_latency_s": statistics.median(lat)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    comm = MPI.COMM_WORLD
    if comm.size != 2:
        raise SystemExit("run with mpiexec -n 2")
    budget = (16 << 20) if args.quick else (128 << 20)
    raw = {s: pingpong(comm, s, max(5, min(2000, (budget // 8) // s))) for s in SIZES}
    with mofka_py.mpi.fabric(comm, servers=[0]) as fab:
        if fab is None:
            return
        for s in SIZES:
            count = max(4, min(20000, budget // s))
            res = fabric_case(fab, s, count, args.repeats)
            raw_bw = s / raw[s]
            line = {"bench": "mpi", "size": s, "events": count,
                    "raw_latency_us": round(raw[s] * 1e6, 2), "raw_GBps": round(raw_bw / 1e9, 3),
                    "push_latency_us": round(res["push_latency_s"] * 1e6, 2),
                    "produce_GBps": round(res["produce_Bps"] / 1e9, 3),
                    "consume_GBps": round(res["consume_Bps"] / 1e9, 3),
                    "produce_ratio": round(res["produce_Bps"] / raw_bw, 3),
                    "consume_ratio": round(res["consume_Bps"] / raw_bw, 3),
                    "latency_ratio": round(res["push_latency_s"] / raw[s], 2)}
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
