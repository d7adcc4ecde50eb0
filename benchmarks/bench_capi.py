"""The C ABI beside the C++ API and the Python API, in one run: what the C layer costs.

    python benchmarks/bench_capi.py [--rounds 5] [--warm 3] [--quick] [--skip-build] [--no-callgrind]

Three programs push N events of S data bytes with the same short JSON metadata into a
``memory://`` fabric (one topic, 1 partition, 64 MiB segments, 256 MiB retention so memory stays
bounded), then flush; each times push + flush of every pass:

* ``capi/bench_c.c``: C11 on ``mofka_py.h`` only, ``mofka_py_producer_push(..., future=NULL)``;
* ``capi/bench_cpp.cpp``: the C++ API, ``Producer::push`` with the data referenced the way the C
  layer references it (an owner that owns nothing), the Future dropped;
* ``capi/bench_py.py``: the public Python API, ``prod.push(metadata_bytes, data_bytes)``.

The first pass of a process is ``cold`` (fresh process and memory), the next ``--warm`` passes
``warm`` (same producer and topic). For 64 B and 1 MiB events, ``--rounds`` rounds each run the
three programs in fresh processes, in an order rotated every round; the figures are medians
over the rounds, and the ratios medians of the per-round ratios (the three programs of a round
run seconds apart, so a ratio is less exposed to the machine's load than a throughput). The C
layer's cost is ``1 - C/C++`` warm throughput; the targets are 5% at 1 MiB and 20% at 64 B.

Timings on these shared 2-core VMs swing by 2x from one process to the next, so the run also
counts instructions with ``valgrind --tool=callgrind`` for C and C++ at 64 B: the difference
between a run of ``--cg-events`` and one of three times as many events, divided by the extra
events, is the instructions per event (all threads, setup cancelled out): the repeatable figure.

Builds first (progress on stderr): the C++ package with CMake into build/bench-capi (the
targets mofka_py_core and mofka_py_c, installed into build/bench-capi/prefix), then the two
programs with cc and c++. Writes a table to stdout and results/capi.{json,md,png}.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import _bench
from _bench import MiB, human

REPO = _bench.HERE.parent
SRC = _bench.HERE / "capi"
BUILD = REPO / "build" / "bench-capi"
PREFIX = BUILD / "prefix"
APIS = ("c", "cpp", "python")
LABEL = {"c": "C (mofka_py.h)", "cpp": "C++ API", "python": "Python API"}
SIZES = (64, MiB)
TARGET = {64: 0.20, MiB: 0.05}  # the C layer may cost at most this share of the C++ throughput


def log(msg: str) -> None:
    print(f"[bench_capi] {msg}", file=sys.stderr, flush=True)


def tool(name: str) -> str:
    """A build tool: the one beside this Python (the .venv's cmake, ninja) first, then PATH."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        raise SystemExit(f"bench_capi: {name} not found (pip install {name} or put it on PATH)")
    return found


def run_step(what: str, cmd: List[str], env: Optional[Dict[str, str]] = None) -> None:
    log(what)
    t = time.perf_counter()
    res = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if res.returncode != 0:
        sys.stderr.write(res.stdout[-6000:])
        raise SystemExit(f"bench_capi: step failed ({what}): {' '.join(cmd)}")
    log(f"  done in {time.perf_counter() - t:.1f} s")


def build(jobs: int) -> Dict[str, Path]:
    """Configure, build and install the C++ package, then compile the C and C++ programs."""
    cmake = tool("cmake")
    env = dict(os.environ)
    env["PATH"] = f"{Path(tool('ninja')).parent}{os.pathsep}{env.get('PATH', '')}"
    nice = ["nice", "-n", "10"] if shutil.which("nice") else []
    run_step(f"configure the C++ package into {BUILD.relative_to(REPO)}",
             nice + [cmake, "-S", str(REPO), "-B", str(BUILD), "-G", "Ninja", "-DMOFKA_PY_ENABLE_MPI=OFF",
                     "-DCMAKE_BUILD_TYPE=Release"], env)
    run_step(f"build mofka_py_core and mofka_py_c (-j{jobs})",
             nice + [cmake, "--build", str(BUILD), "--target", "mofka_py_core", "mofka_py_c", "-j", str(jobs)], env)
    install = [cmake, "--install", str(BUILD), "--prefix", str(PREFIX)]
    log(f"install into {PREFIX.relative_to(REPO)}")
    if subprocess.run(install, cwd=REPO, env=env, capture_output=True, text=True).returncode != 0:
        # Another target of the project (e.g. the Fortran module) is installed too: build everything.
        run_step(f"install needs every target: build all (-j{jobs})", nice + [cmake, "--build", str(BUILD),
                                                                              "-j", str(jobs)], env)
        run_step(f"install into {PREFIX.relative_to(REPO)}", install, env)
    libdir = next((PREFIX / d for d in ("lib", "lib64") if (PREFIX / d / "libmofka_py_core.a").exists()), None)
    if libdir is None:
        raise SystemExit(f"bench_capi: no libmofka_py_core.a under {PREFIX}/lib or lib64")
    inc = PREFIX / "include"
    exe = {"c": BUILD / "bench_c", "cpp": BUILD / "bench_cpp"}
    run_step("compile capi/bench_c.c (cc -O2, linked with libmofka_py_c)",
             nice + [os.environ.get("CC", "cc"), "-O2", "-std=c11", "-Wall", "-Wextra", f"-I{inc}",
                     str(SRC / "bench_c.c"), "-o", str(exe["c"]), f"-L{libdir}", f"-Wl,-rpath,{libdir}",
                     "-lmofka_py_c"])
    run_step("compile capi/bench_cpp.cpp (c++ -O2 -std=c++17, linked with libmofka_py_core.a)",
             nice + [os.environ.get("CXX", "c++"), "-O2", "-std=c++17", "-Wall", "-Wextra", f"-I{inc}",
                     str(SRC / "bench_cpp.cpp"), "-o", str(exe["cpp"]), str(libdir / "libmofka_py_core.a"),
                     "-pthread"])
    return exe


def command(api: str, exe: Dict[str, Path], size: int, events: int, warm: int) -> List[str]:
    args = [str(size), str(events), str(warm)]
    if api == "python":
        return [sys.executable, str(SRC / "bench_py.py")] + args
    return [str(exe[api])] + args


def run_program(api: str, exe: Dict[str, Path], size: int, events: int, warm: int) -> List[Dict[str, Any]]:
    """One fresh process; its passes (pass 0 cold), each with seconds and events/s."""
    res = subprocess.run(command(api, exe, size, events, warm), cwd=REPO, capture_output=True, text=True,
                         timeout=1800)
    if res.returncode != 0:
        raise SystemExit(f"bench_capi: {api} failed (exit {res.returncode}): {res.stderr.strip()[-2000:]}")
    passes = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    if len(passes) != warm + 1 or any(p["events"] != events or p["size"] != size for p in passes):
        raise SystemExit(f"bench_capi: {api} printed {res.stdout!r}")
    for p in passes:
        p["ev_s"] = events / p["seconds"]
    return passes


def summarise(size: int, events: int, rounds: List[Dict[str, List[Dict[str, Any]]]]) -> List[Dict[str, Any]]:
    """One row per API: medians over rounds of cold and warm throughput, and ratios to C++."""
    per_round = {api: [{"cold": r[api][0]["ev_s"], "warm": _bench.median([p["ev_s"] for p in r[api][1:]])
                        or r[api][0]["ev_s"]} for r in rounds] for api in APIS}
    rows = []
    for api in APIS:
        row: Dict[str, Any] = {"size": size, "api": api, "events": events, "rounds": len(rounds)}
        for phase in ("cold", "warm"):
            xs = [x[phase] for x in per_round[api]]
            row[f"{phase}_ev_s"] = _bench.median(xs)
            row[f"{phase}_ev_s_min"], row[f"{phase}_ev_s_max"] = min(xs), max(xs)
            row[f"{phase}_GBps"] = row[f"{phase}_ev_s"] * size / 1e9
            ratios = [a[phase] / b[phase] for a, b in zip(per_round[api], per_round["cpp"])]
            row[f"{phase}_vs_cpp"] = _bench.median(ratios)
            row[f"{phase}_vs_cpp_rounds"] = ratios
            row[f"{phase}_vs_cpp_of_medians"] = row[f"{phase}_ev_s"] / _bench.median(
                [x[phase] for x in per_round["cpp"]])
        if api == "c":
            row["target_cost"] = TARGET[size]
            for phase in ("cold", "warm"):
                row[f"{phase}_c_layer_cost"] = 1 - row[f"{phase}_vs_cpp"]
            row["target_met"] = row["warm_c_layer_cost"] <= TARGET[size]
        rows.append(row)
    return rows


# ---------------------------------------------------------------- instruction counts

def annotated(out: Path, inclusive: bool) -> str:
    return subprocess.run(["callgrind_annotate", f"--inclusive={'yes' if inclusive else 'no'}", "--threshold=100",
                           str(out)], capture_output=True, text=True).stdout


def cost_of(text: str, pattern: str) -> int:
    """The cost callgrind_annotate gives the function matching ``pattern`` (0 when absent)."""
    m = re.search(r"^\s*([\d,]+) .*" + pattern, text, re.M)
    return int(m.group(1).replace(",", "")) if m else 0


def callgrind_run(api: str, exe: Dict[str, Path], events: int, out: Path) -> Dict[str, int]:
    """One pass of ``events`` 64 B events under callgrind: the program's total instructions, and
    those of the code around the core's Producer::push (the C layer and the loop's own)."""
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"] + command(api, exe, 64, events, 0)
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1800)
    if res.returncode != 0:
        raise SystemExit(f"bench_capi: callgrind of {api} failed: {res.stderr[-2000:]}")
    total = None
    for line in out.read_text().splitlines():
        if line.startswith(("totals:", "summary:")):
            total = int(line.split()[1])
    if total is None:
        raise SystemExit(f"bench_capi: no totals in {out}")
    incl, excl = annotated(out, True), annotated(out, False)
    if api == "c":
        # mofka_py_producer_push minus the Producer::push it calls (its own code, the handle table,
        # the thread-local status), plus main's loop.
        around = (cost_of(incl, r"[:\s]mofka_py_producer_push \[") - cost_of(incl, r"mofka_py::Producer::push\(")
                  + cost_of(excl, r"\?\?\?:main \["))
    else:
        around = cost_of(excl, r"\(anonymous namespace\)::run\(")  # the loop, the DataRef, the dropped Future
    return {"total": total, "around_push": around}


def instructions(exe: Dict[str, Path], events: int, repeats: int) -> Dict[str, Any]:
    """Instructions per 64 B event of C and C++: (run of 3N events) - (run of N events), over 2N.

    ``per_event`` counts every thread: how many batches the producer thread seals, and so its
    copies, depends on thread timing even under valgrind (a few percent from run to run: the
    median of ``repeats`` is kept). ``around_push`` (the code around Producer::push on the
    pushing thread) does not move: its C - C++ difference is the C layer's own instructions."""
    outdir = BUILD / "callgrind"
    outdir.mkdir(parents=True, exist_ok=True)
    runs: Dict[str, List[Dict[str, int]]] = {}
    for k in range(repeats):
        for api in ("c", "cpp"):
            for n in (events, 3 * events):
                log(f"callgrind {k + 1}/{repeats}: {api} at 64 B, {n:,} events")
                runs.setdefault(f"{api}_{n}", []).append(callgrind_run(api, exe, n, outdir / f"{api}.{n}.{k}.out"))
    res: Dict[str, Any] = {"events": [events, 3 * events], "repeats": repeats, "runs": runs}
    for api in ("c", "cpp"):
        for key in ("total", "around_push"):
            diffs = [(b[key] - a[key]) / (2 * events) for a, b in zip(runs[f"{api}_{events}"],
                                                                       runs[f"{api}_{3 * events}"])]
            name = "per_event" if key == "total" else "around_push_per_event"
            res[f"{api}_{name}"] = _bench.median(diffs)
            res[f"{api}_{name}_runs"] = diffs
    res["c_vs_cpp"] = res["c_per_event"] / res["cpp_per_event"]
    res["c_layer_per_event"] = res["c_around_push_per_event"] - res["cpp_around_push_per_event"]
    res["c_layer_share"] = res["c_layer_per_event"] / res["cpp_per_event"]
    return res


# ---------------------------------------------------------------- report

def fmt_rate(x: float) -> str:
    return f"{x / 1e6:.2f} M" if x >= 1e5 else f"{x:,.0f}"


def table(rows: List[Dict[str, Any]], cg: Optional[Dict[str, Any]], meta: Dict[str, Any]) -> List[str]:
    lines = [f"{meta['date']}, {meta['host']} ({meta['cores']} cores, load {meta['load_start']:.2f} at the start, "
             f"{meta['load_end']:.2f} at the end); medians of {meta['rounds']} rounds, each C, C++ and Python in "
             f"fresh processes (order rotated); cold = the first pass of a process, warm = the median of its "
             f"{meta['warm']} next passes; `memory://`, 1 partition, default producer.", "",
             "| event | API | events | cold ev/s | warm ev/s | warm GB/s | cold vs C++ | warm vs C++ | C layer cost (target) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        cost = ""
        if r["api"] == "c":
            ok = "met" if r["target_met"] else "**missed**"
            cost = (f"{100 * r['warm_c_layer_cost']:.1f}% warm, {100 * r['cold_c_layer_cost']:.1f}% cold "
                    f"(≤ {100 * r['target_cost']:.0f}%: {ok})")
        lines.append(f"| {human(r['size'])} | {LABEL[r['api']]} | {r['events']:,} | {fmt_rate(r['cold_ev_s'])} | "
                     f"{fmt_rate(r['warm_ev_s'])} | {r['warm_GBps']:.2f} | {r['cold_vs_cpp']:.3f} | "
                     f"{r['warm_vs_cpp']:.3f} | {cost} |")
    if cg:
        lines += ["", f"Instructions per 64 B event (callgrind, all threads; ({3 * cg['events'][0]:,} events) − "
                      f"({cg['events'][0]:,} events), one pass each):", "",
                  "| program | instructions / event | vs C++ |", "|---|---:|---:|",
                  f"| C (mofka_py.h) | {cg['c_per_event']:.0f} | {cg['c_vs_cpp']:.3f} |",
                  f"| C++ API | {cg['cpp_per_event']:.0f} | 1.000 |"]
        lines += ["", f"The C layer's own instructions (mofka_py_producer_push around Producer::push, and the C "
                      f"loop, minus the C++ loop; the same in every run): {cg['c_layer_per_event']:.0f} per push, "
                      f"{100 * cg['c_layer_share']:.1f}% of the C++ program's {cg['cpp_per_event']:.0f} per event. "
                      f"The totals (all threads) move by a few percent from run to run with the producer thread's "
                      f"timing: medians of {cg['repeats']} runs."]
    return lines


def plot(rows: List[Dict[str, Any]], cg: Optional[Dict[str, Any]], path: Path) -> None:
    plt = _bench.pyplot()
    if plt is None:
        return
    fig, axes = plt.subplots(1, 3 if cg else 2, figsize=(13 if cg else 10, 4.2),
                             gridspec_kw={"width_ratios": [3, 3, 2] if cg else [1, 1]})
    colors = {"cold": "tab:blue", "warm": "tab:orange"}
    for ax, size in zip(axes, SIZES):
        sel = {r["api"]: r for r in rows if r["size"] == size}
        scale, unit = (1e-6, "M events/s") if size < MiB else (size / 1e9, "GB/s")
        width = 0.38
        for k, phase in enumerate(("cold", "warm")):
            xs = [i + (k - 0.5) * width for i in range(len(APIS))]
            ys = [sel[a][f"{phase}_ev_s"] * scale for a in APIS]
            lo = [max(0.0, y - sel[a][f"{phase}_ev_s_min"] * scale) for a, y in zip(APIS, ys)]
            hi = [max(0.0, sel[a][f"{phase}_ev_s_max"] * scale - y) for a, y in zip(APIS, ys)]
            ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, color=colors[phase],
                   label=f"{phase}: median, min-max over rounds")
            for x, y, h, a in zip(xs, ys, hi, APIS):
                ax.annotate(f"{sel[a][f'{phase}_vs_cpp']:.2f}", (x, y + h), ha="center", va="bottom", fontsize=7,
                            xytext=(0, 2), textcoords="offset points")
        ax.set_xticks(range(len(APIS)))
        ax.set_xticklabels([LABEL[a] for a in APIS], fontsize=8)
        ax.set_ylabel(unit)
        ax.set_ylim(0, ax.get_ylim()[1] * 1.08)
        ax.set_title(f"{human(size)} events: push + flush (labels: ratio to C++)", fontsize=9)
    axes[0].legend(fontsize=7, loc="upper right")
    if cg:
        ax = axes[2]
        ys = [cg["c_per_event"], cg["cpp_per_event"]]
        base = cg["c_per_event"] - cg["c_layer_per_event"]
        ax.bar([0, 1], [base, cg["cpp_per_event"]], 0.6, color="tab:gray", label="the rest (core, all threads)")
        ax.bar([0], [cg["c_layer_per_event"]], 0.6, bottom=[base], color="tab:red",
               label=f"the C layer's own ({cg['c_layer_per_event']:.0f})")
        for x, y in zip([0, 1], ys):
            ax.annotate(f"{y:.0f}", (x, y), ha="center", va="bottom", fontsize=8, xytext=(0, 2),
                        textcoords="offset points")
        ax.set_xticks([0, 1])
        ax.set_xticklabels([LABEL["c"], LABEL["cpp"]], fontsize=8)
        ax.set_ylabel("instructions per event")
        ax.set_ylim(0, max(ys) * 1.15)
        ax.set_title(f"64 B, callgrind (C/C++ {cg['c_vs_cpp']:.3f})", fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle("mofka-py: the same producer loop through C, C++ and Python (memory://)")
    _bench.savefig(fig, path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5, help="rounds of C, C++ and Python per size (default 5)")
    ap.add_argument("--warm", type=int, default=3, help="warm passes after the cold one in each process (default 3)")
    ap.add_argument("--events-64", type=int, default=2_000_000, help="64 B events per pass (default 2,000,000)")
    ap.add_argument("--events-1m", type=int, default=8_000, help="1 MiB events per pass (default 8,000)")
    ap.add_argument("--cg-events", type=int, default=20_000, help="callgrind: N and 3N events of 64 B")
    ap.add_argument("--cg-repeats", type=int, default=3, help="callgrind: runs of each (median; default 3)")
    ap.add_argument("--no-callgrind", action="store_true", help="skip the instruction counts")
    ap.add_argument("--skip-build", action="store_true", help="use the programs of the last build")
    ap.add_argument("--jobs", type=int, default=2, help="parallel build jobs (default 2)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 2 rounds, 1 warm pass, 1/10 of the events")
    ap.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    a = ap.parse_args()
    if a.quick:
        a.rounds, a.warm = 2, 1
        a.events_64, a.events_1m, a.cg_events = a.events_64 // 10, a.events_1m // 10, a.cg_events // 4
    machine = _bench.Machine()
    log(f"load average {machine.load_start:.2f} on {machine.cores} cores (another job running here changes the "
        f"timings; the callgrind counts do not move)")
    t_start = time.perf_counter()
    if a.skip_build:
        exe = {"c": BUILD / "bench_c", "cpp": BUILD / "bench_cpp"}
        missing = [str(p) for p in exe.values() if not p.exists()]
        if missing:
            raise SystemExit(f"bench_capi: --skip-build but {missing} missing; run without it")
    else:
        exe = build(a.jobs)

    rows: List[Dict[str, Any]] = []
    raw: Dict[str, Any] = {}
    for size, events in ((64, a.events_64), (MiB, a.events_1m)):
        rounds = []
        for k in range(a.rounds):
            order = APIS[k % len(APIS):] + APIS[:k % len(APIS)]
            got = {api: run_program(api, exe, size, events, a.warm) for api in order}
            rounds.append(got)
            warm = {api: _bench.median([p["ev_s"] for p in got[api][1:]]) or got[api][0]["ev_s"] for api in APIS}
            log(f"{human(size)} round {k + 1}/{a.rounds} ({' '.join(order)}): warm " +
                ", ".join(f"{api} {fmt_rate(warm[api])} ev/s" for api in APIS) +
                f"; C/C++ {warm['c'] / warm['cpp']:.3f}")
        raw[str(size)] = [{api: r[api] for api in APIS} for r in rounds]
        rows += summarise(size, events, rounds)

    cg = None if a.no_callgrind or not shutil.which("valgrind") else instructions(exe, a.cg_events, a.cg_repeats)
    if cg:
        log(f"callgrind: C {cg['c_per_event']:.0f}, C++ {cg['cpp_per_event']:.0f} instructions per 64 B event "
            f"(C/C++ {cg['c_vs_cpp']:.3f}); the C layer's own: {cg['c_layer_per_event']:.0f} per push")
    machine.finish()
    meta = {"command": machine.command, "host": machine.host, "cores": machine.cores, "python": machine.python,
            "date": machine.date, "load_start": machine.load_start, "load_end": machine.load_end,
            "rounds": a.rounds, "warm": a.warm, "quick": a.quick, "seconds": time.perf_counter() - t_start,
            "metadata": '{"step": 1, "var": "u"}', "storage": "memory://",
            "topic": {"partitions": 1, "segment_bytes": 64 * MiB, "retention_bytes": 256 * MiB},
            "targets": {"64": TARGET[64], str(MiB): TARGET[MiB]}}
    out = _bench.results_dir(a.out)
    _bench.write_json(out / "capi.json", {"meta": meta, "rows": rows, "callgrind": cg, "passes": raw})
    _bench.write_markdown(out / "capi.md", table(rows, cg, meta))
    plot(rows, cg, out / "capi.png")
    log(f"wrote {out / 'capi.json'}, capi.md, capi.png in {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
