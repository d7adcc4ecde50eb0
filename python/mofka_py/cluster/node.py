"""The cluster coordinator inside ``mofka-py serve --cluster``: membership, topics, leader
elections and in-sync sets, kept in etcd; the data path (followers copying from leaders, writes
acknowledged once the in-sync replicas hold them, reads below the high watermark) is the C++
broker's.

Keys, under ``/mofka-py/<cluster>/``:

- ``nodes/<id>``: ``{"address": "host:port", "incarnation": ...}``, bound to the node's lease
  (alive while it renews). The incarnation changes when a node comes back without its data (an
  in-memory node restarted): the in-sync set names incarnations, so such a node is never taken
  for in sync (nor elected) before it has copied the log again (Kafka's broker epochs, KIP-380).
- ``topics/<name>``: the topic's settings and each partition's replicas (node ids).
- ``leaders/<topic>/<p>``: ``{"node": id, "address": ...}``, bound to the leader's lease; the key's
  create revision is the leader's **epoch** (cluster-wide, always growing). A replica campaigns
  with a put-if-absent transaction; only members of the in-sync set may.
- ``isr/<topic>/<p>``: ``{"isr": {id: incarnation}, "epoch": e}``, written only by the leader of epoch ``e``
  (a transaction that checks its leader key is still the one of that epoch).

Safety: a write is acknowledged only once every in-sync replica holds it and only the in-sync
replicas may become leader, so an acknowledged write survives any failure that leaves one of
them; the in-sync set shrinks in etcd *before* the leader acknowledges without the removed one.
A leader takes writes only until its lease deadline (renewed by keepalives measured from when
they were sent), so a leader paused past its lease cannot write after another was elected.
"""
from __future__ import annotations

import collections
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..errors import Error, InvalidArgument
from .etcd import Etcd, EtcdUnavailable, KeyValue, compare, op_put

#: Replica-state events published to ``__health.events`` (the pool issue's health topic), by the
#: coordinator event that makes them.
PUBLISHED = {"elected": "leader_changed", "lease_lost": "leader_lease_lost", "follower_lagging": "follower_lagging",
             "etcd_unreachable": "coordination_lost", "etcd_reachable": "coordination_restored"}

#: Topic settings copied to every node with the topic (the rest are the node's defaults).
_TOPIC_SETTINGS = ("segment_bytes", "retention_bytes", "retention_ms", "sync", "sync_interval_ms", "max_event_bytes",
                   "replication", "min_insync")


def parse_cluster_url(url: str) -> Tuple[str, str]:
    """``etcd://host:port[,host:port...][/name]`` -> (etcd endpoints URL, cluster name).

    >>> parse_cluster_url("etcd://127.0.0.1:2379")
    ('http://127.0.0.1:2379', 'default')
    >>> parse_cluster_url("etcd://a:1,b:2/site1")
    ('http://a:1,http://b:2', 'site1')
    """
    if not url.startswith("etcd://"):
        raise InvalidArgument(f"--cluster takes etcd://host:port[/cluster-name] (got {url!r})")
    rest = url[len("etcd://"):]
    hosts, _, name = rest.partition("/")
    name = name.strip("/") or "default"
    if not hosts or not all(":" in h for h in hosts.split(",")):
        raise InvalidArgument(f"--cluster takes etcd://host:port[/cluster-name] (got {url!r})")
    if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise InvalidArgument(f"a cluster name uses letters, digits, '-', '_' and '.' (got {name!r})")
    return ",".join(f"http://{h}" for h in hosts.split(",")), name


def read_cluster(etcd: Etcd, prefix: str) -> Tuple[Dict[str, Dict[str, str]], Dict[str, Dict[str, Any]],
                                                  Dict[Tuple[str, int], KeyValue], Dict[Tuple[str, int], Dict[str, str]]]:
    """The cluster under ``prefix`` in one read: live nodes ({id: {"address", "incarnation"}}),
    topics ({name: record}), leader keys ({(topic, p): KeyValue}, whose create revision is the
    epoch) and in-sync sets ({(topic, p): {node: incarnation}})."""
    nodes: Dict[str, Dict[str, str]] = {}
    topics: Dict[str, Dict[str, Any]] = {}
    leaders: Dict[Tuple[str, int], KeyValue] = {}
    isrs: Dict[Tuple[str, int], Dict[str, str]] = {}
    for kv in etcd.get_prefix(prefix):
        parts = kv.key.decode()[len(prefix):].split("/")
        if parts[0] == "nodes" and len(parts) == 2:
            nodes[parts[1]] = json.loads(kv.value)
        elif parts[0] == "topics" and len(parts) == 2:
            topics[parts[1]] = json.loads(kv.value)
        elif parts[0] == "leaders" and len(parts) == 3:
            leaders[(parts[1], int(parts[2]))] = kv
        elif parts[0] == "isr" and len(parts) == 3:
            isrs[(parts[1], int(parts[2]))] = json.loads(kv.value)["isr"]
    return nodes, topics, leaders, isrs


@dataclass
class _Held:
    """What this node runs for one partition."""
    kind: str = "offline"
    epoch: int = 0
    leader: str = ""
    isr: List[str] = field(default_factory=list)
    replicas: List[str] = field(default_factory=list)
    fetcher: Any = None
    since: float = 0.0  # monotonic time the current role began
    leaderless_since: float = 0.0  # monotonic time this node first saw no leader (0: it has one)
    fetch_error: str = ""  # the follower's last copy error, as last logged


class ClusterNode:
    """Runs one node's part of the cluster next to its TCP server (``srv``, a ``_core.Server``
    made with this node id) until :meth:`stop`.

    ``lease_ttl_s``: the node's etcd lease (a leader that stops renewing it loses its partitions
    after this long; etcd's minimum is 2 s unless it runs with a shorter election timeout).
    ``lag_ms``: an in-sync follower that has not caught up with the leader's end for this long
    leaves the in-sync set (Kafka's replica.lag.time.max.ms).
    """

    def __init__(self, srv: Any, etcd_url: str, cluster: str, node_id: str, address: str, *, token: str = "",
                 data_dir: Optional[str] = None, lease_ttl_s: int = 2, lag_ms: int = 2000, interval_s: float = 0.25,
                 log: Callable[[str], None] = print):
        if not node_id or "/" in node_id:
            raise InvalidArgument(f"--node-id must be a non-empty name without '/' (got {node_id!r})")
        self.srv, self.node, self.address, self.token = srv, node_id, address, token
        self.etcd = Etcd(etcd_url, timeout=max(0.5, lease_ttl_s / 3))
        self.prefix = f"/mofka-py/{cluster}/"
        self.ttl, self.lag_ms, self.interval, self.log = lease_ttl_s, lag_ms, interval_s, log
        self.lease = 0
        self.held: Dict[Tuple[str, int], _Held] = {}
        self.known_in_etcd: set = set()  # topics seen registered in etcd
        self.local_before: set = set()  # topics held locally at the last round
        self.stop_event = threading.Event()
        self.events: List[Dict[str, Any]] = []  # leader changes, in-sync changes (for health and tests)
        self._lock = threading.Lock()
        self._threads: List[threading.Thread] = []
        self._outbox: "collections.deque[Dict[str, Any]]" = collections.deque(maxlen=10000)
        self._addresses: List[str] = []
        self._lagging: set = set()
        self._step_down = False
        self._wake = threading.Event()  # set by the etcd watch: something changed, run a round now
        self.etcd_ok = True
        self.incarnation = self._incarnation(data_dir)
        self.first_seen: Dict[Tuple[str, str], float] = {}

    @staticmethod
    def _incarnation(data_dir: Optional[str]) -> str:
        """Stable across restarts of a node that keeps its data (file://), new for one that does not."""
        if not data_dir:
            return uuid.uuid4().hex
        path = os.path.join(data_dir, "cluster-incarnation")
        try:
            with open(path, encoding="utf-8") as fh:
                return fh.read().strip()
        except FileNotFoundError:
            inc = uuid.uuid4().hex
            os.makedirs(data_dir, exist_ok=True)
            with open(path + ".tmp", "w", encoding="utf-8") as fh:
                fh.write(inc)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(path + ".tmp", path)
            return inc

    # ---- life cycle ----

    def start(self) -> "ClusterNode":
        """Register in etcd (a clear error if etcd does not answer) and start the loops."""
        self._register()
        for target, name in ((self._keepalive_loop, "cluster-lease"), (self._control_loop, "cluster-control"),
                             (self._publish_loop, "cluster-events")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        # Rounds run at once when etcd changes (a leader key gone, a topic created, a node back) and
        # every interval_s otherwise (in-sync upkeep), instead of polling etcd fast.
        self._threads.append(self.etcd.watch_prefix(self.prefix, 0, lambda _events: self._wake.set(),
                                                    self.stop_event))
        return self

    def stop(self) -> None:
        """Leave the cluster: refuse writes now, stop copying, give up leaderships (others take
        over at once). Call it while the server still polls (writes waiting for their replicas
        are answered NotLeader, and their producers go to the new leaders)."""
        self.srv.set_lease_deadline(0)
        self.stop_event.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout=2)
        with self._lock:
            held = list(self.held.values())
        for h in held:
            if h.fetcher is not None:
                h.fetcher.stop()
        try:
            if self.lease:
                self.etcd.lease_revoke(self.lease)  # its leader keys go with it
        except Error:
            pass

    def _register(self) -> None:
        lease, ttl = self.etcd.lease_grant(self.ttl)
        sent = time.monotonic_ns()
        self.etcd.put(self._k("nodes", self.node),
                      json.dumps({"address": self.address, "incarnation": self.incarnation}), lease=lease)
        self.lease = lease
        self.srv.set_lease_deadline(sent + ttl * 1_000_000_000)
        self._event("registered", lease=lease, ttl=ttl)

    def _k(self, *parts: Any) -> str:
        return self.prefix + "/".join(str(p) for p in parts)

    def _event(self, kind: str, **info: Any) -> None:
        with self._lock:
            self.events.append({"event": kind, "node": self.node, "time": time.time(), **info})
            del self.events[:-1000]
        self.log(f"cluster: {kind} " + " ".join(f"{k}={v}" for k, v in info.items()))
        public = PUBLISHED.get(kind)
        if kind == "isr_changed":
            full = len(info.get("isr", "").split(",")) >= info.get("replicas", 0)
            public = "under_replicated" if info.get("removed") else ("fully_replicated" if full else "isr_expanded")
        if kind == "elected" and len(info.get("isr", "").split(",")) < info.get("replicas", 0):
            self._outbox.append({"event": "under_replicated", "node": self.node, "kind": "cluster", "ts": time.time(),
                                 "reason": kind, **info})
        if public:
            self._outbox.append({"event": public, "node": self.node, "kind": "cluster", "ts": time.time(),
                                 "reason": kind, **info})

    def _publish_loop(self) -> None:
        """Replica-state events to ``__health.events`` on the cluster itself (as the pool's health
        monitor publishes node events), through a cluster client; kept while the cluster is away."""
        from .. import api
        from ..services.health import EVENTS_TOPIC, ensure_topic

        fab = prod = None
        warned = False
        while not self.stop_event.wait(0.2):
            if not self._outbox or not self._addresses:
                continue
            try:
                if prod is None:
                    fab = api.connect("tcp://" + ",".join(self._addresses), token=self.token or None,
                                      reconnect_timeout_ms=5000)
                    topic = ensure_topic(fab, EVENTS_TOPIC, replication=min(3, len(self._addresses)), min_insync=1)
                    prod = topic.producer(linger_ms=0.0)
                while self._outbox:
                    prod.push(self._outbox[0])
                    self._outbox.popleft()
                prod.flush(timeout=10)
                warned = False
            except Error as exc:
                if not warned:
                    self.log(f"cluster: cannot publish replica events yet ({str(exc).splitlines()[0]}); retrying")
                warned = True
                self._close_quietly(prod, fab)
                fab = prod = None
        self._close_quietly(prod, fab)

    @staticmethod
    def _close_quietly(prod: Any, fab: Any) -> None:
        try:
            if prod is not None:
                prod.close(timeout=1)
        except Error:
            pass  # events not stored: they stay unpublished (health events are best effort)
        try:
            if fab is not None:
                fab.close()
        except Error:
            pass

    # ---- the lease ----

    def _keepalive_loop(self) -> None:
        while not self.stop_event.wait(self.ttl / 4):
            sent = time.monotonic_ns()
            try:
                ttl = self.etcd.lease_keepalive(self.lease)
            except Error as exc:
                # etcd unreachable: keep serving until the lease deadline set by the last renewal.
                if self.etcd_ok:
                    self._event("etcd_unreachable", error=str(exc).splitlines()[0])
                self.etcd_ok = False
                continue
            if not self.etcd_ok:
                self._event("etcd_reachable")
            self.etcd_ok = True
            if ttl > 0:
                self.srv.set_lease_deadline(sent + ttl * 1_000_000_000)
                continue
            # The lease ended (paused past it, or etcd lost it): every leadership is gone.
            self.srv.set_lease_deadline(0)
            self._event("lease_lost", lease=self.lease)
            self._step_down_all()
            try:
                self._register()
            except Error as exc:
                self._event("register_failed", error=str(exc).splitlines()[0])

    def _step_down_all(self) -> None:
        """Ask the control loop (the only thread that changes roles) to drop every leadership at
        its next round; the lease deadline, already 0, fences writes meanwhile."""
        self._step_down = True

    # ---- the control loop ----

    def _control_loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.round()
            except EtcdUnavailable:
                pass  # the lease loop reports it; leaders keep their lease until it lapses
            except Error as exc:
                self._event("round_failed", error=str(exc).splitlines()[0])
            self._wake.wait(self.interval)
            self._wake.clear()

    def round(self) -> None:
        """One pass: read the cluster's state from etcd and act on it."""
        if self._step_down:
            self._step_down = False
            with self._lock:
                held = list(self.held.items())
            for (topic, p), h in held:
                if h.kind == "leader":
                    self._set_role(topic, p, h, "offline", h.epoch, "", "", h.replicas, [])
        nodes, topics, leaders, isrs = read_cluster(self.etcd, self.prefix)
        self.srv.set_cluster_nodes(sorted((n, v["address"]) for n, v in nodes.items()))
        self._addresses = [v["address"] for _, v in sorted(nodes.items())]
        self._sync_topics(topics, nodes)
        for name, t in topics.items():
            for p, replicas in enumerate(t["replicas"]):
                self._partition(name, p, replicas, leaders.get((name, p)), isrs.get((name, p)), nodes)
        with self._lock:
            followed = [(k, h) for k, h in self.held.items() if h.fetcher is not None]
        for (name, p), h in followed:
            err = h.fetcher.last_error
            if err != h.fetch_error:
                h.fetch_error = err
                if err:
                    self._event("copy_failing", topic=name, partition=p, leader=h.leader, error=err.splitlines()[0])

    def _sync_topics(self, topics: Dict[str, Dict[str, Any]], nodes: Dict[str, Dict[str, str]]) -> None:
        local = set(self.srv.topics())
        for name, t in topics.items():
            self.known_in_etcd.add(name)
            if name not in local:
                settings = {k: t["settings"][k] for k in _TOPIC_SETTINGS if k in t["settings"]}
                try:
                    self.srv.create_local_topic(name, {"partitions": t["partitions"], **settings})
                except Error as exc:
                    if type(exc).__name__ != "TopicExists":
                        raise
                local.add(name)
                self._event("topic_created_here", topic=name)
        for name in sorted(local - set(topics)):
            if name in self.known_in_etcd:
                # Deleted through another node: delete here too.
                self._drop_partitions(name)
                try:
                    self.srv.delete_local_topic(name)
                except Error:
                    pass
                self.known_in_etcd.discard(name)
                local.discard(name)
                self._event("topic_deleted_here", topic=name)
            else:
                self._register_topic(name, nodes)
        for name in sorted((self.local_before - local) & set(topics)):
            # Deleted through this node: delete it everywhere.
            self._drop_partitions(name)
            self.etcd.delete(self._k("topics", name))
            self.etcd.delete_prefix(self._k("leaders", name) + "/")
            self.etcd.delete_prefix(self._k("isr", name) + "/")
            self.known_in_etcd.discard(name)
            self._event("topic_deleted", topic=name)
        self.local_before = local

    def _register_topic(self, name: str, nodes: Dict[str, Dict[str, str]]) -> None:
        """A topic a client created on this node: place its replicas and publish it."""
        layout = self.srv.topic_layout(name)
        live = sorted(nodes) or [self.node]
        r = max(1, int(layout["replication"]))
        n = int(layout["partitions"])
        # Partition p's replicas: r consecutive live nodes from p's turn on, the creating node first for p = 0.
        start = live.index(self.node) if self.node in live else 0
        replicas = [[live[(start + p + i) % len(live)] for i in range(min(r, len(live)))] for p in range(n)]
        record = {"partitions": n, "settings": {k: layout[k] for k in _TOPIC_SETTINGS if k in layout},
                  "replicas": replicas}
        created, _ = self.etcd.put_if_absent(self._k("topics", name), json.dumps(record))
        if created:
            self._event("topic_registered", topic=name, partitions=n, replication=r,
                        under_replicated=len(live) < r)

    def _drop_partitions(self, topic: str) -> None:
        with self._lock:
            for key in [k for k in self.held if k[0] == topic]:
                h = self.held.pop(key)
                if h.fetcher is not None:
                    h.fetcher.stop()

    def _set_role(self, topic: str, p: int, h: _Held, kind: str, epoch: int, leader: str, address: str,
                  replicas: List[str], isr: List[str]) -> None:
        if h.fetcher is not None and (kind != "follower" or epoch != h.epoch):
            h.fetcher.stop()
            h.fetcher = None
        self.srv.set_replica_role(topic, p, kind, epoch, leader, address, replicas, isr)
        if kind == "follower" and h.fetcher is None:
            host, _, port = address.rpartition(":")
            h.fetcher = self.srv.start_follower(topic, p, epoch, host, int(port), self.token)
        if kind != h.kind or epoch != h.epoch:
            h.since = time.monotonic()
        h.kind, h.epoch, h.leader, h.isr, h.replicas = kind, epoch, leader, list(isr), list(replicas)

    def _known_for_ms(self, node: str, incarnation: str) -> float:
        """How long this node has seen ``node`` run as ``incarnation`` (a fetch older than that was
        its previous incarnation's, which may have held data the new one lost)."""
        first = self.first_seen.setdefault((node, incarnation), time.monotonic())
        return (time.monotonic() - first) * 1000

    def _live_isr(self, isr: Dict[str, str], nodes: Dict[str, Dict[str, str]]) -> Dict[str, str]:
        """The in-sync members that are still the incarnation recorded (alive, data kept)."""
        return {n: inc for n, inc in isr.items() if n in nodes and nodes[n].get("incarnation") == inc}

    def _partition(self, topic: str, p: int, replicas: List[str], leader: Optional[KeyValue],
                   isr: Optional[Dict[str, str]], nodes: Dict[str, Dict[str, str]]) -> None:
        with self._lock:
            h = self.held.setdefault((topic, p), _Held())
        # A topic's first leader: any replica (all are empty); later ones: only in-sync ones.
        fresh = isr is None
        in_sync = dict(isr) if isr is not None else {n: nodes[n]["incarnation"] for n in replicas if n in nodes}
        names = sorted(in_sync)
        if leader is None:
            now = time.monotonic()
            h.leaderless_since = h.leaderless_since or now
            # The first replica listed (the preferred leader, which spreads leaders over the nodes) goes
            # first; the others give it a few rounds while it is alive and in sync.
            preferred = replicas[0] if replicas else ""
            preferred_able = preferred in nodes and (fresh or in_sync.get(preferred) ==
                                                     nodes[preferred].get("incarnation"))
            my_turn = (self.node == preferred or not preferred_able or now - h.leaderless_since > 0.3)
            if (self.node in replicas and self.lease and my_turn
                    and (fresh or in_sync.get(self.node) == self.incarnation)):
                self._campaign(topic, p, replicas, in_sync, nodes, h)
            elif h.kind != "offline" or h.leader:
                self._set_role(topic, p, h, "offline", h.epoch, "", "", replicas, names)
            return
        h.leaderless_since = 0.0
        info = json.loads(leader.value)
        epoch = leader.create_revision
        if info["node"] == self.node:
            if leader.lease != self.lease:
                # Left by an earlier run of this node: free it, so the in-sync replicas can campaign.
                self.etcd.delete_if_create_revision(leader.key, epoch)
                return
            if h.kind != "leader" or h.epoch != epoch or h.replicas != replicas:
                self._set_role(topic, p, h, "leader", epoch, self.node, self.address, replicas, names)
            self._maintain_isr(topic, p, replicas, in_sync, nodes, h, epoch)
            return
        if self.node in replicas:
            if h.kind != "follower" or h.epoch != epoch or h.isr != names or h.replicas != replicas:
                if h.kind != "follower" or h.epoch != epoch:
                    self._event("following", topic=topic, partition=p, leader=info["node"], epoch=epoch)
                self._set_role(topic, p, h, "follower", epoch, info["node"], info["address"], replicas, names)
        elif h.kind != "offline" or h.epoch != epoch or h.leader != info["node"]:
            self._set_role(topic, p, h, "offline", epoch, info["node"], info["address"], replicas, names)

    def _campaign(self, topic: str, p: int, replicas: List[str], in_sync: Dict[str, str],
                  nodes: Dict[str, Dict[str, str]], h: _Held) -> None:
        key = self._k("leaders", topic, p)
        created, kv = self.etcd.put_if_absent(key, json.dumps({"node": self.node, "address": self.address}),
                                              lease=self.lease)
        if not created:
            return  # another replica won; the next round follows it
        epoch = kv.create_revision
        # Replicas that are down (their lease ended, like the old leader's) leave the in-sync set now.
        new_isr = self._live_isr(in_sync, nodes)
        new_isr[self.node] = self.incarnation
        if not self._write_isr(topic, p, epoch, new_isr):
            return
        self._event("elected", topic=topic, partition=p, epoch=epoch, leader=self.node, isr=",".join(sorted(new_isr)),
                    replicas=len(replicas))
        self._set_role(topic, p, h, "leader", epoch, self.node, self.address, replicas, sorted(new_isr))

    def _write_isr(self, topic: str, p: int, epoch: int, isr: Dict[str, str]) -> bool:
        """Store the in-sync set, only while this node's leader key of ``epoch`` stands."""
        leader_key = self._k("leaders", topic, p)
        res = self.etcd.txn([compare(leader_key, "CREATE", "==", epoch)],
                            [op_put(self._k("isr", topic, p), json.dumps({"isr": isr, "epoch": epoch}, sort_keys=True))],
                            [])
        return bool(res.get("succeeded"))

    def _maintain_isr(self, topic: str, p: int, replicas: List[str], in_sync: Dict[str, str],
                      nodes: Dict[str, Dict[str, str]], h: _Held, epoch: int) -> None:
        st = self.srv.replica_status(topic, p)
        live = {n: inc for n, inc in self._live_isr(in_sync, nodes).items() if n in replicas}
        new = {self.node: self.incarnation}
        for f in st["followers"]:
            n = f["node"]
            if n in live:
                lagging = f["since_caught_up_ms"] < 0 or f["since_caught_up_ms"] > self.lag_ms
                if not lagging:
                    new[n] = live[n]
                behind = f["since_caught_up_ms"] > self.lag_ms * 3 / 4 and f["position"] < st["end_offset"]
                if behind and (topic, p, n) not in self._lagging:
                    self._lagging.add((topic, p, n))
                    self._event("follower_lagging", topic=topic, partition=p, follower=n,
                                behind=st["end_offset"] - f["position"], since_caught_up_ms=f["since_caught_up_ms"])
                elif not behind:
                    self._lagging.discard((topic, p, n))
            elif (n in nodes and f["known"] and f["position"] >= st["end_offset"] and f["since_fetch_ms"] >= 0
                  and f["since_fetch_ms"] < min(self.lag_ms, self._known_for_ms(n, nodes[n]["incarnation"]))):
                new[n] = nodes[n]["incarnation"]  # caught up: back in sync (this incarnation's own fetch)
        if new == in_sync and h.isr == sorted(new):
            return
        if new != in_sync:
            if not self._write_isr(topic, p, epoch, new):
                return  # no longer the leader; the next round sees it
            gone, back = sorted(set(in_sync) - set(new)), sorted(set(new) - set(in_sync))
            self._event("isr_changed", topic=topic, partition=p, epoch=epoch, isr=",".join(sorted(new)),
                        removed=",".join(gone), added=",".join(back), replicas=len(replicas))
        self._set_role(topic, p, h, "leader", epoch, self.node, self.address, replicas, sorted(new))

    # ---- reporting ----

    def status(self) -> List[Dict[str, Any]]:
        """This node's view of each partition it holds a role for."""
        out = []
        with self._lock:
            items = sorted(self.held.items())
        for (topic, p), h in items:
            try:
                st = self.srv.replica_status(topic, p)
            except Error:
                continue
            out.append({"topic": topic, "partition": p, **st,
                        "fetch_error": h.fetcher.last_error if h.fetcher is not None else ""})
        return out
