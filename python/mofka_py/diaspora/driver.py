"""Driver and TopicHandle of the Diaspora Stream API on a mofka-py fabric."""
from __future__ import annotations

import os
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type, TypeVar

from .. import api as _api
from ..errors import Error, TopicExists, TopicNotFound
from .components import (
    AdaptiveBatchSize,
    Ordering,
    PartitionSelector,
    Serializer,
    ThreadPool,
    Validator,
    _Component,
)
from .consumer import Consumer, DataAllocator, DataSelector
from .errors import invalid, translate
from .producer import Producer

__all__ = ["Driver", "TopicHandle", "BACKENDS", "REGISTRY_TOPIC"]

#: The backends a :class:`Driver` takes, and the options each needs.
BACKENDS = {"mofka_py": "{'url': 'tcp://host:port' | 'file:///path' | 'memory://'} or {'fabric': an open "
                        "mofka_py fabric (e.g. from mofka_py.mpi.fabric)}",
            "files": "{'root_path': '/path/to/directory'} (a file:// fabric there)"}
#: System topic where the components of each topic are recorded (hidden from topic lists).
REGISTRY_TOPIC = "__diaspora_topics"
_KINDS: Tuple[Tuple[str, Type[_Component]], ...] = (
    ("validator", Validator), ("serializer", Serializer), ("partition_selector", PartitionSelector))

_shared_lock = threading.Lock()
_shared: Dict[str, List[Any]] = {}   # url -> [Fabric, number of drivers using it]
_deferred: List[str] = []            # releases garbage collection could not make at once (see _release)

C = TypeVar("C", bound=_Component)


def _acquire(url: str, settings: Dict[str, Any]) -> _api.Fabric:
    """The fabric at ``url``, shared by the drivers of this process (a ``file://`` fabric has one owner)."""
    with _shared_lock:
        try:
            entry = _shared.get(url)
            if entry is None:
                try:
                    fab = _api.connect(url, **settings)
                except TypeError as exc:
                    raise invalid(f"unknown driver option: {exc} (options besides url are mofka_py.connect "
                                  "settings, docs/configuration.md)") from None
                except Error as exc:
                    raise translate(exc) from None
                entry = _shared[url] = [fab, 0]
            entry[1] += 1
            return entry[0]  # type: ignore[no-any-return]
        finally:
            _drain_deferred()


def _release(url: str, blocking: bool = True) -> None:
    """One driver fewer on ``url``'s fabric (closed with the last). Garbage collection calls it with
    ``blocking=False``: it may run inside this very lock (a collection triggered in :func:`_acquire`),
    so then the release is left to whoever holds the lock."""
    if not _shared_lock.acquire(blocking=blocking):
        _deferred.append(url)
        return
    try:
        _drop(url)
        _drain_deferred()
    finally:
        _shared_lock.release()


def _drop(url: str) -> None:
    entry = _shared.get(url)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] == 0:
        del _shared[url]
        entry[0].close()


def _drain_deferred() -> None:
    """The releases garbage collection left while the lock was held (the lock is held)."""
    while _deferred:
        _drop(_deferred.pop())


def _component(kind: Type[C], given: Optional[C], what: str) -> C:
    if given is None:
        return kind.from_metadata()
    if not isinstance(given, kind):
        raise invalid(f"{what} must be a mofka_py.diaspora.{kind.__name__} (e.g. {kind.__name__}.from_metadata("
                      f"type='default')), not {type(given).__name__}")
    return given


class Driver:
    """Entry point of the Diaspora Stream API on mofka-py: creates, opens and lists topics.

    ``backend="mofka_py"`` with ``options={"url": ...}`` (``tcp://`` service,
    ``file://`` directory, ``memory://``) or ``{"fabric": fab}`` (an open fabric,
    e.g. inside ``mofka_py.mpi.fabric``); ``backend="files"`` with
    ``{"root_path": dir}`` keeps the topics in a ``file://`` fabric in ``dir``.
    Other options are :func:`mofka_py.connect` settings. Drivers of one URL in a
    process share one connection, closed with the last of them.

    >>> driver = Driver(backend="mofka_py", options={"url": "memory://"})
    >>> driver.create_topic("collisions", options={"num_partitions": 2})
    >>> driver.open_topic("collisions").producer().push({"energy": 42}).wait(-1)
    0
    """

    def __init__(self, *, backend: str, options: Optional[Dict[str, Any]] = None):
        if options is not None and not isinstance(options, dict):
            raise invalid(f"driver options must be a dict (got {type(options).__name__})")
        settings = dict(options or {})
        self._url: Optional[str] = None
        if backend == "files":
            root = settings.pop("root_path", None)
            if not isinstance(root, str) or not root:
                raise invalid("the files backend needs options={'root_path': '/path/to/directory'}")
            url = "file://" + os.path.abspath(root)
        elif backend == "mofka_py":
            given = settings.pop("fabric", None)
            url = settings.pop("url", None)
            if given is not None:
                if not isinstance(given, _api.Fabric) or url is not None or settings:
                    raise invalid("options={'fabric': fab} takes an open mofka_py fabric and nothing else")
                self._fabric = given
            elif not isinstance(url, str):
                raise invalid(f"the mofka_py backend needs {BACKENDS['mofka_py']}")
        else:
            known = "; ".join(f"{k!r} with options {v}" for k, v in BACKENDS.items())
            raise invalid(f"unknown backend {backend!r}: mofka_py.diaspora has {known}. Topics of other "
                          "Diaspora backends move with `mofka-py bridge` (docs/diaspora-migration.md)")
        if url is not None:
            self._fabric = _acquire(url, settings)
            self._url = url
        self._backend = backend
        self._default_pool = ThreadPool(0)
        self._registry: Dict[str, Dict[str, Any]] = {}
        self._registry_read = 0   # registry events read so far

    @property
    def fabric(self) -> _api.Fabric:
        """The mofka-py fabric under this driver (for what the Diaspora API does not say)."""
        return self._fabric

    @property
    def default_thread_pool(self) -> ThreadPool:
        """The driver's thread pool (mofka-py's core threads do the work; see :class:`ThreadPool`)."""
        return self._default_pool

    def make_thread_pool(self, count: int) -> ThreadPool:
        """A :class:`ThreadPool` of ``count`` threads (accepted by producers and consumers)."""
        return ThreadPool(count)

    def create_topic(self, name: str, *, options: Optional[Dict[str, Any]] = None,
                     validator: Optional[Validator] = None, partition_selector: Optional[PartitionSelector] = None,
                     serializer: Optional[Serializer] = None) -> None:
        """Create topic ``name``; ``options``: ``num_partitions`` (default 1) and mofka-py topic settings
        (``retention_ms``, ``sync``, ...). The components are recorded with the topic, so every
        process opening it uses them. Raises :class:`DiasporaError` if it exists."""
        if not isinstance(name, str) or not name or name.startswith("__"):
            raise invalid(f"topic name must be a non-empty string not starting with '__' (got {name!r})")
        if options is not None and not isinstance(options, dict):
            raise invalid(f"topic options must be a dict (got {type(options).__name__})")
        settings = dict(options or {})
        partitions = settings.pop("num_partitions", 1)
        chosen = {key: _component(kind, given, key).metadata for (key, kind), given in
                  zip(_KINDS, (validator, serializer, partition_selector))}
        try:
            self._fabric.create_topic(name, partitions=partitions, **settings)
        except TypeError as exc:
            raise invalid(f"unknown topic option: {exc} (num_partitions or a mofka-py topic setting, "
                          "docs/configuration.md)") from None
        except Error as exc:
            raise translate(exc) from None
        self._record({"topic": name, **chosen})

    def _record(self, entry: Dict[str, Any]) -> None:
        """Append a topic's components to the registry topic."""
        try:
            try:
                registry = self._fabric.create_topic(REGISTRY_TOPIC, partitions=1)
            except TopicExists:
                registry = self._fabric.topic(REGISTRY_TOPIC)
            with registry.producer(linger_ms=0) as prod:
                prod.push(entry)
        except Error as exc:
            raise translate(exc) from None

    def _components(self, name: str) -> Dict[str, Any]:
        """The recorded component configurations of topic ``name`` (defaults if none were recorded)."""
        if name not in self._registry:
            self._read_registry()
        return self._registry.get(name, {})

    def _read_registry(self) -> None:
        try:
            registry = self._fabric.topic(REGISTRY_TOPIC)
        except TopicNotFound:
            return
        end = registry.describe()["partitions"][0]["end_offset"]
        if end <= self._registry_read:
            return
        with registry.consumer(start=self._registry_read, data=False) as cons:
            while self._registry_read < end:
                ev = cons.pull(timeout=30.0)
                if ev is None:
                    raise invalid(f"the topic registry {REGISTRY_TOPIC} could not be read to its end")
                self._registry[ev.metadata["topic"]] = ev.metadata
                self._registry_read = ev.offset + 1

    def open_topic(self, name: str) -> "TopicHandle":
        """A :class:`TopicHandle` of an existing topic; raises :class:`DiasporaError` if there is none."""
        if not isinstance(name, str):
            raise invalid(f"topic name must be a string (got {type(name).__name__})")
        try:
            topic = self._fabric.topic(name)
        except Error as exc:
            raise translate(exc) from None
        return TopicHandle(self, topic, self._components(name))

    def topic_exists(self, name: str) -> bool:
        """Whether topic ``name`` exists."""
        return isinstance(name, str) and name in self._fabric.topics(system=True)

    def list_topics(self) -> Dict[str, Dict[str, Any]]:
        """Every topic: ``{name: {"name", "num_partitions", "validator", "serializer", "partition_selector"}}``."""
        self._read_registry()
        out: Dict[str, Dict[str, Any]] = {}
        for name in self._fabric.topics():
            info: Dict[str, Any] = {"name": name, "num_partitions": self._fabric.topic(name).partitions}
            recorded = self._registry.get(name, {})
            for key, kind in _KINDS:
                info[key] = recorded.get(key) or kind.from_metadata().metadata
            out[name] = info
        return out

    def close(self) -> None:
        """Let go of the fabric (closed when no driver of this process uses it any more)."""
        url, self._url = self._url, None
        if url is not None:
            _release(url)

    def __enter__(self) -> "Driver":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            url, self._url = getattr(self, "_url", None), None
            if url is not None:
                _release(url, blocking=False)
        except Exception:  # noqa: BLE001,S110 - nothing to report to at garbage collection
            pass

    def __repr__(self) -> str:
        return f"<mofka_py.diaspora.Driver backend={self._backend!r} fabric={self._fabric.url!r}>"


class TopicHandle:
    """An open topic: makes producers and consumers (from :meth:`Driver.open_topic`)."""

    def __init__(self, driver: Driver, topic: _api.Topic, recorded: Dict[str, Any]):
        self._driver = driver
        self._topic = topic
        self._partitions = [{"index": i} for i in range(topic.partitions)]
        self._validator = Validator.from_metadata(**recorded.get("validator", {}))
        self._serializer = Serializer.from_metadata(**recorded.get("serializer", {}))
        self._selector = PartitionSelector.from_metadata(**recorded.get("partition_selector", {}))

    @property
    def name(self) -> str:
        """The topic's name."""
        return self._topic.name

    @property
    def driver(self) -> Driver:
        """The driver that opened it."""
        return self._driver

    @property
    def partitions(self) -> List[Dict[str, int]]:
        """Its partitions, as ``[{"index": 0}, {"index": 1}, ...]``."""
        return [dict(p) for p in self._partitions]

    @property
    def validator(self) -> Validator:
        """The topic's validator."""
        return self._validator

    @property
    def serializer(self) -> Serializer:
        """The topic's serializer."""
        return self._serializer

    @property
    def partition_selector(self) -> PartitionSelector:
        """The topic's partition selector."""
        return self._selector

    def producer(self, name: str = "", *, batch_size: int = AdaptiveBatchSize, max_num_batches: int = 2,
                 ordering: Ordering = Ordering.Strict, thread_pool: Optional[ThreadPool] = None,
                 options: Optional[Dict[str, Any]] = None) -> Producer:
        """A :class:`Producer`; ``options`` are mofka-py producer settings (``linger_ms``, ``batch_bytes``, ...)."""
        return Producer(self, name, batch_size, max_num_batches, ordering, thread_pool, options)

    def consumer(self, name: str, *, data_selector: Optional[DataSelector] = None,
                 data_allocator: Optional[DataAllocator] = None, batch_size: int = AdaptiveBatchSize,
                 max_num_batches: int = 2, thread_pool: Optional[ThreadPool] = None,
                 targets: Optional[Sequence[int]] = None, options: Optional[Dict[str, Any]] = None) -> Consumer:
        """A :class:`Consumer` named ``name``. Without a data selector and allocator each event's
        ``data`` is ``[memoryview]`` of all its data (no copy); ``data_selector(metadata, descriptor)``
        returns the descriptor, a view of it or None, ``data_allocator(metadata, descriptor)`` a
        list of writable buffers the selected bytes are copied into. ``options``: mofka-py consumer
        settings (``prefetch_bytes``, ``member_id``, ``session_timeout_ms``, ...) and
        ``commit_on_acknowledge`` (default True: each ``acknowledge()`` is stored at once)."""
        return Consumer(self, name, data_selector, data_allocator, batch_size, max_num_batches, thread_pool,
                        targets, options)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TopicHandle):
            return NotImplemented
        return self._driver.fabric is other._driver.fabric and self.name == other.name

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<mofka_py.diaspora.TopicHandle {self.name!r}>"
