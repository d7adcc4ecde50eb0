"""The steering side of a resilient compute pool (a Colmena-style "thinker").

Tasks are durable events in the fabric: :meth:`Pool.submit` appends one to the method's task
topic and returns a future; workers (:mod:`mofka_py.services.worker`) take tasks as members of
a consumer group, so a worker that dies leaves its tasks to the others; outcomes come back on
the pool's results topic, read by this side as a consumer group too, so a steering process
restarted after ``kill -9`` picks up where it acknowledged: :meth:`Pool.pending` gives back the
tasks still without an outcome, and results that arrived meanwhile are delivered once. The
first outcome of a task wins; a late one (a zombie worker's, or a task run twice after a
failure) is dropped by task id, so each task has exactly one outcome here.

Example::

    pool = Pool(fab, "campaign")
    fut = pool.submit("simulate", smiles, retries=2, timeout=60)

    @pool.on_result("simulate")
    def retrain(result):
        ...
        pool.submit("simulate", next_candidate())

    @pool.on_event("node_down")
    def note(event):
        print("lost", event["node"])

    pool.run(until=lambda: pool.done >= 100)
"""
from __future__ import annotations

import concurrent.futures
import itertools
import queue
import threading
import time
import uuid
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional

import orjson

from ..api import Fabric
from ..errors import CommitFailed, Error, InvalidArgument, TopicNotFound
from . import _codec
from ._names import (
    check_name,
    dead_topic,
    lane_of,
    parse_task_topic,
    results_topic,
    steering_group,
    task_topic,
    workers_group,
)
from .health import HealthMonitor, ensure_topic

__all__ = ["Pool", "Result", "TaskFailed", "TaskFuture", "pool_status"]


class TaskFailed(Error):
    """A task failed for good: ``result`` holds its class, error, traceback and attempts."""

    def __init__(self, result: "Result"):
        super().__init__(f"task {result.task_id} ({result.method}) failed after {result.attempts} attempt(s), "
                         f"{result.failure}: {result.error}")
        self.result = result


@dataclass
class Result:
    """One task's outcome, as the steering side sees it (exactly once per task)."""

    task_id: str
    method: str
    ok: bool
    value: Any = None
    failure: Optional[str] = None       # class: transient, deterministic, timeout, resource, worker_lost
    error: Optional[str] = None
    traceback: Optional[str] = None
    attempts: int = 1
    worker: Optional[str] = None
    history: List[Dict[str, Any]] = field(default_factory=list)  # earlier failed attempts
    submitted: Optional[float] = None
    started: Optional[float] = None
    finished: Optional[float] = None
    redelivered: bool = False           # delivered again after a steering restart (may have been seen)

    @property
    def round_trip(self) -> Optional[float]:
        """Seconds from submit to the outcome being stored."""
        return None if self.submitted is None or self.finished is None else self.finished - self.submitted


class TaskFuture(concurrent.futures.Future):
    """A future of one task: ``result()`` is the task's value; a failed task raises
    :class:`TaskFailed`. ``task_id`` names the task."""

    def __init__(self, task_id: str, method: str):
        super().__init__()
        self.task_id, self.method = task_id, method
        self.set_running_or_notify_cancel()

    def cancel(self) -> bool:  # tasks are durable events: there is nothing to take back
        return False


def _result_from(meta: Dict[str, Any], data: Any) -> Result:
    ok = meta.get("st") == "ok"
    return Result(task_id=meta["id"], method=meta["m"], ok=ok,
                  value=_codec.decode(meta.get("v"), meta.get("p") or [], data) if ok else None,
                  failure=meta.get("cls"), error=meta.get("err"), traceback=meta.get("tb"),
                  attempts=int(meta.get("att", 1)), worker=meta.get("w"), history=list(meta.get("hist") or []),
                  submitted=meta.get("sub"), started=meta.get("start"), finished=meta.get("end"))


class Pool:
    """The steering side of pool ``name`` on fabric ``fab``.

    ``partitions``: partitions of each task topic it creates (the most workers of a method that
    can work at once). ``retries`` / ``timeout``: defaults for :meth:`submit`. ``health``: follow
    the workers' heartbeats, so a worker whose heartbeats stop has its tasks moved to the others
    at once (instead of after its group session times out), and ``node_down`` / ``node_up`` /
    ``slow`` events reach :meth:`on_event` handlers. ``stream``: outcomes are delivered through
    :meth:`results` / :meth:`run` (and acknowledged once taken there) as well as to the futures —
    so outcomes that arrive before an agent is registered wait for it, and after a restart the
    ones not yet taken come again. With ``stream=False`` (code that only waits on futures) an
    outcome is acknowledged as soon as its future is resolved.
    """

    def __init__(self, fab: Fabric, name: str, *, partitions: int = 8, retries: int = 0,
                 timeout: Optional[float] = None, health: bool = True, stream: bool = True):
        check_name("pool", name)
        self.fab, self.name = fab, name
        self._partitions = partitions
        self._default_retries, self._default_timeout = retries, timeout
        self._session = uuid.uuid4().hex[:10]
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._producers: Dict[str, Any] = {}
        self._futures: Dict[str, TaskFuture] = {}
        self._resolved: set = set()
        self._stream_on = bool(stream)
        self._stream: "queue.Queue[Any]" = queue.Queue()
        self._handlers: Dict[str, List[Callable[[Result], Any]]] = defaultdict(list)
        self._event_handlers: Dict[str, List[Callable[[Dict[str, Any]], Any]]] = defaultdict(list)
        self._events: "queue.Queue[Dict[str, Any]]" = queue.Queue()
        self._stop = threading.Event()
        self._error: Optional[BaseException] = None
        self.submitted = 0
        self.done = 0
        self.failed = 0
        self.dropped = 0          # late or duplicate outcomes dropped by task id
        self.worker_lost = 0      # attempts lost with a worker that went down
        self._running: Dict[str, List[str]] = {}  # worker -> task ids it reported running
        # Routing to the worker that will be free first: partition owners per task topic (refreshed
        # by the health thread), each worker's slots (heartbeats), the tasks routed to it and not
        # yet back, and how long its tasks take (from the outcomes).
        self._owners: Dict[str, Dict[str, List[int]]] = {}  # task topic -> worker -> its partitions
        self._slots: Dict[str, int] = {}
        self._outstanding: Dict[str, "OrderedDict[str, float]"] = defaultdict(OrderedDict)  # worker -> task id -> sent at, oldest first
        self._routed: Dict[str, str] = {}                                    # task id -> worker
        self._task_time: Dict[str, float] = {}                               # worker -> typical task (s)
        self._rr = itertools.count()
        self._results_topic = ensure_topic(fab, results_topic(name))
        ensure_topic(fab, dead_topic(name))
        redeliver_below = self._recover()
        self._cons = self._results_topic.consumer(steering_group(name), member_id="steering", start="earliest",
                                                  auto_commit_ms=200)
        self._redeliver_below = redeliver_below
        self._receiver = threading.Thread(target=self._receive_loop, name=f"pool-{name}-results", daemon=True)
        self._receiver.start()
        self._monitor: Optional[HealthMonitor] = None
        if health:
            self._monitor = HealthMonitor(fab)
            self._watcher = threading.Thread(target=self._watch_loop, name=f"pool-{name}-health", daemon=True)
            self._watcher.start()

    # ------------------------------------------------------------------ restart
    def _recover(self) -> int:
        """Outcomes this pool's steering side already acknowledged (before a restart) are known as
        resolved, so late duplicates of them are dropped. Returns the results offset up to which
        delivery may repeat (outcomes handed out but not committed before a crash)."""
        committed = self.fab._f.committed(steering_group(self.name), self._results_topic.name, 0)
        end = self._results_topic.describe()["partitions"][0]["end_offset"]
        if not committed:
            return end  # nothing acknowledged: whatever is there may have been seen before a crash
        with self._results_topic.consumer(start="earliest", partitions=[0], data=False) as cons:
            while True:
                batch = cons.pull_batch(1 << 16, timeout=0.0 if cons.exhausted else 1.0)
                if batch is None:
                    break
                for i in range(len(batch)):
                    if batch.first_offset + i >= committed:
                        return end
                    self._resolved.add(orjson.loads(batch[i].metadata_bytes)["id"])
                if batch.last_offset + 1 >= committed:
                    break
        return end

    def pending(self) -> Dict[str, TaskFuture]:
        """Tasks submitted to this pool (by this process or an earlier one) that have no outcome
        yet, as futures that resolve when it arrives. A restarted steering process calls it to
        get its work in flight back."""
        outcome_ids = set()
        with self._results_topic.consumer(start="earliest", partitions=[0], data=False) as cons:
            end = self._results_topic.describe()["partitions"][0]["end_offset"]
            while end:
                batch = cons.pull_batch(1 << 16, timeout=5.0)
                if batch is None:
                    break
                outcome_ids.update(orjson.loads(batch[i].metadata_bytes)["id"] for i in range(len(batch)))
                if batch.last_offset + 1 >= end:
                    break
        found: Dict[str, str] = {}
        for name in self.fab.topics(system=True):
            method, lane = parse_task_topic(self.name, name)
            if not method:
                continue
            topic = self.fab.topic(name)
            ends = [p["end_offset"] for p in topic.describe()["partitions"]]
            for p, end in enumerate(ends):
                if not end:
                    continue
                with topic.consumer(start="earliest", partitions=[p], data=False) as cons:
                    while True:
                        batch = cons.pull_batch(1 << 16, timeout=5.0)
                        if batch is None:
                            break
                        for i in range(len(batch)):
                            tid = orjson.loads(batch[i].metadata_bytes)["id"]
                            if tid not in outcome_ids:
                                found[tid] = method
                        if batch.last_offset + 1 >= end:
                            break
        out = {}
        with self._lock:
            for tid, method in found.items():
                if tid in self._resolved:
                    continue
                fut = self._futures.get(tid)
                if fut is None:
                    fut = self._futures[tid] = TaskFuture(tid, method)
                out[tid] = fut
        return out

    # ------------------------------------------------------------------ submit
    def _producer(self, method: str, lane: str) -> Any:
        name = task_topic(self.name, method, lane)
        prod = self._producers.get(name)
        if prod is None:
            with self._lock:
                prod = self._producers.get(name)
                if prod is None:
                    prod = ensure_topic(self.fab, name, self._partitions).producer(linger_ms=0.0,
                                                                                  selector="round_robin")
                    self._producers[name] = prod
            if self._monitor is not None:
                self._refresh_owners([name])  # route this topic's first tasks too
        return prod

    def submit(self, method: str, *args: Any, retries: Optional[int] = None, timeout: Optional[float] = None,
               priority: int = 0, resources: Optional[Dict[str, Any]] = None, **kwargs: Any) -> TaskFuture:
        """Queue ``method(*args, **kwargs)`` on a worker; returns its :class:`TaskFuture`.

        ``retries``: attempts after a failed one (transient, timeout, resource or worker lost;
        a deterministic error fails at once). ``timeout``: seconds an attempt may run.
        ``priority``: > 0 before normal tasks, < 0 after. ``resources``: ``{"slots": k}`` takes
        k of a worker's concurrency slots. numpy arrays among the arguments travel as event data
        without being copied into a pickle.
        """
        if self._error is not None:
            raise self._error
        check_name("method", method)
        retries = self._default_retries if retries is None else retries
        timeout = self._default_timeout if timeout is None else timeout
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 1000:
            raise InvalidArgument(f"retries must be between 0 and 1000 (got {retries!r})")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0):
            raise InvalidArgument(f"timeout must be a positive number of seconds or None (got {timeout!r})")
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise InvalidArgument(f"priority must be an integer (got {priority!r})")
        if resources is not None and not isinstance(resources, dict):
            raise InvalidArgument(f"resources must be a dict such as {{'slots': 2}} (got {resources!r})")
        tid = f"{self._session}-{next(self._ids)}"
        inline, parts, lengths = _codec.encode([list(args), kwargs])
        meta = {"id": tid, "m": method, "att": 0, "ret": retries, "to": timeout, "sub": time.time(),
                "a": inline, "p": lengths, "pri": priority}
        if resources:
            meta["res"] = resources
        fut = TaskFuture(tid, method)
        with self._lock:
            self._futures[tid] = fut
        topic = task_topic(self.name, method, lane_of(priority))
        self._producer(method, lane_of(priority)).push(meta, data=parts or None, partition=self._route(topic, tid))
        self.submitted += 1
        return fut

    def _route(self, topic: str, tid: str) -> Optional[int]:
        """A partition of the worker that will be free first, so that a task does not wait behind
        a long one on a busy worker while another worker is idle (a partition's tasks go to its
        owner only). A worker with a free slot first; otherwise the one whose queue, at its typical
        task time (or the age of its oldest task, if that is longer), empties soonest. None (round
        robin) until the pool knows two workers or more."""
        by_worker = self._owners.get(topic)
        if not by_worker:
            return None
        now = time.monotonic()
        with self._lock:
            best, choices = None, []
            for w in by_worker:
                slots = self._slots.get(w, 1)
                out = self._outstanding[w]
                free = slots - len(out)
                if free > 0:
                    key = (0, -free)
                else:
                    oldest = now - next(iter(out.values())) if out else 0.0
                    key = (1, max(self._task_time.get(w, 0.0), oldest) * (len(out) - slots + 1) / slots)
                if best is None or key < best:
                    best, choices = key, [w]
                elif key == best:
                    choices.append(w)
            n = next(self._rr)
            w = choices[n % len(choices)]
            parts = by_worker[w]
            self._outstanding[w][tid] = now
            self._routed[tid] = w
        return parts[n % len(parts)]

    def _settle_route(self, tid: str, meta: Dict[str, Any]) -> None:
        """An outcome came back: its worker has a slot again; learn how long its tasks take."""
        w = self._routed.pop(tid, None)
        if w is not None:
            self._outstanding[w].pop(tid, None)
        ran_on = meta.get("w")
        if ran_on and meta.get("start") and meta.get("end"):
            took = max(0.0, meta["end"] - meta["start"])
            prev = self._task_time.get(ran_on)
            self._task_time[ran_on] = took if prev is None else 0.7 * prev + 0.3 * took

    def _refresh_owners(self, names: Optional[List[str]] = None) -> None:
        for name in names or list(self._producers):
            try:
                parts = self.fab.topic(name).describe_group(workers_group(self.name))["partitions"]
            except Error:
                continue
            by_worker: Dict[str, List[int]] = defaultdict(list)
            for p in parts:
                if p["owner"]:
                    by_worker[p["owner"]].append(p["partition"])
            self._owners[name] = dict(by_worker) if len(by_worker) > 1 else {}

    def flush(self, timeout: Optional[float] = None) -> None:
        """Wait until every submitted task is stored in the fabric (durable)."""
        for prod in list(self._producers.values()):
            prod.flush(timeout)

    # ------------------------------------------------------------------ outcomes
    def _receive_loop(self) -> None:
        try:
            while not self._stop.is_set():
                batch = self._cons.pull_batch(4096, timeout=0.1)
                if batch is None:
                    continue
                for i in range(len(batch)):
                    ev = batch[i]
                    self._take(ev, batch.first_offset + i)
        except BaseException as exc:
            if not self._stop.is_set():
                self._error = exc
                self._stream.put(None)

    def _take(self, ev: Any, offset: int) -> None:
        meta = orjson.loads(ev.metadata_bytes)
        tid = meta["id"]
        with self._lock:
            self._settle_route(tid, meta)
            if tid in self._resolved:
                self.dropped += 1
                known = True
            else:
                self._resolved.add(tid)
                known = False
                fut = self._futures.pop(tid, None)
        if known:
            if not self._stream_on:
                ev.ack()
            else:
                self._stream.put((None, ev))  # keeps acknowledgements in order
            return
        result = _result_from(meta, ev.data)
        result.redelivered = offset < self._redeliver_below
        if result.ok:
            self.done += 1
        else:
            self.failed += 1
        if fut is not None:
            if result.ok:
                fut.set_result(result.value)
            else:
                fut.set_exception(TaskFailed(result))
        if self._stream_on:
            self._stream.put((result, ev))
        else:
            ev.ack()

    def _enable_stream(self) -> None:
        if not self._stream_on:
            raise InvalidArgument("this pool was opened with stream=False: outcomes only go to the futures; "
                                  "open it with stream=True to use results(), run() or on_result()")

    def results(self, method: Optional[str] = None, timeout: Optional[float] = None) -> Iterator[Result]:
        """Outcomes as they arrive (each task's once), optionally of one method only; stops after
        ``timeout`` seconds without one (None: runs until :meth:`stop`). An outcome is
        acknowledged (and, after a restart, not delivered again) once the loop asks for the next."""
        self._enable_stream()
        while not self._stop.is_set():
            try:
                item = self._stream.get(timeout=timeout if timeout is not None else 0.2)
            except queue.Empty:
                if timeout is not None:
                    return
                continue
            if item is None:
                if self._error is not None:
                    raise self._error
                return
            result, ev = item
            if result is not None and (method is None or result.method == method):
                yield result
            ev.ack()

    def on_result(self, method: Optional[str] = None) -> Callable[[Callable[[Result], Any]], Callable[[Result], Any]]:
        """Decorator: call the function with each outcome (of ``method``, or all) in :meth:`run`."""
        self._enable_stream()

        def register(fn: Callable[[Result], Any]) -> Callable[[Result], Any]:
            self._handlers[method or "*"].append(fn)
            return fn
        return register

    def on_event(self, kind: str) -> Callable[[Callable[[Dict[str, Any]], Any]], Callable[[Dict[str, Any]], Any]]:
        """Decorator: call the function with each health event of ``kind`` (``node_down``,
        ``node_up``, ``slow``, or ``*``) in :meth:`run`."""
        if kind not in ("node_down", "node_up", "slow", "*"):
            raise InvalidArgument(f"kind must be node_down, node_up, slow or * (got {kind!r})")

        def register(fn: Callable[[Dict[str, Any]], Any]) -> Callable[[Dict[str, Any]], Any]:
            self._event_handlers[kind].append(fn)
            return fn
        return register

    def run(self, until: Optional[Callable[[], bool]] = None, timeout: Optional[float] = None) -> None:
        """Dispatch outcomes to the :meth:`on_result` agents and health events to the
        :meth:`on_event` agents, in this thread, until ``until()`` is true, :meth:`stop` is
        called or ``timeout`` seconds pass. Each outcome is committed once its agents returned,
        so a steering process killed and restarted delivers at most the outcome it was handling."""
        self._enable_stream()
        end = None if timeout is None else time.monotonic() + timeout
        while not self._stop.is_set() and not (until is not None and until()):
            if end is not None and time.monotonic() > end:
                return
            while True:
                try:
                    event = self._events.get_nowait()
                except queue.Empty:
                    break
                for fn in self._event_handlers.get(event["event"], []) + self._event_handlers.get("*", []):
                    fn(event)
            try:
                item = self._stream.get(timeout=0.05)
            except queue.Empty:
                continue
            if item is None:
                if self._error is not None:
                    raise self._error
                return
            result, ev = item
            if result is not None:
                for fn in self._handlers.get(result.method, []) + self._handlers.get("*", []):
                    fn(result)
            ev.ack()
            if result is not None:
                try:
                    self._cons.commit()
                except CommitFailed:
                    # The service restarted and has not seen this member's heartbeat yet (or the
                    # group moved the results on): the next commit, automatic or here, carries it.
                    pass

    def stop(self) -> None:
        """Make :meth:`run` and :meth:`results` return."""
        self._stop.set()
        self._stream.put(None)

    # ------------------------------------------------------------------ health
    def _watch_loop(self) -> None:
        assert self._monitor is not None
        last_owners = 0.0
        while not self._stop.is_set():
            if time.monotonic() - last_owners > 1.0:
                last_owners = time.monotonic()
                try:
                    self._refresh_owners()
                except Error:
                    pass
            try:
                events = self._monitor.poll(0.1)
            except Error:
                if self._stop.is_set():
                    return
                time.sleep(0.5)
                continue
            for ev in events:
                last = ev.get("last") or {}
                if last.get("kind") == "worker" and last.get("group") == self.name:
                    if ev["event"] == "node_down":
                        self._worker_down(ev["node"], last, ev.get("reason", ""))
                    else:
                        self._running[ev["node"]] = list(last.get("running") or [])
                self._events.put(ev)
            for node, info in (self._monitor.nodes() if self._monitor else {}).items():
                last = info.get("last") or {}
                if last.get("kind") == "worker" and last.get("group") == self.name and info["state"] != "down":
                    self._running[node] = list(last.get("running") or [])
                    with self._lock:
                        self._slots[node] = int(last.get("concurrency", 1))

    def _worker_down(self, node: str, last: Dict[str, Any], reason: str) -> None:
        """A worker's heartbeats stopped: move its tasks to the others now rather than after its
        group session times out (a worker that only paused finds its commits refused and its late
        outcomes dropped)."""
        self._running.pop(node, None)
        if reason != "left":
            self.worker_lost += len(last.get("running") or [])
            for name in self.fab.topics(system=True):
                method, _ = parse_task_topic(self.name, name)
                if method:
                    try:
                        self.fab.topic(name).remove_group_member(workers_group(self.name), node)
                    except (Error, TopicNotFound):
                        pass

    # ------------------------------------------------------------------ status / close
    def status(self) -> Dict[str, Any]:
        """Counts of this steering process plus what the workers report."""
        return {"submitted": self.submitted, "done": self.done, "failed": self.failed, "dropped": self.dropped,
                "worker_lost": self.worker_lost, "running": {k: len(v) for k, v in self._running.items()}}

    def close(self) -> None:
        """Flush submitted tasks, commit what was acknowledged and stop the pool's threads."""
        self._stop.set()
        self._stream.put(None)
        err: Optional[BaseException] = None
        for prod in list(self._producers.values()):
            try:
                prod.close()
            except Error as exc:
                err = err or exc
        self._receiver.join()
        if self._monitor is not None:
            self._watcher.join()
            self._monitor.close()
        self._cons.close()
        if err is not None:
            raise err

    def __enter__(self) -> "Pool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def pool_status(fab: Fabric, name: str, window: float = 3.0) -> Dict[str, Any]:
    """What ``mofka-py pool status`` shows, from the fabric alone: tasks submitted, done, failed,
    dead-lettered, queued; each live worker's running tasks (from its heartbeats); rate."""
    check_name("pool", name)
    submitted = queued = 0
    methods = {}
    for t in fab.topics(system=True):
        method, lane = parse_task_topic(name, t)
        if not method:
            continue
        d = fab.topic(t).describe_group(workers_group(name))
        n = sum(p["end_offset"] for p in d["partitions"])
        methods[method + (f" ({lane})" if lane else "")] = n
        submitted += n
        queued += d["lag"]
    try:
        res = fab.topic(results_topic(name))
        dead = fab.topic(dead_topic(name))
    except TopicNotFound:
        raise InvalidArgument(f"no pool named {name!r} in this fabric (no {results_topic(name)} topic)") from None
    outcomes = res.describe()["partitions"][0]["end_offset"]
    dead_n = dead.describe()["partitions"][0]["end_offset"]
    workers: Dict[str, Any] = {}
    recent = []
    try:
        health = fab.topic("__health")
        end = health.describe()["partitions"][0]["end_offset"]
        start = max(0, end - 2000)
        with health.consumer(start=start, data=False) as cons:
            while True:
                batch = cons.pull_batch(4096, timeout=0.5)
                if batch is None:
                    break
                for i in range(len(batch)):
                    recent.append(orjson.loads(batch[i].metadata_bytes))
                if batch.last_offset + 1 >= end:
                    break
    except TopicNotFound:
        pass
    now = time.time()
    earliest: Dict[str, Any] = {}
    for hb in recent:
        if hb.get("kind") == "worker" and hb.get("group") == name:
            workers[hb["node"]] = hb
            if now - hb["ts"] < 10.0 and hb["node"] not in earliest:
                earliest[hb["node"]] = hb
    live = {k: v for k, v in workers.items() if v.get("state") != "leaving" and now - v["ts"] < window}
    # Rate: tasks the live workers finished between their first and last heartbeats of the last 10 s.
    rate = 0.0
    for k, v in live.items():
        e = earliest.get(k)
        if e is not None and v["ts"] > e["ts"]:
            rate += (v.get("done", 0) + v.get("failed", 0) - e.get("done", 0) - e.get("failed", 0)) / (v["ts"] - e["ts"])
    return {"pool": name, "submitted_attempts": submitted, "queued": queued, "outcomes": outcomes,
            "dead_lettered": dead_n, "methods": methods,
            "workers": {k: {"running": len(v.get("running") or []), "done": v.get("done", 0), "failed": v.get("failed", 0),
                            "cpu": v.get("cpu"), "rss": v.get("rss")} for k, v in live.items()},
            "rate": rate}
