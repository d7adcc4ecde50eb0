"""``mofka-py cluster status`` and ``mofka-py cluster reassign``: a replicated cluster as etcd
holds it (nodes, each partition's leader, epoch, replicas and in-sync set)."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, List

from .._progress import table
from ..errors import InvalidArgument, TopicNotFound
from .etcd import Etcd
from .node import parse_cluster_url, read_cluster


def cluster_state(etcd: Etcd, cluster: str) -> Dict[str, Any]:
    """Nodes, topics and each partition's leader, epoch, replicas and in-sync replicas, from etcd.

    ``under_replicated`` lists (topic, partition) whose in-sync set is smaller than its replicas;
    ``offline`` those without a leader.
    """
    nodes, topics, leader_keys, isrs = read_cluster(etcd, f"/mofka-py/{cluster}/")
    leaders = {k: (json.loads(kv.value)["node"], kv.create_revision) for k, kv in leader_keys.items()}
    partitions = []
    for name, t in sorted(topics.items()):
        for p, replicas in enumerate(t["replicas"]):
            leader, epoch = leaders.get((name, p), (None, 0))
            isr = sorted(isrs.get((name, p), replicas))
            partitions.append({"topic": name, "partition": p, "leader": leader, "epoch": epoch,
                               "replicas": replicas, "isr": isr})
    return {"nodes": nodes, "partitions": partitions,
            "under_replicated": [(x["topic"], x["partition"]) for x in partitions
                                 if len(x["isr"]) < len(x["replicas"])],
            "offline": [(x["topic"], x["partition"]) for x in partitions if x["leader"] is None]}


def reassign(etcd: Etcd, cluster: str, topic: str, partition: int, replicas: List[str]) -> List[str]:
    """Give ``partition`` of ``topic`` a new replica list (node ids, 1-5, distinct). New replicas
    copy the partition from its leader from scratch and join the in-sync set once caught up;
    removed ones stop holding it. Returns the previous list. The current leader must stay a replica
    (move leadership first by stopping it, if it must go)."""
    prefix = f"/mofka-py/{cluster}/"
    key = f"{prefix}topics/{topic}"
    kv = etcd.get(key)
    if kv is None:
        raise TopicNotFound(f"topic '{topic}' is not registered in cluster '{cluster}'")
    record = json.loads(kv.value)
    if not 0 <= partition < len(record["replicas"]):
        raise InvalidArgument(f"partition {partition} does not exist in topic '{topic}' "
                              f"(it has {len(record['replicas'])})")
    if not 1 <= len(replicas) <= 5 or len(set(replicas)) != len(replicas):
        raise InvalidArgument(f"give 1 to 5 distinct node ids (got {','.join(replicas)})")
    live = {k.key.decode()[len(prefix) + len("nodes/"):] for k in etcd.get_prefix(prefix + "nodes/")}
    unknown = sorted(set(replicas) - live)
    if unknown:
        raise InvalidArgument(f"node(s) {', '.join(unknown)} are not live in cluster '{cluster}' "
                              f"(live: {', '.join(sorted(live))})")
    leader = etcd.get(f"{prefix}leaders/{topic}/{partition}")
    if leader is not None and json.loads(leader.value)["node"] not in replicas:
        raise InvalidArgument(f"node {json.loads(leader.value)['node']} leads partition {partition}: keep it among "
                              f"the replicas, or stop it first so another replica takes over")
    before = list(record["replicas"][partition])
    record["replicas"][partition] = list(replicas)
    if not etcd.put_if_mod_revision(key, json.dumps(record), kv.mod_revision):
        raise InvalidArgument(f"topic '{topic}' changed meanwhile; run the command again")
    return before


def cmd_cluster(args: argparse.Namespace) -> int:
    url, name = parse_cluster_url(args.cluster)
    etcd = Etcd(url)
    if args.action == "status":
        st = cluster_state(etcd, name)
        if args.json:
            print(json.dumps(st, indent=2, default=list))
            return 0
        print(f"cluster {name}: {len(st['nodes'])} live node(s): "
              + ", ".join(f"{n} ({v['address']})" for n, v in sorted(st["nodes"].items())))
        rows = [(x["topic"], x["partition"], x["leader"] or "-", x["epoch"] or "-", ",".join(x["replicas"]),
                 ",".join(x["isr"]), "under-replicated" if len(x["isr"]) < len(x["replicas"]) else
                 ("offline" if x["leader"] is None else "ok")) for x in st["partitions"]]
        if rows:
            print(table(rows, ["topic", "partition", "leader", "epoch", "replicas", "in sync", "state"]))
        print(f"{len(st['under_replicated'])} under-replicated, {len(st['offline'])} offline partition(s)")
        return 1 if st["offline"] else 0
    before = reassign(etcd, name, args.topic, args.partition, [r for r in args.replicas.split(",") if r])
    print(f"partition {args.partition} of {args.topic}: replicas {','.join(before)} -> {args.replicas}; "
          f"new replicas copy it from the leader, then join the in-sync set", file=sys.stderr)
    return 0


def add_parser(sub: Any) -> None:
    """Register ``cluster status|reassign``."""
    c = sub.add_parser("cluster", help="a replicated cluster: leaders, in-sync replicas, reassignment")
    cs = c.add_subparsers(dest="action", metavar="ACTION", required=True)
    st = cs.add_parser("status", help="live nodes; each partition's leader, epoch, replicas and in-sync set")
    st.add_argument("--json", action="store_true", help="print the state as JSON")
    ra = cs.add_parser("reassign", help="give a partition a new set of replicas (new ones fill from scratch)")
    ra.add_argument("topic")
    ra.add_argument("partition", type=int)
    ra.add_argument("replicas", help="node ids, comma-separated, e.g. n1,n2,n4")
    for p in (st, ra):
        p.add_argument("--cluster", required=True, metavar="etcd://HOST:PORT[/NAME]", help="the cluster's etcd")
        p.set_defaults(func=cmd_cluster)
