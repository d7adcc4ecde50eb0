"""Producer of the Diaspora Stream API on a mofka-py producer; its futures."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional

import orjson

from .. import _core
from ..api import encode_metadata
from ..errors import Error, TimeoutError
from .components import (
    AdaptiveBatchSize,
    DefaultPartitionSelector,
    DefaultSerializer,
    DefaultValidator,
    Ordering,
    ThreadPool,
)
from .errors import invalid, translate

if TYPE_CHECKING:
    from .driver import TopicHandle

__all__ = ["Producer", "FutureUint", "FutureFlushed", "Flag", "Client"]

_U32 = (1 << 32) - 1


class Flag(int):
    """``completed`` of a future: a bool that can also be called (Diaspora has it both ways)."""

    def __call__(self) -> bool:
        return bool(self)

    def __repr__(self) -> str:
        return repr(bool(self))


TRUE, FALSE = Flag(1), Flag(0)


def seconds(timeout_ms: Any) -> Optional[float]:
    """A Diaspora ``wait`` timeout (milliseconds, negative: no limit) in seconds (None: no limit); refuses
    what the core's own parse (``timeoutMs`` in bind_diaspora.cpp) refuses: non-numbers, bools and NaN."""
    if timeout_ms == -1 and type(timeout_ms) is int:
        return None
    if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, (int, float)) or timeout_ms != timeout_ms:
        raise invalid(f"timeout_ms must be a number of milliseconds, negative for no limit (got {timeout_ms!r})")
    return None if timeout_ms < 0 else timeout_ms / 1000.0


#: The future of a pushed event: ``wait(timeout_ms=-1)`` gives its event id (its offset in its partition),
#: or None if ``timeout_ms`` passed first; ``completed`` says whether it is stored (or failed). Made by the
#: core push itself (``mofka_py._core.FutureUint``), so a push through this layer creates no Python object
#: more than one through mofka-py's own API.
FutureUint = _core.FutureUint
FutureUint._configure(translate, TRUE, FALSE)


class FutureFlushed:
    """The future of :meth:`Producer.flush`: :meth:`wait` returns True once everything pushed is stored."""

    __slots__ = ("_p",)

    def __init__(self, producer: "Producer"):
        self._p = producer

    def wait(self, timeout_ms: float = -1) -> bool:
        """True when every event pushed so far is stored, False if ``timeout_ms`` passed first
        (wait again to keep waiting). Raises :class:`DiasporaError` naming events that failed."""
        try:
            self._p._p.flush(seconds(timeout_ms))
        except TimeoutError:
            return False
        except Error as exc:
            raise translate(exc) from None
        return True

    @property
    def completed(self) -> Flag:
        """Whether nothing pushed is waiting to be stored any more."""
        return TRUE if self._p._p.pending_bytes == 0 else FALSE


class Client:
    """What producers and consumers share: their name, topic, thread pool and batching, ``close()``,
    ``with`` and closing at garbage collection."""

    _name: str
    _topic: "TopicHandle"
    _thread_pool: ThreadPool
    _batch_size: int
    _max_num_batches: int

    @property
    def name(self) -> str:
        """Its name (a consumer's is its group)."""
        return self._name

    @property
    def topic(self) -> "TopicHandle":
        """The topic it pushes into or reads."""
        return self._topic

    @property
    def thread_pool(self) -> ThreadPool:
        """The thread pool it was given (or the driver's default)."""
        return self._thread_pool

    @property
    def batch_size(self) -> int:
        """The batch size asked for (AdaptiveBatchSize: mofka-py's default batching or prefetch)."""
        return self._batch_size

    @property
    def max_num_batches(self) -> int:
        """The number of pending (producer) or prefetched (consumer) batches asked for; mofka-py bounds
        bytes instead (``max_pending_bytes``, ``prefetch_bytes``)."""
        return self._max_num_batches

    def _closable(self) -> Any:
        """The mofka-py object to close (None if construction failed before it)."""
        raise NotImplementedError

    def close(self) -> None:
        """Finish and let go (a producer stores what is queued, a consumer commits what was acknowledged
        and leaves its group); also done at garbage collection."""
        target = self._closable()
        if target is not None:
            try:
                target.close()
            except Error as exc:
                raise translate(exc) from None

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001,S110 - nothing to report to at garbage collection
            pass


class Producer(Client):
    """Pushes events into a topic (made by :meth:`TopicHandle.producer`).

    Batching is mofka-py's: events go out when a batch fills or after ``linger_ms``
    (1 ms by default, ``options={"linger_ms": ...}``), so a future completes without
    a flush. Keep the data of an event unchanged until its future completes.
    """

    def __init__(self, topic: "TopicHandle", name: str, batch_size: int, max_num_batches: int,
                 ordering: Ordering, thread_pool: Optional[ThreadPool], options: Optional[Dict[str, Any]]):
        if not isinstance(name, str):
            raise invalid(f"producer name must be a string (got {name!r})")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise invalid(f"batch_size must be a positive integer or AdaptiveBatchSize (got {batch_size!r})")
        if isinstance(max_num_batches, bool) or not isinstance(max_num_batches, int) or max_num_batches < 1:
            raise invalid(f"max_num_batches must be a positive integer (got {max_num_batches!r})")
        if not isinstance(ordering, Ordering):
            raise invalid(f"ordering must be Ordering.Strict or Ordering.Loose (got {ordering!r})")
        if thread_pool is not None and not isinstance(thread_pool, ThreadPool):
            raise invalid(f"thread_pool must come from driver.make_thread_pool() (got {type(thread_pool).__name__})")
        settings = dict(options or {})
        if batch_size != AdaptiveBatchSize:
            settings.setdefault("batch_size", min(batch_size, _U32))
        settings.setdefault("selector", "round_robin")
        self._name = name
        self._topic = topic
        self._batch_size = batch_size
        self._max_num_batches = max_num_batches
        self._thread_pool = thread_pool or topic.driver.default_thread_pool
        try:
            self._p = topic._topic.producer(**settings)
        except TypeError as exc:
            raise invalid(f"unknown producer option: {exc} (options are mofka-py producer settings, "
                          "docs/configuration.md)") from None
        except Error as exc:
            raise translate(exc) from None
        self._n = len(topic.partitions)
        validator, serializer, selector = topic.validator, topic.serializer, topic.partition_selector
        self._validator = None if type(validator) is DefaultValidator else validator
        self._serializer = None if type(serializer) is DefaultSerializer else serializer
        self._selector = None if type(selector) is DefaultPartitionSelector else selector
        if self._selector is not None:
            self._selector.set_partitions(topic.partitions)
        self._plain = self._validator is None and self._serializer is None and self._selector is None
        # Both paths do the wrapper's checks themselves and push to the core producer directly, which
        # returns the Diaspora future itself: one Python call and one object less per event.
        self._core_push = self._p._p.push_diaspora
        self._non_finite = self._p._non_finite

    def push(self, metadata: Any, data: Any = None, *, partition: Optional[int] = None) -> FutureUint:
        """Queue an event: ``metadata`` a dict (or any JSON value) or a JSON text, ``data`` a buffer
        (bytes, bytearray, memoryview, numpy array) or a list of buffers. ``partition`` requests a
        partition (the topic's partition selector decides). Returns a :class:`FutureUint`.

        Raises :class:`DiasporaError` (nothing pushed) if the validator refuses the event or the
        metadata or data are not of those kinds.
        """
        if partition is not None and (type(partition) is not int or partition < 0):
            raise invalid(f"partition must be a non-negative integer or None (got {partition!r})")
        if isinstance(data, str):
            raise invalid("event data must be a buffer (bytes, numpy array...) or a list of them, not str; "
                          "encode it first")
        try:
            if self._plain:
                if type(metadata) is str:
                    meta = _json_text(metadata)
                else:
                    meta = metadata if type(metadata) is bytes else encode_metadata(metadata, self._non_finite)
                return self._core_push(meta, data, -1 if partition is None else partition % self._n)
            return self._push_through_components(metadata, data, partition)
        except Error as exc:
            raise translate(exc) from None

    def _push_through_components(self, metadata: Any, data: Any, partition: Optional[int]) -> FutureUint:
        """The validator, partition selector and serializer of the topic, then the push."""
        text = _json_text(metadata) if type(metadata) is str else None
        value = orjson.loads(text) if text is not None else metadata
        if self._validator is not None:
            try:
                self._validator.validate(value, data)
            except Exception as exc:  # noqa: BLE001 - a refusal of any kind is the validator's answer
                raise invalid(f"the topic's validator refused the event: {exc}") from None
        if self._selector is not None:
            chosen = self._selector.select_partition(value, partition)
            if type(chosen) is not int or not 0 <= chosen < self._n:
                raise invalid(f"the partition selector returned {chosen!r}; it must return a partition index "
                              f"0..{self._n - 1}")
            partition = chosen
        elif partition is not None:
            partition %= self._n
        if self._serializer is not None:
            raw = self._serializer.serialize(value)
            if not isinstance(raw, (bytes, bytearray)):
                raise invalid(f"the serializer returned {type(raw).__name__}; serialize() must return bytes")
            meta = bytes(raw)
        else:
            meta = text if text is not None else encode_metadata(value, self._non_finite)
        return self._core_push(meta, data, -1 if partition is None else partition)  # type: ignore[no-any-return]

    def flush(self) -> FutureFlushed:
        """Send what is queued; wait on the returned future until it is stored."""
        return FutureFlushed(self)

    def _closable(self) -> Any:
        return getattr(self, "_p", None)


def _json_text(text: str) -> bytes:
    """``text`` as bytes, after checking it is one JSON value (what Diaspora takes a string to be)."""
    raw = text.encode()
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid(f"metadata given as a string must be JSON text ({exc}); pass a dict, or valid JSON") from None
    return raw
