"""``mofka-py worker``, ``mofka-py pool status`` and ``mofka-py health``."""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Callable

from .._progress import table
from ..errors import InvalidArgument


def cmd_worker(args: argparse.Namespace, fab: Any) -> int:
    from .worker import load_function, serve_worker

    methods = {}
    for spec in args.method:
        name, sep, target = spec.partition("=")
        if not sep:
            raise InvalidArgument(f"--method {spec!r}: write NAME=package.module:function")
        methods[name] = load_function(target)
    print(f"worker for pool {args.pool}: {', '.join(sorted(methods))} (concurrency {args.concurrency}, "
          f"{args.isolation} isolation); Ctrl-C or SIGTERM to stop", file=sys.stderr)
    serve_worker(fab, args.pool, methods, concurrency=args.concurrency, isolation=args.isolation,
                 worker_id=args.worker_id)
    return 0


def _show_status(fab: Any, name: str) -> None:
    from .pool import pool_status

    st = pool_status(fab, name)
    print(f"pool {name}: {st['submitted_attempts']} task attempt(s) submitted, {st['queued']} queued or running, "
          f"{st['outcomes']} outcome(s), {st['dead_lettered']} dead-lettered, {st['rate']:.0f} tasks/s done by live workers")
    rows = [(w, v["running"], v["done"], v["failed"], "-" if v["cpu"] is None else f"{v['cpu']:.0%}",
             f"{(v['rss'] or 0) / 1e6:.0f} MB") for w, v in sorted(st["workers"].items())]
    print(table(rows, ["worker", "running", "done", "failed", "cpu", "memory"]) if rows else "no live workers")


def cmd_pool(args: argparse.Namespace, fab: Any) -> int:
    if not args.watch:
        _show_status(fab, args.name)
        return 0
    try:
        while True:
            print("\033[2J\033[H", end="")
            _show_status(fab, args.name)
            time.sleep(args.watch)
    except KeyboardInterrupt:
        return 0


def cmd_health(args: argparse.Namespace, fab: Any) -> int:
    from .health import HealthMonitor

    monitor = HealthMonitor(fab, publish=args.publish, since="latest")
    end = None if args.follow else time.monotonic() + args.seconds
    print(f"watching heartbeats on __health{' (publishing events to __health.events)' if args.publish else ''}; "
          "Ctrl-C to stop", file=sys.stderr)
    try:
        while end is None or time.monotonic() < end:
            for ev in monitor.poll(0.2):
                last = ev.get("last") or {}
                print(f"{time.strftime('%H:%M:%S')} {ev['event']:<9} {ev['node']} ({ev.get('kind')}) {ev['reason']}"
                      f"  cpu={last.get('cpu')} queue={last.get('queue', '-')}", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        monitor.close()
    rows = [(n, v["state"], (v["last"] or {}).get("kind"), (v["last"] or {}).get("queue", "-"),
             (v["last"] or {}).get("cpu")) for n, v in sorted(monitor.nodes().items())]
    print(table(rows, ["node", "state", "kind", "queue", "cpu"]) if rows else "no heartbeats seen")
    return 0


def add_parsers(sub: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    """Register the commands; ``command(name, parent, **kw)`` makes a parser with the connection options."""
    w = command("worker", sub, help="run a pool worker: tasks of the given methods, from the fabric")
    w.add_argument("--pool", required=True, help="the pool's name")
    w.add_argument("--method", action="append", required=True, metavar="NAME=package.module:function",
                   help="a method this worker serves (repeat for several)")
    w.add_argument("--concurrency", type=int, default=1, help="tasks run at once")
    w.add_argument("--isolation", choices=["thread", "process"], default="thread",
                   help="run tasks in threads, or in child processes (a task that crashes, exhausts memory or "
                        "hangs past its timeout costs only itself)")
    w.add_argument("--worker-id", help="this worker's name in heartbeats and the group (default: host-pid)")
    w.set_defaults(func=None, fabric_func=cmd_worker)

    p = sub.add_parser("pool", help="show a compute pool's state", formatter_class=w.formatter_class)
    ps = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    st = command("status", ps, help="queued, running per worker, done, failed, dead-lettered, rate")
    st.add_argument("name", help="the pool's name")
    st.add_argument("--watch", type=float, metavar="SECONDS", help="refresh every SECONDS until Ctrl-C")
    st.set_defaults(func=None, fabric_func=cmd_pool)

    h = command("health", sub, help="node_up / node_down / slow events from the fabric's heartbeats, live")
    h.add_argument("--follow", action="store_true", help="keep watching until Ctrl-C")
    h.add_argument("--seconds", type=float, default=5.0, help="watch this long (without --follow)")
    h.add_argument("--publish", action="store_true", help="also publish the events to the __health.events topic")
    h.set_defaults(func=None, fabric_func=cmd_health)
