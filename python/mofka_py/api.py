"""The Pythonic API over the native core: connect(), Fabric, Topic, Producer, Consumer.

Example::

    import mofka_py as mp
    with mp.connect("memory://") as fab:
        topic = fab.create_topic("frames", partitions=2)
        with topic.producer() as prod:
            prod.push({"frame": 1}, data=b"...")
        topic.mark_complete()
        for ev in topic.consumer():
            print(ev.metadata, bytes(ev.data))
"""
from __future__ import annotations

import os
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import orjson

from . import _core
from ._types import EventId
from .errors import Closed, InvalidArgument

__all__ = ["connect", "reserve_memory", "Fabric", "Topic", "Producer", "Consumer", "Future", "Event", "EventBatch", "EventId"]

Future = _core.Future
Event = _core.Event
EventBatch = _core.EventBatch

_DUMPS_OPTS = orjson.OPT_SERIALIZE_NUMPY
DEFAULT_MAX_EVENT_BYTES = 64 << 20


def encode_metadata(metadata: Any) -> bytes:
    """Turn event metadata (a JSON-serialisable object, bytes or None) into bytes."""
    if metadata is None:
        return b""
    if isinstance(metadata, bytes):
        return metadata
    if isinstance(metadata, (bytearray, memoryview)):
        return bytes(metadata)
    try:
        return orjson.dumps(metadata, option=_DUMPS_OPTS)
    except TypeError as exc:
        raise InvalidArgument(
            f"event metadata must be JSON-serialisable (dict, list, str, numbers, numpy scalars) or bytes: {exc}"
        ) from None


def reserve_memory(nbytes: int, progress: Optional[Callable[[int, int], None]] = None) -> int:
    """Pre-fault ``nbytes`` of memory for ``memory://`` storage in this process.

    The first write to never-used memory costs a page fault that can be slower
    than the copy itself (measured here: fresh memory fills at 0.2-1.6 GB/s,
    touched memory at 20+ GB/s). Reserved memory is touched now and moved
    into in-memory partition segments, without copying, as they fill. Use it
    in services and MPI server ranks before producers start; memory held in
    reserve is not returned to the system. ``progress(done, total)`` is called
    after each 64 MiB. Returns the bytes now held in reserve.
    """
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
        raise InvalidArgument(f"nbytes must be a non-negative integer (got {nbytes!r})")
    step = 64 << 20
    done = 0
    while done < nbytes:
        n = min(step, nbytes - done)
        try:
            _core.reserve_memory(n)
        except Exception as exc:  # mmap refused: say how much was reserved
            raise InvalidArgument(f"could not reserve {nbytes} bytes (got {done}): {exc}; ask for less") from exc
        done += n
        if progress is not None:
            progress(done, nbytes)
    return _core.reserved_memory()


def connect(url: Optional[str] = None, *, sync: str = "none", sync_interval_ms: int = 1000,
            segment_bytes: int = 256 << 20, retention_bytes: int = 0, retention_ms: int = 0,
            max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES, repair: bool = False, token: Optional[str] = None,
            request_timeout: float = 30.0, reconnect_timeout: float = 300.0) -> "Fabric":
    """Open a fabric.

    ``url`` is ``memory://`` (in this process, gone at close), ``file:///path``
    (persistent, owned by this process), ``tcp://host:port`` (a ``mofka-py
    serve`` service shared by many processes) or, when omitted,
    ``$MOFKA_PY_URL``. For embedded fabrics the other keywords are defaults
    for topics created through this fabric (a service has its own);
    ``repair=True`` truncates corrupted logs on open instead of raising
    :class:`~mofka_py.CorruptionError`. For ``tcp://``: ``token`` (default
    ``$MOFKA_PY_TOKEN``) logs in with a challenge-response (the token is never
    sent); a lost connection is retried for ``reconnect_timeout`` seconds and
    a request without reply for ``request_timeout`` seconds raises
    :class:`~mofka_py.TimeoutError`.

    >>> fab = connect("memory://")
    """
    if url is None:
        url = os.environ.get("MOFKA_PY_URL")
        if not url:
            raise InvalidArgument("no fabric URL: pass one (e.g. 'memory://', 'file:///data/fab') or set MOFKA_PY_URL")
    if not isinstance(url, str):
        raise InvalidArgument(f"fabric URL must be a string, not {type(url).__name__}")
    for name, value in (("segment_bytes", segment_bytes), ("retention_bytes", retention_bytes),
                        ("retention_ms", retention_ms), ("max_event_bytes", max_event_bytes),
                        ("sync_interval_ms", sync_interval_ms)):
        if not isinstance(value, int) or value < 0:
            raise InvalidArgument(f"{name} must be a non-negative integer (got {value!r})")
    if token is None:
        token = os.environ.get("MOFKA_PY_TOKEN", "")
    return Fabric(_core.Fabric(url, sync, sync_interval_ms, segment_bytes, retention_bytes, retention_ms,
                               max_event_bytes, repair, token, int(request_timeout * 1000),
                               int(reconnect_timeout * 1000)))


def _check_group(group: Any) -> None:
    if not isinstance(group, str) or not 1 <= len(group) <= 1000:
        raise InvalidArgument(f"group must be a name of 1-1000 characters (got {group!r})")


class Fabric:
    """A connection to an event fabric; a context manager that closes it."""

    def __init__(self, native: "_core.Fabric"):
        self._f = native
        self._closed = False

    @property
    def url(self) -> str:
        """The URL this fabric was opened with."""
        return self._f.url()

    def create_topic(self, name: str, partitions: int = 1, **config: Any) -> "Topic":
        """Create a topic of ``partitions`` partitions and return it.

        Settings: ``segment_bytes``, ``retention_bytes``, ``retention_ms``,
        ``sync`` ('none' | 'batch' | 'interval'), ``sync_interval_ms``,
        ``max_event_bytes``. Raises :class:`~mofka_py.TopicExists` if it exists.
        """
        if not isinstance(name, str):
            raise InvalidArgument(f"topic name must be a string, not {type(name).__name__}")
        if isinstance(partitions, bool) or not isinstance(partitions, int):
            raise InvalidArgument(f"partitions must be an integer (got {partitions!r})")
        for key in ("segment_bytes", "retention_bytes", "retention_ms", "sync_interval_ms", "max_event_bytes"):
            value = config.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidArgument(f"{key} must be a non-negative integer (got {value!r})")
        self._f.create_topic(name, partitions, config)
        return Topic(self, name)

    def topic(self, name: str) -> "Topic":
        """Open an existing topic; raises :class:`~mofka_py.TopicNotFound`."""
        self._f.describe(name)
        return Topic(self, name)

    def topics(self) -> list:
        """Names of all topics."""
        return self._f.topics()

    def groups(self) -> list:
        """Every consumer group with members or committed offsets: ``[{"group", "topic"}]``."""
        return [{"group": g, "topic": t} for t in self._f.topics() for g in self._f.groups(t)]

    def close(self) -> None:
        """Close the fabric (embedded: flush and release its files and lock)."""
        if not self._closed:
            self._closed = True
            self._f.close()

    def __enter__(self) -> "Fabric":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<mofka_py.Fabric {self.url!r}{' closed' if self._closed else ''}>"


class Topic:
    """A named, partitioned event stream in a fabric."""

    def __init__(self, fabric: Fabric, name: str):
        self.fabric = fabric
        self.name = name

    @property
    def partitions(self) -> int:
        """Number of partitions."""
        return self.fabric._f.partition_count(self.name)

    def describe(self) -> dict:
        """Settings, completion flag and per-partition offsets and sizes."""
        return self.fabric._f.describe(self.name)

    def producer(self, *, batch_size: int = 16384, batch_bytes: int = 4 << 20, linger_ms: float = 1.0,
                 max_pending_bytes: int = 256 << 20, selector: str = "key_hash") -> "Producer":
        """A batching producer (a context manager that flushes and closes).

        ``selector``: 'key_hash' (events with ``key=`` go by a stable murmur2
        hash, others round robin) or 'round_robin'.
        """
        return Producer(_core.Producer(self.fabric._f, self.name, batch_size, batch_bytes, linger_ms,
                                       max_pending_bytes, selector))

    def consumer(self, group: Optional[str] = None, *, start: Union[str, int, None] = None,
                 data: Union[bool, tuple, Callable[[Any], Any]] = True, partitions: Optional[Sequence[int]] = None,
                 prefetch_bytes: int = 64 << 20, auto_commit_ms: int = 1000,
                 member_id: Optional[str] = None, on_gap: str = "error", session_timeout_ms: int = 10000,
                 rebalance_timeout_ms: int = 10000) -> "Consumer":
        """A consumer of this topic (a context manager and an iterator).

        ``group``: share partitions with the group's other members and commit
        offsets durably. ``start``: 'earliest', 'latest', 'committed' (default)
        or an offset; in a group it applies only to partitions the group has
        never committed (Kafka's ``auto.offset.reset``): a partition assigned to
        a member always resumes at the group's committed offset. To read a
        group's partitions again, rewind it explicitly with :meth:`reset_group`.
        ``data``: True (all), False (metadata only), ``(offset, size)`` (a byte
        range) or a callable ``f(metadata)`` returning one of those per event.
        ``member_id``: a stable id in the group (e.g. a service's name), so that
        after a crash the restarted consumer takes its partitions back at once
        instead of waiting for the old session to expire; two live consumers must
        not share one. ``on_gap``: when retention deleted events before this
        consumer read them, 'error' raises :class:`~mofka_py.OffsetOutOfRange`
        (after the events before the gap) and 'earliest' skips to the oldest
        retained event, counting the skip in :attr:`Consumer.stats` and in the
        group's :meth:`describe_group`. ``session_timeout_ms``: a member silent
        this long is dropped from its group. ``rebalance_timeout_ms``: when a
        partition moves to another member, how long events already handed out
        may take to be acknowledged before it moves anyway (events not
        acknowledged by then are delivered again to the new owner).
        """
        if start is None:
            start = "committed"
        if on_gap not in ("error", "earliest"):
            raise InvalidArgument(f"on_gap must be 'error' or 'earliest' (got {on_gap!r})")
        for name, value, low in (("session_timeout_ms", session_timeout_ms, 100),
                                 ("rebalance_timeout_ms", rebalance_timeout_ms, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 3_600_000:
                raise InvalidArgument(f"{name} must be an integer between {low} and 3600000 (got {value!r})")
        selector = None
        if callable(data):
            selector, data = data, True
        native = _core.Consumer(self.fabric._f, self.name, group or "", start, data,
                                list(partitions or []), prefetch_bytes, auto_commit_ms, member_id or "",
                                on_gap, session_timeout_ms, rebalance_timeout_ms)
        return Consumer(native, selector)

    def groups(self) -> list:
        """Names of the consumer groups with members or committed offsets on this topic."""
        return self.fabric._f.groups(self.name)

    def describe_group(self, group: str) -> dict:
        """A consumer group's state on this topic, as ``mofka-py group describe`` shows it.

        Returns ``{"group", "topic", "generation", "members": [{"id", "partitions",
        "idle_ms", "session_timeout_ms"}], "partitions": [{"partition", "owner",
        "position", "committed", "start_offset", "end_offset", "lag", "skipped"}],
        "lag", "skipped"}``. ``owner`` is the live member reading the partition and
        ``position`` how far it handed events out (None without an owner);
        ``committed`` is None for a partition the group never committed; ``lag``
        counts the events after the committed offset (after the oldest retained
        event when there is no commit).
        """
        _check_group(group)
        state = self.fabric._f.describe_group(group, self.name)
        info = {p["partition"]: p for p in self.describe()["partitions"]}
        total = skipped = 0
        for p in state["partitions"]:
            part = info[p["partition"]]
            p["start_offset"] = part["start_offset"]
            p["end_offset"] = part["end_offset"]
            position = p["committed"] if p["committed"] is not None else part["start_offset"]
            p["lag"] = max(0, part["end_offset"] - max(position, part["start_offset"]))
            total += p["lag"]
            skipped += p["skipped"]
        state["lag"] = total
        state["skipped"] = skipped
        return state

    def reset_group(self, group: str, to: Any = "earliest", *, dry_run: bool = False) -> dict:
        """Rewind (or skip) a consumer group's committed offsets on this topic.

        ``to``: 'earliest' (the oldest retained event), 'latest' (the end: skip
        everything stored), an offset for every partition, a dict
        ``{partition: offset}`` (only those partitions) or a
        :class:`datetime.datetime` (the first event stored at or after it, per
        partition; a naive datetime is local time). As with ``kafka-consumer-groups
        --reset-offsets``, it is refused with :class:`~mofka_py.GroupActive`,
        naming them, while the group has live members. Returns
        ``{partition: new offset}``; with ``dry_run=True`` only that plan, nothing
        changed.
        """
        import datetime as _dt

        _check_group(group)
        parts = self.describe()["partitions"]
        bounds = {p["partition"]: (p["start_offset"], p["end_offset"]) for p in parts}
        if isinstance(to, str):
            if to not in ("earliest", "latest"):
                raise InvalidArgument(f"to must be 'earliest', 'latest', an offset, a dict or a datetime (got {to!r})")
            offsets = {p: (lo if to == "earliest" else hi) for p, (lo, hi) in bounds.items()}
        elif isinstance(to, _dt.datetime):
            ts_us = int(to.timestamp() * 1_000_000)
            offsets = {p: self.fabric._f.offset_for_time(self.name, p, ts_us) for p in bounds}
        elif isinstance(to, dict):
            offsets = {}
            for p, off in to.items():
                if isinstance(p, bool) or not isinstance(p, int) or p not in bounds:
                    raise InvalidArgument(f"partition {p!r} does not exist in topic '{self.name}' "
                                          f"(it has {len(bounds)})")
                offsets[p] = off
        elif isinstance(to, int) and not isinstance(to, bool):
            offsets = {p: to for p in bounds}
        else:
            raise InvalidArgument(f"to must be 'earliest', 'latest', an offset, a dict or a datetime (got {to!r})")
        for p, off in offsets.items():
            lo, hi = bounds[p]
            if isinstance(off, bool) or not isinstance(off, int) or not lo <= off <= hi:
                raise InvalidArgument(f"offset {off!r} is outside partition {p} of topic '{self.name}', "
                                      f"which holds offsets {lo}..{hi} (give a value in that range)")
        if not dry_run:
            self.fabric._f.reset_group(group, self.name, sorted(offsets.items()))
        return offsets

    def mark_complete(self) -> None:
        """Declare the topic finished: consumers' iteration ends after its last event."""
        self.fabric._f.mark_complete(self.name)

    @property
    def complete(self) -> bool:
        """Whether :meth:`mark_complete` was called."""
        return self.fabric._f.is_complete(self.name)

    def __repr__(self) -> str:
        return f"<mofka_py.Topic {self.name!r}>"


class Producer:
    """Pushes events in batches; ``push`` returns a :class:`Future` of the EventId."""

    def __init__(self, native: "_core.Producer"):
        self._p = native
        self._closed = False

    def push(self, metadata: Any = None, data: Any = None, *, partition: Optional[int] = None,
             key: Union[str, bytes, None] = None, block: bool = True) -> "Future":
        """Queue one event; returns a Future whose ``result(timeout)`` is its EventId.

        ``data`` is a buffer (bytes, memoryview, numpy array of any dtype/shape)
        or a list of them; it is referenced, not copied, until appended, so do
        not modify it before the future resolves. ``block=False`` raises
        :class:`~mofka_py.BufferFull` instead of waiting when memory is full.
        """
        meta = metadata if type(metadata) is bytes else encode_metadata(metadata)
        if self._closed:
            raise Closed("producer is closed; create a new one with topic.producer()")
        if isinstance(data, str):
            raise InvalidArgument("event data must be a buffer (bytes, numpy array...), not str; encode it first")
        return self._p.push(meta, data, -1 if partition is None else partition, key, block)

    def push_many(self, events: Any, *, partition: Optional[int] = None, block: bool = True) -> Optional["Future"]:
        """Queue many metadata-only events in one call (the vectorised path).

        ``events`` is a numpy array (each row/record is one event's metadata
        bytes, e.g. a structured array or an (n, k) uint8 array), a sequence of
        bytes, or a sequence of JSON-serialisable objects. Returns the Future of
        the last event (None if there were none).
        """
        if self._closed:
            raise Closed("producer is closed; create a new one with topic.producer()")
        part = -1 if partition is None else partition
        if hasattr(events, "__array_interface__") or (hasattr(events, "ndim") and hasattr(events, "shape")):
            if len(events) == 0:
                return None
            return self._p.push_many(events, part, block)
        items = [e if type(e) is bytes else encode_metadata(e) for e in events]
        if not items:
            return None
        import numpy as np

        lengths = np.fromiter((len(b) for b in items), dtype=np.uint64, count=len(items))
        return self._p.push_many_var(b"".join(items), lengths, part, block)

    def flush(self, timeout: Optional[float] = None) -> None:
        """Send everything queued and wait until stored; raises the first failure since the last flush."""
        self._p.flush(timeout)

    def close(self) -> None:
        """Flush and stop the producer's thread."""
        if not self._closed:
            self._closed = True
            self._p.close()

    @property
    def pending_bytes(self) -> int:
        """Bytes pushed but not yet stored."""
        return self._p.pending_bytes

    def __enter__(self) -> "Producer":
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        try:
            if exc_type is None:
                self.flush()
        finally:
            self.close()


class _SelectedEvent:
    """An event whose data went through a consumer's callable selector."""

    __slots__ = ("_ev", "_sel")

    def __init__(self, ev: "Event", selection: Any):
        self._ev = ev
        self._sel = selection

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ev, name)

    @property
    def data(self) -> memoryview:
        sel = self._sel
        if sel is True:
            return self._ev.data
        if sel is False or sel is None:
            return memoryview(b"")
        off, size = sel
        return self._ev.data[off:off + size]

    def ack(self) -> None:
        self._ev.ack()


class Consumer:
    """Reads events; iterate over it, or call :meth:`pull`. A context manager."""

    def __init__(self, native: "_core.Consumer", selector: Optional[Callable[[Any], Any]] = None):
        self._c = native
        self._selector = selector

    def _wrap(self, ev: Any) -> Any:
        if ev is None or self._selector is None:
            return ev
        return _SelectedEvent(ev, self._selector(ev.metadata))

    def pull(self, timeout: Optional[float] = None) -> Optional["Event"]:
        """The next event, or None if none came within ``timeout`` seconds
        (None: wait until one comes or the complete topic is exhausted)."""
        return self._wrap(self._c.pull(timeout))

    def pull_batch(self, max_events: int = 1 << 20, timeout: Optional[float] = None) -> Optional["EventBatch"]:
        """Up to ``max_events`` events of one stored batch at once (vectorised consume).

        ``batch.metadata_view()`` is one zero-copy view of their metadata back to
        back; with fixed-size records, ``numpy.frombuffer(view, dtype)`` reads
        them as an array.
        """
        return self._c.pull_batch(max_events, timeout)

    def __iter__(self) -> Iterator["Event"]:
        while True:
            ev = self._c.pull(None)
            if ev is None:
                return
            yield self._wrap(ev)

    def ack(self, event: Any) -> None:
        """Mark ``event`` (and everything before it in its partition) processed."""
        event.ack()

    def commit(self) -> None:
        """Store the acknowledged positions durably now (needs a group)."""
        self._c.commit()

    @property
    def exhausted(self) -> bool:
        """True once the topic is complete and every owned partition was read."""
        return self._c.exhausted()

    @property
    def partitions(self) -> list:
        """Partitions this consumer reads now (changes as group members come and go)."""
        return self._c.partitions()

    @property
    def member_id(self) -> str:
        """This consumer's id in its group ('' without a group)."""
        return self._c.member_id()

    @property
    def stats(self) -> dict:
        """What this consumer did: ``delivered`` events, ``skipped`` (deleted by retention
        before they were read, ``on_gap='earliest'``), ``rebalances``, ``revoked_unacked``
        (handed out but not acknowledged when their partition moved away: delivered again
        to its new owner) and ``fenced_commits`` (refused: the partitions had moved on)."""
        return self._c.stats()

    def close(self) -> None:
        """Commit acknowledged offsets, leave the group and stop prefetching."""
        self._c.close()

    def __enter__(self) -> "Consumer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()



