"""mofka_py.cluster.Etcd against a real etcd member (tests/etcd_helpers.EtcdServer, free loopback ports):
keys, compare-and-swap, leases, watches, and what callers see when etcd is stopped or hung."""
from __future__ import annotations

import json
import threading
import time
import urllib.request
from typing import List, Optional, Tuple

import pytest

from mofka_py.cluster import Etcd, EtcdError, EtcdUnavailable, KeyValue, compare, op_put, op_range
from mofka_py.errors import ConnectionError as MofkaConnectionError
from mofka_py.errors import Error
from waiting import wait_until

from service_helpers import free_port


class Recorder:
    """A watch callback keeping every batch it got."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.batches: List[List[Tuple[str, KeyValue]]] = []

    def __call__(self, events: List[Tuple[str, KeyValue]]) -> None:
        with self.lock:
            self.batches.append(list(events))

    def events(self) -> List[Tuple[str, bytes, bytes]]:
        with self.lock:
            return [(t, kv.key, kv.value) for batch in self.batches for t, kv in batch]


def current_revision(etcd: Etcd) -> int:
    return int(etcd.status()["header"]["revision"])


def test_put_get_prefix_delete(etcd_server):
    etcd = Etcd(etcd_server.url)
    r1 = etcd.put("/t/b", "2")
    r2 = etcd.put(b"/t/a", b"\x00\xff binary")
    etcd.put("/u/other", "x")
    assert r2 > r1 > 0
    kv = etcd.get("/t/a")
    assert kv is not None and kv.key == b"/t/a" and kv.value == b"\x00\xff binary"
    assert kv.create_revision == kv.mod_revision == r2 and kv.version == 1 and kv.lease == 0
    assert etcd.get("/t/missing") is None
    etcd.put("/t/a", "")  # an empty value is a value (the gateway leaves it out of the reply)
    kv2 = etcd.get("/t/a")
    assert kv2 is not None and kv2.value == b"" and kv2.version == 2 and kv2.create_revision == r2
    assert [k.key for k in etcd.get_prefix("/t/")] == [b"/t/a", b"/t/b"]
    assert etcd.get_prefix("/none/") == []
    assert etcd.delete("/t/b") == 1
    assert etcd.delete("/t/b") == 0
    etcd.put("/t/c", "3")
    assert etcd.delete_prefix("/t/") == 2
    assert etcd.get_prefix("/t/") == []
    assert etcd.get("/u/other") is not None


def test_put_if_absent_one_winner_among_threads(etcd_server):
    etcd = Etcd(etcd_server.url)
    n = 8
    barrier = threading.Barrier(n)
    results: List[Tuple[bool, KeyValue]] = []
    errors: List[BaseException] = []
    lock = threading.Lock()

    def contend(i: int) -> None:
        try:
            barrier.wait(10)
            r = etcd.put_if_absent("/election/leader", f"node-{i}")
            with lock:
                results.append(r)
        except BaseException as e:  # reported below, not lost in the thread
            with lock:
                errors.append(e)

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert len(results) == n
    winners = [kv for created, kv in results if created]
    assert len(winners) == 1, results
    assert {kv.create_revision for _, kv in results} == {winners[0].create_revision}
    assert {kv.value for _, kv in results} == {winners[0].value}
    stored = etcd.get("/election/leader")
    assert stored is not None and stored.value == winners[0].value and stored.version == 1


def test_compare_and_swap(etcd_server):
    etcd = Etcd(etcd_server.url)
    assert etcd.put_if_mod_revision("/cas", "v1", 0) is True  # 0: only if absent
    assert etcd.put_if_mod_revision("/cas", "v1-again", 0) is False
    kv = etcd.get("/cas")
    assert kv is not None and kv.value == b"v1"
    assert etcd.put_if_mod_revision("/cas", "v2", kv.mod_revision) is True
    assert etcd.put_if_mod_revision("/cas", "v3", kv.mod_revision) is False  # stale revision
    now = etcd.get("/cas")
    assert now is not None and now.value == b"v2"
    assert etcd.delete_if_create_revision("/cas", now.create_revision + 1) is False
    assert etcd.get("/cas") is not None
    assert etcd.delete_if_create_revision("/cas", now.create_revision) is True
    assert etcd.get("/cas") is None
    # A key created again is another incarnation: the old create_revision no longer deletes it.
    etcd.put("/cas", "v4")
    assert etcd.delete_if_create_revision("/cas", now.create_revision) is False


def test_raw_txn_with_helpers(etcd_server):
    etcd = Etcd(etcd_server.url)
    reply = etcd.txn([compare("/x", "VERSION", "==", 0)], [op_put("/x", "1"), op_range("/x")], [op_range("/x")])
    assert reply["succeeded"] is True
    kv = KeyValue.from_gateway(reply["responses"][1]["response_range"]["kvs"][0])
    assert kv.value == b"1"
    reply = etcd.txn([compare("/x", "VALUE", "==", "2")], [op_put("/x", "3")], [op_range("/x")])
    assert reply["succeeded"] is False  # the gateway leaves "succeeded" out when false
    assert etcd.get("/x").value == b"1"  # type: ignore[union-attr]


def test_error_reply_is_etcd_error(etcd_server):
    etcd = Etcd(etcd_server.url)
    with pytest.raises(EtcdError, match="lease not found") as info:
        etcd.put("/leased", "v", lease=123456789)
    assert isinstance(info.value, Error)
    assert "grant a new one" in str(info.value)


def test_key_of_a_lease_disappears_when_the_lease_ends(etcd_server):
    etcd = Etcd(etcd_server.url)
    lease, ttl = etcd.lease_grant(1)
    assert lease > 0 and ttl >= 1
    etcd.put("/lease/a", "alive", lease=lease)
    kv = etcd.get("/lease/a")
    assert kv is not None and kv.lease == lease
    wait_until(lambda: etcd.get("/lease/a") is None, 20, "the key of an expired lease to be deleted")
    assert etcd.lease_keepalive(lease) == 0


def test_keepalive_keeps_the_key(etcd_server):
    etcd = Etcd(etcd_server.url)
    lease, _ = etcd.lease_grant(1)
    etcd.put("/lease/b", "alive", lease=lease)
    end = time.monotonic() + 3.5  # several TTLs
    while time.monotonic() < end:
        assert etcd.lease_keepalive(lease) >= 1
        assert etcd.get("/lease/b") is not None
        time.sleep(0.2)
    wait_until(lambda: etcd.get("/lease/b") is None, 20, "the key to go once keepalives stop")


def test_keepalive_after_revoke_is_zero(etcd_server):
    etcd = Etcd(etcd_server.url)
    lease, _ = etcd.lease_grant(30)
    etcd.put("/lease/c", "v", lease=lease)
    assert etcd.lease_keepalive(lease) >= 1
    etcd.lease_revoke(lease)
    assert etcd.get("/lease/c") is None  # revoking deletes the lease's keys at once
    assert etcd.lease_keepalive(lease) == 0
    etcd.lease_revoke(lease)  # already gone: not an error


def test_watch_sees_puts_and_deletes_in_order(etcd_server):
    etcd = Etcd(etcd_server.url)
    etcd.put("/w/before", "old")
    start = current_revision(etcd) + 1
    rec = Recorder()
    stop = threading.Event()
    thread = etcd.watch_prefix("/w/", start, rec, stop)
    try:
        etcd.put("/w/a", "1")
        etcd.put("/elsewhere", "not watched")
        etcd.put("/w/b", "2")
        etcd.put("/w/a", "3")
        etcd.delete("/w/a")
        etcd.delete_prefix("/w/")
        expected = [("PUT", b"/w/a", b"1"), ("PUT", b"/w/b", b"2"), ("PUT", b"/w/a", b"3"),
                    ("DELETE", b"/w/a", b""), ("DELETE", b"/w/b", b""), ("DELETE", b"/w/before", b"")]
        wait_until(lambda: len(rec.events()) >= len(expected), 20, "the watch to see 6 events")
        events = rec.events()
        # delete_prefix deletes /w/b and /w/before in one revision; their order within it is etcd's
        assert events[:4] == expected[:4]
        assert sorted(events[4:]) == sorted(expected[4:])
        revisions = [kv.mod_revision for batch in rec.batches for _, kv in batch]
        assert revisions == sorted(revisions)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive(), "the watch thread did not stop after its stop event was set"


def test_watch_from_now_and_past_revision(etcd_server):
    etcd = Etcd(etcd_server.url)
    r1 = etcd.put("/h/1", "one")
    etcd.put("/h/2", "two")
    rec = Recorder()
    stop = threading.Event()
    threads = [etcd.watch_prefix("/h/", r1, rec, stop)]  # from the past: replays both puts
    now = Recorder()
    threads.append(etcd.watch_prefix("/h/", 0, now, stop))
    try:
        wait_until(lambda: len(rec.events()) >= 2, 20, "the replay of past events")
        assert rec.events() == [("PUT", b"/h/1", b"one"), ("PUT", b"/h/2", b"two")]
        # 0 means from now: wait until the stream is established before writing (it may take a moment)
        wait_until(lambda: (etcd.put("/h/3", "three"), now.events())[1], 20, "the from-now watch to see a put")
        assert all(e[0] == "PUT" and e[1] == b"/h/3" for e in now.events())
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert not any(t.is_alive() for t in threads)


def test_watch_resumes_after_pause(etcd_server):
    etcd = Etcd(etcd_server.url)
    rec = Recorder()
    stop = threading.Event()
    thread = etcd.watch_prefix("/p/", current_revision(etcd) + 1, rec, stop)
    try:
        etcd.put("/p/a", "1")
        wait_until(lambda: rec.events(), 20, "the first event")
        etcd_server.pause()
        time.sleep(1.5)  # longer than the watch's poll interval: the thread must not give up
        etcd_server.resume()
        etcd.put("/p/b", "2")
        etcd.delete("/p/a")
        wait_until(lambda: len(rec.events()) >= 3, 30, "the events after the pause")
        assert rec.events() == [("PUT", b"/p/a", b"1"), ("PUT", b"/p/b", b"2"), ("DELETE", b"/p/a", b"")]
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_watch_resumes_after_restart_without_repeating(etcd_server):
    etcd = Etcd(etcd_server.url)
    rec = Recorder()
    stop = threading.Event()
    thread = etcd.watch_prefix("/r/", current_revision(etcd) + 1, rec, stop)
    try:
        etcd.put("/r/a", "1")
        etcd.put("/r/b", "2")
        wait_until(lambda: len(rec.events()) >= 2, 20, "the events before the restart")
        etcd_server.restart()  # the stream breaks; the thread connects again
        etcd.put("/r/c", "3")
        wait_until(lambda: len(rec.events()) >= 3, 30, "the event after the restart")
        time.sleep(0.5)  # a repeated event would show up here
        assert rec.events() == [("PUT", b"/r/a", b"1"), ("PUT", b"/r/b", b"2"), ("PUT", b"/r/c", b"3")]
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_watch_of_compacted_history_reports_the_loss(etcd_server):
    etcd = Etcd(etcd_server.url)
    first = etcd.put("/c/a", "1")
    etcd.put("/c/a", "2")
    last = etcd.put("/c/a", "3")
    req = urllib.request.Request(f"{etcd_server.url}/v3/kv/compaction", method="POST",
                                 data=json.dumps({"revision": str(last)}).encode())
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
    rec = Recorder()
    stop = threading.Event()
    thread = etcd.watch_prefix("/c/", first, rec, stop)
    try:
        wait_until(lambda: len(rec.batches) >= 2, 20, "the loss marker and the retained event")
        assert rec.batches[0] == []  # the marker: history before `last` is gone
        assert rec.events() == [("PUT", b"/c/a", b"3")]  # then from the oldest retained revision on
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_watch_callback_error_does_not_end_the_watch(etcd_server):
    etcd = Etcd(etcd_server.url)
    rec = Recorder()
    calls = []

    def flaky(events):
        calls.append(events)
        if len(calls) == 1:
            raise RuntimeError("callback bug")
        rec(events)

    stop = threading.Event()
    thread = etcd.watch_prefix("/f/", current_revision(etcd) + 1, flaky, stop)
    try:
        etcd.put("/f/a", "1")
        wait_until(lambda: calls, 20, "the first callback")
        etcd.put("/f/b", "2")
        wait_until(lambda: rec.events(), 20, "the watch to go on after a failed callback")
        assert rec.events() == [("PUT", b"/f/b", b"2")]
    finally:
        stop.set()
        thread.join(10)


def test_stopped_etcd_raises_unavailable(etcd_server):
    url = etcd_server.url
    etcd = Etcd(url, timeout=1.0)
    etcd.put("k", "v")  # a live connection, then the member goes away
    etcd_server.stop()
    for call in (lambda: etcd.get("k"), lambda: Etcd(url, timeout=1.0).put("k", "v"),
                 lambda: etcd.lease_grant(2), etcd.status):
        t0 = time.monotonic()
        with pytest.raises(EtcdUnavailable) as info:
            call()
        assert time.monotonic() - t0 < 30
        assert url in str(info.value) and "is etcd running" in str(info.value)
        assert isinstance(info.value, MofkaConnectionError) and isinstance(info.value, Error)


def test_paused_etcd_raises_unavailable_then_recovers(etcd_server):
    etcd = Etcd(etcd_server.url, timeout=1.0)
    etcd.put("k", "v")
    etcd_server.pause()
    try:
        for call in (lambda: etcd.get("k"), lambda: Etcd(etcd_server.url, timeout=1.0).get("k")):
            t0 = time.monotonic()
            with pytest.raises(EtcdUnavailable, match="did not answer within 1.0 s"):
                call()
            assert time.monotonic() - t0 < 30
    finally:
        etcd_server.resume()

    def read() -> Optional[KeyValue]:
        try:
            return etcd.get("k")
        except EtcdUnavailable:  # a loaded machine may take longer than 1 s to catch up after SIGCONT
            return None

    kv = wait_until(read, 30, "the same client to read again after the member resumed")
    assert kv.value == b"v"


def test_endpoint_list_skips_a_dead_member(etcd_server):
    dead = free_port()
    etcd = Etcd(f"etcd://127.0.0.1:{dead},{etcd_server.url}")
    assert etcd.endpoints == [f"http://127.0.0.1:{dead}", etcd_server.url]
    etcd.put("k", "v")
    assert etcd.get("k").value == b"v"  # type: ignore[union-attr]
    both_dead = Etcd(f"etcd://127.0.0.1:{dead},127.0.0.1:{free_port()}", timeout=1.0)
    with pytest.raises(EtcdUnavailable, match=f"127.0.0.1:{dead}") as info:
        both_dead.get("k")
    assert "no etcd endpoint answered" in str(info.value)


def test_one_client_many_threads(etcd_server):
    etcd = Etcd(etcd_server.url)
    errors: List[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(20):
                etcd.put(f"/m/{i}/{j}", str(j))
                assert etcd.get(f"/m/{i}/{j}").value == str(j).encode()  # type: ignore[union-attr]
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(etcd.get_prefix("/m/")) == 80
    etcd.close()
    assert etcd.get("/m/0/0") is not None  # a closed client opens a new connection
