"""Start and stop real `mofka-py serve` processes for the integration tests."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
    """Send ``sig`` to a child by pid and wait; SIGKILL if it does not exit in ``timeout`` s. The exit code."""
    if proc.poll() is None:
        os.kill(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


class Service:
    """A `mofka-py serve` subprocess on 127.0.0.1, stopped by pid."""

    def __init__(self, data_dir: Optional[Path], port: int, token_file: Optional[Path] = None, sync: str = "batch",
                 extra: Sequence[str] = (), preexec_fn: Optional[Callable[[], None]] = None, health: bool = True):
        self.data_dir, self.port, self.token_file, self.sync = data_dir, port, token_file, sync
        # health=False: no heartbeat reporter (its own connection would count against the caps a test sets)
        self.extra = list(extra) + ([] if health else ["--no-health"])
        self.preexec_fn = preexec_fn  # run in the child before exec, e.g. to lower its resource limits
        self.proc: Optional[subprocess.Popen] = None
        self.log = b""

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "Service":
        ready = Path(str(self.data_dir or "/tmp") + f".ready-{self.port}")
        if ready.exists():
            ready.unlink()
        cmd = [sys.executable, "-m", "mofka_py.cli", "serve", "--listen", f"127.0.0.1:{self.port}",
               "--sync", self.sync, "--ready-file", str(ready)]
        if self.data_dir:
            cmd += ["--data-dir", str(self.data_dir)]
        if self.token_file:
            cmd += ["--token-file", str(self.token_file)]
        cmd += self.extra
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, preexec_fn=self.preexec_fn)
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self.proc.poll() is not None:
                self._collect_log()
                raise RuntimeError(f"server exited early: {self.log.decode()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("server did not start in time")
            time.sleep(0.02)
        ready.unlink()
        return self

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM (drain), then wait; returns the exit code."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        stop_process(self.proc, timeout=timeout)
        self._collect_log()
        return self.proc.returncode

    def kill(self) -> None:
        """kill -9: no drain, no sync beyond what was already acknowledged."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if self.proc:
            self._collect_log()

    def _collect_log(self) -> None:
        if self.proc.stderr and not self.proc.stderr.closed:
            self.log += self.proc.stderr.read()
            self.proc.stderr.close()


def idle_socket(port: int, source: str = "127.0.0.1", timeout: float = 30.0) -> socket.socket:
    """A TCP connection to 127.0.0.1:``port`` from the loopback address ``source`` (any of
    127.0.0.0/8 works on Linux), so tests can play clients at several addresses."""
    s = socket.socket()
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def read_until_closed(sock: socket.socket, timeout: float = 30.0) -> Optional[bytes]:
    """Everything ``sock`` receives until the peer closes it (EOF or reset), or None if it is
    still open after ``timeout`` seconds."""
    sock.settimeout(timeout)
    got = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return got
            got += chunk
    except ConnectionResetError:
        return got
    except socket.timeout:
        return None


def stored_batch_bytes() -> bytes:
    """A real record batch (one event with metadata and 40 data bytes, one metadata-only event),
    read back from an embedded fabric's segment file."""
    import tempfile

    import mofka_py as mp

    with tempfile.TemporaryDirectory() as d:
        with mp.connect(f"file://{d}") as fab:
            t = fab.create_topic("x")
            with t.producer() as prod:
                prod.push({"a": 1}, data=bytes(range(40)))
                prod.push({"b": 2})
        with open(os.path.join(d, "topics", "x", "p0", f"{0:020d}.log"), "rb") as fh:
            return fh.read()
