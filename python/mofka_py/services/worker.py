"""Pool workers: run tasks taken from the fabric and publish their outcomes.

A worker is a member of the consumer group ``__pool.POOL.workers`` on the task topics of the
methods it serves: the partitions the group gives it are its leases. It runs each task (in a
thread, or in a child process with ``isolation="process"`` so that a task that exhausts memory,
crashes or hangs past its timeout only costs that task), publishes the outcome, and only once
the outcome is stored acknowledges the task. So a worker that dies loses nothing: its
unacknowledged tasks go to another member, and an outcome it had already stored is simply
published twice (the steering side keeps the first per task id). Failed attempts are
classified (transient, deterministic, timeout, resource) and retried with backoff, or failed
for good into the dead-letter topic. Heartbeats go to ``__health`` so the steering side sees
the worker's load and notices at once when it goes down.
"""
from __future__ import annotations

import collections
import importlib
import os
import queue
import signal
import socket
import threading
import time
import traceback
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

import orjson

from ..api import Fabric
from ..errors import Closed, Error, InvalidArgument
from . import _codec
from ._names import (
    DETERMINISTIC,
    LANES,
    RESOURCE,
    TIMEOUT,
    TRANSIENT,
    check_name,
    dead_topic,
    results_topic,
    task_topic,
    workers_group,
)
from .health import Heartbeat, ensure_topic

__all__ = ["Worker", "serve_worker", "load_function", "classify"]

# Exceptions that will fail the same way on any worker and any attempt.
_DETERMINISTIC = (TypeError, ValueError, KeyError, IndexError, AttributeError, NameError, ZeroDivisionError,
                  AssertionError, NotImplementedError, LookupError, ArithmeticError, ImportError, SyntaxError)


def classify(exc: BaseException, history: List[Dict[str, Any]]) -> str:
    """The failure class of an exception raised by a task, given the task's earlier failures: a
    resource exhaustion, a deterministic error (by type, or the same error as the previous
    attempt), or a transient one worth retrying elsewhere."""
    if isinstance(exc, MemoryError):
        return RESOURCE
    if isinstance(exc, _DETERMINISTIC):
        return DETERMINISTIC
    sig = f"{type(exc).__name__}: {exc}"
    if history and history[-1].get("error") == sig:
        return DETERMINISTIC  # the same failure twice in a row
    return TRANSIENT


def load_function(spec: str) -> Callable[..., Any]:
    """``"package.module:function"`` -> the function (for ``mofka-py worker --method``)."""
    mod, sep, attr = spec.partition(":")
    if not sep or not mod or not attr:
        raise InvalidArgument(f"method {spec!r} must be written package.module:function")
    try:
        obj: Any = importlib.import_module(mod)
    except ImportError as exc:
        raise InvalidArgument(f"cannot import {mod!r} for method {spec!r}: {exc}") from None
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise InvalidArgument(f"{mod!r} has no {attr!r} (method {spec!r})")
    if not callable(obj):
        raise InvalidArgument(f"{spec!r} is not callable")
    return obj


def _backoff(attempt: int) -> float:
    return min(30.0, 0.1 * (2 ** attempt))


class _TaskTimeout(Exception):
    pass


class _Killed(Exception):
    """The child process running the task died (e.g. killed by the kernel's OOM killer)."""


def _child_loop(conn: Any, methods: Dict[str, Callable[..., Any]]) -> None:
    """Runs in a child process: tasks in, outcomes out, until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        method, args, kwargs = msg
        try:
            value = methods[method](*args, **kwargs)
            conn.send((True, value, None, None))
        except BaseException as exc:  # reported to the parent, classified there
            try:
                conn.send((False, exc, f"{type(exc).__name__}: {exc}", traceback.format_exc()))
            except Exception:
                conn.send((False, RuntimeError(repr(exc)), f"{type(exc).__name__}: {exc}", traceback.format_exc()))


class _Child:
    """One child process running tasks for one executor slot (``isolation="process"``)."""

    def __init__(self, methods: Dict[str, Callable[..., Any]]):
        import multiprocessing as mproc

        ctx = mproc.get_context("spawn")  # no fork of a process with threads
        self._methods = methods
        self._ctx = ctx
        self._start()

    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        self.proc = self._ctx.Process(target=_child_loop, args=(child, self._methods), daemon=True)
        self.proc.start()
        child.close()
        self.conn = parent

    def run(self, method: str, args: Any, kwargs: Any, timeout: Optional[float]) -> Any:
        self.conn.send((method, args, kwargs))
        if not self.conn.poll(timeout):
            self.restart()
            raise _TaskTimeout(f"task ran past its timeout of {timeout:g} s; its process was stopped")
        try:
            ok, value, sig, tb = self.conn.recv()
        except (EOFError, OSError):
            code = self.proc.exitcode if self.proc.join(1) is None else self.proc.exitcode
            self.restart()
            how = f"killed by signal {-code}" if code is not None and code < 0 else f"exited ({code})"
            raise _Killed(f"the task's process was {how}" +
                          (" — out of memory (the kernel's OOM killer sends signal 9)?" if code == -9 else "")) from None
        if ok:
            return value
        value.__mofka_tb__ = tb  # type: ignore[attr-defined]
        raise value

    def restart(self) -> None:
        self.stop()
        self._start()

    def stop(self) -> None:
        try:
            self.conn.close()
        except Exception:
            pass
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)


class _Acks:
    """Acknowledges a partition's tasks in offset order: a task is acknowledged once it and every
    task before it in its partition have their outcome stored (an ack covers all earlier
    offsets, so acknowledging out of order could lose a task if the worker died)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parts: Dict[Tuple[int, int], Deque[List[Any]]] = {}

    def taken(self, key: int, ev: Any) -> List[Any]:
        entry = [ev.offset, False, ev]
        with self._lock:
            self._parts.setdefault((key, ev.partition), collections.deque()).append(entry)
        return entry

    def done(self, key: int, ev: Any, entry: List[Any]) -> None:
        last = None
        with self._lock:
            entry[1] = True
            q = self._parts.get((key, ev.partition))
            while q and q[0][1]:
                last = q.popleft()[2]
        if last is not None:
            last.ack()


class Worker:
    """Serves ``methods`` (name -> function) for pool ``pool`` until :meth:`stop`.

    ``concurrency``: tasks run at once (threads, or child processes with
    ``isolation="process"``: a task that exhausts memory, crashes its process or outlives its
    timeout is stopped and classified, and the worker goes on). ``worker_id``: the name of this
    worker in heartbeats and in the group (default ``host-pid``). ``session_timeout_ms``: how
    long the group waits for a silent worker before its tasks go to others (the pool's health
    monitor usually moves them sooner, when it sees the worker's heartbeats stop).
    """

    def __init__(self, fab: Fabric, pool: str, methods: Dict[str, Callable[..., Any]], *, concurrency: int = 1,
                 isolation: str = "thread", worker_id: Optional[str] = None, heartbeat_interval: float = 0.5,
                 session_timeout_ms: int = 10_000, partitions: int = 8):
        check_name("pool", pool)
        if not isinstance(methods, dict) or not methods:
            raise InvalidArgument("methods must be a non-empty dict of name -> function")
        for name, fn in methods.items():
            check_name("method", name)
            if not callable(fn):
                raise InvalidArgument(f"method {name!r} is not callable")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not 1 <= concurrency <= 1024:
            raise InvalidArgument(f"concurrency must be between 1 and 1024 (got {concurrency!r})")
        if isolation not in ("thread", "process"):
            raise InvalidArgument(f"isolation must be 'thread' or 'process' (got {isolation!r})")
        self.fab, self.pool, self.methods = fab, pool, dict(methods)
        self.concurrency, self.isolation = concurrency, isolation
        self.id = worker_id or f"{socket.gethostname()}-{os.getpid()}"
        self._partitions = partitions
        self._session_ms = session_timeout_ms
        self._hb_interval = heartbeat_interval
        self._stop = threading.Event()
        self._inbox: "queue.PriorityQueue[Tuple[int, int, int, Any]]" = queue.PriorityQueue()
        # Tasks pulled but not started, at most (plus one per task topic): few, so that when the group
        # moves a partition away the tasks already taken from it are soon done (the move waits for them).
        # Adapted to the tasks' length (see _handle): enough to cover ~20 ms of work, so short tasks
        # flow without gaps and a long one does not hold many others behind it.
        self._ahead = 2 * concurrency + 4
        self._avg_task = 0.0
        self._taken = 0
        self._taken_cv = threading.Condition()
        self._seq = 0
        self._acks = _Acks()
        self._consumers: Dict[int, Any] = {}
        self._lanes: Dict[Tuple[str, str], int] = {}
        self._intake: List[threading.Thread] = []
        self._running: Dict[str, float] = {}
        self._run_lock = threading.Lock()
        self._free = concurrency
        self._slots = threading.Condition()
        self._completions: "queue.Queue[Any]" = queue.Queue()
        self.done = 0
        self.failed = 0
        self._errors: List[BaseException] = []

    # ------------------------------------------------------------------ setup
    def _open_lane(self, method: str, lane: str, create: bool) -> None:
        name = task_topic(self.pool, method, lane)
        if (method, lane) in self._lanes:
            return
        if create:
            topic = ensure_topic(self.fab, name, self._partitions)
        else:
            try:
                topic = self.fab.topic(name)
            except Error:
                return
        key = len(self._consumers)
        self._consumers[key] = topic.consumer(workers_group(self.pool), member_id=f"{self.id}",
                                              session_timeout_ms=self._session_ms, auto_commit_ms=200)
        self._lanes[(method, lane)] = key
        rank = LANES.index(lane)
        t = threading.Thread(target=self._intake_loop, args=(key, rank), name=f"intake-{name}", daemon=True)
        self._intake.append(t)
        t.start()

    def _discover_lanes(self) -> None:
        for method in self.methods:
            for lane in ("hi", "lo"):
                self._open_lane(method, lane, create=False)

    # ------------------------------------------------------------------ threads
    def _intake_loop(self, key: int, rank: int) -> None:
        cons = self._consumers[key]
        while not self._stop.is_set():
            with self._taken_cv:
                if self._taken >= self._ahead:
                    self._taken_cv.wait(0.1)
                    continue
            try:
                ev = cons.pull(timeout=0.1)
            except Closed:
                return
            except BaseException as exc:
                self._errors.append(exc)
                self._stop.set()
                return
            if ev is None:
                continue
            with self._taken_cv:
                self._taken += 1
            entry = self._acks.taken(key, ev)
            self._seq += 1
            self._inbox.put((rank, self._seq, key, (ev, entry)))

    def _executor_loop(self, child: Optional[_Child]) -> None:
        while not self._stop.is_set():
            try:
                _, _, key, (ev, entry) = self._inbox.get(timeout=0.1)
            except queue.Empty:
                continue
            with self._taken_cv:
                self._taken -= 1
                self._taken_cv.notify()
            try:
                self._handle(key, ev, entry, child)
            except BaseException as exc:  # publishing failed: the fabric is gone
                self._errors.append(exc)
                self._stop.set()
        if child is not None:
            child.stop()

    def _completion_loop(self) -> None:
        while True:
            item = self._completions.get()
            if item is None:
                return
            futs, key, ev, entry = item
            try:
                for f in futs:
                    f.result()
            except BaseException as exc:
                self._errors.append(exc)
                self._stop.set()
                continue
            self._acks.done(key, ev, entry)

    # ------------------------------------------------------------------ one task
    def _handle(self, key: int, ev: Any, entry: List[Any], child: Optional[_Child]) -> None:
        # A task taken from a partition that is moving to another member still runs here: the move
        # waits for it to be acknowledged (an outcome stored twice would only be dropped by task id).
        meta = orjson.loads(ev.metadata_bytes)
        wait = (meta.get("nb") or 0) - time.time()
        if wait > 0:
            self._stop.wait(wait)  # a retry's backoff
        need = max(1, min(self.concurrency, int((meta.get("res") or {}).get("slots", 1))))
        with self._slots:
            while self._free < need and not self._stop.is_set():
                self._slots.wait(0.1)
            self._free -= need
        tid = meta["id"]
        start = time.time()
        with self._run_lock:
            self._running[tid] = start
        try:
            outcome = self._run(meta, ev, child)
        finally:
            took = time.time() - start
            self._avg_task = took if not self._avg_task else 0.8 * self._avg_task + 0.2 * took
            extra = max(1, min(self.concurrency + 4, int(0.02 / max(self._avg_task, 1e-6))))
            with self._taken_cv:
                self._ahead = self.concurrency + extra
            with self._run_lock:
                self._running.pop(tid, None)
            with self._slots:
                self._free += need
                self._slots.notify_all()
        self._completions.put((self._publish(meta, ev, start, outcome), key, ev, entry))

    def _run(self, meta: Dict[str, Any], ev: Any, child: Optional[_Child]) -> Tuple[bool, Any, Optional[str], Optional[str], Optional[str]]:
        """(ok, value or exception, class, error text, traceback)."""
        method = meta["m"]
        fn = self.methods.get(method)
        timeout = meta.get("to")
        try:
            if fn is None:
                raise LookupError(f"this worker does not serve method {method!r}")
            args = _codec.decode(meta.get("a"), meta.get("p") or [], ev.data)
            pos, kw = (args[0], args[1]) if isinstance(args, (list, tuple)) and len(args) == 2 else (args, {})
            if child is not None:
                value = child.run(method, list(pos), dict(kw), timeout)
            elif timeout:
                value = self._run_with_timeout(fn, pos, kw, timeout)
            else:
                value = fn(*pos, **kw)
            return True, value, None, None, None
        except _TaskTimeout as exc:
            return False, exc, TIMEOUT, str(exc), None
        except _Killed as exc:
            return False, exc, RESOURCE, str(exc), None
        except Exception as exc:
            tb = getattr(exc, "__mofka_tb__", None) or traceback.format_exc()
            return False, exc, classify(exc, meta.get("hist") or []), f"{type(exc).__name__}: {exc}", tb

    @staticmethod
    def _run_with_timeout(fn: Callable[..., Any], pos: Any, kw: Any, timeout: float) -> Any:
        box: Dict[str, Any] = {}

        def target() -> None:
            try:
                box["value"] = fn(*pos, **kw)
            except BaseException as exc:
                box["error"] = exc

        t = threading.Thread(target=target, daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive():
            # A thread cannot be stopped: it runs on, and its result is dropped. Use
            # isolation="process" for tasks that may hang.
            raise _TaskTimeout(f"task ran past its timeout of {timeout:g} s")
        if "error" in box:
            raise box["error"]
        return box["value"]

    def _publish(self, meta: Dict[str, Any], ev: Any, start: float,
                 outcome: Tuple[bool, Any, Optional[str], Optional[str], Optional[str]]) -> List[Any]:
        ok, value, cls, err, tb = outcome
        attempt = int(meta.get("att", 0))
        hist = list(meta.get("hist") or [])
        res: Dict[str, Any] = {"id": meta["id"], "m": meta["m"], "w": self.id, "att": attempt + 1, "sub": meta.get("sub"),
                               "start": start, "end": time.time()}
        if ok:
            inline, parts, lengths = _codec.encode(value)
            res.update(st="ok", v=inline, p=lengths, hist=hist)
            self.done += 1
            return [self._results.push(res, data=parts or None)]
        hist.append({"class": cls, "error": err, "worker": self.id, "attempt": attempt})
        retries = int(meta.get("ret", 0))
        if cls != DETERMINISTIC and attempt < retries:
            retry = dict(meta, att=attempt + 1, hist=hist, nb=time.time() + _backoff(attempt))
            lane = "hi" if meta.get("pri", 0) > 0 else "lo" if meta.get("pri", 0) < 0 else ""
            return [self._retry_producer(meta["m"], lane).push(retry, data=bytes(ev.data) if ev.data_size else None)]
        self.failed += 1
        res.update(st="failed", cls=cls, err=err, tb=tb, hist=hist)
        return [self._results.push(res), self._dead.push(res)]

    def _retry_producer(self, method: str, lane: str) -> Any:
        k = (method, lane)
        prod = self._retry.get(k)
        if prod is None:
            prod = self._retry[k] = ensure_topic(self.fab, task_topic(self.pool, method, lane),
                                                 self._partitions).producer(linger_ms=0.0)
        return prod

    # ------------------------------------------------------------------ lifecycle
    def _info(self) -> Dict[str, Any]:
        with self._run_lock:
            running = list(self._running)
        return {"pool": self.pool, "queue": self._inbox.qsize() + len(running), "running": running[:100],
                "done": self.done, "failed": self.failed, "concurrency": self.concurrency}

    def run(self, stop: Optional[threading.Event] = None) -> None:
        """Serve until :meth:`stop` (or ``stop`` is set, or Ctrl-C); raises what stopped it
        otherwise (e.g. the fabric became unreachable)."""
        self._results = ensure_topic(self.fab, results_topic(self.pool)).producer(linger_ms=0.0)
        self._dead = ensure_topic(self.fab, dead_topic(self.pool)).producer(linger_ms=0.0)
        self._retry: Dict[Tuple[str, str], Any] = {}
        heartbeat = Heartbeat(self.fab, self.id, kind="worker", group=self.pool, interval=self._hb_interval,
                              info=self._info)
        for method in self.methods:
            self._open_lane(method, "", create=True)
        self._discover_lanes()
        children = [_Child(self.methods) if self.isolation == "process" else None for _ in range(self.concurrency)]
        executors = [threading.Thread(target=self._executor_loop, args=(c,), name=f"task-{i}", daemon=True)
                     for i, c in enumerate(children)]
        completer = threading.Thread(target=self._completion_loop, name="completions", daemon=True)
        for t in executors + [completer]:
            t.start()
        try:
            last_scan = time.monotonic()
            while not self._stop.is_set() and not (stop is not None and stop.is_set()):
                self._stop.wait(0.2)
                if time.monotonic() - last_scan > 2.0:
                    self._discover_lanes()
                    last_scan = time.monotonic()
        finally:
            self._stop.set()
            for t in self._intake + executors:
                t.join()
            self._completions.put(None)
            completer.join()
            for prod in [self._results, self._dead, *self._retry.values()]:
                try:
                    prod.close(timeout=30)
                except Error as exc:
                    self._errors.append(exc)
            for cons in self._consumers.values():
                try:
                    cons.close()
                except Error:
                    pass
            heartbeat.stop()
        if self._errors:
            raise self._errors[0]

    def stop(self) -> None:
        """Stop taking tasks; tasks running finish and are acknowledged, the rest go to others."""
        self._stop.set()


def serve_worker(fab: Fabric, pool: str, methods: Dict[str, Callable[..., Any]], *, concurrency: int = 1,
                 **kw: Any) -> None:
    """Run a :class:`Worker` in this thread until Ctrl-C or SIGTERM (see :class:`Worker` for the
    keywords).

    >>> serve_worker(fab, "campaign", {"simulate": simulate}, concurrency=4)   # doctest: +SKIP
    """
    worker = Worker(fab, pool, methods, concurrency=concurrency, **kw)
    stop = threading.Event()
    old = None
    if threading.current_thread() is threading.main_thread():
        old = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        worker.run(stop)
    except KeyboardInterrupt:
        worker.stop()
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)
