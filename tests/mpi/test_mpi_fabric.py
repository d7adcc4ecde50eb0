"""The MPI transport: run with ``mpiexec -n N python -m pytest --with-mpi tests/mpi`` (N >= 2).

Every test is collective: all ranks run it and enter the fabric together.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import zlib

import numpy as np
import pytest

MPI = pytest.importorskip("mpi4py.MPI")
mpi = pytest.importorskip("mofka_py.mpi")
import mofka_py as mp  # noqa: E402

from mpi_checks import check_event, check_order, group_reads_everything_once, payload, produce  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "unit"))
from _helpers import flush_while_pushing_keeps_order  # noqa: E402

pytestmark = [pytest.mark.mpi(min_size=2), pytest.mark.timeout(120, method="thread")]

WORLD = MPI.COMM_WORLD


def test_producers_and_consumer_groups():
    """Several producer ranks, consumers in two groups and without a group, colocated server."""
    with mpi.fabric(WORLD, servers=1, colocated=True) as fab:
        c = fab.comm
        assert c.size == WORLD.size
        if c.rank == 0:
            fab.create_topic("frames", partitions=4)
        c.Barrier()
        topic = fab.topic("frames")
        producers = list(range(0, c.size, 2)) if c.size > 2 else [0, 1]
        count = 150
        if c.rank in producers:
            produce(topic, c.rank, range(count))
        c.Barrier()
        if c.rank == 0:
            topic.mark_complete()
        c.Barrier()
        assert topic.complete
        expected = {(src, seq) for src in producers for seq in range(count)}

        # No group: every rank reads everything.
        mine = [check_event(ev) for ev in topic.consumer(start="earliest")]
        assert {(s, q) for _, _, s, q in mine} == expected
        assert len(mine) == len(expected)
        check_order(mine)

        # Group "all": the ranks share the partitions; each event reaches exactly one member.
        group_reads_everything_once(c, topic, "all", expected)

        # Group "solo": one member gets it all; the others are not in it.
        if c.rank == c.size - 1:
            with topic.consumer(group="solo") as solo:
                seen = []
                for ev in solo:
                    seen.append(check_event(ev))
                    ev.ack()
            assert {(s, q) for _, _, s, q in seen} == expected
            assert len(seen) == len(expected)
        c.Barrier()
        assert set(topic.groups()) >= {"all", "solo"}


def test_topics_spread_over_servers():
    """Dedicated server ranks (not clients); several topics land on different servers."""
    nservers = 2 if WORLD.size >= 3 else 1
    with mpi.fabric(WORLD, servers=nservers) as fab:
        if fab is None:
            assert WORLD.rank < nservers
            return
        c = fab.comm
        assert c.size == WORLD.size - nservers
        names = [f"t{i}" for i in range(6)]
        if c.rank == 0:
            for name in names:
                fab.create_topic(name, partitions=2)
        c.Barrier()
        assert fab.topics() == sorted(names)
        for i, name in enumerate(names):
            if i % c.size == c.rank:
                topic = fab.topic(name)
                produce(topic, c.rank, range(40))
                topic.mark_complete()
        c.Barrier()
        for i, name in enumerate(names):
            src = i % c.size
            recs = [check_event(ev) for ev in fab.topic(name).consumer()]
            assert sorted((s, q) for _, _, s, q in recs) == [(src, q) for q in range(40)]
            check_order(recs)
            info = fab.topic(name).describe()
            assert info["complete"]
            assert sum(p["end_offset"] for p in info["partitions"]) == 40


def test_errors_cross_the_transport():
    with mpi.fabric(WORLD, servers=[WORLD.size - 1], colocated=True) as fab:
        c = fab.comm
        with pytest.raises(mp.TopicNotFound):
            fab.topic(f"missing-{c.rank}")
        if c.rank == 0:
            fab.create_topic("once")
            with pytest.raises(mp.TopicExists):
                fab.create_topic("once")
            topic = fab.topic("once")
            topic.mark_complete()
            with pytest.raises(mp.Closed):
                with topic.producer() as prod:
                    prod.push({"late": True}).result(timeout=30)
        c.Barrier()


def test_large_events_checked_as_they_land():
    """In memory, a multi-MiB batch travels in 1 MiB messages received straight into the log, its CRC
    computed piece by piece as they land: odd sizes and several producers' batches in flight stay intact."""
    with mpi.fabric(WORLD, servers=1, colocated=True) as fab:
        c = fab.comm
        if c.rank == 0:
            fab.create_topic("landed", partitions=1)
        c.Barrier()
        topic = fab.topic("landed")
        sizes = ((3 << 20) + 5, 1, (1 << 20) - 3, 1 << 20, (9 << 20) + 4097)
        rng = np.random.default_rng(11 + c.rank)
        with topic.producer() as prod:
            for i, n in enumerate(sizes):
                a = rng.integers(0, 256, size=n, dtype=np.uint8)
                prod.push({"src": c.rank, "i": i, "crc": zlib.crc32(a), "n": n}, data=a)
        c.Barrier()
        if c.rank == 0:
            topic.mark_complete()
        c.Barrier()
        seen = {}
        for ev in topic.consumer():
            assert zlib.crc32(ev.data) == ev.metadata["crc"] and len(ev.data) == ev.metadata["n"]
            seen.setdefault(ev.metadata["src"], []).append(ev.metadata["i"])
        assert seen == {r: list(range(len(sizes))) for r in range(c.size)}


def test_a_batch_damaged_on_its_way_is_refused_and_not_stored():
    """The server checks what lands: a bit flipped after a batch's transfer (test hook
    MOFKA_PY_TEST_DAMAGE_MPI_BATCH, batches of >= 64 KiB) fails its produce with CorruptionError and
    stores nothing, whether the batch came in one message (100 KiB) or in several checked one by one
    as they landed (3 MiB); smaller batches pass, and the producer goes on after reset(). Each rank
    produces into a partition of its own."""
    os.environ["MOFKA_PY_TEST_DAMAGE_MPI_BATCH"] = str(64 << 10)
    try:
        with mpi.fabric(WORLD, servers=1, colocated=True) as fab:
            c = fab.comm
            if c.rank == 0:
                fab.create_topic("damaged", partitions=c.size)
            c.Barrier()
            topic = fab.topic("damaged")
            ok = [np.full(1000 + i, c.rank + i, dtype=np.uint8) for i in range(3)]
            with topic.producer() as prod:
                for i, size in enumerate((100 << 10, 3 << 20)):
                    prod.push({"i": 0}, data=ok[i], partition=c.rank).result(timeout=60)
                    bad = prod.push({"i": -1, "size": size}, data=np.ones(size, dtype=np.uint8), partition=c.rank)
                    with pytest.raises(mp.CorruptionError, match="damaged in transit"):
                        bad.result(timeout=60)
                    with pytest.raises(mp.CorruptionError, match="not stored"):
                        prod.flush()   # reported once more, then the producer may go on
                    prod.reset()
                prod.push({"i": 0}, data=ok[2], partition=c.rank).result(timeout=60)
            c.Barrier()
            if c.rank == 0:
                topic.mark_complete()
            c.Barrier()
            mine = [ev for ev in topic.consumer() if ev.partition == c.rank]
            assert [bytes(ev.data) for ev in mine] == [a.tobytes() for a in ok]
            assert topic.describe()["partitions"][c.rank]["end_offset"] == len(ok)
    finally:
        del os.environ["MOFKA_PY_TEST_DAMAGE_MPI_BATCH"]


def test_large_events_and_file_storage():
    """Multi-MiB events travel intact; file:// storage puts each server under dir/rank<r>."""
    base = WORLD.bcast(tempfile.mkdtemp(prefix="mofka-mpi-") if WORLD.rank == 0 else None, root=0)
    try:
        with mpi.fabric(WORLD, servers=1, storage=f"file://{base}", colocated=True) as fab:
            c = fab.comm
            if c.rank == 0:
                fab.create_topic("big", partitions=1)
            c.Barrier()
            topic = fab.topic("big")
            if c.rank == 0:
                rng = np.random.default_rng(7)
                arrays = [rng.integers(0, 1 << 30, size=n, dtype=np.int64) for n in (1 << 19, 3, 1 << 20)]
                with topic.producer() as prod:
                    for i, a in enumerate(arrays):
                        prod.push({"i": i, "crc": zlib.crc32(a), "n": int(a.size)}, data=a)
                topic.mark_complete()
            c.Barrier()
            events = list(topic.consumer())
            assert [ev.metadata["i"] for ev in events] == [0, 1, 2]
            for ev in events:
                assert zlib.crc32(ev.data) == ev.metadata["crc"]
                assert len(ev.data) == 8 * ev.metadata["n"]
        WORLD.Barrier()
        assert os.path.isdir(os.path.join(base, "rank0"))
    finally:
        WORLD.Barrier()
        if WORLD.rank == 0:
            shutil.rmtree(base, ignore_errors=True)


def test_fabric_twice_and_application_traffic_untouched():
    """Leaving the block shuts everything down; the application's communicator stays usable."""
    for round_ in range(2):
        with mpi.fabric(WORLD, servers=1, colocated=True) as fab:
            name = f"round{round_}"
            if fab.comm.rank == 0:
                fab.create_topic(name)
            # The application's own point-to-point traffic on WORLD meanwhile.
            if WORLD.size >= 2:
                if WORLD.rank == 0:
                    WORLD.send(round_, dest=1, tag=0)
                elif WORLD.rank == 1:
                    assert WORLD.recv(source=0, tag=0) == round_
            fab.comm.Barrier()
            assert fab.topics() == [name]
    assert WORLD.allreduce(1) == WORLD.size


def test_pipelined_produce_keeps_order_with_reserved_memory():
    """Small batches, several in flight per producer (mixing pieces sent alone and grouped):
    every event stored once, in push order, intact; server memory pre-faulted."""
    with mpi.fabric(WORLD, servers=[0], memory_reserve=8 << 20, segment_bytes=4 << 20) as fab:
        if fab is None:
            return
        c = fab.comm
        if c.rank == 0:
            fab.create_topic("pipe", partitions=1)  # one log: a batch stored out of turn would be dropped
        c.Barrier()
        topic = fab.topic("pipe")
        count = 240
        with topic.producer(batch_bytes=96 << 10, linger_ms=5) as prod:
            for seq in range(count):
                arr = payload(c.rank, seq)
                prod.push({"src": c.rank, "seq": seq, "crc": zlib.crc32(arr)}, data=arr)
        c.Barrier()
        if c.rank == 0:
            topic.mark_complete()
        c.Barrier()
        got = [check_event(ev) for ev in topic.consumer(start="earliest")]
        assert sorted((s, q) for _, _, s, q in got) == sorted((s, q) for s in range(c.size) for q in range(count))
        check_order(got)


def test_flush_from_other_threads_while_pushing_keeps_order():
    """Batches handed over MPI both by flushing callers and by the sender thread, several in
    flight: stored once each, in sequence order."""
    with mpi.fabric(WORLD, servers=[0]) as fab:
        if fab is None:
            return
        topic = fab.create_topic(f"racing-{fab.comm.rank}", partitions=1)
        flush_while_pushing_keeps_order(topic)


def test_memory_reserve_needs_memory_storage():
    with pytest.raises(mp.InvalidArgument, match="memory_reserve applies to memory://"):
        with mpi.fabric(WORLD, servers=1, storage="file:///tmp/never-created", memory_reserve=1 << 20):
            pass
    assert not os.path.exists("/tmp/never-created")


def test_server_that_stops_answering_is_a_timeout_not_a_hang():
    """A server rank stopped (SIGSTOP) past request_timeout_ms: the client's flush raises
    TimeoutError; once the server runs again, everybody leaves the fabric cleanly."""
    import signal
    import time

    pids = WORLD.allgather(os.getpid())
    server = WORLD.size - 1
    with mpi.fabric(WORLD, servers=[server], request_timeout_ms=1500) as fab:
        if fab is None:
            return
        c = fab.comm
        failure = None
        if c.rank == 0:
            try:
                topic = fab.create_topic("stalled")
                os.kill(pids[server], signal.SIGSTOP)
                try:
                    t0 = time.monotonic()
                    with pytest.raises(mp.TimeoutError, match="did not answer"):
                        with topic.producer() as prod:
                            prod.push({"n": 1}, data=b"x" * 100)
                            prod.flush()
                    waited = time.monotonic() - t0
                finally:
                    os.kill(pids[server], signal.SIGCONT)
                assert waited < 60, f"the timeout took {waited:.1f} s"
                with pytest.raises(mp.ConnectionError, match="timed out; this fabric is unusable"):
                    fab.topics()
            except BaseException as exc:  # reported after the collective below, so no rank hangs in it
                failure = exc
        c.Barrier()
        if failure is not None:
            raise failure


@pytest.mark.parametrize("bad", [-1, "10", True, 1e9])
def test_spindown_must_be_milliseconds(bad):
    with pytest.raises(mp.InvalidArgument, match="spindown_ms must be a number of milliseconds"):
        with mpi.fabric(WORLD, servers=1, spindown_ms=bad):
            pass


@pytest.mark.parametrize("spindown_ms", [0, 10.0])
def test_idle_ranks_sleep_after_the_spindown(spindown_ms):
    """Events flow one at a time (a stream: pollers stay eager, every event seen in order), then
    the fabric idles with a consumer waiting on an empty partition (a parked long poll): past the
    spin-down every rank, server thread included (colocated), uses a small part of a core."""
    import resource
    import time

    def cpu_seconds():
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return ru.ru_utime + ru.ru_stime

    with mpi.fabric(WORLD, servers=[0], colocated=True, spindown_ms=spindown_ms) as fab:
        c = fab.comm
        if c.rank == 0:
            fab.create_topic("idle", partitions=1)
        c.Barrier()
        topic = fab.topic("idle")
        last = c.size - 1
        if c.rank == 0:
            with topic.producer(linger_ms=0) as prod:
                c.Barrier()
                for seq in range(50):
                    prod.push({"seq": seq})
                    prod.flush()
                    time.sleep(0.001)   # events one at a time, a stream: the pacing is the scenario
        elif c.rank == last:
            with topic.consumer(start="earliest") as cons:
                c.Barrier()
                seqs = [cons.pull(timeout=30).metadata["seq"] for _ in range(50)]
                assert seqs == list(range(50))
                c.Barrier()
                time.sleep(0.2)  # past the spin-down
                before, t0 = cpu_seconds(), time.monotonic()
                assert cons.pull(timeout=1.5) is None  # waits: nothing comes
                used, wall = cpu_seconds() - before, time.monotonic() - t0
        else:
            c.Barrier()
        if c.rank != last:
            c.Barrier()
            time.sleep(0.2)     # past the spin-down
            before, t0 = cpu_seconds(), time.monotonic()
            time.sleep(1.5)     # the idle period whose CPU use is measured: what is tested
            used, wall = cpu_seconds() - before, time.monotonic() - t0
        shares = c.allgather(used / wall)  # every rank reaches this collective, then all check
        assert max(shares) < 0.3, f"ranks used {[f'{s:.0%}' for s in shares]} of a core while idle"


def _wake_pages() -> list:
    return sorted(f for f in os.listdir("/dev/shm") if f.startswith("mofka-py-")) if os.path.isdir("/dev/shm") else []


@pytest.mark.parametrize("wake", ["1", "0"])
def test_idle_ranks_woken_or_sleeping(wake, monkeypatch):
    """Events cross idle spells with the wake-up channel on (pollers block in the kernel and are
    woken) and off (MOFKA_PY_MPI_WAKE=0: they sleep their backoff); the channel's shared pages are
    unlinked once every rank mapped them, so nothing is left in /dev/shm, even while the fabric runs."""
    import time

    monkeypatch.setenv("MOFKA_PY_MPI_WAKE", wake)
    before = WORLD.bcast(_wake_pages() if WORLD.rank == 0 else None, root=0)
    with mpi.fabric(WORLD, servers=1, spindown_ms=0) as fab:
        if fab is not None:
            assert _wake_pages() == before  # pages are unlinked as soon as everyone has them
            c = fab.comm
            if c.rank == 0:
                fab.create_topic("idle", partitions=1)
            c.Barrier()
            topic = fab.topic("idle")
            consumer = topic.consumer(start="earliest") if c.rank == c.size - 1 else None
            for i in range(5):
                c.Barrier()
                time.sleep(0.02)  # every poller past its quick window: armed and blocked, or asleep
                if c.rank == 0:
                    with topic.producer(linger_ms=0) as prod:
                        prod.push({"i": i}).result()
                if consumer is not None:
                    ev = consumer.pull(timeout=30)
                    assert ev is not None and ev.metadata == {"i": i}
            if consumer is not None:
                consumer.close()
    WORLD.Barrier()
    assert _wake_pages() == before
