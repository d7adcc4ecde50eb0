"""``mofka-py app instrument``: start the whole pipeline, inject the faults, collect, report.

Processes (every one bound to 127.0.0.1, started here and stopped by pid):

    cloud   tansu (Kafka protocol)  <- controller (confluent-kafka): results, acks in; steering out
              ^ results, acks   | steering
    site    mofka-py bridge  (site <-> cloud)
            mofka-py serve   <- analysis workers (consumer group "analysis"): frames in, results out
              ^ frames, acks    | steering
    job     mpiexec -n 1+M: rank 0 = job fabric server + bridge (job <-> site) + run control;
            ranks 1..M = detector modules pushing frames over MPI

The report is computed from what the cloud received (Kafka's topics, read back at the end), what
the site holds (results with their offsets) and the job's summary; see :mod:`.report`.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from .._common import FaultPlan, Live, LocalKafka, LocalService, Workdir, require, stop_process
from .._report import Report

SITE_NAME = "beamline-1"
JOB_NAME = "detector-job"
GROUP = "analysis"
STALL_S = 30.0      # no new frame at the site for this long while the job runs: fail, do not hang
KAFKA_TOPICS = {"instrument.results": 3, "instrument.acks": 1, "instrument.steering": 1}

SITE_BRIDGE = """\
# The site bridge: results and acknowledgements up to the cloud, steering commands down.
[bridge]
site = "{site}"
state_dir = "{state}"
connect_timeout = 30
status_interval = 0.2

[endpoints.site]
url = "{site_url}"

[endpoints.cloud]
url = "kafka://{kafka}"

[[rules]]
name = "results-up"
from = "site/results"
to = "cloud/instrument.results"
linger_ms = 2

[[rules]]
name = "acks-up"
from = "site/acks"
to = "cloud/instrument.acks"
linger_ms = 1

[[rules]]
name = "steering-down"
from = "cloud/instrument.steering"
to = "site/steering"
linger_ms = 1
"""


class Settings:
    """The run's size, from the options (``--quick`` picks a small one)."""

    def __init__(self, args: Any):
        quick = bool(getattr(args, "quick", False))
        self.frames = args.frames or (600 if quick else 1200)
        self.rate = args.rate or (30.0 if quick else 20.0)
        self.size = args.size or (512 if quick else 704)
        self.ranks, self.workers, self.partitions = args.ranks, args.workers, args.partitions
        self.seed = args.seed
        self.faults = bool(getattr(args, "faults", False))
        self.duration = self.frames / self.rate
        if self.size % 32 or self.size < 64:
            raise ValueError(f"--size must be a multiple of 32, at least 64 (got {self.size})")
        if self.ranks < 1 or self.workers < 1 or self.partitions < 1 or self.frames < 1 or self.rate <= 0:
            raise ValueError("--ranks, --workers, --partitions, --frames and --rate must be positive")
        if self.faults and self.workers < 2:
            raise ValueError("--faults kills an analysis worker: give --workers 2 or more")

    @property
    def frame_bytes(self) -> int:
        return self.size * self.size * 2

    def describe(self) -> str:
        return (f"{self.frames} frames of {self.size}x{self.size} uint16 ({self.frame_bytes / 2**20:.2f} MiB) at "
                f"{self.rate:g}/s from {self.ranks} module rank(s), {self.workers} analysis workers, "
                f"{self.partitions} partitions")


class Collector:
    """Follows the site's ``results`` and ``acks`` topics (metadata only) for the live display and the report."""

    def __init__(self, fab: Any):
        self.results: List[Dict[str, Any]] = []
        self.acks: List[Dict[str, Any]] = []
        self._fab = fab
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="instrument-collector", daemon=True)
        self.error: Optional[str] = None

    def start(self) -> "Collector":
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            with self._fab.topic("results").consumer(start="earliest", data=False) as res, \
                    self._fab.topic("acks").consumer(start="earliest", data=False) as acks:
                while not self._stop.is_set():
                    got = 0
                    for cons, out, with_id in ((res, self.results, True), (acks, self.acks, False)):
                        ev = cons.pull(timeout=0.0 if got else 0.05)
                        while ev is not None:
                            rec = ev.metadata
                            if with_id:
                                rec["site_id"] = (ev.partition, ev.offset)
                            out.append(rec)
                            got += 1
                            ev = cons.pull(timeout=0.0)
        except Exception as exc:  # the report says it; the run goes on
            self.error = f"{type(exc).__name__}: {exc}"

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def run(args: Any) -> Report:
    require("numpy", "scipy", "sklearn", "matplotlib", "mpi4py", "confluent_kafka")
    cfg = Settings(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Workdir("instrument", keep=bool(args.keep))
    live = Live(f"instrument: {cfg.describe()}{' with faults' if cfg.faults else ''}")
    procs: Dict[str, subprocess.Popen] = {}   # by name; "_svc" and "_kafka" are stopped last
    plan = FaultPlan(live)
    fabs: List[Any] = []
    try:
        return _pipeline(cfg, work.path, out, live, procs, plan, fabs)
    finally:
        plan.stop()
        live.close()                 # stops the health watcher before its fabric closes
        for fab in fabs:
            fab.close()
        for name in [n for n in reversed(list(procs)) if not n.startswith("_")] + ["_svc", "_kafka"]:
            if name in procs:
                stop_process(procs[name], timeout=20)
        if args.keep:
            print(f"instrument: kept {work.path}", file=sys.stderr)
        work.close()


def _start(procs: Dict[str, subprocess.Popen], name: str, cmd: List[str], log: Path,
           env: Optional[Dict[str, str]] = None) -> subprocess.Popen:
    with open(log, "ab") as fh:
        p = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    procs[name] = p
    return p


def _wait_files(files: List[Path], procs: Dict[str, subprocess.Popen], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(f.exists() for f in files):
        for name, p in procs.items():
            if p.poll() is not None and not name.startswith("_") and name != "mpiexec":
                raise RuntimeError(f"{name} exited early (code {p.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start within {timeout:.0f} s")
        time.sleep(0.05)


def _pipeline(cfg: Settings, wd: Path, out: Path, live: Live, procs: Dict[str, subprocess.Popen],
              plan: FaultPlan, fabs: List[Any]) -> Report:
    import mofka_py as mp

    from . import report as rep
    from .detector import B0, Detector

    py = sys.executable
    venv_bin = Path(py).parent
    mpiexec = venv_bin / "mpiexec"
    if not mpiexec.exists():
        raise RuntimeError(f"no mpiexec next to {py}: pip install mpich (the venv's mpiexec runs the job)")
    t_setup = time.time()

    kafka = LocalKafka(log=wd / "kafka.log")
    svc = LocalService(log=wd / "serve.log")
    for name, peer in (("_kafka", kafka), ("_svc", svc)):
        try:
            peer.start()
        finally:                          # stopped at the end even when it failed to come up
            if peer.proc is not None:
                procs[name] = peer.proc
    kafka.create_topics([n for n, k in KAFKA_TOPICS.items() if k == 1], partitions=1)
    kafka.create_topics([n for n, k in KAFKA_TOPICS.items() if k > 1], partitions=3)
    live.event(f"cloud Kafka at {kafka.bootstrap}, site service at {svc.url}")

    site = mp.connect(svc.url)
    fabs.append(site)
    retention = 512 << 20
    site.create_topic("frames", partitions=cfg.partitions, retention_bytes=retention, segment_bytes=32 << 20,
                      max_event_bytes=max(64 << 20, 2 * cfg.frame_bytes))
    site.create_topic("results", partitions=3)
    site.create_topic("acks")
    site.create_topic("steering")
    frames_topic = site.topic("frames")

    bridge_cfg = wd / "site-bridge.toml"
    bridge_cfg.write_text(SITE_BRIDGE.format(site=SITE_NAME, state=wd / "site-bridge-state", site_url=svc.url,
                                             kafka=kafka.bootstrap))
    ready = wd / "ready"
    ready.mkdir()
    env = dict(os.environ, MOFKA_PY_BRIDGE_READY_FILE=str(ready / "bridge"))
    _start(procs, "bridge", [py, "-m", "mofka_py.cli", "bridge", str(bridge_cfg)], wd / "site-bridge.log", env)
    workers = [f"w{i + 1}" for i in range(cfg.workers)]
    for i, w in enumerate(workers):
        _start(procs, w, [py, "-m", "mofka_py.apps.instrument.worker", "--site", svc.url, "--name", w,
                          "--ready", str(ready / w), "--seed", str(i)], wd / f"{w}.log")
    _wait_files([ready / "bridge"] + [ready / w for w in workers], procs, "the site bridge and the workers")
    live.event(f"site bridge and {cfg.workers} analysis workers up ({time.time() - t_setup:.1f} s)")

    collector = Collector(site).start()
    fault_log: Dict[str, Any] = {}

    def on_health(ev: Dict[str, Any]) -> None:
        # A worker's heartbeats stopped: if its process is gone, take it out of the group now (as the
        # pool does) instead of waiting for its session to expire. A live but slow one is left alone.
        node = ev.get("node")
        if ev.get("event") == "node_down" and ev.get("kind") == "worker" and node in procs:
            if procs[node].poll() is not None and ev.get("reason") != "left":
                fault_log.setdefault("detected", time.time())
                removed = frames_topic.remove_group_member(GROUP, node)
                fault_log.setdefault("removed", time.time())
                live.event(f"group {GROUP}: {node} removed ({'its partitions move' if removed else 'already gone'})")

    live.watch_health(site, on_health)

    summary_path, started = wd / "job-summary.json", wd / "job-started"
    bg_target = B0 * Detector(cfg.size).profile_median()
    _start(procs, "controller", [py, "-m", "mofka_py.apps.instrument.controller", "--kafka", kafka.bootstrap,
                                 "--modules", str(cfg.ranks), "--bg-target", f"{bg_target:.3f}",
                                 "--started", str(started), "--duration", str(cfg.duration),
                                 "--log", str(wd / "controller.jsonl")], wd / "controller.log")
    cmd = [str(mpiexec), "-n", str(cfg.ranks + 1), py, "-m", "mofka_py.apps.instrument.source",
           "--site", svc.url, "--frames", str(cfg.frames), "--rate", str(cfg.rate), "--size", str(cfg.size),
           "--partitions", str(cfg.partitions), "--seed", str(cfg.seed), "--site-name", JOB_NAME,
           "--summary", str(summary_path), "--state-dir", str(wd / "job-bridge-state"),
           "--started", str(started)]
    t_launch = time.time()
    job = _start(procs, "mpiexec", cmd, wd / "job.log")
    _wait_files([started], procs, "the MPI job", timeout=120)
    t0 = float(started.read_text())
    live.event(f"MPI job of {cfg.ranks + 1} ranks up ({time.time() - t_launch:.1f} s); acquisition starts")

    victim = workers[-1]
    if cfg.faults:
        kill_at = 0.3 * cfg.duration
        cut_at, cut_len = 0.55 * cfg.duration, max(3.0, 0.2 * cfg.duration)
        shift = t0 - time.time()

        def kill() -> None:
            fault_log["kill"] = time.time()
            os.kill(procs[victim].pid, signal.SIGKILL)

        def cut() -> None:
            fault_log["cut"] = time.time()
            kafka.pause()

        def restore() -> None:
            kafka.resume()
            fault_log["restore"] = time.time()

        plan.at(shift + kill_at, f"kill -9 analysis worker {victim}", kill)
        plan.at(shift + cut_at, f"site-to-cloud link cut (Kafka paused) for {cut_len:.0f} s", cut)
        plan.at(shift + cut_at + cut_len, "site-to-cloud link restored", restore)
        plan.start()

    # Acquisition: show progress until the job ends; fail, rather than hang, if frames stop arriving.
    progress, moved = -1, time.monotonic()
    while job.poll() is None:
        at_site = _status(live, cfg, t0, frames_topic, collector, wd)
        if at_site != progress:
            progress, moved = at_site, time.monotonic()
        elif at_site < cfg.frames and time.monotonic() - moved > STALL_S:
            raise RuntimeError(f"no frame reached the site for {STALL_S:.0f} s ({at_site}/{cfg.frames}); the job's "
                               f"log and bridge status are in {wd} (--keep keeps them). Frames over 1 MiB "
                               "can stall mofka-py serve: see 'Known issues' in docs/apps-instrument.md")
        time.sleep(0.25)
    if job.returncode != 0 or not summary_path.exists():
        raise RuntimeError(f"the MPI job failed (exit {job.returncode}); see {wd / 'job.log'} (--keep keeps it)")
    summary = json.loads(summary_path.read_text())
    live.event(f"acquisition done: {summary['frames']} frames; job forwarded everything to the site")

    # The end of the stream: workers finish what is left and leave the group.
    frames_topic.mark_complete()
    deadline = time.monotonic() + max(60.0, cfg.duration)
    for w in workers:
        p = procs[w]
        while p.poll() is None and time.monotonic() < deadline:
            _status(live, cfg, t0, frames_topic, collector, wd)
            time.sleep(0.25)
        if p.poll() is None:
            raise RuntimeError(f"analysis worker {w} did not finish; see {wd / (w + '.log')}")
    t_analysed = time.time()
    live.event(f"analysis done ({t_analysed - summary['t_sent']:.1f} s after the last frame)")

    # Everything the site produced reaches the cloud: wait until Kafka holds as many records.
    want = {"instrument.results": _end(site, "results"), "instrument.acks": _end(site, "acks")}
    deadline = time.monotonic() + 30
    while (len(collector.results) < want["instrument.results"] or len(collector.acks) < want["instrument.acks"]) \
            and time.monotonic() < deadline and collector.error is None:
        time.sleep(0.05)
    if not _wait_bridge(wd / "site-bridge-state" / "status.json",
                        {"results-up": want["instrument.results"], "acks-up": want["instrument.acks"]}, timeout=120.0):
        live.event("the site bridge did not commit every result and ack within 120 s (the report will tell)")
    else:
        live.event(f"the cloud holds every result ({time.time() - t_analysed:.1f} s after the analysis)")
    time.sleep(0.5)                                  # the controller reads the last ones
    stop_process(procs["controller"], timeout=15)
    collector.stop()
    t_read = time.time()
    cloud = rep.read_kafka(kafka.bootstrap, {"instrument.results": want["instrument.results"],
                                             "instrument.acks": want["instrument.acks"],
                                             "instrument.steering": _end(site, "steering")})
    live.event(f"read back what the cloud holds ({time.time() - t_read:.1f} s)")
    ctl_log = [json.loads(line) for line in (wd / "controller.jsonl").read_text().splitlines() if line.strip()]
    stop_process(procs["bridge"], timeout=20)        # drains and commits: exit 0 expected
    bridge_rc = procs["bridge"].returncode
    data = rep.RunData(cfg=cfg, summary=summary, site_results=collector.results, site_acks=collector.acks,
                       cloud=cloud, controller=ctl_log, faults=fault_log, victim=victim if cfg.faults else None,
                       events=list(live.events), bridge_rc=bridge_rc, t_analysed=t_analysed,
                       collector_error=collector.error)
    (wd / "run.json").write_text(json.dumps({k: v for k, v in vars(data).items() if k != "cfg"}, default=str))
    return rep.build(data, out)


def _end(fab: Any, topic: str) -> int:
    return sum(p["end_offset"] for p in fab.topic(topic).describe()["partitions"])


def _wait_bridge(status: Path, want: Dict[str, int], timeout: float) -> bool:
    """Wait until the site bridge committed ``want[rule]`` source events on each rule: it commits a round
    only after Kafka acknowledged it, so the cloud then holds them all."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            routes = {r["rule"]: r for r in json.loads(status.read_text())["routes"]}
            if all(routes[rule]["committed_events"] >= n for rule, n in want.items()):
                return True
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    return False


def _status(live: Live, cfg: Settings, t0: float, frames: Any, collector: Collector, wd: Path) -> int:
    """Redraw the status line; returns how many frames reached the site."""
    from . import report as rep

    now = time.time()
    try:
        at_site = sum(p["end_offset"] for p in frames.describe()["partitions"])
    except Exception:
        at_site = -1
    res = collector.results
    lat = [r["t_done"] - r["t_acq"] for r in res[-200:]]
    cloud = ""
    try:
        st = json.loads((wd / "site-bridge-state" / "status.json").read_text())
        up = next(r for r in st["routes"] if r["rule"] == "results-up")
        cloud = f" | cloud {up['forwarded']}" + ("" if up["state"] == "running" else " (link down, waiting)")
    except Exception:
        pass
    steer = {a["seq"] for a in collector.acks}
    live.status(f"t {now - t0:5.1f}/{cfg.duration:.0f} s | frames at site {at_site}/{cfg.frames} | analysed "
                f"{len(res)} | latency p50 {rep.pct(lat, 50):.2f} s max {max(lat, default=0):.2f} s{cloud} | "
                f"commands applied {len(steer)}")
    return at_site
