"""``mofka-py app campaign``: the processes (a `mofka-py serve` service with file storage and
``--sync batch``, pool workers started as ``mofka-py worker`` processes), the faults, the
thinker's run, the report and the plots."""
from __future__ import annotations

import argparse
import math
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from .._common import FaultPlan, Live, LocalService, Workdir, require, stop_process
from .._report import Report

METHOD = "simulate=mofka_py.apps.campaign.tasks:simulate"


class WorkerProcs:
    """Pool workers as ``mofka-py worker`` processes, one per slot; a restarted slot gets a new
    worker id (``w0``, then ``w0-r1``...), so the group never confuses it with the one killed."""

    def __init__(self, url: str, pool: str, logs: Path, *, concurrency: int, isolation: str,
                 token_file: Optional[str] = None):
        self.url, self.pool, self.logs, self.token_file = url, pool, logs, token_file
        self.concurrency, self.isolation = concurrency, isolation
        self.procs: Dict[int, subprocess.Popen] = {}
        self.names: Dict[int, str] = {}
        self.restarts: Dict[int, int] = {}
        self.pids: List[int] = []
        self.env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self.env.pop("MOFKA_PY_URL", None)

    def start(self, slot: int) -> str:
        k = self.restarts.get(slot, -1) + 1
        self.restarts[slot] = k
        name = f"w{slot}" + (f"-r{k}" if k else "")
        cmd = [sys.executable, "-m", "mofka_py.cli", "--url", self.url, "worker", "--pool", self.pool,
               "--method", METHOD, "--worker-id", name, "--concurrency", str(self.concurrency),
               "--isolation", self.isolation] + (["--token-file", self.token_file] if self.token_file else [])
        with open(self.logs / f"{name}.log", "ab") as log:
            self.procs[slot] = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.pids.append(self.procs[slot].pid)
        self.names[slot] = name
        return name

    def kill(self, slot: int) -> str:
        """kill -9 the slot's worker."""
        proc = self.procs[slot]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        return self.names[slot]

    def stop(self) -> None:
        for proc in self.procs.values():
            stop_process(proc, signal.SIGTERM, timeout=30)


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("campaign")
    g.add_argument("--budget", type=int, help="simulations per arm (campaign and random search alike); "
                   "default 400, or as many as fit in --max-seconds with --quick")
    g.add_argument("--max-seconds", type=float, help="stop submitting after this many seconds and compare the "
                   "arms at the same number of simulations (default: none; 30 with --quick)")
    g.add_argument("--workers", type=int, default=2, help="worker processes started here (0: none, the workers "
                   "run elsewhere, e.g. under srun, against the service given by mofka-py --url)")
    g.add_argument("--pool", default="campaign", help="the pool's name (what the workers are started with)")
    g.add_argument("--concurrency", type=int, default=1, help="tasks each worker runs at once")
    g.add_argument("--isolation", choices=["thread", "process"], default="thread",
                   help="run tasks in the worker's threads or in child processes")
    g.add_argument("--in-flight", type=int, help="simulations kept in flight per arm (default: workers x concurrency)")
    g.add_argument("--retrain-every", type=int, help="retrain the surrogate every K campaign outcomes "
                   "(default 20; 10 with --quick)")
    g.add_argument("--candidates", type=int, help="candidates ranked by the surrogate at each retrain (half "
                   "offspring of the best so far, half random molecules) "
                   "(default 400; 200 with --quick)")
    g.add_argument("--kappa", type=float, default=1.0, help="exploration weight of the UCB ranking "
                   "(mean + kappa x spread of the trees)")
    g.add_argument("--parents", type=int, default=4, help="best molecules so far whose offspring the surrogate ranks")
    g.add_argument("--engine", choices=["xtb", "mmff"], help="xtb: GFN2-xTB ionization potential (default when "
                   "xtb is importable); mmff: RDKit-only MMFF94 dipole moment")
    g.add_argument("--conformers", type=int, default=4, help="conformers per molecule")
    g.add_argument("--max-atoms", type=int, default=14, help="heavy atoms per generated molecule")
    g.add_argument("--fault-every", type=float, help="seconds between faults with --faults "
                   "(default 20; 6 with --quick)")
    g.add_argument("--seed", type=int, default=1, help="random seed of the generators")


def _settings(args: argparse.Namespace) -> Dict[str, Any]:
    quick = bool(getattr(args, "quick", False))
    s = {
        "budget": args.budget or (10_000 if quick else 400),
        "max_seconds": args.max_seconds if args.max_seconds is not None else (30.0 if quick else None),
        "retrain_every": args.retrain_every or (10 if quick else 20),
        "candidates": args.candidates or (200 if quick else 400),
        "fault_every": args.fault_every or (6.0 if quick else 20.0),
        "in_flight": args.in_flight or args.workers * args.concurrency,
    }
    if args.workers == 0 and not getattr(args, "url", None):
        raise SystemExit("--workers 0 runs no worker here: give the service the workers use with "
                         "mofka-py --url tcp://HOST:PORT app campaign ... (and --in-flight)")
    for name in ("budget", "retrain_every", "candidates", "in_flight"):
        if s[name] < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be at least 1")
    if args.workers < 0 or args.concurrency < 1:
        raise SystemExit("--workers must be 0 or more and --concurrency at least 1")
    return s


def _plan_faults(plan: FaultPlan, every: float, workers: WorkerProcs, n_workers: int, svc: Optional[LocalService],
                 log: Dict[str, Any]) -> int:
    """A busy worker killed and restarted, the service killed and restarted on its data, then a
    second worker killed and restarted (kill -9 each time). Only the faults of processes started
    here: no worker faults without local workers, no service fault with a service given by --url."""
    restart_after = 3.0

    def kill(slot: int):
        def act() -> None:
            name = workers.kill(slot)
            log["faults"].append((log["now"](), f"kill -9 {name}"))
        return act

    def restart(slot: int):
        def act() -> None:
            name = workers.start(slot)
            log["faults"].append((log["now"](), f"start {name}"))
        return act

    def bounce_service() -> None:
        t = log["now"]()
        svc.kill()
        log["faults"].append((t, "kill -9 service"))
        svc.start()
        log["pids"].append(svc.proc.pid)
        log["outages"].append((t, log["now"]()))
        log["faults"].append((log["now"](), "service up"))

    planned = 0
    if n_workers:
        second = 1 % n_workers
        plan.at(every, "worker w0 killed (kill -9)", kill(0))
        plan.at(every + restart_after, "worker w0 restarted", restart(0))
        plan.at(3 * every + restart_after, f"worker w{second} killed (kill -9)", kill(second))
        plan.at(3 * every + 2 * restart_after, f"worker w{second} restarted", restart(second))
        planned += 4
    if svc is not None:
        plan.at(2 * every + restart_after, "fabric service killed (kill -9) and restarted on its data", bounce_service)
        planned += 1
    return planned


def _fmt(v: Optional[float], unit: str) -> str:
    return "-" if v is None else f"{v:.3f} {unit}"


def run(args: argparse.Namespace) -> Report:
    """Run the campaign; SIGTERM (a batch system's, ``timeout``'s) stops it like Ctrl-C: the
    processes it started are stopped and its working directory removed."""
    if threading.current_thread() is not threading.main_thread():
        return _run(args)

    def terminate(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    old = signal.signal(signal.SIGTERM, terminate)
    try:
        return _run(args)
    finally:
        signal.signal(signal.SIGTERM, old)


def _run(args: argparse.Namespace) -> Report:
    require("rdkit", "sklearn", "matplotlib")
    import mofka_py as mp
    from mofka_py.services import Pool

    from . import plots
    from .chem import load_seeds
    from .steer import ARMS, Thinker
    from .tasks import PROPERTIES, xtb_available

    s = _settings(args)
    have_xtb = xtb_available()
    engine = args.engine or ("xtb" if have_xtb else "mmff")
    if engine == "xtb" and not have_xtb:
        raise SystemExit("--engine xtb: xtb is not importable here (pip install xtb; Linux x86_64 wheels only)")
    key, prop, unit, how = PROPERTIES[engine]
    report = Report("campaign", f"AI-guided molecular screening campaign ({prop}, {how})")
    if engine == "mmff":
        report.notes.append("note: " + ("xtb is not importable here, so" if not have_xtb else "--engine mmff:") +
                            " the property is the MMFF94 dipole moment (RDKit only), not the xtb ionization potential")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Workdir("campaign", keep=args.keep)
    url = getattr(args, "url", None)           # mofka-py --url: a service that runs elsewhere
    token_file = getattr(args, "token_file", None)
    svc = None if url else LocalService(data=work.path / "fabric", sync="batch", log=work.path / "service.log")
    workers = WorkerProcs(url or "", args.pool, work.path, concurrency=args.concurrency, isolation=args.isolation,
                          token_file=token_file)
    live = Live(f"campaign: {args.workers} local workers x {args.concurrency}"
                + (f" (and those of pool {args.pool!r} at {url})" if url else "")
                + f", {s['in_flight']} in flight per arm, retrain every {s['retrain_every']}, {prop} by {engine}"
                + (f", faults every {s['fault_every']:g} s" if args.faults else "")
                + (f" (work dir {work.path})" if args.keep else ""))
    if url and args.faults:
        report.notes.append("note: the service was given by --url, so it is not killed; only local workers are")
    fab = pool = thinker = plan = None
    log: Dict[str, Any] = {"faults": [], "outages": [], "pids": [], "health": []}
    timing: Dict[str, float] = {}
    try:
        t_start = time.monotonic()
        if svc is not None:
            svc.start()
            log["pids"].append(svc.proc.pid)
            workers.url = url = svc.url
        for slot in range(args.workers):
            workers.start(slot)
        from mofka_py.service import read_token

        token = getattr(args, "token", None) or read_token(token_file) or None
        fab = mp.connect(url, token=token, reconnect_timeout_ms=120_000)
        pool = Pool(fab, args.pool, retries=2, timeout=120)

        def progress(th: Thinker) -> None:
            b = {a: th.best(a) for a in ARMS}
            live.status(f"{sum(th.finished_n.values())} done | {th.outstanding()} in flight | best {key}: "
                        f"campaign {_fmt(b['campaign'] and b['campaign'].value, unit)}, "
                        f"random {_fmt(b['random'] and b['random'].value, unit)} | {len(th.retrains)} retrains")

        thinker = Thinker(pool, load_seeds(), budget=s["budget"], in_flight=s["in_flight"],
                          retrain_every=s["retrain_every"], engine=engine, conformers=args.conformers,
                          max_atoms=args.max_atoms, candidates=s["candidates"], parents=args.parents, kappa=args.kappa,
                          seed=args.seed,
                          on_progress=progress)
        log["now"] = thinker.now
        live.watch_health(fab, on_event=lambda ev: log["health"].append((thinker.now(), ev["event"], ev["node"])))
        planned = 0
        if args.faults:
            plan = FaultPlan(live)
            planned = _plan_faults(plan, s["fault_every"], workers, args.workers, svc, log)
        timing["setup"] = time.monotonic() - t_start
        thinker.start()
        if plan is not None:
            plan.start()
        limit = s["max_seconds"]
        patience = 60.0 if args.quick else 300.0   # without any outcome: give up, report what is missing

        def until() -> bool:
            if limit is not None and not thinker.stopping and thinker.now() > limit:
                thinker.stop_submitting()
                live.event(f"{limit:g} s reached: no more submissions, waiting for the {thinker.outstanding()} "
                           "in flight")
            if thinker.finished():
                return True
            if thinker.now() - thinker.last_outcome > patience:
                live.event(f"no outcome for {patience:g} s: giving up on the {thinker.outstanding()} in flight")
                return True
            return False

        log["resumed"] = _run_steering(pool, until, live)
        timing["campaign"] = thinker.now()
        if plan is not None:
            plan.stop()
        thinker.close()
        stats = pool.status()
        _report(report, thinker, stats, s, key, unit, engine, log, timing)
        if plan is not None:
            report.faults.extend(plan.done)
            report.add("faults injected", f"{len(plan.done)} of {planned} planned")
        report.plots.extend(_plots(plots, out, thinker, log, prop, unit))
        records = _save(out / "campaign-results.json", thinker, log, s, args, engine, workers)
        report.notes.append(f"every simulation (molecule, value, worker, attempts, times): {records}")
    finally:
        if plan is not None:
            plan.stop()
        if thinker is not None:
            thinker.close()
        live.close()
        workers.stop()          # before the service: a worker whose service is gone keeps reconnecting
        if pool is not None:
            try:
                pool.close()
            except Exception as exc:
                report.notes.append(f"note: closing the pool: {exc}")
        if fab is not None:
            fab.close()
        if svc is not None:
            svc.stop()
        work.close()
    if args.keep:
        report.notes.append(f"working directory kept: {work.path} (fabric data, service and worker logs)")
    return report


def _run_steering(pool: Any, until: Any, live: Live) -> int:
    """``pool.run`` until ``until()``; returns how many times it had to be resumed. Pool.run
    commits after each outcome, and the first commit after the service restarted is refused
    (CommitFailed: the restarted service knows no owner of the results partition until the
    steering consumer's next heartbeat). The outcome was already handled, and an outcome
    delivered again after the rejoin is dropped by task id, so resuming is safe."""
    from mofka_py.errors import CommitFailed

    resumed = 0
    while True:
        try:
            pool.run(until=until)
            return resumed
        except CommitFailed as exc:
            resumed += 1
            if resumed > 20:
                raise
            live.event(f"steering: the service refused a commit ({type(exc).__name__}: it knows no owner of the "
                       "results partition until the steering consumer's next heartbeat); resuming")
            time.sleep(0.2)


def _report(report: Report, th: Any, stats: Dict[str, Any], s: Dict[str, Any], key: str, unit: str, engine: str,
            log: Dict[str, Any], timing: Dict[str, float]) -> None:
    from .steer import ARMS

    sims = list(th.sims.values())
    done = [x for x in sims if x.done is not None]
    n_arm = {a: th.finished_n[a] for a in ARMS}
    n_common = min(n_arm.values())
    span = max((x.done for x in done), default=0.0)
    report.add("simulations (outcomes)", f"{n_arm['campaign']} campaign + {n_arm['random']} random",
               f"{s['budget']} per arm" if s["max_seconds"] is None else f"as many as fit in {s['max_seconds']:g} s")
    report.add("throughput", f"{len(done) / span * 3600:,.0f} tasks/h" if span else "-")
    sim_s = [x.seconds for x in done if x.seconds is not None]
    rtt = [x.done - x.submitted for x in done]
    if sim_s:
        report.add("simulation time (median, on a worker)", f"{statistics.median(sim_s):.3f} s")
        report.add("round trip (median / max)", f"{statistics.median(rtt):.2f} / {max(rtt):.2f} s")
    # Surrogate
    times = [r["t"] for r in th.retrains]
    period = statistics.median([b - a for a, b in zip(times, times[1:])]) if len(times) > 1 else None
    report.require("surrogate retrains", len(th.retrains), len(th.retrains) >= 1, ">= 1")
    report.add("retraining period (median)", "-" if period is None else f"{period:.1f} s", "<= 600 s (seed)",
               None if period is None else period <= 600)
    if th.retrains:
        report.add("retrain time (median, in a thread)",
                   f"{statistics.median(r['seconds'] for r in th.retrains):.2f} s")
    guided = [x for x in done if x.arm == "campaign" and x.ok and x.predicted is not None]
    if len(guided) >= 3:
        mae = sum(abs(x.predicted - x.value) for x in guided) / len(guided)
        base = sum(abs(x.baseline - x.value) for x in guided) / len(guided)
        report.add("surrogate error on new molecules (MAE)", f"{mae:.2f} {unit} (training mean: {base:.2f})",
                   "below the mean's", mae < base)
    if th.train_errors:
        report.notes.append(f"note: {len(th.train_errors)} retrain(s) failed: {th.train_errors[0]}")
    # Science: the campaign against random search, at the same number of simulations.
    best = {a: th.best(a, first=n_common) for a in ARMS}
    top = {}
    for a in ARMS:
        vals = sorted((x.value for x in th.arm_sims(a)[:n_common] if x.ok), reverse=True)[:10]
        top[a] = sum(vals) / len(vals) if vals else None
    bc, br = best["campaign"], best["random"]
    report.add(f"best {key} found, campaign (first {n_common})",
               "-" if bc is None else f"{bc.value:.3f} {unit} {bc.smiles}")
    report.add(f"best {key} found, random search (first {n_common})",
               "-" if br is None else f"{br.value:.3f} {unit} {br.smiles}")
    report.add("campaign vs random: best", "-" if bc is None or br is None else f"{bc.value - br.value:+.3f} {unit}")
    report.add("campaign vs random: mean of top 10",
               "-" if None in top.values() else f"{top['campaign']:.3f} vs {top['random']:.3f} {unit}",
               "campaign higher", None if None in top.values() else top["campaign"] > top["random"])
    # Invariants: each task's outcome exactly once.
    lost = [x.task_id for x in sims if x.done is None]
    report.require("tasks lost", len(lost), not lost, "0")
    report.require("duplicate outcomes at the thinker", th.duplicates, th.duplicates == 0, "0")
    once = all(th.outcomes_seen.get(x.task_id) == 1 for x in sims) and len(th.outcomes_seen) == len(sims)
    report.require("every task: exactly one outcome",
                   f"{sum(v == 1 for v in th.outcomes_seen.values())} of {len(sims)}", once, "all")
    ok = [x for x in done if x.ok]
    engines = sorted({x.engine for x in ok})
    real = bool(ok) and all(x.engine == engine and isinstance(x.value, float) and math.isfinite(x.value) for x in ok)
    report.require("property computed by", ", ".join(engines) or "-", real, engine)
    failed = [x for x in done if not x.ok]
    report.add("simulations failed (not retried: deterministic)",
               f"{len(failed)}" + (f" (e.g. {failed[0].error[:60]})" if failed else ""))
    # What the faults cost.
    retries = sum(max(0, x.attempts - 1) for x in done)
    report.add("retried attempts", retries)
    report.add("attempts lost with a worker (pool)", stats.get("worker_lost", 0))
    report.add("late duplicates dropped by the pool", stats.get("dropped", 0))
    if log.get("resumed"):
        report.add("steering resumed after a refused commit", log["resumed"])
    if log["faults"]:
        med = statistics.median(rtt) if rtt else 0.0
        hit = [x for x in done if any(x.submitted <= t <= x.done for t, lbl in log["faults"] if "kill" in lbl)]
        extra = sum(max(0.0, (x.done - x.submitted) - med) for x in hit)
        report.add("tasks in flight at a fault", f"{len(hit)} (extra time {extra:.1f} s in total, "
                   f"worst {max(((x.done - x.submitted) for x in hit), default=0):.1f} s)")
        ends = sorted(x.done for x in done)
        gaps = [(b - a, a) for a, b in zip(ends, ends[1:])]
        if gaps:
            g, at = max(gaps)
            report.add("longest pause between outcomes", f"{g:.1f} s (at {at:.1f} s)")
        for t0, t1 in log["outages"]:
            report.add("service down (kill -9 to restarted)", f"{t1 - t0:.1f} s")
    report.add("setup (service and workers started)", f"{timing.get('setup', 0):.1f} s")
    report.add("campaign phase (first submit to last outcome)", f"{timing.get('campaign', 0):.1f} s")


def _save(path: Path, th: Any, log: Dict[str, Any], s: Dict[str, Any], args: argparse.Namespace, engine: str,
          workers: WorkerProcs) -> str:
    """The run's record: every simulation, the retrains, the faults and the processes started."""
    import dataclasses

    import orjson

    rec = {"engine": engine, "settings": s, "workers": args.workers, "concurrency": args.concurrency,
           "sims": [dataclasses.asdict(x) for x in th.sims.values()], "outcomes_seen": th.outcomes_seen,
           "retrains": th.retrains, "faults": log["faults"], "outages": log["outages"], "health": log["health"],
           "pids": {"service": log["pids"], "workers": workers.pids}}
    path.write_bytes(orjson.dumps(rec, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    return str(path)


def _plots(plots: Any, out: Path, th: Any, log: Dict[str, Any], prop: str, unit: str) -> List[str]:
    from .steer import ARMS

    n_common = min(th.finished_n.values())
    arms = {a: [x.value if x.ok else None for x in th.arm_sims(a)] for a in ARMS}
    paths = [plots.best_so_far(out / "campaign-best.png", arms, f"{prop} ({unit})", n_common)]
    comp = {a: [(x.done, x.ok) for x in th.arm_sims(a)] for a in ARMS}
    downs = [(t, node) for t, kind, node in log["health"] if kind == "node_down"]
    paths.append(plots.timeline(out / "campaign-timeline.png", comp, log["faults"], log["outages"],
                                [r["t"] for r in th.retrains], downs))
    return paths
