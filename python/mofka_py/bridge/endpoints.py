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

import hashlib
import time
import zlib
from itertools import accumulate
from operator import length_hint
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .. import api
from ..errors import BufferFull, Error, InvalidArgument, TimeoutError, TopicNotFound
from .config import PARTITION_MAPS, ConfigError, Endpoint, Rule
from .kafka import KafkaHooks, base_conf, consumer_conf, producer_conf

ORIGIN_HEADER = "mofka.origin"
DATA_HEADER = "mofka.data"
ORIGIN_FIELD = "mofka_origin"
_ORIGIN_NEEDLE = b'"' + ORIGIN_FIELD.encode() + b'":"'
_SCAN_WINDOW = 20000

# One source partition's consecutive events: partition, offsets (a range or a list), metadata list, data list
# (buffers or None; the list is None when data is not forwarded or none of the events has any), and the handle
# that acknowledges them.
Chunk = Tuple[int, Sequence[int], List[bytes], Optional[List[Any]], Any]


def target_partition(prefix: str, partitions: int, mapping: str = "v2") -> int:
    """The target partition of every event of one origin ``SITE/TOPIC/P`` (stable across restarts).

    ``v2`` (the default): ``(P + h("SITE/TOPIC")) % partitions`` with ``h`` BLAKE2b with an 8-byte
    digest read big-endian. Consecutive source partitions land in consecutive target partitions, so
    ``S`` source partitions use ``min(S, partitions)`` of them, each taking ``S // partitions`` or one
    more: a hash of the whole prefix would only spread them on average (4 into 4 would use all four
    in 9% of cases). The per site and topic offset spreads several sites sharing one target topic.

    ``v1`` (bridges before it): ``crc32("SITE/TOPIC/P") % partitions``. CRC-32 is linear, so prefixes
    that differ only in P fall into few residues: 0, 1 and 2 share one of 2 target partitions for
    every site name, and 4 source partitions use only 2 of 4.

    >>> [target_partition(f"aps/frames/{p}", 4) for p in range(6)]
    [2, 3, 0, 1, 2, 3]
    >>> [target_partition(f"aps/frames/{p}", 4, "v1") for p in range(4)]
    [2, 0, 2, 0]
    """
    site_topic, _, part = prefix.rpartition("/")
    if mapping == "v1":
        return zlib.crc32(prefix.encode()) % partitions
    if mapping != "v2":
        raise InvalidArgument(f"partition map must be one of {', '.join(PARTITION_MAPS)} (got {mapping!r})")
    if not site_topic or not part.isdigit():
        raise InvalidArgument(f"origin prefix must be SITE/TOPIC/PARTITION (got {prefix!r})")
    offset = int.from_bytes(hashlib.blake2b(site_topic.encode(), digest_size=8).digest(), "big")
    return (int(part) + offset) % partitions


def partition_candidates(prefix: str, partitions: int, mapping: str) -> List[int]:
    """Where a restarted bridge looks for what it forwarded from ``prefix``: the partition ``mapping``
    gives, then the one the other mapping gives (records written before the rule switched mappings)."""
    out = [target_partition(prefix, partitions, mapping)]
    for other in PARTITION_MAPS:
        q = target_partition(prefix, partitions, other)
        if q not in out:
            out.append(q)
    return out


def _recover(scan: Any, candidates: Dict[str, Sequence[int]], limit: int) -> Dict[str, int]:
    """Highest origin offset present per prefix: its first candidate partition is scanned, then, for the
    prefixes not found there, the next one (a prefix found in its own partition never costs a second scan:
    after a switch of mapping its newer records are all in the new partition)."""
    found: Dict[str, int] = {}
    for k in range(max((len(qs) for qs in candidates.values()), default=0)):
        wanted: Dict[int, set] = {}
        for pre, qs in candidates.items():
            if pre not in found and k < len(qs):
                wanted.setdefault(qs[k], set()).add(pre)
        if wanted:
            found.update(scan(wanted, limit))
    return found


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


# ---------------------------------------------------------------------------------------------- sources

class FabricSource:
    """Reads a fabric topic with a consumer group; commits only what the sink acknowledged."""

    def __init__(self, fab: api.Fabric, topic: str, rule: Rule):
        self.fab, self.topic_name, self.rule = fab, topic, rule
        self.topic = fab.topic(topic)
        self.partition_ids = list(range(self.topic.partitions))
        # One consumer per rule and bridge (the bridge's state-directory lock keeps it so): a stable
        # member id lets a bridge restarted after kill -9 take its partitions back at once.
        self.cons = self.topic.consumer(group=rule.group, start="committed", data=rule.data == "forward",
                                        member_id=f"{rule.group}.bridge")

    def poll(self, max_events: int, timeout: float) -> List[Chunk]:
        """Up to ``max_events`` events as chunks (one per stored batch): metadata sliced out of one zero-copy
        view of the batch, data views only when the rule forwards data and the batch has some (or a transform
        wants to see them)."""
        out: List[Chunk] = []
        n = 0
        with_data = self.rule.data == "forward"
        # A transform sees each event's data view even when empty; otherwise a batch without data forwards none.
        need_views = self.rule.transform is not None
        batch = self.cons.pull_batch(max_events, timeout)
        while batch is not None:
            k = len(batch)
            if k:
                whole = bytes(batch.metadata_view())
                u = batch.uniform_metadata_size()
                if u is not None:
                    metas = [whole[j:j + u] for j in range(0, u * k, u)] if u else [b""] * k
                else:
                    ends = list(accumulate(batch.metadata_lengths()))
                    metas = [whole[a:b] for a, b in zip([0] + ends[:-1], ends)]
                datas = batch.data_views() if with_data and (need_views or batch.data_size()) else None
                first = batch.first_offset
                out.append((batch.partition, range(first, first + k), metas, datas, batch))
                n += k
            if n >= max_events:
                break
            batch = self.cons.pull_batch(max_events - n, 0)
        return out

    def commit(self, last: Dict[int, Tuple[int, Any]]) -> None:
        for _, handle in last.values():
            handle.ack()
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
        self.prod = self.topic.producer(linger_ms=max(0.0, rule.linger_ms), batch_size=max(1, rule.batch_size))

    def recover(self, candidates: Dict[str, Sequence[int]], limit: int) -> Dict[str, int]:
        """Highest origin offset present per origin prefix, looked for in the prefix's candidate partitions
        (see :func:`partition_candidates`)."""
        return _recover(self._scan, candidates, limit)

    def _scan(self, wanted: Dict[int, set], limit: int) -> Dict[str, int]:
        """Highest origin offset per wanted prefix, scanning each partition backwards from its end."""
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

    def send_chunks(self, chunks: List[Chunk], keys: Dict[int, bytes], qmap: Dict[int, int]) -> Any:
        """Push the (final) metadata and data of ``chunks``; the returned token is awaited with :meth:`wait`."""
        push = self.prod.push
        for p, _, metas, datas, _ in chunks:
            q = qmap[p]
            for j, meta in enumerate(metas):
                data = datas[j] if datas is not None else None
                while True:
                    try:
                        push(meta, data, partition=q, block=False)
                        break
                    except BufferFull:
                        time.sleep(0.005)
        return None

    def wait(self, token: Any, timeout: float) -> int:
        """0 once everything pushed so far is stored, else the bytes still pending."""
        return self.flush(timeout)

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
        (see :func:`partition_candidates`)."""
        return _recover(self._scan, candidates, limit)

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
                lo = max(first, hi - _SCAN_WINDOW)
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
                    stop_at, lo = lo, max(first, lo - _SCAN_WINDOW)
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
