"""The service against peers that are not mofka-py services and weak tokens: real sockets,
real servers, real `mofka-py serve` processes."""
from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading

import pytest

import mofka_py as mp
from mofka_py.service import read_token
from service_helpers import free_port


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
        err = _connect_returns(f"tcp://127.0.0.1:{httpd.server_address[1]}", request_timeout=0.5)
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
