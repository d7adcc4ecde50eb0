"""Consumer of the Diaspora Stream API on a mofka-py consumer group; events, futures, data selection."""
from __future__ import annotations

import collections
import itertools
from typing import TYPE_CHECKING, Any, Callable, Deque, Dict, Iterator, List, Optional, Sequence, Union

import orjson

from ..errors import Error
from .components import DefaultSerializer, ThreadPool
from .descriptor import DataDescriptor
from .errors import invalid, translate
from .producer import FALSE, TRUE, Client, Flag, seconds

if TYPE_CHECKING:
    from .driver import TopicHandle

__all__ = ["Consumer", "Event", "FutureEvent", "FullDataSelector", "ByteArrayAllocator"]

DataSelector = Callable[[Any, DataDescriptor], Optional[DataDescriptor]]
DataAllocator = Callable[[Any, DataDescriptor], Sequence[Any]]

#: How long iterating over a consumer waits for the next event before the loop ends (as Diaspora's).
ITERATION_TIMEOUT_MS = 5000


def FullDataSelector(metadata: Any, descriptor: DataDescriptor) -> Optional[DataDescriptor]:  # noqa: N802
    """A data selector taking all of every event's data."""
    return descriptor


def ByteArrayAllocator(metadata: Any, descriptor: DataDescriptor) -> List[bytearray]:  # noqa: N802
    """A data allocator placing the selected data in one new ``bytearray``."""
    return [bytearray(descriptor.size)]


_UNSET: Any = object()


class _Batch:
    """A batch of events handed out one by one: taken from the core in one call
    (``pull_batch``), its events' data views made at once, metadata sliced when asked for."""

    __slots__ = ("batch", "views", "first", "index", "_offsets", "_metadata")

    def __init__(self, batch: Any):
        self.batch = batch
        self.views = batch.data_views()
        self.first = batch.first_offset
        self.index = batch.partition
        self._offsets: Optional[List[int]] = None
        self._metadata: Any = None

    def metadata(self, i: int) -> bytes:
        """The stored metadata bytes of event ``i`` (the batch's metadata, small, is copied once)."""
        offsets = self._offsets
        if offsets is None:
            offsets = self._offsets = [0, *itertools.accumulate(self.batch.metadata_lengths())]
            self._metadata = bytes(self.batch.metadata_view())
        return self._metadata[offsets[i]:offsets[i + 1]]  # type: ignore[no-any-return]


class Event:
    """An event pulled from a topic: ``metadata``, ``data`` (a list of buffers), ``event_id``, ``partition``.

    The event that ends a finished topic (see :meth:`Consumer.pull`) has ``event_id`` None.
    """

    __slots__ = ("_b", "_i", "_cons", "_meta", "_data")

    def __init__(self, batch: Optional[_Batch], i: int, consumer: "Consumer"):
        self._b = batch   # None: the end-of-topic event
        self._i = i
        self._cons = consumer
        self._meta = _UNSET
        self._data: Optional[List[Any]] = None

    @property
    def metadata(self) -> Any:
        """The metadata, decoded by the topic's serializer (a dict for JSON objects)."""
        if self._meta is _UNSET:
            b = self._b
            if b is None:
                self._meta = {}
            elif self._cons._serializer is None:
                raw = b.metadata(self._i)
                self._meta = orjson.loads(raw) if raw else None  # as mofka-py's own Event.metadata
            else:
                self._meta = self._cons._serializer.deserialize(b.metadata(self._i))
        return self._meta

    @property
    def data(self) -> List[Any]:
        """The selected data: a list of buffers (one ``memoryview`` of the whole data, without a
        copy, unless the consumer has a data selector or allocator)."""
        if self._data is None:
            self._data = [] if self._b is None else [self._b.views[self._i]]
        return self._data

    @property
    def event_id(self) -> Optional[int]:
        """The event's id: its offset in its partition (None for the end-of-topic event)."""
        return None if self._b is None else self._b.first + self._i

    @property
    def partition(self) -> Dict[str, int]:
        """The partition it comes from, as ``{"index": n}`` (what :attr:`TopicHandle.partitions` lists)."""
        return {"index": -1 if self._b is None else self._b.index}

    def acknowledge(self) -> None:
        """Mark this event and those before it in its partition as processed, durably: a consumer of
        the same name started later goes on after it."""
        if self._b is None:
            return
        try:
            self._b.batch[self._i].ack()
            if self._cons._commit_on_ack:
                self._cons._c.commit()
        except Error as exc:
            raise translate(exc) from None

    def wait(self, timeout_ms: float = -1) -> "Event":
        """The event itself (an event is the completed future of its ``pull()``)."""
        return self

    @property
    def completed(self) -> Flag:
        """True (an event is the completed future of its ``pull()``)."""
        return TRUE

    def __repr__(self) -> str:
        return f"<mofka_py.diaspora.Event partition={self.partition['index']} event_id={self.event_id}>"


class FutureEvent:
    """The future of :meth:`Consumer.pull`: :meth:`wait` gives the next :class:`Event`."""

    __slots__ = ("_cons", "_event")

    def __init__(self, consumer: "Consumer"):
        self._cons = consumer
        self._event: Any = _UNSET

    def wait(self, timeout_ms: float = -1) -> Optional[Event]:
        """The event, or None if none came within ``timeout_ms`` (negative: wait as long as it
        takes; wait again to keep waiting). Futures resolve in the order of their ``pull()``."""
        event = self._event
        if event is not _UNSET:
            return event  # type: ignore[no-any-return]
        self._cons._resolve(self, seconds(timeout_ms))
        return None if self._event is _UNSET else self._event

    @property
    def completed(self) -> Flag:
        """Whether the event is there (``completed`` and ``completed()`` both work)."""
        if self._event is _UNSET:
            self._cons._resolve(self, 0.0)
        return FALSE if self._event is _UNSET else TRUE


class Consumer(Client):
    """Pulls a topic's events as the consumer group named ``name`` (made by :meth:`TopicHandle.consumer`).

    Consumers of one name share the topic's partitions and its acknowledged
    position, which outlives them: a consumer started again under the name reads
    on after the last acknowledged event of each partition (from the oldest event
    the first time).
    """

    def __init__(self, topic: "TopicHandle", name: str, data_selector: Optional[DataSelector],
                 data_allocator: Optional[DataAllocator], batch_size: int, max_num_batches: int,
                 thread_pool: Optional[ThreadPool], targets: Optional[Sequence[int]],
                 options: Optional[Dict[str, Any]]):
        if not isinstance(name, str) or not name:
            raise invalid(f"a consumer needs a name (a non-empty string): it names its position in the topic "
                          f"(got {name!r})")
        for what, fn in (("data_selector", data_selector), ("data_allocator", data_allocator)):
            if fn is not None and not callable(fn):
                raise invalid(f"{what} must be a function f(metadata, descriptor) (got {type(fn).__name__})")
        if targets is not None:
            raise invalid("targets= is not supported: consumers of the same name share the topic's partitions "
                          "among themselves (a mofka-py consumer group); leave targets out")
        if thread_pool is not None and not isinstance(thread_pool, ThreadPool):
            raise invalid(f"thread_pool must come from driver.make_thread_pool() (got {type(thread_pool).__name__})")
        settings = dict(options or {})
        self._commit_on_ack = bool(settings.pop("commit_on_acknowledge", True))
        for key in ("group", "partitions"):
            if key in settings:
                raise invalid(f"option {key!r} is set by mofka_py.diaspora (the consumer's name is its group)")
        settings.setdefault("start", "earliest")
        self._name = name
        self._topic = topic
        self._selector = None if data_selector is FullDataSelector and data_allocator is None else data_selector
        self._allocator = data_allocator
        self._batch_size = batch_size
        self._max_num_batches = max_num_batches
        self._thread_pool = thread_pool or topic.driver.default_thread_pool
        serializer = topic.serializer
        self._serializer = None if type(serializer) is DefaultSerializer else serializer
        self._select_data = self._selector is not None or self._allocator is not None
        self._pending: Deque[FutureEvent] = collections.deque()
        try:
            self._c = topic._topic.consumer(name, **settings)
        except TypeError as exc:
            raise invalid(f"unknown consumer option: {exc} (options are mofka-py consumer settings, "
                          "docs/configuration.md)") from None
        except Error as exc:
            raise translate(exc) from None
        self._native = self._c._c   # the core consumer: the Python wrapper's checks are done once here
        # Events come from the core a stored batch at a time (one call), and are handed out one by one.
        self._b: Optional[_Batch] = None
        self._i = self._n = 0

    @property
    def data_selector(self) -> Optional[DataSelector]:
        """The data selector (None: all the data)."""
        return self._selector

    @property
    def data_allocator(self) -> Optional[DataAllocator]:
        """The data allocator (None: views of the data without a copy)."""
        return self._allocator

    def pull(self) -> Union[FutureEvent, Event]:
        """Ask for the next event; returns a future of it at once (a :class:`FutureEvent`, or the
        :class:`Event` itself when it is already there: an event is also its own completed future).

        Once the topic was marked complete (``mofka_py.Topic.mark_complete``) and
        every event read, the future gives an event whose ``event_id`` is None.
        """
        if not self._pending:
            # An event already here is its own completed future (pull itself never waits).
            i = self._i
            if i < self._n:
                self._i = i + 1
                event = Event(self._b, i, self)
                if self._select_data:
                    event._data = self._selected(event)
                return event
            event = self._take(0.0)
            if event is not None:
                return event
        fut = FutureEvent(self)
        self._pending.append(fut)
        return fut

    def _take(self, timeout: Optional[float]) -> Optional[Event]:
        """The next event, taking the next stored batch from the core when this one is used up;
        None if none came within ``timeout`` seconds."""
        i = self._i
        if i >= self._n:
            try:
                batch = self._native.pull_batch(1 << 20, timeout)
            except Error as exc:
                raise translate(exc) from None
            if batch is None:
                return None
            self._b, self._n, i = _Batch(batch), len(batch), 0
        self._i = i + 1
        event = Event(self._b, i, self)
        if self._select_data:
            event._data = self._selected(event)
        return event

    def _resolve(self, fut: FutureEvent, timeout: Optional[float]) -> None:
        """Give events to the pending futures, oldest first, until ``fut`` has one or ``timeout`` (s) passes."""
        pending = self._pending
        while fut._event is _UNSET:
            event = self._take(timeout)
            if event is None:
                if not self._c.exhausted:
                    return
                event = Event(None, 0, self)
            pending.popleft()._event = event

    def _selected(self, event: Event) -> List[Any]:
        """The data the selector asks for, in the allocator's buffers (or as views without a copy)."""
        b, i = event._b, event._i
        view = b.views[i]  # type: ignore[union-attr]
        desc = DataDescriptor(f"{self._topic.name}/{b.index}/{b.first + i}", view.nbytes)  # type: ignore[union-attr]
        meta = event.metadata
        chosen = desc if self._selector is None else self._selector(meta, desc)
        if chosen is None or (isinstance(chosen, DataDescriptor) and chosen.size == 0):
            return []
        if not isinstance(chosen, DataDescriptor):
            raise invalid(f"the data selector returned {type(chosen).__name__}; it must return the descriptor it "
                          "was given, a view of it, or None")
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        pieces = [view[off:off + size] for off, size in chosen.flatten()]
        if self._allocator is None:
            return pieces
        if self._allocator is ByteArrayAllocator:
            return [bytearray(pieces[0]) if len(pieces) == 1 else bytearray().join(pieces)]
        buffers = self._allocator(meta, chosen)
        _scatter(pieces, buffers, chosen.size)
        return list(buffers)

    def process(self, processor: Callable[[Event], Any], *, timeout_ms: float = -1,
                max_events: int = (1 << 64) - 1, thread_pool: Optional[ThreadPool] = None) -> None:
        """Call ``processor(event)`` on each event, until ``max_events``, the end of a complete topic,
        or no event for ``timeout_ms``."""
        done = 0
        while done < max_events:
            event = self.pull().wait(timeout_ms)
            if event is None or event.event_id is None:
                return
            processor(event)
            done += 1

    def __iter__(self) -> Iterator[Event]:
        """The events, until the end of a complete topic or none for 5 s (as Diaspora's iterator)."""
        while True:
            event = self.pull().wait(ITERATION_TIMEOUT_MS)
            if event is None or event.event_id is None:
                return
            yield event

    def _closable(self) -> Any:
        return getattr(self, "_c", None)


def _scatter(pieces: List[memoryview], buffers: Sequence[Any], size: int) -> None:
    """Copy ``pieces`` back to back into the allocator's ``buffers``."""
    try:
        targets = [memoryview(b).cast("B") for b in buffers]
    except TypeError as exc:
        raise invalid(f"the data allocator must return a list of writable buffers (e.g. [bytearray(n)]): {exc}") \
            from None
    if any(t.readonly for t in targets):
        raise invalid("the data allocator returned a read-only buffer; return writable ones (bytearray, numpy)")
    room = sum(t.nbytes for t in targets)
    if room < size:
        raise invalid(f"the data allocator gave {room} bytes for {size} selected bytes; give at least descriptor.size")
    t_index, t_pos = 0, 0
    for piece in pieces:
        src_pos = 0
        while src_pos < len(piece):
            target = targets[t_index]
            n = min(len(piece) - src_pos, target.nbytes - t_pos)
            target[t_pos:t_pos + n] = piece[src_pos:src_pos + n]
            src_pos += n
            t_pos += n
            if t_pos == target.nbytes:
                t_index, t_pos = t_index + 1, 0
