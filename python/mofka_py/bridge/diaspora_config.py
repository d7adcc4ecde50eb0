"""``diaspora-ctl forward`` configurations (YAML) read as bridge configurations.

A Diaspora forwarding file names drivers and forwarding policies::

    drivers:
      local:  {type: files, options: {root_path: /data/local}}
      remote: {type: octopus, options: {kafka: {bootstrap.servers: "kafka:9092"}}}
    forward:
      - {from: local/source-topic, to: remote/dest-topic}

Each driver becomes an endpoint (``files`` -> ``file://root_path``, ``mofka_py`` ->
its ``url``, ``octopus``/``kafka`` -> ``kafka://`` with the other options as
librdkafka settings) and each policy a rule; the bridge then forwards them
exactly once. An optional ``bridge:`` mapping takes the TOML file's ``[bridge]``
settings, and a policy may carry any rule setting (``filter``, ``batch_size``, ...).
See docs/bridge.md and docs/diaspora-migration.md.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Dict, List

from .model import ConfigError, flatten_settings

__all__ = ["is_diaspora_config", "bridge_dict"]

_SUFFIXES = (".yaml", ".yml")
_KAFKA_TYPES = ("octopus", "kafka")


def is_diaspora_config(path: str) -> bool:
    """Whether ``path`` is read as a ``diaspora-ctl forward`` YAML file (by its suffix)."""
    return Path(path).suffix.lower() in _SUFFIXES


def _endpoint(name: str, driver: Any, fail: Any) -> Dict[str, Any]:
    """The bridge endpoint of one Diaspora driver."""
    if not isinstance(driver, dict) or not isinstance(driver.get("type"), str):
        raise fail(f"driver {name!r} needs type: files | mofka_py | octopus | kafka, and options:")
    kind, options = driver["type"], driver.get("options") or {}
    if not isinstance(options, dict):
        raise fail(f"driver {name!r}: options must be a mapping")
    if kind == "files":
        root = options.get("root_path")
        if not isinstance(root, str) or not root:
            raise fail(f"driver {name!r} (files) needs options: {{root_path: /path}}")
        return {"url": "file://" + os.path.abspath(root)}
    if kind in ("mofka_py", "mofka-py"):
        if not isinstance(options.get("url"), str):
            raise fail(f"driver {name!r} (mofka_py) needs options: {{url: tcp://host:port | file:///path}}")
        endpoint = {"url": options["url"]}
        if "token_file" in options:
            endpoint["token_file"] = options["token_file"]
        return endpoint
    if kind in _KAFKA_TYPES:
        settings = flatten_settings(options.get("kafka", {}) if kind == "octopus" else options)
        bootstrap = settings.pop("bootstrap.servers", None) or settings.pop("bootstrap", None)
        if not isinstance(bootstrap, str) or not bootstrap:
            where = "kafka: {bootstrap.servers: host:port}" if kind == "octopus" else "bootstrap: host:port"
            raise fail(f"driver {name!r} ({kind}) needs options: {{{where}}}")
        endpoint = {"url": f"kafka://{bootstrap}"}
        if settings:
            endpoint["librdkafka"] = settings
        return endpoint
    if kind == "mofka":
        raise fail(f"driver {name!r}: Mofka (Mochi) services are not reachable from mofka-py; run the producers "
                   "on mofka_py.diaspora with a mofka_py driver (docs/diaspora-migration.md)")
    raise fail(f"driver {name!r}: unknown type {kind!r} (files, mofka_py, octopus or kafka)")


def bridge_dict(text: str, path: str) -> Dict[str, Any]:
    """The bridge configuration (the TOML structure, as a dict) of a ``diaspora-ctl forward`` YAML text.

    Raises :class:`~mofka_py.bridge.ConfigError` naming ``path`` and what to change.

    >>> cfg = bridge_dict("drivers: {a: {type: files, options: {root_path: /d}}}\\n"
    ...                   "forward: [{from: a/x, to: a/y}]", "fwd.yaml")
    >>> cfg["rules"]
    [{'name': 'forward-1', 'from': 'a/x', 'to': 'a/y'}]
    """
    def fail(message: str) -> ConfigError:
        return ConfigError(f"{path}: {message}")

    try:
        import yaml
    except ImportError:
        raise fail("reading a diaspora-ctl YAML configuration needs PyYAML: pip install pyyaml") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise fail(f"not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("drivers"), dict) or "forward" not in data:
        raise fail("a diaspora-ctl forward configuration needs drivers: (a mapping) and forward: (a list)")
    for key in data:
        if key not in ("drivers", "forward", "bridge"):
            raise fail(f"unknown section {key!r} (expected drivers, forward and optionally bridge)")
    bridge = dict(data.get("bridge") or {})
    stem = Path(path).stem
    bridge.setdefault("site", re.sub(r"[^A-Za-z0-9._-]", "-", stem).lstrip(".-_") or "diaspora")
    bridge.setdefault("state_dir", str(Path(path).resolve().parent / f"{stem}.bridge-state"))
    endpoints = {name: _endpoint(str(name), driver, fail) for name, driver in data["drivers"].items()}
    policies = data["forward"]
    if not isinstance(policies, list):
        raise fail("forward must be a list of {from: DRIVER/TOPIC, to: DRIVER/TOPIC}")
    rules: List[Dict[str, Any]] = []
    for i, policy in enumerate(policies):
        if not isinstance(policy, dict):
            raise fail(f"forward[{i}] must be a mapping with from: and to:")
        for key in ("data_selector", "data_allocator"):
            if key in policy:
                raise fail(f"forward[{i}]: {key} plugins (library.so:function) cannot be loaded by the bridge; "
                           "drop it (events are forwarded whole), or use a TOML configuration with data = "
                           "'drop'/'metadata', filter or transform (docs/bridge.md)")
        rule = {"name": policy.get("name", f"forward-{i + 1}")}
        rule.update({k: v for k, v in policy.items() if k != "name"})
        rules.append(rule)
    return {"bridge": bridge, "endpoints": endpoints, "rules": rules}
