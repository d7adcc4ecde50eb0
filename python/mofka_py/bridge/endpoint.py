"""What every source and sink of the bridge shares: the chunks they pass, the origin id events carry,
and the target partition of each origin.

A source hands out :data:`Chunk` s and commits positions after the sink acknowledged them. A sink writes
each event into the target partition its origin maps to (so one source partition's events stay in
order in one target partition) and can report the highest origin offset already present per origin —
how a restarted bridge skips what it forwarded just before it was killed. The fabric ones are in
:mod:`.fabric_endpoint`, the Kafka ones in :mod:`.kafka_endpoint`.

Origin id: ``SITE/TOPIC/PARTITION/OFFSET`` of the event in the bridge's source; Kafka records carry it
in the ``mofka.origin`` header, fabric events in the ``mofka_origin`` metadata field.
"""
from __future__ import annotations

import hashlib
import zlib
from typing import Any, Callable, Dict, List, Optional, Protocol, Sequence, Tuple

from ..errors import InvalidArgument
from .model import PARTITION_MAPS

__all__ = ["ORIGIN_HEADER", "DATA_HEADER", "ORIGIN_FIELD", "SCAN_WINDOW", "Chunk", "Source", "Sink",
           "target_partition", "partition_candidates", "recover", "parse_origin"]

ORIGIN_HEADER = "mofka.origin"
DATA_HEADER = "mofka.data"
ORIGIN_FIELD = "mofka_origin"
# Events a recovery scan reads per step backwards from a partition's end.
SCAN_WINDOW = 20000

# One source partition's consecutive events: partition, offsets (a range or a list), metadata list, data list
# (buffers or None; the list is None when data is not forwarded or none of the events has any), and the handle
# that acknowledges them.
Chunk = Tuple[int, Sequence[int], List[bytes], Optional[List[Any]], Any]


class Source(Protocol):
    """Where a route reads: one topic of a fabric or a Kafka cluster."""

    partition_ids: List[int]

    def poll(self, max_events: int, timeout: float) -> List[Chunk]:
        """Up to ``max_events`` events, waiting up to ``timeout`` seconds for the first."""

    def commit(self, last: Dict[int, Tuple[int, Any]]) -> None:
        """Commit ``{partition: (last offset forwarded, its chunk's handle)}``."""

    def lag(self) -> Optional[int]:
        """Events in the topic not yet committed by this route."""

    def close(self) -> None: ...


class Sink(Protocol):
    """Where a route writes: one topic of a fabric or a Kafka cluster."""

    partitions: int

    def recover(self, candidates: Dict[str, Sequence[int]], limit: int) -> Dict[str, int]:
        """Highest origin offset present per origin prefix (see :func:`recover`)."""

    def send_chunks(self, chunks: List[Chunk], keys: Dict[int, bytes], qmap: Dict[int, int]) -> Any:
        """Write ``chunks`` (source partition ``p`` into target partition ``qmap[p]``); a token for :meth:`wait`."""

    def wait(self, token: Any, timeout: float) -> int:
        """0 once what ``token`` stands for is stored, else how much is still pending."""

    def flush(self, timeout: float) -> int: ...

    def close(self) -> None: ...


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


def recover(scan: Callable[[Dict[int, set], int], Dict[str, int]], candidates: Dict[str, Sequence[int]],
            limit: int) -> Dict[str, int]:
    """Highest origin offset present per prefix: its first candidate partition is scanned, then, for the
    prefixes not found there, the next one (a prefix found in its own partition never costs a second scan:
    after a switch of mapping its newer records are all in the new partition).

    ``scan({partition: prefixes}, limit)`` is a sink's own: the highest offset per prefix it found there.
    """
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
