"""A replicated cluster for the tests: one real etcd and N `mofka-py serve --cluster` processes on
127.0.0.1, each node stopped, killed, paused or restarted by pid."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from mofka_py.cluster.etcd import Etcd
from waiting import wait_until

from etcd_helpers import EtcdServer
from service_helpers import free_port, stop_process


class Node:
    """One `mofka-py serve --cluster` process; its log goes to a file (a pipe nobody reads would
    fill up and stall the node)."""

    def __init__(self, node_id: str, port: int, data_dir: Optional[Path], log_path: Path, args: Sequence[str]):
        self.node_id, self.port, self.data_dir, self.log_path, self.args = node_id, port, data_dir, log_path, args
        self.proc: Optional[subprocess.Popen] = None

    def start(self, timeout: float = 60.0) -> "Node":
        ready = self.log_path.with_suffix(".ready")
        if ready.exists():
            ready.unlink()
        cmd = [sys.executable, "-m", "mofka_py.cli", "serve", "--listen", f"127.0.0.1:{self.port}",
               "--ready-file", str(ready), "--no-health", "--node-id", self.node_id, *self.args]
        if self.data_dir is not None:
            cmd += ["--data-dir", str(self.data_dir)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"node {self.node_id} exited early:\n{self.log()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"node {self.node_id} did not start in time:\n{self.log()}")
            time.sleep(0.02)
        ready.unlink()
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> int:
        if not self.alive:
            return self.proc.returncode if self.proc else 0
        os.kill(self.proc.pid, signal.SIGCONT)  # a paused node must be able to stop
        return stop_process(self.proc)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class Cluster:
    """``n`` nodes (n1, n2, ...) coordinated by ``etcd``; ``storage`` "file" (each node its own
    directory under ``root``) or "memory"."""

    def __init__(self, root: Path, etcd: EtcdServer, n: int = 3, storage: str = "file", sync: str = "batch",
                 lease_ttl: int = 1, lag_ms: int = 1000, name: str = "test"):
        self.root, self.etcd, self.storage, self.sync = root, etcd, storage, sync
        self.lease_ttl, self.lag_ms, self.name = lease_ttl, lag_ms, name
        self.ports = {f"n{i + 1}": free_port() for i in range(n)}
        self.nodes: Dict[str, Node] = {}
        self.client = Etcd(etcd.url)
        self.prefix = f"/mofka-py/{name}/"

    @property
    def url(self) -> str:
        """The cluster URL clients connect with: every node."""
        return "tcp://" + ",".join(f"127.0.0.1:{p}" for p in self.ports.values())

    def data_dir(self, node: str) -> Optional[Path]:
        return self.root / node if self.storage == "file" else None

    def start(self, node: Optional[str] = None) -> "Cluster":
        args = ["--cluster", f"etcd://127.0.0.1:{self.etcd.client_port}/{self.name}", "--lease-ttl",
                str(self.lease_ttl), "--replica-lag-ms", str(self.lag_ms), "--sync", self.sync]
        for n in ([node] if node else list(self.ports)):
            self.nodes[n] = Node(n, self.ports[n], self.data_dir(n), self.root / f"{n}.log", args).start()
        return self

    def kill(self, node: str) -> None:
        """kill -9 by pid."""
        self.nodes[node].kill()

    def restart(self, node: str, empty: bool = False) -> None:
        """Start a stopped or killed node again, with its data or (``empty``) without."""
        if empty and self.data_dir(node) is not None:
            shutil.rmtree(self.data_dir(node), ignore_errors=True)
        self.start(node)

    def pause(self, node: str) -> None:
        os.kill(self.nodes[node].proc.pid, signal.SIGSTOP)

    def resume(self, node: str) -> None:
        os.kill(self.nodes[node].proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        for n in self.nodes.values():
            n.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {n} ---\n{node.log()[-8000:]}" for n, node in self.nodes.items())

    # ---- what etcd says ----

    def _get(self, *parts: object) -> Optional[dict]:
        kv = self.client.get(self.prefix + "/".join(str(p) for p in parts))
        return json.loads(kv.value) if kv is not None else None

    def leader(self, topic: str, partition: int) -> Optional[str]:
        v = self._get("leaders", topic, partition)
        return v["node"] if v else None

    def epoch(self, topic: str, partition: int) -> int:
        kv = self.client.get(self.prefix + f"leaders/{topic}/{partition}")
        return kv.create_revision if kv else 0

    def isr(self, topic: str, partition: int) -> List[str]:
        v = self._get("isr", topic, partition)
        return sorted(v["isr"]) if v else []

    def replicas(self, topic: str) -> List[List[str]]:
        v = self._get("topics", topic)
        return v["replicas"] if v else []

    def wait_leaders(self, topic: str, timeout: float = 30.0, exclude: Optional[str] = None) -> Dict[int, str]:
        """Wait until every partition has a leader (other than ``exclude``)."""
        def ready() -> bool:
            reps = self.replicas(topic)
            return bool(reps) and all(self.leader(topic, p) not in (None, exclude) for p in range(len(reps)))
        wait_until(ready, timeout, f"leaders for every partition of {topic}")
        return {p: self.leader(topic, p) for p in range(len(self.replicas(topic)))}

    def wait_fully_replicated(self, topic: str, timeout: float = 60.0) -> None:
        """Wait until every partition's in-sync set is all its replicas."""
        def full() -> bool:
            reps = self.replicas(topic)
            return bool(reps) and all(self.isr(topic, p) == sorted(r) for p, r in enumerate(reps))
        wait_until(full, timeout, f"{topic} fully replicated")


def wait_for_time(seconds: float) -> None:
    """Let a workload run for a while (not a timing assertion: nothing is checked against it)."""
    time.sleep(seconds)


class Workload:
    """Producers pushing numbered events and one consumer-group member reading them, each in a
    thread over the cluster URL, while faults happen. ``acked`` maps (producer, k) to the event id
    the cluster acknowledged; ``consumed`` lists (producer, k) as the group member received them."""

    def __init__(self, url: str, topic: str, producers: int = 2, group: str = "jepsen", rate_pause: float = 0.02):
        import threading

        self.url, self.topic, self.n, self.group, self.rate_pause = url, topic, producers, group, rate_pause
        self.acked: Dict[tuple, tuple] = {}
        self.failed: Dict[tuple, str] = {}
        self.consumed: List[tuple] = []
        self.errors: List[str] = []
        self.stop_producing = threading.Event()
        self.stop_consuming = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._produce, args=(i,), daemon=True) for i in range(producers)]
        self.consumer = threading.Thread(target=self._consume, daemon=True)

    def start(self) -> "Workload":
        for t in self.threads:
            t.start()
        self.consumer.start()
        return self

    def _settle(self, futures: list, force: bool) -> list:
        left = []
        for key, fut in futures:
            if not force and not fut.done():
                left.append((key, fut))
                continue
            try:
                eid = fut.result(timeout=120)
                with self.lock:
                    self.acked[key] = (eid.partition, eid.offset)
            except Exception as exc:  # noqa: BLE001 - an unacknowledged push: recorded, checked below
                with self.lock:
                    self.failed[key] = repr(exc)
        return left

    def _produce(self, i: int) -> None:
        import mofka_py as mp

        try:
            with mp.connect(self.url, reconnect_timeout_ms=120_000) as fab:
                with fab.topic(self.topic).producer(linger_ms=1) as prod:
                    futures: list = []
                    k = 0
                    while not self.stop_producing.is_set():
                        futures.append(((i, k), prod.push({"p": i, "k": k})))
                        k += 1
                        if k % 20 == 0:
                            futures = self._settle(futures, False)
                            time.sleep(self.rate_pause)
                    prod.flush(timeout=120)
                    self._settle(futures, True)
        except Exception as exc:  # noqa: BLE001 - reported by check()
            self.errors.append(f"producer {i}: {exc!r}")

    def _consume(self) -> None:
        import mofka_py as mp

        try:
            with mp.connect(self.url, reconnect_timeout_ms=120_000) as fab:
                with fab.topic(self.topic).consumer(group=self.group, start="earliest", data=False,
                                                    auto_commit_ms=200) as cons:
                    while not self.stop_consuming.is_set():
                        ev = cons.pull(timeout=0.2)
                        if ev is None:
                            continue
                        m = ev.metadata
                        with self.lock:
                            self.consumed.append((m["p"], m["k"]))
                        ev.ack()
        except Exception as exc:  # noqa: BLE001 - reported by check()
            self.errors.append(f"consumer: {exc!r}")

    def stop(self, timeout: float = 180.0) -> None:
        """Stop producing (flushing what is pending), then wait until the consumer has every
        acknowledged event, then stop it."""
        self.stop_producing.set()
        for t in self.threads:
            t.join(timeout)
        with self.lock:
            want = set(self.acked)
        try:
            wait_until(lambda: want <= set(self.consumed) or self.errors, timeout,
                       "the consumer group to receive every acknowledged event")
        finally:
            self.stop_consuming.set()
            self.consumer.join(30)


def read_all(url: str, topic: str) -> Dict[int, List[tuple]]:
    """Every event of ``topic`` per partition, as (producer, k), read from the start without a group."""
    import mofka_py as mp

    out: Dict[int, List[tuple]] = {}
    with mp.connect(url, reconnect_timeout_ms=60_000) as fab:
        t = fab.topic(topic)
        d = t.describe()
        for p in d["partitions"]:
            got: List[tuple] = []
            with t.consumer(start="earliest", partitions=[p["partition"]], data=False) as cons:
                while len(got) < p["end_offset"] - p["start_offset"]:
                    ev = cons.pull(timeout=10)
                    assert ev is not None, f"partition {p['partition']}: only {len(got)} of {p['end_offset']} read"
                    got.append((ev.metadata["p"], ev.metadata["k"]))
            out[p["partition"]] = got
    return out


def check_history(w: Workload, stored: Dict[int, List[tuple]]) -> None:
    """Jepsen-style checks: every acknowledged event stored exactly once, at the partition and
    offset it was acknowledged with; no event stored twice; each producer's events in push order
    within a partition; the group received every acknowledged event."""
    assert not w.errors, w.errors
    # Producers retry through any failover for minutes: a push that failed is a finding (e.g. an
    # OutOfSequence: the new leader lacks a batch the producer saw acknowledged).
    assert not w.failed, f"{len(w.failed)} pushes failed, e.g. {list(w.failed.items())[:2]}"
    where: Dict[tuple, tuple] = {}
    for p, events in stored.items():
        for off, key in enumerate(events):
            assert key not in where, f"{key} stored twice: {where[key]} and partition {p} position {off}"
            where[key] = (p, off)
    missing = [k for k in w.acked if k not in where]
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {missing[:5]}"
    moved = [k for k, at in w.acked.items() if where[k] != at]
    assert not moved, f"{len(moved)} events stored elsewhere than acknowledged, e.g. {moved[:3]}"
    for p, events in stored.items():
        last: Dict[int, int] = {}
        for producer, k in events:
            assert k > last.get(producer, -1), f"partition {p}: producer {producer}'s event {k} after {last[producer]}"
            last[producer] = k
    assert set(w.acked) <= set(w.consumed)
