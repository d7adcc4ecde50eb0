"""A pool test bed: a real `mofka-py serve` service and worker processes (`mofka-py worker`),
all started here and stopped by pid."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

from waiting import wait_until

from service_helpers import Service, free_port, stop_process

HERE = Path(__file__).resolve().parent

METHODS = ["work=pool_tasks:work", "checksum=pool_tasks:checksum", "always_fails=pool_tasks:always_fails",
           "flaky=pool_tasks:flaky", "transient_forever=pool_tasks:transient_forever",
           "sleep_for=pool_tasks:sleep_for", "eat_memory=pool_tasks:eat_memory"]


class Cluster:
    """A service (``--sync batch`` on ``data``) and named worker processes of pool ``pool``."""

    def __init__(self, tmp: Path, pool: str = "campaign", sync: str = "batch"):
        self.tmp, self.pool = tmp, pool
        self.svc = Service(tmp / "data", free_port(), sync=sync).start()
        self.workers: Dict[str, subprocess.Popen] = {}
        self.env = dict(os.environ, PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.env.pop("MOFKA_PY_URL", None)

    @property
    def url(self) -> str:
        return self.svc.url

    def start_worker(self, name: str, concurrency: int = 2, isolation: str = "thread",
                     methods: Optional[List[str]] = None) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "mofka_py.cli", "--url", self.url, "worker", "--pool", self.pool,
               "--worker-id", name, "--concurrency", str(concurrency), "--isolation", isolation]
        for m in methods or METHODS:
            cmd += ["--method", m]
        log = open(self.tmp / f"{name}.log", "ab")
        self.workers[name] = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return self.workers[name]

    def kill_worker(self, name: str, sig: int = signal.SIGKILL) -> None:
        os.kill(self.workers[name].pid, sig)
        if sig == signal.SIGKILL:
            self.workers[name].wait(30)

    def restart_service(self) -> None:
        """kill -9 the service and start it again on the same port and data."""
        port, data = self.svc.port, self.svc.data_dir
        self.svc.kill()
        self.svc = Service(data, port, sync=self.svc.sync).start()

    def worker_log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def close(self) -> None:
        for _name, proc in self.workers.items():
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
                stop_process(proc, signal.SIGTERM, timeout=30)
        self.svc.stop()


def wait_for(pred, timeout: float = 60.0, what: str = "condition") -> None:
    wait_until(pred, timeout, what)
