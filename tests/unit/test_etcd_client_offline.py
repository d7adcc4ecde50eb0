"""mofka_py.cluster.Etcd without an etcd: endpoint parsing, transaction helpers, gateway decoding and the
error raised when nothing listens (the behaviour against a real etcd: integration/test_etcd_client.py)."""
from __future__ import annotations

import socket

import pytest

from mofka_py.cluster import Etcd, EtcdUnavailable, KeyValue, compare, op_delete, op_put, op_range
from mofka_py.errors import InvalidArgument


def test_endpoint_forms():
    assert Etcd().endpoints == ["http://127.0.0.1:2379"]
    assert Etcd("etcd://10.1.2.3:2400").endpoints == ["http://10.1.2.3:2400"]
    assert Etcd("http://a:1, etcd://b:2,c:3,d").endpoints == ["http://a:1", "http://b:2", "http://c:3", "http://d:2379"]


@pytest.mark.parametrize("url", ["", ",", "https://a:2379", "kafka://a:1", "etcd://a:x", "etcd://a:1/v3"])
def test_bad_endpoints_say_what_to_give(url):
    with pytest.raises(InvalidArgument, match="etcd://"):
        Etcd(url)


def test_bad_timeout():
    with pytest.raises(InvalidArgument, match="timeout"):
        Etcd(timeout=0)


def test_txn_helpers_encode_keys():
    assert compare("/a", "CREATE", "==", 0) == {"key": "L2E=", "target": "CREATE", "result": "EQUAL",
                                                "create_revision": "0"}
    assert compare(b"/a", "VALUE", "!=", "x")["value"] == "eA=="
    assert op_put("/a", "b", lease=7) == {"request_put": {"key": "L2E=", "value": "Yg==", "lease": "7"}}
    assert op_range("/a/", prefix=True) == {"request_range": {"key": "L2Ev", "range_end": "L2Ew"}}  # "/a/".."/a0"
    assert op_delete(b"\xff", prefix=True)["request_delete_range"]["range_end"] == "AA=="  # every key
    with pytest.raises(InvalidArgument, match="target"):
        compare("/a", "AGE", "==", 0)
    with pytest.raises(InvalidArgument, match="result"):
        compare("/a", "MOD", "=", 0)
    with pytest.raises(InvalidArgument, match="str or bytes"):
        op_put("/a", 3)  # type: ignore[arg-type]


def test_keyvalue_defaults_left_out_by_the_gateway():
    kv = KeyValue.from_gateway({"key": "L2E=", "mod_revision": "9"})
    assert kv == KeyValue(key=b"/a", value=b"", create_revision=0, mod_revision=9, version=0, lease=0)


def test_nothing_listening_raises_unavailable_naming_the_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        etcd = Etcd(f"etcd://127.0.0.1:{port}", timeout=0.5)
        with pytest.raises(EtcdUnavailable) as info:
            etcd.get("k")
    text = str(info.value)
    assert f"http://127.0.0.1:{port}" in text and "did not answer within 0.5 s" in text
    assert "refused" in text.lower() and "--cluster etcd://" in text
