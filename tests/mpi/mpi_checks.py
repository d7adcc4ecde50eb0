"""Events with checkable payloads, shared by the MPI tests (every call is made by all ranks where noted)."""
from __future__ import annotations

import zlib

import numpy as np


def payload(src: int, seq: int) -> np.ndarray:
    """The data of event ``seq`` of rank ``src``: mostly small (copied into batches), some large (referenced)."""
    n = 20_000 if seq % 17 == 0 else 1 + (seq * 7 + src) % 300
    return (np.arange(n, dtype=np.float64) * (src + 1) + seq).astype(np.float64)


def produce(topic, src: int, seqs) -> None:
    """Push events ``seqs`` of rank ``src``, each with its payload's CRC in the metadata."""
    with topic.producer(linger_ms=0.5, selector="round_robin") as prod:
        for seq in seqs:
            arr = payload(src, seq)
            prod.push({"src": src, "seq": seq, "crc": zlib.crc32(arr)}, data=arr)


def check_event(ev) -> tuple:
    """Verify an event's payload against its metadata; returns (partition, offset, src, seq)."""
    meta = ev.metadata
    data = np.frombuffer(ev.data, dtype=np.float64)
    assert zlib.crc32(data) == meta["crc"], f"payload of {meta} damaged"
    assert np.array_equal(data, payload(meta["src"], meta["seq"]))
    return (ev.partition, ev.offset, meta["src"], meta["seq"])


def check_order(records) -> None:
    """Within a partition, one producer's events appear in the order it pushed them."""
    last = {}
    for part, _off, src, seq in sorted(records):
        key = (part, src)
        assert last.get(key, -1) < seq, f"partition {part}: event {seq} of rank {src} out of order"
        last[key] = seq


def group_reads_everything_once(comm, topic, group: str, expected: set) -> list:
    """Collective over ``comm``: every rank joins ``group``, reads and acks to the end; across the
    ranks every expected (src, seq) arrives exactly once, in order per partition. Returns all records."""
    cons = topic.consumer(group=group)
    comm.Barrier()  # everybody joined before anybody reads
    got = []
    for ev in cons:
        got.append(check_event(ev))
        ev.ack()
    cons.close()
    everything = [r for part in comm.allgather(got) for r in part]
    assert len(everything) == len(expected)
    assert {(s, q) for _, _, s, q in everything} == expected
    check_order(everything)
    return everything


def rank_part(fn, *args, **kwargs):
    """Run one rank's own part of a test, returning its failure instead of raising it, so that the
    rank still takes part in the collectives that follow (a rank raising before a collective would
    leave the others waiting in it). Raise the failure after them with :func:`reraise`."""
    try:
        fn(*args, **kwargs)
        return None
    except BaseException as exc:  # re-raised by reraise() once the collectives are done
        return exc


def reraise(comm, failure) -> None:
    """Collective: raise this rank's failure, or tell that another rank failed."""
    failed = comm.allreduce(1 if failure is not None else 0)
    if failure is not None:
        raise failure
    if failed:
        raise AssertionError(f"{failed} other rank(s) failed this test")
