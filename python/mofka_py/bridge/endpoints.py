"""Sources and sinks of the bridge: mofka-py fabrics and Kafka clusters.

A source hands out ``(partition, offset, metadata bytes, data, handle)``
tuples and commits positions after the sink acknowledged them. A sink writes
each event into the target partition its origin maps to (so one source
partition's events stay in order in one target partition) and can report the
highest origin offset already present per origin — how a restarted bridge
skips what it forwarded just before it was killed.

Origin id: ``SITE/TOPIC/PARTITION/OFFSET`` of the event in the bridge's
source; Kafka records carry it in the ``mofka.origin`` header, fabric events
in the ``mofka_origin`` metadata field.
"""
from __future__ import annotations

import time
import zlib
from typing import Any, Dict, Iterable, List, Optional, Tuple

from .. import api
from ..errors import BufferFull, Error, TimeoutError, TopicNotFound
from .config import Endpoint, Rule

ORIGIN_HEADER = "mofka.origin"
DATA_HEADER = "mofka.data"
ORIGIN_FIELD = "mofka_origin"
_ORIGIN_NEEDLE = b'"' + ORIGIN_FIELD.encode() + b'":"'
_SCAN_WINDOW = 20000

Item = Tuple[int, int, bytes, Any, Any]   # partition, offset, metadata, data (buffer or None), ack handle


def target_partition(prefix: str, partitions: int) -> int:
    """The target partition of every event of one origin ``SITE/TOPIC/PARTITION`` (stable across restarts)."""
    return zlib.crc32(prefix.encode()) % partitions


def parse_origin(value: Any) -> Optional[Tuple[str, str, int, int]]:
    """``(site, topic, partition, offset)`` from a ``mofka.origin`` header value or metadata field."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode("utf-8", "replace")
    parts = str(value).split("/")
    if len(parts) != 4:
        return None
    try:
        return parts[0], parts[1], int(parts[2]), int(parts[3])
    except ValueError:
        return None


def _kafka():
    try:
        import confluent_kafka
    except ImportError:  # pragma: no cover - depends on the environment
        raise Error("kafka:// endpoints need confluent-kafka: pip install confluent-kafka") from None
    return confluent_kafka


def kafka_conf(ep: Endpoint, **extra: Any) -> Dict[str, Any]:
    conf: Dict[str, Any] = {"bootstrap.servers": ep.bootstrap}
    conf.update(extra)
    conf.update(ep.settings)
    return conf


def check_kafka(ep: Endpoint, timeout: float) -> Any:
    """List the cluster's topics (proves it is reachable and the credentials work); returns the metadata."""
    ck = _kafka()
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(kafka_conf(ep))
    try:
        return admin.list_topics(timeout=timeout)
    except ck.KafkaException as exc:
        raise Error(f"Kafka endpoint {ep.name!r} ({ep.url}) is unreachable: {exc.args[0]}") from None


def ensure_kafka_topic(ep: Endpoint, topic: str, partitions: int, timeout: float) -> int:
    """Create ``topic`` if missing; return its partition count."""
    ck = _kafka()
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(kafka_conf(ep))
    md = admin.list_topics(timeout=timeout)
    if topic in md.topics and not md.topics[topic].error:
        return len(md.topics[topic].partitions)
    futures = admin.create_topics([NewTopic(topic, max(1, partitions), 1)], operation_timeout=timeout)
    try:
        futures[topic].result(timeout)
    except ck.KafkaException as exc:
        if exc.args[0].code() != ck.KafkaError.TOPIC_ALREADY_EXISTS:
            raise Error(f"cannot create Kafka topic {topic!r} on {ep.url}: {exc.args[0]}") from None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        md = admin.list_topics(topic, timeout=timeout)
        if topic in md.topics and not md.topics[topic].error and md.topics[topic].partitions:
            return len(md.topics[topic].partitions)
        time.sleep(0.1)
    raise Error(f"Kafka topic {topic!r} on {ep.url} did not appear after creation")


# ---------------------------------------------------------------------------------------------- sources

class FabricSource:
    """Reads a fabric topic with a consumer group; commits only what the sink acknowledged."""

    def __init__(self, fab: api.Fabric, topic: str, rule: Rule):
        self.fab, self.topic_name, self.rule = fab, topic, rule
        self.topic = fab.topic(topic)
        self.partition_ids = list(range(self.topic.partitions))
        self.cons = self.topic.consumer(group=rule.group, start="committed", data=rule.data == "forward")

    def poll(self, max_events: int, timeout: float) -> List[Item]:
        out: List[Item] = []
        append, with_data = out.append, self.rule.data == "forward"
        batch = self.cons.pull_batch(max_events, timeout)
        while batch is not None:
            p, first = batch.partition, batch.first_offset
            for i in range(len(batch)):
                ev = batch[i]
                append((p, first + i, ev.metadata_bytes, ev.data if with_data else None, ev))
            if len(out) >= max_events:
                break
            batch = self.cons.pull_batch(max_events - len(out), 0)
        return out

    def commit(self, last: Dict[int, Item]) -> None:
        for item in last.values():
            item[4].ack()
        self.cons.commit()

    def lag(self) -> Optional[int]:
        d = self.fab._f.describe(self.topic_name)
        total = 0
        for p in d["partitions"]:
            c = self.fab._f.committed(self.rule.group, self.topic_name, p["partition"])
            total += p["end_offset"] - (c if c is not None else p["start_offset"])
        return total

    def close(self) -> None:
        self.cons.close()


class KafkaSource:
    """Reads a Kafka topic (manual assignment, offsets committed to the rule's group after the sink acked)."""

    def __init__(self, ep: Endpoint, topic: str, rule: Rule, timeout: float):
        ck = self.ck = _kafka()
        self.topic_name, self.rule = topic, rule
        self.cons = ck.Consumer(kafka_conf(ep, **{"group.id": rule.group, "enable.auto.commit": False,
                                                  "fetch.wait.max.ms": 10, "session.timeout.ms": 6000,
                                                  "enable.partition.eof": False}))
        md = self.cons.list_topics(topic, timeout=timeout)
        if topic not in md.topics or md.topics[topic].error or not md.topics[topic].partitions:
            self.cons.close()
            raise TopicNotFound(f"Kafka topic {topic!r} not found on {ep.url}")
        self.partition_ids = sorted(md.topics[topic].partitions)
        tps = [ck.TopicPartition(topic, p) for p in self.partition_ids]
        committed = self.cons.committed(tps, timeout=timeout)
        default = ck.OFFSET_BEGINNING if rule.start == "earliest" else ck.OFFSET_END
        self.cons.assign([ck.TopicPartition(topic, tp.partition, tp.offset if tp.offset >= 0 else default)
                          for tp in committed])
        self.next_offset = {tp.partition: tp.offset for tp in committed}   # < 0: not known yet
        self.last_error: Optional[str] = None

    def poll(self, max_events: int, timeout: float) -> List[Item]:
        out: List[Item] = []
        for m in self.cons.consume(max_events, timeout):
            if m.error():
                self.last_error = str(m.error())
                continue
            data = None
            if self.rule.data == "forward":
                for k, v in m.headers() or ():
                    if k == DATA_HEADER:
                        data = v
            out.append((m.partition(), m.offset(), m.value() or b"", data, None))
        return out

    def _seen(self, p: int, off: int) -> None:
        if off + 1 > self.next_offset.get(p, -1):
            self.next_offset[p] = off + 1

    def commit(self, last: Dict[int, Item]) -> None:
        offsets = [self.ck.TopicPartition(self.topic_name, p, item[1] + 1) for p, item in last.items()]
        if offsets:
            self.cons.commit(offsets=offsets, asynchronous=False)
        for tp in offsets:
            self._seen(tp.partition, tp.offset - 1)

    def lag(self) -> Optional[int]:
        """Events in the topic not yet committed by this route (the high watermark may lag behind the log)."""
        total = 0
        for p in self.partition_ids:
            lo, hi = self.cons.get_watermark_offsets(self.ck.TopicPartition(self.topic_name, p), timeout=2,
                                                     cached=False)
            pos = self.next_offset.get(p, -1)
            total += max(0, hi - (pos if pos >= 0 else (lo if self.rule.start == "earliest" else hi)))
        return total

    def close(self) -> None:
        self.cons.close()


# ------------------------------------------------------------------------------------------------ sinks

class FabricSink:
    """Writes into a fabric topic; the origin id travels in the ``mofka_origin`` metadata field."""

    def __init__(self, fab: api.Fabric, topic: str, rule: Rule, partitions: int):
        self.fab, self.topic_name = fab, topic
        try:
            self.topic = fab.topic(topic)
        except TopicNotFound:
            self.topic = fab.create_topic(topic, partitions=max(1, partitions))
        self.partitions = self.topic.partitions
        self.prod = self.topic.producer(linger_ms=max(0.0, rule.linger_ms), batch_size=max(1, rule.batch_events))

    def recover(self, prefixes: Iterable[str], limit: int) -> Dict[str, int]:
        """Highest origin offset present per origin prefix, scanning each partition backwards from its end."""
        wanted: Dict[int, set] = {}
        for pre in prefixes:
            wanted.setdefault(target_partition(pre, self.partitions), set()).add(pre)
        found: Dict[str, int] = {}
        desc = {p["partition"]: p for p in self.topic.describe()["partitions"]}
        for q, pres in wanted.items():
            first, end = desc[q]["start_offset"], desc[q]["end_offset"]
            hi, scanned = end, 0
            while hi > first and scanned < limit and not pres.issubset(found):
                lo = max(first, hi - _SCAN_WINDOW)
                window: Dict[str, int] = {}
                with self.topic.consumer(partitions=[q], start=lo, data=False) as cons:
                    while True:
                        ev = cons.pull(timeout=10.0)
                        if ev is None:
                            raise Error(f"recovery scan of {self.topic_name}[{q}] stopped at offset {lo}")
                        origin = _origin_from_metadata(ev.metadata_bytes)
                        if origin is not None and origin[0] in pres:
                            window[origin[0]] = max(window.get(origin[0], -1), origin[1])
                        if ev.offset >= hi - 1:
                            break
                for pre, off in window.items():
                    found.setdefault(pre, off)
                scanned += hi - lo
                hi = lo
        return found

    def send(self, prefix: str, q: int, origin: str, meta: bytes, data: Any) -> None:
        while True:
            try:
                self.prod.push(meta, data, partition=q, block=False)
                return
            except BufferFull:
                time.sleep(0.005)

    def flush(self, timeout: float) -> int:
        try:
            self.prod.flush(timeout)
        except TimeoutError:
            return max(1, self.prod.pending_bytes)
        return 0

    def close(self) -> None:
        self.prod.close()


def _origin_from_metadata(meta: bytes) -> Optional[Tuple[str, int]]:
    i = meta.find(_ORIGIN_NEEDLE)
    if i < 0:
        return None
    j = meta.find(b'"', i + len(_ORIGIN_NEEDLE))
    text = meta[i + len(_ORIGIN_NEEDLE):j].decode("utf-8", "replace")
    pre, _, off = text.rpartition("/")
    try:
        return pre, int(off)
    except ValueError:
        return None


class KafkaSink:
    """An idempotent Kafka producer; the origin id travels in the ``mofka.origin`` header."""

    def __init__(self, ep: Endpoint, topic: str, rule: Rule, partitions: int, timeout: float):
        ck = self.ck = _kafka()
        self.ep, self.topic_name, self.rule, self.timeout = ep, topic, rule, timeout
        self.partitions = ensure_kafka_topic(ep, topic, partitions, timeout)
        self.failed: Optional[str] = None
        self.last_error: Optional[str] = None
        self.prod = ck.Producer(kafka_conf(ep, **{
            "enable.idempotence": True, "acks": "all", "linger.ms": rule.linger_ms,
            "batch.num.messages": 10000, "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1 << 20, "message.timeout.ms": 0,
            "delivery.report.only.error": True, "on_delivery": self._on_delivery, "error_cb": self._on_error}))
        self._since_poll = 0

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None and self.failed is None:
            self.failed = f"delivery to {self.topic_name} failed: {err}"

    def _on_error(self, err: Any) -> None:
        self.last_error = str(err)
        if err.fatal() and self.failed is None:
            self.failed = f"fatal Kafka producer error: {err}"

    def recover(self, prefixes: Iterable[str], limit: int) -> Dict[str, int]:
        """Highest origin offset present per origin prefix (reads each partition's tail up to its real end)."""
        ck = self.ck
        wanted: Dict[int, set] = {}
        for pre in prefixes:
            wanted.setdefault(target_partition(pre, self.partitions), set()).add(pre)
        found: Dict[str, int] = {}
        cons = ck.Consumer(kafka_conf(self.ep, **{"group.id": f"{self.rule.group}.recovery", "enable.auto.commit": False,
                                                  "enable.partition.eof": True, "fetch.wait.max.ms": 10}))
        try:
            for q, pres in wanted.items():
                # The high watermark may lag behind the log (seen with tansu): read past it to the fetch EOF.
                first, hi = cons.get_watermark_offsets(ck.TopicPartition(self.topic_name, q), timeout=self.timeout,
                                                       cached=False)
                stop_at: Optional[int] = None     # None: read to EOF
                scanned = 0
                lo = max(first, hi - _SCAN_WINDOW)
                while True:
                    window: Dict[str, int] = {}
                    cons.assign([ck.TopicPartition(self.topic_name, q, lo)])
                    deadline = time.monotonic() + max(30.0, self.timeout)
                    done = False
                    while not done:
                        if time.monotonic() > deadline:
                            raise Error(f"recovery scan of Kafka {self.topic_name}[{q}] timed out")
                        for m in cons.consume(10000, 1.0):
                            if m.error():
                                if m.error().code() == ck.KafkaError._PARTITION_EOF:
                                    done = True
                                    break
                                raise Error(f"recovery scan of Kafka {self.topic_name}[{q}]: {m.error()}")
                            if stop_at is not None and m.offset() >= stop_at:
                                done = True
                                break
                            scanned += 1
                            for k, v in m.headers() or ():
                                if k == ORIGIN_HEADER:
                                    pre, _, off = v.decode("utf-8", "replace").rpartition("/")
                                    if pre in pres:
                                        window[pre] = max(window.get(pre, -1), int(off))
                    for pre, off in window.items():
                        found.setdefault(pre, off)
                    if pres.issubset(found) or lo <= first or scanned >= limit:
                        break
                    stop_at, lo = lo, max(first, lo - _SCAN_WINDOW)
        finally:
            cons.close()
        return found

    def send(self, prefix: str, q: int, origin: str, meta: bytes, data: Any) -> None:
        headers = [(ORIGIN_HEADER, origin.encode())]
        if data is not None and len(data):
            headers.append((DATA_HEADER, bytes(data)))
        while True:
            try:
                self.prod.produce(self.topic_name, meta, prefix.encode(), partition=q, headers=headers)
                break
            except BufferError:
                self.prod.poll(0.05)
                if self.failed:
                    raise Error(self.failed)
        self._since_poll += 1
        if self._since_poll >= 1000:
            self._since_poll = 0
            self.prod.poll(0)

    def send_many(self, items: List[Item], floors: Dict[int, int], prefixes: Dict[int, str], qmap: Dict[int, int],
                  tag: Any, with_data: bool) -> Tuple[int, int, int]:
        """The hot path (no filter/transform): send ``items``, skipping origins at or below ``floors``.

        Returns (forwarded, duplicates, bytes)."""
        produce, poll, topic = self.prod.produce, self.prod.poll, self.topic_name
        keys = {p: pre.encode() for p, pre in prefixes.items()}
        sent = dups = nbytes = 0
        for p, off, meta, data, _ in items:
            if off <= floors[p]:
                dups += 1
                continue
            if meta[:1] == b"{":
                meta = tag(meta, None)
            key = keys[p]
            headers = [(ORIGIN_HEADER, b"%s/%d" % (key, off))]
            if with_data and data is not None and len(data):
                data = bytes(data)
                headers.append((DATA_HEADER, data))
                nbytes += len(data)
            while True:
                try:
                    produce(topic, meta, key, partition=qmap[p], headers=headers)
                    break
                except BufferError:
                    poll(0.05)
                    if self.failed:
                        raise Error(self.failed)
            sent += 1
            nbytes += len(meta)
            if sent % 2000 == 0:
                poll(0)
        poll(0)
        return sent, dups, nbytes

    def flush(self, timeout: float) -> int:
        remaining = self.prod.flush(timeout)
        if self.failed:
            raise Error(self.failed)
        return remaining

    def close(self) -> None:
        # Unacknowledged messages are abandoned: the source was not committed past them.
        self.prod.purge()
        self.prod.flush(0)
