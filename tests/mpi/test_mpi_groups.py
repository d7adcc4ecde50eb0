"""Consumer groups whose members are MPI ranks (run under mpiexec, like the other MPI tests):
members joining one after another with start='earliest' or the default, one leaving early
and starting again; every event exactly once across the ranks, in order per member."""
from __future__ import annotations

import os
import sys
import time

import pytest

MPI = pytest.importorskip("mpi4py.MPI")
mpi = pytest.importorskip("mofka_py.mpi")

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "unit"))
from _group_scenarios import P, check_exactly_once, fill  # noqa: E402
from mpi_checks import rank_part, reraise  # noqa: E402

pytestmark = [pytest.mark.mpi(min_size=2), pytest.mark.timeout(180, method="thread")]

WORLD = MPI.COMM_WORLD


def _read(topic, name: str, start, log: list, stop_after=None) -> None:
    kw = {} if start is None else {"start": start}
    with topic.consumer("g", **kw) as cons:
        count = 0
        while stop_after is None or count < stop_after:
            ev = cons.pull(timeout=0.05)
            if ev is None:
                if cons.exhausted:
                    return
                continue
            i = ev.metadata["i"]
            assert int.from_bytes(ev.data, "little") == i
            log.append((name, ev.partition, ev.offset, i))
            ev.ack()
            count += 1
            if count % 20 == 0:
                time.sleep(0.001)  # some work, so that the members overlap


@pytest.mark.parametrize("start", ["earliest", None])
def test_member_ranks_join_in_turn_one_restarts(start):
    n = 12_000
    name = f"ranks-{start or 'default'}"
    with mpi.fabric(WORLD, servers=1, colocated=True) as fab:
        c = fab.comm
        if c.rank == 0:
            topic = fab.create_topic(name, partitions=P)
            fill(topic, n)
            topic.mark_complete()
        c.Barrier()
        topic = fab.topic(name)
        log: list = []
        time.sleep(0.05 * c.rank)  # members join one after another

        def member():
            if c.rank == c.size - 1:
                # This rank's member leaves early; a new one takes its place (a restart).
                _read(topic, f"rank{c.rank}-a", start, log, stop_after=1000)
                _read(topic, f"rank{c.rank}-b", start, log)
            else:
                _read(topic, f"rank{c.rank}", start, log)

        failure = rank_part(member)
        everything = [r for part in c.allgather(log) for r in part]
        reraise(c, failure)
        got = check_exactly_once(everything, n)
        assert f"rank{c.size - 1}-b" in got, "the restarted member took part"
        c.Barrier()
