"""The bridge configuration's types: endpoints, rules, and the error a wrong configuration raises.

Apart from config.py (which reads and checks a configuration), so that the modules built on these
types (endpoint, kafka_endpoint, diaspora_config) do not import the reader back.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from .. import _settings
from ..errors import InvalidArgument

DATA_POLICIES = _settings.setting("rule", "data").choices
# How a source partition picks its target partition (see endpoint.target_partition); the last is the default.
PARTITION_MAPS = _settings.setting("rule", "partition_map").choices


class ConfigError(InvalidArgument):
    """The bridge configuration is wrong; the message names the line (nothing was forwarded)."""


@dataclass
class Endpoint:
    """One place events live: a mofka-py fabric (file://, tcp://, memory://, or a Fabric object) or a Kafka cluster."""

    name: str
    kind: str                       # "fabric" | "kafka"
    url: str
    settings: Dict[str, Any] = field(default_factory=dict)   # librdkafka settings passed through
    token_file: Optional[str] = None
    fabric: Any = None              # an open mofka_py.Fabric given through the Python API
    where: str = ""

    @property
    def bootstrap(self) -> str:
        return self.url[len("kafka://"):]


@dataclass
class Rule:
    """Forward events from one or more source topics to one target topic."""

    name: str
    sources: List[Tuple[Endpoint, str]]
    target: Tuple[Endpoint, str]
    filter: Optional[Callable[[Any], bool]] = None
    filter_text: Optional[str] = None
    transform: Optional[Callable[[Any, Any], Any]] = None
    data: str = "forward"
    batch_size: int = 10000         # events per round (the commit unit); the target producer's batch_size
    linger_ms: float = 5.0
    rate_limit: float = 0.0         # events per second, 0 = unlimited
    rate_limit_bytes: float = 0.0   # bytes per second, 0 = unlimited
    group: str = ""
    start: str = "earliest"
    partitions: int = 0             # partitions of a target topic the bridge creates (0: like the source)
    partition_map: str = PARTITION_MAPS[-1]
    where: str = ""


def flatten_settings(settings: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    """librdkafka settings as one flat table: TOML reads an unquoted ``compression.type = ...`` as nested
    tables, and a librdkafka property name is always the dotted path."""
    out: Dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            out.update(flatten_settings(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
