"""The bridge process: check every endpoint and rule, run one route per source topic, publish status.

>>> from mofka_py.bridge import Bridge
>>> with Bridge("bridge.toml") as b:      # doctest: +SKIP
...     b.wait_idle(timeout=60)
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from .. import api
from ..errors import Error, TopicNotFound
from .config import BridgeConfig, ConfigError, load_config
from .kafka import LOGGER, KafkaHooks, RepeatLimiter
from .kafka_endpoint import check_kafka
from .route import Route

__all__ = ["Bridge", "read_status", "run", "check", "STATUS_FILE"]

STATUS_FILE = "status.json"


class Bridge:
    """Runs a bridge configuration in this process (background threads).

    ``config`` is a TOML path, a dict of the same shape, or a loaded
    :class:`BridgeConfig`; ``fabrics`` maps endpoint names to open fabrics
    (spool an MPI job's in-memory fabric to ``file://`` this way).
    Everything is checked in the constructor: a bad endpoint, filter or an
    unreachable broker raises :class:`ConfigError` before anything moves.

    Problems met while running (a broker gone, a route restarting) go to the
    ``mofka_py.bridge`` logger, each kind at most once per ``log_repeat_s``
    seconds with a count of the repeats held back.
    """

    def __init__(self, config: Union[str, os.PathLike, Dict[str, Any], BridgeConfig], *,
                 fabrics: Optional[Dict[str, api.Fabric]] = None, status_file: bool = True):
        self.cfg = config if isinstance(config, BridgeConfig) else load_config(config, fabrics=fabrics)
        self._own: List[api.Fabric] = []
        self.fabrics: Dict[str, api.Fabric] = {}
        self.stop_event = threading.Event()
        self.routes: List[Route] = []
        self._status_file = status_file
        self._lock_fh: Any = None
        self._status_thread: Optional[threading.Thread] = None
        self._heartbeats: List[Any] = []
        self.log = RepeatLimiter(self.cfg.log_repeat_s)
        try:
            self._check()
        except BaseException:
            self._close_fabrics()
            raise

    def _check(self) -> None:
        cfg = self.cfg
        used = {ep.name: ep for rule in cfg.rules for ep, _ in rule.sources + [rule.target]}
        for name, ep in used.items():
            try:
                if ep.kind == "kafka":
                    check_kafka(ep, cfg.connect_timeout, KafkaHooks(name, self.log))
                elif ep.fabric is not None:
                    self.fabrics[name] = ep.fabric
                else:
                    token = None
                    if ep.token_file:
                        from ..service import read_token
                        token = read_token(ep.token_file)
                    fab = api.connect(ep.url, token=token, reconnect_timeout_ms=round(cfg.connect_timeout * 1000),
                                      request_timeout_ms=round(max(cfg.connect_timeout, 5.0) * 1000))
                    self._own.append(fab)
                    self.fabrics[name] = fab
                    fab.topics()    # proves a tcp:// service answers
            except Error as exc:
                raise ConfigError(f"{ep.where}: endpoint {name!r} ({ep.url}): {exc}") from None
        for rule in cfg.rules:
            for ep, topic in rule.sources:
                if ep.kind == "fabric":
                    try:
                        self.fabrics[ep.name].topic(topic)
                    except TopicNotFound:
                        raise ConfigError(f"{rule.where}: rule {rule.name!r}: source topic {topic!r} does not "
                                          f"exist in endpoint {ep.name!r} ({ep.url})") from None
        for rule in cfg.rules:
            for i in range(len(rule.sources)):
                self.routes.append(Route(cfg, rule, i, self.fabrics, self.stop_event, self.log))

    # -- lifecycle --------------------------------------------------------------------------------------
    def start(self) -> "Bridge":
        """Start forwarding (one thread per rule source) and, unless disabled, the status file writer."""
        if self._status_file:
            self.cfg.state_dir.mkdir(parents=True, exist_ok=True)
            self._lock_fh = open(self.cfg.state_dir / "lock", "w")
            try:
                fcntl.flock(self._lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                self._lock_fh.close()
                self._lock_fh = None
                raise Error(f"another bridge with state directory {self.cfg.state_dir} is running") from None
            self._status_thread = threading.Thread(target=self._status_loop, name="bridge-status", daemon=True)
            self._status_thread.start()
        for r in self.routes:
            r.thread.start()
        self._start_heartbeats()
        return self

    def _start_heartbeats(self) -> None:
        """A heartbeat on the __health topic of each fabric the bridge reads (kind "bridge": its
        lag and state), so health monitors there see a bridge that dies or falls behind."""
        from ..services.health import Heartbeat

        node = f"bridge-{self.cfg.site}-{os.getpid()}"
        sources = {ep.name for rule in self.cfg.rules for ep, _ in rule.sources if ep.kind == "fabric"}

        def info() -> Dict[str, Any]:
            snaps = [r.stats.snapshot() for r in self.routes]
            return {"queue": sum(s.get("lag") or 0 for s in snaps),
                    "routes": {s.get("rule", str(i)): s.get("state") for i, s in enumerate(snaps)}}

        for name in sorted(sources):
            try:
                self._heartbeats.append(Heartbeat(self.fabrics[name], node, kind="bridge", interval=1.0, info=info))
            except Error as exc:  # health reporting must not stop the bridge
                self.log.emit(logging.WARNING, "heartbeat", f"no heartbeat on endpoint {name!r}: {exc}")

    def stop(self, timeout: float = 15.0) -> None:
        """Stop reading, let in-flight events be acknowledged and committed (up to ``timeout``), close."""
        self.stop_event.set()
        for hb in self._heartbeats:
            hb.stop()
        self._heartbeats.clear()
        deadline = time.monotonic() + timeout
        for r in self.routes:
            r.drain_timeout = max(0.0, timeout - 1.0)
            if r.thread.is_alive():
                r.thread.join(max(0.0, deadline - time.monotonic()))
        if self._status_thread is not None:
            self._status_thread.join(5)
            self._write_status()
        self._close_fabrics()
        if self._lock_fh is not None:
            self._lock_fh.close()
            self._lock_fh = None

    def _close_fabrics(self) -> None:
        for fab in self._own:
            try:
                fab.close()
            except Error:
                pass
        self._own.clear()

    def __enter__(self) -> "Bridge":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- status -----------------------------------------------------------------------------------------
    def status(self) -> Dict[str, Any]:
        """Per route: state, forwarded/filtered/duplicate counts, rates, lag and the last error."""
        return {"pid": os.getpid(), "site": self.cfg.site, "updated": time.time(),
                "routes": [r.stats.snapshot() for r in self.routes]}

    def wait_idle(self, timeout: float, settle: float = 0.5) -> bool:
        """Wait until every route reports lag 0 (all source events committed); False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(r.stats.lag == 0 and r.stats.state == "running" for r in self.routes):
                time.sleep(settle)
                if all(r.stats.lag == 0 for r in self.routes):
                    return True
            time.sleep(0.1)
        return False

    def _status_loop(self) -> None:
        while not self.stop_event.wait(self.cfg.status_interval):
            self._write_status()

    def _write_status(self) -> None:
        path = self.cfg.state_dir / STATUS_FILE
        tmp = path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(self.status(), default=str))
            os.replace(tmp, path)
        except OSError:
            pass


def read_status(cfg: BridgeConfig) -> Optional[Dict[str, Any]]:
    """The status last written by the bridge running ``cfg`` (None if it never ran); adds ``alive``."""
    path = cfg.state_dir / STATUS_FILE
    try:
        st = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    try:
        os.kill(int(st["pid"]), 0)
        st["alive"] = True
    except (OSError, KeyError, ValueError):
        st["alive"] = False
    return st


def check(config_path: str) -> int:
    """Check a configuration as a start would (settings, endpoints reachable, source topics), forward
    nothing (the ``mofka-py bridge check CONFIG`` command)."""
    bridge = Bridge(config_path)
    try:
        routes = ", ".join(f"{r.stats.source} -> {r.stats.target}" for r in bridge.routes)
        LOGGER.info(f"{config_path}: OK, site {bridge.cfg.site}: {routes or 'no rules'}")
    finally:
        bridge.stop()
    return 0


def run(config_path: str) -> int:
    """Run a bridge until SIGTERM/SIGINT (the ``mofka-py bridge CONFIG`` command)."""
    bridge = Bridge(config_path)
    stopping: List[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        stopping.append(signum)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        bridge.start()
        routes = ", ".join(f"{r.stats.source} -> {r.stats.target}" for r in bridge.routes)
        LOGGER.info(f"site {bridge.cfg.site}, pid {os.getpid()}: {routes}")
        ready = os.environ.get("MOFKA_PY_BRIDGE_READY_FILE")
        if ready:
            Path(ready).write_text(str(os.getpid()))
        while not stopping:
            time.sleep(0.2)
        LOGGER.info(f"signal {stopping[0]}: draining")
    finally:
        bridge.stop()
        for s, h in old.items():
            signal.signal(s, h)
    return 0
