"""Reading a run's topics back to their end, for the report: the cloud's Kafka topics and a site's
fabric topics."""
from __future__ import annotations

import json
import time
from typing import Any, Dict, List, Optional, Tuple


def read_kafka(bootstrap: str, topics: List[str], timeout: float = 30.0
               ) -> Dict[str, List[Tuple[Dict[str, Any], Dict[str, bytes], int, int]]]:
    """Every record of each topic (value as JSON, headers, partition, offset), read to each partition's end
    by one consumer."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    cons = Consumer({"bootstrap.servers": bootstrap, "client.id": "cloud-check", "group.id": "astro-check",
                     "enable.auto.commit": False, "enable.partition.eof": True, "fetch.wait.max.ms": 10})
    try:
        md = cons.list_topics(timeout=10).topics
        parts = [(t, p) for t in topics for p in sorted(md[t].partitions)]
        cons.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in parts])
        out: Dict[str, list] = {t: [] for t in topics}
        done: set = set()
        deadline = time.monotonic() + timeout
        while len(done) < len(parts):
            if time.monotonic() > deadline:
                raise RuntimeError(f"reading Kafka topics {', '.join(topics)} did not reach their end in {timeout:.0f} s")
            for m in cons.consume(1000, 0.05):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        done.add((m.topic(), m.partition()))
                    continue
                out[m.topic()].append((json.loads(m.value()), dict(m.headers() or ()), m.partition(), m.offset()))
        return out
    finally:
        cons.close()


def read_fabric(fab: Any, topic: str, data: bool = False) -> List[Tuple[Dict[str, Any], Optional[bytes]]]:
    """Every event of a fabric topic, in order (metadata, and data bytes when asked)."""
    out = []
    with fab.topic(topic).consumer(start="earliest", data=data) as cons:
        ends = {p["partition"]: p["end_offset"] for p in fab.topic(topic).describe()["partitions"]}
        seen = {p: 0 for p in ends}
        while any(seen[p] < ends[p] for p in ends):
            ev = cons.pull(timeout=10.0)
            if ev is None:
                raise RuntimeError(f"reading fabric topic {topic} stopped before its end")
            seen[ev.partition] = ev.offset + 1
            out.append((ev.metadata, bytes(ev.data) if data and len(ev.data) else None))
    return out
