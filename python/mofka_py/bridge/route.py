"""One forwarding loop: a rule's source topic -> its target topic, with dedup, filter, transform and rate limit.

Order of one round: read up to ``batch_events`` events, send those that pass
to the sink, wait until the sink acknowledged all of them, then commit the
source. A crash between the sink's ack and the commit leaves events in the
target that the source will hand out again; on start the route asks the sink
for the highest origin offset it holds per source partition and skips up to
there, so each source event lands exactly once.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Dict, Optional

import orjson

from ..api import encode_metadata
from .config import BridgeConfig, Rule
from .endpoints import (ORIGIN_FIELD, FabricSink, FabricSource, Item, KafkaSink, KafkaSource, target_partition)

__all__ = ["Route", "RouteStats"]


class RouteStats:
    """Counters and state of one route, read by the status writer (plain attributes: GIL-atomic updates)."""

    def __init__(self, rule: str, source: str, target: str):
        self.rule, self.source, self.target = rule, source, target
        self.state = "starting"
        self.forwarded = self.filtered = self.duplicates = self.bytes = 0
        self.committed_events = 0
        self.lag: Optional[int] = None
        self.last_error: Optional[str] = None
        self.last_error_at: Optional[float] = None
        self.restarts = 0
        self._rate_mark = (time.monotonic(), 0, 0)
        self.rate_eps = self.rate_bps = 0.0

    def error(self, msg: str) -> None:
        self.last_error, self.last_error_at = msg, time.time()

    def snapshot(self) -> Dict[str, Any]:
        now = time.monotonic()
        t0, n0, b0 = self._rate_mark
        if now - t0 >= 0.5:
            self.rate_eps = (self.forwarded - n0) / (now - t0)
            self.rate_bps = (self.bytes - b0) / (now - t0)
            self._rate_mark = (now, self.forwarded, self.bytes)
        return {k: getattr(self, k) for k in ("rule", "source", "target", "state", "forwarded", "filtered",
                                              "duplicates", "bytes", "committed_events", "lag", "rate_eps",
                                              "rate_bps", "last_error", "last_error_at", "restarts")}


class _Stop(Exception):
    pass


class Route:
    """Forwards one source topic of a rule; runs in its own thread and restarts itself with backoff on errors."""

    def __init__(self, cfg: BridgeConfig, rule: Rule, src_index: int, fabrics: Dict[str, Any],
                 stop: threading.Event):
        self.cfg, self.rule, self.fabrics, self.stop = cfg, rule, fabrics, stop
        self.src_ep, self.src_topic = rule.sources[src_index]
        self.dst_ep, self.dst_topic = rule.target
        self.stats = RouteStats(rule.name, f"{self.src_ep.name}/{self.src_topic}", f"{self.dst_ep.name}/{self.dst_topic}")
        self.thread = threading.Thread(target=self._run, name=f"bridge-{rule.name}-{self.src_topic}", daemon=True)
        self.drain_timeout = 10.0
        self._fabric_sink = self.dst_ep.kind == "fabric"
        self._site_key = cfg.site_key.encode()
        self._site_pair = orjson.dumps({cfg.site_key: cfg.site})[1:-1]    # b'"site":"alcf"'
        self._rate_t0 = 0.0
        self._rate_n = 0
        self._rate_b = 0

    # -- plumbing ---------------------------------------------------------------------------------------
    def _open(self) -> tuple:
        ep, timeout = self.src_ep, self.cfg.connect_timeout
        if ep.kind == "fabric":
            source = FabricSource(self.fabrics[ep.name], self.src_topic, self.rule)
        else:
            source = KafkaSource(ep, self.src_topic, self.rule, timeout)
        try:
            nparts = self.rule.partitions or len(source.partition_ids)
            if self.dst_ep.kind == "fabric":
                sink = FabricSink(self.fabrics[self.dst_ep.name], self.dst_topic, self.rule, nparts)
            else:
                sink = KafkaSink(self.dst_ep, self.dst_topic, self.rule, nparts, timeout)
        except BaseException:
            source.close()
            raise
        return source, sink

    def _run(self) -> None:
        backoff = 0.5
        while not self.stop.is_set():
            source = sink = None
            try:
                source, sink = self._open()
                self.stats.state = "recovering"
                self._forward(source, sink)
                self.stats.state = "stopped"
                return
            except _Stop:
                self.stats.state = "stopped"
                return
            except Exception as exc:  # noqa: BLE001 - any failure: report, back off, start over
                self.stats.error(f"{type(exc).__name__}: {exc}")
                self.stats.restarts += 1
            finally:
                for end in (sink, source):
                    if end is not None:
                        try:
                            end.close()
                        except Exception:  # noqa: BLE001 - already failing; the next round reopens
                            pass
            self.stats.state = f"retrying in {backoff:.1f}s"
            if self.stop.wait(backoff):
                break
            backoff = min(backoff * 2, self.cfg.retry_max_s)
        self.stats.state = "stopped"

    # -- the loop ---------------------------------------------------------------------------------------
    def _forward(self, source: Any, sink: Any) -> None:
        site, topic = self.cfg.site, self.src_topic
        prefixes = {p: f"{site}/{topic}/{p}" for p in source.partition_ids}
        qmap = {p: target_partition(pre, sink.partitions) for p, pre in prefixes.items()}
        floors = sink.recover(prefixes.values(), self.cfg.recovery_scan_limit)
        floor_by_part = {p: floors.get(pre, -1) for p, pre in prefixes.items()}
        rule = self.rule
        linger = max(rule.linger_ms, 1.0) / 1000.0
        next_lag = 0.0
        fast = (rule.filter is None and rule.transform is None and not rule.rate_limit and not rule.rate_limit_bytes
                and hasattr(sink, "send_many"))
        self.stats.state = "running"
        # One round is in flight while the next is read from the source: `pending` was sent but is
        # committed only after the sink acknowledged it (and before the next round is sent).
        pending: Optional[tuple] = None
        while True:
            if self.stop.is_set():
                if pending is not None:
                    self._await_sink(sink, source)
                    self._commit(source, pending)
                raise _Stop()
            items = source.poll(rule.batch_events, 0.2 if pending is None else linger)
            if not items:
                if pending is not None:
                    self._await_sink(sink, source)
                    self._commit(source, pending)
                    pending = None
                if time.monotonic() >= next_lag:
                    self._update_lag(source)
                    next_lag = time.monotonic() + 1.0
                continue
            # Fill the round up to batch_events within the linger time.
            deadline = time.monotonic() + linger
            while len(items) < rule.batch_events:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                more = source.poll(rule.batch_events - len(items), left)
                if not more:
                    break
                items.extend(more)
            last: Dict[int, Item] = {}
            for item in items:
                last[item[0]] = item
            for p in last:
                if p not in prefixes:   # a partition added to the source topic since start
                    prefixes[p] = f"{site}/{topic}/{p}"
                    qmap[p] = target_partition(prefixes[p], sink.partitions)
                    floor_by_part[p] = -1
            if pending is not None:
                self._await_sink(sink, source)
                self._commit(source, pending)
                pending = None
            if fast:
                sent, dups, nbytes = sink.send_many(items, floor_by_part, prefixes, qmap, self._tag, rule.data == "forward")
                self.stats.forwarded += sent
                self.stats.duplicates += dups
                self.stats.bytes += nbytes
            else:
                for item in items:
                    p, off = item[0], item[1]
                    if off <= floor_by_part[p]:
                        self.stats.duplicates += 1
                        continue
                    self._send(sink, prefixes[p], qmap[p], off, item[2], item[3])
            pending = (last, len(items))
            if time.monotonic() >= next_lag:
                self._update_lag(source)
                next_lag = time.monotonic() + 1.0

    def _commit(self, source: Any, pending: tuple) -> None:
        source.commit(pending[0])
        self.stats.committed_events += pending[1]

    def _send(self, sink: Any, prefix: str, q: int, off: int, meta: bytes, data: Any) -> None:
        rule = self.rule
        origin = f"{prefix}/{off}"
        if rule.filter is not None or rule.transform is not None:
            obj: Any = _decode(meta)
            if rule.filter is not None and not rule.filter(obj):
                self.stats.filtered += 1
                return
            if rule.transform is not None:
                out = rule.transform(obj, data)
                if out is None:
                    self.stats.filtered += 1
                    return
                obj, data = out
            if isinstance(obj, dict):
                obj.setdefault(self.cfg.site_key, self.cfg.site)
                if self._fabric_sink:
                    obj[ORIGIN_FIELD] = origin
                meta = encode_metadata(obj)
            else:
                meta = self._tag(encode_metadata(obj), origin)
        else:
            meta = self._tag(meta, origin)
        if rule.data == "drop":
            data = None
        sink.send(prefix, q, origin, meta, data)
        size = len(meta) + (len(data) if data is not None else 0)
        self.stats.forwarded += 1
        self.stats.bytes += size
        if rule.rate_limit or rule.rate_limit_bytes:
            self._throttle(size)

    def _tag(self, meta: bytes, origin: str) -> bytes:
        """Add the site tag (and, for fabric targets, the origin) to JSON-object metadata without a full parse."""
        if meta[:1] != b"{" or (self._fabric_sink and b'"' + ORIGIN_FIELD.encode() + b'"' in meta):
            if self._fabric_sink:
                obj = _decode(meta)
                if not isinstance(obj, dict):
                    obj = {"metadata": obj} if not isinstance(obj, bytes) else {"metadata_hex": obj.hex()}
                obj.setdefault(self.cfg.site_key, self.cfg.site)
                obj[ORIGIN_FIELD] = origin
                return encode_metadata(obj)
            return meta
        head = b"{"
        if self._fabric_sink:
            head += b'"' + ORIGIN_FIELD.encode() + b'":' + orjson.dumps(origin) + b","
        if b'"' + self._site_key + b'"' not in meta:
            head += self._site_pair + b","
        rest = meta[1:].lstrip()
        if rest[:1] == b"}":
            return head[:-1] + b"}" if head != b"{" else meta
        return head + rest

    def _throttle(self, size: int) -> None:
        now = time.monotonic()
        if now - self._rate_t0 > 1.0:
            self._rate_t0, self._rate_n, self._rate_b = now, 0, 0
        self._rate_n += 1
        self._rate_b += size
        ahead = 0.0
        if self.rule.rate_limit:
            ahead = max(ahead, self._rate_n / self.rule.rate_limit - (now - self._rate_t0))
        if self.rule.rate_limit_bytes:
            ahead = max(ahead, self._rate_b / self.rule.rate_limit_bytes - (now - self._rate_t0))
        if ahead > 0:
            time.sleep(ahead)

    def _await_sink(self, sink: Any, source: Any) -> None:
        """Wait until the sink acknowledged everything sent; in an outage, report lag and keep waiting."""
        give_up: Optional[float] = None
        next_lag = time.monotonic() + 1.0
        while True:
            remaining = sink.flush(0.5)
            if remaining == 0:
                if self.stats.state != "running":
                    self.stats.state = "running"
                return
            self.stats.state = f"waiting for {self.stats.target} ({remaining} unacknowledged)"
            err = getattr(sink, "last_error", None)
            if err:
                self.stats.error(err)
            if time.monotonic() >= next_lag:
                try:
                    self._update_lag(source)
                except Exception as exc:  # noqa: BLE001 - lag is best effort during an outage
                    self.stats.error(f"lag: {exc}")
                next_lag = time.monotonic() + 1.0
            if self.stop.is_set():
                if give_up is None:
                    give_up = time.monotonic() + self.drain_timeout
                elif time.monotonic() > give_up:
                    raise _Stop()   # nothing committed: the next start re-reads and dedups

    def _update_lag(self, source: Any) -> None:
        try:
            self.stats.lag = source.lag()
        except Exception as exc:  # noqa: BLE001 - lag is informational
            self.stats.error(f"lag: {exc}")


def _decode(meta: bytes) -> Any:
    try:
        return orjson.loads(meta) if meta else None
    except orjson.JSONDecodeError:
        return meta
