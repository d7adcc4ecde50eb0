"""The cloud's coincidence detector: reads every site's alerts from Kafka, finds coincidences, sends
follow-up commands to the telescopes.

    python -m mofka_py.apps.astro.detector --bootstrap HOST:PORT --status FILE --receipts FILE \
        --far-max HZ --nside 128 [--librdkafka security.protocol=SASL_SSL ...]

Plain confluent-kafka, as a service next to a cloud Kafka (Octopus, MSK) would run. Each alert on
``astro.alerts`` (the sites' bridges fan in there; the sparse HEALPix map travels in the
``mofka.data`` header) is compared with every earlier alert of the other messengers
(:class:`.coincidence.Finder`). A coincident pair goes to ``astro.coincidences``. The first pair of a
new group of alerts, or a later pair more significant than the group's best, sends an ``observe``
command to ``astro.followup`` for each telescope that can see the target (by declination); the
telescope sites' bridges bring them down. ``--receipts`` gets one line per alert, the time it
reached the detector; ``--status`` counts, rewritten every 0.25 s. SIGTERM stops it after a flush.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from .coincidence import MESSENGERS, Alert, Finder, Pair
from .scenario import alert_from_meta
from .site import TELESCOPES

ALERTS, FOLLOWUP, COINCIDENCES, ACKS = "astro.alerts", "astro.followup", "astro.coincidences", "astro.acks"
CLIENT_ID = "cloud-detector"


def _write(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)


class Groups:
    """Alerts linked by coincident pairs; each group remembers its most significant pair."""

    def __init__(self) -> None:
        self.of: Dict[str, str] = {}
        self.best: Dict[str, Pair] = {}
        self.revision: Dict[str, int] = {}

    def add(self, pair: Pair) -> tuple:
        """(group id, whether to send a command: a new group or a more significant pair)."""
        ga, gb = self.of.get(pair.first.id), self.of.get(pair.second.id)
        gid = ga or gb
        if gid is None:
            gid = f"C{len(self.best) + 1:04d}"
            self.revision[gid] = 0
        for a in (pair.first.id, pair.second.id):
            self.of.setdefault(a, gid)
        best = self.best.get(gid)
        if best is None:
            self.best[gid] = pair
            return gid, True
        if pair.far < best.far:
            self.best[gid] = pair
            self.revision[gid] += 1
            return gid, True
        return gid, False


def main(argv: Any = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mofka_py.apps.astro.detector", description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--status", required=True)
    ap.add_argument("--receipts", required=True)
    ap.add_argument("--far-max", type=float, required=True, help="joint false-alarm-rate threshold, Hz")
    ap.add_argument("--nside", type=int, required=True)
    ap.add_argument("--librdkafka", action="append", default=[], metavar="KEY=VALUE",
                    help="a librdkafka setting for its clients, e.g. security.protocol=SASL_SSL (repeatable)")
    args = ap.parse_args(argv)
    settings = dict(kv.split("=", 1) for kv in args.librdkafka)

    import astropy.units as u
    from astropy.coordinates import SkyCoord
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

    from . import sky
    try:     # imported now, not at the first coincidence (healpy takes a second to import)
        import healpy  # noqa: F401
    except ImportError:
        pass

    stop = threading.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *_: stop.set())
    conf = {"bootstrap.servers": args.bootstrap, "client.id": CLIENT_ID, **settings}
    cons = Consumer(dict(conf, **{"group.id": "astro-detector", "enable.auto.commit": False,
                                  "fetch.wait.max.ms": 10, "fetch.error.backoff.ms": 50}))
    prod = Producer(dict(conf, **{"enable.idempotence": True, "linger.ms": 1}))
    parts: Optional[List[int]] = None
    deadline = time.monotonic() + 30
    while parts is None:
        try:
            t = cons.list_topics(ALERTS, timeout=5).topics.get(ALERTS)
            if t is not None and not t.error and t.partitions:
                parts = sorted(t.partitions)
        except KafkaException:
            pass
        if parts is None:
            if time.monotonic() > deadline:
                print(f"detector: no topic {ALERTS} on {args.bootstrap}", file=sys.stderr)
                return 1
            time.sleep(0.2)
    from confluent_kafka import OFFSET_BEGINNING
    cons.assign([TopicPartition(ALERTS, p, OFFSET_BEGINNING) for p in parts])

    finder = Finder(args.far_max, args.nside)
    groups = Groups()
    counts = {"alerts": 0, "pairs": 0, "groups": 0, "commands": 0, "pid": os.getpid(), "ready": True}
    status, receipts = Path(args.status), open(args.receipts, "a", buffering=1 << 16)
    next_status = 0.0

    def send_command(gid: str, pair: Pair, trigger: Alert, t_emit: float) -> None:
        a, b = pair.first, pair.second
        if a.skymap is not None and b.skymap is not None:
            ra, dec, radius = sky.product_peak(a.skymap, b.skymap, args.nside)
        else:
            ra, dec, radius = sky.lobes_peak(a.lobes, b.lobes)
        target = SkyCoord(ra=ra * u.deg, dec=dec * u.deg).to_string("hmsdms", precision=1)
        rev = groups.revision[gid]
        for tel, (_, dec_lo, dec_hi, _) in TELESCOPES.items():
            if not dec_lo <= dec <= dec_hi:
                continue
            cmd = {"cmd": "observe", "command_id": f"{gid}.{rev}.{tel}", "telescope": tel, "coincidence": gid,
                   "revision": rev, "ra": round(ra, 4), "dec": round(dec, 4), "radius_deg": round(radius, 3),
                   "target": target, "messengers": sorted({a.messenger, b.messenger}, key=MESSENGERS.index),
                   "alerts": [a.id, b.id], "far_hz": pair.far, "overlap": round(pair.overlap, 3),
                   "trigger_alert": trigger.id, "trigger_t_emit": t_emit, "t_sent": time.time()}
            prod.produce(FOLLOWUP, json.dumps(cmd).encode(), key=tel.encode())
            counts["commands"] += 1

    try:
        while not stop.is_set():
            # poll() returns at the first record; consume(n, t) would wait for n records or the whole t
            first = cons.poll(0.1)
            msgs = [first] + cons.consume(499, 0) if first is not None else []
            for m in msgs:
                if m.error():
                    continue
                t_cloud = time.time()
                meta = json.loads(m.value())
                data = None
                for k, v in m.headers() or ():
                    if k == "mofka.data":
                        data = v
                alert = alert_from_meta(meta, data)
                receipts.write(f"{alert.id} {t_cloud:.6f}\n")
                counts["alerts"] += 1
                for pair in finder.add(alert):
                    gid, command = groups.add(pair)
                    counts["pairs"] += 1
                    counts["groups"] = len(groups.best)
                    notice = {"coincidence": gid, "alerts": [pair.first.id, pair.second.id],
                              "messengers": [pair.first.messenger, pair.second.messenger],
                              "overlap": round(pair.overlap, 3), "far_hz": pair.far, "trigger_alert": alert.id,
                              "t_detect": time.time(), "command": command}
                    prod.produce(COINCIDENCES, json.dumps(notice).encode())
                    if command:
                        send_command(gid, pair, alert, float(meta.get("t_emit", t_cloud)))
            prod.poll(0)
            if msgs or time.monotonic() >= next_status:
                receipts.flush()
                _write(status, counts)
                next_status = time.monotonic() + 0.25
    finally:
        left = prod.flush(10)
        receipts.close()
        counts["unflushed"] = left
        _write(status, counts)
        cons.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
