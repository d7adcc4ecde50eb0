"""The compute pool and health events on embedded fabrics (workers as threads of this process):
outcomes exactly once, agents, priorities, slots, retries, restart of the steering side on a
file:// fabric, heartbeats turned into node events, members removed from a group."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import mofka_py as mp
from mofka_py.services import HealthMonitor, Heartbeat, Pool, TaskFailed, Worker

from _helpers import wait_until


def square(x):
    return x * x


def echo(*args, **kwargs):
    return [list(args), kwargs]


def slow_square(x):
    time.sleep(0.002)   # the task's work
    return x * x


class Workers:
    """Worker objects running in threads (stopped at exit)."""

    def __init__(self, fab, pool, methods, n=1, **kw):
        self.workers = [Worker(fab, pool, methods, worker_id=f"t{i}", **kw) for i in range(n)]
        self.threads = [threading.Thread(target=w.run, daemon=True) for w in self.workers]
        for t in self.threads:
            t.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for w in self.workers:
            w.stop()
        for t in self.threads:
            t.join(30)


def test_futures_and_zero_copy_numpy(any_fab):
    with Pool(any_fab, "p", stream=False) as pool, Workers(any_fab, "p", {"square": square, "echo": echo}, n=2):
        futs = [pool.submit("square", i) for i in range(500)]
        assert [f.result(timeout=30) for f in futs] == [i * i for i in range(500)]
        a = np.arange(100_000, dtype=np.float32).reshape(100, 1000)
        got = pool.submit("square", a).result(timeout=30)
        assert got.dtype == np.float32 and got.shape == (100, 1000) and np.array_equal(got, a * a)
        # Arguments and keyword arguments of every JSON-able shape, and some that JSON cannot carry.
        args = (1, "two", [3.0, None], {"k": (4, 5)}, b"bytes", {1, 2})
        assert pool.submit("echo", *args, key=7).result(timeout=30) == [list(args), {"key": 7}]
        assert pool.done == 502


def test_stream_delivers_outcomes_that_arrive_before_the_agent_is_registered(mem_fab):
    pool = Pool(mem_fab, "p")
    with Workers(mem_fab, "p", {"square": square}):
        futs = [pool.submit("square", i) for i in range(50)]
        for f in futs:
            f.result(timeout=30)
        seen = []

        @pool.on_result("square")
        def got(result):
            seen.append(result.value)

        pool.run(until=lambda: len(seen) == 50, timeout=30)
        assert sorted(seen) == [i * i for i in range(50)]
    pool.close()


def test_results_iterator_and_failures(mem_fab):
    def boom(x):
        raise KeyError(x)

    with Pool(mem_fab, "p") as pool, Workers(mem_fab, "p", {"square": square, "boom": boom}, n=2):
        ids = {pool.submit("square", i).task_id: i for i in range(20)}
        bad = pool.submit("boom", "k", retries=5)
        outcomes = {}
        for r in pool.results(timeout=10):
            outcomes[r.task_id] = r
            if len(outcomes) == 21:
                break
        assert all(outcomes[t].value == i * i for t, i in ids.items())
        r = outcomes[bad.task_id]
        assert not r.ok and r.failure == "deterministic" and r.attempts == 1 and "KeyError" in r.error
        with pytest.raises(TaskFailed):
            bad.result(timeout=5)


def test_priorities_run_high_before_low(mem_fab):
    order = []
    gate = threading.Event()

    def record(tag):
        gate.wait(30)
        order.append(tag)
        return tag

    with Pool(mem_fab, "p", stream=False) as pool:
        lows = [pool.submit("record", f"low{i}", priority=-1) for i in range(5)]
        highs = [pool.submit("record", f"high{i}", priority=5) for i in range(5)]
        pool.flush()
        with Workers(mem_fab, "p", {"record": record}, concurrency=1):
            # The tasks sit in the .hi and .lo lanes (the worker also creates the normal lane, in its own thread).
            lanes = [mem_fab.topic(name) for name in mem_fab.topics(system=True)
                     if name.startswith("__pool.p.tasks.record.")]
            assert sorted(t.name for t in lanes) == ["__pool.p.tasks.record.hi", "__pool.p.tasks.record.lo"], lanes
            # The worker's group has taken tasks from both lanes (the first task holds it at the gate).
            def taken(lane) -> bool:
                return any(p["position"] for g in lane.groups() for p in lane.describe_group(g)["partitions"])

            wait_until(lambda: all(taken(lane) for lane in lanes), 30, "tasks taken from both lanes")
            gate.set()
            for f in lows + highs:
                f.result(timeout=30)
    # At most one low task (taken before the worker saw the high lane) runs before the last high one.
    last_high = max(order.index(f"high{i}") for i in range(5))
    assert sum(t.startswith("low") for t in order[:last_high]) <= 1, order


def test_resources_take_several_slots(mem_fab):
    running = []
    peak = []
    lock = threading.Lock()

    def hold(x):
        with lock:
            running.append(x)
            peak.append(len(running))
        time.sleep(0.05)    # the task's work: long enough for tasks to overlap if slots allowed
        with lock:
            running.remove(x)
        return x

    with Pool(mem_fab, "p", stream=False) as pool, Workers(mem_fab, "p", {"hold": hold}, concurrency=4):
        futs = [pool.submit("hold", i, resources={"slots": 4}) for i in range(6)]
        assert sorted(f.result(timeout=30) for f in futs) == list(range(6))
    assert max(peak) == 1, "a task taking all 4 slots ran beside another"


def test_transient_failures_retry_then_succeed(mem_fab):
    calls = {}

    def flaky(k):
        calls[k] = calls.get(k, 0) + 1
        if calls[k] < 3:
            raise OSError(f"try {calls[k]}")
        return k

    with Pool(mem_fab, "p", stream=False) as pool, Workers(mem_fab, "p", {"flaky": flaky}):
        assert pool.submit("flaky", "a", retries=2).result(timeout=30) == "a"
        with pytest.raises(TaskFailed) as ei:
            pool.submit("flaky", "b", retries=1).result(timeout=30)
        assert ei.value.result.failure == "transient" and ei.value.result.attempts == 2


def test_steering_restart_gets_pending_tasks_back(fab_dir):
    url = f"file://{fab_dir}"
    with mp.connect(url) as fab:
        pool = Pool(fab, "p", stream=False)
        ids = [pool.submit("square", i).task_id for i in range(30)]
        pool.close()  # no worker ran: every task is pending
    with mp.connect(url) as fab:
        pool = Pool(fab, "p")
        pending = pool.pending()
        assert sorted(pending) == sorted(ids)
        with Workers(fab, "p", {"square": square}):
            values = sorted(f.result(timeout=30) for f in pending.values())
        assert values == sorted(i * i for i in range(30))
        got = [r.task_id for r in pool.results(timeout=5)]
        assert sorted(got) == sorted(ids)
        pool.close()
    with mp.connect(url) as fab:
        pool = Pool(fab, "p")
        assert pool.pending() == {}
        assert list(pool.results(timeout=0.5)) == [], "outcomes taken before were delivered again"
        pool.close()


def test_heartbeats_become_node_events(mem_fab):
    mon = HealthMonitor(mem_fab, down_after=0.6)
    hb = Heartbeat(mem_fab, "node-a", kind="worker", interval=0.1, info=lambda: {"queue": 1})
    events = []
    deadline = time.monotonic() + 10
    while not any(e["event"] == "node_up" for e in events) and time.monotonic() < deadline:
        events += mon.poll(0.1)
    assert [e["node"] for e in events if e["event"] == "node_up"] == ["node-a"]
    # Silent (as if killed: no "leaving" beat) -> node_down after down_after.
    hb.stop(leaving=False)
    deadline = time.monotonic() + 10
    while not any(e["event"] == "node_down" for e in events) and time.monotonic() < deadline:
        events += mon.poll(0.1)
    down = [e for e in events if e["event"] == "node_down"]
    assert down and down[0]["node"] == "node-a" and "no heartbeat" in down[0]["reason"]
    # A clean stop is reported as such.
    hb2 = Heartbeat(mem_fab, "node-b", interval=0.1)
    deadline = time.monotonic() + 10
    while not any(e["event"] == "node_up" and e["node"] == "node-b" for e in events) and time.monotonic() < deadline:
        events += mon.poll(0.1)
    hb2.stop()
    deadline = time.monotonic() + 10
    while not any(e["event"] == "node_down" and e["node"] == "node-b" for e in events) and time.monotonic() < deadline:
        events += mon.poll(0.1)
    assert [e["reason"] for e in events if e["node"] == "node-b" and e["event"] == "node_down"] == ["left"]
    mon.close()


def test_growing_backlog_is_slow(mem_fab):
    mon = HealthMonitor(mem_fab, backlog_beats=4)
    q = iter(range(100))
    hb = Heartbeat(mem_fab, "busy", interval=0.05, info=lambda: {"queue": next(q)})
    events = []
    deadline = time.monotonic() + 10
    while not any(e["event"] == "slow" for e in events) and time.monotonic() < deadline:
        events += mon.poll(0.05)
    hb.stop()
    mon.close()
    assert any(e["event"] == "slow" and e["reason"] == "growing backlog" for e in events), events


def test_remove_group_member(mem_fab):
    """Removal takes effect until the member's next heartbeat (a live member rejoins at once, as in
    Kafka); for a dead or paused one it moves the partitions now (tests/integration/test_pool.py
    pauses a worker; the broker rules are in tests/cpp)."""
    t = mem_fab.create_topic("t", partitions=2)
    with t.consumer("g", member_id="a"):
        assert t.remove_group_member("g", "a")
        assert not t.remove_group_member("g", "nobody")
        with pytest.raises(mp.InvalidArgument):
            t.remove_group_member("g", "")
