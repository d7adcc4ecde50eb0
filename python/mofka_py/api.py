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

import math
import os
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import orjson

from . import _check, _core, _settings
from ._types import EventId
from .errors import Closed, InvalidArgument

__all__ = ["connect", "reserve_memory", "Fabric", "Topic", "Producer", "Consumer", "Future", "Event", "EventBatch", "EventId"]

Future = _core.Future
Event = _core.Event
EventBatch = _core.EventBatch

_DUMPS_OPTS = orjson.OPT_SERIALIZE_NUMPY
DEFAULT_MAX_EVENT_BYTES = 64 << 20


NON_FINITE = _settings.setting("producer", "non_finite").choices


def _non_finite_path(obj: Any, path: str = "metadata") -> Optional[str]:
    """Where a NaN or infinity sits in ``obj`` (as ``metadata["a"][2]``), or None."""
    if isinstance(obj, float):
        return None if math.isfinite(obj) else path
    if isinstance(obj, dict):
        for k, v in obj.items():
            found = _non_finite_path(v, f"{path}[{k!r}]")
            if found:
                return found
        return None
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            found = _non_finite_path(v, f"{path}[{i}]")
            if found:
                return found
        return None
    if hasattr(obj, "dtype") and getattr(obj.dtype, "kind", "") in "fc":  # numpy scalars and arrays
        import numpy as np

        bad = ~np.isfinite(obj)
        if np.any(bad):
            return path if np.ndim(obj) == 0 else f"{path}[{tuple(int(i) for i in np.argwhere(bad)[0])}]"
    return None


def _spell_non_finite(obj: Any) -> Any:
    """A copy of ``obj`` with NaN / ±inf as the strings "NaN", "Infinity", "-Infinity"."""
    if isinstance(obj, float):
        if math.isfinite(obj):
            return obj
        return "NaN" if obj != obj else ("Infinity" if obj > 0 else "-Infinity")
    if isinstance(obj, dict):
        return {k: _spell_non_finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_spell_non_finite(v) for v in obj]
    if hasattr(obj, "dtype") and getattr(obj.dtype, "kind", "") in "fc":
        return _spell_non_finite(obj.tolist())
    return obj


def encode_metadata(metadata: Any, non_finite: str = "error") -> bytes:
    """Turn event metadata (a JSON-serialisable object, bytes or None) into bytes.

    JSON has no NaN or infinity: by default (``non_finite="error"``) they are refused
    with :class:`~mofka_py.InvalidArgument`; ``"null"`` writes them as ``null`` and
    ``"string"`` as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``.
    """
    if metadata is None:
        return b""
    if isinstance(metadata, bytes):
        return metadata
    if isinstance(metadata, (bytearray, memoryview)):
        return bytes(metadata)
    try:
        out = orjson.dumps(metadata, option=_DUMPS_OPTS)
    except TypeError as exc:
        raise InvalidArgument(
            f"event metadata must be JSON-serialisable (dict, list, str, numbers, numpy scalars) or bytes: {exc}"
        ) from None
    # orjson writes NaN and infinities as null: look closer only when a null is there at all.
    if b"null" in out and non_finite != "null":
        where = _non_finite_path(metadata)
        if where:
            if non_finite == "string":
                return orjson.dumps(_spell_non_finite(metadata), option=_DUMPS_OPTS)
            raise InvalidArgument(
                f"{where} is NaN or infinite, which JSON cannot hold; replace it, or open the producer with "
                "non_finite='null' (written as null) or non_finite='string' (written as \"NaN\", \"Infinity\")")
    return out


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
            request_timeout_ms: int = 30000, reconnect_timeout_ms: int = 300000, **deprecated: Any) -> "Fabric":
    """Open a fabric.

    ``url`` is ``memory://`` (in this process, gone at close), ``file:///path``
    (persistent, owned by this process), ``tcp://host:port`` (a ``mofka-py
    serve`` service shared by many processes) or, when omitted,
    ``$MOFKA_PY_URL``. For embedded fabrics the other keywords are defaults
    for topics created through this fabric (a service has its own);
    ``repair=True`` truncates corrupted logs on open instead of raising
    :class:`~mofka_py.CorruptionError`. For ``tcp://``: ``token`` (default
    ``$MOFKA_PY_TOKEN``) logs in with a challenge-response (the token is never
    sent); a lost connection is retried for ``reconnect_timeout_ms`` and
    a request without reply for ``request_timeout_ms`` raises
    :class:`~mofka_py.TimeoutError`. Every setting is in docs/configuration.md;
    ``request_timeout`` and ``reconnect_timeout`` (seconds) are deprecated names.

    >>> fab = connect("memory://")
    """
    if url is None:
        url = os.environ.get("MOFKA_PY_URL")
        if not url:
            raise InvalidArgument("no fabric URL: pass one (e.g. 'memory://', 'file:///data/fab') or set MOFKA_PY_URL")
    if not isinstance(url, str):
        raise InvalidArgument(f"fabric URL must be a string, not {type(url).__name__}")
    values = dict(sync=sync, sync_interval_ms=sync_interval_ms, segment_bytes=segment_bytes,
                  retention_bytes=retention_bytes, retention_ms=retention_ms, max_event_bytes=max_event_bytes,
                  repair=repair, token=token, request_timeout_ms=request_timeout_ms,
                  reconnect_timeout_ms=reconnect_timeout_ms)
    if deprecated:
        _settings.take_deprecated("fabric", deprecated, values, api="connect")
    cfg = _settings.validate("fabric", values)
    if cfg["token"] is None:
        cfg["token"] = os.environ.get("MOFKA_PY_TOKEN", "")
    return Fabric(_settings.core_fabric(url, cfg))


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

        Settings (docs/configuration.md, "Topic"): ``segment_bytes``, ``retention_bytes``,
        ``retention_ms``, ``sync`` ('none' | 'batch' | 'interval'), ``sync_interval_ms``,
        ``max_event_bytes``; those not given are the fabric's. On a replicated cluster
        (``tcp://n1:p1,n2:p2,...``), ``replication`` (copies, 1-5) and ``min_insync`` (copies
        that must hold a write before it is acknowledged; default min(2, replication)). Raises
        :class:`~mofka_py.TopicExists` if it exists.
        """
        if not isinstance(name, str):
            raise InvalidArgument(f"topic name must be a string, not {type(name).__name__}")
        cfg = _settings.validate("topic", {"partitions": partitions, **config})
        self._f.create_topic(name, _settings.core_topic_config(cfg))
        return Topic(self, name)

    def topic(self, name: str) -> "Topic":
        """Open an existing topic; raises :class:`~mofka_py.TopicNotFound`."""
        self._f.describe(name)
        return Topic(self, name)

    @property
    def connection_problem(self) -> str:
        """What keeps requests from getting through right now (e.g. ``cannot connect to
        tcp://...: Connection refused (retrying for 12 s so far ...)``), or ``""``."""
        return self._f.connection_problem()

    @property
    def connected_clients(self) -> Optional[int]:
        """Client connections the service behind a ``tcp://`` fabric has now (this one included,
        and the service's own health reporter unless it runs with ``--no-health``); None for an
        embedded fabric, which has no clients but this process."""
        n = self._f.connected_clients()
        return n if n >= 0 else None

    def topics(self, *, system: bool = False) -> list:
        """Names of the topics, sorted; system topics (names starting with ``__``, kept by
        services such as the compute pool and health events) only with ``system=True``."""
        names = self._f.topics()
        return names if system else [n for n in names if not n.startswith("__")]

    def delete_topic(self, name: str, *, force: bool = False) -> None:
        """Delete a topic: its events and its consumer groups' offsets.

        Refused with :class:`~mofka_py.GroupActive`, naming them, while consumer
        groups have live members on it, unless ``force=True``. A ``file://``
        fabric renames the topic away first, so a crash in the middle is finished
        at the next open; producers and consumers still open on it get
        :class:`~mofka_py.TopicNotFound` or :class:`~mofka_py.Closed`.
        """
        if not isinstance(name, str):
            raise InvalidArgument(f"topic name must be a string, not {type(name).__name__}")
        if not isinstance(force, bool):
            raise InvalidArgument(f"force must be True or False (got {force!r})")
        self._f.delete_topic(name, force)

    def groups(self) -> list:
        """Every consumer group with members or committed offsets: ``[{"group", "topic"}]``."""
        return [{"group": g, "topic": t} for t in self._f.topics() for g in self._f.groups(t)
                if not t.startswith("__")]

    def verify(self, progress: Optional[Callable[[int, int], None]] = None) -> int:
        """Check every stored event of an embedded fabric now: each batch's header, offsets and CRC32C.

        Reopening a ``file://`` fabric after a clean close reads each partition's recovery point
        instead of its events (and checks only a tail written since, e.g. after ``kill -9``);
        the older batches are checked when first read, so damage shows up as
        :class:`~mofka_py.CorruptionError` then. ``verify()`` checks everything at once, while the
        fabric keeps working. ``progress(done, total)`` (bytes) is called as it goes. Returns the
        bytes checked; raises :class:`~mofka_py.CorruptionError` naming the topic, partition, file
        and byte of the first damaged batch (``connect(..., repair=True)`` truncates there), and
        :class:`~mofka_py.InvalidArgument` for a ``tcp://`` fabric (verify its service's
        ``--data-dir`` while the service is stopped). ``mofka-py verify`` does this with a progress bar.
        """
        if progress is not None and not callable(progress):
            raise InvalidArgument(f"progress must be a callable (done, total) or None, not {type(progress).__name__}")
        return int(self._f.verify(progress))

    def open_stats(self) -> Optional[dict]:
        """What opening an embedded fabric checked: ``{"from_recovery_point": bool, "checked_bytes",
        "deferred_bytes"}`` (bytes read and checked at open / left to be checked on first read),
        summed over its partitions; None for a ``tcp://`` fabric."""
        return self._f.open_stats()

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
                 max_pending_bytes: int = 256 << 20, selector: str = "key_hash",
                 non_finite: str = "error") -> "Producer":
        """A batching producer (a context manager that flushes and closes).

        ``selector``: 'key_hash' (events with ``key=`` go by a stable murmur2
        hash, others round robin) or 'round_robin'. ``non_finite``: NaN and
        infinities in metadata are refused ('error', the default: JSON has no such
        values), written as null ('null') or as the strings "NaN", "Infinity",
        "-Infinity" ('string').
        """
        cfg = _settings.validate("producer", dict(batch_size=batch_size, batch_bytes=batch_bytes, linger_ms=linger_ms,
                                                  max_pending_bytes=max_pending_bytes, selector=selector,
                                                  non_finite=non_finite))
        return Producer(_settings.core_producer(self.fabric._f, self.name, cfg), cfg["non_finite"])

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
        cfg = _settings.validate("consumer", dict(
            group=group, start=start, data=data, partitions=partitions, prefetch_bytes=prefetch_bytes,
            auto_commit_ms=auto_commit_ms, member_id=member_id, on_gap=on_gap,
            session_timeout_ms=session_timeout_ms, rebalance_timeout_ms=rebalance_timeout_ms))
        selector = None
        if callable(cfg["data"]):
            selector, cfg["data"] = cfg["data"], True
        native = _settings.core_consumer(self.fabric._f, self.name, cfg)
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

    def remove_group_member(self, group: str, member_id: str) -> bool:
        """Drop a member from a group now, as if its session had expired (e.g. a health monitor
        saw its node go down): its partitions go to the other members at the group's committed
        offsets, and its later commits are refused. Returns whether it was a member."""
        _check_group(group)
        if not isinstance(member_id, str) or not member_id:
            raise InvalidArgument(f"member_id must be a non-empty string (got {member_id!r})")
        return self.fabric._f.remove_member(group, self.name, member_id)

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

    def purge(self) -> int:
        """Drop every event stored in the topic (offsets go on from where they were, so
        consumers and groups behind the end meet a gap: see ``on_gap``). Returns how many."""
        return self.fabric._f.purge_topic(self.name)

    def alter(self, *, retention_bytes: Optional[int] = None, retention_ms: Optional[int] = None) -> None:
        """Change the topic's retention (0: keep everything); applied at once and kept."""
        if retention_bytes is None and retention_ms is None:
            raise InvalidArgument("give retention_bytes and/or retention_ms")
        given = {k: v for k, v in (("retention_bytes", retention_bytes), ("retention_ms", retention_ms))
                 if v is not None}
        self.fabric._f.alter_topic(self.name, _settings.core_topic_config(_settings.validate("topic", given)))

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

    def __init__(self, native: "_core.Producer", non_finite: str = "error"):
        self._p = native
        self._closed = False
        self._nparts = native.partitions
        self._non_finite = non_finite

    def push(self, metadata: Any = None, data: Any = None, *, partition: Optional[int] = None,
             key: Union[str, bytes, None] = None, block: bool = True) -> "Future":
        """Queue one event; returns a Future whose ``result(timeout)`` is its EventId.

        ``data`` is a buffer (bytes, memoryview, numpy array of any dtype/shape)
        or a list of them; it is referenced, not copied, until appended, so do
        not modify it before the future resolves. ``block=False`` raises
        :class:`~mofka_py.BufferFull` instead of waiting when memory is full.
        """
        meta = metadata if type(metadata) is bytes else encode_metadata(metadata, self._non_finite)
        if self._closed:
            raise Closed("producer is closed; create a new one with topic.producer()")
        if isinstance(data, str):
            raise InvalidArgument("event data must be a buffer (bytes, numpy array...), not str; encode it first")
        if partition is None:
            partition = -1
        elif type(partition) is not int or partition < 0 or partition >= self._nparts:
            _check.integer("partition", partition, 0, self._nparts - 1)
        if key is not None and not isinstance(key, (str, bytes)):
            raise InvalidArgument(f"key must be str or bytes (got {type(key).__name__})")
        return self._p.push(meta, data, partition, key, block)

    def push_many(self, events: Any, *, partition: Optional[int] = None, block: bool = True) -> Optional["Future"]:
        """Queue many metadata-only events in one call (the vectorised path).

        ``events`` is a numpy array (each row/record is one event's metadata
        bytes, e.g. a structured array or an (n, k) uint8 array), a sequence of
        bytes, or a sequence of JSON-serialisable objects. Returns the Future of
        the last event (None if there were none).
        """
        if self._closed:
            raise Closed("producer is closed; create a new one with topic.producer()")
        part = -1 if partition is None else _check.integer("partition", partition, 0, self._nparts - 1)
        if hasattr(events, "__array_interface__") or (hasattr(events, "ndim") and hasattr(events, "shape")):
            if len(events) == 0:
                return None
            return self._p.push_many(events, part, block)
        items = [e if type(e) is bytes else encode_metadata(e, self._non_finite) for e in events]
        if not items:
            return None
        import numpy as np

        lengths = np.fromiter((len(b) for b in items), dtype=np.uint64, count=len(items))
        return self._p.push_many_var(b"".join(items), lengths, part, block)

    def flush(self, timeout: Optional[float] = None) -> None:
        """Send everything queued and wait until stored (``timeout`` in seconds, None: no limit).

        Raises :class:`~mofka_py.TimeoutError` naming the events still unstored, their
        partitions and why (e.g. the service is unreachable) when ``timeout`` passes; they
        stay queued, so flush again to keep waiting or ``close(timeout=...)`` to give up.
        Otherwise raises the failure of events not stored since the last flush (their
        futures hold the same error), never returns quietly with events lost.
        """
        self._p.flush(_check.timeout("timeout", timeout))

    def close(self, timeout: Optional[float] = None) -> None:
        """Flush and stop the producer's thread.

        Without ``timeout`` it waits until every event is stored or has failed — over
        ``tcp://`` a lost connection is retried for the fabric's ``reconnect_timeout_ms``
        (default 300000, 5 minutes) before its events fail. With ``timeout`` (seconds) it stops
        waiting then, and the events not stored fail with the cause. Either way, if
        events were not stored (and no flush reported them yet), it raises an error
        naming how many, their topic and partitions, and why.
        """
        if not self._closed:
            self._closed = True
            self._p.close(_check.timeout("timeout", timeout))

    def reset(self) -> None:
        """Continue after a failed batch: once a batch to a partition failed (e.g.
        :class:`~mofka_py.StorageError` on a full disk), the producer refuses later events
        to that partition so that the partition holds no gap in its stream; after fixing
        the cause, ``reset()`` lets them through again (under a new producer id).

        A failed *sync* is different: the partition itself refuses writes (its
        :class:`~mofka_py.StorageError` says it is unwritable since a failed sync) until
        the fabric is reopened or the service restarted, after the disk is checked;
        ``reset()`` alone does not make it writable."""
        self._p.reset()

    @property
    def pending_bytes(self) -> int:
        """Bytes pushed but not yet stored."""
        return self._p.pending_bytes

    @property
    def stats(self) -> dict:
        """What this producer did: ``appended_events`` (stored, their futures resolved with an
        EventId) and ``pending_bytes`` (pushed, not yet stored)."""
        return {"appended_events": self._p.appended_events, "pending_bytes": self._p.pending_bytes}

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
        if timeout is not None and not (type(timeout) is float and 0.0 <= timeout <= 1e9):
            timeout = _check.timeout("timeout", timeout)
        return self._wrap(self._c.pull(timeout))

    def pull_batch(self, max_events: int = 1 << 20, timeout: Optional[float] = None) -> Optional["EventBatch"]:
        """Up to ``max_events`` events of one stored batch at once (vectorised consume).

        ``batch.metadata_view()`` is one zero-copy view of their metadata back to
        back; with fixed-size records, ``numpy.frombuffer(view, dtype)`` reads
        them as an array.
        """
        _check.integer("max_events", max_events, 1, _check.U32)
        return self._c.pull_batch(max_events, _check.timeout("timeout", timeout))

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
        to its new owner), ``fenced_commits`` (refused: the partitions had moved on) and
        ``prefetched`` (events fetched and waiting to be handed out now)."""
        return self._c.stats()

    def close(self) -> None:
        """Commit acknowledged offsets, leave the group and stop prefetching."""
        self._c.close()

    def __enter__(self) -> "Consumer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()



