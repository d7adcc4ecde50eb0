"""The resilient compute pool vs Colmena and ProcessPoolExecutor, in one run, on one machine.

    python benchmarks/bench_pool.py [--quick] [--systems ppe,mofka2,mofka4,colmena-htex,colmena-threads]
                                    [--cases throughput,roundtrip,numpy,failures] [--repeats 3]

Systems, each started here (fresh processes for every case) and stopped by pid:
  * ppe              concurrent.futures.ProcessPoolExecutor(2): the reference limit (not durable)
  * mofka2 / mofka4  mofka_py.services.Pool over a ``mofka-py serve --sync batch`` service
                     (durable: every task and outcome is fdatasync'ed before it is acknowledged)
                     with 2 / 4 ``mofka-py worker`` processes (concurrency 1, thread isolation)
  * mofka2-nosync    the same with ``--sync none`` (page cache, not durable): what the sync costs
  * colmena-htex     Colmena (RedisQueues on a Debian redis-server started here) with a
                     ParslTaskServer on a HighThroughputExecutor (2 workers, LocalProvider)
  * colmena-threads  the same with Parsl's ThreadPoolExecutor (2 threads)

Cases:
  * throughput  no-op tasks (5,000): submit all, wait for every result. The first batch in
                fresh processes is "cold"; the next --repeats batches are "warm" (median).
  * roundtrip   one task at a time (300): submit, wait for its result, next. The very first
                task in fresh processes is the cold figure; median and p99 of the rest are warm.
  * numpy       1 MiB float64 argument per task (500), the function returns its sum (checked
                here): tasks/s and MB/s of arguments, cold and warm as for throughput.
  * failures    2,000 x 10 ms tasks; after ~30% of the results, kill -9 one of: a busy worker,
                an idle worker (between two bursts), the worker manager, the task server
                (mofka-py: the service, restarted on the same port and data; Colmena: the task
                server process, restarted on the same Redis queues) and the steering process
                (restarted). Reported: tasks lost, outcomes delivered twice to the steering
                side, and whether the run hung (no new outcome for --hang-after s).

Every task's value is checked. Each case prints JSON lines with ratios to ProcessPoolExecutor
and to Colmena+HTEX; the targets are printed met/missed; results go to results/pool.{json,md,png}.
Colmena needs ``pip install colmena parsl redis`` and ``apt-get install -y redis-server``; without
them the other systems still run and the skipped ones are named.
"""
from __future__ import annotations

import argparse
import ctypes
import importlib.util
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import _bench
from _bench import free_port, median, pct

HERE = _bench.HERE
POOL = "bench"
METHODS = ("noop", "sleep_ms", "checksum")
ARRAY_BYTES = 1 << 20

TARGET_VS_COLMENA = 10.0        # x Colmena+HTEX throughput
TARGET_VS_PPE = 1.0             # x ProcessPoolExecutor(2) throughput, while durable
TARGET_ROUND_TRIP_MS = 1.0      # one-at-a-time median

SYSTEMS = {
    "ppe": "ProcessPoolExecutor(2)",
    "mofka2": "mofka-py pool, 2 workers",
    "mofka4": "mofka-py pool, 4 workers",
    "mofka2-nosync": "mofka-py pool, 2 workers, --sync none (not durable)",
    "colmena-htex": "Colmena + Parsl HTEX",
    "colmena-threads": "Colmena + Parsl threads",
}
SHORT = {"ppe": "ProcessPool\nExecutor(2)", "mofka2": "mofka-py\n2 workers", "mofka4": "mofka-py\n4 workers",
         "mofka2-nosync": "mofka-py 2 w.\n--sync none", "colmena-htex": "Colmena\n+ HTEX",
         "colmena-threads": "Colmena\n+ threads"}
FAILURES = ("busy_worker", "idle_worker", "manager", "task_server", "steering")
FAILURE_SYSTEMS = ("mofka2", "colmena-htex", "colmena-threads")


# ---------------------------------------------------------------- task functions
# Imported by the workers of every system as bench_pool.NAME: keep this module's import light.

def noop(i: int) -> int:
    return i


_PID_MARKED = False


def sleep_ms(i: int, ms: float) -> int:
    """A 10 ms task of the failure runs. The first call in a process leaves its pid in
    $BENCH_POOL_PIDS, so the benchmark knows which processes run tasks (the workers)."""
    global _PID_MARKED
    if not _PID_MARKED:
        d = os.environ.get("BENCH_POOL_PIDS")
        if d:
            Path(d, str(os.getpid())).touch()
        _PID_MARKED = True
    time.sleep(ms / 1000.0)
    return i


def checksum(a: Any) -> float:
    return float(a.sum())


# ---------------------------------------------------------------- small helpers

def log(msg: str) -> None:
    print(f"[bench_pool {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def child_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Environment of every process started here: this venv's bin first on PATH (Parsl starts its
    interchange and workers by name), this folder importable (task functions), no inherited URL."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(HERE) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("MOFKA_PY_URL", None)
    env.update(extra or {})
    return env


def become_subreaper() -> None:
    """Orphans of the processes started here (an HTEX interchange whose task server was killed)
    become our children, so they can be found and stopped by pid."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def reap_descendants(timeout: float = 10.0) -> None:
    """Stop every process this benchmark started that is still running, by pid: SIGTERM, then
    SIGKILL after ``timeout`` s."""
    try:
        import psutil
    except ImportError:
        return
    kids = psutil.Process().children(recursive=True)
    for p in kids:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(kids, timeout=timeout)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=5)


class Proc:
    """A subprocess started here, stopped by its pid."""

    def __init__(self, name: str, cmd: List[str], logdir: Path, env: Optional[Dict[str, str]] = None):
        self.name, self.cmd = name, cmd
        self.log_path = logdir / f"{name.replace(' ', '_')}.log"
        with open(self.log_path, "ab") as fh:
            self.proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env or child_env())
        self.started = time.time()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout: float = 20.0) -> None:
        if self.alive():
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, n: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def wait_file(path: Path, proc: Optional[Proc], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{what} exited early (code {proc.proc.returncode}):\n{proc.tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready within {timeout:.0f} s:\n{proc.tail() if proc else ''}")
        time.sleep(0.02)


def wait_port(port: int, proc: Proc, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if not proc.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port}:\n{proc.tail()}") from None
            time.sleep(0.05)


# ---------------------------------------------------------------- dependencies

def check_deps() -> Dict[str, str]:
    """Systems that cannot run here -> why and how to install what is missing."""
    skipped: Dict[str, str] = {}
    if importlib.util.find_spec("mofka_py") is None:
        for s in ("mofka2", "mofka4"):
            skipped[s] = "mofka_py is not importable: run ./scripts/bootstrap.sh and activate .venv"
    missing = [m for m in ("colmena", "parsl", "redis", "psutil") if importlib.util.find_spec(m) is None]
    why = []
    if missing:
        why.append(f"Python packages missing: {', '.join(missing)} (pip install colmena parsl redis psutil)")
    if shutil.which("redis-server") is None:
        why.append("redis-server not found (apt-get update && apt-get install -y redis-server)")
    if why:
        for s in ("colmena-htex", "colmena-threads"):
            skipped[s] = "; ".join(why)
    return skipped


# ---------------------------------------------------------------- systems (driver side)

class System:
    """The processes of one system for one case; ``steer_args`` tell the steering process how to
    reach it."""

    key = ""
    workers = 2

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.pid_dir = tmp / "pids"
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        self.env = child_env({"BENCH_POOL_PIDS": str(self.pid_dir)})
        self.launched = time.time()

    def start(self) -> None:
        pass

    def steer_args(self) -> List[str]:
        return []

    def task_pids(self) -> List[int]:
        """Processes that ran a failure-run task and are still alive (the workers)."""
        import psutil
        pids = []
        for f in self.pid_dir.iterdir():
            if f.name.isdigit() and psutil.pid_exists(int(f.name)):
                try:
                    if psutil.Process(int(f.name)).status() != psutil.STATUS_ZOMBIE:
                        pids.append(int(f.name))
                except psutil.Error:
                    pass
        return sorted(pids)

    def fail(self, kind: str) -> Optional[str]:
        """Do failure ``kind``; None when it does not apply to this system, else what was done."""
        return None

    def stop(self) -> None:
        reap_descendants()


class PpeSystem(System):
    key = "ppe"


class MofkaSystem(System):
    def __init__(self, tmp: Path, workers: int, isolation: str = "thread", sync: str = "batch"):
        super().__init__(tmp)
        self.key = f"mofka{workers}" + ("" if sync == "batch" else "-nosync")
        self.workers, self.isolation, self.sync = workers, isolation, sync
        self.port = free_port()
        self.data = tmp / "data"
        self.procs: Dict[str, Proc] = {}
        self.service: Optional[Proc] = None

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def _start_service(self) -> None:
        ready = self.tmp / f"ready-{time.monotonic_ns()}"
        self.service = Proc("service", [sys.executable, "-m", "mofka_py.cli", "serve", "--listen",
                                        f"127.0.0.1:{self.port}", "--sync", self.sync, "--data-dir", str(self.data),
                                        "--ready-file", str(ready)], self.tmp, self.env)
        wait_file(ready, self.service, "mofka-py serve", 60)

    def start(self) -> None:
        self._start_service()
        for i in range(self.workers):
            cmd = [sys.executable, "-m", "mofka_py.cli", "--url", self.url, "worker", "--pool", POOL,
                   "--worker-id", f"w{i}", "--concurrency", "1", "--isolation", self.isolation]
            for m in METHODS:
                cmd += ["--method", f"{m}=bench_pool:{m}"]
            self.procs[f"w{i}"] = Proc(f"worker-w{i}", cmd, self.tmp, self.env)

    def steer_args(self) -> List[str]:
        return ["--url", self.url, "--workers", str(self.workers)]

    def fail(self, kind: str) -> Optional[str]:
        import psutil
        if kind in ("busy_worker", "idle_worker"):
            w = self.procs["w0"]
            w.kill()
            return f"kill -9 worker process w0 (pid {w.pid})"
        if kind == "manager":
            # Runs with --isolation process: the `mofka-py worker` process manages a child that runs
            # the task. Kill the manager of a busy child.
            for pid in self.task_pids():
                parent = psutil.Process(pid).parent()
                if parent is not None and parent.pid in {p.pid for p in self.procs.values()}:
                    os.kill(parent.pid, signal.SIGKILL)
                    return f"kill -9 worker process (manager, pid {parent.pid}) of task process {pid}"
            return None
        if kind == "task_server":
            assert self.service is not None
            self.service.kill()
            t = time.monotonic()
            self._start_service()
            return f"kill -9 mofka-py serve, restarted on the same port and data ({time.monotonic() - t:.2f} s)"
        return None

    def stop(self) -> None:
        # Workers first, while the service can still take their last outcomes and commits.
        for p in self.procs.values():
            if p.alive():
                os.kill(p.pid, signal.SIGTERM)
        for p in self.procs.values():
            p.stop(10)
        if self.service is not None:
            self.service.stop(10)
        super().stop()


class ColmenaSystem(System):
    def __init__(self, tmp: Path, executor: str):
        super().__init__(tmp)
        self.key = f"colmena-{executor}"
        self.executor = executor
        self.redis_port = free_port()
        self.prefix = f"bench{os.getpid()}x{time.monotonic_ns() % 10**9}"
        self.redis: Optional[Proc] = None
        self.server: Optional[Proc] = None
        self.generation = 0

    def _start_server(self) -> None:
        self.generation += 1
        ready = self.tmp / f"server-ready-{self.generation}"
        cmd = [sys.executable, str(Path(__file__).resolve()), "_colmena_server", "--executor", self.executor,
               "--redis-port", str(self.redis_port), "--prefix", self.prefix, "--workers", str(self.workers),
               "--run-dir", str(self.tmp / f"runinfo{self.generation}"), "--ready-file", str(ready)]
        self.server = Proc(f"task-server-{self.generation}", cmd, self.tmp, self.env)
        wait_file(ready, self.server, "Colmena task server", 120)

    def start(self) -> None:
        self.redis = Proc("redis", ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                                    "--save", "", "--appendonly", "no", "--dir", str(self.tmp)], self.tmp, self.env)
        wait_port(self.redis_port, self.redis, "redis-server")
        self._start_server()

    def steer_args(self) -> List[str]:
        return ["--redis-port", str(self.redis_port), "--prefix", self.prefix, "--workers", str(self.workers)]

    def _managers(self) -> List[Any]:
        """HTEX managers (process_worker_pool): the parents of the processes that ran tasks. (The
        provider starts them through a shell that exits, so they are not under the task server.)"""
        import psutil
        out = {}
        for pid in self.task_pids():
            try:
                parent = psutil.Process(pid).parent()
                if parent is not None and any("process_worker_pool" in c for c in parent.cmdline()):
                    out[parent.pid] = parent
            except psutil.Error:
                pass
        return list(out.values())

    def fail(self, kind: str) -> Optional[str]:
        import psutil
        if self.executor == "threads" and kind in ("busy_worker", "idle_worker", "manager"):
            return None  # the workers are threads of the task server process
        if kind in ("busy_worker", "idle_worker"):
            pids = self.task_pids()
            if not pids:
                return None
            os.kill(pids[0], signal.SIGKILL)
            return f"kill -9 HTEX worker process {pids[0]}"
        if kind == "manager":
            for m in self._managers():
                os.kill(m.pid, signal.SIGKILL)
                return f"kill -9 HTEX manager process_worker_pool (pid {m.pid})"
            return None
        if kind == "task_server":
            assert self.server is not None
            old = psutil.Process(self.server.pid).children(recursive=True)
            for m in self._managers():
                old += [m] + m.children(recursive=True)
            self.server.kill()
            # The dead server's interchange and workers have nobody to report to; stop them by pid
            # so they do not take the cores from the new one.
            for p in old:
                try:
                    p.kill()
                except psutil.Error:
                    pass
            t = time.monotonic()
            self._start_server()
            return (f"kill -9 Colmena task server (pid {self.server.pid}), restarted on the same Redis queues "
                    f"({time.monotonic() - t:.1f} s to start)")
        return None

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(5)
        if self.redis is not None:
            self.redis.stop(5)
        super().stop()


def make_system(key: str, tmp: Path, isolation: str = "thread") -> System:
    if key == "ppe":
        return PpeSystem(tmp)
    if key.startswith("mofka"):
        workers, _, variant = key[len("mofka"):].partition("-")
        return MofkaSystem(tmp, int(workers), isolation, "none" if variant == "nosync" else "batch")
    return ColmenaSystem(tmp, key.split("-", 1)[1])


# ---------------------------------------------------------------- the Colmena task server process

def colmena_queues(port: int, prefix: str) -> Any:
    """Colmena's Redis queues, with a Redis client that waits without a socket timeout.

    redis-py 6 and later default to a 5 s socket timeout; Colmena 0.7.2 waits for requests with
    a blocking pop that has no timeout, so an idle task server dies with redis TimeoutError
    after about a minute (5 s and the client's retries). A user on a current redis-py has to do
    this too (or pin redis<6)."""
    import redis
    from colmena.queue.redis import RedisQueues

    queues = RedisQueues(topics=[], hostname="127.0.0.1", port=port, prefix=prefix, keep_inputs=False)
    queues.redis_client = redis.StrictRedis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=None)
    return queues


def colmena_server_main(a: argparse.Namespace) -> int:
    """Runs Colmena's ParslTaskServer in this process (so that kill -9 of this pid is a task server
    crash) and writes ``--ready-file`` once the executor has its workers connected."""
    import parsl
    from colmena.task_server.parsl import ParslTaskServer
    from parsl.config import Config

    import bench_pool as tasks

    queues = colmena_queues(a.redis_port, a.prefix)
    if a.executor == "htex":
        from parsl.executors import HighThroughputExecutor
        from parsl.providers import LocalProvider
        executor = HighThroughputExecutor(label="htex", address="127.0.0.1", max_workers_per_node=a.workers,
                                          provider=LocalProvider(init_blocks=1, min_blocks=1, max_blocks=1))
    else:
        from parsl.executors import ThreadPoolExecutor
        executor = ThreadPoolExecutor(label="threads", max_threads=a.workers)
    config = Config(executors=[executor], run_dir=a.run_dir, usage_tracking=0)
    server = ParslTaskServer([tasks.noop, tasks.sleep_ms, tasks.checksum], queues, config)

    def announce() -> None:
        while True:
            try:
                parsl.dfk()
                if a.executor != "htex" or sum(m.get("worker_count", 0) for m in executor.connected_managers()) >= a.workers:
                    break
            except Exception:
                pass
            time.sleep(0.05)
        Path(a.ready_file).write_text(str(time.time()))

    threading.Thread(target=announce, daemon=True).start()
    server.run()  # until killed
    return 0


# ---------------------------------------------------------------- steering process: clients

class Client:
    """Submit tasks and wait for their values, the way each system's users do."""

    def wait_ready(self) -> None:
        pass

    def batch(self, method: str, args: List[tuple], timeout: float) -> tuple:
        """Submit every task, then wait for every value: (seconds from the first submit to the
        last value, values in submission order)."""
        raise NotImplementedError

    def one(self, method: str, args: tuple, timeout: float) -> tuple:
        t0 = time.perf_counter()
        _, values = self.batch(method, [args], timeout)
        return time.perf_counter() - t0, values[0]

    def close(self) -> None:
        pass


class PpeClient(Client):
    def __init__(self, a: argparse.Namespace):
        from concurrent.futures import ProcessPoolExecutor

        import bench_pool as tasks
        self.fns = {m: getattr(tasks, m) for m in METHODS}
        self.ex = ProcessPoolExecutor(a.workers)

    def batch(self, method, args, timeout):
        fn = self.fns[method]
        t0 = time.perf_counter()
        futs = [self.ex.submit(fn, *x) for x in args]
        values = [f.result(timeout) for f in futs]
        return time.perf_counter() - t0, values

    def close(self) -> None:
        self.ex.shutdown()


class MofkaClient(Client):
    def __init__(self, a: argparse.Namespace):
        import mofka_py as mp
        from mofka_py.services import Pool

        self.fab = mp.connect(a.url)
        self.pool = Pool(self.fab, POOL, stream=False)
        self.workers = a.workers

    def wait_ready(self) -> None:
        """Every worker has joined the group of every method's task topic (owns partitions)."""
        from mofka_py.errors import Error
        from mofka_py.services._names import task_topic, workers_group
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                ok = all(sum(1 for m in self.fab.topic(task_topic(POOL, meth)).describe_group(
                    workers_group(POOL))["members"] if m["partitions"]) >= self.workers for meth in METHODS)
            except Error:
                ok = False
            if ok:
                return
            time.sleep(0.05)
        raise RuntimeError("mofka-py workers did not join within 120 s")

    def breakdown(self, n: int, timeout: float) -> Dict[str, float]:
        """Where one task's round trip goes, from the pool's own timestamps (one clock: one host):
        submit -> a worker starts it (task stored durably, fetched by the worker), the run, and
        the worker's end -> the steering side has the outcome (outcome stored durably, fetched).
        Medians in ms over ``n`` one-at-a-time tasks, through a stream pool (Result objects)."""
        from mofka_py.services import Pool
        self.pool.close()
        self.pool = Pool(self.fab, POOL, stream=True)
        parts: Dict[str, List[float]] = {"to_worker_ms": [], "run_ms": [], "to_steering_ms": []}
        results = self.pool.results(timeout=timeout)
        for i in range(n):
            self.pool.submit("noop", i)
            r = next(results)
            now = time.time()
            parts["to_worker_ms"].append((r.started - r.submitted) * 1e3)
            parts["run_ms"].append((r.finished - r.started) * 1e3)
            parts["to_steering_ms"].append((now - r.finished) * 1e3)
        return {k: statistics.median(v) for k, v in parts.items()}

    def batch(self, method, args, timeout):
        submit = self.pool.submit
        t0 = time.perf_counter()
        futs = [submit(method, *x) for x in args]
        values = [f.result(timeout) for f in futs]
        return time.perf_counter() - t0, values

    def close(self) -> None:
        self.pool.close()
        self.fab.close()


class ColmenaClient(Client):
    def __init__(self, a: argparse.Namespace):
        self.queues = colmena_queues(a.redis_port, a.prefix)
        self.queues.set_role("client")

    def batch(self, method, args, timeout):
        from colmena.exceptions import TimeoutException
        q = self.queues
        t0 = time.perf_counter()
        order = {q.send_inputs(*x, method=method): k for k, x in enumerate(args)}
        values: List[Any] = [None] * len(args)
        for _ in range(len(args)):
            try:
                r = q.get_result(timeout=timeout)
            except TimeoutException:
                raise RuntimeError(f"no Colmena result within {timeout:.0f} s") from None
            if not r.success:
                raise RuntimeError(f"Colmena task failed: {r.failure_info}")
            values[order[r.task_id]] = r.value
        return time.perf_counter() - t0, values


def make_client(a: argparse.Namespace) -> Client:
    if a.system == "ppe":
        return PpeClient(a)
    if a.system.startswith("mofka"):
        return MofkaClient(a)
    return ColmenaClient(a)


def emit(rec: Dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(rec) + "\n")
    sys.stdout.flush()


def steer_perf(a: argparse.Namespace) -> int:
    """One performance case against a running system; JSON lines on stdout."""
    t_start = time.time()
    client = make_client(a)
    client.wait_ready()
    emit({"kind": "ready", "t": time.time(), "connect_s": time.time() - t_start})
    timeout = a.hang_after
    try:
        if a.case == "throughput":
            for rep in range(a.repeats + 1):
                dt, values = client.batch("noop", [(i,) for i in range(a.tasks)], timeout)
                bad = sum(1 for i, v in enumerate(values) if v != i)
                emit({"kind": "sample", "rep": rep, "seconds": dt, "tasks": a.tasks, "bad": bad})
        elif a.case == "roundtrip":
            dt, v = client.one("noop", (0,), timeout)
            emit({"kind": "first", "seconds": dt, "t": time.time(), "bad": int(v != 0)})
            for i in range(20):  # warm-up, not recorded
                client.one("noop", (i,), timeout)
            lat, bad = [], 0
            for i in range(a.tasks):
                dt, v = client.one("noop", (i,), timeout)
                lat.append(dt)
                bad += v != i
            emit({"kind": "latencies", "seconds": lat, "bad": bad})
            if isinstance(client, MofkaClient):
                emit({"kind": "breakdown", **client.breakdown(min(100, a.tasks), timeout)})
        elif a.case == "numpy":
            import numpy as np
            arrays = [np.random.default_rng(k).random(ARRAY_BYTES // 8) for k in range(8)]
            sums = [float(x.sum()) for x in arrays]
            for rep in range(a.repeats + 1):
                dt, values = client.batch("checksum", [(arrays[i % 8],) for i in range(a.tasks)], timeout)
                bad = sum(1 for i, v in enumerate(values) if v != sums[i % 8])
                emit({"kind": "sample", "rep": rep, "seconds": dt, "tasks": a.tasks, "bad": bad,
                      "bytes": a.tasks * ARRAY_BYTES})
    finally:
        client.close()
    return 0


# ---------------------------------------------------------------- steering process: failure runs

class OutcomeLog:
    """One JSON line per outcome the steering side receives: {"i", "ok", ...}."""

    def __init__(self, path: str):
        self.fh = open(path, "ab", buffering=0)
        self.seen = 0
        self.lock = threading.Lock()

    def write(self, rec: Dict[str, Any]) -> None:
        with self.lock:
            self.fh.write(json.dumps(rec).encode() + b"\n")
            if "i" in rec:
                self.seen += 1


def _wait_go(path: str, stop: threading.Event) -> None:
    while not os.path.exists(path) and not stop.is_set():
        time.sleep(0.02)


def steer_fail_mofka(a: argparse.Namespace, out: OutcomeLog, stop: threading.Event) -> None:
    import mofka_py as mp
    from mofka_py.services import Pool

    with mp.connect(a.url, reconnect_timeout_ms=600_000) as fab:
        pool = Pool(fab, POOL)  # outcomes as a stream, acknowledged once handled: survives a restart

        @pool.on_result("sleep_ms")
        def got(r: Any) -> None:
            i = r.value if r.ok else int(r.task_id.rsplit("-", 1)[1])
            out.write({"i": i, "ok": r.ok, "again": r.redelivered, "att": r.attempts})

        if a.mode == "restart":
            out.write({"pending": len(pool.pending())})
        else:
            first = a.burst or a.tasks
            for i in range(first):
                pool.submit("sleep_ms", i, a.ms, retries=3)
            pool.flush(120)
            if a.burst:
                pool.run(until=lambda: out.seen >= a.burst or stop.is_set())
                out.write({"burst": 1})
                _wait_go(a.go_file, stop)
                for i in range(a.burst, a.tasks):
                    pool.submit("sleep_ms", i, a.ms, retries=3)
                pool.flush(120)
        pool.run(until=stop.is_set)
        out.write({"status": pool.status()})
        pool.close()


def steer_fail_colmena(a: argparse.Namespace, out: OutcomeLog, stop: threading.Event) -> None:
    import redis
    from colmena.exceptions import TimeoutException

    q = colmena_queues(a.redis_port, a.prefix)
    q.set_role("client")

    def submit(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            q.send_inputs(i, a.ms, method="sleep_ms", task_info={"i": i}, max_retries=3)

    def drain(until: Callable[[], bool]) -> None:
        while not until() and not stop.is_set():
            try:
                r = q.get_result(timeout=1)
            except TimeoutException:
                continue
            except redis.exceptions.ConnectionError:
                time.sleep(0.5)
                continue
            out.write({"i": r.task_info["i"], "ok": bool(r.success), "att": r.retries})

    if a.mode != "restart":
        submit(0, a.burst or a.tasks)
        if a.burst:
            drain(lambda: out.seen >= a.burst)
            out.write({"burst": 1})
            _wait_go(a.go_file, stop)
            submit(a.burst, a.tasks)
    drain(lambda: False)


def steer_fail(a: argparse.Namespace) -> int:
    out = OutcomeLog(a.log)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if a.system.startswith("mofka"):
        steer_fail_mofka(a, out, stop)
    else:
        steer_fail_colmena(a, out, stop)
    return 0


# ---------------------------------------------------------------- driver: performance cases

def run_steering(system: System, a: argparse.Namespace, case: str, tasks: int, repeats: int) -> List[Dict[str, Any]]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "_steer", "--system", system.key, "--case", case,
           "--tasks", str(tasks), "--repeats", str(repeats), "--hang-after", str(a.hang_after)] + system.steer_args()
    budget = a.hang_after * (repeats + 2) + 120
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(system.tmp / "steer.log", "ab"),
                            env=child_env(), stdin=subprocess.DEVNULL)
    try:
        out, _ = proc.communicate(timeout=budget)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"steering process ran past {budget:.0f} s") from None
    if proc.returncode != 0:
        raise RuntimeError(f"steering process failed ({proc.returncode}):\n"
                           + (system.tmp / "steer.log").read_text(errors="replace")[-3000:])
    return [json.loads(ln) for ln in out.decode().splitlines() if ln.startswith("{")]


def perf_case(key: str, case: str, a: argparse.Namespace, tasks: int) -> Dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix=f"bench_pool_{key}_{case}_"))
    system = make_system(key, tmp)
    # The disk's fdatasync rate just before and after a durable case: it varies a lot on a shared
    # machine, and it bounds the durable pool.
    durable = isinstance(system, MofkaSystem) and system.sync == "batch"
    syncs = [sync_rate(200)] if durable else []
    try:
        t_launch = time.time()
        system.start()
        t_started = time.time()
        recs = run_steering(system, a, case, tasks, a.repeats)
        if durable:
            syncs.append(sync_rate(200))
    finally:
        system.stop()
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    ready = next(r for r in recs if r["kind"] == "ready")
    row: Dict[str, Any] = {"case": case, "system": key, "name": SYSTEMS[key], "tasks": tasks,
                           "start_s": t_started - t_launch, "ready_s": ready["t"] - t_launch}
    bad = sum(r.get("bad", 0) for r in recs)
    row["wrong_values"] = bad
    if syncs:
        row["disk_syncs_per_s"] = statistics.median(syncs)
    if case in ("throughput", "numpy"):
        samples = [r for r in recs if r["kind"] == "sample"]
        rates = [r["tasks"] / r["seconds"] for r in samples]
        row.update(cold_tps=rates[0], warm_tps=median(rates[1:]), warm_samples=rates[1:])
        if case == "numpy":
            row.update(cold_mbps=rates[0] * ARRAY_BYTES / 1e6, warm_mbps=row["warm_tps"] * ARRAY_BYTES / 1e6)
        if syncs:
            row["tasks_per_disk_sync"] = row["warm_tps"] / row["disk_syncs_per_s"]
    else:
        first = next(r for r in recs if r["kind"] == "first")
        lat = next(r for r in recs if r["kind"] == "latencies")["seconds"]
        row.update(cold_ms=first["seconds"] * 1e3, first_result_s=first["t"] - t_launch,
                   median_ms=median(lat) * 1e3, p99_ms=pct(lat, 0.99) * 1e3)
        bd = next((r for r in recs if r["kind"] == "breakdown"), None)
        if bd:
            row["breakdown"] = {k: v for k, v in bd.items() if k != "kind"}
    return row


def add_ratios(rows: List[Dict[str, Any]], key: str) -> None:
    ref = {r["system"]: r for r in rows}
    for r in rows:
        for peer in ("ppe", "colmena-htex"):
            if peer in ref and r.get(key) and ref[peer].get(key):
                r[f"x_{peer}"] = r[key] / ref[peer][key]
                cold = key.replace("warm", "cold")
                if r.get(cold) and ref[peer].get(cold):
                    r[f"x_{peer}_cold"] = r[cold] / ref[peer][cold]


def sync_rate(size: int, seconds: float = 0.5) -> float:
    """Appends of ``size`` bytes, each followed by fdatasync, per second, in the file system
    where the services keep their data (the temporary directory)."""
    buf = os.urandom(size)
    with tempfile.TemporaryDirectory(prefix="bench_pool_sync_") as d:
        fd = os.open(os.path.join(d, "f"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                os.write(fd, buf)
                os.fdatasync(fd)
                n += 1
            return n / (time.perf_counter() - t0)
        finally:
            os.close(fd)


def sync_limits(repeats: int = 3) -> Dict[str, float]:
    """The durability limit of this disk: 200 B appends + fdatasync (syncs/s) and 1 MiB appends
    + fdatasync (MB/s), medians of ``repeats`` runs of 0.5 s."""
    small = [sync_rate(200) for _ in range(repeats)]
    big = [sync_rate(ARRAY_BYTES) * ARRAY_BYTES / 1e6 for _ in range(repeats)]
    return {"small_syncs_per_s": statistics.median(small), "mib_sync_mb_per_s": statistics.median(big)}


# ---------------------------------------------------------------- driver: failure runs

class Tail:
    """Reads the JSON lines appended to a file."""

    def __init__(self, path: Path):
        self.path, self.pos, self.buf = path, 0, b""

    def read(self) -> List[Dict[str, Any]]:
        if not self.path.exists():
            return []
        with open(self.path, "rb") as fh:
            fh.seek(self.pos)
            data = fh.read()
        self.pos += len(data)
        self.buf += data
        lines = self.buf.split(b"\n")
        self.buf = lines.pop()
        return [json.loads(ln) for ln in lines if ln.strip()]


def failure_run(key: str, kind: str, a: argparse.Namespace) -> Dict[str, Any]:
    n, ms = a.fail_tasks, 10.0
    at = int(n * 0.3)
    tmp = Path(tempfile.mkdtemp(prefix=f"bench_pool_{key}_{kind}_"))
    system = make_system(key, tmp, isolation="process" if kind == "manager" and key.startswith("mofka") else "thread")
    row: Dict[str, Any] = {"case": "failure", "system": key, "name": SYSTEMS[key], "failure": kind, "tasks": n}
    outlog, go = tmp / "outcomes.jsonl", tmp / "go"
    steerers: List[Proc] = []

    def start_steering(mode: str) -> None:
        cmd = [sys.executable, str(Path(__file__).resolve()), "_steer", "--system", key, "--case", "fail",
               "--mode", mode, "--tasks", str(n), "--ms", str(ms), "--log", str(outlog), "--go-file", str(go),
               "--hang-after", str(a.hang_after)] + system.steer_args()
        if kind == "idle_worker" and mode == "first":
            cmd += ["--burst", str(at)]
        steerers.append(Proc(f"steering-{len(steerers)}", cmd, tmp, system.env))

    try:
        system.start()
        start_steering("first")
        tail = Tail(outlog)
        seen: Dict[int, int] = {}
        failed, repeats, did = set(), 0, None
        t0 = last = time.monotonic()
        t_kill = None
        hung = crashed = False
        burst_done = False
        while len(seen) < n:
            for rec in tail.read():
                if "i" in rec:
                    i = rec["i"]
                    if i in seen:
                        repeats += 1
                    seen[i] = seen.get(i, 0) + 1
                    if not rec["ok"]:
                        failed.add(i)
                    last = time.monotonic()
                elif "burst" in rec:
                    burst_done = True
                elif "pending" in rec:
                    row["pending_at_restart"] = rec["pending"]
            if t_kill is None and len(seen) >= at and (kind != "idle_worker" or burst_done):
                if kind == "idle_worker":
                    time.sleep(0.3)  # every worker is idle now: the first burst is done, the next not sent
                if kind == "steering":
                    steerers[-1].kill()
                    did = f"kill -9 steering process (pid {steerers[-1].pid}), started again"
                    start_steering("restart")
                else:
                    did = system.fail(kind)
                t_kill = time.monotonic()
                row["killed_after"] = len(seen)
                if did is None:
                    row.update(applicable=False)
                    break
                if kind == "idle_worker":
                    go.touch()
                last = time.monotonic()
            if not steerers[-1].alive():
                crashed = True
                break
            if time.monotonic() - last > a.hang_after:
                hung = True
                break
            if time.monotonic() - t0 > a.run_limit:  # still trickling: stop, and say so
                row["unfinished"] = True
                break
            time.sleep(0.02)
        if did is not None:
            row.update(applicable=True, action=did, lost=n - len(seen), failed=len(failed), delivered_twice=repeats,
                       hung=hung, steering_crashed=crashed,
                       recovered_s=(last - t_kill) if t_kill is not None and not hung and not row.get("unfinished") else None,
                       wall_s=time.monotonic() - t0)
            if crashed:
                row["steering_log"] = steerers[-1].tail(5)
        # The steering process prints its pool's status (mofka-py: outcomes dropped as duplicates).
        if steerers and steerers[-1].alive():
            steerers[-1].stop(20)
        for rec in tail.read():
            if "status" in rec:
                row["dropped_duplicates"] = rec["status"].get("dropped")
                row["worker_lost"] = rec["status"].get("worker_lost")
    finally:
        for s in steerers:
            s.kill()
        system.stop()
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return row


# ---------------------------------------------------------------- driver: outputs

def fmt(x: Any, spec: str = ",.0f", empty: str = "–") -> str:
    return empty if x is None else format(x, spec)


def judge(rows: List[Dict[str, Any]], main: str) -> List[Dict[str, Any]]:
    """The issue's targets for system ``main`` (the 2-worker pool) with their measured ratios."""
    by = {(r["case"], r["system"], r.get("failure")): r for r in rows}
    out = []
    tp = by.get(("throughput", main, None))
    for peer, target, label in (("colmena-htex", TARGET_VS_COLMENA, "throughput >= 10x Colmena+HTEX"),
                                ("ppe", TARGET_VS_PPE, "throughput >= 1x ProcessPoolExecutor(2), durable")):
        if tp and tp.get(f"x_{peer}") is not None:
            out.append({"target": label, "warm": tp[f"x_{peer}"], "cold": tp.get(f"x_{peer}_cold"),
                        "met": tp[f"x_{peer}"] >= target, "met_cold": (tp.get(f"x_{peer}_cold") or 0) >= target,
                        "unit": "x"})
    rt = by.get(("roundtrip", main, None))
    if rt:
        out.append({"target": "round trip median <= 1 ms", "warm": rt["median_ms"], "cold": rt["cold_ms"],
                    "met": rt["median_ms"] <= TARGET_ROUND_TRIP_MS, "met_cold": rt["cold_ms"] <= TARGET_ROUND_TRIP_MS,
                    "unit": "ms"})
    fails = [r for r in rows if r["case"] == "failure" and r["system"] == main and r.get("applicable")]
    if fails:
        bad = [r["failure"] for r in fails if r["lost"] or r["hung"] or r["steering_crashed"] or r.get("unfinished")]
        out.append({"target": "0 tasks lost, no hang, in every failure run", "warm": sum(r["lost"] for r in fails),
                    "cold": None, "met": not bad, "met_cold": None, "unit": "lost",
                    "runs": len(fails), "missed_in": bad})
    return out


def markdown(rows: List[Dict[str, Any]], targets: List[Dict[str, Any]], meta: Dict[str, Any]) -> str:
    by = {(r["case"], r["system"]): r for r in rows if r["case"] != "failure"}
    systems = [s for s in SYSTEMS if any(r["system"] == s for r in rows)]
    lines = [f"Run `{meta['command']}` on {meta['host']} ({meta['cores']} cores, load average {meta['load']} at start), "
             f"{meta['date']}; load average {meta.get('load_end', '?')} at the end. Durable mofka-py: `mofka-py serve --sync batch` (fdatasync before every ack). "
             "Cold = first batch (first task for round trips) in fresh processes; warm = median of the "
             f"next {meta['repeats']} batches in the same processes."]
    if meta.get("sync_limits"):
        lim = meta["sync_limits"]
        lines[0] += (f" Durability limit of this disk, same run: {lim['small_syncs_per_s']:,.0f} small appends+fdatasync "
                     f"per second; {lim['mib_sync_mb_per_s']:,.0f} MB/s in 1 MiB appends+fdatasync.")
    lines.append("")
    if by:
        lines += ["| system | no-op tasks/s warm (cold) | vs PPE | vs Colmena+HTEX | round trip median / p99 ms (cold) "
                  "| 1 MiB tasks/s warm (cold) | MB/s warm | start to first result s | disk fdatasync/s then |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for s in systems:
            tp, rt, npy = by.get(("throughput", s)), by.get(("roundtrip", s)), by.get(("numpy", s))
            lines.append("| " + " | ".join([
                SYSTEMS[s],
                f"{fmt(tp['warm_tps'])} ({fmt(tp['cold_tps'])})" if tp else "–",
                fmt(tp.get("x_ppe") if tp else None, ".2f") + ("×" if tp and tp.get("x_ppe") else ""),
                fmt(tp.get("x_colmena-htex") if tp else None, ".1f") + ("×" if tp and tp.get("x_colmena-htex") else ""),
                f"{rt['median_ms']:.2f} / {rt['p99_ms']:.2f} ({rt['cold_ms']:.1f})" if rt else "–",
                f"{fmt(npy['warm_tps'])} ({fmt(npy['cold_tps'])})" if npy else "–",
                fmt(npy["warm_mbps"] if npy else None),
                fmt(rt["first_result_s"] if rt else None, ".1f"),
                " / ".join(fmt(r.get("disk_syncs_per_s")) for r in (tp, rt, npy) if r and r.get("disk_syncs_per_s"))
                or "–"]) + " |")
        lines.append("")
    bds = [r for r in rows if r.get("breakdown")]
    if bds:
        lines += ["Where a mofka-py round trip goes (medians over 100 one-at-a-time tasks, from the pool's timestamps): "
                  + "; ".join(f"{SYSTEMS[r['system']]}: submit→worker starts {r['breakdown']['to_worker_ms']:.2f} ms, "
                              f"run {r['breakdown']['run_ms']:.3f} ms, worker ends→steering has it "
                              f"{r['breakdown']['to_steering_ms']:.2f} ms" for r in bds), ""]
    fails = [r for r in rows if r["case"] == "failure"]
    if fails:
        lines += [f"Failure runs: {fails[0]['tasks']:,} × 10 ms tasks, kill -9 after ~30% of the outcomes; hung = no new "
                  f"outcome for {meta['hang_after']:.0f} s. Cells: tasks lost / tasks failed (an error outcome) / "
                  "outcomes delivered twice to the steering side (HUNG, or seconds from the kill to the last "
                  "outcome).", "",
                  "| system | " + " | ".join(k.replace("_", " ") for k in FAILURES) + " |",
                  "|---|" + "---:|" * len(FAILURES)]
        for s in systems:
            cells = []
            for k in FAILURES:
                r = next((x for x in fails if x["system"] == s and x["failure"] == k), None)
                if r is None:
                    cells.append("")
                elif not r.get("applicable"):
                    cells.append("n/a")
                else:
                    state = ("HUNG" if r["hung"] else "steering crashed" if r["steering_crashed"] else
                             f"unfinished after {r['wall_s']:.0f} s" if r.get("unfinished") else f"{r['recovered_s']:.1f} s")
                    cells.append(f"{r['lost']} / {r['failed']} / {r['delivered_twice']} ({state})")
            if any(cells):
                lines.append(f"| {SYSTEMS[s]} | " + " | ".join(cells) + " |")
        lines.append("")
    if targets:
        lines += ["| target (mofka-py pool, 2 workers) | warm | cold | met |", "|---|---:|---:|---|"]
        for t in targets:
            if t["unit"] == "x":
                w, c = f"{t['warm']:.2f}×", f"{t['cold']:.2f}×" if t["cold"] is not None else "–"
            elif t["unit"] == "ms":
                w, c = f"{t['warm']:.2f} ms", f"{t['cold']:.2f} ms"
            else:
                w, c = f"{t['warm']} lost in {t['runs']} runs", "–"
            met = ("met" if t["met"] else "MISSED") + ("" if t["met_cold"] is None else
                                                       f" (cold: {'met' if t['met_cold'] else 'missed'})")
            if t.get("missed_in"):
                met += f": {', '.join(t['missed_in'])}"
            lines.append(f"| {t['target']} | {w} | {c} | {met} |")
        lines.append("")
    if meta.get("skipped"):
        lines += [f"Skipped: {SYSTEMS[k]}: {v}" for k, v in meta["skipped"].items()] + [""]
    return "\n".join(lines)


def plot(rows: List[Dict[str, Any]], path: Path) -> None:
    plt = _bench.pyplot()
    if plt is None:
        return
    systems = [s for s in SYSTEMS if any(r["system"] == s for r in rows)]
    by = {(r["case"], r["system"]): r for r in rows if r["case"] != "failure"}
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    colors = {"ppe": "#777777", "mofka2": "#1f77b4", "mofka4": "#6baed6", "mofka2-nosync": "#9ecae1",
              "colmena-htex": "#d62728",
              "colmena-threads": "#ff9896"}

    def bars(ax, case, warm, cold, title, ylabel, log=True):
        xs = [s for s in systems if (case, s) in by]
        w = [by[(case, s)][warm] for s in xs]
        c = [by[(case, s)][cold] for s in xs]
        pos = range(len(xs))
        ax.bar([p - 0.2 for p in pos], w, 0.4, color=[colors[s] for s in xs], label="warm (median)")
        ax.bar([p + 0.2 for p in pos], c, 0.4, color=[colors[s] for s in xs], alpha=0.45, hatch="//", label="cold")
        ax.set_xticks(list(pos), [SHORT[s] for s in xs], fontsize=8)
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        ax.legend(fontsize=8)
        for p, v in zip(pos, w):
            ax.text(p - 0.2, v, f"{v:,.0f}" if v >= 10 else f"{v:.2f}", ha="center", va="bottom", fontsize=7)

    if any(k[0] == "throughput" for k in by):
        bars(axes[0][0], "throughput", "warm_tps", "cold_tps", "No-op tasks/s (log)", "tasks/s")
    if any(k[0] == "roundtrip" for k in by):
        bars(axes[0][1], "roundtrip", "median_ms", "cold_ms", "One-at-a-time round trip (log): median vs first task",
             "ms")
        axes[0][1].axhline(TARGET_ROUND_TRIP_MS, color="k", ls="--", lw=0.8)
    if any(k[0] == "numpy" for k in by):
        bars(axes[1][0], "numpy", "warm_mbps", "cold_mbps", "1 MiB numpy argument: MB/s (log)", "MB/s")
    fails = [r for r in rows if r["case"] == "failure" and r.get("applicable")]
    ax = axes[1][1]
    if fails:
        xs = [s for s in systems if any(r["system"] == s for r in fails)]
        width = 0.8 / max(1, len(xs))
        for j, s in enumerate(xs):
            vals = []
            for k in FAILURES:
                r = next((x for x in fails if x["system"] == s and x["failure"] == k), None)
                vals.append(r["lost"] if r else 0)
            pos = [i + j * width for i in range(len(FAILURES))]
            ax.bar(pos, vals, width, color=colors[s], label=SYSTEMS[s])
            for p, k in zip(pos, FAILURES):
                r = next((x for x in fails if x["system"] == s and x["failure"] == k), None)
                if r is None:
                    label, y = "n/a", 0
                else:
                    label, y = str(r["lost"]), r["lost"]
                    if r["hung"] or r["steering_crashed"] or r.get("unfinished"):
                        label += " hung" if r["hung"] else " crash" if r["steering_crashed"] else " unfinished"
                ax.text(p, y + 15, label, ha="center", va="bottom", fontsize=7, rotation=90)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(FAILURES))], [k.replace("_", "\n") for k in FAILURES],
                      fontsize=8)
        ax.set_title("Failure runs: tasks lost (0 is the target)")
        ax.set_ylim(0, max([r["lost"] for r in fails] + [100]) * 1.5)
        ax.set_ylabel("tasks lost")
        ax.legend(fontsize=7, loc="upper center", ncol=3)
    else:
        ax.axis("off")
    fig.suptitle("Compute pool: mofka-py vs Colmena vs ProcessPoolExecutor (2 cores, one run)")
    _bench.savefig(fig, path, dpi=110)


# ---------------------------------------------------------------- main

def parse(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="See the module docstring or docs/pool-benchmark.md for what each case measures.")
    p.add_argument("--quick", action="store_true", help="short run: fewer tasks and repeats, hang after 30 s")
    p.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated, of: {', '.join(SYSTEMS)}")
    p.add_argument("--cases", default="throughput,roundtrip,numpy,failures",
                   help="comma-separated, of: throughput, roundtrip, numpy, failures")
    p.add_argument("--failures", default=",".join(FAILURES), help=f"failure runs to do, of: {', '.join(FAILURES)}")
    p.add_argument("--repeats", type=int, help="warm repeats after the cold batch (default 3; --quick 2)")
    p.add_argument("--tasks", type=int, help="no-op tasks per batch (default 5000; --quick 1000)")
    p.add_argument("--hang-after", type=float, help="seconds without a new outcome that count as hung (default 120; "
                                                    "--quick 30)")
    p.add_argument("--run-limit", type=float, help="seconds a failure run may take in all (default 600; --quick 180)")
    p.add_argument("--no-save", action="store_true", help="print only; do not write results/pool.*")
    p.add_argument("--keep", action="store_true", help="keep the temporary directories (logs, data)")
    a = p.parse_args(argv)
    a.repeats = a.repeats if a.repeats is not None else (2 if a.quick else 3)
    a.tasks = a.tasks if a.tasks is not None else (1000 if a.quick else 5000)
    a.hang_after = a.hang_after if a.hang_after is not None else (30.0 if a.quick else 120.0)
    a.run_limit = a.run_limit if a.run_limit is not None else (180.0 if a.quick else 600.0)
    a.rt_tasks = 100 if a.quick else 300
    a.np_tasks = 100 if a.quick else 500
    a.fail_tasks = 600 if a.quick else 2000
    return a


def parse_internal(argv: List[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--system")
    p.add_argument("--case")
    p.add_argument("--mode", default="first")
    p.add_argument("--tasks", type=int, default=0)
    p.add_argument("--repeats", type=int, default=0)
    p.add_argument("--burst", type=int, default=0)
    p.add_argument("--ms", type=float, default=10.0)
    p.add_argument("--log")
    p.add_argument("--go-file")
    p.add_argument("--hang-after", type=float, default=120.0)
    p.add_argument("--url")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--redis-port", type=int)
    p.add_argument("--prefix")
    p.add_argument("--executor")
    p.add_argument("--run-dir")
    p.add_argument("--ready-file")
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_steer":
        a = parse_internal(argv[1:])
        return steer_fail(a) if a.case == "fail" else steer_perf(a)
    if argv and argv[0] == "_colmena_server":
        return colmena_server_main(parse_internal(argv[1:]))
    a = parse(argv)
    become_subreaper()
    wanted = [s.strip() for s in a.systems.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SYSTEMS]
    if unknown:
        print(f"unknown system(s) {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}", file=sys.stderr)
        return 2
    skipped = {k: v for k, v in check_deps().items() if k in wanted}
    for k, v in skipped.items():
        print(f"skipping {SYSTEMS[k]}: {v}", file=sys.stderr)
    systems = [s for s in wanted if s not in skipped]
    cases = [c.strip() for c in a.cases.split(",") if c.strip()]
    if "failures" in cases and importlib.util.find_spec("psutil") is None:
        print("skipping the failure runs: they find and stop processes with psutil (pip install psutil)", file=sys.stderr)
        cases.remove("failures")
    machine = _bench.Machine(argv, __file__)
    log(f"load average {machine.load_start:.2f} (2 cores: another job running here changes every figure; "
        "the ratios are measured in the same run, the absolute figures are not comparable between runs)")
    meta = {"command": machine.command, "host": machine.host, "cores": machine.cores,
            "load": f"{machine.load_start:.2f}", "date": machine.date, "repeats": a.repeats,
            "hang_after": a.hang_after, "skipped": skipped, "python": machine.python}
    try:
        meta["commit"] = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True,
                                        text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    for mod in ("colmena", "parsl", "redis", "numpy"):
        try:
            meta[mod] = importlib.import_module(mod).__version__
        except Exception:
            pass
    rows: List[Dict[str, Any]] = []
    if any(s.startswith("mofka") for s in systems):
        meta["sync_limits"] = sync_limits()
        emit({"case": "limit", **meta["sync_limits"]})
    sizes = {"throughput": a.tasks, "roundtrip": a.rt_tasks, "numpy": a.np_tasks}
    try:
        for case in cases:
            if case == "failures":
                continue
            case_rows = []
            for key in systems:
                log(f"{case}: {SYSTEMS[key]}")
                try:
                    case_rows.append(perf_case(key, case, a, sizes[case]))
                except Exception as exc:
                    log(f"{case} on {SYSTEMS[key]} failed: {exc}")
                    case_rows.append({"case": case, "system": key, "name": SYSTEMS[key], "error": str(exc)[-2000:]})
            ok = [r for r in case_rows if "error" not in r]
            add_ratios(ok, "median_ms" if case == "roundtrip" else "warm_tps")
            if case == "roundtrip":  # lower is better: express as how many times faster
                for r in ok:
                    for peer in ("ppe", "colmena-htex"):
                        if f"x_{peer}" in r:
                            r[f"x_{peer}"] = 1.0 / r[f"x_{peer}"]
                            r.pop(f"x_{peer}_cold", None)
            for r in case_rows:
                emit(r)
            rows += [r for r in case_rows if "error" not in r]
        if "failures" in cases:
            kinds = [k.strip() for k in a.failures.split(",") if k.strip()]
            for key in [s for s in systems if s in FAILURE_SYSTEMS]:
                for kind in kinds:
                    log(f"failure run: {SYSTEMS[key]}, {kind}")
                    try:
                        r = failure_run(key, kind, a)
                    except Exception as exc:
                        log(f"failure run {kind} on {SYSTEMS[key]} failed: {exc}")
                        r = {"case": "failure", "system": key, "name": SYSTEMS[key], "failure": kind,
                             "error": str(exc)[-2000:]}
                    emit(r)
                    if "error" not in r:
                        rows.append(r)
    finally:
        reap_descendants()
    meta["load_end"] = f"{machine.finish().load_end:.2f}"
    targets = judge(rows, "mofka2")
    for t in targets:
        emit({"case": "target", **t})
        print(f"target: {t['target']}: {t['warm']:.2f} — {'met' if t['met'] else 'MISSED'}" if t["unit"] != "lost"
              else f"target: {t['target']}: {t['warm']} lost — {'met' if t['met'] else 'MISSED'}", file=sys.stderr)
    md = markdown(rows, targets, meta)
    print("\n" + md)
    if not a.no_save:
        out = _bench.results_dir()
        _bench.write_jsonl(out / "pool.json", [{"case": "meta", **meta}] + rows + [{"case": "target", **t} for t in targets])
        _bench.write_text(out / "pool.md", md)
        plot(rows, out / "pool.png")
        print(f"wrote {out / 'pool.json'}, pool.md, pool.png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
