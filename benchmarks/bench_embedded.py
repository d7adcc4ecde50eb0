"""Embedded fabric throughput: produce / consume rates beside memcpy, in one run.

    python benchmarks/bench_embedded.py [--quick] [--repeats 3]

Cases: 64 B metadata-only events (vectorised push_many/pull_batch and one
push() per event), 1 KiB, 64 KiB, 1 MiB, 16 MiB data events; storages
memory://, file:// sync=none, file:// sync=batch. Each case prints one JSON
line (medians of the repeats) with its ratio to the memcpy bandwidth measured
in the same run; a table goes to stdout and results/embedded.{json,md,png}.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time

import numpy as np

import mofka_py as mp

import _bench
from _bench import human


def memcpy_gbps(nbytes: int = 256 << 20, repeats: int = 5) -> dict:
    """numpy copyto bandwidth, hot (destination already touched) and into fresh pages."""
    src = np.ones(nbytes, dtype=np.uint8)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    hot = []
    for _ in range(repeats):
        t = time.perf_counter()
        np.copyto(dst, src)
        hot.append(nbytes / (time.perf_counter() - t) / 1e9)
    fresh = []
    for _ in range(max(2, repeats // 2)):
        d = np.empty_like(src)
        t = time.perf_counter()
        np.copyto(d, src)
        fresh.append(nbytes / (time.perf_counter() - t) / 1e9)
        del d
    return {"hot": statistics.median(hot), "fresh": statistics.median(fresh)}


def file_write_gbps(tmp: str, nbytes: int = 256 << 20, sync: bool = False) -> float:
    """Raw os.pwrite bandwidth into a new file in 1 MiB writes (+ fdatasync each 4 MiB if sync): the disk limit."""
    chunk = np.ones(1 << 20, dtype=np.uint8)
    path = os.path.join(tmp, f"raw-{time.perf_counter_ns()}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        t = time.perf_counter()
        for i in range(nbytes >> 20):
            os.pwrite(fd, chunk, i << 20)
            if sync and i % 4 == 3:
                os.fdatasync(fd)
        os.fdatasync(fd) if sync else None
        return nbytes / (time.perf_counter() - t) / 1e9
    finally:
        os.close(fd)
        os.unlink(path)


class open_fabric:
    """A fabric for one run; a file:// one is deleted afterwards so dirty pages do not pile up between runs."""

    def __init__(self, storage: str, tmp: str):
        self.path = None if storage == "memory" else tempfile.mkdtemp(dir=tmp)
        url = "memory://" if self.path is None else f"file://{self.path}"
        self.fab = mp.connect(url, sync="batch" if storage == "file-batch" else "none")

    def __enter__(self):
        return self.fab

    def __exit__(self, *exc):
        self.fab.close()
        if self.path:
            shutil.rmtree(self.path, ignore_errors=True)


def run_case(storage: str, size: int, events: int, mode: str, tmp: str) -> dict:
    """One produce-then-consume run (and one pipelined run for data cases)."""
    with open_fabric(storage, tmp) as fab:
        topic = fab.create_topic("bench")
        meta64 = b"x" * 64
        payload = np.random.default_rng(1).integers(0, 255, size, dtype=np.uint8) if size else None
        t0 = time.perf_counter()
        with topic.producer() as prod:
            if mode == "vectorised":
                records = np.frombuffer(meta64 * 65536, dtype="S64")
                left = events
                while left:
                    n = min(left, len(records))
                    prod.push_many(records[:n])
                    left -= n
            elif size:
                push = prod.push
                for _ in range(events):
                    push(b"{}", payload)
            else:
                push = prod.push
                for _ in range(events):
                    push(meta64)
            prod.flush()
        t_prod = time.perf_counter() - t0
        topic.mark_complete()
        got = 0
        nbytes = 0
        t0 = time.perf_counter()
        with topic.consumer(data=bool(size)) as cons:
            if mode == "vectorised":
                while True:
                    b = cons.pull_batch()
                    if b is None:
                        break
                    got += len(b)
                    nbytes += len(b.metadata_view())
            else:
                for ev in cons:
                    got += 1
                    nbytes += len(ev.data) if size else len(ev.metadata_bytes)
        t_cons = time.perf_counter() - t0
        if got != events:
            raise RuntimeError(f"consumed {got} of {events} events")
        event_bytes = size if size else 64
        return {"produce_s": t_prod, "consume_s": t_cons, "bytes": events * event_bytes, "events": events}


def run_pipeline(storage: str, size: int, events: int, tmp: str) -> float:
    """Producer and consumer concurrently; seconds from first push to last event consumed."""
    with open_fabric(storage, tmp) as fab:
        topic = fab.create_topic("pipe")
        payload = np.random.default_rng(2).integers(0, 255, size, dtype=np.uint8)
        done = threading.Event()
        count = [0]

        def consume():
            with topic.consumer() as cons:
                for ev in cons:
                    count[0] += 1
                    _ = ev.data  # the view the application would read
            done.set()

        th = threading.Thread(target=consume)
        th.start()
        t0 = time.perf_counter()
        with topic.producer() as prod:
            for _ in range(events):
                prod.push(b"{}", payload)
        topic.mark_complete()
        done.wait()
        elapsed = time.perf_counter() - t0
        th.join()
        if count[0] != events:
            raise RuntimeError(f"pipeline consumed {count[0]} of {events}")
        return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="fewer events (smoke run)")
    ap.add_argument("--tmp", default=None, help="directory for file:// fabrics (default: a temp dir)")
    args = ap.parse_args()
    scale = 0.1 if args.quick else 1.0
    tmp = args.tmp or tempfile.mkdtemp(prefix="mofka-bench-")
    mem = memcpy_gbps()
    mem["file"] = statistics.median(file_write_gbps(tmp) for _ in range(3))
    mem["file_sync"] = statistics.median(file_write_gbps(tmp, sync=True) for _ in range(3))
    print(json.dumps({"limit": "memcpy", "hot_GBps": round(mem["hot"], 2), "fresh_pages_GBps": round(mem["fresh"], 2),
                      "file_write_GBps": round(mem["file"], 2), "file_write_fdatasync_GBps": round(mem["file_sync"], 2)}))
    cases = []
    for storage in ("memory", "file-none", "file-batch"):
        cases.append((storage, 0, int(2_000_000 * scale), "vectorised"))
        cases.append((storage, 0, int(500_000 * scale), "push"))
        for size, n in ((1 << 10, 200_000), (64 << 10, 4096), (1 << 20, 512), (16 << 20, 32)):
            cases.append((storage, size, max(4, int(n * scale)), "push"))
    rows = []
    try:
        for storage, size, events, mode in cases:
            runs = [run_case(storage, size, events, mode, tmp) for _ in range(args.repeats)]
            prod = statistics.median(r["produce_s"] for r in runs)
            cons = statistics.median(r["consume_s"] for r in runs)
            nbytes = runs[0]["bytes"]
            row = {
                "storage": storage, "event_bytes": size or 64, "data": bool(size), "path": mode, "events": events,
                "produce_ev_s": events / prod, "consume_ev_s": events / cons,
                "produce_GBps": nbytes / prod / 1e9, "consume_GBps": nbytes / cons / 1e9,
            }
            if size >= (1 << 20) and storage == "memory":
                pipe = statistics.median(run_pipeline(storage, size, events, tmp) for _ in range(args.repeats))
                row["end_to_end_GBps"] = nbytes / pipe / 1e9
                row["end_to_end_vs_memcpy_hot"] = row["end_to_end_GBps"] / mem["hot"]
                row["end_to_end_vs_memcpy_fresh"] = row["end_to_end_GBps"] / mem["fresh"]
            row["produce_vs_memcpy_hot"] = row["produce_GBps"] / mem["hot"]
            if storage != "memory":
                limit = mem["file_sync"] if storage == "file-batch" else mem["file"]
                row["produce_vs_file_write"] = row["produce_GBps"] / limit
            _bench.print_json(row, digits=4)
            rows.append(row)
    finally:
        if not args.tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    write_outputs(rows, mem, args)
    return 0


def write_outputs(rows: list, mem: dict, args: argparse.Namespace) -> None:
    out = _bench.results_dir()
    meta = {"memcpy_hot_GBps": mem["hot"], "memcpy_fresh_GBps": mem["fresh"], "file_write_GBps": mem["file"],
            "file_write_fdatasync_GBps": mem["file_sync"], "repeats": args.repeats,
            "quick": args.quick, "cpu_count": os.cpu_count(), "when": _bench.now()}
    _bench.write_json(out / "embedded.json", {"meta": meta, "rows": rows})
    lines = [f"memcpy (numpy copyto, 256 MiB): {mem['hot']:.1f} GB/s hot, {mem['fresh']:.1f} GB/s into fresh pages; "
             f"raw file writes (1 MiB pwrite): {mem['file']:.2f} GB/s, with fdatasync every 4 MiB: "
             f"{mem['file_sync']:.2f} GB/s; medians of {args.repeats} runs", "",
             "| storage | event | path | produce ev/s | consume ev/s | produce GB/s | consume GB/s | produce vs limit | end-to-end GB/s (vs memcpy hot) |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        e2e = f"{r['end_to_end_GBps']:.2f} ({100 * r['end_to_end_vs_memcpy_hot']:.0f}%)" if "end_to_end_GBps" in r else ""
        label = f"{r['event_bytes']} B meta" if not r["data"] else human(r["event_bytes"])
        vs = r.get("produce_vs_file_write", r["produce_vs_memcpy_hot"])
        lim = "file write" if "produce_vs_file_write" in r else "memcpy"
        lines.append(f"| {r['storage']} | {label} | {r['path']} | {r['produce_ev_s']:,.0f} | {r['consume_ev_s']:,.0f} | "
                     f"{r['produce_GBps']:.2f} | {r['consume_GBps']:.2f} | {100 * vs:.0f}% of {lim} | {e2e} |")
    _bench.write_markdown(out / "embedded.md", lines)
    plt = _bench.pyplot()
    if plt is None:
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for storage in ("memory", "file-none", "file-batch"):
        sel = [r for r in rows if r["storage"] == storage and r["data"]]
        xs = [r["event_bytes"] for r in sel]
        axes[0].plot(xs, [r["produce_GBps"] for r in sel], marker="o", label=f"produce {storage}")
        axes[0].plot(xs, [r["consume_GBps"] for r in sel], marker="x", ls="--", label=f"consume {storage}")
        small = [r for r in rows if r["storage"] == storage and not r["data"]]
        axes[1].bar([f"{storage}\n{r['path']}" for r in small], [r["produce_ev_s"] / 1e6 for r in small])
    axes[0].axhline(mem["hot"], color="k", lw=0.8, label="memcpy (hot)")
    axes[0].axhline(mem["fresh"], color="gray", lw=0.8, ls=":", label="memcpy (fresh pages)")
    axes[0].set_xscale("log", base=2)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("event data bytes")
    axes[0].set_ylabel("GB/s")
    axes[0].legend(fontsize=6)
    axes[1].set_ylabel("64 B events produced, M events/s")
    axes[1].tick_params(axis="x", labelsize=6)
    fig.suptitle("mofka-py embedded fabric (medians)")
    _bench.savefig(fig, out / "embedded.png", dpi=110)


if __name__ == "__main__":
    sys.exit(main())
