"""The Python side of benchmarks/bench_capi.py: the loop of bench_c.c on the public Python API.

    python benchmarks/capi/bench_py.py SIZE EVENTS WARM_PASSES

Same metadata bytes, topic settings (1 partition, 64 MiB segments, 256 MiB retention), default
producer and output as bench_c / bench_cpp: one JSON line per pass, pass 0 cold (the first in
this process), then the warm ones. The metadata is passed as ``bytes`` (taken as is, never
re-encoded) and the data as one ``bytes`` object: the binding copies it below 16 KiB and
references it (no copy at push) above, as the C layer does.
"""
from __future__ import annotations

import json
import sys
import time

import mofka_py

META = b'{"step": 1, "var": "u"}'  # the same bytes as in bench_c.c and bench_cpp.cpp
SEGMENT_BYTES = 64 << 20
RETENTION_BYTES = 256 << 20


def main(argv: list) -> int:
    if len(argv) != 3:
        print("usage: bench_py.py SIZE EVENTS WARM_PASSES", file=sys.stderr)
        return 2
    size, events, warm = (int(a) for a in argv)
    data = bytes((i * 31 + 7) & 0xFF for i in range(size)) if size else None
    fab = mofka_py.connect("memory://")
    topic = fab.create_topic("bench", partitions=1, segment_bytes=SEGMENT_BYTES, retention_bytes=RETENTION_BYTES)
    prod = topic.producer()
    push, meta = prod.push, META
    for n in range(warm + 1):
        t0 = time.perf_counter()
        for _ in range(events):
            push(meta, data)
        prod.flush()
        seconds = time.perf_counter() - t0
        print(json.dumps({"api": "python", "size": size, "events": events, "seconds": seconds, "pass": n}), flush=True)
    prod.close()
    fab.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
