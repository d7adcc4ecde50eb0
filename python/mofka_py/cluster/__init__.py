"""cluster: replicated partitions coordinated by etcd.

- :class:`Etcd`: a small thread-safe etcd v3 client over the JSON gateway (HTTP, standard
  library only): keys, compare-and-swap transactions, leases and watches.
"""
from .etcd import Etcd, EtcdError, EtcdUnavailable, KeyValue, compare, op_delete, op_put, op_range

__all__ = ["Etcd", "EtcdError", "EtcdUnavailable", "KeyValue", "compare", "op_put", "op_range", "op_delete"]
