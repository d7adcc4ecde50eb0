"""Health and resource events on the fabric.

Nodes (pool workers, fabric services, anything that calls :class:`Heartbeat`) publish a
heartbeat to the system topic ``__health`` every ``interval`` seconds: who they are, CPU and
memory use, queue depth and lag. A :class:`HealthMonitor` follows that topic and turns it into
events — ``node_up`` (a node appears or comes back), ``node_down`` (no heartbeat for
``down_after`` seconds) and ``slow`` (heartbeats arriving late, or a node reporting a growing
backlog) — that applications subscribe to (``monitor.events()``, ``@pool.on_event(...)``,
``mofka-py health``). A monitor can also publish what it sees to ``__health.events`` so that
processes without their own monitor see the same events.

Example::

    with Heartbeat(fab, "worker-3", kind="worker", info=lambda: {"queue": 4}):
        ...  # the node's work
    for ev in HealthMonitor(fab).events(timeout=10):
        print(ev["event"], ev["node"])
"""
from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional

import orjson

from ..api import Fabric
from ..errors import InvalidArgument, TopicExists, TopicNotFound

HEALTH_TOPIC = "__health"
EVENTS_TOPIC = "__health.events"

__all__ = ["Heartbeat", "HealthMonitor", "HEALTH_TOPIC", "EVENTS_TOPIC", "ensure_topic", "process_usage"]


def ensure_topic(fab: Fabric, name: str, partitions: int = 1, **config: Any):
    """Open ``name``, creating it when missing (a race with another creator is fine)."""
    try:
        return fab.topic(name)
    except TopicNotFound:
        try:
            return fab.create_topic(name, partitions=partitions, **config)
        except TopicExists:
            return fab.topic(name)


class _CpuMeter:
    """CPU share of this process since the last call (1.0 = one core), from os.times()."""

    def __init__(self) -> None:
        self._last = (time.monotonic(), self._cpu())

    @staticmethod
    def _cpu() -> float:
        t = os.times()
        return t.user + t.system

    def share(self) -> float:
        now, cpu = time.monotonic(), self._cpu()
        then, cpu0 = self._last
        self._last = (now, cpu)
        return max(0.0, (cpu - cpu0) / max(now - then, 1e-6))


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def process_usage(meter: Optional[_CpuMeter] = None) -> Dict[str, Any]:
    """CPU share (since the meter's last reading) and resident memory of this process."""
    return {"cpu": round(meter.share(), 3) if meter else None, "rss": _rss_bytes()}


class Heartbeat:
    """Publishes this node's heartbeat to ``__health`` every ``interval`` seconds from a thread.

    ``info()`` (optional) returns extra fields for each beat, e.g. ``{"queue": 3, "lag": 12}``.
    A context manager; ``stop()`` publishes a last beat with ``"state": "leaving"`` so monitors
    report a clean departure instead of a failure.
    """

    def __init__(self, fab: Fabric, node: str, *, kind: str = "node", interval: float = 0.5,
                 info: Optional[Callable[[], Dict[str, Any]]] = None, group: Optional[str] = None):
        if not isinstance(node, str) or not node:
            raise InvalidArgument("a heartbeat needs a node name")
        if not 0.01 <= interval <= 3600:
            raise InvalidArgument(f"interval must be between 0.01 and 3600 seconds (got {interval!r})")
        self.node, self.kind, self.interval, self.group = node, kind, float(interval), group
        self._info = info
        self._topic = ensure_topic(fab, HEALTH_TOPIC)
        self._prod = self._topic.producer(linger_ms=0.0)
        self._meter = _CpuMeter()
        self._stop = threading.Event()
        self._seq = 0
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{node}", daemon=True)
        self._thread.start()

    def beat(self, state: str = "up") -> None:
        """Publish one heartbeat now."""
        rec: Dict[str, Any] = {"node": self.node, "kind": self.kind, "state": state, "seq": self._seq,
                               "ts": time.time(), "interval": self.interval, "pid": os.getpid(),
                               "host": socket.gethostname(), **process_usage(self._meter)}
        if self.group:
            rec["group"] = self.group
        if self._info is not None:
            try:
                rec.update(self._info())
            except Exception as exc:  # a faulty info callback must not stop the heartbeat
                rec["info_error"] = repr(exc)
        self._seq += 1
        self._prod.push(rec)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except Exception:
                if self._stop.is_set():
                    return
                time.sleep(self.interval)  # the fabric is unreachable for now: keep trying

    def stop(self, *, leaving: bool = True) -> None:
        """Stop beating, after a last beat saying the node leaves.

        ``leaving=False`` stops without that beat: monitors then see the node fall silent and
        report it ``node_down`` after their ``down_after``, as they would a crashed node (to
        rehearse a failure, or when this process is about to die anyway).
        """
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join()
        try:
            if leaving:
                self.beat("leaving")
            self._prod.close(timeout=5)
        except Exception:
            pass

    def __enter__(self) -> "Heartbeat":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class HealthMonitor:
    """Follows ``__health`` and derives node events from the heartbeats.

    - ``node_up``: a node's first heartbeat, or its first after it was down.
    - ``node_down``: no heartbeat for ``down_after`` seconds (default: 4 of the node's intervals,
      at least 2 s), or a heartbeat saying it leaves (``"reason": "left"``).
    - ``slow``: a heartbeat later than ``slow_after`` intervals (default 2) but before the node is
      declared down, or a queue that kept growing over ``backlog_beats`` heartbeats.

    Events are dicts ``{"event", "node", "kind", "ts", "reason", "last"}`` where ``last`` is the
    node's latest heartbeat. ``publish=True`` also writes them to ``__health.events``.
    """

    def __init__(self, fab: Fabric, *, down_after: Optional[float] = None, slow_after: float = 2.0,
                 backlog_beats: int = 5, publish: bool = False, since: str = "latest"):
        self._fab = fab
        self.down_after, self.slow_after, self.backlog_beats = down_after, slow_after, backlog_beats
        self._nodes: Dict[str, Dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._outage = False  # this monitor's fabric connection is failing: silence proves nothing
        self._cons = ensure_topic(fab, HEALTH_TOPIC).consumer(start=since, data=False)
        self._out = ensure_topic(fab, EVENTS_TOPIC).producer(linger_ms=0.0) if publish else None

    def nodes(self) -> Dict[str, Dict[str, Any]]:
        """The latest state of every node seen: ``{"state", "last", "since"}`` per node name."""
        with self._lock:
            return {k: dict(v) for k, v in self._nodes.items()}

    def _limit(self, node: Dict[str, Any]) -> float:
        if self.down_after is not None:
            return self.down_after
        return max(2.0, 4 * float(node["last"].get("interval", 0.5)))

    def poll(self, timeout: float = 0.1) -> List[Dict[str, Any]]:
        """Read the heartbeats that arrived (waiting up to ``timeout``) and return new events."""
        out: List[Dict[str, Any]] = []
        batch = self._cons.pull_batch(4096, timeout=timeout)
        now = time.monotonic()
        beats = [] if batch is None else [orjson.loads(batch[i].metadata_bytes) for i in range(len(batch))]
        if batch is not None:
            batch.ack()
        with self._lock:
            if self._fab.connection_problem:
                self._outage = True  # heartbeats cannot reach us now: not evidence against a node
            elif self._outage:
                # The fabric is back: every node gets a full window from now to be heard again.
                for node in self._nodes.values():
                    node["seen"] = max(node["seen"], now)
                self._outage = False
            for hb in beats:
                node = self._nodes.get(hb["node"])
                interval = float(hb.get("interval", 0.5))
                if hb.get("state") == "leaving":
                    if node and node["state"] != "down":
                        node.update(state="down", since=now, last=hb)
                        out.append(self._event("node_down", hb, "left"))
                    continue
                if node is None or node["state"] == "down":
                    self._nodes[hb["node"]] = {"state": "up", "last": hb, "seen": now, "since": now, "queue": [],
                                               "pid": hb.get("pid")}
                    out.append(self._event("node_up", hb, "first heartbeat" if node is None else "heartbeats again"))
                    continue
                if hb.get("pid") is not None and node.get("pid") not in (None, hb.get("pid")):
                    out.append(self._event("node_up", hb, "restarted (new process)"))
                gap = now - node["seen"]
                node.update(last=hb, seen=now, pid=hb.get("pid"))
                queue = node["queue"]
                if "queue" in hb:
                    queue.append(hb["queue"])
                    del queue[:-self.backlog_beats]
                growing = len(queue) == self.backlog_beats and all(b > a for a, b in zip(queue, queue[1:]))
                late = gap > self.slow_after * interval * 1.5
                if (late or growing) and node["state"] == "up":
                    node.update(state="slow", since=now)
                    out.append(self._event("slow", hb, "late heartbeat" if late else "growing backlog"))
                elif not late and not growing and node["state"] == "slow":
                    node.update(state="up", since=now)
                    out.append(self._event("node_up", hb, "recovered"))
            for _name, node in self._nodes.items():
                if self._outage:
                    break
                if node["state"] != "down" and now - node["seen"] > self._limit(node):
                    node.update(state="down", since=now)
                    out.append(self._event("node_down", node["last"],
                                           f"no heartbeat for {now - node['seen']:.1f} s"))
        if self._out is not None:
            for ev in out:
                self._out.push(ev)
        return out

    @staticmethod
    def _event(kind: str, hb: Dict[str, Any], reason: str) -> Dict[str, Any]:
        return {"event": kind, "node": hb["node"], "kind": hb.get("kind"), "group": hb.get("group"),
                "ts": time.time(), "reason": reason, "last": hb}

    def events(self, timeout: Optional[float] = None) -> Iterator[Dict[str, Any]]:
        """Yield events as they happen (for ``timeout`` seconds, or forever)."""
        end = None if timeout is None else time.monotonic() + timeout
        while end is None or time.monotonic() < end:
            for ev in self.poll(0.1 if end is None else max(0.0, min(0.1, end - time.monotonic()))):
                yield ev

    def close(self) -> None:
        self._cons.close()
        if self._out is not None:
            self._out.close(timeout=5)
