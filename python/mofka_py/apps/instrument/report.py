"""The instrument run's report: service levels, invariants checked by frame ids, fault costs, plots.

Inputs (:class:`RunData`): the job's summary (frames and bytes produced per module, where each
command landed), every result the site holds (with its offset there), what the cloud Kafka holds
at the end (results, acknowledgements, steering commands, each with its ``mofka.origin``), the
controller's log (when each result reached it) and when each fault was injected.

Invariants (``Report.require``): every frame acquired was analysed; a frame analysed twice only in
the killed worker's at-least-once window (docs/consumer-groups.md: results it stored after its
last commit, each repeated once by the partition's next owner); every site result in the cloud
exactly once; every steering command applied by every module, and every frame carrying the
settings of the commands acknowledged up to it.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .._report import Report

SLO_S = 10.0


def pct(values: List[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank) of ``values``; 0 when empty."""
    if not values:
        return 0.0
    v = sorted(values)
    return v[min(len(v) - 1, max(0, math.ceil(q / 100.0 * len(v)) - 1))]


def _lat(values: List[float]) -> str:
    return f"{pct(values, 50):.2f} / {pct(values, 95):.2f} / {max(values, default=0):.2f} s"


@dataclass
class RunData:
    cfg: Any
    summary: Dict[str, Any]
    site_results: List[Dict[str, Any]]
    site_acks: List[Dict[str, Any]]
    cloud: Dict[str, List[Dict[str, Any]]]
    controller: List[Dict[str, Any]]
    faults: Dict[str, float] = field(default_factory=dict)
    victim: Optional[str] = None
    events: List[str] = field(default_factory=list)
    bridge_rc: Optional[int] = None
    t_analysed: float = 0.0
    collector_error: Optional[str] = None


def read_kafka(bootstrap: str, expect: Dict[str, int], timeout: float = 60.0,
               idle: float = 1.0) -> Dict[str, List[Dict[str, Any]]]:
    """Every record of the topics of ``expect`` (value parsed as JSON, origin header, partition, offset).

    Reads from the start of each partition until each topic has at least ``expect[topic]`` records and
    then nothing more came for ``idle`` seconds (a duplicate would show), or ``timeout``. High watermarks
    are not used: tansu reports the last batch's base offset + 1 as the end of a partition.
    """
    import json
    import time

    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    cons = Consumer({"bootstrap.servers": bootstrap, "group.id": "instrument-report", "enable.auto.commit": False,
                     "fetch.wait.max.ms": 10})
    out: Dict[str, List[Dict[str, Any]]] = {t: [] for t in expect}
    try:
        assign = [TopicPartition(t, p, OFFSET_BEGINNING) for t in expect
                  for p in sorted(cons.list_topics(t, timeout=10).topics[t].partitions)]
        cons.assign(assign)
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        while time.monotonic() < deadline:
            msgs = cons.consume(1000, 0.1)
            for m in msgs:
                if m.error():
                    continue
                headers = dict(m.headers() or [])
                out[m.topic()].append({"value": json.loads(m.value()), "partition": m.partition(),
                                       "offset": m.offset(),
                                       "origin": headers.get("mofka.origin", b"").decode()})
                last = time.monotonic()
            done = all(len(out[t]) >= n for t, n in expect.items())
            if done and time.monotonic() - last >= idle:
                break
    finally:
        cons.close()
    return out


def build(d: RunData, out: Path) -> Report:
    cfg, s = d.cfg, d.summary
    t0 = s["t0"]
    rep = Report(app="instrument", title=f"instrument: {cfg.describe()}")
    results = d.site_results
    by_frame: Dict[int, List[Dict[str, Any]]] = defaultdict(list)
    for r in results:
        by_frame[r["frame"]].append(r)
    first = {f: min(rs, key=lambda r: r["t_done"]) for f, rs in by_frame.items()}

    # -- throughput and latency -----------------------------------------------------------------------
    nbytes = s["bytes"]
    acq_s = max(1e-9, max((r["t_acq"] for r in first.values()), default=t0) - t0 + 1.0 / cfg.rate)
    done_s = max(1e-9, max((r["t_done"] for r in first.values()), default=t0) - t0)
    rep.add("data acquired", f"{nbytes / 1e9:.2f} GB, {nbytes / acq_s / 1e9:.3f} GB/s")
    rep.add("sustained analysis (bytes / time)", f"{nbytes / done_s / 1e9:.3f} GB/s",
            f">= {nbytes / acq_s / 1e9:.3f} (acquired)", nbytes / done_s >= 0.9 * nbytes / acq_s)
    lat = [r["t_done"] - r["t_acq"] for r in first.values()]
    within = sum(1 for x in lat if x <= SLO_S)
    rep.add("frame -> analysis latency p50/p95/max", _lat(lat), f"<= {SLO_S:g} s", max(lat, default=0) <= SLO_S)
    parts = [(r["t_site"] - r["t_acq"], r["t_recv"] - r["t_site"], r["t_done"] - r["t_recv"])
             for r in first.values() if "t_site" in r]
    if parts:
        rep.add("latency p50: job->site / queue / analysis",
                " / ".join(f"{pct([p[i] for p in parts], 50):.3f}" for i in range(3)) + " s")
    rep.add("frames analysed within 10 s", f"{100.0 * within / max(1, len(lat)):.1f}%")
    cloud_t: Dict[int, float] = {}
    for e in d.controller:
        if e.get("kind") == "result":
            cloud_t[e["frame"]] = min(cloud_t.get(e["frame"], math.inf), e["t_recv"])
    cloud_lat = [cloud_t[f] - first[f]["t_acq"] for f in cloud_t if f in first]
    rep.add("frame -> cloud controller p50/p95/max", _lat(cloud_lat))

    # -- invariants ---------------------------------------------------------------------------------
    rep.require("frames acquired, forwarded by the job", f"{s['frames']}/{cfg.frames}",
                s["frames"] == cfg.frames and bool(s.get("forwarded_all")), "all")
    missing = sorted(set(range(cfg.frames)) - set(by_frame))
    rep.require("frames analysed (none lost)", f"{cfg.frames - len(missing)}/{cfg.frames}", not missing, "all")
    if missing:
        rep.notes.append(f"frames never analysed: {len(missing)}, e.g. {missing[:10]}")
    dup_frames = {f: rs for f, rs in by_frame.items() if len(rs) > 1}
    ok_window, why, window = check_window(dup_frames, results, d.victim, d.faults.get("kill"))
    n_dup = sum(len(rs) - 1 for rs in dup_frames.values())
    if d.victim is None:
        rep.require("frames analysed twice", n_dup, n_dup == 0, "0 (no failure)")
    else:
        rep.require("frames analysed twice", n_dup, ok_window, "in kill window")
    if why:
        rep.notes.append(f"frames analysed twice: {n_dup}, {why}")
    ok_cloud, cloud_msg = check_cloud(results, d.site_acks, d.cloud)
    rep.require("results, acks in the cloud", cloud_msg, ok_cloud, "each once")
    steer_ok, steer_msg, rtts, loops = _check_steering(d, first)
    rep.require("steering applied by every module", steer_msg, steer_ok, "all; frames obey")
    if rtts:
        rep.add("steering: sent -> applied p50/max", f"{pct(rtts, 50):.2f} / {max(rtts):.2f} s")
        rep.add("steering: sent -> ack in cloud p50/max",
                f"{pct(loops, 50):.2f} / {max(loops):.2f} s" if loops else "n/a")
    rep.add("site bridge drained at stop", "yes" if d.bridge_rc == 0 else f"no (exit {d.bridge_rc})")
    if d.collector_error:
        rep.notes.append(f"the site collector stopped early: {d.collector_error}")

    # -- science ------------------------------------------------------------------------------------
    warm = [r for r in first.values() if r["model_seen"] >= 60 and r.get("quality_true") is not None]
    if warm:
        mae = lambda key: sum(abs(r[key] - r["quality_true"]) for r in warm) / len(warm)  # noqa: E731
        mean_true = sum(r["quality_true"] for r in warm) / len(warm)
        rep.add("quality MAE: model / no rehearsal / peaks", f"{mae('quality_pred'):.1f} / "
                f"{mae('quality_pred_plain'):.1f} / {mae('n_peaks'):.1f} (of {mean_true:.0f})")

    # -- faults -------------------------------------------------------------------------------------
    _fault_costs(rep, d, first, lat, cloud_t, window)
    rep.plots.extend(_plots(d, first, cloud_t, out))
    return rep


def check_window(dups: Dict[int, List[Dict[str, Any]]], results: List[Dict[str, Any]], victim: Optional[str],
                 kill: Optional[float]) -> Tuple[bool, str, int]:
    """Whether every repeated frame lies in the killed worker's at-least-once window.

    The window, per partition the victim held: the results it stored after its last commit, i.e. a
    tail of its results there, each analysed once more by the partition's next owner after the kill.
    """
    if not dups:
        return True, "", 0
    if victim is None or kill is None:
        return False, "with no worker killed", 0
    bad = []
    tails: Dict[int, List[int]] = defaultdict(list)
    for f, rs in dups.items():
        mine = [r for r in rs if r["worker"] == victim]
        others = [r for r in rs if r["worker"] != victim]
        if len(rs) != 2 or len(mine) != 1 or mine[0]["t_done"] > kill or others[0]["t_done"] < kill:
            bad.append(f)
        else:
            tails[mine[0]["partition"]].append(mine[0]["offset"])
    for p, offs in tails.items():
        theirs = sorted(r["offset"] for r in results if r["worker"] == victim and r["partition"] == p)
        if sorted(offs) != theirs[len(theirs) - len(offs):]:
            bad.extend(offs)
    n = sum(len(v) for v in tails.values())
    if bad:
        return False, f"outside the window: e.g. {sorted(bad)[:5]}", n
    return True, f"the killed worker's last uncommitted results on {len(tails)} partition(s)", n


def _parse_origin(origin: str) -> Optional[Tuple[str, int, int]]:
    parts = origin.rsplit("/", 3)
    if len(parts) != 4:
        return None
    return parts[1], int(parts[2]), int(parts[3])


def check_cloud(results: List[Dict[str, Any]], acks: List[Dict[str, Any]],
                cloud: Dict[str, List[Dict[str, Any]]]) -> Tuple[bool, str]:
    """Whether the cloud holds every result once (by its site origin, no unknown ones) and every
    steering acknowledgement once; ``(ok, "results/expected + acks/expected ...")``."""
    site_ids = {tuple(r["site_id"]) for r in results}
    seen: Dict[Tuple[int, int], int] = defaultdict(int)
    for rec in cloud.get("instrument.results", []):
        o = _parse_origin(rec["origin"])
        if o is not None and o[0] == "results":
            seen[(o[1], o[2])] += 1
    twice = sum(1 for n in seen.values() if n > 1)
    lost = len(site_ids - set(seen))
    extra = len(set(seen) - site_ids)
    n_acks = len(cloud.get("instrument.acks", []))
    ack_origins = {rec["origin"] for rec in cloud.get("instrument.acks", [])}
    ok = twice == 0 and lost == 0 and extra == 0 and n_acks == len(acks) == len(ack_origins)
    msg = f"{len(seen)}/{len(site_ids)} + {n_acks}/{len(acks)}"
    if twice or lost or extra:
        msg += f" ({twice} twice, {lost} missing, {extra} unknown)"
    return ok, msg


def _check_steering(d: RunData, first: Dict[int, Dict[str, Any]]) -> Tuple[bool, str, List[float], List[float]]:
    modules = d.cfg.ranks
    commands = sorted((rec["value"] for rec in d.cloud.get("instrument.steering", [])), key=lambda c: c["seq"])
    acks: Dict[int, Dict[int, Dict[str, Any]]] = defaultdict(dict)      # seq -> module -> ack
    for rec in d.cloud.get("instrument.acks", []):
        a = rec["value"]
        acks[a["seq"]][a["module"]] = a
    unapplied = [c["cmd_id"] for c in commands if len(acks.get(c["seq"], {})) < modules]
    # Each module's frames from the acknowledged frame on carry the command (cmd_seq and settings).
    wrong = 0
    for r in first.values():
        m, f = r["module"], r["frame"]
        seq, exposure, position = 0, 1.0, 0
        for c in commands:
            a = acks.get(c["seq"], {}).get(m)
            if a is not None and a["at_frame"] <= f:
                seq = c["seq"]
                if c["cmd"] == "set_exposure":
                    exposure = c["exposure"]
                elif c["cmd"] == "move_sample":
                    position = c["position"]
        if r["cmd_seq"] != seq or abs(r["exposure"] - exposure) > 1e-9 or r["position"] != position:
            wrong += 1
    rtts, loops = [], []
    ack_seen: Dict[int, float] = {}
    for e in d.controller:
        if e.get("kind") == "ack":
            ack_seen[e["seq"]] = max(ack_seen.get(e["seq"], 0.0), e["t_recv"])
    for c in commands:
        got = acks.get(c["seq"], {})
        if len(got) >= modules:
            rtts.append(max(a["t_applied"] for a in got.values()) - c["t_sent"])
            if c["seq"] in ack_seen:
                loops.append(ack_seen[c["seq"]] - c["t_sent"])
    kinds = defaultdict(int)
    for c in commands:
        kinds[c["cmd"]] += 1
    what = "+".join(f"{n} {k.split('_')[-1]}" for k, n in sorted(kinds.items())) or "none sent"
    ok = not unapplied and wrong == 0
    msg = f"{len(commands) - len(unapplied)}/{len(commands)} ({what})"
    if wrong:
        msg += f", {wrong} frames disobey"
    if unapplied:
        msg += f", not applied: {unapplied[:3]}"
    return ok, msg, rtts, loops


def _recovery(points: List[Tuple[float, float]], start: float, end: float) -> Tuple[float, float, float, float]:
    """What a fault from ``start`` to ``end`` cost, from (acquired, arrived) times of the frames.

    Returns the latency p95 over the 5 s before the fault, the largest latency of frames acquired from
    2 s before it until 10 s after ``end``, the threshold (twice that p95, at least 1 s) and when,
    after ``end``, the backlog had drained: the arrival of the last of those frames above the
    threshold (0: none above it)."""
    pre = [b - a for a, b in points if start - 5.0 <= a < start - 0.5]
    p95 = pct(pre, 95)
    hit = sorted((a, b) for a, b in points if start - 2.0 <= a <= end + 10.0)
    threshold = max(1.0, 2.0 * p95)
    if not hit:
        return p95, 0.0, threshold, 0.0
    spike = max(b - a for a, b in hit)
    late = [b for a, b in hit if b - a > threshold]
    return p95, spike, threshold, max(0.0, max(late) - end) if late else 0.0


def _fault_costs(rep: Report, d: RunData, first: Dict[int, Dict[str, Any]], lat: List[float],
                 cloud_t: Dict[int, float], window: int) -> None:
    t0 = d.summary["t0"]
    f = d.faults
    analysed = [(r["t_acq"], r["t_done"]) for r in first.values()]
    if "kill" in f:
        kill = f["kill"]
        p95, spike, threshold, caught = _recovery(analysed, kill, kill)
        victim_parts = {r["partition"] for r in d.site_results if r["worker"] == d.victim and r["t_done"] <= kill}
        moved = [r["t_done"] for r in d.site_results if r["partition"] in victim_parts and r["worker"] != d.victim
                 and r["t_done"] > kill]
        detect = f"detected (health node_down) after {f['detected'] - kill:.1f} s, " if "detected" in f else ""
        rep.add("kill: latency max (p95 before)", f"{spike:.2f} s ({p95:.2f} s)", f"<= {SLO_S:g} s", spike <= SLO_S)
        rep.add("kill: back to the latency before", f"{caught:.1f} s after the kill")
        if moved:
            where = f"its partitions {sorted(victim_parts)} analysed by others from {min(moved) - kill:.1f} s"
        else:
            where = "its partitions never moved"
        rep.faults.append(f"kill -9 of {d.victim} at {kill - t0:.1f} s: {detect}{where}; frame latency up to "
                          f"{spike:.2f} s (p95 {p95:.2f} s before), back under {threshold:.1f} s {caught:.1f} s after "
                          f"the kill; {window} result(s) repeated (its at-least-once window)")
    if "cut" in f:
        cut, restore = f["cut"], f.get("restore", f["cut"])
        to_cloud = [(r["t_acq"], cloud_t[k]) for k, r in first.items() if k in cloud_t]
        p95, spike, threshold, caught = _recovery(to_cloud, cut, restore)
        during = [b - a for a, b in analysed if cut <= a <= restore]
        sent = [c for c in d.cloud.get("instrument.steering", []) if cut <= c["value"]["t_sent"] <= restore]
        rep.add("cut: cloud latency max (p95 before)", f"{spike:.2f} s ({p95:.2f} s)")
        rep.add("cut: cloud back to the latency before", f"{caught:.1f} s after it returned")
        rep.add("cut: site analysis p95 meanwhile", f"{pct(during, 95):.2f} s", f"<= {SLO_S:g} s",
                pct(during, 95) <= SLO_S)
        rep.faults.append(
            f"site-to-cloud link cut at {cut - t0:.1f} s for {restore - cut:.1f} s: analysis at the site went on "
            f"(p95 {pct(during, 95):.2f} s); results reached the cloud up to {spike:.1f} s late (p95 {p95:.2f} s "
            f"before) and back under {threshold:.1f} s {caught:.1f} s after the link returned; {len(sent)} "
            f"steering command(s) sent meanwhile (the controller acts on fresh results only)")


def _plots(d: RunData, first: Dict[int, Dict[str, Any]], cloud_t: Dict[int, float], out: Path) -> List[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = d.summary["t0"]
    f = d.faults
    paths = []

    def faults(ax: Any) -> None:
        if "kill" in f:
            ax.axvline(f["kill"] - t0, color="crimson", lw=1.2, ls="--", label=f"kill -9 {d.victim}")
        if "cut" in f:
            ax.axvspan(f["cut"] - t0, f.get("restore", f["cut"]) - t0, color="orange", alpha=0.25,
                       label="site-to-cloud link cut")

    rs = sorted(first.values(), key=lambda r: r["t_acq"])
    fig, ax = plt.subplots(figsize=(10, 4.5))
    workers = sorted({r["worker"] for r in rs})
    for w in workers:
        mine = [r for r in rs if r["worker"] == w]
        ax.scatter([r["t_acq"] - t0 for r in mine], [max(1e-3, r["t_done"] - r["t_acq"]) for r in mine], s=5,
                   label=f"analysis by {w}")
    cl = [(r["t_acq"] - t0, cloud_t[r["frame"]] - r["t_acq"]) for r in rs if r["frame"] in cloud_t]
    if cl:
        ax.scatter([x for x, _ in cl], [max(1e-3, y) for _, y in cl], s=3, color="grey", alpha=0.5,
                   label="reached the cloud controller")
    ax.axhline(SLO_S, color="black", lw=1, label=f"service level {SLO_S:g} s")
    faults(ax)
    ax.set_yscale("log")
    ax.set_xlabel("acquisition time (s)")
    ax.set_ylabel("latency from acquisition (s)")
    ax.set_title("frame latency: to analysis at the site, to the cloud")
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    fig.tight_layout()
    p = out / "instrument-latency.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(str(p))

    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    x = [r["t_acq"] - t0 for r in rs]
    ax.plot(x, [r["quality_true"] for r in rs], color="black", lw=0.6, label="true quality")
    ax.scatter(x, [r["quality_pred"] for r in rs], s=4, color="tab:blue", label="predicted (SGD + rehearsal)")
    ax.scatter(x, [r["n_peaks"] for r in rs], s=2, color="tab:green", alpha=0.4, label="measured (peak finder)")
    ax.set_ylabel("detectable Bragg peaks per frame")
    rate = d.cfg.rate
    applied: Dict[int, Dict[str, Any]] = {}
    for rec in d.cloud.get("instrument.acks", []):
        a = rec["value"]
        applied.setdefault(a["seq"], a)
    cmds = {rec["value"]["seq"]: rec["value"] for rec in d.cloud.get("instrument.steering", [])}
    for seq, a in applied.items():
        c = cmds.get(seq, {})
        t = a["at_frame"] / rate
        color = "tab:purple" if c.get("cmd") == "move_sample" else "tab:orange"
        for axis in (ax, ax2):
            axis.axvline(t, color=color, lw=0.8, alpha=0.8)
        label = f"pos {c['position']}" if c.get("cmd") == "move_sample" else f"exp {c.get('exposure', '?')}"
        ax.text(t, ax.get_ylim()[1], label, rotation=90, fontsize=6, va="top", ha="right", color=color)
    faults(ax)
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title("frame quality, predicted vs true; steering where it took effect (orange: exposure, "
                 "purple: sample moved)", fontsize=10)
    ax2.plot(x, [r["flux"] for r in rs], color="tab:red", lw=0.8, label="beam flux (truth)")
    ax2.plot(x, [r["exposure"] for r in rs], color="tab:orange", lw=1.2, drawstyle="steps-post", label="exposure")
    ax2.plot(x, [r["flux"] * r["exposure"] for r in rs], color="tab:brown", lw=0.8, ls=":", label="flux x exposure")
    ax2.set_xlabel("acquisition time (s)")
    ax2.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    p = out / "instrument-quality.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(str(p))
    return paths
