"""Bridge configuration: a TOML file (or a dict) of endpoints and rules, checked before anything runs.

Every mistake is reported as :class:`ConfigError` naming the file and line
(``bridge.toml:14: rule 'up': unknown endpoint 'clod' in to = "clod/frames"``).
See docs/bridge.md for the format.
"""
from __future__ import annotations

import importlib
import os
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from .. import _settings
from ..errors import InvalidArgument
from .diaspora_config import bridge_dict, is_diaspora_config
from .expr import ExpressionError, compile_filter
from .kafka import CALLBACK_KEYS, base_conf, check_librdkafka
from .kafka_endpoint import recovery_consumer_conf, sink_producer_conf, source_consumer_conf
from .model import DATA_POLICIES, PARTITION_MAPS, ConfigError, Endpoint, Rule, flatten_settings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.9/3.10 only
    import tomli as tomllib

__all__ = ["ConfigError", "Endpoint", "Rule", "BridgeConfig", "load_config", "DATA_POLICIES", "PARTITION_MAPS"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_FUNC_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass
class BridgeConfig:
    """A whole, checked bridge configuration."""

    site: str
    endpoints: Dict[str, Endpoint]
    rules: List[Rule]
    state_dir: Path
    site_key: str = "site"
    recovery_scan_limit: int = 1_000_000
    status_interval: float = 1.0
    connect_timeout: float = 10.0
    retry_max_s: float = 30.0
    log_repeat_s: float = 30.0      # one kind of log message at most once per this many seconds
    path: Optional[str] = None

    def where(self, *path: Any) -> str:
        return self._lines.where(*path) if self._lines else ".".join(str(p) for p in path)

    _lines: Any = None


class _Lines:
    """Finds the line of a key or table in the TOML text (tomllib keeps no positions)."""

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    _KEY = re.compile(r"""^\s*(?:"([^"]+)"|'([^']+)'|([A-Za-z0-9_.\-]+))\s*=""")

    def __init__(self, text: str, path: str):
        self.path = path
        self.headers: Dict[Tuple[str, int], int] = {}
        self.keys: Dict[Tuple[str, int, str], int] = {}
        counts: Dict[str, int] = {}
        section: Tuple[str, int] = ("", 0)
        for n, line in enumerate(text.splitlines(), 1):
            m = self._HEADER.match(line)
            if m:
                name = re.sub(r"""\s*\.\s*""", ".", m.group(2)).replace('"', "").replace("'", "")
                idx = counts.get(name, 0) if m.group(1) == "[[" else 0
                counts[name] = idx + 1
                section = (name, idx)
                self.headers[section] = n
                continue
            k = self._KEY.match(line)
            if k:
                key = k.group(1) or k.group(2) or k.group(3)
                self.keys.setdefault((section[0], section[1], key), n)

    def line(self, *path: Any) -> Optional[int]:
        if path and path[0] == "rules" and len(path) >= 2 and isinstance(path[1], int):
            sec = ("rules", path[1])
            if len(path) >= 3 and (sec[0], sec[1], path[2]) in self.keys:
                return self.keys[(sec[0], sec[1], path[2])]
            return self.headers.get(sec)
        names = [str(p) for p in path]
        for cut in range(len(names) - 1, -1, -1):
            header = ".".join(names[:cut])
            if cut < len(names) and (header, 0, names[cut]) in self.keys:
                return self.keys[(header, 0, names[cut])]
            if (header, 0) in self.headers and cut > 0:
                return self.headers[(header, 0)]
        return None

    def where(self, *path: Any) -> str:
        n = self.line(*path)
        return f"{self.path}:{n}" if n else f"{self.path}"


def _load_ref(ref: str, what: str) -> Callable[..., Any]:
    mod_name, fn_name = ref.split(":")
    try:
        mod = importlib.import_module(mod_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is a config error
        raise ValueError(f"{what} {ref!r}: cannot import module {mod_name!r}: {exc}") from None
    fn = getattr(mod, fn_name, None)
    if not callable(fn):
        raise ValueError(f"{what} {ref!r}: module {mod_name!r} has no function {fn_name!r}")
    return fn


def _positive_int(value: Any, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum} (got {value!r})")
    return value


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{name} must be a non-negative number (got {value!r})")
    return float(value)


# A rule's settings are those of the registry's "rule" scope (docs/configuration.md); these say what it forwards.
_RULE_STRUCTURE = {"name", "from", "to", "filter", "transform"}
_RULE_RENAMED = {d.old: d.new for d in _settings.DEPRECATED if "rule" in d.scopes}   # old name -> new
_RULE_KEYS = _RULE_STRUCTURE | set(_settings.settings("rule")) | set(_RULE_RENAMED)
_ENDPOINT_KEYS = {"url", "librdkafka", "token_file"}
_BRIDGE_KEYS = {"site", "state_dir", "site_key", "recovery_scan_limit", "status_interval", "connect_timeout",
                "retry_max_s", "partition_map", "log_repeat_s"}


def _partition_map(value: Any) -> str:
    if value not in PARTITION_MAPS:
        raise ValueError(f"partition_map must be one of {', '.join(repr(m) for m in PARTITION_MAPS)} (got {value!r}); "
                         f"docs/bridge.md says how to move from v1 to v2")
    return value


def load_config(source: Union[str, os.PathLike, Dict[str, Any]], *,
                fabrics: Optional[Dict[str, Any]] = None) -> BridgeConfig:
    """Read and check a bridge configuration (a TOML path, or the same structure as a dict; a
    ``.yaml``/``.yml`` path is read as a ``diaspora-ctl forward`` configuration).

    ``fabrics`` maps endpoint names to already open :class:`mofka_py.Fabric`
    objects (e.g. an MPI job's in-memory fabric, for spooling); such an
    endpoint needs no ``url`` in the configuration.

    >>> cfg = load_config({"bridge": {"site": "lab"}, "endpoints": {"a": {"url": "memory://"}},
    ...                    "rules": []})
    """
    fabrics = dict(fabrics or {})
    if isinstance(source, dict):
        data, lines, path, base = source, None, "<config>", Path.cwd()
    else:
        path = str(source)
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read bridge config {path}: {exc.strerror}") from None
        if is_diaspora_config(path):   # a diaspora-ctl forward YAML file
            data, lines = bridge_dict(text, path), None
        else:
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{path}: not valid TOML: {exc}") from None
            lines = _Lines(text, path)
        base = Path(path).resolve().parent

    def where(*p: Any) -> str:
        return lines.where(*p) if lines else f"{path}: " + ".".join(
            f"[{x}]" if isinstance(x, int) else str(x) for x in p)

    def fail(msg: str, *p: Any) -> ConfigError:
        return ConfigError(f"{where(*p)}: {msg}")

    for key in data:
        if key not in ("bridge", "endpoints", "rules"):
            raise fail(f"unknown section [{key}] (expected [bridge], [endpoints.NAME], [[rules]])", key)
    bridge = data.get("bridge", {})
    for key in bridge:
        if key not in _BRIDGE_KEYS:
            raise fail(f"unknown setting {key!r} in [bridge] (known: {', '.join(sorted(_BRIDGE_KEYS))})", "bridge", key)
    site = bridge.get("site")
    if not isinstance(site, str) or not _NAME.match(site):
        raise fail("[bridge] needs site = \"NAME\" (letters, digits, '.', '_', '-'): it tags every forwarded event",
                   "bridge", "site")
    try:
        default_map = _partition_map(bridge.get("partition_map", PARTITION_MAPS[-1]))
    except ValueError as exc:
        raise fail(str(exc), "bridge", "partition_map") from None
    if str(base) not in sys.path:
        sys.path.insert(0, str(base))   # transforms and filters next to the config import without PYTHONPATH

    endpoints: Dict[str, Endpoint] = {}
    for name, ep in data.get("endpoints", {}).items():
        if not isinstance(ep, dict):
            raise fail(f"endpoint {name!r} must be a table with url = \"...\"", "endpoints", name)
        for key in ep:
            if key not in _ENDPOINT_KEYS:
                raise fail(f"unknown setting {key!r} in endpoint {name!r} (known: url, librdkafka, token_file)",
                           "endpoints", name, key)
        url = ep.get("url")
        if name in fabrics:
            endpoints[name] = Endpoint(name, "fabric", url or f"<{name}>", fabric=fabrics.pop(name),
                                       where=where("endpoints", name))
            continue
        if not isinstance(url, str):
            raise fail(f"endpoint {name!r} needs url = \"file:///path\" | \"tcp://host:port\" | \"kafka://host:port\"",
                       "endpoints", name)
        if url.startswith("kafka://"):
            if not url[len("kafka://"):]:
                raise fail(f"endpoint {name!r}: kafka:// URL needs host:port", "endpoints", name, "url")
            settings = ep.get("librdkafka", {})
            if not isinstance(settings, dict):
                raise fail("librdkafka must be a table of librdkafka settings", "endpoints", name, "librdkafka")
            endpoints[name] = Endpoint(name, "kafka", url, settings=flatten_settings(settings),
                                       where=where("endpoints", name, "url"))
        elif url.startswith(("file://", "tcp://", "memory://")):
            if "librdkafka" in ep:
                raise fail(f"endpoint {name!r} is a fabric; librdkafka settings apply to kafka:// only",
                           "endpoints", name, "librdkafka")
            endpoints[name] = Endpoint(name, "fabric", url, token_file=ep.get("token_file"),
                                       where=where("endpoints", name, "url"))
        else:
            raise fail(f"endpoint {name!r}: unsupported URL {url!r} (file://, tcp://, memory:// or kafka://)",
                       "endpoints", name, "url")
    for name, fab in fabrics.items():
        endpoints[name] = Endpoint(name, "fabric", f"<{name}>", fabric=fab, where=f"fabrics[{name!r}]")

    def endpoint_topic(text: Any, idx: int, key: str, rule: str) -> Tuple[Endpoint, str]:
        if not isinstance(text, str) or text.count("/") != 1:
            raise fail(f"rule {rule!r}: {key} must be \"ENDPOINT/TOPIC\" (got {text!r})", "rules", idx, key)
        ep_name, topic = text.split("/")
        if ep_name not in endpoints:
            known = ", ".join(sorted(endpoints)) or "none"
            raise fail(f"rule {rule!r}: unknown endpoint {ep_name!r} in {key} = {text!r} (known: {known})",
                       "rules", idx, key)
        if not _NAME.match(topic):
            raise fail(f"rule {rule!r}: invalid topic name {topic!r} in {key}", "rules", idx, key)
        return endpoints[ep_name], topic

    rules: List[Rule] = []
    raw_rules = data.get("rules", [])
    if not isinstance(raw_rules, list):
        raise fail("rules must be an array of tables: [[rules]]", "rules")
    names = set()
    for i, r in enumerate(raw_rules):
        name = r.get("name", f"rule{i + 1}")
        if not isinstance(name, str) or not _NAME.match(name) or name in names:
            raise fail(f"rule name {name!r} must be unique (letters, digits, '.', '_', '-')", "rules", i, "name")
        names.add(name)
        for key in r:
            if key not in _RULE_KEYS:
                raise fail(f"rule {name!r}: unknown setting {key!r} (known: {', '.join(sorted(_RULE_KEYS))})",
                           "rules", i, key)
        if "from" not in r or "to" not in r:
            raise fail(f"rule {name!r} needs from = \"ENDPOINT/TOPIC\" (or a list) and to = \"ENDPOINT/TOPIC\"",
                       "rules", i)
        froms = r["from"] if isinstance(r["from"], list) else [r["from"]]
        if not froms:
            raise fail(f"rule {name!r}: from is empty", "rules", i, "from")
        sources = [endpoint_topic(f, i, "from", name) for f in froms]
        target = endpoint_topic(r["to"], i, "to", name)
        for ep, topic in sources:
            if (ep.name, topic) == (target[0].name, target[1]):
                raise fail(f"rule {name!r} forwards {ep.name}/{topic} into itself", "rules", i, "to")
        rule = Rule(name, sources, target, where=where("rules", i))
        try:
            flt = r.get("filter")
            if flt is not None:
                if not isinstance(flt, str):
                    raise ValueError("filter must be a string: an expression or module:function")
                rule.filter_text = flt
                rule.filter = _load_ref(flt, "filter") if _FUNC_REF.match(flt.strip()) else compile_filter(flt)
        except (ExpressionError, ValueError) as exc:
            raise fail(f"rule {name!r}: bad filter: {exc}", "rules", i, "filter") from None
        if "transform" in r:
            tr = r["transform"]
            if not isinstance(tr, str) or not _FUNC_REF.match(tr):
                raise fail(f"rule {name!r}: transform must be \"module:function\" (got {tr!r})", "rules", i, "transform")
            try:
                rule.transform = _load_ref(tr, "transform")
            except ValueError as exc:
                raise fail(f"rule {name!r}: {exc}", "rules", i, "transform") from None
        values: Dict[str, Any] = {"group": f"mofka-bridge.{site}.{name}", "partition_map": default_map}
        for key, value in r.items():
            if key in _RULE_STRUCTURE:
                continue
            new = _RULE_RENAMED.get(key, key)
            try:
                if new != key:
                    if new in r:
                        raise InvalidArgument(f"{key} is the deprecated name of {new}: give {new} only")
                    warnings.warn(f"{where('rules', i, key)}: rule {name!r}: {key} is deprecated and will be removed "
                                  f"in the next release; use {new}", DeprecationWarning, stacklevel=2)
                    value = _settings.convert_deprecated("rule", key, value)[1]
                values.update(_settings.validate("rule", {new: value}))
            except InvalidArgument as exc:
                raise fail(f"rule {name!r}: {exc}", "rules", i, key) from None
        for key, default in _settings.defaults("rule").items():
            setattr(rule, key, values.get(key, default))
        rules.append(rule)

    try:
        state_dir = Path(bridge.get("state_dir") or (
            (base / (Path(path).stem + ".bridge-state")) if lines else Path.cwd() / f".mofka-bridge-{site}"))
        cfg = BridgeConfig(
            site=site, endpoints=endpoints, rules=rules, state_dir=state_dir,
            site_key=str(bridge.get("site_key", "site")),
            recovery_scan_limit=_positive_int(bridge.get("recovery_scan_limit", 1_000_000), "recovery_scan_limit"),
            status_interval=_number(bridge.get("status_interval", 1.0), "status_interval") or 1.0,
            connect_timeout=_number(bridge.get("connect_timeout", 10.0), "connect_timeout") or 10.0,
            retry_max_s=_number(bridge.get("retry_max_s", 30.0), "retry_max_s") or 30.0,
            log_repeat_s=_number(bridge.get("log_repeat_s", 30.0), "log_repeat_s"),
            path=path)
    except ValueError as exc:
        raise fail(str(exc), "bridge", str(exc).split(" ")[0]) from None
    cfg._lines = lines
    _check_librdkafka(cfg, fail)
    return cfg


def _check_librdkafka(cfg: BridgeConfig, fail: Callable[..., ConfigError]) -> None:
    """Create, offline, every Kafka client the bridge will create, so that librdkafka's objections to a
    setting (a misspelt property, a bad value, a CA file missing) name its line before anything runs."""
    kafka = [ep for ep in cfg.endpoints.values() if ep.kind == "kafka"]
    if not kafka:
        return
    try:
        import confluent_kafka  # noqa: F401 - only whether it is there
    except ImportError:
        raise fail(f"endpoint {kafka[0].name!r} is kafka://, which needs confluent-kafka: pip install confluent-kafka",
                   "endpoints", kafka[0].name, "url") from None
    for ep in kafka:
        for key, value in ep.settings.items():
            if key in CALLBACK_KEYS and not callable(value):
                raise fail(f"endpoint {ep.name!r}: librdkafka setting {key!r} takes a Python callable; set it "
                           f"through the Python API (Bridge({{...}}) with a function), not in a file",
                           "endpoints", ep.name, "librdkafka", key)
        clients: List[Tuple[str, Callable[[Dict[str, Any]], Dict[str, Any]]]] = [
            ("admin", lambda s, ep=ep: base_conf(ep.bootstrap, s, None))]
        for rule in cfg.rules:
            if any(src is ep for src, _ in rule.sources):
                clients.append(("consumer", lambda s, ep=ep, r=rule: source_consumer_conf(ep, r, settings=s)))
            if rule.target[0] is ep:
                clients.append(("producer", lambda s, ep=ep, r=rule: sink_producer_conf(ep, r, settings=s)))
                clients.append(("consumer", lambda s, ep=ep, r=rule: recovery_consumer_conf(ep, r, settings=s)))
        problem = check_librdkafka(ep.settings, clients)
        if problem is None:
            continue
        key, message = problem
        hint = ""
        if "No such configuration property" in message:
            hint = (" (check the spelling; the properties are listed in "
                    "https://github.com/confluentinc/librdkafka/blob/master/CONFIGURATION.md)")
        if key is None:
            raise fail(f"endpoint {ep.name!r}: librdkafka refuses these settings together: {message}",
                       "endpoints", ep.name, "librdkafka")
        raise fail(f"endpoint {ep.name!r}: librdkafka setting {key!r} = {ep.settings[key]!r}: {message}{hint}",
                   "endpoints", ep.name, "librdkafka", key)


def endpoints_used(cfg: BridgeConfig) -> Sequence[Endpoint]:
    """Endpoints some rule reads from or writes to, in first-use order."""
    seen: Dict[str, Endpoint] = {}
    for rule in cfg.rules:
        for ep, _ in rule.sources + [rule.target]:
            seen.setdefault(ep.name, ep)
    return list(seen.values())
