"""Deleting, purging and altering a topic whose partitions are spread over several server ranks."""
from __future__ import annotations

import os
import sys

import pytest

MPI = pytest.importorskip("mpi4py.MPI")
mpi = pytest.importorskip("mofka_py.mpi")
import mofka_py as mp  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "unit"))
from _group_scenarios import fill  # noqa: E402
from mpi_checks import rank_part, reraise  # noqa: E402

pytestmark = [pytest.mark.mpi(min_size=2), pytest.mark.timeout(120, method="thread")]

WORLD = MPI.COMM_WORLD


def test_delete_purge_alter_across_servers():
    nservers = 2 if WORLD.size >= 3 else 1
    with mpi.fabric(WORLD, servers=nservers) as fab:
        if fab is None:
            return
        c = fab.comm

        def first_rank():
            t = fab.create_topic("spread", partitions=4)
            fill(t, 400)
            assert t.purge() == 400
            t.alter(retention_bytes=1 << 20)
            assert t.describe()["retention_bytes"] == 1 << 20
            fill(t, 8, first=400)
            t.reset_group("g", to="earliest")
            fab.delete_topic("spread")
            assert fab.topics() == []
            t = fab.create_topic("spread", partitions=2)  # again, with another layout
            assert [p["end_offset"] for p in t.describe()["partitions"]] == [0, 0]
            assert all(p["committed"] is None for p in t.describe_group("g")["partitions"])
            with pytest.raises(mp.TopicNotFound):
                fab.delete_topic("nothing")

        failure = rank_part(first_rank) if c.rank == 0 else None
        reraise(c, failure)
