"""A small etcd v3 client over etcd's JSON gateway (HTTP), with the standard library only.

Keys and values go in as ``str`` (UTF-8) or ``bytes`` and come out as ``bytes``; revisions and
lease ids are ``int``. Every request has a timeout; a member that does not answer in time (stopped,
paused, unreachable) raises :class:`EtcdUnavailable`, an error reply from etcd :class:`EtcdError`.

>>> etcd = Etcd("etcd://127.0.0.1:2379")                         # doctest: +SKIP
>>> lease, ttl = etcd.lease_grant(2)                              # doctest: +SKIP
>>> created, kv = etcd.put_if_absent("/p/0/leader", "node-a", lease=lease)  # doctest: +SKIP
>>> epoch = kv.create_revision                                    # doctest: +SKIP

The gateway's own conventions, hidden here: keys and values travel base64-encoded, 64-bit
numbers as JSON strings, and fields holding their default value (0, false, empty) are left out
of replies (a missing ``kvs`` is no key, a missing ``succeeded`` is a failed transaction).
"""
from __future__ import annotations

import base64
import http.client
import json
import logging
import socket
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from ..errors import ConnectionError as _ConnectionError
from ..errors import Error, InvalidArgument

__all__ = ["Etcd", "EtcdError", "EtcdUnavailable", "KeyValue", "compare", "op_put", "op_range", "op_delete"]

LOGGER = logging.getLogger("mofka_py.cluster")

Bytes = Union[str, bytes]
WatchCallback = Callable[[List[Tuple[str, "KeyValue"]]], None]

# Idle connections kept per endpoint (more concurrent requests open more and close the extra ones).
_MAX_IDLE_CONNECTIONS = 8
# A watch stream polls its socket this often, so that setting its stop event ends it promptly.
_WATCH_POLL_S = 0.5
# After a lost watch stream, wait this long before connecting again (doubling up to the maximum).
_WATCH_RETRY_S = 0.1
_WATCH_RETRY_MAX_S = 2.0
# gRPC status codes in etcd's error replies: a lease that does not exist (any more), and a member
# that cannot serve (no leader, no quorum, its own request timeout).
_GRPC_NOT_FOUND = 5
_GRPC_UNAVAILABLE = (4, 14)  # DEADLINE_EXCEEDED, UNAVAILABLE
# What to do about the errors a caller of this client can meet (by etcd's message).
_HINTS = {
    "requested lease not found": "the lease expired or was revoked: grant a new one (lease_grant) and write again",
    "required revision has been compacted": "that history is gone: re-read the current state (get_prefix)",
    "future revision": "ask for a revision at most the current one (status()['header']['revision'])",
    "duplicate key given in txn request": "name each key at most once among a transaction's writes",
    "too many operations in txn request": "split the transaction (etcd allows 128 operations by default)",
    "request is too large": "write smaller values (etcd's default limit is 1.5 MiB a request)",
}


class EtcdUnavailable(_ConnectionError):
    """No etcd endpoint answered within the timeout (stopped, paused, unreachable, or without quorum)."""


class EtcdError(Error):
    """etcd answered with an error (the message carries etcd's own text and code)."""

    def __init__(self, message: str, code: int = 0, etcd_message: str = ""):
        super().__init__(message)
        self.code = code
        self.etcd_message = etcd_message


@dataclass(frozen=True)
class KeyValue:
    """One key as etcd stores it. ``create_revision`` is the revision that created the key (it
    stays the same until the key is deleted); ``mod_revision`` the revision of its last change;
    ``version`` counts changes since creation; ``lease`` is the id of the lease it is bound to (0: none).
    A key seen in a DELETE watch event has an empty value and only ``mod_revision`` set."""

    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int

    @classmethod
    def from_gateway(cls, kv: Dict[str, Any]) -> "KeyValue":
        """A key as the gateway encodes it in a reply (``{"key": "<base64>", "mod_revision": "7", ...}``).

        >>> KeyValue.from_gateway({"key": "YQ==", "value": "Yg==", "mod_revision": "7"}).value
        b'b'
        """
        return cls(key=_unb64(kv.get("key", "")), value=_unb64(kv.get("value", "")),
                   create_revision=int(kv.get("create_revision", 0)), mod_revision=int(kv.get("mod_revision", 0)),
                   version=int(kv.get("version", 0)), lease=int(kv.get("lease", 0)))


def _bytes(value: Bytes) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise InvalidArgument(f"etcd keys and values are str or bytes, not {type(value).__name__}")


def _b64(value: Bytes) -> str:
    return base64.b64encode(_bytes(value)).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text) if text else b""


def _prefix_end(prefix: Bytes) -> bytes:
    """The ``range_end`` that makes a range cover every key starting with ``prefix``."""
    p = bytearray(_bytes(prefix))
    while p and p[-1] == 0xFF:
        p.pop()
    if not p:
        return b"\0"  # every key
    p[-1] += 1
    return bytes(p)


# Helpers building the parts of a transaction for :meth:`Etcd.txn` (they encode keys and values).

_COMPARE_FIELDS = {"VERSION": "version", "CREATE": "create_revision", "MOD": "mod_revision", "VALUE": "value",
                   "LEASE": "lease"}
_COMPARE_RESULTS = {"==": "EQUAL", "!=": "NOT_EQUAL", "<": "LESS", ">": "GREATER"}


def compare(key: Bytes, target: str, result: str, value: Union[int, Bytes]) -> Dict[str, Any]:
    """A transaction condition: ``target`` (``"VERSION"``, ``"CREATE"``, ``"MOD"``, ``"VALUE"`` or
    ``"LEASE"``) of ``key`` compared with ``value`` by ``result`` (``"=="``, ``"!="``, ``"<"``, ``">"``).
    A missing key compares as revision, version and lease 0.

    >>> compare("/leader", "CREATE", "==", 0)["create_revision"]
    '0'
    """
    field = _COMPARE_FIELDS.get(target)
    if field is None:
        raise InvalidArgument(f"compare target {target!r} is not one of {', '.join(_COMPARE_FIELDS)}")
    op = _COMPARE_RESULTS.get(result)
    if op is None:
        raise InvalidArgument(f"compare result {result!r} is not one of {', '.join(_COMPARE_RESULTS)}")
    if field == "value":
        if isinstance(value, int):
            raise InvalidArgument("compare VALUE takes str or bytes, not int")
        encoded = _b64(value)
    elif isinstance(value, int):
        encoded = str(value)
    else:
        raise InvalidArgument(f"compare {target} takes an int, not {type(value).__name__}")
    return {"key": _b64(key), "target": target, "result": op, field: encoded}


def op_put(key: Bytes, value: Bytes, lease: int = 0) -> Dict[str, Any]:
    """A transaction operation writing ``key`` (bound to ``lease`` unless 0)."""
    req: Dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
    if lease:
        req["lease"] = str(lease)
    return {"request_put": req}


def op_range(key: Bytes, prefix: bool = False) -> Dict[str, Any]:
    """A transaction operation reading ``key`` (or every key starting with it when ``prefix``)."""
    req: Dict[str, Any] = {"key": _b64(key)}
    if prefix:
        req["range_end"] = _b64(_prefix_end(key))
    return {"request_range": req}


def op_delete(key: Bytes, prefix: bool = False) -> Dict[str, Any]:
    """A transaction operation deleting ``key`` (or every key starting with it when ``prefix``)."""
    req: Dict[str, Any] = {"key": _b64(key)}
    if prefix:
        req["range_end"] = _b64(_prefix_end(key))
    return {"request_delete_range": req}


@dataclass(frozen=True)
class _Endpoint:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def _parse_endpoints(url: str) -> List[_Endpoint]:
    endpoints = []
    for item in url.split(","):
        item = item.strip()
        if not item:
            continue
        scheme, sep, rest = item.partition("://")
        if not sep:
            scheme, rest = "http", item
        if scheme not in ("http", "etcd"):
            raise InvalidArgument(f"etcd endpoint {item!r}: use etcd://host:port or http://host:port "
                                  "(the JSON gateway without TLS)")
        rest = rest.rstrip("/")
        if "/" in rest:
            raise InvalidArgument(f"etcd endpoint {item!r} has a path; give etcd://host:port only")
        host, colon, port = rest.rpartition(":")
        if not colon:
            host, port = rest, "2379"
        host = host.strip("[]")  # [::1]:2379
        if not host or not port.isdigit():
            raise InvalidArgument(f"etcd endpoint {item!r} is not host:port (e.g. etcd://127.0.0.1:2379)")
        endpoints.append(_Endpoint(host, int(port)))
    if not endpoints:
        raise InvalidArgument(f"no etcd endpoint in {url!r}; give etcd://host:port (several separated by commas)")
    return endpoints


def _describe(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class _Stale(Exception):
    """A reused keep-alive connection was found closed by the server before it answered."""


class Etcd:
    """A client of one etcd cluster through its v3 JSON gateway. Thread-safe: requests use persistent
    connections, one per concurrent request, reopened after a failure; :meth:`close` (or ``with``)
    closes them.

    ``url`` is ``etcd://host:port`` or ``http://host:port``, or several separated by commas
    (``etcd://10.0.0.1:2379,10.0.0.2:2379``): a request goes to the endpoint that answered last and
    moves on to the next ones when it cannot reach it. ``timeout`` (seconds) bounds each attempt
    at one endpoint (connecting and waiting for the answer); when no endpoint answers,
    :class:`EtcdUnavailable` is raised.

    >>> etcd = Etcd("etcd://127.0.0.1:2379", timeout=2.0)   # doctest: +SKIP
    >>> etcd.put("/jobs/1", "queued")                          # doctest: +SKIP
    7
    >>> etcd.get("/jobs/1").value                              # doctest: +SKIP
    b'queued'
    """

    def __init__(self, url: str = "http://127.0.0.1:2379", timeout: float = 2.0):
        if timeout <= 0:
            raise InvalidArgument(f"etcd timeout must be > 0 seconds, not {timeout}")
        self.url = url
        self.timeout = float(timeout)
        self._endpoints = _parse_endpoints(url)
        self._preferred = 0  # index of the endpoint that answered last
        self._lock = threading.Lock()
        # Idle persistent connections by endpoint index; a request takes one (or opens one) and puts
        # it back when it got its whole answer, so concurrent threads never share a connection.
        self._idle: Dict[int, List[http.client.HTTPConnection]] = {}

    @property
    def endpoints(self) -> List[str]:
        """The endpoints as ``http://host:port`` URLs, in the order given."""
        return [e.url for e in self._endpoints]

    def __repr__(self) -> str:
        return f"Etcd({self.url!r}, timeout={self.timeout})"

    def __enter__(self) -> "Etcd":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # nothing to report to while being collected
            pass

    def close(self) -> None:
        """Close the idle connections (a later call opens a new one; watch threads are ended by their
        stop event, not here)."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()

    # -- transport -------------------------------------------------------------------------

    def _checkout(self, index: int) -> Tuple[http.client.HTTPConnection, bool]:
        """A connection to endpoint ``index`` and whether it was used before (it may have gone stale)."""
        with self._lock:
            idle = self._idle.get(index)
            if idle:
                return idle.pop(), True
        ep = self._endpoints[index]
        return http.client.HTTPConnection(ep.host, ep.port, timeout=self.timeout), False

    def _checkin(self, index: int, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(index, [])
            if len(idle) < _MAX_IDLE_CONNECTIONS:
                idle.append(conn)
                return
        conn.close()

    def _exchange(self, index: int, path: str, body: bytes) -> Tuple[int, bytes]:
        conn, reused = self._checkout(index)
        try:
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
            conn.close()
            if reused:
                raise _Stale() from e
            raise
        except BaseException:
            conn.close()  # in an unknown state (a timeout half-way through an answer)
            raise
        if resp.will_close:
            conn.close()
        else:
            self._checkin(index, conn)
        return resp.status, data

    def _call(self, path: str, request: Dict[str, Any]) -> Dict[str, Any]:
        """POST ``request`` to ``path`` at the first endpoint that answers; the decoded reply."""
        body = json.dumps(request).encode()
        n = len(self._endpoints)
        start = self._preferred
        failures: List[Tuple[str, str]] = []
        for k in range(n):
            index = (start + k) % n
            try:
                try:
                    status, data = self._exchange(index, path, body)
                except _Stale:
                    # The server closed an idle keep-alive connection before reading this request (so
                    # it was not executed); send it again once on a new connection.
                    status, data = self._exchange(index, path, body)
            except (OSError, http.client.HTTPException, _Stale) as e:
                cause = e.__cause__ if isinstance(e, _Stale) and e.__cause__ is not None else e
                failures.append((self._endpoints[index].url, _describe(cause)))
                continue
            try:
                reply = self._decode(path, status, data)
            except EtcdError as e:
                if e.code not in _GRPC_UNAVAILABLE:
                    raise
                # This member cannot serve now (no leader, lost quorum): another one may.
                failures.append((self._endpoints[index].url, f"answered: {e.etcd_message}"))
                continue
            self._preferred = index
            return reply
        raise EtcdUnavailable(self._unavailable_message(failures))

    def _unavailable_message(self, failures: Sequence[Tuple[str, str]]) -> str:
        tried = "; ".join(f"{url} ({why})" for url, why in failures)
        if len(failures) == 1:
            url, why = failures[0]
            if why.startswith("answered: "):
                head = f"etcd at {url} cannot serve requests now ({why})"
            else:
                head = f"etcd at {url} did not answer within {self.timeout} s ({why})"
        else:
            head = f"no etcd endpoint answered within {self.timeout} s each: {tried}"
        return (f"{head}: is etcd running? Start it or pass --cluster etcd://host:port of a live member")

    def _decode(self, path: str, status: int, data: bytes) -> Dict[str, Any]:
        try:
            reply = json.loads(data) if data else {}
        except ValueError:
            reply = None
        if status == 200 and isinstance(reply, dict):
            return reply
        if isinstance(reply, dict) and ("error" in reply or "message" in reply):
            text = str(reply.get("message") or reply.get("error"))
            code = int(reply.get("code", 0))
            hint = next((h for m, h in _HINTS.items() if m in text), "")
            raise EtcdError(f"etcd refused {path}: {text} (code {code})" + (f"; {hint}" if hint else ""),
                            code=code, etcd_message=text)
        snippet = data[:200].decode(errors="replace").strip()
        hint = " (is this an etcd v3.4+ client URL?)" if status == 404 else ""
        raise EtcdError(f"etcd answered {path} with HTTP {status}: {snippet!r}{hint}", code=0, etcd_message=snippet)

    # -- keys ------------------------------------------------------------------------------

    def get(self, key: Bytes) -> Optional[KeyValue]:
        """The key's current value and revisions, or None if it does not exist."""
        kvs = self._call("/v3/kv/range", {"key": _b64(key)}).get("kvs", [])
        return KeyValue.from_gateway(kvs[0]) if kvs else None

    def get_prefix(self, prefix: Bytes) -> List[KeyValue]:
        """Every key starting with ``prefix``, sorted by key."""
        reply = self._call("/v3/kv/range", {"key": _b64(prefix), "range_end": _b64(_prefix_end(prefix)),
                                            "sort_order": "ASCEND", "sort_target": "KEY"})
        return sorted((KeyValue.from_gateway(kv) for kv in reply.get("kvs", [])), key=lambda kv: kv.key)

    def put(self, key: Bytes, value: Bytes, lease: int = 0) -> int:
        """Write ``key`` (bound to ``lease`` unless 0: deleted when the lease ends); the new revision."""
        req = op_put(key, value, lease)["request_put"]
        return int(self._call("/v3/kv/put", req)["header"].get("revision", 0))

    def delete(self, key: Bytes) -> int:
        """Delete ``key``; the number of keys deleted (0 or 1)."""
        return int(self._call("/v3/kv/deleterange", {"key": _b64(key)}).get("deleted", 0))

    def delete_prefix(self, prefix: Bytes) -> int:
        """Delete every key starting with ``prefix``; the number deleted."""
        reply = self._call("/v3/kv/deleterange", {"key": _b64(prefix), "range_end": _b64(_prefix_end(prefix))})
        return int(reply.get("deleted", 0))

    # -- transactions ----------------------------------------------------------------------

    def txn(self, compare: List[Dict[str, Any]], success: List[Dict[str, Any]],
            failure: List[Dict[str, Any]]) -> Dict[str, Any]:
        """One atomic transaction: if every condition in ``compare`` holds, run ``success``, else
        ``failure``. Build the parts with :func:`compare`, :func:`op_put`, :func:`op_range` and
        :func:`op_delete` (or give the gateway's JSON form, base64 keys). The reply is the gateway's,
        except that ``succeeded`` is always present; decode keys in it with :meth:`KeyValue.from_gateway`.

        >>> etcd.txn([compare("/a", "VERSION", "==", 0)], [op_put("/a", "1")], [op_range("/a")])  # doctest: +SKIP
        """
        reply = self._call("/v3/kv/txn", {"compare": compare, "success": success, "failure": failure})
        reply["succeeded"] = bool(reply.get("succeeded", False))
        reply.setdefault("responses", [])
        return reply

    @staticmethod
    def _range_result(reply: Dict[str, Any]) -> Optional[KeyValue]:
        """The key read by the last ``op_range`` of a transaction reply."""
        for response in reversed(reply["responses"]):
            if "response_range" in response:
                kvs = response["response_range"].get("kvs", [])
                return KeyValue.from_gateway(kvs[0]) if kvs else None
        return None

    def put_if_absent(self, key: Bytes, value: Bytes, lease: int = 0) -> Tuple[bool, KeyValue]:
        """Create ``key`` unless it exists, atomically: (whether this call created it, the key as it
        now is). Bound to a lease, this elects a leader: the winner's ``create_revision`` is a
        cluster-wide increasing epoch.

        >>> created, kv = etcd.put_if_absent("/p/0/leader", "node-a", lease=lease)  # doctest: +SKIP
        """
        reply = self.txn([compare(key, "CREATE", "==", 0)], [op_put(key, value, lease), op_range(key)],
                         [op_range(key)])
        kv = self._range_result(reply)
        if kv is None:  # cannot happen inside one transaction; say so rather than return a made-up key
            raise EtcdError(f"etcd transaction on {_bytes(key)!r} returned no key", etcd_message="no key")
        return reply["succeeded"], kv

    def put_if_mod_revision(self, key: Bytes, value: Bytes, mod_revision: int, lease: int = 0) -> bool:
        """Compare-and-swap: write ``key`` only if its ``mod_revision`` is still ``mod_revision``
        (0: only if the key does not exist); whether it was written."""
        return bool(self.txn([compare(key, "MOD", "==", mod_revision)], [op_put(key, value, lease)], [])["succeeded"])

    def delete_if_create_revision(self, key: Bytes, create_revision: int) -> bool:
        """Delete ``key`` only if it is still the incarnation created at ``create_revision`` (e.g. a
        leader resigning deletes its own key, never a successor's); whether it was deleted."""
        return bool(self.txn([compare(key, "CREATE", "==", create_revision)], [op_delete(key)], [])["succeeded"])

    # -- leases ----------------------------------------------------------------------------

    def lease_grant(self, ttl_s: int) -> Tuple[int, int]:
        """A new lease of ``ttl_s`` seconds: (lease id, TTL granted). Keys put with the lease are
        deleted when it ends, i.e. when no :meth:`lease_keepalive` came for a whole TTL."""
        if ttl_s < 1:
            raise InvalidArgument(f"lease TTL must be >= 1 s, not {ttl_s}")
        reply = self._call("/v3/lease/grant", {"TTL": str(int(ttl_s)), "ID": "0"})
        return int(reply["ID"]), int(reply.get("TTL", 0))

    def lease_keepalive(self, lease_id: int) -> int:
        """Renew the lease for another full TTL; the TTL it now has (0: the lease expired or was
        revoked, and its keys are gone)."""
        reply = self._call("/v3/lease/keepalive", {"ID": str(lease_id)})
        if "error" in reply:  # a streamed call reports errors inside the reply
            err = reply["error"]
            text = str(err.get("message") or err.get("error") or err) if isinstance(err, dict) else str(err)
            raise EtcdError(f"etcd refused /v3/lease/keepalive: {text}", etcd_message=text)
        return int(reply.get("result", {}).get("TTL", 0))

    def lease_revoke(self, lease_id: int) -> None:
        """End the lease now (its keys are deleted); a lease already gone is not an error."""
        try:
            self._call("/v3/lease/revoke", {"ID": str(lease_id)})
        except EtcdError as e:
            if e.code != _GRPC_NOT_FOUND:
                raise

    # -- cluster ---------------------------------------------------------------------------

    def status(self) -> Dict[str, Any]:
        """The answering member's status (``version``, ``leader``, ``raftTerm``, ``dbSize``, ...), as
        the gateway gives it (numbers as strings); a health check."""
        return self._call("/v3/maintenance/status", {})

    # -- watches ---------------------------------------------------------------------------

    def watch_prefix(self, prefix: Bytes, start_revision: int, callback: WatchCallback,
                     stop: threading.Event) -> threading.Thread:
        """Follow every change of keys starting with ``prefix`` from ``start_revision`` on (0: from
        now), in a daemon thread (returned, started) that runs until ``stop`` is set.

        ``callback`` gets each batch of events in revision order as ``[(type, kv), ...]`` with
        type ``"PUT"`` or ``"DELETE"`` (a deleted key's ``kv`` has only ``key`` and ``mod_revision``).
        When the connection is lost (etcd restarted, endpoint down) the thread connects again, to
        the next endpoint if needed, and resumes after the last revision it delivered: no event is
        missed or repeated. If etcd already compacted the revisions it needs, ``callback`` gets an
        empty list (history was lost: re-read the prefix with :meth:`get_prefix`), and the watch goes
        on from the oldest revision etcd still holds. An exception raised by ``callback`` is logged
        (logger ``mofka_py.cluster``) and the watch goes on. The thread ends within about 0.5 s of
        ``stop`` being set.

        With ``start_revision=0`` the watch begins once its stream is set up, a moment after this
        call: to see every change after a read, pass the read's revision + 1 instead (e.g.
        ``int(etcd.status()["header"]["revision"]) + 1`` taken before the read). A member that hangs
        (SIGSTOP) or is cut off without closing the connection is not noticed here: the watch waits
        and goes on when it answers again; callers notice through their lease keepalives failing.

        >>> stop = threading.Event()                                                        # doctest: +SKIP
        >>> etcd.watch_prefix("/p/0/", 0, lambda events: print(events), stop)               # doctest: +SKIP
        """
        if start_revision < 0:
            raise InvalidArgument(f"start_revision must be >= 0, not {start_revision}")
        watch = _Watch(self, _bytes(prefix), start_revision, callback, stop)
        thread = threading.Thread(target=watch.run, name=f"etcd-watch {_bytes(prefix)!r}", daemon=True)
        thread.start()
        return thread


class _WatchLost(Exception):
    """The watch stream ended or broke; connect again (to the next endpoint if there are several)."""


class _WatchRestart(Exception):
    """Start a new watch stream on the same endpoint at once (after a compaction)."""


class _Watch:
    """One watch stream, read from a raw socket: http.client's response cannot survive a socket
    timeout, and short timeouts are how the thread notices its stop event."""

    def __init__(self, etcd: Etcd, prefix: bytes, start_revision: int, callback: WatchCallback,
                 stop: threading.Event):
        self.etcd, self.prefix, self.callback, self.stop = etcd, prefix, callback, stop
        self.next_revision = start_revision  # 0 until the first stream tells the current revision
        self.sock: Optional[socket.socket] = None
        self.buffer = b""
        self.got_events = False  # the current stream delivered events

    def run(self) -> None:
        delay = _WATCH_RETRY_S
        index = self.etcd._preferred
        while not self.stop.is_set():
            endpoint = self.etcd._endpoints[index]
            try:
                self._stream(endpoint)
            except _WatchRestart:
                continue
            except (_WatchLost, OSError, ValueError) as e:
                LOGGER.debug("etcd watch of %r at %s lost (%s); connecting again", self.prefix, endpoint.url,
                             _describe(e))
                index = (index + 1) % len(self.etcd._endpoints)
            except EtcdError as e:
                LOGGER.warning("etcd watch of %r at %s: %s; retrying", self.prefix, endpoint.url, e)
            finally:
                self._close()
            # A stream that delivered events was healthy: retry soon; else back off.
            delay = _WATCH_RETRY_S if self.got_events else min(delay * 2, _WATCH_RETRY_MAX_S)
            if self.stop.wait(delay):
                break

    # -- one connection --------------------------------------------------------------------

    def _close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None
        self.buffer = b""

    def _recv(self) -> bytes:
        """More bytes of the response; b"" only when the stop event is set."""
        assert self.sock is not None
        while not self.stop.is_set():
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not data:
                raise _WatchLost("etcd closed the watch stream")
            return data
        return b""

    def _read_until(self, marker: bytes) -> Optional[bytes]:
        """The buffered bytes up to ``marker`` (consumed with it); None when stopping."""
        while True:
            at = self.buffer.find(marker)
            if at >= 0:
                head, self.buffer = self.buffer[:at], self.buffer[at + len(marker):]
                return head
            data = self._recv()
            if not data:
                return None
            self.buffer += data

    def _read_exactly(self, n: int) -> Optional[bytes]:
        while len(self.buffer) < n:
            data = self._recv()
            if not data:
                return None
            self.buffer += data
        head, self.buffer = self.buffer[:n], self.buffer[n:]
        return head

    def _stream(self, endpoint: _Endpoint) -> None:
        self.got_events = False
        create: Dict[str, Any] = {"key": _b64(self.prefix), "range_end": _b64(_prefix_end(self.prefix))}
        if self.next_revision:
            create["start_revision"] = str(self.next_revision)
        body = json.dumps({"create_request": create}).encode()
        self.sock = socket.create_connection((endpoint.host, endpoint.port), timeout=self.etcd.timeout)
        host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
        self.sock.sendall(b"POST /v3/watch HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n" % (host.encode(), endpoint.port, len(body)) + body)
        self.sock.settimeout(_WATCH_POLL_S)
        head = self._read_until(b"\r\n\r\n")
        if head is None:
            return
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        if status != 200:
            if chunked:
                data = self._read_body_chunked()
            else:
                data = self._read_exactly(int(headers.get("content-length", "0") or 0))
            self.etcd._decode("/v3/watch", status, data or b"")  # raises EtcdError
            raise _WatchLost(f"HTTP {status}")
        lines = b""
        while not self.stop.is_set():
            chunk = self._read_chunk() if chunked else self._recv()
            if chunk is None or (not chunk and not chunked):
                return
            if chunked and not chunk:
                raise _WatchLost("etcd ended the watch stream")
            lines += chunk
            *complete, lines = lines.split(b"\n")
            for line in complete:
                if line.strip():
                    self._handle(json.loads(line))

    def _read_chunk(self) -> Optional[bytes]:
        """The next chunk of a chunked body (b"" for the last one); None when stopping."""
        size_line = self._read_until(b"\r\n")
        if size_line is None:
            return None
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            return b""
        data = self._read_exactly(size + 2)
        return None if data is None else data[:size]

    def _read_body_chunked(self) -> Optional[bytes]:
        out = b""
        while True:
            chunk = self._read_chunk()
            if not chunk:
                return out
            out += chunk

    def _handle(self, message: Dict[str, Any]) -> None:
        if "error" in message:
            err = message["error"]
            text = str(err.get("message") or err.get("error") or err) if isinstance(err, dict) else str(err)
            raise EtcdError(f"etcd refused /v3/watch: {text}", etcd_message=text)
        result = message.get("result", {})
        if result.get("compact_revision") and result.get("canceled"):
            self.next_revision = int(result["compact_revision"])
            LOGGER.warning("etcd watch of %r: revisions before %d were compacted; going on from there",
                           self.prefix, self.next_revision)
            self._deliver([])
            raise _WatchRestart()
        if result.get("canceled"):
            text = result.get("cancel_reason", "canceled by etcd")
            raise EtcdError(f"etcd canceled the watch: {text}", etcd_message=text)
        if result.get("created") and not self.next_revision:
            self.next_revision = int(result.get("header", {}).get("revision", 0)) + 1
        events = []
        for event in result.get("events", []):
            kv = KeyValue.from_gateway(event.get("kv", {}))
            events.append((event.get("type", "PUT"), kv))
            self.next_revision = max(self.next_revision, kv.mod_revision + 1)
        if events:
            self.got_events = True
            self._deliver(events)

    def _deliver(self, events: List[Tuple[str, KeyValue]]) -> None:
        try:
            self.callback(events)
        except Exception:
            LOGGER.exception("etcd watch of %r: the callback failed on %d events", self.prefix, len(events))
