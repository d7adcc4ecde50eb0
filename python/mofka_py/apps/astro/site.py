"""What runs at a site, next to its fabric service: an observatory emitting alerts, or a telescope
taking follow-up commands and acknowledging them.

    python -m mofka_py.apps.astro.site observatory --site icecube --url tcp://HOST:PORT --plan icecube.npz --t0 EPOCH
    python -m mofka_py.apps.astro.site telescope --site ztf --url tcp://HOST:PORT

An observatory replays its planned alerts (metadata and a sparse HEALPix map, see
:mod:`.scenario`) into its fabric's ``alerts`` topic, each at its time, stamping ``t_emit``. A
telescope reads ``followup`` (commands the site bridge brings down from the cloud), stamps
``t_recv``, plans its tiles and pushes an acknowledgement to ``acks`` (the bridge takes it up).
Both publish a heartbeat on ``__health`` whose ``queue`` is what the site bridge has not yet sent
up (its consumer group's lag): a link cut shows as a growing backlog. SIGTERM stops either.
"""
from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict

import mofka_py as mp
from mofka_py.services import Heartbeat

# telescope -> (where, lowest and highest declination it observes, field of view in deg^2)
TELESCOPES: Dict[str, tuple] = {
    "ztf": ("Palomar Observatory (ZTF)", -30.0, 90.0, 47.0),
    "rubin": ("Cerro Pachon (Vera C. Rubin Observatory)", -90.0, 30.0, 9.6),
}


def uplink_backlog(topic: Any, group: str) -> Callable[[], Dict[str, Any]]:
    """Heartbeat info: events of ``topic`` the bridge's group has not committed (not yet acknowledged
    by the cloud)."""
    def info() -> Dict[str, Any]:
        try:
            return {"queue": int(topic.describe_group(group)["lag"])}
        except mp.Error:
            return {}
    return info


def _stop_on_signal() -> threading.Event:
    stop = threading.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *_: stop.set())
    return stop


def _ready(path: str) -> None:
    if path:
        tmp = Path(path + ".tmp")
        tmp.write_text("ready")
        tmp.replace(path)


def observatory(args: argparse.Namespace) -> int:
    from .scenario import load_site

    stop = _stop_on_signal()
    plan = load_site(Path(args.plan))
    with mp.connect(args.url) as fab:
        alerts = fab.topic("alerts")
        with Heartbeat(fab, f"{args.site}-observatory", kind="observatory",
                       info=uplink_backlog(alerts, args.bridge_group)), alerts.producer(linger_ms=1) as prod:
            _ready(args.ready)
            for meta, skymap in plan:
                wait = args.t0 + meta.pop("wall") - time.time()
                if wait > 0 and stop.wait(wait):
                    break
                meta["t_emit"] = time.time()
                prod.push(meta, data=skymap or None)
            prod.flush()
            print(f"{args.site}: {len(plan)} alerts emitted", flush=True)
            stop.wait()     # keep the heartbeat (and its backlog) going until told to stop
    return 0


def telescope(args: argparse.Namespace) -> int:
    stop = _stop_on_signal()
    where, _, _, fov = TELESCOPES[args.site]
    with mp.connect(args.url) as fab:
        acks = fab.topic("acks")
        with Heartbeat(fab, f"{args.site}-telescope", kind="telescope",
                       info=uplink_backlog(acks, args.bridge_group)), \
                fab.topic("followup").consumer(group=f"telescope-{args.site}") as cmds, \
                acks.producer(linger_ms=1) as prod:
            _ready(args.ready)
            while not stop.is_set():
                ev = cmds.pull(timeout=0.2)
                if ev is None:
                    continue
                t_recv = time.time()
                cmd = ev.metadata
                area = math.pi * float(cmd.get("radius_deg") or 1.0) ** 2
                prod.push({"ack": cmd.get("command_id"), "coincidence": cmd.get("coincidence"),
                           "revision": cmd.get("revision"), "telescope": args.site, "observatory": where,
                           "status": "scheduled", "tiles": max(1, math.ceil(area / fov)), "t_recv": t_recv,
                           "t_sent": cmd.get("t_sent"), "trigger_alert": cmd.get("trigger_alert"),
                           "trigger_t_emit": cmd.get("trigger_t_emit"), "command_origin": cmd.get("mofka_origin")})
                ev.ack()
    return 0


def main(argv: Any = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mofka_py.apps.astro.site", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="role", required=True)
    for role in ("observatory", "telescope"):
        p = sub.add_parser(role)
        p.add_argument("--site", required=True)
        p.add_argument("--url", required=True, help="the site's fabric (tcp://HOST:PORT)")
        p.add_argument("--bridge-group", required=True, help="consumer group of the site bridge's uplink rule")
        p.add_argument("--ready", default="", help="file written once running")
        if role == "observatory":
            p.add_argument("--plan", required=True, help="the alerts to emit (scenario.save_site)")
            p.add_argument("--t0", type=float, required=True, help="wall-clock epoch of the start of emission")
    args = ap.parse_args(argv)
    return observatory(args) if args.role == "observatory" else telescope(args)


if __name__ == "__main__":
    sys.exit(main())
