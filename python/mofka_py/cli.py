"""The ``mofka-py`` command line: topics, produce/consume JSON lines, bench, demo.

The fabric comes from ``--url`` or ``$MOFKA_PY_URL`` (e.g. ``file:///data/fab``).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time
import zlib
from typing import Any, Iterator, List, Optional

import orjson

from . import _settings, api
from ._progress import Progress, table
from .errors import Error, InvalidArgument


def _fabric(args: argparse.Namespace) -> api.Fabric:
    url = getattr(args, "url", None) or os.environ.get("MOFKA_PY_URL")
    if not url:
        raise InvalidArgument("no fabric: pass --url (e.g. file:///data/fab) or set MOFKA_PY_URL")
    from .service import read_token

    token = getattr(args, "token", None) or read_token(getattr(args, "token_file", None)) or None
    return api.connect(url, token=token)


def _confirm(args: argparse.Namespace, what: str) -> None:
    """Ask before destroying data: at a terminal a y/N question, elsewhere --yes is required."""
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise InvalidArgument(f"{what}: add --yes to confirm (no terminal to ask on)")
    answer = input(f"{what}? [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise InvalidArgument(f"{what}: not confirmed; nothing was changed")


def cmd_topic(args: argparse.Namespace) -> int:
    with _fabric(args) as fab:
        if args.action == "create":
            cfg = {}
            if args.retention_bytes is not None:
                cfg["retention_bytes"] = args.retention_bytes
            if args.retention_ms is not None:
                cfg["retention_ms"] = args.retention_ms
            if args.topic_sync:
                cfg["sync"] = args.topic_sync
            for name in ("replication", "min_insync"):
                if getattr(args, name) is not None:
                    cfg[name] = getattr(args, name)
            fab.create_topic(args.name, partitions=args.partitions, **cfg)
            print(f"created topic {args.name} with {args.partitions} partition(s)")
        elif args.action == "list":
            for name in fab.topics(system=args.all):
                print(name)
        elif args.action == "describe":
            d = fab.topic(args.name).describe()
            print(f"topic {d['name']}  complete={d['complete']}  sync={d['sync']}  "
                  f"retention_bytes={d['retention_bytes']}  retention_ms={d['retention_ms']}")
            rows = [(p["partition"], p["start_offset"], p["end_offset"], p["size_bytes"]) for p in d["partitions"]]
            print(table(rows, ["partition", "start", "end", "bytes"]))
        elif args.action == "delete":
            fab.topic(args.name)  # TopicNotFound before asking
            _confirm(args, f"delete topic {args.name} with all its events and consumer-group offsets")
            fab.delete_topic(args.name, force=args.force)
            print(f"deleted topic {args.name}")
        elif args.action == "purge":
            topic = fab.topic(args.name)
            _confirm(args, f"drop every event stored in topic {args.name}")
            print(f"purged {topic.purge()} event(s) from topic {args.name}")
        elif args.action == "alter":
            fab.topic(args.name).alter(retention_bytes=args.retention_bytes, retention_ms=args.retention_ms)
            d = fab.topic(args.name).describe()
            print(f"topic {args.name}: retention_bytes={d['retention_bytes']} retention_ms={d['retention_ms']}")
    return 0


def cmd_produce(args: argparse.Namespace) -> int:
    src = open(args.file, "rb") if args.file else sys.stdin.buffer
    lines: List[bytes] = []
    for n, line in enumerate(src, 1):
        line = line.strip()
        if not line:
            continue
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise InvalidArgument(f"line {n} is not JSON ({exc}); nothing was produced") from None
        lines.append(line)
    with _fabric(args) as fab:
        topic = fab.topic(args.topic)
        with topic.producer() as prod, Progress("producing", total=len(lines)) as bar:
            for line in lines:
                prod.push(line, partition=args.partition, key=args.key)
                bar.update()
    print(f"produced {len(lines)} event(s) to {args.topic}", file=sys.stderr)
    return 0


def cmd_consume(args: argparse.Namespace) -> int:
    out = sys.stdout.buffer
    count = 0
    with _fabric(args) as fab:
        topic = fab.topic(args.topic)
        start: Any = args.start
        if start and start.isdigit():
            start = int(start)
        with topic.consumer(args.group, start=start, data=bool(args.data)) as cons:
            while args.max is None or count < args.max:
                ev = cons.pull(timeout=None if args.follow else 0.5)
                if ev is None:
                    if args.follow and not cons.exhausted:
                        continue
                    break
                rec = {"partition": ev.partition, "offset": ev.offset}
                md = ev.metadata_bytes
                try:
                    rec["metadata"] = orjson.loads(md) if md else None
                except orjson.JSONDecodeError:
                    rec["metadata_hex"] = md.hex()
                if args.data:
                    rec["data_size"] = ev.data_size
                out.write(orjson.dumps(rec) + b"\n")
                out.flush()
                ev.ack()
                count += 1
    print(f"consumed {count} event(s)", file=sys.stderr)
    return 0


def _rate(n: float, secs: float) -> str:
    return f"{n / secs:,.0f}" if secs > 0 else "-"


@contextlib.contextmanager
def _scratch_topic(url: str, name: str, partitions: int, keep: bool) -> Iterator[api.Topic]:
    """A topic for bench/demo in the user's fabric, deleted afterwards (even on Ctrl-C) unless ``keep``."""
    with api.connect(url) as fab:
        topic = fab.create_topic(name, partitions=partitions)
        try:
            yield topic
        finally:
            if not keep:
                fab.delete_topic(name, force=True)


def cmd_bench(args: argparse.Namespace) -> int:
    import numpy as np

    url = getattr(args, "url", None) or os.environ.get("MOFKA_PY_URL") or "memory://"
    rows = []
    with _scratch_topic(url, f"bench-{os.getpid()}-{int(time.time())}", args.partitions, args.keep) as topic:
        payload = np.random.default_rng(0).integers(0, 255, args.size, dtype=np.uint8) if args.size else None
        meta = b'{"b":1}'
        with topic.producer() as prod, Progress("produce", total=args.events) as bar:
            t0 = time.perf_counter()
            step = max(1, args.events // 100)
            for i in range(args.events):
                prod.push(meta, data=payload)
                if i % step == 0:
                    bar.update(step)
            prod.flush()
            tp = time.perf_counter() - t0
        topic.mark_complete()
        got = 0
        with topic.consumer(data=bool(args.size)) as cons, Progress("consume", total=args.events) as bar:
            t0 = time.perf_counter()
            for _ in cons:
                got += 1
                if got % step == 0:
                    bar.update(step)
            tc = time.perf_counter() - t0
        gb = args.events * (args.size + len(meta)) / 1e9
        rows.append(("produce (push per event)", args.events, _rate(args.events, tp), f"{gb / tp:.3f}"))
        rows.append(("consume (iterate)", got, _rate(got, tc), f"{gb / tc:.3f}"))
    print(table(rows, ["phase", "events", "events/s", "GB/s"]))
    if args.keep:
        print(f"kept topic {topic.name} in {url}", file=sys.stderr)
    if got != args.events:
        print(f"error: consumed {got} of {args.events} events", file=sys.stderr)
        return 1
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """An instrument streams detector frames; a group of two analysis workers
    checks every frame's checksum and computes its mean intensity."""
    import numpy as np

    url = getattr(args, "url", None) or os.environ.get("MOFKA_PY_URL") or "memory://"
    shape = (args.frame_size, args.frame_size)
    total = args.frames
    print(f"mofka-py demo: {total} frames of {shape[0]}x{shape[1]} uint16 "
          f"({total * shape[0] * shape[1] * 2 / 1e6:.1f} MB) through {url}")
    with _scratch_topic(url, f"frames-{os.getpid()}", 4, args.keep) as topic:
        results: List[tuple] = []
        lock = threading.Lock()
        errors: List[str] = []

        def worker(idx: int) -> None:
            try:
                with topic.consumer("analysis") as cons:  # the group's committed positions: shared work
                    for ev in cons:
                        md = ev.metadata
                        frame = np.frombuffer(ev.data, dtype=np.uint16)
                        ok = zlib.crc32(ev.data) == md["crc32"]
                        with lock:
                            results.append((idx, ev.partition, md["frame"], ok, float(frame.mean())))
                        ev.ack()
            except Error as exc:  # pragma: no cover - shown to the user
                errors.append(str(exc))

        workers = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
        for w in workers:
            w.start()
        rng = np.random.default_rng(42)
        base = rng.integers(0, 4096, size=shape, dtype=np.uint16)
        t0 = time.perf_counter()
        with topic.producer() as prod, Progress("streaming", total=total, unit="frames", enabled=True) as bar:
            for i in range(total):
                frame = np.roll(base, i, axis=0)
                prod.push({"frame": i, "shape": list(shape), "crc32": zlib.crc32(frame)}, data=frame,
                          key=f"detector-{i % 8}")
                bar.update()
        topic.mark_complete()
        # The workers started with the stream: their rate counts from there.
        with Progress("analysing", total=total, unit="frames", enabled=True, start=t0) as bar:
            while any(w.is_alive() for w in workers):
                with lock:
                    n = len(results)
                bar.update(n - bar.done)
                time.sleep(0.05)
            bar.update(len(results) - bar.done)
        elapsed = time.perf_counter() - t0
        for w in workers:
            w.join()
        if errors:
            print("worker error: " + errors[0], file=sys.stderr)
            return 1
        frames_seen = sorted(r[2] for r in results)
        ok = sum(1 for r in results if r[3])
        per_worker = [sum(1 for r in results if r[0] == i) for i in range(2)]
        per_part = [sum(1 for r in results if r[1] == p) for p in range(4)]
        rows = [("frames produced", total), ("frames analysed", len(results)),
                ("checksums verified", ok), ("each frame exactly once", frames_seen == list(range(total))),
                ("frames per worker", per_worker), ("frames per partition", per_part),
                ("mean intensity (avg)", f"{np.mean([r[4] for r in results]):.1f}" if results else "-"),
                ("throughput", f"{total / elapsed:,.0f} frames/s, {total * base.nbytes / elapsed / 1e9:.2f} GB/s")]
        print(table(rows, ["summary", "value"]))
        good = frames_seen == list(range(total)) and ok == total
        print("demo OK" if good else "demo FAILED")
        return 0 if good else 1


def cmd_verify(args: argparse.Namespace) -> int:
    """Check every stored batch of an embedded fabric, with a progress bar (bytes)."""
    import time

    from ._progress import Progress

    start = time.perf_counter()
    with _fabric(args) as fab:
        stats = fab.open_stats()
        with Progress("verifying", unit="B") as bar:
            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.done)

            checked = fab.verify(progress)
        topics = fab.topics(system=True)
    took = time.perf_counter() - start
    opened = ""
    if stats is not None:
        opened = (f"; the open used recovery points: {'yes' if stats['from_recovery_point'] else 'no'}, "
                  f"checked {stats['checked_bytes']:,} bytes then")
    print(f"ok: {checked:,} bytes in {len(topics)} topics checked in {took:.2f} s "
          f"(every batch: header, offsets, CRC32C){opened}")
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    if args.markdown:
        sys.stdout.write(_settings.markdown())
        return 0
    scopes = [args.scope] if args.scope else list(_settings.SCOPES)
    for scope in scopes:
        title, where = _settings.SCOPES[scope]
        rows = [(s.name, s.describe_type(), s.describe_default(), s.describe_range(), s.cli or "-")
                for s in _settings.SETTINGS if s.scope == scope]
        print(f"{title} ({where.replace('`', '')})")
        print(table(rows, ["setting", "type/unit", "default", "range", "CLI flag"]))
        print()
    print("Meanings, bridge keys and C++ fields: docs/configuration.md (or `mofka-py settings --markdown`).")
    return 0


def _group_topics(fab: api.Fabric, group: str, topic: Optional[str]) -> List[str]:
    if topic:
        return [topic]
    topics = [g["topic"] for g in fab.groups() if g["group"] == group]
    if not topics:
        raise InvalidArgument(f"no consumer group '{group}' on any topic (see `mofka-py group list`)")
    return topics


def cmd_group(args: argparse.Namespace) -> int:
    with _fabric(args) as fab:
        if args.action == "list":
            rows = []
            for g in fab.groups():
                d = fab.topic(g["topic"]).describe_group(g["group"])
                rows.append((g["group"], g["topic"], len(d["members"]), d["lag"], d["skipped"]))
            print(table(rows, ["group", "topic", "members", "lag", "skipped"]) if rows else "no consumer groups")
        elif args.action == "describe":
            for name in _group_topics(fab, args.group, args.topic):
                d = fab.topic(name).describe_group(args.group)
                print(f"group {args.group} on topic {name}: {len(d['members'])} live member(s), "
                      f"lag {d['lag']}, skipped {d['skipped']}")
                rows = [(p["partition"], p["owner"] or "-", "-" if p["committed"] is None else p["committed"],
                         p["end_offset"], p["lag"], p["skipped"]) for p in d["partitions"]]
                print(table(rows, ["partition", "member", "committed", "end", "lag", "skipped"]))
        else:
            targets = [args.to_earliest and "earliest", args.to_latest and "latest", args.to_offset,
                       args.to_datetime, args.offsets]
            given = [t for t in targets if t is not None and t is not False]
            if len(given) != 1:
                raise InvalidArgument("give exactly one of --to-earliest, --to-latest, --to-offset N, "
                                      "--to-datetime ISO-8601, --offsets P=N,P=N")
            to: Any = given[0]
            if args.to_datetime:
                import datetime as dt
                try:
                    to = dt.datetime.fromisoformat(args.to_datetime)
                except ValueError:
                    raise InvalidArgument(f"--to-datetime {args.to_datetime!r} is not ISO-8601 "
                                          "(e.g. 2026-12-01T09:30:00)") from None
            elif args.offsets:
                try:
                    to = {int(p): int(o) for p, o in (kv.split("=") for kv in args.offsets.split(","))}
                except ValueError:
                    raise InvalidArgument(f"--offsets {args.offsets!r}: write PARTITION=OFFSET pairs separated "
                                          "by commas (e.g. 0=120,3=7)") from None
            if not args.topic:
                raise InvalidArgument("group reset needs --topic NAME")
            topic = fab.topic(args.topic)
            before = {p["partition"]: p["committed"] for p in topic.describe_group(args.group)["partitions"]}
            plan = topic.reset_group(args.group, to, dry_run=not args.execute)
            rows = [(p, "-" if before.get(p) is None else before[p], o) for p, o in sorted(plan.items())]
            print(table(rows, ["partition", "committed", "new offset"]))
            if args.execute:
                print(f"group {args.group} reset on topic {args.topic}")
            else:
                print("dry run: nothing changed; add --execute to apply (as kafka-consumer-groups --reset-offsets)")
    return 0


class _Help(argparse.HelpFormatter):
    """Help that shows each option's default (when it has one worth showing)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("%(default)" not in text and default not in (None, False, argparse.SUPPRESS, [])
                and action.option_strings):
            text += " (default: %(default)s)"
        return text


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more (got {value})")
    return value


def _connection_options(p: argparse.ArgumentParser, top: bool = False) -> None:
    """--url, --token-file and --token, accepted before or after the subcommand."""
    kw = {} if top else {"default": argparse.SUPPRESS}
    g = p.add_argument_group("fabric connection")
    g.add_argument("--url", metavar="URL", help="the fabric: memory://, file:///path or tcp://host:port "
                                                "(default: $MOFKA_PY_URL)", **kw)
    g.add_argument("--token-file", dest="token_file", metavar="FILE",
                   help="file holding a tcp:// service's token (default: $MOFKA_PY_TOKEN)", **kw)
    g.add_argument("--token", metavar="TOKEN",
                   help="the token itself (prefer --token-file: command lines are visible to other users)", **kw)


def _version() -> str:
    from . import __version__, _core

    mpi = "with MPI" if _core.build_info.get("mpi") else "without MPI"
    return f"mofka-py {__version__} (C++ core {mpi})"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mofka-py", formatter_class=_Help,
        description="mofka-py: an HPC event fabric. Topics, producing and consuming JSON lines, consumer "
                    "groups, a TCP service, bridges to Kafka, benchmarks and a demo.",
        epilog="Run `mofka-py COMMAND --help` for a command's options. Examples: "
               "`mofka-py serve --data-dir /data/fab &`, `mofka-py --url tcp://127.0.0.1:7400 topic list`.")
    p.add_argument("--version", action="version", version=_version())
    _connection_options(p, top=True)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, parent: Any = sub, **kw: Any) -> argparse.ArgumentParser:
        c = parent.add_parser(name, formatter_class=_Help, **kw)
        _connection_options(c)
        return c

    t = sub.add_parser("topic", help="create, list, describe, delete, purge or alter topics", formatter_class=_Help)
    ts = t.add_subparsers(dest="action", metavar="ACTION", required=True)
    tc = command("create", ts, help="create a topic")
    tc.add_argument("name", help="topic name (letters, digits, '.', '_', '-')")
    _settings.add_flag(tc, "topic", "partitions")
    for name in ("retention_bytes", "retention_ms", "sync", "replication", "min_insync"):   # unset: the fabric's
        _settings.add_flag(tc, "topic", name, default=None, dest="topic_sync" if name == "sync" else None)
    tl = command("list", ts, help="list topic names")
    tl.add_argument("--all", action="store_true", help="include system topics (names starting with __)")
    td = command("describe", ts, help="settings and per-partition offsets of a topic")
    td.add_argument("name", help="topic name")
    tx = command("delete", ts, help="delete a topic, its events and its consumer-group offsets")
    tx.add_argument("name", help="topic name")
    tx.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    tx.add_argument("--force", action="store_true", help="delete even while consumer groups have live members")
    tp = command("purge", ts, help="drop every stored event of a topic (offsets go on from where they were)")
    tp.add_argument("name", help="topic name")
    tp.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    ta = command("alter", ts, help="change a topic's retention")
    ta.add_argument("name", help="topic name")
    for name in ("retention_bytes", "retention_ms"):
        _settings.add_flag(ta, "topic", name, default=None)
    for c in (tc, tl, td, tx, tp, ta):
        c.set_defaults(func=cmd_topic)

    pr = command("produce", help="produce JSON lines from stdin or a file")
    pr.add_argument("topic", help="topic name")
    pr.add_argument("--file", help="read JSON lines from this file (default: stdin)")
    pr.add_argument("--partition", type=_non_negative, help="put every event in this partition (default: round robin)")
    pr.add_argument("--key", help="partition by this key (murmur2, as Kafka)")
    pr.set_defaults(func=cmd_produce)

    c = command("consume", help="consume events as JSON lines to stdout")
    c.add_argument("topic", help="topic name")
    c.add_argument("--group", help="consume as a member of this consumer group (acknowledges what it prints)")
    c.add_argument("--start", help="earliest | latest | committed | OFFSET (with a group: only where it "
                                   "never committed; default: committed)")
    c.add_argument("--follow", action="store_true", help="keep waiting for new events (Ctrl-C to stop)")
    c.add_argument("--max", type=_positive, help="stop after this many events")
    c.add_argument("--data", action="store_true", help="read event data too (prints its size)")
    c.set_defaults(func=cmd_consume)

    g = sub.add_parser("group", help="list, describe or reset consumer groups", formatter_class=_Help)
    gs = g.add_subparsers(dest="action", metavar="ACTION", required=True)
    gl = command("list", gs, help="every consumer group with its topic, live members and lag")
    gd = command("describe", gs, help="members, committed offsets, lag and skipped events of a group")
    gd.add_argument("group", help="group name")
    gd.add_argument("--topic", help="only this topic (default: every topic the group reads)")
    gr = command("reset", gs, help="set a group's committed offsets (shows the plan; --execute applies it)")
    gr.add_argument("group", help="group name")
    gr.add_argument("--topic", required=True, help="the group's topic")
    gr.add_argument("--to-earliest", action="store_true", help="to the oldest retained event")
    gr.add_argument("--to-latest", action="store_true", help="to the end (skip what is stored)")
    gr.add_argument("--to-offset", type=_non_negative, metavar="N", help="every partition to offset N")
    gr.add_argument("--to-datetime", metavar="ISO", help="to the first event stored at or after this time "
                                                         "(ISO-8601, e.g. 2026-12-01T09:30:00)")
    gr.add_argument("--offsets", metavar="P=N,...", help="the given partitions to the given offsets")
    gr.add_argument("--execute", action="store_true", help="apply the plan (refused while the group has live members)")
    for x in (gl, gd, gr):
        x.set_defaults(func=cmd_group)

    b = command("bench", help="measure produce and consume rates (in a scratch topic, deleted afterwards)")
    b.add_argument("--events", type=_positive, default=200_000, help="events to produce and consume")
    b.add_argument("--size", type=_non_negative, default=0, help="data bytes per event")
    b.add_argument("--partitions", type=_positive, default=1, help="partitions of the scratch topic")
    b.add_argument("--keep", action="store_true", help="keep the scratch topic")
    b.set_defaults(func=cmd_bench)

    d = command("demo", help="an instrument -> analysis pipeline (in a scratch topic, deleted afterwards)")
    d.add_argument("--frames", type=_positive, default=2000, help="frames to stream")
    d.add_argument("--frame-size", type=_positive, default=256, help="frame edge in pixels (uint16 square frames)")
    d.add_argument("--keep", action="store_true", help="keep the scratch topic")
    d.set_defaults(func=cmd_demo)

    v = command("verify", help="check every stored event of a file:// fabric (headers, offsets, CRC32C)",
                description="Read and check every batch of an embedded fabric (--url file:///DIR; a service's "
                            "--data-dir while it is stopped), with a progress bar. Opening a fabric after a clean "
                            "close checks only what was written after its recovery points and leaves older "
                            "batches to be checked when first read; verify checks them all now. Exit 0 when "
                            "everything is intact; 1 with the topic, partition, file and byte of the first "
                            "damaged batch (reopen with repair=True to truncate there).")
    v.set_defaults(func=cmd_verify)

    se = sub.add_parser("settings", formatter_class=_Help,
                        help="every setting: name, type and unit, default, range, CLI flag (docs/configuration.md)")
    se.add_argument("scope", nargs="?", choices=list(_settings.SCOPES), help="only the settings of this scope")
    se.add_argument("--markdown", action="store_true", help="print docs/configuration.md (all scopes, with meanings)")
    se.set_defaults(func=cmd_settings)

    from .services import cli as services_cli
    services_cli.add_parsers(sub, command)
    from .apps import cli as apps_cli
    apps_cli.add_parser(sub, _Help)
    from . import doctor
    doctor.add_parser(sub)
    from . import service
    service.add_parsers(sub)
    from .bridge import cli as bridge_cli
    bridge_cli.add_parser(sub)
    from .cluster import cli as cluster_cli
    cluster_cli.add_parser(sub)
    from . import capi
    capi.add_parser(sub)
    st = sub.choices.get("status")
    if st is not None and not any("--url" in a.option_strings for a in st._actions):
        _connection_options(st)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``mofka-py`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if getattr(args, "fabric_func", None):
            with _fabric(args) as fab:
                return args.fabric_func(args, fab)
        return args.func(args)
    except Error as exc:
        print(f"mofka-py: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
