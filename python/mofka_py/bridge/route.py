"""One forwarding loop: a rule's source topic -> its target topic, with dedup, filter, transform and rate limit.

Order of one round: read up to ``batch_size`` events, send those that pass
to the sink, wait until the sink acknowledged all of them, then commit the
source. A crash between the sink's ack and the commit leaves events in the
target that the source will hand out again; on start the route asks the sink
for the highest origin offset it holds per source partition and skips up to
there, so each source event lands exactly once.
"""
from __future__ import annotations

import logging
import threading
import time
from bisect import bisect_right
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional

import orjson

from ..api import encode_metadata
from .config import BridgeConfig
from .endpoint import ORIGIN_FIELD, partition_candidates, target_partition
from .fabric_endpoint import FabricSink, FabricSource
from .kafka import KafkaHooks, RepeatLimiter
from .kafka_endpoint import KafkaSink, KafkaSource
from .model import Rule

__all__ = ["Route", "RouteStats", "RateLimiter"]


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


class RateLimiter:
    """A token bucket over events/s and bytes/s (0: no cap), with an injectable clock and sleep.

    ``acquire(events, nbytes)`` takes the tokens, letting the bucket go into debt, and sleeps until the debt
    is paid off; a full bucket holds ``burst`` seconds' worth, so an idle route may send that much at once.

    >>> t = [0.0]
    >>> rl = RateLimiter(100, clock=lambda: t[0], sleep=lambda s: t.__setitem__(0, t[0] + s), burst=0.1)
    >>> for _ in range(50): _ = rl.acquire(10, 0)
    >>> round(t[0], 2)      # 500 events at 100/s: the first 10 free (the burst), the rest paced
    4.9
    """

    def __init__(self, events_per_s: float = 0.0, bytes_per_s: float = 0.0, *,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 burst: float = 0.1):
        self.rates = (float(events_per_s), float(bytes_per_s))
        self.clock, self.sleep, self.burst = clock, sleep, burst
        self.tokens = [r * burst for r in self.rates]
        self.stamp = clock()

    def _refill(self) -> None:
        now = self.clock()
        dt, self.stamp = max(0.0, now - self.stamp), now
        for i, r in enumerate(self.rates):
            if r:
                self.tokens[i] = min(r * self.burst, self.tokens[i] + dt * r)

    def delay(self) -> float:
        """Seconds until the bucket is out of debt (0: may send now)."""
        self._refill()
        return max([-tok / r for tok, r in zip(self.tokens, self.rates) if r and tok < 0], default=0.0)

    def acquire(self, events: int, nbytes: int = 0) -> float:
        """Take ``events``/``nbytes`` tokens, then sleep until they are paid for; returns the time slept."""
        self._refill()
        for i, amount in enumerate((events, nbytes)):
            if self.rates[i]:
                self.tokens[i] -= amount
        wait = self.delay()
        if wait > 0:
            self.sleep(wait)
        return wait


class _Stop(Exception):
    pass


class Route:
    """Forwards one source topic of a rule; runs in its own thread and restarts itself with backoff on errors."""

    def __init__(self, cfg: BridgeConfig, rule: Rule, src_index: int, fabrics: Dict[str, Any],
                 stop: threading.Event, log: Optional[RepeatLimiter] = None):
        self.cfg, self.rule, self.fabrics, self.stop = cfg, rule, fabrics, stop
        self.log = log if log is not None else RepeatLimiter(cfg.log_repeat_s)
        self.src_ep, self.src_topic = rule.sources[src_index]
        self.dst_ep, self.dst_topic = rule.target
        self.stats = RouteStats(rule.name, f"{self.src_ep.name}/{self.src_topic}", f"{self.dst_ep.name}/{self.dst_topic}")
        self.thread = threading.Thread(target=self._run, name=f"bridge-{rule.name}-{self.src_topic}", daemon=True)
        self.drain_timeout = 10.0
        self._fabric_sink = self.dst_ep.kind == "fabric"
        self._site_key = cfg.site_key.encode()
        self._site_pair = orjson.dumps({cfg.site_key: cfg.site})[1:-1]    # b'"site":"alcf"'
        self._site_needle = b'"' + self._site_key + b'"'
        self._site_head = b"{" + self._site_pair + b","

    # -- plumbing ---------------------------------------------------------------------------------------
    def _open(self) -> tuple:
        ep, timeout = self.src_ep, self.cfg.connect_timeout
        if ep.kind == "fabric":
            source = FabricSource(self.fabrics[ep.name], self.src_topic, self.rule)
        else:
            source = KafkaSource(ep, self.src_topic, self.rule, timeout, KafkaHooks(ep.name, self.log))
        try:
            nparts = self.rule.partitions or len(source.partition_ids)
            if self.dst_ep.kind == "fabric":
                sink = FabricSink(self.fabrics[self.dst_ep.name], self.dst_topic, self.rule, nparts)
            else:
                sink = KafkaSink(self.dst_ep, self.dst_topic, self.rule, nparts, timeout,
                                 KafkaHooks(self.dst_ep.name, self.log))
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
                msg = f"{type(exc).__name__}: {exc}"
                self.stats.error(msg)
                self.stats.restarts += 1
                self.log.emit(logging.WARNING, (self.rule.name, self.stats.source, msg),
                              f"rule {self.rule.name!r} ({self.stats.source} -> {self.stats.target}): {msg}; "
                              f"retrying in {backoff:.1f} s")
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
        mapping = self.rule.partition_map
        prefixes = {p: f"{site}/{topic}/{p}" for p in source.partition_ids}
        qmap = {p: target_partition(pre, sink.partitions, mapping) for p, pre in prefixes.items()}
        keys = {p: pre.encode() for p, pre in prefixes.items()}
        # The recovery scan looks where the routing writes (qmap), then where the other mapping wrote before a
        # switch of partition_map, so a switch after a crash still sends nothing twice.
        floors = sink.recover({pre: partition_candidates(pre, sink.partitions, mapping) for pre in prefixes.values()},
                              self.cfg.recovery_scan_limit)
        floor_by_part = {p: floors.get(pre, -1) for p, pre in prefixes.items()}
        rule = self.rule
        linger = max(rule.linger_ms, 1.0) / 1000.0
        round_max = rule.batch_size
        limiter = None
        if rule.rate_limit or rule.rate_limit_bytes:
            limiter = RateLimiter(rule.rate_limit, rule.rate_limit_bytes, sleep=self._sleep)
            if rule.rate_limit:     # small rounds keep a capped route smooth (about 10 rounds a second)
                round_max = max(1, min(round_max, int(rule.rate_limit / 10) or 1))
        fast = rule.filter is None and rule.transform is None and not self._fabric_sink
        forward = rule.data == "forward"
        self.stats.state = "running"
        # Rounds in flight, oldest first: (sink token, last (offset, handle) per source partition, events).
        # Round N+1 is read and sent while round N is being acknowledged; a round's source positions are
        # committed only after it and every earlier round were acknowledged.
        inflight: Deque[tuple] = deque()
        next_lag = 0.0
        while True:
            if self.stop.is_set():
                self._drain(sink, source, inflight, 0)
                raise _Stop()
            chunks = source.poll(round_max, 0.2 if not inflight else linger)
            if not chunks:
                self._drain(sink, source, inflight, 0)
                if time.monotonic() >= next_lag:
                    self._update_lag(source)
                    next_lag = time.monotonic() + 1.0
                continue
            n = sum(len(c[2]) for c in chunks)
            deadline = time.monotonic() + linger
            while n < round_max:        # fill the round up to batch_size within the linger time
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                more = source.poll(round_max - n, left)
                if not more:
                    break
                chunks.extend(more)
                n += sum(len(c[2]) for c in more)
            last: Dict[int, tuple] = {}
            for i, c in enumerate(chunks):
                p = c[0]
                last[p] = (c[1][-1], c[4])
                if p not in prefixes:   # a partition added to the source topic since start
                    prefixes[p] = f"{site}/{topic}/{p}"
                    keys[p] = prefixes[p].encode()
                    qmap[p] = target_partition(prefixes[p], sink.partitions, mapping)
                    floor_by_part[p] = -1
                if c[1][0] <= floor_by_part[p]:     # already in the target (found by the recovery scan)
                    k = bisect_right(c[1], floor_by_part[p])
                    chunks[i] = (p, c[1][k:], c[2][k:], c[3][k:] if c[3] is not None else None, c[4])
                    self.stats.duplicates += k
            if fast:
                out = self._splice_site(chunks)
                sent = nbytes = 0
                for c in out:
                    sent += len(c[2])
                    nbytes += sum(map(len, c[2]))
                    if c[3] is not None:
                        nbytes += sum(len(d) for d in c[3] if d is not None)
            else:
                out, sent, nbytes = self._process(chunks)
            if not forward:
                out = [(c[0], c[1], c[2], None, c[4]) for c in out]
            if limiter is not None and (sent or nbytes):
                limiter.acquire(sent, nbytes)
            token = sink.send_chunks(out, keys, qmap)
            self.stats.forwarded += sent
            self.stats.bytes += nbytes
            inflight.append((token, last, n))
            self._drain(sink, source, inflight, 1)      # at most one older round in flight besides this one
            if time.monotonic() >= next_lag:
                self._update_lag(source)
                next_lag = time.monotonic() + 1.0

    def _sleep(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise _Stop()

    def _drain(self, sink: Any, source: Any, inflight: "Deque[tuple]", keep: int) -> None:
        """Await and commit the oldest rounds until at most ``keep`` are in flight."""
        while len(inflight) > keep:
            token, last, n = inflight[0]
            self._await_sink(sink, source, token)
            inflight.popleft()
            source.commit(last)
            self.stats.committed_events += n

    def _splice_site(self, chunks: List[tuple]) -> List[tuple]:
        """Add the site tag to JSON-object metadata by a bytes splice (only where it is missing)."""
        splice = self._site_splice
        out = []
        for c in chunks:
            metas = c[2]
            if metas and (metas[0][:1] == b"{" or any(m[:1] == b"{" for m in metas)):
                metas = [splice(m) if m[:1] == b"{" else m for m in metas]
            out.append((c[0], c[1], metas, c[3], c[4]))
        return out

    def _site_splice(self, meta: bytes) -> bytes:
        """``meta`` (starting with ``{``) with the site tag added, unless it already has one."""
        if self._site_needle in meta:       # maybe present (or just inside a string): check properly
            obj = _decode(meta)
            if not isinstance(obj, dict) or self.cfg.site_key in obj:
                return meta
        rest = meta[1:].lstrip()
        if rest[:1] == b"}":
            return b"{" + self._site_pair + b"}"
        return self._site_head + rest

    def _process(self, chunks: List[tuple]) -> tuple:
        """The general path: filter, transform, site tag and (fabric targets) origin field, event by event."""
        out = []
        sent = nbytes = 0
        forward = self.rule.data == "forward"
        for p, offs, metas, datas, h in chunks:
            prefix = f"{self.cfg.site}/{self.src_topic}/{p}"
            o_offs: List[int] = []
            o_metas: List[bytes] = []
            o_datas: List[Any] = []
            for j, off in enumerate(offs):
                res = self._one(prefix, off, metas[j], datas[j] if datas is not None else None)
                if res is None:
                    continue
                meta, data = res
                o_offs.append(off)
                o_metas.append(meta)
                o_datas.append(data)
                nbytes += len(meta) + (len(data) if data is not None and forward else 0)
            sent += len(o_metas)
            out.append((p, o_offs, o_metas, o_datas, h))
        return out, sent, nbytes

    def _one(self, prefix: str, off: int, meta: bytes, data: Any) -> Optional[tuple]:
        rule = self.rule
        origin = f"{prefix}/{off}"
        if rule.filter is not None or rule.transform is not None:
            obj: Any = _decode(meta)
            if rule.filter is not None and not rule.filter(obj):
                self.stats.filtered += 1
                return None
            if rule.transform is not None:
                res = rule.transform(obj, data)
                if res is None:
                    self.stats.filtered += 1
                    return None
                obj, data = res
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
        return meta, data

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
        if self._site_splice(meta) is not meta:     # no site tag yet
            head += self._site_pair + b","
        rest = meta[1:].lstrip()
        if rest[:1] == b"}":
            return head[:-1] + b"}" if head != b"{" else meta
        return head + rest

    def _await_sink(self, sink: Any, source: Any, token: Any) -> None:
        """Wait until the sink acknowledged the round of ``token``; in an outage, report lag and keep waiting."""
        give_up: Optional[float] = None
        next_lag = time.monotonic() + 1.0
        while True:
            remaining = sink.wait(token, 0.5)
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
