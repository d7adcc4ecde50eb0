"""The wide-area network between the sites and the cloud broker, with one link per site that can be cut.

A TCP relay in front of the Kafka-protocol broker: the broker advertises the relay's address, so every
client connection (bootstrap and broker connections alike) goes through it. The relay reads the header
of a connection's first Kafka request for its ``client.id`` (each site's bridge sets
``client.id = "astro-SITE"``) and from then on only copies bytes. :meth:`Wan.cut` takes one site's
link down, :meth:`Wan.restore` brings it back; the other sites and the cloud's own clients go on.
Two kinds of cut:

- ``blackhole`` (the default; what a cut link does): nothing passes either way. Bytes already read are
  held, open connections stall, a new connection gets no answer (a SYN into a dead link); when the link
  returns, everything held goes through, as TCP's retransmissions would deliver it. Clients notice only
  through their own timeouts (librdkafka: ``socket.timeout.ms``, 60 s), so a short cut is survived
  without a reconnect.
- ``reset``: open connections are reset and new ones are reset after their first request (a link flap
  through a firewall or NAT that loses its state); librdkafka reconnects and retries its idempotent
  produce requests.

This models a link cut better than the alternatives a single-host run offers: pausing the site's bridge
(SIGSTOP) freezes a process whose network is fine, and pausing the broker (SIGSTOP) cuts every site at
once. Here the bridge keeps running through the outage, waits for its acknowledgements, reports it in
its status, and catches up when the link returns, as it would at a real site.
"""
from __future__ import annotations

import socket
import struct
import threading
import time
from typing import Dict, List, Optional, Set, Tuple

CLIENT_PREFIX = "astro-"
MODES = ("blackhole", "reset")


def site_of(client_id: str) -> str:
    """``astro-icecube`` -> ``icecube``; any other client is the cloud's own."""
    return client_id[len(CLIENT_PREFIX):] if client_id.startswith(CLIENT_PREFIX) else "cloud"


def _client_id(first: bytes) -> Optional[str]:
    """The client id in a Kafka request header (size, api key, api version, correlation id, client id as
    an int16-length string in every header version), or None if ``first`` is too short yet."""
    if len(first) < 14:
        return None
    (n,) = struct.unpack_from(">h", first, 12)
    if n < 0:
        return ""
    if len(first) < 14 + n:
        return None
    return first[14:14 + n].decode("utf-8", "replace")


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0): the peer sees the connection fail at once."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RD)   # wakes a thread blocked in recv() on it; sends nothing by itself
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class Wan:
    """A relay on a free port of 127.0.0.1 to the broker at ``upstream`` (HOST, PORT); a thread per
    direction of each connection; ``mode`` is how :meth:`cut` cuts (``blackhole`` or ``reset``)."""

    def __init__(self, upstream: Tuple[str, int], mode: str = "blackhole"):
        if mode not in MODES:
            raise ValueError(f"link fault mode must be one of {', '.join(MODES)} (got {mode!r})")
        self.upstream, self.mode = upstream, mode
        self._srv = socket.create_server(("127.0.0.1", 0))
        self.port = self._srv.getsockname()[1]
        self._down: Dict[str, float] = {}
        self._up: Dict[str, threading.Event] = {}       # set while the site's link is up
        self._conns: Dict[str, Set[Tuple[socket.socket, socket.socket]]] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.refused: Dict[str, int] = {}       # new connections reset (reset) or held (blackhole) while down
        self.resets: Dict[str, int] = {}        # open connections reset (reset) or stalled (blackhole) by a cut
        self.outages: List[Tuple[str, float, float]] = []   # (site, cut at, restored at), time.time()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "Wan":
        threading.Thread(target=self._accept, name="wan-accept", daemon=True).start()
        return self

    # -- the links ----------------------------------------------------------------------------------------
    def _gate(self, site: str) -> threading.Event:
        with self._lock:
            gate = self._up.get(site)
            if gate is None:
                gate = self._up[site] = threading.Event()
                gate.set()
            return gate

    def cut(self, site: str) -> int:
        """Take ``site``'s link down; returns how many open connections it stalled or reset."""
        gate = self._gate(site)
        with self._lock:
            self._down[site] = time.time()
            gate.clear()
            conns = list(self._conns.get(site, ()))
            if self.mode == "reset":
                self._conns.pop(site, None)
        if self.mode == "reset":
            for c, u in conns:
                _reset(c)
                _reset(u)
        self.resets[site] = self.resets.get(site, 0) + len(conns)
        return len(conns)

    def restore(self, site: str) -> None:
        """Bring ``site``'s link back: what was held goes through (blackhole); new connections pass."""
        with self._lock:
            since = self._down.pop(site, None)
        self._gate(site).set()
        if since is not None:
            self.outages.append((site, since, time.time()))

    def close(self) -> None:
        self._closed.set()
        try:
            self._srv.close()
        except OSError:
            pass
        with self._lock:
            conns = [c for s in self._conns.values() for c in s]
            self._conns.clear()
        for c, u in conns:
            for s in (c, u):
                try:
                    s.close()
                except OSError:
                    pass

    # -- plumbing -----------------------------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                c, _ = self._srv.accept()
            except OSError:
                return
            threading.Thread(target=self._open, args=(c,), name="wan-open", daemon=True).start()

    def _open(self, c: socket.socket) -> None:
        first = b""
        c.settimeout(10.0)
        try:
            while (cid := _client_id(first)) is None:
                chunk = c.recv(4096)
                if not chunk:
                    c.close()
                    return
                first += chunk
        except OSError:
            _reset(c)
            return
        site = site_of(cid)
        gate = self._gate(site)
        if not gate.is_set():
            self.refused[site] = self.refused.get(site, 0) + 1
            if self.mode == "reset":
                _reset(c)
                return
            while not gate.wait(0.5):       # blackhole: no answer until the link returns
                if self._closed.is_set():
                    c.close()
                    return
        try:
            u = socket.create_connection(self.upstream, timeout=10.0)
        except OSError:
            _reset(c)
            return
        c.settimeout(None)
        u.settimeout(None)
        for s in (c, u):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pair = (c, u)
        with self._lock:
            if site in self._down and self.mode == "reset":      # cut while this one was connecting
                _reset(c)
                _reset(u)
                return
            self._conns.setdefault(site, set()).add(pair)
        try:
            u.sendall(first)
        except OSError:
            self._drop(site, pair)
            return
        threading.Thread(target=self._pump, args=(site, pair, c, u), name=f"wan-{site}-up", daemon=True).start()
        threading.Thread(target=self._pump, args=(site, pair, u, c), name=f"wan-{site}-down", daemon=True).start()

    def _pump(self, site: str, pair: Tuple[socket.socket, socket.socket], src: socket.socket,
              dst: socket.socket) -> None:
        gate = self._gate(site)
        try:
            while True:
                chunk = src.recv(1 << 16)
                if not chunk:
                    break
                while not gate.wait(0.5):    # blackhole: hold it until the link returns
                    if self._closed.is_set():
                        return
                dst.sendall(chunk)
        except OSError:
            pass
        self._drop(site, pair)

    def _drop(self, site: str, pair: Tuple[socket.socket, socket.socket]) -> None:
        with self._lock:
            conns = self._conns.get(site)
            if conns is None or pair not in conns:
                return      # already dropped (or reset by a cut)
            conns.discard(pair)
        for s in pair:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
