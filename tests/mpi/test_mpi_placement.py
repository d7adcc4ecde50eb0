"""Partitions of one topic spread over several MPI servers; restart on file:// storage; clean shutdown.

Run with ``scripts/test-mpi.sh`` (mpiexec -n 2, 3 and 4). Every test is collective.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
import zlib

import pytest

MPI = pytest.importorskip("mpi4py.MPI")
mpi = pytest.importorskip("mofka_py.mpi")

from mpi_checks import check_event, check_order, group_reads_everything_once, payload, produce  # noqa: E402

pytestmark = [pytest.mark.mpi(min_size=2), pytest.mark.timeout(120, method="thread")]

WORLD = MPI.COMM_WORLD


def _layout():
    """(servers, colocated): at least two servers whatever the job size."""
    if WORLD.size == 2:
        return [0, 1], True
    return [0, 1], False


def _fnv1a(s: str) -> int:
    h = 2166136261
    for b in s.encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def _log_bytes(base: str, server: int, topic: str, partition: int) -> int:
    d = os.path.join(base, f"rank{server}", "topics", topic, f"p{partition}")
    if not os.path.isdir(d):
        return 0
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f.endswith(".log"))


def _tmpdir() -> str:
    return WORLD.bcast(tempfile.mkdtemp(prefix="mofka-mpi-place-") if WORLD.rank == 0 else None, root=0)


def _rmtree(base: str) -> None:
    WORLD.Barrier()
    if WORLD.rank == 0:
        shutil.rmtree(base, ignore_errors=True)


def test_partitions_spread_over_servers():
    """More partitions than servers: every server stores some; each group gets every event once, in order."""
    servers, colocated = _layout()
    nparts = 2 * len(servers) + 1
    count = 60
    base = _tmpdir()
    placement = None
    try:
        with mpi.fabric(WORLD, servers=servers, storage=f"file://{base}", colocated=colocated) as fab:
            if fab is not None:
                c = fab.comm
                if c.rank == 0:
                    fab.create_topic("spread", partitions=nparts)
                c.Barrier()
                assert fab.servers == servers
                placement = fab.partition_servers("spread")
                h = _fnv1a("spread")
                assert placement == [servers[(p + h) % len(servers)] for p in range(nparts)]
                assert set(placement) == set(servers)  # several servers hold this one topic
                topic = fab.topic("spread")
                produce(topic, c.rank, range(count))
                c.Barrier()
                if c.rank == 0:
                    topic.mark_complete()
                c.Barrier()
                expected = {(src, seq) for src in range(c.size) for seq in range(count)}

                info = topic.describe()
                assert info["complete"]
                assert [p["partition"] for p in info["partitions"]] == list(range(nparts))
                assert sum(p["end_offset"] for p in info["partitions"]) == len(expected)
                assert all(p["end_offset"] > 0 for p in info["partitions"])

                # No group: every rank reads everything, from every server.
                mine = [check_event(ev) for ev in topic.consumer(start="earliest")]
                assert len(mine) == len(expected) and {(s, q) for _, _, s, q in mine} == expected
                check_order(mine)

                # Two groups: each delivers every event exactly once over its members.
                for group in ("g1", "g2"):
                    group_reads_everything_once(c, topic, group, expected)
                    c.Barrier()
                    state = topic.describe_group(group)
                    assert [p["committed"] for p in state["partitions"]] == [p["end_offset"] for p in info["partitions"]]
                assert set(topic.groups()) >= {"g1", "g2"}
                c.Barrier()
        # Each partition's events are on its own server's disk, and only there.
        placement = WORLD.bcast(placement, root=WORLD.size - 1)  # the last rank is always a client
        if WORLD.rank == 0:
            for p, owner in enumerate(placement):
                for s in servers:
                    size = _log_bytes(base, s, "spread", p)
                    assert (size > 0) == (s == owner), f"partition {p}: {size} bytes on server {s}, owner {owner}"
    finally:
        _rmtree(base)


def test_file_storage_survives_fabric_restart():
    """Leave the fabric, enter a new one on the same file:// storage: events and group offsets are there."""
    servers, colocated = _layout()
    base = _tmpdir()
    first, second = 40, 25
    try:
        with mpi.fabric(WORLD, servers=servers, storage=f"file://{base}", colocated=colocated) as fab:
            if fab is not None:
                c = fab.comm
                if c.rank == 0:
                    fab.create_topic("keep", partitions=3 * len(servers))
                c.Barrier()
                topic = fab.topic("keep")
                produce(topic, c.rank, range(first))
                c.Barrier()
                # One member of group "g" reads and acknowledges everything so far.
                if c.rank == 0:
                    total = first * c.size
                    with topic.consumer(group="g") as cons:
                        n = 0
                        while n < total:
                            ev = cons.pull(timeout=30)
                            assert ev is not None, f"only {n} of {total} events arrived"
                            check_event(ev)
                            ev.ack()
                            n += 1
                c.Barrier()

        with mpi.fabric(WORLD, servers=servers, storage=f"file://{base}", colocated=colocated) as fab:
            if fab is not None:
                c = fab.comm
                assert fab.topics() == ["keep"]
                topic = fab.topic("keep")
                assert sum(p["end_offset"] for p in topic.describe()["partitions"]) == first * c.size
                c.Barrier()
                produce(topic, c.rank, range(first, first + second))
                c.Barrier()
                if c.rank == 0:
                    topic.mark_complete()
                c.Barrier()
                # Everything, old and new, without a group.
                allrecs = [check_event(ev) for ev in topic.consumer(start="earliest")]
                assert {(s, q) for _, _, s, q in allrecs} == {
                    (src, seq) for src in range(c.size) for seq in range(first + second)}
                check_order(allrecs)
                # Group "g" resumes from its committed offsets: only the new events.
                if c.rank == 0:
                    with topic.consumer(group="g") as cons:
                        rest = []
                        for ev in cons:
                            rest.append(check_event(ev))
                            ev.ack()
                    assert sorted((s, q) for _, _, s, q in rest) == sorted(
                        (src, seq) for src in range(c.size) for seq in range(first, first + second))
                c.Barrier()
    finally:
        _rmtree(base)


def _os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def test_clean_shutdown_leaves_nothing_behind():
    """After the block: no extra Python or native threads, and the application's communicator still works."""
    servers, colocated = _layout()
    with mpi.fabric(WORLD, servers=servers, colocated=colocated):
        pass  # warm-up: MPI may start helper threads of its own on first use
    WORLD.Barrier()
    py_before, os_before = threading.active_count(), _os_threads()
    for _ in range(2):
        with mpi.fabric(WORLD, servers=servers, colocated=colocated) as fab:
            if fab is not None:
                c = fab.comm
                if c.rank == 0:
                    fab.create_topic("bye", partitions=4)
                c.Barrier()
                topic = fab.topic("bye")
                produce(topic, c.rank, range(10))
                cons = topic.consumer(group="x")
                assert cons.pull(timeout=30) is not None
                cons.close()
                c.Barrier()
    assert threading.active_count() == py_before
    assert _os_threads() == os_before
    assert WORLD.allreduce(1) == WORLD.size


def test_live_consumer_wakes_on_any_server():
    """A consumer waiting on a spread topic sees events as they arrive on whichever server."""
    import time

    with mpi.fabric(WORLD, servers=[0, 1], colocated=True) as fab:
        c = fab.comm
        if c.rank == 0:
            fab.create_topic("live", partitions=5)
        c.Barrier()
        topic = fab.topic("live")
        count = 30
        if c.rank == c.size - 1:
            cons = topic.consumer(start="earliest")
        c.Barrier()
        if c.rank == 0:
            with topic.producer(linger_ms=0) as prod:
                for seq in range(count):
                    arr = payload(0, seq)
                    prod.push({"src": 0, "seq": seq, "crc": zlib.crc32(arr)}, data=arr, partition=seq % 5)
                    prod.flush()
                    time.sleep(0.01)    # a live stream, one event at a time: the pacing is the scenario
        if c.rank == c.size - 1:
            got = []
            while len(got) < count:
                ev = cons.pull(timeout=30)
                assert ev is not None, f"only {len(got)} of {count} events arrived"
                got.append(check_event(ev))
            cons.close()
            assert sorted(q for _, _, _, q in got) == list(range(count))
            check_order(got)
        c.Barrier()
