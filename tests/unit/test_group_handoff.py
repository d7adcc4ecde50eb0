"""A group formed while events wait: every event read exactly once, none left behind."""
import threading

import pytest

import mofka_py as mp


@pytest.mark.parametrize("members", [2, 3, 4])
@pytest.mark.parametrize("trial", range(5))
def test_group_formed_before_reading_reads_everything_once(members, trial):
    with mp.connect("memory://") as fab:
        topic = fab.create_topic("f", partitions=4)
        with topic.producer() as prod:
            for i in range(300):
                prod.push({"i": i})
        topic.mark_complete()
        barrier = threading.Barrier(members)
        got = [[] for _ in range(members)]
        errors = []

        def member(k):
            try:
                cons = topic.consumer(group="all")
                barrier.wait()  # all joined before anyone reads; partitions move between them meanwhile
                for ev in cons:
                    got[k].append(ev.metadata["i"])
                    ev.ack()
                cons.close()
            except Exception as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=member, args=(k,)) for k in range(members)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors
        everything = [i for g in got for i in g]
        assert sorted(everything) == list(range(300))


def test_member_id_needs_a_group():
    with mp.connect("memory://") as fab:
        topic = fab.create_topic("t")
        with pytest.raises(mp.InvalidArgument, match="member_id needs a group"):
            topic.consumer(member_id="x")
