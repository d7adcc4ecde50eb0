"""Consumer-group scenarios shared by the embedded (memory://, file://), tcp:// and MPI tests.

Members are consumers in threads of this process (each its own group member); every
scenario checks the group's contract: each event delivered and acknowledged exactly once,
offsets in order within a partition, whatever joins, leaves or restarts meanwhile.
"""
from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Dict, List, Optional, Tuple

from waiting import wait_until

P = 4

Record = Tuple[str, int, int, int]  # (member, partition, offset, i)


def fill(topic, n: int, first: int = 0) -> None:
    """Push events ``first .. first+n-1`` round robin, each with its index in metadata and data."""
    with topic.producer(batch_size=500, selector="round_robin") as prod:
        for i in range(first, first + n):
            prod.push({"i": i}, data=i.to_bytes(4, "little"))


class Member(threading.Thread):
    """One group member: pulls, checks and acks every event, recording (name, partition, offset, i).

    Stops after ``stop_after`` events (closing the consumer cleanly: a member leaving), or at
    the end of the complete topic, or, with ``idle_after`` set (an Event), when that is set and
    nothing is left for it: a leaver whose partitions the others drained before it read
    ``stop_after`` events leaves then instead of waiting for events that will never come.
    """

    def __init__(self, topic, group: str, name: str, log: List[Record], lock: threading.Lock,
                 start: Optional[str] = None, stop_after: Optional[int] = None, timeout: float = 120.0,
                 pace: int = 20, idle_after: Optional[threading.Event] = None, **kw):
        super().__init__(name=name, daemon=True)
        self.idle_after = idle_after
        self.topic, self.group, self.log, self.lock = topic, group, log, lock
        self.start_policy, self.stop_after, self.timeout, self.kw = start, stop_after, timeout, kw
        self.pace = pace  # "work": a 1 ms pause every `pace` events, so members overlap
        self.count = 0
        self.error: Optional[BaseException] = None
        self.stats: dict = {}

    def run(self) -> None:
        try:
            kw = dict(self.kw)
            if self.start_policy is not None:
                kw["start"] = self.start_policy
            deadline = time.monotonic() + self.timeout
            with self.topic.consumer(self.group, **kw) as cons:
                while self.stop_after is None or self.count < self.stop_after:
                    ev = cons.pull(timeout=0.05)
                    if ev is None:
                        if cons.exhausted:
                            break
                        if self.idle_after is not None and self.idle_after.is_set() and self._drained(cons):
                            break
                        if time.monotonic() > deadline:
                            raise AssertionError(f"member {self.name} stalled after {self.count} events")
                        continue
                    i = ev.metadata["i"]
                    assert int.from_bytes(ev.data, "little") == i, f"event {i} carries the wrong data"
                    with self.lock:
                        self.log.append((self.name, ev.partition, ev.offset, i))
                    ev.ack()
                    self.count += 1
                    if self.pace and self.count % self.pace == 0:
                        time.sleep(0.001)   # a slower member (the scenario), not a wait
                self.stats = cons.stats
        except BaseException as exc:  # reported by check_members
            self.error = exc


    def _drained(self, cons) -> bool:
        """Nothing left to read in the partitions this member owns (the producer is done)."""
        mine = set(cons.partitions)
        parts = self.topic.describe_group(self.group)["partitions"]
        return all(p["lag"] == 0 for p in parts if p["partition"] in mine)


def check_members(*members: Member) -> None:
    for m in members:
        m.join(180)
        assert not m.is_alive(), f"member {m.name} did not finish"
        if m.error is not None:
            raise m.error


def check_exactly_once(log: List[Record], n: int, allowed_duplicates: Optional[set] = None) -> Dict[str, int]:
    """Every index 0..n-1 exactly once (a duplicate only if in ``allowed_duplicates``, as
    (partition, offset)); within each member, offsets of a partition strictly increase.
    Returns how many events each member got."""
    seen: Dict[Tuple[int, int], int] = {}
    dups = []
    for _, p, off, i in log:
        if (p, off) in seen:
            assert seen[(p, off)] == i, f"partition {p} offset {off} gave two different events"
            dups.append((p, off))
        seen[(p, off)] = i
    assert sorted(seen.values()) == list(range(n)), (
        f"{len(seen)} distinct events of {n}: missing {sorted(set(range(n)) - set(seen.values()))[:10]}")
    unexpected = [d for d in dups if not allowed_duplicates or d not in allowed_duplicates]
    assert not unexpected, f"{len(dups)} events delivered twice, e.g. {unexpected[:10]}"
    last: Dict[Tuple[str, int], int] = {}
    per_member: Dict[str, int] = defaultdict(int)
    for name, p, off, _ in log:
        assert last.get((name, p), -1) < off, f"member {name}: partition {p} went back to offset {off}"
        last[(name, p)] = off
        per_member[name] += 1
    return dict(per_member)


def scenario_late_joiner(fab, start: Optional[str], n: int = 20_000) -> Dict[str, int]:
    """The issue's reproduction: a full topic; member A starts, B joins 50 ms later; both ack
    everything. The group must deliver exactly n events."""
    t = fab.create_topic(f"late-{start or 'default'}", partitions=P)
    fill(t, n)
    t.mark_complete()
    log: List[Record] = []
    lock = threading.Lock()
    a = Member(t, "g", "A", log, lock, start=start)
    b = Member(t, "g", "B", log, lock, start=start)
    a.start()
    wait_until(lambda: a.count > 0, 60, "member A reading before B joins")
    b.start()
    check_members(a, b)
    return check_exactly_once(log, n)


def scenario_churn(fab, start: Optional[str], n: int = 12_000) -> Dict[str, int]:
    """Members join one after another while events are produced and consumed; one leaves
    early; one stops and a new consumer takes its place (a restart) with the same start
    policy. Every event exactly once, in order within each member."""
    t = fab.create_topic(f"churn-{start or 'default'}", partitions=P)
    log: List[Record] = []
    lock = threading.Lock()

    def produce():
        step = n // 6
        for k in range(6):
            fill(t, step if k < 5 else n - 5 * step, first=k * step)
            time.sleep(0.05)    # a stream spread over time (members join and leave during it)

    produced = threading.Event()

    def produce_all():
        produce()
        produced.set()

    producer = threading.Thread(target=produce_all, daemon=True)
    first = Member(t, "g", "first", log, lock, start=start)
    producer.start()
    first.start()

    def wait_for(count: int) -> None:
        wait_until(lambda: len(log) >= count, 60, f"the group to deliver {count} events", interval=0.005)

    wait_for(n // 12)
    # A leaver reads stop_after events, or leaves once the stream is written and its partitions
    # are drained (the others may have read most of them before it joined).
    leaver = Member(t, "g", "leaver", log, lock, start=start, stop_after=n // 20, idle_after=produced)
    leaver.start()
    wait_for(n // 6)
    before = Member(t, "g", "restarted-1", log, lock, start=start, stop_after=n // 20, idle_after=produced)
    before.start()
    before.join(120)
    after = Member(t, "g", "restarted-2", log, lock, start=start)
    after.start()
    wait_for(n // 2)
    third = Member(t, "g", "third", log, lock, start=start)
    third.start()
    producer.join(120)
    # Leavers leave while the stream is still open: a member that stops with unread events
    # hands them to the members still there; once the others finished and left, nobody would.
    check_members(leaver, before)
    t.mark_complete()
    check_members(first, after, third)
    got = check_exactly_once(log, n)
    assert len(got) >= 4, f"only {sorted(got)} took part"
    return got


def scenario_restart_resumes_after_commit(fab, n: int = 1000) -> None:
    """A member acks 300 events and stops; a new member with start='earliest' begins right
    after them, not at the beginning."""
    t = fab.create_topic("restart", partitions=1)
    fill(t, n)
    with t.consumer("g", start="earliest", auto_commit_ms=0) as c:
        for _ in range(300):
            ev = c.pull(timeout=30)
            ev.ack()
    with t.consumer("g", start="earliest") as c:
        ev = c.pull(timeout=30)
        assert ev.offset == 300, f"restarted member began at {ev.offset}, not after the group's commit (300)"
    # Without a group, start keeps its meaning.
    with t.consumer(start="earliest") as c:
        assert c.pull(timeout=30).offset == 0
