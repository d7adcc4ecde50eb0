"""The bridge's fabric endpoints: a mofka-py fabric topic as a source (read with a consumer group) and as
a sink (the origin id travels in the ``mofka_origin`` metadata field). What sources and sinks share:
:mod:`.endpoint`.
"""
from __future__ import annotations

import time
from itertools import accumulate
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .. import api
from ..errors import BufferFull, Error, TimeoutError, TopicNotFound
from .endpoint import ORIGIN_FIELD, SCAN_WINDOW, Chunk, recover
from .model import Rule

__all__ = ["FabricSource", "FabricSink"]

_ORIGIN_NEEDLE = b'"' + ORIGIN_FIELD.encode() + b'":"'


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
        (see :func:`.endpoint.partition_candidates`)."""
        return recover(self._scan, candidates, limit)

    def _scan(self, wanted: Dict[int, set], limit: int) -> Dict[str, int]:
        """Highest origin offset per wanted prefix, scanning each partition backwards from its end."""
        found: Dict[str, int] = {}
        desc = {p["partition"]: p for p in self.topic.describe()["partitions"]}
        for q, pres in wanted.items():
            first, end = desc[q]["start_offset"], desc[q]["end_offset"]
            hi, scanned = end, 0
            while hi > first and scanned < limit and not pres.issubset(found):
                lo = max(first, hi - SCAN_WINDOW)
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
