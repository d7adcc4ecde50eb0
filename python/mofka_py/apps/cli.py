"""``mofka-py app NAME`` (campaign, instrument, astro) and ``mofka-py app all``."""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import time
from typing import Any, List

from . import APPS
from ._report import Report, summary


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--faults", action="store_true", help="inject the application's failures while it runs")
    p.add_argument("--quick", action="store_true", help="a short run (tens of seconds)")
    p.add_argument("--out", default="mofka-py-apps", help="directory for the plots and the report")
    p.add_argument("--keep", action="store_true", help="keep the working directory (fabric data, logs)")


def _run_one(name: str, args: argparse.Namespace) -> Report:
    mod = importlib.import_module(APPS[name])
    t0 = time.monotonic()
    report = mod.run(args)
    report.add("wall time", f"{time.monotonic() - t0:.1f} s")
    print(report.render())
    return report


def _sigterm_as_interrupt() -> None:
    """SIGTERM stops an application like Ctrl-C, so what it started is stopped by its cleanup."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        def handler(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, handler)


def cmd_app(args: argparse.Namespace) -> int:
    _sigterm_as_interrupt()
    if args.app != "all":
        return 0 if _run_one(args.app, args).ok else 1
    reports: List[Report] = []
    for name in args.parsers:
        sub_args = args.parsers[name].parse_args(["--quick", "--out", args.out] + (["--faults"] if args.faults else []))
        reports.append(_run_one(name, sub_args))
    print("\n== summary")
    print(summary(reports))
    ok = all(r.ok for r in reports)
    print("apps OK" if ok else "apps FAILED")
    return 0 if ok else 1


def add_parser(sub: Any, formatter: Any) -> None:
    """Register ``mofka-py app``."""
    a = sub.add_parser("app", help="run a science application (campaign, instrument, astro, or all)",
                       formatter_class=formatter)
    apps = a.add_subparsers(dest="app", metavar="APP", required=True)
    parsers = {}
    for name, module in APPS.items():
        if importlib.util.find_spec(module) is None:
            continue  # not part of this build
        mod = importlib.import_module(module)
        p = apps.add_parser(name, help=mod.__doc__.strip().splitlines()[0], formatter_class=formatter)
        _common(p)
        mod.add_arguments(p)
        p.set_defaults(func=cmd_app)
        parsers[name] = p
    everything = apps.add_parser("all", help="the three, short, one after the other, with one summary table",
                                 formatter_class=formatter)
    everything.add_argument("--faults", action="store_true", help="inject each application's failures")
    everything.add_argument("--out", default="mofka-py-apps", help="directory for the plots and the reports")
    everything.set_defaults(func=cmd_app, parsers=parsers)
