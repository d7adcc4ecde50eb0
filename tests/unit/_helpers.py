"""Helpers shared by the unit tests."""
from __future__ import annotations

import os
import struct
import time
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

from waiting import wait_until  # noqa: F401 - re-exported for the unit tests

BATCH_MAGIC = 0x4259504D  # "MPYB"
BATCH_HEADER = struct.Struct("<IHHQQIIIIQQqqQQQ")
assert BATCH_HEADER.size == 96


def committed(topic, group: str) -> List[Optional[int]]:
    """The offset ``group`` committed per partition of ``topic`` (None where it never committed)."""
    return [p["committed"] for p in topic.describe_group(group)["partitions"]]


def consume_all(topic, **kw) -> list:
    """Every event of a complete topic, as (partition, offset, metadata_bytes, data bytes)."""
    assert topic.complete, "consume_all needs a complete topic"
    out = []
    with topic.consumer(**kw) as cons:
        for ev in cons:
            out.append((ev.partition, ev.offset, ev.metadata_bytes, bytes(ev.data)))
    return out


def pull_n(cons, n: int, timeout: float = 30.0) -> list:
    """Pull exactly ``n`` events (bounded wait)."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        ev = cons.pull(timeout=0.2)
        if ev is not None:
            out.append(ev)
        elif time.monotonic() > deadline:
            raise AssertionError(f"only {len(out)} of {n} events arrived within {timeout} s")
    return out


def end_offsets(topic) -> List[int]:
    return [p["end_offset"] for p in topic.describe()["partitions"]]


def tree(path: Path) -> Dict[str, Optional[int]]:
    """Relative path -> size (None for directories) of everything under ``path``."""
    out: Dict[str, Optional[int]] = {}
    if not path.exists():
        return out
    for root, dirs, files in os.walk(path):
        for d in dirs:
            out[os.path.relpath(os.path.join(root, d), path)] = None
        for f in files:
            p = os.path.join(root, f)
            out[os.path.relpath(p, path)] = os.path.getsize(p)
    return out


def segment_files(fab_dir: Path, topic: str, partition: int = 0) -> List[Path]:
    return sorted((fab_dir / "topics" / topic / f"p{partition}").glob("*.log"))


def parse_batches(buf: bytes) -> List[Tuple[int, int, dict]]:
    """(position, length, header fields) of every complete batch at the start of a segment's bytes."""
    out = []
    pos = 0
    names = ("magic", "version", "flags", "length", "base_offset", "length_check", "crc", "count", "reserved0",
             "producer_id", "sequence", "first_ts", "last_ts", "meta_bytes", "data_bytes", "reserved1")
    while pos + 96 <= len(buf):
        h = dict(zip(names, BATCH_HEADER.unpack_from(buf, pos)))
        if h["magic"] != BATCH_MAGIC or h["length"] < 96 or pos + h["length"] > len(buf):
            break
        out.append((pos, h["length"], h))
        pos += h["length"]
    return out


def payload(i: int, size: Optional[int] = None) -> bytes:
    """Deterministic, index-dependent event data."""
    n = (i * 37) % 300 if size is None else size
    return bytes((i * 7 + k * 13) & 0xFF for k in range(n))


def expected_events(events: Iterable[Tuple[bytes, bytes]]) -> list:
    return [(0, i, m, d) for i, (m, d) in enumerate(events)]


def flush_while_pushing_keeps_order(topic, n: int = 20000, flushers: int = 4) -> None:
    """One thread pushes ``n`` events (small batches, several in flight) while other threads
    call flush() over and over, so batches are handed to the transport both by the producer's
    sender thread and by flushing callers. Every event must be stored once, in push order.
    ``topic`` must have one partition and be empty."""
    import threading

    done = threading.Event()
    errors = []
    with topic.producer(batch_size=7, linger_ms=0.2) as prod:
        def flusher():
            try:
                while not done.is_set():
                    prod.flush(timeout=60)
            except BaseException as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=flusher) for _ in range(flushers)]
        for t in threads:
            t.start()
        try:
            futs = [prod.push({"seq": i}, data=i.to_bytes(4, "little")) for i in range(n)]
        finally:
            done.set()
            for t in threads:
                t.join()
        ids = [f.result(timeout=60) for f in futs]
    assert not errors, errors
    assert [e.offset for e in ids] == list(range(n))
    topic.mark_complete()
    with topic.consumer(start="earliest") as cons:
        seqs = [ev.metadata["seq"] for ev in cons]
    assert seqs == list(range(n))
