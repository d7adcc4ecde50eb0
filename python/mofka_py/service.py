"""``mofka-py serve`` (a long-running fabric service over TCP) and ``mofka-py status``.

The service hosts the same broker as an embedded fabric; clients connect with
``mofka_py.connect("tcp://host:port", token=...)``.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
import time
from typing import Any, Optional

from . import _settings, api
from ._progress import table
from .errors import Error, InvalidArgument

#: Shortest token accepted. The login is an HMAC challenge-response, so a short secret can be
#: guessed offline from one recorded login; 16 characters of base64 are 96 random bits.
MIN_TOKEN_LENGTH = 16


def check_token(token: str, source: str) -> str:
    """``token`` if it is long enough to be a secret, else :class:`InvalidArgument` saying how to make one.

    ``source`` names where the token came from (a file, ``$MOFKA_PY_TOKEN``) for the message.
    An empty token is returned as is (no authentication).

    >>> check_token("0123456789abcdef", "the test")
    '0123456789abcdef'
    """
    if token and len(token) < MIN_TOKEN_LENGTH:
        raise InvalidArgument(f"the token in {source} is {len(token)} characters long; a token needs at least "
                              f"{MIN_TOKEN_LENGTH} random characters. Make one with: "
                              f"head -c 32 /dev/urandom | base64 > token")
    return token


def read_token(path: Optional[str]) -> str:
    """The shared secret in ``path`` (surrounding whitespace removed), or '' if ``path`` is empty.

    Raises :class:`InvalidArgument` if the file cannot be read, is empty, or holds fewer
    than :data:`MIN_TOKEN_LENGTH` characters.

    >>> read_token(None)
    ''
    """
    if not path:
        return ""
    try:
        with open(path, encoding="utf-8") as fh:
            token = fh.read().strip()
    except OSError as exc:
        raise InvalidArgument(f"cannot read the token file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidArgument(f"the token file {path} is not UTF-8 text; make one with: "
                              f"head -c 32 /dev/urandom | base64 > {path}") from None
    if not token:
        raise InvalidArgument(f"the token file {path} is empty; put a long random secret in it: "
                              f"head -c 32 /dev/urandom | base64 > {path}")
    return check_token(token, f"the token file {path}")


_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """'512M', '2G', '1048576', '2GiB' -> bytes (binary units)."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    num, unit = (t[:-1], t[-1]) if t and t[-1] in _SIZE_UNITS else (t, "")
    if not num.isdigit():
        raise InvalidArgument(f"a size must be a whole number with an optional K, M, G or T suffix, such as 2G "
                              f"(got {text!r})")
    return int(num) * _SIZE_UNITS[unit]


def parse_listen(listen: str) -> tuple:
    """'HOST:PORT' -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InvalidArgument(f"--listen must be HOST:PORT such as 127.0.0.1:7400 (got {listen!r})")
    return host, int(port)


def _log(msg: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} mofka-py serve: {msg}", file=sys.stderr, flush=True)


def _raise_fd_limit(max_connections: int) -> None:
    """Lift the soft file-descriptor limit toward what ``max_connections`` needs.

    Many systems default to a soft limit of 1024, below the default connection cap plus the
    log's own files; the hard limit is usually far higher and a process may raise its soft
    limit up to it (Go's runtime does this for every program).
    """
    try:
        import resource
    except ImportError:  # not POSIX
        return
    need = max_connections + 256  # segments, indexes, the listener, epoll, the spare descriptor
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        if target > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft != resource.RLIM_INFINITY and soft < need:
        _log(f"the file descriptor limit ({soft}) is below what --max-connections {max_connections} needs "
             f"(about {need}); raise `ulimit -n` or lower --max-connections")


class _ServiceHealth(threading.Thread):
    """The service's own heartbeat on ``__health`` and a health monitor that publishes node events
    to ``__health.events`` — through a client connection to this very service, from a thread (the
    main thread runs the server's event loop)."""

    def __init__(self, host: str, port: int, token: str, stats: dict):
        super().__init__(name="service-health", daemon=True)
        self.url = f"tcp://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"
        self.token, self.stats = token, stats
        self.node = f"service-{socket.gethostname()}:{port}"
        self.stop_event = threading.Event()

    def run(self) -> None:
        from .services.health import HealthMonitor, Heartbeat

        try:
            with api.connect(self.url, token=self.token or None, reconnect_timeout_ms=10_000) as fab:
                beat = Heartbeat(fab, self.node, kind="service", info=lambda: dict(self.stats))
                monitor = HealthMonitor(fab, publish=True)
                try:
                    while not self.stop_event.is_set():
                        monitor.poll(0.2)
                finally:
                    beat.stop()
                    monitor.close()
        except Error as exc:  # health reporting must never take the service down
            if not self.stop_event.is_set():
                _log(f"health reporting stopped: {exc}")


def serve(data_dir: Optional[str] = None, listen: str = "127.0.0.1:7400", token: str = "", sync: str = "none",
          ready_file: Optional[str] = None, memory_reserve: int = 0, *, login_timeout_ms: int = 5000,
          max_connections: int = 1024, max_pending_logins: int = 256, max_pending_logins_per_address: int = 64,
          health: bool = True, sync_interval_ms: int = 1000, cluster: Optional[str] = None, node_id: str = "",
          advertise: Optional[str] = None, lease_ttl_s: int = 2, replica_lag_ms: int = 2000,
          **deprecated: Any) -> int:
    """Serve a fabric until SIGTERM or SIGINT; drains and syncs before returning.

    ``data_dir`` None serves an in-memory fabric; ``memory_reserve`` bytes of
    memory are then pre-faulted before listening (see
    :func:`mofka_py.reserve_memory`). ``ready_file``, if given, receives the
    bound port once the service accepts connections.

    A connection must log in within ``login_timeout_ms`` of being accepted
    (``login_timeout``, in seconds, is its deprecated name).
    At most ``max_pending_logins`` connections (``max_pending_logins_per_address``
    from one IP address) may be waiting to log in; when a cap is reached the oldest
    of them is closed to make room, so connections that never log in cannot keep
    clients with the token out. ``max_connections`` counts every connection.
    ``health``: publish the service's heartbeat on ``__health`` (connections, CPU, memory) and
    node events (``node_down`` of workers and services whose heartbeats stop) on ``__health.events``.
    ``cluster`` (``etcd://host:port[/name]``) with ``node_id``: serve as one node of a replicated
    cluster (docs/cluster.md); ``advertise``: the host clients and other nodes reach this one at
    (default: the listen host); ``lease_ttl_s``: the node's etcd lease, how long a failed leader
    holds its partitions; ``replica_lag_ms``: how long a follower may lag before it leaves the
    in-sync set. Every other setting is in docs/configuration.md ("Service").
    """
    values = dict(data_dir=data_dir, listen=listen, sync=sync, sync_interval_ms=sync_interval_ms,
                  memory_reserve=memory_reserve, login_timeout_ms=login_timeout_ms, max_connections=max_connections,
                  max_pending_logins=max_pending_logins,
                  max_pending_logins_per_address=max_pending_logins_per_address, health=health)
    if deprecated:
        _settings.take_deprecated("service", deprecated, values, api="serve")
    cfg = _settings.validate("service", values)
    host, port = parse_listen(listen)
    if cfg["memory_reserve"] and data_dir:
        raise InvalidArgument("--memory-reserve applies to in-memory storage; drop it or drop --data-dir")
    login_timeout_ms = cfg["login_timeout_ms"]
    max_connections = cfg["max_connections"]
    memory_reserve = cfg["memory_reserve"]
    health = cfg["health"]
    _raise_fd_limit(max_connections)
    url = f"file://{os.path.abspath(data_dir)}" if data_dir else "memory://"
    if memory_reserve:
        t0 = time.perf_counter()
        last = [t0]

        def report(done: int, total: int) -> None:
            if time.perf_counter() - last[0] >= 1.0:
                last[0] = time.perf_counter()
                _log(f"reserving memory: {done >> 20} of {total >> 20} MiB")

        held = api.reserve_memory(memory_reserve, report)
        _log(f"reserved {held >> 20} MiB of pre-faulted memory in {time.perf_counter() - t0:.1f} s")
    # After a restart, consumer groups that were reading get 3 s to come back and claim their
    # partitions before they are handed to other members (Kafka's group.initial.rebalance.delay.ms).
    etcd_url = cluster_name = ""
    if cluster:
        from .cluster.node import parse_cluster_url

        etcd_url, cluster_name = parse_cluster_url(cluster)
        if not node_id:
            raise InvalidArgument("--cluster needs --node-id NAME: each node of a cluster has its own, kept "
                                  "across restarts (e.g. n1, n2, n3)")
        if lease_ttl_s < 1:
            raise InvalidArgument(f"--lease-ttl must be at least 1 second (got {lease_ttl_s})")
    elif node_id:
        raise InvalidArgument("--node-id applies to a cluster node; add --cluster etcd://host:port")
    srv = _settings.core_server(url, host, port, token, cfg, node_id=node_id if cluster else "",
                                rejoin_grace_ms=3000)
    node = None
    if cluster:
        from .cluster.node import ClusterNode

        address = f"{advertise or ('127.0.0.1' if host in ('0.0.0.0', '') else host)}:{srv.port}"
        try:
            node = ClusterNode(srv, etcd_url, cluster_name, node_id, address, token=token, data_dir=data_dir,
                               lease_ttl_s=lease_ttl_s, lag_ms=replica_lag_ms, log=_log).start()
        except Error:
            srv.shutdown(0)
            raise
        health = False  # the cluster's own events are logged; its health topics come with the health issue
    stopping = []

    def on_signal(signum: int, _frame: object) -> None:
        stopping.append(signum)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        _log(f"serving {url} on {host}:{srv.port} (sync={sync}, auth={'token' if token else 'none'}, "
             f"login within {login_timeout_ms} ms, pid {os.getpid()}"
             + (f", node {node_id} of cluster {cluster_name} at {etcd_url}" if cluster else "") + ")")
        if ready_file:
            tmp = ready_file + ".tmp"
            with open(tmp, "w") as fh:
                fh.write(str(srv.port))
            os.replace(tmp, ready_file)
        stats = {"connections": 0, "pending_logins": 0}
        reporter = _ServiceHealth(host, srv.port, token, stats) if health else None
        if reporter is not None:
            reporter.start()
        while not stopping:
            srv.poll(200)
            stats.update(connections=srv.connections, pending_logins=srv.pending_logins)
        if reporter is not None:
            # Its last heartbeat says the service leaves; the loop must keep serving meanwhile.
            reporter.stop_event.set()
            deadline = time.monotonic() + 5
            while reporter.is_alive() and time.monotonic() < deadline:
                srv.poll(50)
        _log(f"signal {stopping[0]}: draining {srv.connections} connection(s)")
        if node is not None:
            stopper = threading.Thread(target=node.stop, name="cluster-stop")
            stopper.start()
            while stopper.is_alive():  # keep answering while the node hands its partitions over
                srv.poll(50)
        srv.shutdown(2000)
        _log("stopped")
        return 0
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def cmd_serve(args: argparse.Namespace) -> int:
    token = read_token(args.token_file) or check_token(os.environ.get("MOFKA_PY_TOKEN", ""), "$MOFKA_PY_TOKEN")
    login_timeout_ms = args.login_timeout_ms
    if args.login_timeout is not None:   # the deprecated flag, in seconds
        print("mofka-py serve: --login-timeout is deprecated and will be removed in the next release; use "
              "--login-timeout-ms (milliseconds)", file=sys.stderr)
        login_timeout_ms = _settings.convert_deprecated("service", "login_timeout", args.login_timeout)[1]
    return serve(args.data_dir, args.listen, token, args.sync, args.ready_file, parse_size(args.memory_reserve),
                 login_timeout_ms=login_timeout_ms, max_connections=args.max_connections,
                 max_pending_logins=args.max_pending_logins,
                 max_pending_logins_per_address=args.max_pending_logins_per_address, health=not args.no_health,
                 sync_interval_ms=args.sync_interval_ms, cluster=args.cluster, node_id=args.node_id,
                 advertise=args.advertise, lease_ttl_s=args.lease_ttl, replica_lag_ms=args.replica_lag_ms)


def cmd_status(args: argparse.Namespace, fab: api.Fabric) -> int:
    native = fab._f
    rows = []
    for name in fab.topics():
        d = native.describe(name)
        groups = native.groups(name)
        for p in d["partitions"]:
            lag = []
            for g in groups:
                c = native.committed(g, name, p["partition"])
                lag.append(f"{g}:{p['end_offset'] - (c if c is not None else p['start_offset'])}")
            rows.append((name, p["partition"], p["start_offset"], p["end_offset"], p["size_bytes"],
                         "yes" if d["complete"] else "", " ".join(lag)))
    print(table(rows, ["topic", "partition", "start", "end", "bytes", "complete", "group:lag"]))
    clients = native.connected_clients()
    if clients >= 0:
        print(f"connected clients: {clients}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``serve`` and ``status`` on the CLI's subparsers."""
    s = sub.add_parser("serve", help="run the fabric as a TCP service")
    s.add_argument("--data-dir", help="fabric directory (default: in memory)")
    s.add_argument("--listen", default="127.0.0.1:7400", help="HOST:PORT (default 127.0.0.1:7400)")
    s.add_argument("--token-file", help="file holding the shared secret clients must prove they know")
    _settings.add_flag(s, "service", "sync")
    _settings.add_flag(s, "service", "sync_interval_ms")
    s.add_argument("--memory-reserve", default="0", metavar="SIZE",
                   help="in-memory storage: pre-fault SIZE bytes (e.g. 2G, 512M) at start so producers "
                        "do not wait on page faults")
    _settings.add_flag(s, "service", "login_timeout_ms")
    s.add_argument("--login-timeout", type=float, default=None, help=argparse.SUPPRESS)  # deprecated: seconds
    for name in ("max_connections", "max_pending_logins", "max_pending_logins_per_address"):
        _settings.add_flag(s, "service", name)
    s.add_argument("--no-health", action="store_true",
                   help="do not publish the service's heartbeat (__health) and node events (__health.events)")
    c = s.add_argument_group("replicated cluster (docs/cluster.md)")
    c.add_argument("--cluster", metavar="etcd://HOST:PORT[/NAME]",
                   help="serve as one node of a replicated cluster coordinated by this etcd")
    c.add_argument("--node-id", default="", help="this node's id in the cluster (kept across restarts)")
    c.add_argument("--advertise", metavar="HOST", help="host clients and other nodes reach this node at "
                                                        "(default: the --listen host)")
    c.add_argument("--lease-ttl", type=int, default=2, metavar="SECONDS",
                   help="the node's etcd lease: a failed leader's partitions move after this long (default 2)")
    c.add_argument("--replica-lag-ms", type=int, default=2000, metavar="MS",
                   help="a follower this far behind leaves the in-sync set (default 2000)")
    s.add_argument("--ready-file", help=argparse.SUPPRESS)
    s.set_defaults(func=cmd_serve)
    st = sub.add_parser("status", help="partitions, end offsets, consumer groups with lag, connected clients")
    st.set_defaults(func=None, fabric_func=cmd_status)
