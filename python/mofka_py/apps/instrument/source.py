"""The detector as an MPI job: ``mpiexec -n 1+M python -m mofka_py.apps.instrument.source ...``.

Rank 0 hosts the job's fabric (``mofka_py.mpi.fabric``, in memory) and is the job's gateway to the
site: a bridge inside it forwards ``frames`` and ``acks`` to the site service and brings
``steering`` commands down, and it runs the run control — it reads each command and tells the M
detector-module ranks the global frame from which it applies. Ranks 1..M each read out every M-th
frame of the detector (frame ``k`` on module ``k % M``), paced by one clock, and push them into the
job fabric over MPI. Only rank 0 needs a route out of the job (on many machines compute nodes have
none); the modules never wait on the site or the cloud, the job fabric absorbs their bursts.

A command applies from a global frame ``K`` chosen ahead of the modules (all of them switch at the
same frame); each module acknowledges it on ``acks`` with the first frame of its own that carried
it. At the end rank 0 waits until the bridge forwarded everything, and writes a summary (JSON).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Dict, List

TAG_STEER, TAG_DONE = 71, 72


def _parse(argv: List[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m mofka_py.apps.instrument.source")
    p.add_argument("--site", required=True, help="the site service (tcp://HOST:PORT)")
    p.add_argument("--frames", type=int, required=True, help="frames in all (over every module)")
    p.add_argument("--rate", type=float, required=True, help="frames per second (the whole detector)")
    p.add_argument("--size", type=int, default=1024, help="frame side in pixels (a multiple of 32)")
    p.add_argument("--partitions", type=int, default=6)
    p.add_argument("--seed", type=int, default=14)
    p.add_argument("--site-name", default="beamline-1")
    p.add_argument("--summary", required=True, help="where rank 0 writes the run summary (JSON)")
    p.add_argument("--state-dir", required=True, help="the in-job bridge's state directory")
    p.add_argument("--started", help="rank 0 writes the acquisition's start time (epoch s) here")
    p.add_argument("--retention-mib", type=int, default=512, help="job fabric: frames kept per partition")
    return p.parse_args(argv)


def _wait(req: Any, pause: float = 0.005) -> None:
    """Complete a non-blocking MPI request by polling (a blocking wait spins a core with MPICH)."""
    while not req.Test():
        time.sleep(pause)


def main(argv: List[str]) -> int:
    args = _parse(argv)
    from mpi4py import MPI

    import mofka_py.mpi

    world = MPI.COMM_WORLD
    if world.size < 2:
        print("source: needs at least 2 ranks (the gateway and one detector module)", file=sys.stderr)
        return 2
    seg = 32 << 20
    with mofka_py.mpi.fabric(world, servers=1, colocated=True, segment_bytes=seg,
                             max_event_bytes=max(64 << 20, 2 * args.size * args.size + (1 << 20))) as fab:
        comm = fab.comm
        if comm.rank == 0:
            fab.create_topic("frames", partitions=args.partitions, retention_bytes=args.retention_mib << 20,
                             segment_bytes=seg)
            fab.create_topic("acks")
            fab.create_topic("steering")
        _wait(comm.Ibarrier())
        t0 = comm.bcast(time.time() + 0.5 if comm.rank == 0 else None, root=0)
        if comm.rank == 0 and args.started:
            tmp = Path(args.started + ".tmp")
            tmp.write_text(repr(t0))
            os.replace(tmp, args.started)
        try:
            rc = _gateway(args, fab, comm, t0) if comm.rank == 0 else _module(args, fab, comm, t0)
        except BaseException:
            # The others would wait for this rank forever: end the whole job, saying why.
            traceback.print_exc()
            sys.stderr.flush()
            world.Abort(1)
        _wait(comm.Ibarrier())
    return rc


def _gateway(args: argparse.Namespace, fab: Any, comm: Any, t0: float) -> int:
    """Rank 0: the bridge to the site, the run control, the heartbeat; then the summary."""
    from mpi4py import MPI

    import mofka_py as mp
    from mofka_py.bridge import Bridge
    from mofka_py.services import Heartbeat

    modules = comm.size - 1
    cfg = {"bridge": {"site": args.site_name, "state_dir": args.state_dir, "connect_timeout": 30},
           "endpoints": {"job": {}, "site": {"url": args.site}},
           # One frame per produce request to the site: mofka-py serve can stop reading a connection
           # whose request body exceeds 1 MiB (docs/apps-instrument.md, "Known issues"), so bodies stay
           # under it as long as frames do.
           "rules": [{"name": "frames-to-site", "from": "job/frames", "to": "site/frames", "linger_ms": 1,
                      "batch_size": 1},
                     {"name": "acks-to-site", "from": "job/acks", "to": "site/acks", "linger_ms": 1},
                     {"name": "steering-to-job", "from": "site/steering", "to": "job/steering", "linger_ms": 1}]}
    bridge = Bridge(cfg, fabrics={"job": fab}).start()
    site = mp.connect(args.site)
    frames_route = next(r for r in bridge.routes if r.rule.name == "frames-to-site")
    beat = Heartbeat(site, "detector", kind="source", interval=0.5,
                     info=lambda: {"queue": frames_route.stats.lag or 0, "forwarded": frames_route.stats.forwarded})
    commands: List[Dict[str, Any]] = []
    done: Dict[int, Dict[str, Any]] = {}
    margin = max(2 * modules, int(args.rate * 0.1))
    status = MPI.Status()
    try:
        with fab.topic("steering").consumer(start="earliest", data=False) as steering:
            while len(done) < modules:
                ev = steering.pull(timeout=0.02)
                if ev is not None:
                    cmd = ev.metadata
                    now = time.time()
                    k_now = int(max(0.0, now - t0) * args.rate)
                    at = min(k_now + margin, args.frames) if now >= t0 else margin
                    for r in range(1, comm.size):
                        comm.send((cmd, at), dest=r, tag=TAG_STEER)
                    commands.append({"cmd_id": cmd.get("cmd_id"), "seq": cmd.get("seq"), "at_frame": at,
                                     "t_job": now})
                while comm.Iprobe(source=MPI.ANY_SOURCE, tag=TAG_DONE, status=status):
                    done[status.Get_source()] = comm.recv(source=status.Get_source(), tag=TAG_DONE)
        t_sent = time.time()
        idle = bridge.wait_idle(timeout=300)
        t_forwarded = time.time()
        routes = bridge.status()["routes"]
    finally:
        bridge.stop()
        beat.stop()
        site.close()
    frames = sum(d["frames"] for d in done.values())
    summary = {"t0": t0, "rate": args.rate, "frames": frames, "bytes": sum(d["bytes"] for d in done.values()),
               "modules": [done[r] for r in sorted(done)], "commands": commands, "t_sent": t_sent,
               "t_forwarded": t_forwarded, "forwarded_all": idle, "routes": routes}
    Path(args.summary).write_text(json.dumps(summary))
    return 0 if idle and frames == args.frames else 1


def _module(args: argparse.Namespace, fab: Any, comm: Any, t0: float) -> int:
    """Ranks 1..M: read out every M-th frame on the shared clock, obey commands, acknowledge them."""
    from .detector import Detector, Settings, flux

    modules, m = comm.size - 1, comm.rank - 1
    det = Detector(args.size, seed=args.seed, rank=m)
    st = Settings()
    schedule: List[tuple] = []      # (frame it applies from, command, came late), not yet applied
    dose = 0.0
    cmd_seq = 0
    j = -1                          # last global frame integrated into the dose
    sent = nbytes = 0
    late_max = 0.0
    late_cmds = 0
    frames = fab.topic("frames")
    with frames.producer(linger_ms=0.5, batch_bytes=8 << 20) as prod, \
            fab.topic("acks").producer(linger_ms=0.0) as acks:
        for k in range(m, args.frames, modules):
            while comm.Iprobe(source=0, tag=TAG_STEER):
                cmd, at = comm.recv(source=0, tag=TAG_STEER)
                late = at <= j         # it came after its frame: apply at the next one, and say so
                if late:
                    late_cmds += 1
                    at = j + 1
                schedule.append((at, cmd, late))
                schedule.sort(key=lambda s: (s[0], s[1].get("seq", 0)))
            t_k = t0 + k / args.rate
            wait = t_k - time.time()
            if wait > 0:
                time.sleep(wait)
            else:
                late_max = max(late_max, -wait)
            applied = []
            # Integrate the dose over every global frame since the last one (all modules share the beam).
            while j < k:
                j += 1
                while schedule and schedule[0][0] <= j:
                    at, cmd, late = schedule.pop(0)
                    if cmd.get("cmd") == "set_exposure":
                        st.exposure = float(cmd["exposure"])
                    elif cmd.get("cmd") == "move_sample":
                        st.position = int(cmd["position"])
                        dose = 0.0
                    cmd_seq = max(cmd_seq, int(cmd.get("seq", 0)))
                    applied.append((at, cmd, late))
                dose += flux(j / args.rate) * st.exposure / args.rate
            img, truth = det.frame(k, k / args.rate, st, dose)
            meta = {"frame": k, "module": m, "t_acq": t_k, "shape": list(img.shape), "exposure": st.exposure,
                    "position": st.position, "cmd_seq": cmd_seq, "truth": truth}
            prod.push(meta, data=img, partition=k % frames.partitions)
            sent += 1
            nbytes += img.nbytes
            now = time.time()
            for at, cmd, late in applied:
                acks.push({"cmd_id": cmd.get("cmd_id"), "seq": cmd.get("seq"), "cmd": cmd.get("cmd"),
                           "module": m, "at_frame": at, "frame": k, "t_applied": now,
                           "t_sent": cmd.get("t_sent"), "late": late})
        prod.flush()
        acks.flush()
    comm.send({"module": m, "frames": sent, "bytes": nbytes, "late_max_s": round(late_max, 3),
               "late_commands": late_cmds}, dest=0, tag=TAG_DONE)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
