"""``mofka-py bridge CONFIG.toml`` (run) and ``mofka-py bridge status CONFIG.toml`` (per rule: lag, rates, errors)."""
from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any

from .._progress import table
from .config import load_config
from .runner import read_status, run


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


def cmd_bridge(args: argparse.Namespace) -> int:
    if args.action_or_config != "status":
        if args.config:
            raise SystemExit("mofka-py bridge: usage: mofka-py bridge CONFIG.toml | mofka-py bridge status CONFIG.toml")
        _setup_logging("info")
        return run(args.action_or_config)
    if not args.config:
        raise SystemExit("mofka-py bridge status: give the bridge's CONFIG.toml")
    cfg = load_config(args.config)
    st = read_status(cfg)
    if st is None:
        print(f"bridge for site {cfg.site}: no status yet ({cfg.state_dir}); is it running?")
        return 1
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


def add_parser(sub: Any) -> None:
    """Register ``bridge`` on the CLI's subparsers."""
    b = sub.add_parser("bridge", help="forward events between fabrics and Kafka (bridge CONFIG.toml | bridge status "
                                      "CONFIG.toml)")
    b.add_argument("action_or_config", metavar="CONFIG.toml|status")
    b.add_argument("config", nargs="?", metavar="CONFIG.toml")
    b.set_defaults(func=cmd_bridge)
