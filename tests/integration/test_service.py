"""The TCP service: real `mofka-py serve` processes, real sockets, kill -9 and restarts."""
from __future__ import annotations

import collections
import hashlib
import hmac
import os
import socket
import struct
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import mofka_py as mp

from service_helpers import Service, free_port, stored_batch_bytes

FRAME = struct.Struct("<IHHIIQQ")  # magic, version, type, flags, reserved, request id, body length
MAGIC, VERSION = 0x4659504D, 1


@pytest.fixture
def service(tmp_path):
    svc = Service(tmp_path / "fab", free_port()).start()
    yield svc
    svc.stop()


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def recv_frame(sock: socket.socket):
    magic, version, mtype, flags, _, rid, n = FRAME.unpack(recv_exact(sock, FRAME.size))
    assert magic == MAGIC and version == VERSION
    return mtype, flags, rid, recv_exact(sock, n)


def raw_login(port: int, token: str = "") -> socket.socket:
    """Log in speaking the protocol by hand (HMAC from Python's hashlib, not ours)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    mtype, flags, _, hello = recv_frame(s)
    assert mtype == 0x8001 and len(hello) == 33
    nonce = os.urandom(32)
    mac = hmac.new(token.encode(), hello[:32] + nonce + b"mofka-py client", hashlib.sha256).digest() if token else bytes(32)
    s.sendall(FRAME.pack(MAGIC, VERSION, 2, 0, 0, 0, 64) + nonce + mac)
    mtype, flags, _, ok = recv_frame(s)
    assert flags == 0 and mtype == 0x8003
    if token:
        assert ok == hmac.new(token.encode(), hello[:32] + nonce + b"mofka-py server", hashlib.sha256).digest()
    return s


def error_then_closed(sock: socket.socket) -> str:
    """The server answers a bad frame with an error frame, then closes the connection."""
    mtype, flags, _, body = recv_frame(sock)
    assert flags & 1, "expected an error frame"
    code, n = struct.unpack_from("<HI", body)
    msg = body[6:6 + n].decode()
    sock.settimeout(10)
    closed = sock.recv(1) == b""
    sock.close()
    assert closed, "connection should be closed after a bad frame"
    return msg


def test_round_trip_and_admin(service):
    with mp.connect(service.url) as fab:
        topic = fab.create_topic("frames", partitions=3)
        assert fab.topics() == ["frames"]
        with pytest.raises(mp.TopicExists):
            fab.create_topic("frames")
        with pytest.raises(mp.TopicNotFound):
            fab.topic("nope")
        arrays = [np.random.default_rng(i).standard_normal((16, 8)) for i in range(50)]
        with topic.producer() as prod:
            futs = [prod.push({"i": i}, data=a, key=f"k{i % 5}") for i, a in enumerate(arrays)]
        ids = [f.result(timeout=30) for f in futs]
        assert len(set(ids)) == 50
        topic.mark_complete()
        seen = {}
        with topic.consumer() as cons:
            for ev in cons:
                seen[ev.metadata["i"]] = np.frombuffer(ev.data, dtype=np.float64).reshape(16, 8).copy()
                assert ev.id == ids[ev.metadata["i"]]
        assert sorted(seen) == list(range(50))
        for i, a in enumerate(arrays):
            np.testing.assert_array_equal(seen[i], a)
        assert fab.connected_clients >= 1
        assert topic.describe()["sync"] == "batch"  # the service's default applies


def test_status_cli_shows_groups_lag_and_clients(service):
    with mp.connect(service.url) as fab:
        topic = fab.create_topic("t", partitions=2)
        with topic.producer() as prod:
            for i in range(10):
                prod.push({"i": i}, partition=i % 2)
        with topic.consumer("readers") as cons:
            for _ in range(4):
                cons.pull(timeout=10).ack()
        out = subprocess.run([sys.executable, "-m", "mofka_py.cli", "--url", service.url, "status"],
                             capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lags = {line.split()[1]: line.split()[-1] for line in out.stdout.splitlines() if line.startswith("t ")}
    assert sum(int(v.split(":")[1]) for v in lags.values()) == 6
    assert "connected clients:" in out.stdout


PRODUCER = textwrap.dedent("""
    import sys, mofka_py as mp
    url, who, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    fab = mp.connect(url, reconnect_timeout_ms=120_000)
    topic = fab.topic("events")
    with topic.producer(batch_size=64, linger_ms=0.5, max_pending_bytes=1 << 20) as prod:
        for i in range(n):
            prod.push({"who": who, "i": i}, key=f"{who}")
            if i == n // 4:
                print("quarter", flush=True)
        prod.flush()
    print("done", flush=True)
""")


def test_kill9_mid_produce_then_restart_keeps_every_acknowledged_event_once(tmp_path):
    port = free_port()
    svc = Service(tmp_path / "fab", port, sync="batch").start()
    with mp.connect(svc.url) as fab:
        fab.create_topic("events", partitions=2)
    script = tmp_path / "producer.py"
    script.write_text(PRODUCER)
    n = 20000
    procs = [subprocess.Popen([sys.executable, str(script), svc.url, str(w), str(n)], stdout=subprocess.PIPE, text=True)
             for w in range(3)]
    try:
        for p in procs:  # every producer is well into its stream
            assert p.stdout.readline().strip() == "quarter"
        assert any(p.poll() is None for p in procs), "producers finished before the crash: nothing was tested"
        svc.kill()
        time.sleep(1.0)     # an outage, not just a reconnect, is what the producers must ride out
        svc = Service(tmp_path / "fab", port, sync="batch").start()
        for p in procs:  # they finish on their own, without any help from user code
            p.wait(timeout=240)
            out = p.stdout.read()  # through the same buffer readline() used
            assert p.returncode == 0 and out.strip().endswith("done")
        with mp.connect(svc.url) as fab:
            topic = fab.topic("events")
            topic.mark_complete()
            count = collections.Counter()
            last = {}
            with topic.consumer() as cons:
                for ev in cons:
                    md = ev.metadata
                    count[(md["who"], md["i"])] += 1
                    key = (ev.partition, md["who"])
                    assert last.get(key, -1) < md["i"], "order within a partition broken"
                    last[key] = md["i"]
        assert len(count) == 3 * n, "an acknowledged event is missing"
        assert max(count.values()) == 1, "an event was stored twice"
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()
        svc.stop()


def test_group_resumes_from_committed_offsets_after_restart(tmp_path):
    port = free_port()
    svc = Service(tmp_path / "fab", port).start()
    try:
        with mp.connect(svc.url) as fab:
            topic = fab.create_topic("t", partitions=1)
            with topic.producer() as prod:
                for i in range(100):
                    prod.push({"i": i})
            with topic.consumer("g") as cons:
                for _ in range(37):
                    cons.pull(timeout=10).ack()
                cons.commit()
        assert svc.stop() == 0
        svc = Service(tmp_path / "fab", port).start()
        with mp.connect(svc.url) as fab:
            with fab.topic("t").consumer("g") as cons:
                ev = cons.pull(timeout=10)
                assert ev.metadata == {"i": 37} and ev.offset == 37
    finally:
        svc.stop()


def test_token_auth(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("correct horse battery staple\n")
    svc = Service(tmp_path / "fab", free_port(), token_file=token_file).start()
    try:
        with pytest.raises(mp.AuthError):
            mp.connect(svc.url)
        with pytest.raises(mp.AuthError):
            mp.connect(svc.url, token="wrong")
        with mp.connect(svc.url, token="correct horse battery staple") as fab:
            fab.create_topic("ok")
        s = raw_login(svc.port, "correct horse battery staple")  # hashlib's HMAC agrees with ours
        s.close()
        s = socket.create_connection(("127.0.0.1", svc.port), timeout=10)
        recv_frame(s)
        s.sendall(FRAME.pack(MAGIC, VERSION, 2, 0, 0, 0, 64) + os.urandom(64))
        assert "wrong token" in error_then_closed(s)
    finally:
        svc.stop()


def test_refuses_non_loopback_without_token(tmp_path):
    out = subprocess.run([sys.executable, "-m", "mofka_py.cli", "serve", "--listen", "0.0.0.0:0", "--data-dir",
                          str(tmp_path / "f")], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "token" in out.stderr
    assert not (tmp_path / "f" / "topics").exists() or not os.listdir(tmp_path / "f" / "topics")


@pytest.mark.parametrize("case", ["garbage_before_login", "wrong_version", "oversized", "request_before_login",
                                  "malformed_body", "unknown_type", "bad_batch_crc", "truncated"])
def test_bad_frames_close_only_that_connection_and_write_nothing(service, case):
    with mp.connect(service.url) as fab:
        topic = fab.create_topic("t")
        with topic.producer() as prod:
            prod.push({"before": True})
        before = topic.describe()["partitions"][0]["end_offset"]
        if case in ("garbage_before_login", "wrong_version", "request_before_login"):
            s = socket.create_connection(("127.0.0.1", service.port), timeout=10)
            recv_frame(s)
            if case == "garbage_before_login":
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + b"\0" * 8)
            elif case == "wrong_version":
                s.sendall(FRAME.pack(MAGIC, 99, 2, 0, 0, 0, 64) + bytes(64))
            else:
                s.sendall(FRAME.pack(MAGIC, VERSION, 11, 0, 0, 1, 0))
            msg = error_then_closed(s)
            assert msg
        else:
            s = raw_login(service.port)
            if case == "oversized":
                s.sendall(FRAME.pack(MAGIC, VERSION, 13, 0, 0, 1, 1 << 40))
                assert "exceeds" in error_then_closed(s)
            elif case == "malformed_body":
                s.sendall(FRAME.pack(MAGIC, VERSION, 40, 0, 0, 1, 5) + b"\x0b\x00\xff\xff\xff")  # describe, bad length
                assert "malformed" in error_then_closed(s)
            elif case == "unknown_type":
                s.sendall(FRAME.pack(MAGIC, VERSION, 999, 0, 0, 1, 0))
                assert "unknown" in error_then_closed(s)
            elif case == "bad_batch_crc":
                batch = bytearray(stored_batch_bytes())
                batch[-1] ^= 0x40  # a flipped data bit: the structure is fine, the CRC is not
                trailer = struct.pack("<I", 1) + b"t" + struct.pack("<I", 0)
                body = bytes(batch) + trailer + struct.pack("<I", len(trailer))
                s.sendall(FRAME.pack(MAGIC, VERSION, 13, 0, 0, 7, len(body)) + body)
                mtype, flags, rid, reply = recv_frame(s)
                assert flags & 1 and rid == 7 and b"CRC32C" in reply
                s.close()
            elif case == "truncated":
                s.sendall(FRAME.pack(MAGIC, VERSION, 13, 0, 0, 1, 1000) + b"x" * 10)
        s.close()
        # Other clients keep working, and nothing was written.
        assert topic.describe()["partitions"][0]["end_offset"] == before
        with topic.producer() as prod:
            assert prod.push({"after": True}).result(timeout=30).offset == before


def test_too_many_connections_are_refused_politely(tmp_path):
    """Once every slot holds a logged-in client, a newcomer gets an error frame. (While some
    connections have not logged in, the oldest of them makes way instead: see
    test_service_hardening.py.)"""
    port = free_port()
    cmd = [sys.executable, "-c", textwrap.dedent(f"""
        import mofka_py._core as c, sys, threading
        srv = c.Server("memory://", {{"port": {port}, "max_connections": 2}})
        stop = threading.Event()
        threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
        print("ready", flush=True)
        while not stop.is_set():
            srv.poll(50)
        srv.shutdown()
    """)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    socks = []
    try:
        assert proc.stdout.readline().strip() == "ready"
        socks += [raw_login(port), raw_login(port)]
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        socks.append(s)
        mtype, flags, _, body = recv_frame(s)
        assert flags & 1 and b"too many connections" in body
    finally:
        for s in socks:
            s.close()
        proc.stdin.write("stop\n")
        proc.stdin.flush()
        proc.wait(timeout=30)
        proc.stdin.close()
        proc.stdout.close()


CRASHING_CONSUMER = textwrap.dedent("""
    import os, signal, sys, mofka_py as mp
    fab = mp.connect(sys.argv[1])
    cons = fab.topic("t").consumer("g", member_id=sys.argv[2] or None)
    for _ in range(10):
        cons.pull(timeout=30).ack()
    cons.commit()
    print("committed", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # gone without leaving the group
""")


@pytest.mark.parametrize("stable_id", [True, False])
def test_restarted_member_with_stable_id_takes_its_partitions_back_at_once(service, tmp_path, stable_id):
    with mp.connect(service.url) as fab:
        topic = fab.create_topic("t", partitions=2)
        with topic.producer() as prod:
            for i in range(40):
                prod.push({"i": i}, partition=i % 2)
        script = tmp_path / "crash.py"
        script.write_text(CRASHING_CONSUMER)
        member = "ingest-1" if stable_id else ""
        proc = subprocess.run([sys.executable, str(script), service.url, member], capture_output=True, text=True,
                              timeout=120)
        assert "committed" in proc.stdout and proc.returncode == -9
        with topic.consumer("g", member_id=member or None) as cons:
            ev = cons.pull(timeout=5)
            if stable_id:
                # The same member again: no session to wait out, it reads on from the committed offsets.
                assert ev is not None
                seen = {(ev.partition, ev.offset)}
                for _ in range(29):
                    e = cons.pull(timeout=10)
                    seen.add((e.partition, e.offset))
                assert len(seen) == 30
            else:
                # A new member: the dead one's partitions stay held until its 30 s session expires.
                assert ev is None


def test_memory_reserve_prefaults_then_serves_intact_events(tmp_path):
    """``serve --memory-reserve``: memory pre-faulted before listening, events round-trip intact."""
    svc = Service(None, free_port(), sync="none", extra=["--memory-reserve", "16M"]).start(timeout=120)
    try:
        with mp.connect(svc.url) as fab:
            topic = fab.create_topic("big", segment_bytes=4 << 20)
            rng = np.random.default_rng(5)
            blobs = [rng.integers(0, 256, int(n), dtype=np.uint8) for n in rng.integers(1, 1 << 20, 24)]
            with topic.producer(batch_bytes=1 << 20) as prod:
                for i, b in enumerate(blobs):
                    prod.push({"i": i}, data=b)
            with topic.consumer() as cons:
                for i, b in enumerate(blobs):
                    ev = cons.pull(timeout=10)
                    assert ev is not None and ev.metadata["i"] == i
                    assert hashlib.sha256(bytes(ev.data)).digest() == hashlib.sha256(b.tobytes()).digest()
    finally:
        assert svc.stop() == 0
    assert b"reserved 16 MiB of pre-faulted memory" in svc.log


def test_memory_reserve_refused_with_a_data_dir(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mofka_py.cli", "serve", "--data-dir", str(tmp_path / "d"),
                        "--listen", f"127.0.0.1:{free_port()}", "--memory-reserve", "1G"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "--memory-reserve applies to in-memory storage" in r.stderr
    assert not (tmp_path / "d").exists()
    r = subprocess.run([sys.executable, "-m", "mofka_py.cli", "serve", "--listen", f"127.0.0.1:{free_port()}",
                        "--memory-reserve", "lots"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "K, M, G or T" in r.stderr


def test_produce_body_whose_tail_arrives_late_is_answered(service, tmp_path):
    """A produce body of just over 1 MiB arriving in three pieces: the server waits for a large
    part of it at once (a low-water mark on the socket), then for the small tail. The tail alone
    is below the mark that was set for the large part: the server must still wake for it (it
    used not to, and the connection hung with the tail unread in the socket)."""
    with mp.connect(f"file://{tmp_path / 'one'}") as fab:
        with fab.create_topic("x").producer() as prod:
            prod.push({"big": True}, data=bytes(range(256)) * ((1 << 20) // 256 + 480))
    with open(tmp_path / "one" / "topics" / "x" / "p0" / f"{0:020d}.log", "rb") as fh:
        batch = fh.read()
    with mp.connect(service.url) as fab:
        topic = fab.create_topic("t")
        trailer = struct.pack("<I", 1) + b"t" + struct.pack("<I", 0)
        body = batch + trailer + struct.pack("<I", len(trailer))
        head = 100 << 10
        tail = len(body) - head - (1 << 20)    # the middle piece is exactly the mark (1 MiB)
        assert 0 < tail < 64 << 10, len(body)  # the tail is read through the small-read path
        s = raw_login(service.port)
        s.settimeout(60)
        s.sendall(FRAME.pack(MAGIC, VERSION, 13, 0, 0, 5, len(body)) + body[:head])
        time.sleep(0.3)     # the pieces must arrive apart for the server to see them apart (not a timing check)
        s.sendall(body[head:len(body) - tail])
        time.sleep(0.3)
        s.sendall(body[len(body) - tail:])
        mtype, flags, rid, reply = recv_frame(s)   # the fault made this time out
        assert rid == 5 and flags == 0, reply
        s.close()
        assert topic.describe()["partitions"][0]["end_offset"] == 1
