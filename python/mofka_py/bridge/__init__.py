"""Hierarchical forwarding: job fabric -> site service -> cloud Kafka, and steering commands back down.

A bridge reads source topics with a consumer group, forwards each event to a
target topic (fabric or Kafka) tagged with its site and its origin id
``SITE/TOPIC/PARTITION/OFFSET``, and commits the source only after the target
acknowledged; on start it skips what the target already holds, so every
source event lands exactly once even after ``kill -9``. See docs/bridge.md.

>>> from mofka_py.bridge import Bridge
>>> cfg = {"bridge": {"site": "lab"},
...        "endpoints": {"job": {"url": "memory://"}, "spool": {"url": "file:///tmp/spool"}},
...        "rules": [{"name": "spool", "from": "job/frames", "to": "spool/frames"}]}
>>> # with Bridge(cfg, fabrics={"job": fab}): ...      # doctest: +SKIP
"""
from __future__ import annotations

from .config import BridgeConfig, ConfigError, Endpoint, Rule, load_config
from .endpoint import DATA_HEADER, ORIGIN_FIELD, ORIGIN_HEADER, parse_origin, target_partition
from .expr import ExpressionError, compile_filter
from .runner import Bridge, read_status

__all__ = ["Bridge", "BridgeConfig", "ConfigError", "Endpoint", "Rule", "load_config", "read_status",
           "compile_filter", "ExpressionError", "parse_origin", "target_partition", "ORIGIN_HEADER",
           "DATA_HEADER", "ORIGIN_FIELD"]
