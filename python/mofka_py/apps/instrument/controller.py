"""The cloud controller: ``python -m mofka_py.apps.instrument.controller --kafka HOST:PORT ...``.

Plain confluent-kafka, as a cloud service next to Octopus or MSK would run it. It reads the
analysis results and the detector's acknowledgements that the site bridge forwards, and sends
steering commands that the bridge brings back down to the detector:

- ``move_sample``: radiation damage fades the crystal; when the predicted quality (the model's,
  once it has learnt from 60 frames; the measured one before) falls below 65% of the best seen at
  this position, it moves the sample to a fresh crystal. Checked first: no exposure saves a
  crystal that is gone.
- ``set_exposure``: the beam flux drifts; the controller keeps the background (flux x exposure)
  near ``--bg-target`` by scaling the exposure when it is off by more than 18%.

Decisions use fresh results only (acquired at most 2.5 s before they reached the cloud): after a
cut of the link the backlog that arrives at once describes the past. After a command it waits
until every module acknowledged it and for a second of frames taken with it (dead time).
Everything it saw and sent goes to ``--log`` (JSON lines) for the report.
"""
from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any, Deque, Dict, List, Optional

RESULTS, ACKS, STEERING = "instrument.results", "instrument.acks", "instrument.steering"
FRESH_S = 2.5
SETTLE_S = 1.0
DEADBAND = 0.18
FADE = 0.65


class Controller:
    """The decision rules, separate from Kafka so they can be read (and tested) alone."""

    def __init__(self, modules: int, bg_target: float, until: float):
        self.modules, self.bg_target, self.until = modules, bg_target, until
        self.window: Deque[Dict[str, Any]] = deque(maxlen=400)
        self.seq = 0
        self.pending: Optional[Dict[str, Any]] = None    # last command, until every module applied it
        self.acked: Dict[int, set] = {}
        self.applied_at = 0.0                            # when the last command was applied everywhere
        self.exposure, self.position = 1.0, 0
        self.last_frame = -1
        self.ref = 0.0

    def result(self, r: Dict[str, Any], now: float) -> None:
        if r["frame"] > self.last_frame:     # results come in any order: the newest frame has the settings
            self.last_frame = r["frame"]
            self.exposure, self.position = r["exposure"], r["position"]
        if now - r["t_acq"] <= FRESH_S:
            self.window.append(r)

    def ack(self, a: Dict[str, Any], now: float) -> None:
        self.acked.setdefault(a["seq"], set()).add(a["module"])
        if self.pending and a["seq"] == self.pending["seq"] and len(self.acked[a["seq"]]) >= self.modules:
            self.pending = None
            self.applied_at = now

    def decide(self, now: float) -> Optional[Dict[str, Any]]:
        """The next command, or None."""
        if now >= self.until:
            return None
        if self.pending is not None:
            if now - self.pending["t_sent"] < 15.0:
                return None
            self.pending = None      # never acknowledged (the link is down?): decide afresh
        since = self.applied_at + SETTLE_S
        w = [r for r in self.window if r["cmd_seq"] >= self.seq and r["t_acq"] >= since and r["t_acq"] >= now - 1.5]
        if len(w) < 10:
            return None
        bg = statistics.median(r["background"] for r in w)
        q = statistics.median(r["quality_pred"] if r["model_seen"] >= 60 else r["n_peaks"] for r in w)
        self.ref = max(self.ref, q)
        # A fading crystal first: no exposure setting brings it back (after a cut of the link it may be dead).
        if q < FADE * self.ref:
            reason = f"quality {q:.1f} < {FADE:.0%} of {self.ref:.1f}, the best at this position"
            self.ref = 0.0
            return self._command("move_sample", now, position=self.position + 1, reason=reason)
        if abs(bg / self.bg_target - 1.0) > DEADBAND:
            exposure = round(min(3.0, max(0.3, self.exposure * self.bg_target / bg)), 2)
            return self._command("set_exposure", now, exposure=exposure,
                                 reason=f"background {bg:.1f} vs target {self.bg_target:.1f}")
        return None

    def _command(self, kind: str, now: float, **fields: Any) -> Dict[str, Any]:
        self.seq += 1
        cmd = {"cmd_id": f"c{self.seq}", "seq": self.seq, "cmd": kind, "t_sent": time.time(), **fields}
        self.pending = cmd
        return cmd


def main(argv: List[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m mofka_py.apps.instrument.controller")
    p.add_argument("--kafka", required=True, help="bootstrap servers of the cloud Kafka")
    p.add_argument("--modules", type=int, required=True, help="detector modules that acknowledge each command")
    p.add_argument("--bg-target", type=float, required=True, help="background (counts/pixel) to hold")
    p.add_argument("--started", required=True, help="file where the job writes its start time (epoch s)")
    p.add_argument("--duration", type=float, required=True,
                   help="acquisition length (s); no command is sent in its last 3 s")
    p.add_argument("--log", required=True, help="JSON lines of what it saw and sent")
    args = p.parse_args(argv)

    from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

    stop: List[int] = []
    signal.signal(signal.SIGTERM, lambda s, f: stop.append(s))
    signal.signal(signal.SIGINT, lambda s, f: stop.append(s))
    conf = {"bootstrap.servers": args.kafka, "group.id": "instrument-controller", "enable.auto.commit": False,
            "fetch.wait.max.ms": 10, "logger": _quiet()}
    cons = Consumer(conf)
    prod = Producer({"bootstrap.servers": args.kafka, "linger.ms": 0, "logger": _quiet()})
    parts = []
    for topic in (RESULTS, ACKS):
        md = cons.list_topics(topic, timeout=30).topics[topic]
        parts += [TopicPartition(topic, q, OFFSET_BEGINNING) for q in sorted(md.partitions)]
    cons.assign(parts)
    ctl = Controller(args.modules, args.bg_target, until=float("inf"))
    started = Path(args.started)
    log = open(args.log, "w")
    next_decision = 0.0
    try:
        while not stop:
            for m in cons.consume(500, 0.05):
                if m.error():
                    continue
                now = time.time()
                rec = json.loads(m.value())
                headers = dict(m.headers() or [])
                origin = headers.get("mofka.origin", b"").decode()
                if m.topic() == RESULTS:
                    ctl.result(rec, now)
                    log.write(json.dumps({"kind": "result", "frame": rec["frame"], "worker": rec["worker"],
                                          "origin": origin, "t_recv": now}) + "\n")
                else:
                    ctl.ack(rec, now)
                    log.write(json.dumps({"kind": "ack", "seq": rec["seq"], "module": rec["module"],
                                          "t_recv": now}) + "\n")
            now = time.time()
            if ctl.until == float("inf") and started.exists():
                ctl.until = float(started.read_text()) + args.duration - 3.0
            if now >= next_decision:
                next_decision = now + 0.2
                cmd = ctl.decide(now)
                if cmd is not None:
                    prod.produce(STEERING, json.dumps(cmd).encode())
                    log.write(json.dumps({"kind": "command", **cmd}) + "\n")
                    log.flush()
            prod.poll(0)
    finally:
        prod.flush(5)
        cons.close()
        log.close()
    return 0


def _quiet() -> Any:
    """A logger for librdkafka that drops its lines (the broker is paused on purpose during the link cut)."""
    import logging

    log = logging.getLogger("mofka_py.apps.instrument.kafka")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    return log


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
