"""The bridge's Kafka endpoints: a Kafka topic as a source (manual assignment, offsets committed to the
rule's group) and as a sink (an idempotent producer; the origin id travels in the ``mofka.origin`` header,
the data in ``mofka.data``), the settings of their clients, and the checks a start runs against a cluster.
What sources and sinks share: :mod:`.endpoint`; librdkafka's settings, logs and errors: :mod:`.kafka`.
"""
from __future__ import annotations

import time
from operator import length_hint
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..errors import Error, TopicNotFound
from .endpoint import DATA_HEADER, ORIGIN_HEADER, SCAN_WINDOW, Chunk, recover
from .kafka import KafkaHooks, base_conf, consumer_conf, producer_conf
from .model import ConfigError, Endpoint, Rule

__all__ = ["KafkaSource", "KafkaSink", "check_kafka", "ensure_kafka_topic", "kafka_conf", "source_consumer_conf",
           "recovery_consumer_conf", "sink_producer_conf"]


def _kafka():
    try:
        import confluent_kafka
    except ImportError:  # pragma: no cover - depends on the environment
        raise Error("kafka:// endpoints need confluent-kafka: pip install confluent-kafka") from None
    return confluent_kafka


def kafka_conf(ep: Endpoint, hooks: Optional[KafkaHooks] = None, **extra: Any) -> Dict[str, Any]:
    """Settings of a plain client of ``ep`` (admin): the bootstrap servers, ``extra``, the user's settings."""
    return base_conf(ep.bootstrap, ep.settings, hooks, **extra)


def _client(ep: Endpoint, make: Any, conf: Dict[str, Any]) -> Any:
    """Create a client; librdkafka refusing the settings is a configuration error (normally caught earlier,
    when the configuration was loaded)."""
    ck = _kafka()
    try:
        return make(conf)
    except (ck.KafkaException, TypeError, ValueError) as exc:
        err = exc.args[0] if exc.args else exc
        detail = err.str() if hasattr(err, "str") else str(err)
        raise ConfigError(f"{ep.where}: endpoint {ep.name!r}: librdkafka refused the settings: {detail}") from None


def check_kafka(ep: Endpoint, timeout: float, hooks: Optional[KafkaHooks] = None) -> Any:
    """List the cluster's topics (proves it is reachable and the credentials work); returns the metadata.

    Asks in short attempts so that the client's logs and errors are served in between: the first refused
    connection is reported at once, and the last one explains a failure.
    """
    ck = _kafka()
    from confluent_kafka.admin import AdminClient

    hooks = hooks or KafkaHooks(ep.name)
    admin = _client(ep, AdminClient, kafka_conf(ep, hooks))
    deadline = time.monotonic() + timeout
    while True:
        try:
            return admin.list_topics(timeout=max(0.1, min(1.0, deadline - time.monotonic())))
        except ck.KafkaException as exc:
            admin.poll(0)
            if time.monotonic() >= deadline:
                detail = hooks.last_error or exc.args[0].str()
                raise Error(f"no answer within {timeout:g} s: {detail}. Check the address, that the broker runs, "
                            f"and the security settings in [endpoints.{ep.name}.librdkafka]") from None


def ensure_kafka_topic(ep: Endpoint, topic: str, partitions: int, timeout: float,
                       hooks: Optional[KafkaHooks] = None) -> int:
    """Create ``topic`` if missing; return its partition count."""
    ck = _kafka()
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = _client(ep, AdminClient, kafka_conf(ep, hooks))
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


def source_consumer_conf(ep: Endpoint, rule: Rule, hooks: Optional[KafkaHooks] = None,
                         settings: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The settings of the consumer reading a Kafka source of ``rule``."""
    return consumer_conf(ep.bootstrap, ep.settings if settings is None else settings, hooks, group=rule.group,
                         **{"session.timeout.ms": 6000, "enable.partition.eof": False})


def recovery_consumer_conf(ep: Endpoint, rule: Rule, hooks: Optional[KafkaHooks] = None,
                           settings: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The settings of the consumer scanning a Kafka target of ``rule`` at start (reads to the partition end)."""
    return consumer_conf(ep.bootstrap, ep.settings if settings is None else settings, hooks,
                         group=f"{rule.group}.recovery", **{"enable.partition.eof": True})


def sink_producer_conf(ep: Endpoint, rule: Rule, hooks: Optional[KafkaHooks] = None,
                       settings: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The settings of the producer writing a Kafka target of ``rule``."""
    return producer_conf(ep.bootstrap, ep.settings if settings is None else settings, hooks, linger_ms=rule.linger_ms)


class KafkaSource:
    """Reads a Kafka topic (manual assignment, offsets committed to the rule's group after the sink acked)."""

    def __init__(self, ep: Endpoint, topic: str, rule: Rule, timeout: float, hooks: Optional[KafkaHooks] = None):
        ck = self.ck = _kafka()
        self.topic_name, self.rule = topic, rule
        self.cons = _client(ep, ck.Consumer, source_consumer_conf(ep, rule, hooks))
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

    def poll(self, max_events: int, timeout: float) -> List[Chunk]:
        out: List[Chunk] = []
        with_data = self.rule.data == "forward"
        cur: Optional[Chunk] = None
        # Wait for the first record only, then take what is already there: consume(n, timeout)
        # alone returns when n records came or the timeout passed, so a quiet topic (steering
        # commands) would hold a record for up to the whole timeout.
        first = self.cons.poll(timeout)
        if first is None:
            return out
        msgs = [first] + (self.cons.consume(max_events - 1, 0) if max_events > 1 else [])
        for m in msgs:
            if m.error():
                self.last_error = str(m.error())
                continue
            p = m.partition()
            if cur is None or cur[0] != p:
                cur = (p, [], [], [] if with_data else None, None)
                out.append(cur)
            cur[1].append(m.offset())
            cur[2].append(m.value() or b"")
            if with_data:
                data = None
                for k, v in m.headers() or ():
                    if k == DATA_HEADER:
                        data = v
                cur[3].append(data)
        return out

    def _seen(self, p: int, off: int) -> None:
        if off + 1 > self.next_offset.get(p, -1):
            self.next_offset[p] = off + 1

    def commit(self, last: Dict[int, Tuple[int, Any]]) -> None:
        offsets = [self.ck.TopicPartition(self.topic_name, p, off + 1) for p, (off, _) in last.items()]
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


def _headers(pre: bytes, offs: Sequence[int], datas: Optional[List[Any]]) -> List[Dict[str, bytes]]:
    """The Kafka headers of one chunk's records: the origin id, and the data (when not empty) in ``mofka.data``.

    Dicts rather than lists of pairs: a dict of bytes is not tracked by the garbage collector, and
    confluent-kafka converts it a little faster (~10% of the per-record cost for 100 B records).
    """
    if datas is None:
        return [{ORIGIN_HEADER: b"%s%d" % (pre, o)} for o in offs]
    return [{ORIGIN_HEADER: b"%s%d" % (pre, o)} if d is None or not len(d) else
            {ORIGIN_HEADER: b"%s%d" % (pre, o), DATA_HEADER: bytes(d)} for o, d in zip(offs, datas)]


class _Round:
    """Delivery state of one round of a Kafka sink: its marker records not yet acknowledged, the first error."""

    __slots__ = ("left", "error")

    def __init__(self) -> None:
        self.left = 0
        self.error: Any = None

    def delivered(self, err: Any, msg: Any) -> None:
        if err is not None and self.error is None:
            self.error = err
        self.left -= 1


class KafkaSink:
    """An idempotent Kafka producer; the origin id travels in the ``mofka.origin`` header."""

    def __init__(self, ep: Endpoint, topic: str, rule: Rule, partitions: int, timeout: float,
                 hooks: Optional[KafkaHooks] = None):
        ck = self.ck = _kafka()
        self.ep, self.topic_name, self.rule, self.timeout = ep, topic, rule, timeout
        self.hooks = hooks or KafkaHooks(ep.name)
        self.partitions = ensure_kafka_topic(ep, topic, partitions, timeout, self.hooks)
        self.failed: Optional[str] = None
        self.last_error: Optional[str] = None
        conf = sink_producer_conf(ep, rule, self.hooks)
        if conf.get("error_cb") == self.hooks.error:     # not the user's own (Python API)
            conf["error_cb"] = self._on_error
        self.prod = _client(ep, ck.Producer, conf)

    def _on_error(self, err: Any) -> None:
        self.last_error = str(err)
        if err.fatal() and self.failed is None:
            self.failed = f"fatal Kafka producer error: {err}"
        self.hooks.error(err)

    def recover(self, candidates: Dict[str, Sequence[int]], limit: int) -> Dict[str, int]:
        """Highest origin offset present per origin prefix, looked for in the prefix's candidate partitions
        (see :func:`.endpoint.partition_candidates`)."""
        return recover(self._scan, candidates, limit)

    def _scan(self, wanted: Dict[int, set], limit: int) -> Dict[str, int]:
        """Highest origin offset per wanted prefix (reads each partition's tail up to its real end)."""
        ck = self.ck
        found: Dict[str, int] = {}
        cons = _client(self.ep, ck.Consumer, recovery_consumer_conf(self.ep, self.rule, self.hooks))
        try:
            for q, pres in wanted.items():
                # The high watermark may lag behind the log (seen with tansu): read past it to the fetch EOF.
                first, hi = cons.get_watermark_offsets(ck.TopicPartition(self.topic_name, q), timeout=self.timeout,
                                                       cached=False)
                stop_at: Optional[int] = None     # None: read to EOF
                scanned = 0
                lo = max(first, hi - SCAN_WINDOW)
                while True:
                    window: Dict[str, int] = {}
                    cons.assign([ck.TopicPartition(self.topic_name, q, lo)])
                    deadline = time.monotonic() + max(30.0, self.timeout)
                    done = False
                    while not done:
                        if time.monotonic() > deadline:
                            raise Error(f"recovery scan of Kafka {self.topic_name}[{q}] timed out")
                        # consume() waits for the whole timeout unless the batch fills: keep it short so an
                        # empty or short tail (the usual case) ends at the partition EOF, not after a second.
                        for m in cons.consume(10000, 0.02):
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
                    stop_at, lo = lo, max(first, lo - SCAN_WINDOW)
        finally:
            cons.close()
        return found

    def send_chunks(self, chunks: List[Chunk], keys: Dict[int, bytes], qmap: Dict[int, int]) -> "_Round":
        """Produce ``chunks`` (final metadata; data into the ``mofka.data`` header) and return the round's token.

        Only the last record of the round per target partition carries a delivery callback: the idempotent
        producer delivers one partition in order and ``enable.gapless.guarantee`` turns any gap into a fatal
        error, so that record's acknowledgement covers every earlier one of the round.
        """
        rnd = _Round()
        last_for_q: Dict[int, int] = {}
        for i, c in enumerate(chunks):
            if c[2]:
                last_for_q[qmap[c[0]]] = i
        rnd.left = len(last_for_q)
        produce, topic = self.prod.produce, self.topic_name
        sent = 0
        for i, (p, offs, metas, datas, _) in enumerate(chunks):
            n = len(metas)
            if not n:
                continue
            key, q = keys[p], qmap[p]
            hs = _headers(key + b"/", offs, datas)
            marker = last_for_q[q] == i
            stop = n - 1 if marker else n
            # The hot loop: one positional produce() per record (topic, value, key, partition, on_delivery,
            # timestamp, headers), everything else prepared per chunk.
            it = iter(metas)
            try:
                for m, h in zip(it, hs if stop == n else hs[:stop]):
                    produce(topic, m, key, q, None, None, 0, h)
                j = stop
            except BufferError:
                j = n - 1 - length_hint(it)     # the record that did not fit
            while j < n:    # the queue was full (slow path), and the marker record
                cb = rnd.delivered if (marker and j == n - 1) else None
                try:
                    produce(topic, metas[j], key, partition=q, on_delivery=cb, headers=hs[j])
                    j += 1
                except BufferError:
                    self.prod.poll(0.05)
                    if self.failed:
                        raise Error(self.failed) from None
            sent += n
            if sent >= 5000:
                self.prod.poll(0)
                sent = 0
        self.prod.poll(0)
        return rnd

    def wait(self, rnd: "_Round", timeout: float) -> int:
        """0 once the round is acknowledged, else the records still unacknowledged (all rounds)."""
        deadline = time.monotonic() + timeout
        while rnd.left > 0:
            if rnd.error is not None and self.failed is None:
                self.failed = f"delivery to {self.topic_name} failed: {rnd.error}"
            if self.failed:
                raise Error(self.failed)
            left = deadline - time.monotonic()
            if left <= 0:
                return max(1, len(self.prod))
            self.prod.poll(min(left, 0.05))
        if rnd.error is not None:
            raise Error(f"delivery to {self.topic_name} failed: {rnd.error}")
        if self.failed:
            raise Error(self.failed)
        return 0

    def flush(self, timeout: float) -> int:
        remaining = self.prod.flush(timeout)
        if self.failed:
            raise Error(self.failed)
        return remaining

    def close(self) -> None:
        # Unacknowledged messages are abandoned: the source was not committed past them.
        self.prod.purge()
        self.prod.flush(0)
        # Serve what is still queued (purge reports, errors, logs): librdkafka prints events left unserved at
        # destruction on stderr itself ("Purging N unserved events from background queue").
        for _ in range(100):
            if not self.prod.poll(0):
                break
