"""librdkafka inside the bridge: the settings of every client it creates, their check when the
configuration is loaded, and librdkafka's logs and errors routed to the ``mofka_py.bridge`` logger.

librdkafka prints every failed connection attempt to stderr by itself (about 190 lines in 10 s
against a broker that is down). The bridge's clients instead hand their logs and errors to a
:class:`KafkaHooks` object, which passes each kind of message on through a :class:`RepeatLimiter`:
once, then at most once per interval with the number of repeats it held back.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

__all__ = ["LOGGER", "RepeatLimiter", "KafkaHooks", "base_conf", "producer_conf", "consumer_conf",
           "check_librdkafka", "CALLBACK_KEYS"]

LOGGER = logging.getLogger("mofka_py.bridge")

# Settings confluent-kafka takes as Python callables, not librdkafka properties.
CALLBACK_KEYS = frozenset({"error_cb", "throttle_cb", "stats_cb", "oauth_cb", "logger", "on_delivery",
                           "on_commit"})

_THREAD = re.compile(r"^\[thrd:[^\]]*\]:\s*")
# What changes between repeats of one librdkafka message: timings, and its own count of repeats it held
# back ("..., 3 identical error(s) suppressed)"), which would otherwise make a repeat look new.
_VOLATILE = re.compile(r"\d+ms\b")
_SUPPRESSED = re.compile(r",\s*\d+ identical error\(s\) suppressed")
# librdkafka names a broker host:port/<node id>, or host:port/bootstrap before it knows the id: one broker.
_BROKER_NAME = re.compile(r"(:\d+)/(?:\d+|bootstrap)\b")
# The bridge's producer: idempotent, gapless, retrying forever (exactly once, see docs/bridge.md).
_PRODUCER_SETTINGS = {"enable.idempotence": True, "acks": "all", "batch.num.messages": 10000,
                      "queue.buffering.max.messages": 1_000_000, "queue.buffering.max.kbytes": 1 << 20,
                      "message.timeout.ms": 0, "enable.gapless.guarantee": True}
# Warnings that are not news, so only shown at debug level: every client of an endpoint gets the endpoint's
# whole librdkafka table, so a consumer told about a producer property (and the reverse) says so on every
# start; and librdkafka calls enable.gapless.guarantee, which the bridge chose, experimental each time.
_NOT_NEWS = re.compile(r"is a (producer|consumer) property and will be ignored"
                           r"|^Configuration property enable\.gapless\.guarantee is experimental")


class RepeatLimiter:
    """Passes each kind of message on at most once per ``interval`` seconds and counts the repeats held back.

    ``emit(level, key, text)`` logs ``text`` unless a message with the same ``key`` went out less than
    ``interval`` seconds ago; the next one that goes out says how many were held back meanwhile.
    Thread-safe (the routes of a bridge share one).

    >>> out, now = [], [0.0]
    >>> lim = RepeatLimiter(30, sink=lambda level, text: out.append(text), clock=lambda: now[0])
    >>> [lim.emit(logging.WARNING, "down", "broker down") for _ in range(5)]
    [True, False, False, False, False]
    >>> now[0] = 31.0
    >>> lim.emit(logging.WARNING, "down", "broker down")
    True
    >>> out
    ['broker down', 'broker down (4 more like this in the last 31 s)']
    """

    _MAX_KEYS = 1000    # a flood of distinct messages must not grow memory without bound

    def __init__(self, interval: float = 30.0, *, sink: Optional[Callable[[int, str], None]] = None,
                 clock: Callable[[], float] = time.monotonic):
        self.interval = float(interval)
        self.sink = sink or LOGGER.log
        self.clock = clock
        self._seen: Dict[Any, List[float]] = {}     # key -> [time it last went out, repeats held back]
        self._lock = threading.Lock()

    def emit(self, level: int, key: Any, text: str) -> bool:
        """Log ``text`` at ``level`` unless ``key`` went out within the interval; True if it went out."""
        now = self.clock()
        with self._lock:
            entry = self._seen.get(key)
            if entry is not None and now - entry[0] < self.interval:
                entry[1] += 1
                return False
            held = int(entry[1]) if entry is not None else 0
            since = now - entry[0] if entry is not None else 0.0
            if entry is None and len(self._seen) >= self._MAX_KEYS:
                self._seen.pop(next(iter(self._seen)))
            self._seen[key] = [now, 0]
        if held:
            text = f"{text} ({held} more like this in the last {since:.0f} s)"
        self.sink(level, text)
        return True


class KafkaHooks:
    """The ``logger`` and ``error_cb`` of one endpoint's clients: messages go to a :class:`RepeatLimiter`.

    confluent-kafka calls these from the thread that polls the client (never from librdkafka's own
    threads), so a route's messages come from its own thread. ``last_error`` keeps the latest problem
    for error messages and the status.
    """

    def __init__(self, endpoint: str, limiter: Optional[RepeatLimiter] = None):
        self.endpoint = endpoint
        self.limiter = limiter if limiter is not None else RepeatLimiter()
        self.last_error: Optional[str] = None

    def _emit(self, level: int, text: str) -> None:
        self.limiter.emit(level, (self.endpoint, _BROKER_NAME.sub(r"\1", _SUPPRESSED.sub("", _VOLATILE.sub("#ms", text)))),
                          f"Kafka endpoint {self.endpoint!r}: {text}")

    def log(self, level: int, fmt: str, fac: str, name: str, text: str, *rest: Any) -> None:
        """Called by confluent-kafka as ``logger.log(level, "%s [%s] %s", facility, client name, text)``."""
        text = _THREAD.sub("", text)
        if _NOT_NEWS.search(text):
            level = logging.DEBUG
        elif level >= logging.WARNING:
            # librdkafka retries what it logs as errors (a refused connection, a broker gone); the problem
            # is worth a warning, and a fatal one arrives through error() as well.
            level = logging.WARNING
            self.last_error = text
        self._emit(level, text)

    def error(self, err: Any) -> None:
        """``error_cb``: a client-level error (fatal ones are logged as errors, the rest as warnings)."""
        text = err.str() if hasattr(err, "str") else str(err)
        self.last_error = text
        self._emit(logging.ERROR if getattr(err, "fatal", lambda: False)() else logging.WARNING, text)

    def conf(self) -> Dict[str, Any]:
        """The confluent-kafka settings that route a client's logs and errors here."""
        return {"logger": self, "error_cb": self.error}


class _Discard:
    """A ``logger`` for the throwaway clients of the settings check: their warnings are not the user's."""

    def log(self, *args: Any) -> None:
        pass


# --------------------------------------------------------------------------------- client settings

def base_conf(bootstrap: str, settings: Dict[str, Any], hooks: Optional[KafkaHooks], **extra: Any) -> Dict[str, Any]:
    """``bootstrap.servers``, then the bridge's own settings, then the user's (theirs win), then the hooks.

    A user's own ``logger`` or ``error_cb`` (Python API) wins over the hooks too.
    """
    conf: Dict[str, Any] = {"bootstrap.servers": bootstrap}
    if hooks is not None:
        conf.update(hooks.conf())
    conf.update(extra)
    conf.update(settings)
    return conf


def producer_conf(bootstrap: str, settings: Dict[str, Any], hooks: Optional[KafkaHooks], *,
                  linger_ms: float) -> Dict[str, Any]:
    """The settings of a Kafka sink's producer: idempotent, ``acks=all``, gapless, retrying forever."""
    return base_conf(bootstrap, settings, hooks, **_PRODUCER_SETTINGS, **{"linger.ms": linger_ms})


def consumer_conf(bootstrap: str, settings: Dict[str, Any], hooks: Optional[KafkaHooks], *, group: str,
                  **extra: Any) -> Dict[str, Any]:
    """The settings of a consumer the bridge uses (a Kafka source, a recovery scan): manual commits only."""
    return base_conf(bootstrap, settings, hooks, **{"group.id": group, "enable.auto.commit": False,
                                                    "fetch.wait.max.ms": 10, **extra})


# ----------------------------------------------------------------------------- the settings check

def _create(kind: str, conf: Dict[str, Any]) -> Optional[str]:
    """Create and drop one client offline (no ``bootstrap.servers``); librdkafka's complaint, or None."""
    import confluent_kafka as ck
    from confluent_kafka.admin import AdminClient

    conf = {k: v for k, v in conf.items() if k != "bootstrap.servers"}
    conf["logger"] = _Discard()
    cls = {"producer": ck.Producer, "consumer": ck.Consumer, "admin": AdminClient}[kind]
    try:
        client = cls(conf)
    except ck.KafkaException as exc:
        err = exc.args[0]
        return err.str() if hasattr(err, "str") else str(err)
    except (TypeError, ValueError) as exc:
        return str(exc)
    if kind == "consumer":
        client.close()
    del client
    return None


_PROPERTY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)+|[a-z]+_cb\b")


def check_librdkafka(settings: Dict[str, Any], clients: Iterable[Tuple[str, Callable[[Dict[str, Any]], Dict[str, Any]]]]
                     ) -> Optional[Tuple[Optional[str], str]]:
    """Check an endpoint's librdkafka ``settings`` by creating each client the bridge will create, offline.

    ``clients`` lists ``(kind, build)`` pairs: ``kind`` is ``producer``, ``consumer`` or ``admin`` and
    ``build(settings)`` returns that client's full settings. Returns None when librdkafka accepts them
    all, else ``(key, message)``: the user's setting to blame (None when no single one is) and
    librdkafka's message. The key is the one the message names, else the first one whose addition
    (in the order written) makes the client fail: librdkafka names the canonical property
    (``compression.codec`` for ``compression.type``), not the alias the user wrote.
    """
    for kind, build in clients:
        message = _create(kind, build(settings))
        if message is None:
            continue
        named = [k for k in _PROPERTY.findall(message) if k in settings]
        if named:
            return named[0], message
        keys = list(settings)
        for n in range(1, len(keys) + 1):
            if _create(kind, build({k: settings[k] for k in keys[:n]})) is not None:
                return keys[n - 1], message
        return None, message
    return None
