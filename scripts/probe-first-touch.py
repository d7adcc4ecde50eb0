#!/usr/bin/env python3
"""Does this machine pay extra the first time its memory is touched? A diagnostic for bench_scale.

    python scripts/probe-first-touch.py [--gib 18] [--passes 2]

Maps ``--gib`` GiB of anonymous memory, 1 GiB at a time, and writes one byte per 4 KiB page of
each (the kernel allocates and zeroes the page on that write), timing each GiB; then frees it all
and does the same again (``--passes``). On bare metal every GiB costs about the same. In a virtual
machine whose memory the hypervisor backs only when the guest first uses it (Firecracker, and
others with free page reporting or ballooning, which hand freed memory back), GiBs the guest has
not used before cost several times more: the second pass shows which part of memory had been
backed already. A log growing past the page cache any earlier run used pays the same on its writes.
"""
from __future__ import annotations

import argparse
import mmap
import sys
import time

import numpy as np

GIB = 1 << 30
PAGE = 4096


def touch_pass(gib: int, label: str) -> list:
    maps, secs = [], []
    try:
        for i in range(gib):
            m = mmap.mmap(-1, GIB, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            view = np.frombuffer(m, dtype=np.uint8)
            t = time.perf_counter()
            view[::PAGE] = 1
            secs.append(time.perf_counter() - t)
            del view
            maps.append(m)
            print(f"\r{label}: {i + 1}/{gib} GiB touched", end="", file=sys.stderr, flush=True)
    finally:
        for m in maps:
            m.close()
        print(file=sys.stderr)
    return secs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gib", type=int, default=18, help="GiB to touch per pass (leave room for the rest)")
    ap.add_argument("--passes", type=int, default=2)
    args = ap.parse_args()
    runs = [touch_pass(args.gib, f"pass {p + 1}") for p in range(args.passes)]
    print("| GiB | " + " | ".join(f"pass {p + 1} s" for p in range(args.passes)) + " |")
    print("|---:|" + "---:|" * args.passes)
    for i in range(args.gib):
        print(f"| {i + 1} | " + " | ".join(f"{r[i]:.2f}" for r in runs) + " |")
    for p, r in enumerate(runs):
        fast = min(r)
        print(f"pass {p + 1}: fastest GiB {fast:.2f} s, slowest {max(r):.2f} s "
              f"({max(r) / fast:.1f}x), {sum(x > 2 * fast for x in r)} GiB over twice the fastest")
    return 0


if __name__ == "__main__":
    sys.exit(main())
