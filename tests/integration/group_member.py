"""A consumer-group member process for the integration tests (run: python group_member.py ...).

Pulls, checks and acknowledges events, appending to LOG one line per event (``E partition
offset index``, written before the ack) and, after each successful explicit commit, one
line per partition it owns (``C partition committed``), and ``R p,p,...`` when its
partitions change. It exits at the end of the complete
topic (or after --stop-after events, or once --stop-file exists), or dies when the test kills it.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import mofka_py as mp


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("topic")
    ap.add_argument("group")
    ap.add_argument("log")
    ap.add_argument("--start", default=None)
    ap.add_argument("--session-timeout-ms", type=int, default=10000)
    ap.add_argument("--commit-every", type=int, default=0, help="commit explicitly every N events (0: auto-commit)")
    ap.add_argument("--stop-after", type=int, default=0)
    ap.add_argument("--stop-file", help="leave the group (cleanly) once this file exists")
    ap.add_argument("--pace", type=int, default=10, help="sleep 1 ms every N events (members overlap)")
    args = ap.parse_args()
    kw = {"session_timeout_ms": args.session_timeout_ms}
    if args.start:
        kw["start"] = args.start
    if args.commit_every:
        kw["auto_commit_ms"] = 0
    acked = {}
    count = 0
    with mp.connect(args.url) as fab, open(args.log, "a", buffering=1) as log:
        with fab.topic(args.topic).consumer(args.group, **kw) as cons:
            log.write(f"J {cons.member_id}\n")
            parts = None
            while not args.stop_after or count < args.stop_after:
                if args.stop_file and os.path.exists(args.stop_file):
                    break
                ev = cons.pull(timeout=0.1)
                if ev is not None:
                    # Logged before the partitions are looked at: an event handed out just before
                    # a rebalance the background thread makes meanwhile comes before its R line.
                    i = ev.metadata["i"]
                    if int.from_bytes(ev.data, "little") != i:
                        print(f"event {i} carries the wrong data", file=sys.stderr)
                        return 3
                    log.write(f"E {ev.partition} {ev.offset} {i}\n")
                if cons.partitions != parts:
                    parts = cons.partitions
                    log.write(f"R {','.join(map(str, parts))}\n")
                if ev is None:
                    if cons.exhausted:
                        break
                    continue
                ev.ack()
                acked[ev.partition] = ev.offset + 1
                count += 1
                if args.commit_every and count % args.commit_every == 0:
                    try:
                        cons.commit()
                    except mp.CommitFailed:
                        continue  # fenced: its partitions moved on
                    for p in cons.partitions:
                        if p in acked:
                            log.write(f"C {p} {acked[p]}\n")
                if args.pace and count % args.pace == 0:
                    time.sleep(0.001)
        log.write("X\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
