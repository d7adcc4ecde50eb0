"""The service against connections that never log in, peers that are not mofka-py services,
and weak tokens: real `mofka-py serve` processes, real sockets, stopped by pid."""
from __future__ import annotations

import http.server
import json
import os
import resource
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from typing import Optional

import pytest

import mofka_py as mp
from mofka_py.service import read_token
from waiting import wait_until

from service_helpers import Service, free_port, idle_socket, read_until_closed

TOKEN = "correct horse battery staple"
FRAME = struct.Struct("<IHHIIQQ")  # magic, version, type, flags, reserved, request id, body length
MAGIC, VERSION, AUTH = 0x4659504D, 1, 2


def frames(data: bytes) -> list:
    """The (type, flags, body) of each whole frame in ``data``."""
    out = []
    while len(data) >= FRAME.size:
        magic, version, mtype, flags, _, _, n = FRAME.unpack_from(data)
        assert magic == MAGIC and version == VERSION
        out.append((mtype, flags, data[FRAME.size:FRAME.size + n]))
        data = data[FRAME.size + n:]
    return out


def error_text(body: bytes) -> str:
    (n,) = struct.unpack_from("<I", body, 2)
    return body[6:6 + n].decode()


def closing_reason(data: Optional[bytes]) -> str:
    """The message of the error frame the server sent before closing (after its greeting)."""
    assert data is not None, "the server did not close the connection"
    errors = [error_text(body) for _, flags, body in frames(data) if flags & 1]
    assert errors, f"closed without an error frame: {data!r}"
    return errors[-1]


def read_frame(sock: socket.socket) -> bytes:
    """One whole frame from ``sock``, as received."""
    def exact(n: int) -> bytes:
        got = b""
        while len(got) < n:
            chunk = sock.recv(n - len(got))
            assert chunk, "closed in the middle of a frame"
            got += chunk
        return got

    head = exact(FRAME.size)
    return head + exact(FRAME.unpack(head)[-1])


def hello(sock: socket.socket) -> None:
    """Wait for the server's greeting: once it arrives, the server has accepted ``sock``."""
    head = b""
    while len(head) < FRAME.size:
        chunk = sock.recv(FRAME.size - len(head))
        assert chunk, "closed before the greeting"
        head += chunk
    _, _, mtype, flags, _, _, n = FRAME.unpack(head)
    assert mtype == 0x8001 and flags == 0
    body = b""
    while len(body) < n:
        body += sock.recv(n - len(body))


def readline_within(proc: subprocess.Popen, bound: float = 60.0) -> str:
    """The next line ``proc`` prints, failing if none comes within a generous ``bound`` seconds."""
    line = []
    t = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    t.start()
    t.join(bound)
    assert line, f"no line from the process after {bound} s"
    return line[0].strip()


# A flood in a process of its own (as an attacker would be, and so that it does not take the
# test's GIL): idle connections from 127.0.0.2-9 that never send a byte, and slow logins from
# 127.0.0.10-11 that trickle a valid frame header one byte at a time and never finish it.
# It prints "saturated" once the server has closed one of its connections to make room, and
# on stdin's end the reasons the server gave for closing its connections, as JSON.
FLOOD = textwrap.dedent("""
    import json, select, socket, struct, sys, threading, time
    port = int(sys.argv[1])
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    header = struct.pack("<IHHIIQQ", 0x4659504D, 1, 2, 0, 0, 0, 64)
    reasons = {}
    opened = 0
    saturated = False
    open_ = {}  # socket -> [bytes received, bytes of header sent (slow ones) or None]

    def connect(source, slow):
        global opened
        s = socket.socket()
        try:
            s.bind((source, 0))
            s.connect(("127.0.0.1", port))
        except OSError:
            s.close()
            return
        s.setblocking(False)
        open_[s] = [b"", 0 if slow else None]
        opened += 1

    def reason(data):
        while len(data) >= 32:
            _, _, _, flags, _, _, n = struct.unpack_from("<IHHIIQQ", data)
            body, data = data[32:32 + n], data[32 + n:]
            if flags & 1:
                (k,) = struct.unpack_from("<I", body, 2)
                text = body[6:6 + k].decode()
                if "no login within" in text:
                    return "login timeout"
                if "are waiting to log in" in text:
                    return "per-address cap"
                if "waiting to log in" in text:
                    return "pending-login cap"
                return text
        return "closed without a reason"

    i = 0
    last_trickle = 0.0
    while not stop.is_set():
        if len(open_) < 200:
            connect(f"127.0.0.{2 + i % 8}", False)
            i += 1
        if sum(1 for v in open_.values() if v[1] is not None) < 4:
            connect(f"127.0.0.{10 + i % 2}", True)
        now = time.monotonic()
        if now - last_trickle > 0.05:
            last_trickle = now
            for s, v in open_.items():
                if v[1] is not None and v[1] < len(header) - 1:  # never the last byte
                    try:
                        s.send(header[v[1]:v[1] + 1])
                        v[1] += 1
                    except OSError:
                        pass
        readable, _, _ = select.select(list(open_)[:1000], [], [], 0.001)
        for s in readable:
            v = open_[s]
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                chunk = b""
            except BlockingIOError:
                continue
            if chunk:
                v[0] += chunk
                continue
            r = reason(v[0])
            reasons[r] = reasons.get(r, 0) + 1
            if r.endswith("cap") and not saturated:
                saturated = True
                print("saturated", flush=True)
            del open_[s]
            s.close()
    print(json.dumps({"opened": opened, "reasons": reasons}), flush=True)
""")


def test_flood_of_idle_and_slow_logins_does_not_lock_out_clients_with_the_token(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    svc = Service(tmp_path / "fab", free_port(), token_file=token_file, sync="none", health=False,
                  extra=["--max-connections", "64", "--max-pending-logins", "16",
                         "--max-pending-logins-per-address", "4", "--login-timeout-ms", "1500"]).start()
    flood = None
    try:
        reader = mp.connect(svc.url, token=TOKEN)  # logged in before the flood; reads while it lasts
        topic = reader.create_topic("events", partitions=2)
        flood = subprocess.Popen([sys.executable, "-c", FLOOD, str(svc.port)], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        assert readline_within(flood) == "saturated"
        # While the pending-login caps are full, fresh clients log in, produce and are acknowledged.
        sent = {}
        for r in range(20):
            with mp.connect(svc.url, token=TOKEN) as fab:
                with fab.topic("events").producer(batch_size=16) as prod:
                    futs = {(r, i): prod.push({"r": r, "i": i}, data=os.urandom(64)) for i in range(50)}
                    for _key, fut in futs.items():
                        fut.result(timeout=60)
                sent.update({k: None for k in futs})
        topic.mark_complete()
        seen = {}
        with topic.consumer() as cons:
            for ev in cons:
                seen[(ev.metadata["r"], ev.metadata["i"])] = bytes(ev.data)
        assert sorted(seen) == sorted(sent)
        assert all(len(d) == 64 for d in seen.values())
        flood.stdin.close()
        stats = json.loads(readline_within(flood))
        assert flood.wait(timeout=60) == 0
        # The caps made room by closing pending logins, each time saying why.
        assert stats["reasons"].get("per-address cap", 0) + stats["reasons"].get("pending-login cap", 0) > 0, stats
        assert set(stats["reasons"]) <= {"per-address cap", "pending-login cap", "login timeout"}, stats

        # Below the caps, idle and slow connections are closed by the login deadline alone.
        idle = [idle_socket(svc.port, f"127.0.0.{20 + k}") for k in range(3)]
        slow = [idle_socket(svc.port, f"127.0.0.{30 + k}") for k in range(3)]
        header = FRAME.pack(MAGIC, VERSION, AUTH, 0, 0, 0, 64)
        closed = {}

        def trickle(k: int, s: socket.socket) -> None:
            for b in header[:-1]:
                try:
                    s.send(bytes([b]))
                except OSError:
                    break
                time.sleep(0.2)     # a slow login, byte by byte: the slowness is what is tested
            closed[k] = read_until_closed(s)

        threads = [threading.Thread(target=trickle, args=(k, s)) for k, s in enumerate(slow)]
        for t in threads:
            t.start()
        for s in idle:
            got = read_until_closed(s)
            assert got is not None, "an idle connection that never logged in is still open"
            assert "no login within 1500 ms" in closing_reason(got)
            s.close()
        for t in threads:
            t.join()
        assert all(closed[k] is not None for k in range(3)), "a slow login is still open"
        for s in slow:
            s.close()

        # The service is healthy: still running, only the reader counted, and serving.
        assert svc.proc.poll() is None
        wait_until(lambda: reader.connected_clients == 1, 30, "connected clients back to the reader alone")
        with mp.connect(svc.url, token=TOKEN) as fab:
            assert fab.topic("events").describe()["partitions"][0]["end_offset"] + \
                fab.topic("events").describe()["partitions"][1]["end_offset"] == len(sent)
        reader.close()
    finally:
        if flood:
            if flood.poll() is None:
                flood.kill()
                flood.wait()
            for pipe in (flood.stdin, flood.stdout):
                pipe.close()
        assert svc.stop() == 0, svc.log.decode()


def test_pending_login_caps_close_the_oldest_of_the_busiest_address_and_never_a_logged_in_client(tmp_path):
    svc = Service(None, free_port(), sync="none", health=False,
                  extra=["--max-connections", "6", "--max-pending-logins", "4",
                         "--max-pending-logins-per-address", "2", "--login-timeout-ms", "600000"]).start()
    socks = []
    try:
        def pending(source: str) -> socket.socket:
            s = idle_socket(svc.port, source)
            hello(s)  # accepted, in this order
            socks.append(s)
            return s

        b1 = pending("127.0.0.6")
        a1, a2 = pending("127.0.0.5"), pending("127.0.0.5")
        a3 = pending("127.0.0.5")  # a third from .5: .5's oldest makes way
        reason = closing_reason(read_until_closed(a1))
        assert "too many connections from 127.0.0.5 are waiting to log in (limit 2)" in reason
        c1 = pending("127.0.0.7")  # 4 pending now: .6, .5 x2, .7
        pending("127.0.0.8")       # over the cap of 4: the oldest of the busiest address (.5) goes,
        assert "waiting to log in (limit 4" in closing_reason(read_until_closed(a2))
        b1.setblocking(False)      # not the oldest of all (.6's), which is the only one from its address
        with pytest.raises(BlockingIOError):
            b1.recv(1)
        b1.setblocking(True)
        # Logged-in clients take the slots of pending logins, never the other way round.
        fabs = [mp.connect(svc.url) for _ in range(6)]
        for s in (a3, b1, c1):
            assert "waiting to log in" in closing_reason(read_until_closed(s))
        fabs[0].create_topic("t0")
        # Every slot logged in: a newcomer is refused politely and the clients keep working.
        s = idle_socket(svc.port, "127.0.0.9")
        socks.append(s)
        data = read_until_closed(s)
        assert "server busy: too many connections (6)" in closing_reason(data)
        with pytest.raises(mp.ConnectionError, match="too many connections"):
            mp.connect(svc.url)
        for f in fabs:
            assert f.topics() == ["t0"]
            f.close()
        with mp.connect(svc.url) as fab:  # a slot is free again
            assert fab.topics() == ["t0"]
    finally:
        for s in socks:
            s.close()
        assert svc.stop() == 0, svc.log.decode()


def test_out_of_file_descriptors_a_client_with_the_token_still_logs_in(tmp_path):
    # The service may not raise a hard limit: with 64 descriptors, idle connections exhaust
    # them long before the connection caps, and accept() fails with EMFILE.
    def low_fd_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    svc = Service(None, free_port(), token_file=token_file, sync="none", preexec_fn=low_fd_limit, health=False,
                  extra=["--login-timeout", "600"]).start()
    socks = []
    try:
        for k in range(80):
            socks.append(idle_socket(svc.port, f"127.0.1.{k}"))
        with mp.connect(svc.url, token=TOKEN) as fab:
            topic = fab.create_topic("t")
            with topic.producer() as prod:
                assert prod.push({"ok": 1}).result(timeout=60).offset == 0
        # The oldest idle connections were closed to free descriptors.
        assert "out of file descriptors" in closing_reason(read_until_closed(socks[0]))
        assert svc.proc.poll() is None
    finally:
        for s in socks:
            s.close()
        assert svc.stop() == 0, svc.log.decode()
    assert b"file descriptor limit (64)" in svc.log


def test_out_of_file_descriptors_with_every_connection_logged_in_a_newcomer_is_refused_politely(tmp_path):
    def low_fd_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    svc = Service(None, free_port(), sync="none", preexec_fn=low_fd_limit, health=False).start()
    socks, refusals = [], []
    try:
        for _ in range(80):
            s = idle_socket(svc.port)
            socks.append(s)
            mtype, flags, body = frames(read_frame(s))[0]
            if flags & 1:  # refused at the greeting: the server is out of descriptors
                refusals.append(error_text(body))
                continue
            s.sendall(FRAME.pack(MAGIC, VERSION, AUTH, 0, 0, 0, 64) + bytes(64))  # no token: any proof will do
            mtype, flags, body = frames(read_frame(s))[0]
            assert mtype == 0x8003 and flags == 0, error_text(body)
        assert refusals, "80 logged-in connections fitted in 64 descriptors?"
        assert all("out of file descriptors" in r for r in refusals), refusals
        for s in socks[:20]:  # descriptors come back: the service accepts again
            s.close()
        with mp.connect(svc.url) as fab:
            fab.create_topic("t")
        assert svc.proc.poll() is None
    finally:
        for s in socks:
            s.close()
        assert svc.stop() == 0, svc.log.decode()


class _PlainServer:
    """A TCP server on 127.0.0.1 that is not a mofka-py service: it sends ``banner`` to each
    connection (None: says nothing), then holds it open, or closes it if ``close``."""

    def __init__(self, banner, close: bool = False):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)  # so that the accepting thread sees stop()
        self.port = self.sock.getsockname()[1]
        self.held = []
        self.banner, self.close_at_once = banner, close
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            if self.banner:
                conn.sendall(self.banner)
            if self.close_at_once:
                conn.close()
            else:
                self.held.append(conn)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()
        self.sock.close()
        for c in self.held:
            c.close()


def _connect_returns(url: str, bound: float = 20.0, **kwargs) -> BaseException:
    """mp.connect(url) in a thread: the error it raised, failing if it does not return within
    ``bound`` seconds (less than the 30 s request timeout the login used to wait)."""
    out = []

    def run() -> None:
        try:
            mp.connect(url, **kwargs).close()
            out.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(bound)
    assert out, f"connect() to {url} had not returned after {bound} s"
    assert out[0] is not None, "connect() succeeded against a peer that is not a mofka-py service"
    return out[0]


@pytest.mark.parametrize("banner, shown", [
    (b"SSH-2.0-OpenSSH_9.6\r\n", '"SSH-2.0-OpenSSH_9.6"'),  # shorter than a frame header
    (b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", '"HTTP/1.1 400 Bad Request"'),
    (b"\x00\x01", '"\\x00\\x01"'),
])
def test_client_says_at_once_that_a_peer_with_a_foreign_banner_is_not_a_mofka_py_service(banner, shown):
    peer = _PlainServer(banner)
    try:
        err = _connect_returns(f"tcp://127.0.0.1:{peer.port}")
        assert isinstance(err, mp.ConnectionError), repr(err)
        assert f"127.0.0.1:{peer.port} is not a mofka-py service (it answered {shown})" in str(err)
        assert "check the URL/port" in str(err)
    finally:
        peer.stop()


def test_client_gives_up_on_a_silent_peer_within_the_connect_timeout():
    # A real HTTP server: it accepts, then waits for a request that never comes.
    httpd = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        err = _connect_returns(f"tcp://127.0.0.1:{httpd.server_address[1]}")  # default timeouts
        assert isinstance(err, mp.ConnectionError), repr(err)
        assert "accepted the connection but sent no mofka-py greeting within 5000 ms" in str(err)
        assert "not a mofka-py service" in str(err)
        err = _connect_returns(f"tcp://127.0.0.1:{httpd.server_address[1]}", request_timeout_ms=500)
        assert "within 500 ms" in str(err)
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_client_names_a_peer_that_closes_at_once():
    peer = _PlainServer(None, close=True)
    try:
        err = _connect_returns(f"tcp://127.0.0.1:{peer.port}")
        assert isinstance(err, mp.ConnectionError), repr(err)
        assert "closed during login (greeting, before the peer sent a byte)" in str(err)
        assert "is `mofka-py serve` listening" in str(err)
    finally:
        peer.stop()


def test_short_tokens_are_refused_with_how_to_make_one(tmp_path):
    short = tmp_path / "short"
    short.write_text("secret\n")
    with pytest.raises(mp.InvalidArgument, match=r"6 characters long.*head -c 32 /dev/urandom \| base64"):
        read_token(str(short))
    padded = tmp_path / "padded"
    padded.write_text("   0123456789abcde   \n")  # 15 characters once stripped
    with pytest.raises(mp.InvalidArgument, match="15 characters long"):
        read_token(str(padded))
    good = tmp_path / "good"
    good.write_text("  0123456789abcdef\n")
    assert read_token(str(good)) == "0123456789abcdef"

    # The service refuses to start with one, from a file or the environment, and writes nothing.
    for args, env in (([f"--token-file={short}"], {}), ([], {"MOFKA_PY_TOKEN": "hunter2"})):
        out = subprocess.run([sys.executable, "-m", "mofka_py.cli", "serve", "--listen", f"127.0.0.1:{free_port()}",
                              "--data-dir", str(tmp_path / "fab"), *args],
                             capture_output=True, text=True, timeout=60, env={**os.environ, **env})
        assert out.returncode != 0
        assert "head -c 32 /dev/urandom | base64" in out.stderr, out.stderr
        assert not (tmp_path / "fab").exists()


@pytest.mark.parametrize("args, message", [
    (["--login-timeout-ms", "0"], "login_timeout_ms must be an integer number of milliseconds between 1 and"),
    (["--max-pending-logins", "0"], "max_pending_logins must be an integer number between 1 and"),
])
def test_serve_refuses_bad_connection_limits(tmp_path, args, message):
    out = subprocess.run([sys.executable, "-m", "mofka_py.cli", "serve", "--listen", f"127.0.0.1:{free_port()}",
                          "--data-dir", str(tmp_path / "fab"), *args], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and message in out.stderr, out.stderr
    assert not (tmp_path / "fab").exists()
