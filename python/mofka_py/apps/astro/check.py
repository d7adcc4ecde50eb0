"""After a run: read every topic back (sites and cloud), check the invariants, measure the latencies.

Invariants (``report.require``): every planned alert emitted, every emitted alert in the cloud exactly
once (by alert id, with the origin id of its site event), the streaming detector's coincidences equal a
batch re-analysis of the emitted alerts, every injected event detected, every follow-up command
delivered once to its telescope and its acknowledgement once to the cloud. Timings are reported, never
required.
"""
from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .._report import Report
from .coincidence import DAY, batch
from .detector import ACKS, ALERTS, COINCIDENCES, FOLLOWUP
from .scenario import OBSERVATORIES, Scenario, alert_from_meta
from .site import TELESCOPES

# An alert emitted this long before a fault's start or after its end still met it (seconds).
FAULT_MARGIN = (0.5, 1.0)


@dataclass
class Collected:
    """Everything read back from the sites, the cloud and the processes' files."""

    emitted: Dict[str, List[Tuple[Dict[str, Any], Optional[bytes]]]] = field(default_factory=dict)
    cloud: List[Tuple[Dict[str, Any], Dict[str, bytes], int, int]] = field(default_factory=list)
    coincidences: List[Dict[str, Any]] = field(default_factory=list)
    commands: List[Dict[str, Any]] = field(default_factory=list)
    at_telescope: Dict[str, List[Dict[str, Any]]] = field(default_factory=dict)
    acks_site: Dict[str, List[Dict[str, Any]]] = field(default_factory=dict)
    acks_cloud: List[Dict[str, Any]] = field(default_factory=list)
    receipts: Dict[str, List[float]] = field(default_factory=dict)
    detector: Dict[str, Any] = field(default_factory=dict)
    bridges: Dict[str, Optional[Dict[str, Any]]] = field(default_factory=dict)
    bridge_log_lines: Dict[str, int] = field(default_factory=dict)
    marks: Dict[str, float] = field(default_factory=dict)
    wan: Dict[str, Any] = field(default_factory=dict)
    errors: List[str] = field(default_factory=list)


def collect(run: Any) -> Collected:
    """Read the topics while the services and the broker still run."""
    from .readback import read_fabric, read_kafka

    col = Collected(marks=dict(run.marks))
    bootstrap = run.kafka.bootstrap
    try:
        for site in OBSERVATORIES:
            col.emitted[site] = read_fabric(run.fabs[site], "alerts", data=True)
        for site in TELESCOPES:
            col.at_telescope[site] = [m for m, _ in read_fabric(run.fabs[site], "followup")]
            col.acks_site[site] = [m for m, _ in read_fabric(run.fabs[site], "acks")]
        cloud = read_kafka(bootstrap, [ALERTS, COINCIDENCES, FOLLOWUP, ACKS])
        col.cloud = cloud[ALERTS]
        col.coincidences = [r[0] for r in cloud[COINCIDENCES]]
        col.commands = [r[0] for r in cloud[FOLLOWUP]]
        col.acks_cloud = [r[0] for r in cloud[ACKS]]
    except Exception as exc:  # reported as a failed check, not a crash: the report says what was read
        col.errors.append(f"reading back: {type(exc).__name__}: {exc}")
    wan = run.wan
    col.wan = {"mode": wan.mode, "outages": list(wan.outages), "resets": dict(wan.resets),
               "refused": dict(wan.refused)}
    return col


def collect_files(col: Collected, run: Any) -> None:
    """What the processes wrote, read once they stopped (receipts flushed, final bridge status)."""
    work: Path = run.work
    try:
        for line in (work / "receipts.txt").read_text().splitlines():
            aid, t = line.split()
            col.receipts.setdefault(aid, []).append(float(t))
    except OSError as exc:
        col.errors.append(f"detector receipts: {exc}")
    col.detector = run.detector_status()
    for site in list(OBSERVATORIES) + list(TELESCOPES):
        col.bridges[site] = run.bridge_status(site)
        try:
            col.bridge_log_lines[site] = len((run.logs / f"bridge-{site}.log").read_text().splitlines())
        except OSError:
            col.bridge_log_lines[site] = 0


def _pct(xs: List[float], q: float) -> float:
    s = sorted(xs)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q
    lo = int(k)
    return s[lo] + (s[min(lo + 1, len(s) - 1)] - s[lo]) * (k - lo)


def fmt_s(x: float) -> str:
    if x != x:
        return "n/a"
    if abs(x) < 1:
        return f"{x * 1000:.0f} ms"
    return f"{x:.1f} s"


def _dist(xs: List[float]) -> str:
    if not xs:
        return "none"
    return f"median {fmt_s(statistics.median(xs))}, p95 {fmt_s(_pct(xs, 0.95))}, max {fmt_s(max(xs))} (n={len(xs)})"


class _Groups:
    """Union-find over alert ids: coincident pairs linked into groups."""

    def __init__(self) -> None:
        self.parent: Dict[str, str] = {}

    def find(self, a: str) -> str:
        self.parent.setdefault(a, a)
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)


@dataclass
class Detection:
    """One follow-up command acknowledged at a telescope."""

    t: float                    # when its trigger alert was emitted, s after the first alert
    latency: float              # trigger alert emitted -> command at the telescope, s
    fault: Optional[str]        # the site whose fault it met (its trigger's observatory, or its telescope)
    telescope: str
    trigger: str
    t_sent: float
    t_recv: float


@dataclass
class Analysis:
    """The numbers behind the report and the plots."""

    t0: float
    alerts: Dict[str, Dict[str, Any]]                  # alert id -> emitted metadata (+ "site")
    transit: Dict[str, float]                          # alert id -> emission -> detector, s
    detection: List["Detection"]
    windows: List[Tuple[str, str, float, float]]       # (label, site, start, end), time.time()
    injected_found: Dict[str, bool]
    false_groups: List[List[str]]
    online_pairs: set
    targets: List[Tuple[float, float]]                  # (ra, dec) of the follow-up commands


def analyse(report: Report, col: Collected, sc: Scenario, t0: float, faults: bool, cut_site: str, kill_site: str,
            drained: bool) -> Analysis:
    """Check the invariants and measure the latencies into ``report``; the numbers for the plots."""
    for err in col.errors:
        report.require("read back", err, False, "every topic readable")
    if not drained:
        report.notes.append("the run did not drain in time: the checks below say what is missing")

    # -- alerts: planned -> emitted at the site -> in the cloud, each once --------------------------------
    planned = {s: [p.alert.id for p in sc.alerts if p.site == s] for s in OBSERVATORIES}
    alerts: Dict[str, Dict[str, Any]] = {}
    origin_of: Dict[str, str] = {}
    emitted_ok = True
    for site, evs in col.emitted.items():
        ids = [m["alert_id"] for m, _ in evs]
        emitted_ok &= ids == planned[site]
        for off, (m, _) in enumerate(evs):
            alerts[m["alert_id"]] = dict(m, site=site)
            origin_of[m["alert_id"]] = f"{site}/alerts/0/{off}"
    n_planned = sum(len(v) for v in planned.values())
    per = "/".join(f"{len(col.emitted.get(s, []))}" for s in OBSERVATORIES)
    report.require("alerts emitted (GW/gamma/neutrino)", f"{per}: {len(alerts)} of {n_planned} planned",
                   emitted_ok and len(alerts) == n_planned, "all, in order")

    in_cloud = Counter(m.get("alert_id") for m, _, _, _ in col.cloud)
    lost = sorted(set(alerts) - set(in_cloud))
    dups = sum(c - 1 for c in in_cloud.values() if c > 1)
    unknown = sorted(set(in_cloud) - set(alerts))
    bad_origin = sum(1 for m, h, _, _ in col.cloud
                     if m.get("alert_id") in origin_of and h.get("mofka.origin", b"").decode() != origin_of[m["alert_id"]])
    odd = (f", {len(unknown)} unknown" if unknown else "") + (f", {bad_origin} wrong origin" if bad_origin else "")
    report.require("alerts in the cloud, by id", f"{len(in_cloud)} of {len(alerts)}: {len(lost)} lost, "
                   f"{dups} duplicated{odd}",
                   not lost and not dups and not unknown and not bad_origin and len(alerts) > 0, "all, once")
    if lost:
        report.notes.append(f"alerts lost: {', '.join(lost[:10])}{' ...' if len(lost) > 10 else ''}")
    seen_twice = sum(1 for v in col.receipts.values() if len(v) > 1)
    report.require("alerts the cloud detector read", f"{len(col.receipts)} of {len(alerts)}, {seen_twice} twice",
                   len(col.receipts) == len(alerts) and not seen_twice, "all, once")

    # -- fault windows ------------------------------------------------------------------------------------
    mk = col.marks
    windows: List[Tuple[str, str, float, float]] = []
    if "cut" in mk:
        windows.append((f"{cut_site} link down", cut_site, mk["cut"], mk.get("restore", mk["cut"])))
    if "kill" in mk:
        windows.append((f"{kill_site} bridge down", kill_site, mk["kill"], mk.get("running", mk["kill"])))

    def during_fault(aid: str) -> Optional[Tuple[str, str, float, float]]:
        """The fault an alert met: emitted at its site from just before the fault (a round in flight when
        it struck) to just after (a restarted bridge's first acknowledgement)."""
        a = alerts.get(aid)
        if a is None:
            return None
        for w in windows:
            if a["site"] == w[1] and w[2] - FAULT_MARGIN[0] <= a["t_emit"] <= w[3] + FAULT_MARGIN[1]:
                return w
        return None

    transit = {aid: min(ts) - alerts[aid]["t_emit"] for aid, ts in col.receipts.items() if aid in alerts}
    calm = [v for aid, v in transit.items() if during_fault(aid) is None]
    report.add("alert -> cloud latency" + (" (no fault)" if windows else ""), _dist(calm))

    # -- coincidences: streaming = batch; injected found; false alarms -------------------------------------
    online = {tuple(sorted(c["alerts"])) for c in col.coincidences}
    emitted_alerts = sorted((alert_from_meta(m, d) for evs in col.emitted.values() for m, d in evs),
                            key=lambda a: alerts[a.id]["t_emit"])
    offline = set(batch(emitted_alerts, sc.params.far_max, sc.params.nside))
    report.require("streaming detector = batch re-analysis", f"{len(online)} = {len(offline)} coincident pairs",
                   online == offline, "same pairs")
    if online != offline:
        report.notes.append(f"pairs only online: {sorted(online - offline)[:5]}; only offline: "
                            f"{sorted(offline - online)[:5]}")
    event_of = {aid: e.id for e in sc.events for aid in e.alerts}
    groups = _Groups()
    for a, b in online:
        groups.union(a, b)
    true_pairs = [(a, b) for a, b in online if event_of.get(a) and event_of.get(a) == event_of.get(b)]
    found = {e.id: any(event_of.get(a) == e.id for a, _ in true_pairs) for e in sc.events}
    members: Dict[str, set] = {}
    for a, b in online:
        members.setdefault(groups.find(a), set()).update((a, b))
    true_roots = {groups.find(a) for a, _ in true_pairs}
    false_groups = [sorted(m) for r, m in members.items() if r not in true_roots]
    mixed = sum(1 for a, b in online if (event_of.get(a) or event_of.get(b)) and event_of.get(a) != event_of.get(b))
    kinds = Counter("+".join(e.kind) for e in sc.events)
    report.require("injected multi-messenger events detected", f"{sum(found.values())} of {len(found)}",
                   all(found.values()) and len(found) > 0, "all")
    sky_days = sc.params.sky_hours / 24
    report.add("false alarms (background-only coincidences)", f"{len(false_groups)} in {sky_days:.3g} sky days")
    report.notes.append(f"injected: {', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}; threshold: joint "
                        f"false-alarm rate below 1 per {1 / (sc.params.far_max * DAY):.3g} sky days; {mixed} "
                        f"background alert(s) also matched a real event (chance associations, in its group)")

    # -- follow-up: commands -> telescopes (once) -> acknowledgements -> cloud (once) ----------------------
    expected = Counter(c["command_id"] for c in col.commands)
    cmd_dups_sent = sum(n - 1 for n in expected.values() if n > 1)
    ok_cmds = not cmd_dups_sent and len(expected) > 0
    parts = []
    for tel in TELESCOPES:
        want = {cid for cid in expected if cid.endswith(f".{tel}")}
        got = Counter(m.get("command_id") for m in col.at_telescope.get(tel, []))
        acked = Counter(m.get("ack") for m in col.acks_site.get(tel, []))
        ok_cmds &= set(got) == want and all(n == 1 for n in got.values()) and set(acked) == want \
            and all(n == 1 for n in acked.values())
        extra = "" if sum(acked.values()) == len(want) else f" ({sum(acked.values())} acks)"
        parts.append(f"{tel} {sum(got.values())}/{len(want)}{extra}")
    report.require("follow-up commands at telescopes, acked", f"{len(expected)} sent; {', '.join(parts)}",
                   ok_cmds, "all, once")
    cloud_acks = Counter(m.get("ack") for m in col.acks_cloud)
    report.require("acknowledgements in the cloud", f"{sum(cloud_acks.values())} of {len(expected)}",
                   set(cloud_acks) == set(expected) and all(n == 1 for n in cloud_acks.values()) and len(expected) > 0,
                   "all, once")

    # -- detection latency: trigger alert emitted -> command at the telescope -----------------------------
    def command_fault(tel: str, t_sent: float) -> Optional[Tuple[str, str, float, float]]:
        """The fault a command met on its way down: its telescope's bridge down when it was sent."""
        for w in windows:
            if w[1] == tel and w[2] - FAULT_MARGIN[0] <= t_sent <= w[3] + FAULT_MARGIN[1]:
                return w
        return None

    detection: List[Detection] = []
    for tel, acks in col.acks_site.items():
        for ack in acks:
            trig = ack.get("trigger_alert")
            met = during_fault(trig) or command_fault(tel, ack["t_sent"])
            detection.append(Detection(ack["trigger_t_emit"] - t0, ack["t_recv"] - ack["trigger_t_emit"],
                                       met[1] if met else None, tel, trig, ack["t_sent"], ack["t_recv"]))
    normal = [d.latency for d in detection if d.fault is None]
    hit = [d.latency for d in detection if d.fault is not None]
    med = statistics.median(normal) if normal else float("nan")
    report.add("detection latency, alert -> telescope" + (" (no fault)" if windows else ""), _dist(normal),
               "median < 2 s", med < 2.0 if normal else None)
    down = [ack["t_recv"] - ack["t_sent"] for acks in col.acks_site.values() for ack in acks]
    report.add("  of which cloud -> telescope (command)", _dist(down))

    # -- what the faults cost -----------------------------------------------------------------------------
    if faults:
        if hit:
            report.add("detection latency during the faults", _dist(hit))
        for label, site, start, end in windows:
            if site in TELESCOPES:      # what waited: the commands sent to it while its bridge was down
                what = "commands"
                waited = [d for d in detection if d.telescope == site and start <= d.t_sent <= end]
                arrivals = [d.t_recv for d in waited]
            else:                       # the alerts its observatory emitted meanwhile
                what = "alerts"
                waited = [aid for aid, a in alerts.items() if a["site"] == site and start <= a["t_emit"] <= end]
                arrivals = [min(col.receipts[aid]) for aid in waited if aid in col.receipts]
            held = waited
            catch_up = max(0.0, max(arrivals) - end) if arrivals else float("nan")
            affected = [d.latency for d in detection if d.fault == site]
            extra = (max(affected) - med) if affected and normal else float("nan")
            cost = (f"{len(affected)} follow-up(s) met it, the latest +{fmt_s(extra)}" if affected
                    else "no follow-up met it")
            if "link" in label:
                wan = col.wan
                stalled = "stalled" if wan.get("mode") == "blackhole" else "reset"
                held_new = "held" if wan.get("mode") == "blackhole" else "refused"
                report.add(f"fault: {site} link cut {end - start:.1f} s",
                           f"{len(held)} alerts held, caught up {fmt_s(catch_up)} after; {cost}")
                report.faults.append(
                    f"{site}'s link to the cloud cut ({wan.get('mode')}) for {end - start:.1f} s: {len(held)} alerts "
                    f"waited at the site and were all in the cloud {fmt_s(catch_up)} after the link returned; "
                    f"{wan['resets'].get(site, 0)} open connections {stalled}, {wan['refused'].get(site, 0)} new "
                    f"ones {held_new}; {cost}")
            else:
                st = col.bridges.get(site) or {}
                skipped = sum(r.get("duplicates", 0) for r in st.get("routes", []))
                restart = end - mk.get("restart", end)
                where = "at the telescope" if site in TELESCOPES else "in the cloud"
                report.add(f"fault: {site} bridge kill -9, down {end - start:.1f} s",
                           f"{len(held)} {what} waited, caught up {fmt_s(catch_up)} after; {cost}")
                report.faults.append(
                    f"{site}'s bridge killed with kill -9 and restarted 1 s later, running again {fmt_s(restart)} "
                    f"after its restart ({end - start:.1f} s without a bridge): {len(held)} {what} waited and were "
                    f"all {where} {fmt_s(catch_up)} after; its recovery scans skipped {skipped} already forwarded; "
                    f"{cost}")
    report.notes.append(f"bridge log lines: {sum(col.bridge_log_lines.values())} "
                        f"({', '.join(f'{s} {n}' for s, n in col.bridge_log_lines.items())})")
    targets = sorted({(c["ra"], c["dec"]) for c in col.commands})
    return Analysis(t0, alerts, transit, detection, windows, found, false_groups, online, targets)
