"""Cluster pieces that need no running cluster: URLs, settings and the errors a user meets first."""
from __future__ import annotations

import pytest

import mofka_py as mp
from mofka_py.cluster.node import parse_cluster_url


def test_replication_needs_a_cluster():
    with mp.connect("memory://") as fab:
        with pytest.raises(mp.InvalidArgument, match="needs a cluster"):
            fab.create_topic("t", replication=2)
        assert fab.topics() == []


def test_replication_and_min_insync_are_checked():
    with mp.connect("memory://") as fab:
        with pytest.raises(mp.InvalidArgument):
            fab.create_topic("t", replication=0)
        with pytest.raises(mp.InvalidArgument):
            fab.create_topic("t", replication=9)
        with pytest.raises(mp.InvalidArgument, match="min_insync"):
            fab.create_topic("t", replication=1, min_insync=2)


def test_cluster_url_without_a_live_node_fails_fast_with_the_url():
    with pytest.raises(mp.ConnectionError, match="no node of the cluster"):
        mp.connect("tcp://127.0.0.1:1,127.0.0.1:2", reconnect_timeout_ms=0)


@pytest.mark.parametrize("url", ["tcp://127.0.0.1:7400,", "tcp://127.0.0.1:7400,host", "tcp://a:1,b:99999"])
def test_bad_cluster_urls(url):
    with pytest.raises(mp.InvalidArgument, match="tcp://host1:port1,host2:port2"):
        mp.connect(url)


def test_cluster_urls_for_etcd():
    assert parse_cluster_url("etcd://10.0.0.1:2379") == ("http://10.0.0.1:2379", "default")
    assert parse_cluster_url("etcd://a:1,b:2/site-1") == ("http://a:1,http://b:2", "site-1")
    for bad in ("http://a:1", "etcd://", "etcd://a", "etcd://a:1/x y"):
        with pytest.raises(mp.InvalidArgument):
            parse_cluster_url(bad)


def test_serve_node_id_without_cluster_is_refused():
    from mofka_py.service import serve

    with pytest.raises(mp.InvalidArgument, match="--cluster"):
        serve(listen="127.0.0.1:0", node_id="n1")
    with pytest.raises(mp.InvalidArgument, match="--node-id"):
        serve(listen="127.0.0.1:0", cluster="etcd://127.0.0.1:1")
