"""``mofka-py bridge [run] CONFIG.toml``, ``bridge check CONFIG.toml`` and ``bridge status CONFIG.toml``."""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any

from .._progress import table
from .config import load_config
from .runner import check, read_status, run

_ACTIONS = ("run", "check", "status")

DESCRIPTION = """\
Forward events between mofka-py fabrics and Kafka, exactly once (see docs/bridge.md).

forms:
  mofka-py bridge CONFIG.toml            run the bridge until SIGTERM/SIGINT (then drain and exit 0)
  mofka-py bridge run CONFIG.toml        the same
  mofka-py bridge check CONFIG.toml      check the configuration as a start would (settings,
                                         librdkafka properties, endpoints reachable, source topics
                                         present), forward nothing; exit 0 if it would start
  mofka-py bridge --config FWD.yaml      run a diaspora-ctl forward configuration (YAML: drivers and
                                         forward policies, docs/diaspora-migration.md)
  mofka-py bridge status CONFIG.toml     per rule of the bridge running CONFIG.toml: state,
                                         forwarded/filtered/duplicate counts, lag, rates, last error;
                                         exit 0 if that bridge is running

A configuration error exits 1 with the file, line and what to change, e.g.
  mofka-py: ConfigError: bridge.toml:17: rule 'up': unknown endpoint 'clod' in to = "clod/frames" ...
"""

EPILOG = """\
Messages (librdkafka's included) go to stderr, each kind at most once per [bridge] log_repeat_s
seconds (default 30) with a count of the repeats held back.
"""


def _human(n: float) -> str:
    for unit in ("", "k", "M", "G"):
        if abs(n) < 1000:
            return f"{n:.0f}{unit}" if unit == "" else f"{n:.1f}{unit}"
        n /= 1000.0
    return f"{n:.1f}T"


class _Format(logging.Formatter):
    """``mofka-py bridge: text`` for information, ``mofka-py bridge: warning: text`` above it."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno > logging.INFO:
            text = f"{record.levelname.lower()}: {text}"
        return f"mofka-py bridge: {text}"


def _setup_logging(level: str) -> None:
    """Send the ``mofka_py.bridge`` logger to stderr, unless the program already configured logging."""
    logger = logging.getLogger("mofka_py.bridge")
    logger.setLevel(level.upper())
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Format())
    logger.addHandler(handler)
    logger.propagate = False


def _status(config: str, as_json: bool) -> int:
    cfg = load_config(config)
    st = read_status(cfg)
    if st is None:
        print(f"bridge for site {cfg.site}: no status yet ({cfg.state_dir}); is it running?")
        return 1
    if as_json:
        print(json.dumps(st, indent=2, default=str))
        return 0 if st["alive"] else 1
    age = time.time() - st.get("updated", 0)
    print(f"bridge site {st['site']} pid {st['pid']}: {'running' if st['alive'] else 'NOT running'}, "
          f"status from {age:.1f}s ago")
    rows = []
    for r in st["routes"]:
        err = r.get("last_error") or ""
        if err and r.get("last_error_at"):
            err = f"{err} ({time.time() - r['last_error_at']:.0f}s ago)"
        rows.append((r["rule"], f"{r['source']} -> {r['target']}", r["state"], r["forwarded"], r["filtered"],
                     r["duplicates"], "?" if r["lag"] is None else r["lag"], f"{_human(r['rate_eps'])}/s",
                     f"{_human(r['rate_bps'])}B/s", err[:80]))
    print(table(rows, ["rule", "route", "state", "forwarded", "filtered", "dups", "lag", "events", "bytes",
                       "last error"]))
    return 0 if st["alive"] else 1


def cmd_bridge(args: argparse.Namespace) -> int:
    """Run, check or show the status of the bridge a configuration describes (see :data:`DESCRIPTION`)."""
    if args.config_file:   # --config FILE (diaspora-ctl forward's spelling)
        if args.config or args.action_or_config not in _ACTIONS + (None,):
            raise SystemExit("mofka-py bridge: give the configuration once: bridge [run|check|status] CONFIG "
                             "or bridge [run|check|status] --config CONFIG")
        args.action_or_config, args.config = args.action_or_config or "run", args.config_file
    if args.action_or_config is None:
        raise SystemExit("mofka-py bridge: give the bridge's configuration (mofka-py bridge CONFIG.toml, or "
                         "--config CONFIG.yaml for a diaspora-ctl forward file)")
    if args.action_or_config in _ACTIONS:
        action, config = args.action_or_config, args.config
        if not config:
            raise SystemExit(f"mofka-py bridge {action}: give the bridge's CONFIG.toml "
                             f"(mofka-py bridge {action} CONFIG.toml)")
    else:
        action, config = "run", args.action_or_config
        if args.config:
            raise SystemExit(f"mofka-py bridge: unknown form 'bridge {args.action_or_config} {args.config}'; "
                             f"use one of: bridge CONFIG.toml | bridge {{{','.join(_ACTIONS)}}} CONFIG.toml "
                             f"(mofka-py bridge --help)")
    if action == "status":
        return _status(config, args.json)
    _setup_logging(args.log_level)
    return check(config) if action == "check" else run(config)


def add_parser(sub: Any) -> None:
    """Register ``bridge`` on the CLI's subparsers."""
    b = sub.add_parser("bridge", help="forward events between fabrics and Kafka (bridge CONFIG.toml | bridge "
                                      "check|status CONFIG.toml)",
                       usage="%(prog)s [--log-level LEVEL] [--json] [run|check|status] (CONFIG.toml | --config CONFIG)",
                       description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("action_or_config", metavar="[run|check|status]", nargs="?",
                   help="what to do: run (the default: 'bridge CONFIG.toml' runs), check or status")
    b.add_argument("config", nargs="?", metavar="CONFIG.toml",
                   help="the bridge's TOML configuration (format: docs/bridge.md)")
    b.add_argument("--config", dest="config_file", metavar="CONFIG", default=None,
                   help="the configuration, as an option (as diaspora-ctl forward --config takes it); a .yaml/.yml "
                        "file is read as a diaspora-ctl forward configuration (docs/diaspora-migration.md); default: the "
                        "positional CONFIG")
    b.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info",
                   help="run/check: the least severe messages printed on stderr (default: %(default)s; debug also "
                        "shows what librdkafka logs when its 'debug' property is set)")
    b.add_argument("--json", action="store_true", default=False,
                   help="status: print the status as JSON instead of a table (default: a table)")
    b.set_defaults(func=cmd_bridge)
