"""Nothing lost in silence (issue 12): a producer whose service is gone raises from flush/close
with how many events, where and why; a full disk fails batches with StorageError and leaves
no gap in a producer's stream; reads keep working and writes resume once space returns."""
from __future__ import annotations

import subprocess
import time

import pytest

import mofka_py as mp

from service_helpers import Service, free_port


def _dead_service_topic(tmp_path, **connect_kw):
    svc = Service(tmp_path / "data", free_port()).start()
    fab = mp.connect(svc.url, **connect_kw)
    topic = fab.create_topic("t", partitions=2)
    prod = topic.producer()
    prod.push({"before": 1}, partition=0).result(timeout=30)
    svc.kill()
    return svc, fab, prod


def test_close_raises_when_the_service_is_gone_and_futures_fail(tmp_path):
    svc, fab, prod = _dead_service_topic(tmp_path, reconnect_timeout_ms=2000)
    try:
        futs = [prod.push({"i": i}, partition=i % 2) for i in range(5)]
        t0 = time.monotonic()
        with pytest.raises(mp.ConnectionError) as ei:
            prod.close()
        msg = str(ei.value)
        assert "5 event(s) to topic 't' (partitions 0, 1) were not stored" in msg, msg
        assert "cannot connect" in msg or "lost the connection" in msg, msg
        assert time.monotonic() - t0 < 60, "close waited far past the reconnect timeout"
        for f in futs:
            with pytest.raises(mp.ConnectionError):
                f.result(timeout=5)
    finally:
        fab.close()


def test_flush_and_close_with_timeouts_report_what_is_left(tmp_path):
    svc, fab, prod = _dead_service_topic(tmp_path)  # default reconnect_timeout_ms: 300000
    try:
        futs = [prod.push({"i": i}, partition=1) for i in range(3)]
        with pytest.raises(mp.TimeoutError) as ei:
            prod.flush(timeout=1.5)
        msg = str(ei.value)
        assert "flush(timeout=1.5 s): 3 event(s) to topic 't' (partition 1) not stored yet" in msg, msg
        assert "reconnect_timeout_ms = 300000" in msg, msg
        assert not any(f.done() for f in futs), "a flush that timed out keeps the events queued"
        with pytest.raises(mp.TimeoutError, match=r"within 0\.3 s"):
            futs[0].result(0.3)
        t0 = time.monotonic()
        with pytest.raises(mp.ConnectionError, match=r"close: 3 event\(s\) to topic 't' \(partition 1\)"):
            prod.close(timeout=1.0)
        assert time.monotonic() - t0 < 20, "close(timeout=1) did not give up"
        for f in futs:
            with pytest.raises(mp.ConnectionError, match="close\\(timeout=1 s\\)"):
                f.result(timeout=5)
    finally:
        fab.close()


# ------------------------------------------------------------------ a full disk

@pytest.fixture
def small_disk(tmp_path):
    """A 20 MB tmpfs (root only; skipped where mounting is not allowed), unmounted afterwards."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill_until_full(topic, n=5000, size=16 << 10):
    """Push n events of `size` bytes to partition 0; returns the futures."""
    prod = topic.producer(batch_size=8)
    futs = []
    for i in range(n):
        try:
            futs.append(prod.push({"i": i}, data=i.to_bytes(4, "little") * (size // 4), partition=0))
        except mp.StorageError:
            break  # refused at once: an earlier batch to the partition failed
    return prod, futs


def _check_gapless(topic, expected_first=0):
    """The stored events are exactly i = 0..k-1 in order, each intact. Returns k."""
    got = []
    with topic.consumer(start="earliest", partitions=[0]) as cons:
        while True:
            ev = cons.pull(timeout=1.0)
            if ev is None:
                break
            i = ev.metadata["i"]
            assert bytes(ev.data[:4]) == i.to_bytes(4, "little")
            got.append(i)
    assert got == list(range(expected_first, expected_first + len(got))), "a gap in the producer's stream"
    return len(got)


@pytest.mark.parametrize("where", ["embedded", "service"])
def test_full_disk_fails_batches_without_gaps_and_recovers(small_disk, tmp_path, where):
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (6 << 20))  # room that can be given back later
    svc = None
    if where == "embedded":
        fab = mp.connect(f"file://{small_disk / 'fab'}")
    else:
        svc = Service(small_disk / "fab", free_port()).start()
        fab = mp.connect(svc.url)
    try:
        topic = fab.create_topic("frames")
        prod, futs = _fill_until_full(topic)
        stored = failed = 0
        errors = set()
        for f in futs:
            try:
                f.result(timeout=60)
                stored += 1
            except mp.StorageError as exc:
                failed += 1
                errors.add(str(exc))
        assert failed > 0 and stored > 0
        assert any("No space left on device" in e and "free of" in e and str(small_disk) in e for e in errors), errors
        with pytest.raises(mp.StorageError):
            prod.flush(timeout=60)  # reported, not swallowed
        # Every acknowledged event is there, and nothing after the first failure: no gap.
        k = _check_gapless(topic)
        assert k == stored
        # Reads keep working while the disk is full (done above); writes resume once space returns.
        filler.unlink()
        with pytest.raises(mp.StorageError, match="reset"):
            prod.push({"i": k}, data=b"x", partition=0)
        prod.reset()
        more = [prod.push({"i": k + j}, data=(k + j).to_bytes(4, "little") * 64, partition=0) for j in range(50)]
        prod.flush(timeout=60)
        assert [f.result(timeout=30).offset for f in more] == list(range(k, k + 50))
        prod.close()
        assert _check_gapless(topic) == k + 50
    finally:
        fab.close()
        if svc:
            svc.stop()
