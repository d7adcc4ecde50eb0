"""A replicated cluster under faults, Jepsen-style: three `mofka-py serve --cluster` nodes and a
real etcd on loopback, a topic with replication 3 and min_insync 2, producers and a consumer
group running throughout; after each fault, every acknowledged event is stored exactly once where
it was acknowledged, in order, the group got it, and the cluster is fully replicated again."""
from __future__ import annotations

import pytest

import mofka_py as mp
from waiting import wait_until

from cluster_helpers import Cluster, Workload, check_history, read_all, wait_for_time
from etcd_helpers import EtcdServer, find_etcd

pytestmark = pytest.mark.skipif(find_etcd() is None, reason="no etcd binary (scripts/bootstrap.sh installs one)")

TOPIC = "jepsen"


@pytest.fixture
def cluster(tmp_path):
    with EtcdServer() as etcd:
        c = Cluster(tmp_path, etcd, n=3).start()
        try:
            yield c
        except BaseException:
            print(c.logs())
            raise
        finally:
            c.stop()


def _topic(c: Cluster, partitions: int = 3) -> None:
    with mp.connect(c.url) as fab:
        fab.create_topic(TOPIC, partitions=partitions, replication=3, min_insync=2)
    c.wait_leaders(TOPIC)
    c.wait_fully_replicated(TOPIC)


def _acked(w: Workload) -> int:
    with w.lock:
        return len(w.acked)


def _run_fault(c: Cluster, fault) -> Workload:
    _topic(c)
    w = Workload(c.url, TOPIC).start()
    try:
        before = wait_until(lambda: _acked(w) > 300 and _acked(w), 60, "acknowledged events before the fault")
        fault()
        wait_until(lambda: _acked(w) > before + 300 or w.failed or w.errors, 120, "acknowledged events after the fault")
        c.wait_fully_replicated(TOPIC, timeout=120)
    finally:
        w.stop()
    stored = read_all(c.url, TOPIC)
    print(f"acknowledged {len(w.acked)}, unacknowledged {len(w.failed)}, stored "
          f"{sum(len(v) for v in stored.values())}, consumed {len(w.consumed)} ({len(set(w.consumed))} distinct)")
    check_history(w, stored)
    return w


def test_replicated_topic_copies_every_batch_to_every_replica(cluster, tmp_path):
    _topic(cluster)
    with mp.connect(cluster.url) as fab:
        with fab.topic(TOPIC).producer() as prod:
            futures = [prod.push({"p": 0, "k": k}, data=bytes([k % 256]) * 100) for k in range(600)]
            prod.flush()
        ids = [f.result() for f in futures]
    stored = read_all(cluster.url, TOPIC)
    assert sorted(k for events in stored.values() for _, k in events) == list(range(600))
    assert {(i.partition, i.offset) for i in ids} == {(p, o) for p, ev in stored.items() for o in range(len(ev))}
    cluster.wait_fully_replicated(TOPIC)
    cluster.stop()
    # Each node's own log, opened directly: the same events at the same offsets on all three.
    copies = []
    for node in ("n1", "n2", "n3"):
        with mp.connect(f"file://{cluster.data_dir(node)}") as fab:
            t = fab.topic(TOPIC)
            per = {}
            for p in range(3):
                with t.consumer(start="earliest", partitions=[p]) as cons:
                    per[p] = [(ev.offset, ev.metadata_bytes, bytes(ev.data)) for ev in iter(lambda: cons.pull(timeout=1), None)]
            copies.append(per)
    assert copies[0] == copies[1] == copies[2]
    assert sum(len(v) for v in copies[0].values()) == 600


def test_sync_batch_acknowledges_without_waiting_out_a_timeout(cluster):
    """Under sync=batch (the cluster's setting here) a write counts once synced: a leader with no
    follower (replication 1) must not wait for a follower fetch that never comes
    (replica_ack_timeout_ms, 30 s), and followers must get the batch once it is synced, not at their
    next fetch timeout (0.5 s per batch). 40 awaited pushes per topic: seconds before, well under after."""
    import time

    with mp.connect(cluster.url) as fab:
        for r in (1, 3):
            fab.create_topic(f"sync{r}", partitions=1, replication=r, min_insync=min(r, 2))
    for r in (1, 3):
        cluster.wait_fully_replicated(f"sync{r}")
    with mp.connect(cluster.url) as fab:
        for r in (1, 3):
            with fab.topic(f"sync{r}").producer() as prod:
                t0 = time.monotonic()
                for k in range(40):
                    prod.push({"k": k}).result(timeout=15)
                spent = time.monotonic() - t0
            assert spent < 10, f"replication {r}: 40 awaited pushes took {spent:.1f} s"


def test_kill_leader(cluster):
    victim = {}

    def fault():
        victim["node"] = cluster.leader(TOPIC, 0)
        cluster.kill(victim["node"])
        cluster.wait_leaders(TOPIC, exclude=victim["node"])
        wait_for_time(1.0)
        cluster.restart(victim["node"])

    _run_fault(cluster, fault)
    # The replica-state events the leaders published on the cluster's health topic.
    with mp.connect(cluster.url) as fab:
        with fab.topic("__health.events").consumer(start="earliest") as cons:
            seen = []
            while True:
                ev = cons.pull(timeout=2)
                if ev is None:
                    break
                seen.append(ev.metadata)
    mine = [e for e in seen if e.get("topic") == TOPIC and e.get("partition") == 0]
    kinds = [e["event"] for e in mine]
    assert "leader_changed" in kinds and "under_replicated" in kinds and "fully_replicated" in kinds, kinds
    new_leader = [e for e in mine if e["event"] == "leader_changed"][-1]
    assert new_leader["leader"] != victim["node"] and new_leader["epoch"] == cluster.epoch(TOPIC, 0)


def test_pause_leader_past_its_lease(cluster):
    """SIGSTOP the leader for longer than its lease: another is elected; on SIGCONT the old one
    must step down and acknowledge nothing (every acknowledged event is checked afterwards)."""
    def fault():
        node = cluster.leader(TOPIC, 0)
        old_epoch = cluster.epoch(TOPIC, 0)
        cluster.pause(node)
        try:
            wait_until(lambda: cluster.epoch(TOPIC, 0) > old_epoch and cluster.leader(TOPIC, 0) != node, 60,
                       "a new leader for partition 0 while the old one is paused")
            wait_for_time(1.0)
        finally:
            cluster.resume(node)

    _run_fault(cluster, fault)


def test_follower_restarted_empty_fills_from_scratch(cluster):
    def fault():
        leader = cluster.leader(TOPIC, 0)
        follower = next(n for n in ("n1", "n2", "n3") if n != leader)
        cluster.kill(follower)
        wait_for_time(1.0)
        cluster.restart(follower, empty=True)

    _run_fault(cluster, fault)


def test_two_of_three_killed_in_turn(cluster):
    def fault():
        for _ in range(2):
            node = cluster.leader(TOPIC, 0)
            cluster.kill(node)
            cluster.wait_leaders(TOPIC, exclude=node)
            wait_for_time(1.0)
            cluster.restart(node)
            cluster.wait_fully_replicated(TOPIC, timeout=120)

    _run_fault(cluster, fault)


def test_group_resumes_from_committed_offsets_after_coordinator_failover(cluster):
    """The group's coordinator is the leader of partition 0; its commits are copied to the other
    replicas, so the member that comes after the coordinator's kill -9 starts where the group
    committed, not from the beginning."""
    _topic(cluster, partitions=1)
    with mp.connect(cluster.url) as fab:
        t = fab.topic(TOPIC)
        with t.producer() as prod:
            for k in range(200):
                prod.push({"p": 0, "k": k})
        with t.consumer(group="g", start="earliest") as cons:
            for _ in range(120):
                ev = cons.pull(timeout=30)
                assert ev is not None
                ev.ack()
        old = cluster.leader(TOPIC, 0)
        cluster.kill(old)
        cluster.wait_leaders(TOPIC, exclude=old)
        with t.consumer(group="g", start="earliest") as cons:
            ev = cons.pull(timeout=60)
            assert ev is not None
            assert ev.offset == 120, f"the group resumed at {ev.offset}, not at its committed 120"


def test_etcd_paused_leaders_serve_until_their_lease_ends_then_refuse(cluster):
    """etcd unreachable: the leaders keep their partitions until their lease deadline, then refuse
    writes (no split brain); when etcd is back the cluster elects and serves again, and nothing
    acknowledged is lost."""
    def fault():
        cluster.etcd.pause()
        try:
            with mp.connect(cluster.url, reconnect_timeout_ms=1500) as fab:
                prod = fab.topic(TOPIC).producer()
                tries = iter(range(1_000_000))

                def refused():
                    try:
                        prod.push({"p": 99, "k": next(tries)}).result(timeout=30)
                    except mp.Error as exc:
                        return exc
                    return None
                try:
                    err = wait_until(refused, 60, "writes refused once the leaders' leases ended")
                    assert isinstance(err, (mp.NotLeader, mp.TimeoutError)), repr(err)
                    assert "lease" in str(err) or isinstance(err, mp.TimeoutError), str(err)
                finally:
                    try:
                        prod.close(timeout=5)
                    except mp.Error:
                        pass  # the refused events: never acknowledged
        finally:
            cluster.etcd.resume()

    _run_fault(cluster, fault)


def test_reassign_fills_a_new_replica_from_scratch_and_status_shows_it(cluster, tmp_path):
    import json
    import subprocess
    import sys

    with mp.connect(cluster.url) as fab:
        fab.create_topic("two", partitions=1, replication=2, min_insync=1)
        cluster.wait_leaders("two")
        with fab.topic("two").producer() as prod:
            for k in range(500):
                prod.push({"p": 0, "k": k})
    before = cluster.replicas("two")[0]
    newcomer = next(n for n in ("n1", "n2", "n3") if n not in before)
    etcd_url = f"etcd://127.0.0.1:{cluster.etcd.client_port}/{cluster.name}"
    cli = [sys.executable, "-m", "mofka_py.cli", "cluster"]
    out = subprocess.run(cli + ["reassign", "two", "0", ",".join(before + [newcomer]), "--cluster", etcd_url],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    wait_until(lambda: cluster.isr("two", 0) == sorted(before + [newcomer]), 60, "the new replica in sync")
    st = subprocess.run(cli + ["status", "--json", "--cluster", etcd_url], capture_output=True, text=True,
                        timeout=60)
    assert st.returncode == 0, st.stderr
    state = json.loads(st.stdout)
    row = next(x for x in state["partitions"] if x["topic"] == "two")
    assert sorted(row["isr"]) == sorted(before + [newcomer]) and row["leader"] in before
    assert not [x for x in state["under_replicated"] if x[0] == "two"]
    # A leader on the move must stay a replica: refused, nothing changed.
    bad = subprocess.run(cli + ["reassign", "two", "0", newcomer, "--cluster", etcd_url], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode != 0 and "leads partition" in bad.stderr
    assert sorted(cluster.replicas("two")[0]) == sorted(before + [newcomer])
    # The newcomer's copy, read directly after a clean stop: all 500 events, in order.
    cluster.stop()
    with mp.connect(f"file://{cluster.data_dir(newcomer)}") as fab:
        with fab.topic("two").consumer(start="earliest") as cons:
            got = [ev.metadata["k"] for ev in iter(lambda: cons.pull(timeout=1), None)]
    assert got == list(range(500))


def test_replica_restarted_empty_gets_the_groups_committed_offsets(cluster):
    """A replica of partition 0 that lost its data copies the group offsets from the leader too,
    so it can become the groups' coordinator without sending them back to the start."""
    _topic(cluster, partitions=2)
    with mp.connect(cluster.url) as fab:
        t = fab.topic(TOPIC)
        with t.producer() as prod:
            for k in range(100):
                prod.push({"p": 0, "k": k}, partition=k % 2)
        with t.consumer(group="g", start="earliest") as cons:
            for _ in range(100):
                cons.pull(timeout=30).ack()
        want = {p: fab._f.committed("g", TOPIC, p) for p in range(2)}
    assert want == {0: 50, 1: 50}
    follower = next(n for n in ("n1", "n2", "n3") if n != cluster.leader(TOPIC, 0))
    cluster.kill(follower)
    cluster.restart(follower, empty=True)
    cluster.wait_fully_replicated(TOPIC)
    with mp.connect(f"tcp://127.0.0.1:{cluster.ports[follower]}") as direct:
        wait_until(lambda: {p: direct._f.committed("g", TOPIC, p) for p in range(2)} == want, 60,
                   "the restarted replica to hold the group's committed offsets")


def test_kill_leader_while_its_followers_are_stalled(cluster):
    """The leader of partition 0 is killed while both its followers are paused (for less than the
    replica lag, so they stay in sync): whatever it wrote meanwhile was never acknowledged, since
    the in-sync replicas did not hold it, and the new leader (a follower) loses nothing that was."""
    def fault():
        leader = cluster.leader(TOPIC, 0)
        followers = [n for n in ("n1", "n2", "n3") if n != leader]
        for n in followers:
            cluster.pause(n)
        try:
            wait_for_time(0.4)  # writes reach the leader alone meanwhile
            cluster.kill(leader)
        finally:
            for n in followers:
                cluster.resume(n)
        cluster.wait_leaders(TOPIC, exclude=leader)
        cluster.restart(leader)

    _run_fault(cluster, fault)
