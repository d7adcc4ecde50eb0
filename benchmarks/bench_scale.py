"""How cost grows with the log: reopening a file:// fabric against its size, and the first run.

    python benchmarks/bench_scale.py [--sizes-mb 200,500,1000,2000] [--rounds 3] [--tail-mb 64]
                                     [--first-run-mb 1024] [--growth 100000,1000000,10000000]
                                     [--clients 1,8,64,512] [--partitions 1,16,256,1024]
                                     [--only reopen|first-run|growth|service] [--quick]

**Reopen.**
One topic (1 partition, the default 256 MiB segments) is filled with 1 KiB events up to each size
in turn. At each size, in fresh processes with the fabric's files dropped from the page cache
(``fsync`` then ``posix_fadvise(DONTNEED)`` on every file: cold, as after a reboot), the time of
``mofka_py.connect(url)`` plus ``topic.describe()``:

* ``clean``: after a clean close (the default: the partition's recovery point is read, nothing of
  the log);
* ``kill -9``: after a process appended ``--tail-mb`` more and was killed with SIGKILL (the
  recovery point of the last close, the tail past it read and checked);
* ``no recovery point``: the recovery points removed first, so the open reads and checks every
  batch (what every open did before recovery points; also what ``repair=True`` does).

Medians over ``--rounds``; the ratio of the largest to the smallest size says whether the cost is
flat (the issue's target: clean reopen of 2 GB within 2x of 0.2 GB, cold). ``verify`` (every batch
checked, cold) is timed once per size beside them: the cost the open no longer pays up front.

**First run.** In a fresh process, 1 MiB events into ``memory://`` (the default producer, one
topic), ``--first-run-mb`` of them, against a plain copy of the same bytes 1 MiB at a time into
never-touched memory (``numpy.empty`` then ``copyto``) measured first in that same process: the
issue's target is >= 0.8 of that copy. Three configurations: the default (a background thread
faults segment memory in ahead of the writes, ``MOFKA_PY_PREFAULT_MB``, 256 by default), that
thread off (``MOFKA_PY_PREFAULT_MB=0``: the page faults on the writer's path, as before), and
``mofka_py.reserve_memory()`` (``memory_reserve`` of the service and MPI fabric: everything faulted
in before the first event, the zero-fault knob).

**Per-event cost against log size.** One ``file://`` topic (1 partition) grows by 64 B
metadata-only events (the vectorised ``push_many``) through ``--growth`` sizes (add 100000000 for
10^8 events, about 8 GB and several minutes). At each size: the cost per event of producing the
next ``--probe`` events (1,000,000; half the log when smaller), the same again after ``os.sync()``,
of a plain ``write()`` of the same payload bytes to a file grown beside the log (the limit), of consuming the last as many
(``pull_batch`` from that offset, a fresh consumer) and as many from the start of the log, in a
process warmed first by 2,000,000 events on another topic. Flat where nothing should depend on
the size.

**Service throughput against clients and partitions.** One ``mofka-py serve`` (memory storage,
sync none) on 127.0.0.1; client connections (each its own ``connect()`` and producer) spread over
two worker processes push 256 B metadata-only events (``push_many``) into one topic, all starting
together; events/s over the whole run (medians of ``--rounds``), for each ``--clients`` count (16 partitions)
and each ``--partitions`` count (8 clients).

Writes tables to stdout and results/scale.{json,md,png}.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import _bench

EVENT = 1024
TOPIC = "scale"
KINDS = ("clean", "kill -9", "no recovery point")

OPEN = r"""
import json, sys, time
t0 = time.perf_counter()
import mofka_py as mp
t1 = time.perf_counter()
fab = mp.connect(sys.argv[1])
fab.topic(sys.argv[2]).describe()
t2 = time.perf_counter()
stats = fab.open_stats()
fab.close()
t3 = time.perf_counter()
print(json.dumps({"open_s": t2 - t1, "close_s": t3 - t2, "import_s": t1 - t0, **stats}))
"""

FILL = r"""
import os, signal, sys
import numpy as np
import mofka_py as mp
url, topic, target, kill = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "kill"
data = np.random.default_rng(7).integers(0, 255, 1024, dtype=np.uint8).tobytes()
fab = mp.connect(url)
t = fab.topic(topic) if topic in fab.topics() else fab.create_topic(topic)
size = sum(p["size_bytes"] for p in t.describe()["partitions"])
n = 0
with t.producer() as prod:
    while size + n * 1100 < target:
        for _ in range(10000):
            prod.push(b'{"i": 1}', data)
        n += 10000
    prod.flush()
    if kill:
        os.kill(os.getpid(), signal.SIGKILL)
fab.close()
"""

VERIFY = r"""
import json, sys, time
import mofka_py as mp
fab = mp.connect(sys.argv[1])
t = time.perf_counter()
n = fab.verify()
print(json.dumps({"verify_s": time.perf_counter() - t, "bytes": n}))
fab.close()
"""


FIRST_RUN = r"""
import json, sys, time
import numpy as np
import mofka_py as mp
n, reserve = int(sys.argv[1]), int(sys.argv[2])
size = 1 << 20
src = np.random.default_rng(1).integers(0, 255, size, dtype=np.uint8)
dst = np.empty(n * size, dtype=np.uint8)  # never touched
t = time.perf_counter()
for i in range(n):
    np.copyto(dst[i * size:(i + 1) * size], src)
copy = n * size / (time.perf_counter() - t) / 1e9
del dst
if reserve:
    mp.reserve_memory(reserve)
fab = mp.connect("memory://")
prod = fab.create_topic("first").producer()
data = src.tobytes()
t = time.perf_counter()
for i in range(n):
    prod.push(b'{"step": 1}', data)
prod.flush()
run = n * size / (time.perf_counter() - t) / 1e9
print(json.dumps({"fresh_copy_GBps": copy, "first_run_GBps": run}))
"""
FIRST_RUN_CONFIGS = (("default", {}, 0), ("prefault off", {"MOFKA_PY_PREFAULT_MB": "0"}, 0),
                     ("memory_reserve", {"MOFKA_PY_PREFAULT_MB": "0"}, 1))


GROWTH = r"""
import json, os, sys, time
import numpy as np
import mofka_py as mp
url, sizes, probe = sys.argv[1], [int(x) for x in sys.argv[2].split(",")], int(sys.argv[3])
records = np.frombuffer(b"x" * 64 * 65536, dtype="S64")
fab = mp.connect(url)
topic = fab.create_topic("growth")

def produce(prod, n):
    while n:
        k = min(n, len(records))
        prod.push_many(records[:k])
        n -= k
    prod.flush()

# The limit beside the log: a plain file next to it, grown by the same payload bytes with write() of 4 MiB,
# timed over the probe's bytes at each size (what the kernel and this machine's memory give any writer).
plain_path = url[len("file://"):] + "-plain.bin"
plain = os.open(plain_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
chunk = records.tobytes()

def plain_write(n):
    left = n * records.itemsize
    while left:
        k = min(left, len(chunk))
        os.write(plain, chunk[:k])
        left -= k

def consume(start, n):
    got = 0
    t = time.perf_counter()
    with topic.consumer(start=start, data=False) as cons:
        while got < n:
            b = cons.pull_batch(n - got, timeout=30)
            if b is None:
                raise RuntimeError("no events")
            got += len(b)
    return (time.perf_counter() - t) / n * 1e9

# Warm the process first (allocator, page cache, a producer's first batches) on another topic, so the
# figures below compare log sizes, not a cold start against a warm one.
warm = fab.create_topic("warmup")
with warm.producer() as prod:
    produce(prod, 2_000_000)
fab.delete_topic("warmup")
written = 0
with topic.producer() as prod:
    for size in sizes:
        p = min(probe, size // 2)  # the events timed: the last p of this size
        produce(prod, size - p - written)
        plain_write(size - p - written)
        t = time.perf_counter()
        plain_write(p)
        plain_ns = (time.perf_counter() - t) / p * 1e9
        t = time.perf_counter()
        produce(prod, p)
        produce_ns = (time.perf_counter() - t) / p * 1e9
        # The same once the kernel wrote back what the fill left dirty (past dirty_background_ratio of
        # the RAM it writes back while the probe runs): the log's own cost at this size.
        os.sync()
        t = time.perf_counter()
        produce(prod, p)
        settled_ns = (time.perf_counter() - t) / p * 1e9
        plain_write(p)
        written = size + p
        row = {"events": size, "probe": p, "produce_ns": produce_ns, "produce_settled_ns": settled_ns,
               "plain_write_ns": plain_ns,
               "consume_tail_ns": consume(size - p, p), "consume_head_ns": consume(0, p)}
        print(json.dumps(row), flush=True)
os.close(plain)
os.unlink(plain_path)
"""


def growth(url: str, sizes: List[int], probe: int) -> List[Dict[str, Any]]:
    log(f"growth: one topic through {', '.join(f'{s:,}' for s in sizes)} events")
    proc = subprocess.Popen([sys.executable, "-c", GROWTH, url, ",".join(map(str, sizes)), str(probe)],
                            stdout=subprocess.PIPE, text=True)
    rows = []
    for line in proc.stdout:
        rows.append(json.loads(line))
        r = rows[-1]
        log(f"  {r['events']:>12,} events: produce {r['produce_ns']:6.1f} ns/event "
            f"({r['produce_settled_ns']:6.1f} after a sync; plain write() {r['plain_write_ns']:6.1f}), consume tail "
            f"{r['consume_tail_ns']:6.1f}, head {r['consume_head_ns']:6.1f} ns/event")
    if proc.wait() != 0:
        raise RuntimeError("growth child failed")
    return rows


def growth_lines(rows: List[Dict[str, Any]], probe: int) -> List[str]:
    lines = [f"Per-event cost against log size (file://, 1 partition, 64 B metadata-only events, push_many / "
             f"pull_batch; each figure over {probe:,} events, or half the log when smaller; warmed process):", "",
             "| events in the log | produce ns/event | produce after a sync ns/event | limit: plain write() of the "
             "payload, ns/event | consume the tail ns/event | consume from the start ns/event |",
             "|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        settled = f"{r['produce_settled_ns']:.1f}" if "produce_settled_ns" in r else ""
        plain = f"{r['plain_write_ns']:.1f}" if "plain_write_ns" in r else ""
        lines.append(f"| {r['events']:,} | {r['produce_ns']:.1f} | {settled} | {plain} | {r['consume_tail_ns']:.1f} | "
                     f"{r['consume_head_ns']:.1f} |")
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        lines += ["", f"Largest / smallest log: produce {b['produce_ns'] / a['produce_ns']:.2f}x"
                  + (f" ({b['produce_settled_ns'] / a['produce_settled_ns']:.2f}x after a sync)"
                     if "produce_settled_ns" in a and "produce_settled_ns" in b else "")
                  + f", consume the tail {b['consume_tail_ns'] / a['consume_tail_ns']:.2f}x, from the start "
                  f"{b['consume_head_ns'] / a['consume_head_ns']:.2f}x"
                  + (f"; the plain file's write() {b['plain_write_ns'] / a['plain_write_ns']:.2f}x"
                     if "plain_write_ns" in a and "plain_write_ns" in b else "") + "."]
    return lines


SERVICE_WORKER = r"""
import json, sys, time
import numpy as np
import mofka_py as mp
url, topic, nclients, events = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
records = np.frombuffer(b"x" * 256 * 4096, dtype="S256")
fabs = [mp.connect(url) for _ in range(nclients)]
prods = [f.topic(topic).producer(selector="round_robin") for f in fabs]
print("ready", flush=True)
sys.stdin.readline()
t = time.perf_counter()
left = [events // nclients] * nclients
while any(left):
    for i, p in enumerate(prods):
        if left[i]:
            k = min(left[i], len(records))
            p.push_many(records[:k])
            left[i] -= k
for p in prods:
    p.flush()
seconds = time.perf_counter() - t
for p in prods:
    p.close()
for f in fabs:
    f.close()
print(json.dumps({"seconds": seconds, "events": (events // nclients) * nclients}), flush=True)
"""


def service_point(url: str, clients: int, partitions: int, events: int) -> Dict[str, Any]:
    import mofka_py as mp

    topic = f"scale-{clients}-{partitions}"
    with mp.connect(url) as admin:
        admin.create_topic(topic, partitions=partitions)
    workers = []
    split = [clients // 2 + clients % 2, clients // 2] if clients > 1 else [1]
    for n in split:
        if n:
            workers.append(subprocess.Popen([sys.executable, "-c", SERVICE_WORKER, url, topic, str(n),
                                             str(events * n // clients)],
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
    try:
        for w in workers:
            if w.stdout.readline().strip() != "ready":
                raise RuntimeError("a service benchmark worker did not start")
        for w in workers:
            w.stdin.write("go\n")
            w.stdin.flush()
        results = [json.loads(w.stdout.readline()) for w in workers]
        for w in workers:
            if w.wait(timeout=120) != 0:
                raise RuntimeError("a service benchmark worker failed")
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
    with mp.connect(url) as admin:
        admin.delete_topic(topic)
    total = sum(r["events"] for r in results)
    seconds = max(r["seconds"] for r in results)
    return {"clients": clients, "partitions": partitions, "events": total, "seconds": seconds,
            "events_per_s": total / seconds}


def service(args: argparse.Namespace) -> Dict[str, Any]:
    port = _bench.free_port()
    with tempfile.TemporaryDirectory(prefix="mofka-svc-") as tmp:
        ready = Path(tmp) / "ready"
        cmd = [sys.executable, "-m", "mofka_py.cli", "serve", "--listen", f"127.0.0.1:{port}", "--sync", "none",
               "--no-health", "--ready-file", str(ready), "--max-connections", "4096", "--max-pending-logins", "4096",
               "--max-pending-logins-per-address", "4096"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            while not ready.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the service did not start: {proc.stderr.read() if proc.stderr else ''}")
                time.sleep(0.05)
            url = f"tcp://127.0.0.1:{port}"
            def point(c: int, p: int) -> Dict[str, Any]:
                res = summary([service_point(url, c, p, args.service_events) for _ in range(args.rounds)],
                              "events_per_s")
                rounds = ", ".join(f"{r['events_per_s'] / 1e6:.2f}M" for r in res["runs"])
                log(f"service: {c:4d} clients, {p:5d} partitions: {res['events_per_s']:12,.0f} events/s "
                    f"(rounds: {rounds})")
                return {"clients": c, "partitions": p, **res}

            by_clients = [point(c, 16) for c in [int(x) for x in args.clients.split(",")]]
            by_partitions = [point(8, p) for p in [int(x) for x in args.partitions.split(",")]]
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return {"by_clients": by_clients, "by_partitions": by_partitions}


def service_lines(sv: Dict[str, Any], events: int, rounds: int) -> List[str]:
    lines = [f"Service throughput (one `mofka-py serve`, memory storage, sync none, 127.0.0.1; 256 B "
             f"metadata-only events, push_many; {events:,} events per point over two worker processes; "
             f"medians of {rounds} rounds):", "",
             "| clients (16 partitions) | events/s | | partitions (8 clients) | events/s |", "|---:|---:|---|---:|---:|"]
    for a, b in zip(sv["by_clients"] + [None] * 8, sv["by_partitions"] + [None] * 8):
        if a is None and b is None:
            break
        left = f"| {a['clients']} | {a['events_per_s']:,.0f} |" if a else "| | |"
        right = f" | {b['partitions']} | {b['events_per_s']:,.0f} |" if b else " | | |"
        lines.append(left + right)
    return lines


def first_run(mb: int, rounds: int) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for name, env, reserve in FIRST_RUN_CONFIGS:
        runs = []
        for r in range(rounds):
            proc = subprocess.run([sys.executable, "-c", FIRST_RUN, str(mb), str(mb << 20 if reserve else 0)],
                                  env=dict(os.environ, **env), capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"first-run child failed: {proc.stderr[-3000:]}")
            m = json.loads(proc.stdout)
            m["ratio"] = m["first_run_GBps"] / m["fresh_copy_GBps"]
            runs.append(m)
            log(f"first run, {name:<14} round {r + 1}: {m['first_run_GBps']:6.2f} GB/s, fresh copy "
                f"{m['fresh_copy_GBps']:5.2f} GB/s: {m['ratio']:.2f}x")
        out[name] = summary(runs, "ratio", "first_run_GBps", "fresh_copy_GBps")
    return out


def summary(runs: List[Dict[str, Any]], *keys: str) -> Dict[str, Any]:
    """The runs, and the median over them of each of ``keys``."""
    return {"runs": runs, **{k: _bench.median([r[k] for r in runs]) for k in keys}}


def log(msg: str) -> None:
    print(f"[bench_scale] {msg}", file=sys.stderr, flush=True)


def python(code: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"child failed ({r.returncode}): {r.stderr[-3000:]}")
    return r


def drop_cache(root: Path) -> None:
    """Write back and evict every file under root from the page cache (cold reads next time)."""
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            try:
                fd = os.open(p, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def log_bytes(d: Path) -> int:
    return sum(p.stat().st_size for p in d.glob(f"topics/{TOPIC}/p*/*.log"))


def measure_open(url: str, d: Path) -> Dict[str, Any]:
    drop_cache(d)
    return json.loads(python(OPEN, url, TOPIC).stdout)


def reopen(args: argparse.Namespace) -> List[Dict[str, Any]]:
    sizes = [int(s) * 1_000_000 for s in args.sizes_mb.split(",")]
    own = tempfile.TemporaryDirectory(prefix="mofka-scale-") if args.dir is None else None
    d = Path(args.dir or own.name) / "fab"
    url = f"file://{d}"
    rows: List[Dict[str, Any]] = []
    try:
        for size in sizes:
            log(f"filling the log to {size / 1e9:.2f} GB")
            python(FILL, url, TOPIC, str(size), "close")
            rec: Dict[str, Any] = {"target_bytes": size}
            for kind in KINDS:
                runs = []
                for r in range(args.rounds):
                    if kind == "kill -9":
                        python(FILL, url, TOPIC, str(log_bytes(d) + args.tail_mb * 1_000_000), "kill", check=False)
                    elif kind == "no recovery point":
                        for rp in d.glob(f"topics/{TOPIC}/p*/recovery-point"):
                            rp.unlink()
                    m = measure_open(url, d)
                    m["log_bytes"] = log_bytes(d)
                    runs.append(m)
                    log(f"  {kind:<18} round {r + 1}: open {m['open_s'] * 1e3:8.1f} ms, checked "
                        f"{m['checked_bytes'] / 1e6:8.1f} MB of {m['log_bytes'] / 1e6:.0f} MB")
                rec[kind] = summary(runs, "open_s", "checked_bytes", "log_bytes")
            drop_cache(d)
            rec["verify"] = json.loads(python(VERIFY, url).stdout)
            rec["log_bytes"] = log_bytes(d)
            log(f"  verify (cold): {rec['verify']['verify_s']:.2f} s for {rec['verify']['bytes'] / 1e6:.0f} MB")
            rows.append(rec)
    finally:
        if own is not None:
            own.cleanup()
    return rows


def reopen_lines(rows: List[Dict[str, Any]], args: argparse.Namespace) -> List[str]:
    first, last = rows[0], rows[-1]
    ratio = {k: last[k]["open_s"] / first[k]["open_s"] for k in KINDS}
    small, large = first["clean"]["log_bytes"], last["clean"]["log_bytes"]
    lines = ["Reopen (1 KiB events, 1 partition, 256 MiB segments; opens in fresh processes with the fabric's "
             f"files dropped from the page cache: cold; medians of {args.rounds} rounds):", "",
             f"| log size | clean reopen | checked at open | after kill -9 (tail {args.tail_mb} MB) | checked "
             "| no recovery point | checked | verify (cold) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for rec in rows:
        c, k, n = rec["clean"], rec["kill -9"], rec["no recovery point"]
        lines.append(f"| {c['log_bytes'] / 1e9:.2f} GB | {c['open_s'] * 1e3:.1f} ms | {c['checked_bytes'] / 1e6:.1f} MB "
                     f"| {k['open_s'] * 1e3:.1f} ms | {k['checked_bytes'] / 1e6:.1f} MB | {n['open_s'] * 1e3:.1f} ms "
                     f"| {n['checked_bytes'] / 1e6:.0f} MB | {rec['verify']['verify_s']:.2f} s |")
    lines += ["", "Log size: at the clean reopen (each kill -9 round then appends the tail, so the later columns "
              "see a larger log).", "",
              f"Largest / smallest log ({large / 1e9:.2f} GB / {small / 1e9:.2f} GB): "
              f"clean reopen {ratio['clean']:.2f}x (target <= 2x), after kill -9 {ratio['kill -9']:.2f}x, "
              f"without recovery points {ratio['no recovery point']:.2f}x."]
    return lines


def first_run_lines(fr: Dict[str, Any], args: argparse.Namespace) -> List[str]:
    lines = [f"First run ({args.first_run_mb} x 1 MiB events into memory:// in a fresh process, against a copy of the "
             f"same bytes into never-touched memory in that process; medians of {args.rounds} rounds):", "",
             "| configuration | first run GB/s | fresh-memory copy GB/s | ratio (target >= 0.8) |",
             "|---|---:|---:|---:|"]
    for name, _env, _reserve in FIRST_RUN_CONFIGS:
        r = fr[name]
        knob = {"default": "default (prefault thread, MOFKA_PY_PREFAULT_MB=256)",
                "prefault off": "MOFKA_PY_PREFAULT_MB=0 (faults on the writer's path)",
                "memory_reserve": f"reserve_memory({args.first_run_mb} MiB): all faulted before"}[name]
        lines.append(f"| {knob} | {r['first_run_GBps']:.2f} | {r['fresh_copy_GBps']:.2f} | {r['ratio']:.2f} |")
    return lines


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes-mb", default="200,500,1000,2000", help="log sizes, MB (ascending)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tail-mb", type=int, default=64, help="appended before the kill -9")
    ap.add_argument("--first-run-mb", type=int, default=1024, help="1 MiB events of the first-run test")
    ap.add_argument("--growth", default="100000,1000000,10000000", help="log sizes (events) of the growth part")
    ap.add_argument("--probe", type=int, default=1_000_000,
                    help="events timed at each growth size (at most half the log)")
    ap.add_argument("--clients", default="1,8,64,512", help="client connections of the service part")
    ap.add_argument("--partitions", default="1,16,256,1024", help="partitions of the service part")
    ap.add_argument("--service-events", type=int, default=2_000_000, help="events per service point")
    ap.add_argument("--only", choices=("reopen", "first-run", "growth", "service"), default=None,
                    help="run one part only")
    ap.add_argument("--dir", default=None, help="where the fabric goes (default: a temporary folder)")
    ap.add_argument("--quick", action="store_true", help="20,60 MB, 1 round: a smoke run")
    ap.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes_mb, args.rounds, args.tail_mb, args.first_run_mb = "20,60", 1, 8, 128
        args.growth = "200000,1000000"
        args.clients, args.partitions, args.service_events = "1,16", "1,64", 200_000
    machine = _bench.Machine(argv, script=__file__)
    rows = reopen(args) if args.only in (None, "reopen") else []
    fr = first_run(args.first_run_mb, args.rounds) if args.only in (None, "first-run") else {}
    probe = args.probe if not args.quick else 100_000
    grow: List[Dict[str, Any]] = []
    sv = service(args) if args.only in (None, "service") else {}
    if args.only in (None, "growth"):
        with tempfile.TemporaryDirectory(prefix="mofka-growth-", dir=args.dir) as g:
            grow = growth(f"file://{g}/fab", [int(x) for x in args.growth.split(",")], probe)
    machine.finish()
    lines = [f"{machine.date}, {machine.host} ({machine.cores} cores, load {machine.load_start:.2f} at the start, "
             f"{machine.load_end:.2f} at the end); `{machine.command}`.", ""]
    out = _bench.results_dir(args.out)
    if args.only and (out / "scale.json").exists():
        # One part rerun: the others are kept from the results file, and say where they come from.
        earlier = json.loads((out / "scale.json").read_text())
        kept = earlier.get("parts_from", {})
        when = earlier.get("machine", {}).get("date", "an earlier run")
        rows = rows or earlier.get("reopen", [])
        fr = fr or earlier.get("first_run", {})
        if not grow and earlier.get("growth"):
            grow, probe = earlier["growth"], earlier.get("growth_probe_events", probe)
        sv = sv or earlier.get("service", {})
        parts_from = {part: kept.get(part, when) for part in ("reopen", "first-run", "growth", "service")}
        parts_from[args.only] = machine.date
        lines += ["Parts measured at other times (`--only` reruns one part): " +
                  ", ".join(f"{part} {date}" for part, date in parts_from.items() if date != machine.date) + ".",
                  ""]
    else:
        parts_from = {part: machine.date for part in ("reopen", "first-run", "growth", "service")}
    if rows:
        lines += reopen_lines(rows, args) + [""]
    if fr:
        lines += first_run_lines(fr, args) + [""]
    if grow:
        lines += growth_lines(grow, probe) + [""]
    if sv:
        lines += service_lines(sv, args.service_events, args.rounds)
    _bench.write_markdown(out / "scale.md", lines)
    _bench.write_json(out / "scale.json", {"machine": vars(machine), "event_bytes": EVENT, "reopen": rows,
                                           "first_run": fr, "growth": grow, "growth_probe_events": probe,
                                           "service": sv, "parts_from": parts_from})
    plt = _bench.pyplot()
    if plt is not None and (rows or fr or grow or sv):
        fig, axes = plt.subplots(1, 4, figsize=(21, 4.2))
        if rows:
            ax = axes[0]
            xs = [r["clean"]["log_bytes"] / 1e9 for r in rows]
            for kind, style in zip(KINDS, ("o-", "s-", "^--")):
                ax.plot(xs, [r[kind]["open_s"] * 1e3 for r in rows], style, label=kind)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("log size (GB)")
            ax.set_ylabel("reopen, cold (ms)")
            ax.set_title("Reopening a file:// fabric against its size")
            ax.legend()
            ax.grid(True, which="both", alpha=0.3)
        if fr:
            ax = axes[1]
            names = [n for n, _e, _r in FIRST_RUN_CONFIGS]
            ax.bar(names, [fr[n]["ratio"] for n in names], color=["tab:blue", "tab:gray", "tab:green"])
            ax.axhline(0.8, color="red", ls="--", lw=1, label="target 0.8")
            ax.set_ylabel("first run / fresh-memory copy")
            ax.set_title("1 MiB events, first run in a fresh process")
            ax.legend()
        if grow:
            ax = axes[2]
            xs = [r["events"] for r in grow]
            for key, label, style in (("produce_ns", "produce", "o-"),
                                      ("produce_settled_ns", "produce after a sync", "o--"),
                                      ("plain_write_ns", "limit: plain write() of the payload", "k:"),
                                      ("consume_tail_ns", "consume the tail", "s-"),
                                      ("consume_head_ns", "consume from the start", "^-")):
                if all(key in r for r in grow):
                    ax.plot(xs, [r[key] for r in grow], style, label=label)
            ax.set_xscale("log")
            ax.set_xlabel("events in the log")
            ax.set_ylabel("ns per event")
            ax.set_ylim(bottom=0)
            ax.set_title("Per-event cost against log size (64 B, file://)")
            ax.legend()
            ax.grid(True, which="both", alpha=0.3)
        if sv:
            ax = axes[3]
            ax.plot([r["clients"] for r in sv["by_clients"]], [r["events_per_s"] / 1e6 for r in sv["by_clients"]],
                    "o-", label="clients (16 partitions)")
            ax.plot([r["partitions"] for r in sv["by_partitions"]],
                    [r["events_per_s"] / 1e6 for r in sv["by_partitions"]], "s-", label="partitions (8 clients)")
            ax.set_xscale("log")
            ax.set_xlabel("clients / partitions")
            ax.set_ylabel("M events/s")
            ax.set_ylim(bottom=0)
            ax.set_title("Service throughput (256 B events)")
            ax.legend()
            ax.grid(True, which="both", alpha=0.3)
        _bench.savefig(fig, out / "scale.png")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
