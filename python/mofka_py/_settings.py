"""Every setting of mofka-py in one registry: one name, one meaning, one check.

A setting has ONE name, used by the Python API (``linger_ms``), the C++ core
(the same words in camelCase: ``ProducerOptions::lingerMs``), the command line
(the same words with dashes: ``--linger-ms``) and the bridge configuration
(``linger_ms = 5``), as librdkafka's CONFIGURATION.md does for Kafka. Values
that are configuration carry their unit in the name when it is not obvious
(``_ms``, ``_bytes``); the per-call timeouts of blocking methods
(``flush(timeout)``, ``result(timeout)``, ``pull(timeout)``) are seconds, as
everywhere in Python.

Each scope has ONE validation function, :func:`validate`, used by every entry
point that takes its settings (``connect()``, ``Fabric.create_topic``,
``Topic.producer``, ``mofka_py.mpi.fabric``, ``mofka-py serve``, the CLI, the
bridge configuration): a bad value raises :class:`~mofka_py.InvalidArgument`
naming the setting, its range and what was given, before anything is written.

``mofka-py settings`` lists them; ``mofka-py settings --markdown`` prints docs/configuration.md.
"""
from __future__ import annotations

import argparse
import math
import re
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from .errors import InvalidArgument

U32 = (1 << 32) - 1
I64 = (1 << 63) - 1

#: Scopes in documentation order: (title, what takes them).
SCOPES: Dict[str, Tuple[str, str]] = {
    "fabric": ("Fabric", "`mofka_py.connect(url, ...)`; the topic settings marked so are also fabric-wide "
                         "defaults for topics created without their own"),
    "topic": ("Topic", "`Fabric.create_topic(name, ...)`, `mofka-py topic create`; `Topic.alter` and "
                       "`mofka-py topic alter` change the retention settings"),
    "producer": ("Producer", "`Topic.producer(...)`"),
    "consumer": ("Consumer", "`Topic.consumer(group, ...)`, `mofka-py consume`"),
    "mpi": ("MPI fabric", "`mofka_py.mpi.fabric(comm, servers, storage, ...)` (plus the fabric and topic "
                          "settings marked so)"),
    "service": ("Service", "`mofka-py serve` (`mofka_py.service.serve(...)`)"),
    "rule": ("Bridge rule", "a `[[rules]]` table of a bridge configuration (docs/bridge.md)"),
}


@dataclass(frozen=True)
class Setting:
    """One setting: its name, where it is taken, its type, unit, default, range and meaning."""

    name: str
    scope: str
    kind: str                 # "int" | "number" | "bool" | "choice" | "str" | "custom"
    default: Any
    meaning: str
    unit: str = ""            # "ms", "bytes", "events", ... ("" for none)
    lo: Optional[float] = None
    hi: Optional[float] = None
    choices: Tuple[Any, ...] = ()
    also: Tuple[str, ...] = ()  # other scopes that take it (as a default, for a fabric)
    cpp: str = ""             # the C++ field, e.g. "ProducerOptions::lingerMs"
    cpp_scale: int = 1        # C++ value = Python value * cpp_scale (a C++ field in other units)
    cli: str = ""             # the command-line flag ("" when there is none)
    bridge: str = ""          # the bridge configuration key ("" when there is none)
    check: Optional[Callable[[Any], Any]] = None   # kind "custom": returns the value or raises
    type_text: str = ""       # kind "custom": the type, for the documentation
    range_text: str = ""      # kind "custom", or a range worth saying in words
    default_text: str = ""    # a default that is not a literal (e.g. "$MOFKA_PY_TOKEN")

    def describe_type(self) -> str:
        if self.type_text:
            return self.type_text
        base = {"int": "int", "number": "float", "bool": "bool", "choice": "str", "str": "str"}[self.kind]
        return f"{base}, {self.unit}" if self.unit else base

    def describe_range(self) -> str:
        if self.range_text:
            return self.range_text
        if self.kind == "choice":
            return ", ".join(repr(c) for c in self.choices)
        if self.kind in ("int", "number"):
            return f"{_num(self.lo)} .. {_num(self.hi)}"
        if self.kind == "bool":
            return "True, False"
        return "any"

    def describe_default(self) -> str:
        if self.default_text:
            return self.default_text
        return _num(self.default) if self.kind in ("int", "number") else repr(self.default)

    def validate(self, value: Any) -> Any:
        """``value`` checked (and normalised: an int stays an int, a float for a number), or InvalidArgument."""
        k, name = self.kind, self.name
        unit = f" {_UNIT_WORDS.get(self.unit, self.unit)}" if self.unit else ""
        lo = -math.inf if self.lo is None else self.lo
        hi = math.inf if self.hi is None else self.hi
        if k == "int":
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise InvalidArgument(f"{name} must be an integer number{unit} between {_num(self.lo)} and "
                                      f"{_num(self.hi)} (got {value!r})")
            return value
        if k == "number":
            if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                    or not lo <= value <= hi):
                raise InvalidArgument(f"{name} must be a number{unit} between {_num(self.lo)} and "
                                      f"{_num(self.hi)} (got {value!r})")
            return float(value)
        if k == "bool":
            if not isinstance(value, bool):
                raise InvalidArgument(f"{name} must be True or False (got {value!r})")
            return value
        if k == "choice":
            if isinstance(value, bool) or value not in self.choices:
                raise InvalidArgument(f"{name} must be one of {self.describe_range()} (got {value!r})")
            return value
        if k == "str":
            if not isinstance(value, str):
                raise InvalidArgument(f"{name} must be a string (got {value!r})")
            return value
        assert self.check is not None, name
        return self.check(value)


_UNIT_WORDS = {"ms": "of milliseconds", "bytes": "of bytes", "events": "of events", "events/s": "of events per second",
               "bytes/s": "of bytes per second"}


def _num(x: Any) -> str:
    """A number as the documentation writes it: whole MiB also in MiB, floats without noise."""
    if x is None:
        return "-"
    if isinstance(x, float):
        if x == int(x) and abs(x) < 1e9:
            return str(int(x)) if abs(x) >= 1e6 else f"{x:g}"
        return f"{x:g}".replace("e+0", "e").replace("e+", "e")
    if x == I64:
        return "2^63-1"
    if x == U32:
        return "2^32-1"
    if isinstance(x, int) and x >= 1 << 20 and x % (1 << 20) == 0:
        for shift, name in ((40, "TiB"), (30, "GiB"), (20, "MiB")):
            if x % (1 << shift) == 0:
                return f"{x} ({x >> shift} {name})"
    return str(x)


# ---- checks of the settings whose values are more than a number or a word ----

def _optional_name(name: str, lo: int = 1, hi: int = 1000) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, str) or not lo <= len(value) <= hi:
            raise InvalidArgument(f"{name} must be None or a string of {lo}-{hi} characters (got {value!r})")
        return value
    return check


def _check_start(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        if value not in ("earliest", "latest", "committed"):
            raise InvalidArgument(f"start must be 'earliest', 'latest', 'committed' or an offset (got {value!r})")
        return value
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= I64:
        raise InvalidArgument(f"start must be 'earliest', 'latest', 'committed' or an offset between 0 and 2^63-1 "
                              f"(got {value!r})")
    return value


def _check_data(value: Any) -> Any:
    if isinstance(value, tuple):
        if len(value) != 2:
            raise InvalidArgument(f"data as a byte range is (offset, size) (got {value!r})")
        for what, x in zip(("offset", "size"), value):
            if isinstance(x, bool) or not isinstance(x, int) or not 0 <= x <= I64:
                raise InvalidArgument(f"data {what} must be an integer between 0 and 2^63-1 (got {x!r})")
        return value
    if isinstance(value, bool) or callable(value):
        return value
    raise InvalidArgument(f"data must be True, False, (offset, size) or a callable (got {value!r})")


def _check_partition_list(value: Any) -> Any:
    if value is None:
        return None
    try:
        items = list(value)
    except TypeError:
        raise InvalidArgument(f"partitions must be None or a list of partition numbers (got {value!r})") from None
    for p in items:
        if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p <= 65535:
            raise InvalidArgument(f"partitions[] must be integers between 0 and 65535 (got {p!r})")
    return items


def _check_listen(value: Any) -> Any:
    host, sep, port = value.rpartition(":") if isinstance(value, str) else ("", "", "")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InvalidArgument(f"listen must be HOST:PORT such as 127.0.0.1:7400 (got {value!r})")
    return value


def _check_group(value: Any) -> Any:
    if value is None or (isinstance(value, str) and value):
        return value
    raise InvalidArgument(f"group must be a non-empty string (got {value!r})")


# ---- the registry ----

_TOPIC_DEFAULT = ("fabric", "mpi")   # topic settings that a fabric takes as defaults for its topics

SETTINGS: Tuple[Setting, ...] = (
    # fabric
    Setting("repair", "fabric", "bool", False, "embedded fabrics: truncate corrupted logs at open instead of "
            "raising CorruptionError", also=("mpi",), cpp="FabricOptions::repair"),
    Setting("token", "fabric", "custom", None, "tcp://: the service's shared secret, proven by a challenge-response "
            "(never sent)", check=_optional_name("token", 0, 1 << 16), type_text="str",
            range_text="a string", default_text="$MOFKA_PY_TOKEN", cpp="FabricOptions::token",
            cli="--token-file, --token"),
    Setting("request_timeout_ms", "fabric", "int", 30000, "tcp://: a request without a reply this long raises "
            "TimeoutError", unit="ms", lo=1, hi=1_000_000_000, cpp="FabricOptions::requestTimeoutMs"),
    Setting("reconnect_timeout_ms", "fabric", "int", 300000, "tcp://: a lost connection is retried this long "
            "before requests fail", unit="ms", lo=0, hi=10_000_000_000, cpp="FabricOptions::reconnectTimeoutMs"),
    # topic (and fabric-wide defaults for topics)
    Setting("partitions", "topic", "int", 1, "number of partitions", lo=1, hi=65536, cpp="TopicConfig::partitions",
            cli="--partitions"),
    Setting("segment_bytes", "topic", "int", 256 << 20, "a partition's log rolls to a new segment file past this "
            "size", unit="bytes", lo=4096, hi=I64, also=_TOPIC_DEFAULT, cpp="TopicConfig::segmentBytes"),
    Setting("retention_bytes", "topic", "int", 0, "keep at most this many bytes per partition, dropping the "
            "oldest segments (0: no limit)", unit="bytes", lo=0, hi=I64, also=_TOPIC_DEFAULT,
            cpp="TopicConfig::retentionBytes", cli="--retention-bytes"),
    Setting("retention_ms", "topic", "int", 0, "drop segments whose events are all older than this (0: never)",
            unit="ms", lo=0, hi=I64, also=_TOPIC_DEFAULT, cpp="TopicConfig::retentionMs", cli="--retention-ms"),
    Setting("sync", "topic", "choice", "none", "when appended events reach stable storage: 'none' (page cache), "
            "'batch' (fdatasync before each acknowledgement), 'interval' (every sync_interval_ms)",
            choices=("none", "batch", "interval"), also=_TOPIC_DEFAULT + ("service",), cpp="TopicConfig::sync",
            cli="--sync"),
    Setting("sync_interval_ms", "topic", "int", 1000, "with sync='interval': how often appended events are "
            "synced", unit="ms", lo=1, hi=I64, also=_TOPIC_DEFAULT + ("service",),
            cpp="TopicConfig::syncIntervalMs", cli="--sync-interval-ms"),
    Setting("max_event_bytes", "topic", "int", 64 << 20, "largest event (metadata and data) a partition accepts; "
            "larger ones raise EventTooLarge", unit="bytes", lo=1, hi=I64, also=_TOPIC_DEFAULT,
            cpp="TopicConfig::maxEventBytes"),
    Setting("replication", "topic", "int", 1, "copies of each partition on the nodes of a replicated cluster "
            "(serve --cluster); 1 on a single broker", lo=1, hi=5, cpp="TopicConfig::replication",
            cli="--replication"),
    Setting("min_insync", "topic", "int", 0, "replicas (the leader included) that must hold a write before it is "
            "acknowledged; with fewer in sync, writes raise NotEnoughReplicas (0: min(2, replication))", lo=0, hi=5,
            cpp="TopicConfig::minInsync", cli="--min-insync"),
    # producer
    Setting("batch_size", "producer", "int", 16384, "seal a batch at this many events", unit="events", lo=1, hi=U32,
            cpp="ProducerOptions::batchSize"),
    Setting("batch_bytes", "producer", "int", 4 << 20, "... or at this many bytes", unit="bytes", lo=1, hi=1 << 40,
            cpp="ProducerOptions::batchBytes"),
    Setting("linger_ms", "producer", "number", 1.0, "... or when its first event is this old", unit="ms", lo=0.0,
            hi=3.6e6, cpp="ProducerOptions::lingerMs"),
    Setting("max_pending_bytes", "producer", "int", 256 << 20, "bytes pushed but not yet stored; past it push "
            "blocks (or raises BufferFull with block=False)", unit="bytes", lo=1, hi=1 << 50,
            cpp="ProducerOptions::maxPendingBytes"),
    Setting("selector", "producer", "choice", "key_hash", "partition of an event pushed without one: 'key_hash' "
            "(murmur2 of key=, as Kafka; round robin without a key) or 'round_robin'",
            choices=("key_hash", "round_robin"), cpp="ProducerOptions::selector"),
    Setting("non_finite", "producer", "choice", "error", "NaN and infinities in metadata: refused ('error'), "
            "written as null ('null') or as the strings \"NaN\", \"Infinity\" ('string')",
            choices=("error", "null", "string")),
    # consumer
    Setting("group", "consumer", "custom", None, "share partitions with the group's other members and commit "
            "offsets durably (None or '': no group)", check=_optional_name("group", 0), type_text="str or None",
            range_text="0-1000 characters", cpp="ConsumerOptions::group", cli="--group"),
    Setting("start", "consumer", "custom", None, "where to begin: 'earliest', 'latest', 'committed' or an offset; "
            "in a group only for partitions it never committed (Kafka's auto.offset.reset)",
            check=_check_start, type_text="str or int", range_text="'earliest', 'latest', 'committed', 0 .. 2^63-1",
            default_text="None ('committed')", cpp="ConsumerOptions::start", cli="--start"),
    Setting("data", "consumer", "custom", True, "event data to read: True (all), False (metadata only), "
            "(offset, size) or a callable f(metadata) returning one of those", check=_check_data,
            type_text="bool, tuple or callable", range_text="True, False, (offset, size), f(metadata)",
            cpp="ConsumerOptions::data", cli="--data"),
    Setting("partitions", "consumer", "custom", None, "without a group: read these partitions only "
            "(None: all)", check=_check_partition_list, type_text="list of int or None",
            range_text="0 .. 65535 each", cpp="ConsumerOptions::partitions"),
    Setting("prefetch_bytes", "consumer", "int", 64 << 20, "events fetched ahead of pull, at most", unit="bytes",
            lo=1, hi=1 << 40, cpp="ConsumerOptions::prefetchBytes"),
    Setting("auto_commit_ms", "consumer", "int", 1000, "commit acknowledged offsets this often (0: only on commit() "
            "and close())", unit="ms", lo=0, hi=3_600_000, cpp="ConsumerOptions::autoCommitMs"),
    Setting("member_id", "consumer", "custom", None, "a stable id in the group, so a restarted consumer takes its "
            "partitions back at once (None: a new id)", check=_optional_name("member_id"),
            type_text="str or None", range_text="1-1000 characters", cpp="ConsumerOptions::memberId"),
    Setting("on_gap", "consumer", "choice", "error", "events deleted by retention before they were read: raise "
            "OffsetOutOfRange ('error') or skip to the oldest retained one ('earliest')",
            choices=("error", "earliest"), cpp="ConsumerOptions::onGap"),
    Setting("session_timeout_ms", "consumer", "int", 10000, "a group member silent this long is dropped and its "
            "partitions go to the others", unit="ms", lo=100, hi=3_600_000, cpp="ConsumerOptions::sessionTimeoutMs"),
    Setting("rebalance_timeout_ms", "consumer", "int", 10000, "when a partition moves to another member, how long "
            "events handed out may take to be acknowledged before it moves anyway", unit="ms", lo=0, hi=3_600_000,
            cpp="ConsumerOptions::rebalanceTimeoutMs"),
    # MPI fabric
    Setting("colocated", "mpi", "bool", False, "server ranks are clients too", cpp="MpiFabricOptions::colocated"),
    Setting("request_timeout_ms", "mpi", "int", 60000, "a request without a reply this long raises TimeoutError",
            unit="ms", lo=1, hi=1_000_000_000, cpp="MpiFabricOptions::requestTimeoutMs"),
    Setting("spindown_ms", "mpi", "number", 10.0, "after events went through a rank, its pollers keep polling "
            "(yielding the core) this long before sleeping between polls (0: sleep at once)", unit="ms", lo=0.0,
            hi=3.6e6, cpp="MpiFabricOptions::spindownUs", cpp_scale=1000),
    # service
    Setting("data_dir", "service", "custom", None, "fabric directory (None: in memory)",
            check=_optional_name("data_dir", 1, 4096), type_text="str or None", range_text="a path",
            cli="--data-dir"),
    Setting("memory_reserve", "service", "int", 0, "memory:// storage: bytes pre-faulted before serving (see "
            "mofka_py.reserve_memory), so producers do not wait on page faults", unit="bytes", lo=0, hi=I64,
            also=("mpi",), cli="--memory-reserve"),
    Setting("listen", "service", "custom", "127.0.0.1:7400", "address and port to accept connections on (port 0: "
            "any free port)", check=_check_listen, type_text="str", range_text="HOST:PORT",
            cpp="TcpServerOptions::host, TcpServerOptions::port", cli="--listen"),
    Setting("login_timeout_ms", "service", "int", 5000, "close a connection that has not logged in this long after "
            "it was accepted", unit="ms", lo=1, hi=86_400_000, cpp="TcpServerOptions::loginTimeoutMs",
            cli="--login-timeout-ms"),
    Setting("max_connections", "service", "int", 1024, "connections in all, logged in or not", lo=1, hi=U32,
            cpp="TcpServerOptions::maxConnections", cli="--max-connections"),
    Setting("max_pending_logins", "service", "int", 256, "connections not yet logged in; past it the oldest is "
            "closed", lo=1, hi=U32, cpp="TcpServerOptions::maxPendingLogins", cli="--max-pending-logins"),
    Setting("max_pending_logins_per_address", "service", "int", 64, "connections not yet logged in from one IP "
            "address; past it that address's oldest is closed", lo=1, hi=U32,
            cpp="TcpServerOptions::maxPendingLoginsPerAddress", cli="--max-pending-logins-per-address"),
    Setting("health", "service", "bool", True, "publish the service's heartbeat (__health) and node events "
            "(__health.events)", cli="--no-health"),
    # bridge rule
    Setting("batch_size", "rule", "int", 10000, "events per forwarding round (the unit of commit); also the "
            "target producer's batch_size", unit="events", lo=1, hi=U32, bridge="batch_size",
            cpp="ProducerOptions::batchSize (fabric targets)"),
    Setting("linger_ms", "rule", "number", 5.0, "how long a round waits to fill up to batch_size; also the target "
            "producer's linger_ms", unit="ms", lo=0.0, hi=3.6e6, bridge="linger_ms",
            cpp="ProducerOptions::lingerMs (fabric targets)"),
    Setting("data", "rule", "choice", "forward", "event data: forwarded, dropped, or only its size and checksum "
            "kept in metadata ('metadata')", choices=("forward", "drop", "metadata"), bridge="data"),
    Setting("rate_limit", "rule", "number", 0.0, "at most this many events per second (0: unlimited)",
            unit="events/s", lo=0.0, hi=1e12, bridge="rate_limit"),
    Setting("rate_limit_bytes", "rule", "number", 0.0, "at most this many bytes per second (0: unlimited)",
            unit="bytes/s", lo=0.0, hi=1e15, bridge="rate_limit_bytes"),
    Setting("group", "rule", "custom", None, "the consumer group the rule reads its sources with",
            check=_check_group, type_text="str", range_text="a non-empty string",
            default_text="mofka-bridge.SITE.RULE", bridge="group"),
    Setting("start", "rule", "choice", "earliest", "where the rule's group begins on partitions it never "
            "committed", choices=("earliest", "latest"), bridge="start"),
    Setting("partitions", "rule", "int", 0, "partitions of a target topic the bridge creates (0: as many as the "
            "source)", lo=0, hi=65536, bridge="partitions"),
    Setting("partition_map", "rule", "choice", "v2", "how a source partition picks its target partition "
            "(docs/bridge.md says how to move from v1 to v2)", choices=("v1", "v2"),
            default_text="[bridge] partition_map, else 'v2'", bridge="partition_map"),
)


@dataclass(frozen=True)
class Deprecated:
    """An old name kept for one release: it warns, naming the new one, and converts its value."""

    old: str
    new: str
    scopes: Tuple[str, ...]
    convert: Callable[[Any], Any]
    note: str = ""


def _seconds_to_ms(old: str, new: str) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidArgument(f"{old} (deprecated: use {new}) must be a number of seconds (got {value!r})")
        return int(round(value * 1000))
    return convert


DEPRECATED: Tuple[Deprecated, ...] = (
    Deprecated("request_timeout", "request_timeout_ms", ("fabric", "mpi"),
               _seconds_to_ms("request_timeout", "request_timeout_ms"), "seconds -> milliseconds"),
    Deprecated("reconnect_timeout", "reconnect_timeout_ms", ("fabric",),
               _seconds_to_ms("reconnect_timeout", "reconnect_timeout_ms"), "seconds -> milliseconds"),
    Deprecated("login_timeout", "login_timeout_ms", ("service",),
               _seconds_to_ms("login_timeout", "login_timeout_ms"), "seconds -> milliseconds"),
    Deprecated("batch_events", "batch_size", ("rule",), lambda v: v, "same value"),
)


def settings(scope: str) -> Dict[str, Setting]:
    """The settings a scope takes, by name (its own, then those of other scopes it takes as well)."""
    if scope not in SCOPES:
        raise KeyError(scope)
    out: Dict[str, Setting] = {}
    for s in SETTINGS:
        if s.scope == scope:
            out[s.name] = s
    for s in SETTINGS:
        if scope in s.also:
            out.setdefault(s.name, s)
    return out


def setting(scope: str, name: str) -> Setting:
    return settings(scope)[name]


def defaults(scope: str) -> Dict[str, Any]:
    """Every setting of ``scope`` with its default (None where the default is worked out at run time)."""
    return {n: s.default for n, s in settings(scope).items()}


def validate(scope: str, values: Mapping[str, Any]) -> Dict[str, Any]:
    """THE check of a scope's settings: the given ``values`` checked and normalised, in a new dict.

    An unknown name or a bad value raises :class:`~mofka_py.InvalidArgument` naming the setting,
    its range and what was given.

    >>> validate("producer", {"linger_ms": 2})
    {'linger_ms': 2.0}
    """
    known = settings(scope)
    out: Dict[str, Any] = {}
    for name, value in values.items():
        s = known.get(name)
        if s is None:
            raise InvalidArgument(f"unknown {SCOPES[scope][0].lower()} setting {name!r} "
                                  f"(known: {', '.join(sorted(known))})")
        out[name] = s.validate(value)
    return out


def convert_deprecated(scope: str, old: str, value: Any) -> Tuple[str, Any]:
    """(new name, value converted) for a setting given under its deprecated name ``old`` (no warning)."""
    d = next(d for d in DEPRECATED if d.old == old and scope in d.scopes)
    return d.new, d.convert(value)


def take_deprecated(scope: str, old_values: Mapping[str, Any], values: Dict[str, Any], *, api: str,
                    stacklevel: int = 3) -> Dict[str, Any]:
    """Move settings given under an old name (``old_values``) to their new name in ``values``.

    Each one warns with a DeprecationWarning naming the new name. A name that is neither a setting
    nor an old name of one raises TypeError, as Python does for an unexpected keyword; an old name
    given together with its new one (set to something else than the default) raises InvalidArgument.
    """
    by_old = {d.old: d for d in DEPRECATED if scope in d.scopes}
    for old, value in old_values.items():
        d = by_old.get(old)
        if d is None:
            raise TypeError(f"{api}() got an unexpected keyword argument {old!r}")
        s = setting(scope, d.new)
        if values.get(d.new, s.default) != s.default:
            raise InvalidArgument(f"{old} is the deprecated name of {d.new}: give {d.new} only")
        warnings.warn(f"{api}: {old} is deprecated and will be removed in the next release; use {d.new} "
                      f"({d.note})", DeprecationWarning, stacklevel=stacklevel)
        values[d.new] = d.convert(value)
    return values


# ---- crossing into C++: each scope's settings go as ONE dict keyed by setting name ----
# The C++ side (csrc/bindings/convert.cpp) turns it into the scope's options struct, refusing a
# name it does not know; settings not given keep the struct's C++ default (_core.defaults(scope)).

def native(scope: str, cfg: Mapping[str, Any]) -> Dict[str, Any]:
    """The settings of ``cfg`` that a C++ options struct holds: those whose ``cpp`` names one field."""
    known = settings(scope)
    return {k: v for k, v in cfg.items() if re.fullmatch(r"\w+::\w+", known[k].cpp)}


def core_fabric(url: str, cfg: Mapping[str, Any]) -> Any:
    """A ``_core.Fabric`` from validated fabric settings."""
    from . import _core

    return _core.Fabric(url, native("fabric", cfg))


def core_mpi_fabric(comm: Any, ranks: List[int], storage: str, cfg: Mapping[str, Any]) -> Any:
    """A ``_core.MpiFabric`` (collective) from validated MPI-fabric settings."""
    from . import _core

    return _core.MpiFabric(comm, ranks, storage, native("mpi", cfg))


def core_topic_config(cfg: Mapping[str, Any]) -> Dict[str, Any]:
    """The settings dict ``_core.Fabric.create_topic`` and ``alter_topic`` take (only those given)."""
    return native("topic", cfg)


def core_producer(native_fabric: Any, topic: str, cfg: Mapping[str, Any]) -> Any:
    """A ``_core.Producer`` from validated producer settings."""
    from . import _core

    return _core.Producer(native_fabric, topic, native("producer", cfg))


def core_consumer(native_fabric: Any, topic: str, cfg: Mapping[str, Any]) -> Any:
    """A ``_core.Consumer`` from validated consumer settings (``data`` a bool or a byte range here)."""
    from . import _core

    return _core.Consumer(native_fabric, topic, native("consumer", cfg))


def core_server(url: str, host: str, port: int, token: str, cfg: Mapping[str, Any], node_id: str = "",
                **extra: Any) -> Any:
    """A ``_core.Server`` from validated service settings (``listen`` as ``host`` and ``port``);
    ``node_id``: its id in a replicated cluster ("" outside one); ``extra``: C++ server options
    that are not settings (``rejoin_grace_ms``)."""
    from . import _core

    return _core.Server(url, {**native("service", cfg), "host": host, "port": port, "token": token, **extra},
                        node_id)


# ---- the command line ----

def cli_type(scope: str, name: str) -> Callable[[str], Any]:
    """An argparse ``type=`` that reads a setting's value and checks it with the registry."""
    s = setting(scope, name)

    def parse(text: str) -> Any:
        value: Any = text
        if s.kind == "int":
            try:
                value = int(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{text!r} is not a whole number ({s.name}: "
                                                 f"{s.describe_range()})") from None
        elif s.kind == "number":
            try:
                value = float(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{text!r} is not a number ({s.name}: "
                                                 f"{s.describe_range()})") from None
        try:
            return s.validate(value)
        except InvalidArgument as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    parse.__name__ = name   # argparse names the type in its messages
    return parse


def add_flag(parser: Any, scope: str, name: str, *, default: Any = "registry", help: Optional[str] = None,
             **kw: Any) -> Any:
    """Add the command-line flag of a setting: its name with dashes, its choices or range and its meaning
    from the registry. ``default="registry"`` uses the registry's default (None: the flag is optional)."""
    s = setting(scope, name)
    flag = s.cli.split(",")[0].strip() or "--" + name.replace("_", "-")
    text = help or s.meaning
    if s.unit:
        text += f" [{s.unit}]"
    if s.kind in ("int", "number"):
        text += f" [{s.describe_range()}]"
    value = s.default if default == "registry" else default
    if value is not None:
        text += " (default: %(default)s)"
    kw.setdefault("type", cli_type(scope, name))
    if kw.get("dest") is None:
        kw.pop("dest", None)
    if s.kind == "choice":
        kw.setdefault("choices", list(s.choices))
    elif "metavar" not in kw:
        kw["metavar"] = {"ms": "MS", "bytes": "BYTES"}.get(s.unit, "N" if s.kind == "int" else name.upper())
    return parser.add_argument(flag, default=value, help=text, **kw)


# ---- the documentation ----

_DOC_HEAD = """\
# Configuration

Every setting of mofka-py has ONE name, used by the Python API, the C++ core
(the same words in camelCase), the command line (the same words with dashes)
and the bridge configuration, as librdkafka's CONFIGURATION.md does for Kafka.

- Settings that are durations end in `_ms` and take milliseconds (Kafka's
  style: `linger_ms`, `request_timeout_ms`, `session_timeout_ms`). The
  per-call timeouts of blocking methods — `Producer.flush(timeout)`,
  `Producer.close(timeout)`, `Future.result(timeout)`,
  `Consumer.pull(timeout)` — are seconds, as everywhere in Python.
- A bad value raises `mofka_py.InvalidArgument` (in a bridge configuration
  `ConfigError`, naming the line) that names the setting, its range and what
  was given; nothing is written.
- Names changed in this release keep working for one release with a
  `DeprecationWarning` naming the new one:
{deprecated}

This page is generated from the registry in `python/mofka_py/_settings.py`
(`mofka-py settings --markdown > docs/configuration.md`); a unit test fails
when the two differ. `mofka-py settings [SCOPE]` lists them at a terminal.
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|") if text else "—"


def markdown() -> str:
    """docs/configuration.md: one table per scope."""
    dep = "\n".join(f"  - `{d.old}` → `{d.new}` ({d.note}; {', '.join(SCOPES[s][0] for s in d.scopes)})"
                    for d in DEPRECATED)
    lines: List[str] = [_DOC_HEAD.format(deprecated=dep)]
    for scope, (title, where) in SCOPES.items():
        lines.append(f"## {title}\n")
        lines.append(f"Taken by {where}.\n")
        lines.append("| name | type/unit | default | range | meaning | also taken by | CLI flag | bridge key "
                     "| C++ field |")
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for s in SETTINGS:
            if s.scope != scope:
                continue
            cpp = f"`{s.cpp}`" if s.cpp else ""
            if s.cpp_scale != 1:
                cpp += f" (× {s.cpp_scale})"
            also = ", ".join(SCOPES[a][0] for a in s.also)
            lines.append(" | ".join([
                f"| `{s.name}`", _cell(s.describe_type()), _cell(f"`{s.describe_default()}`"),
                _cell(s.describe_range()), _cell(s.meaning), _cell(also),
                _cell(f"`{s.cli}`" if s.cli else ""), _cell(f"`{s.bridge}`" if s.bridge else ""),
                _cell(cpp)]) + " |")
        lines.append("")
    return "\n".join(lines)
