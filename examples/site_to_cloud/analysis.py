"""The analysis in the cloud: reads frame metadata from Kafka, steers the instrument back through the bridge.

Plain confluent-kafka, as a cloud service (Octopus, MSK, Confluent) would run it. When the mean
intensity is below target it asks for a longer exposure; once frames come back with the new exposure
it sends ``stop``. Each record's ``mofka.origin`` header traces it back to the site event.
"""
from __future__ import annotations

import json
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition


def main(bootstrap: str, max_seconds: float = 60.0) -> int:
    cons = Consumer({"bootstrap.servers": bootstrap, "group.id": "cloud-analysis", "enable.auto.commit": False,
                     "fetch.wait.max.ms": 10})
    prod = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1})
    deadline = time.monotonic() + max_seconds
    parts = None
    while parts is None and time.monotonic() < deadline:
        md = cons.list_topics("beamline7.frames", timeout=5)
        t = md.topics.get("beamline7.frames")
        if t is not None and not t.error and t.partitions:
            parts = sorted(t.partitions)
        else:
            time.sleep(0.2)
    if parts is None:
        print("analysis: no frames topic", flush=True)
        return 1
    cons.assign([TopicPartition("beamline7.frames", p, 0) for p in parts])
    asked = None
    seen = 0
    try:
        while time.monotonic() < deadline:
            for m in cons.consume(1000, 0.2):
                if m.error():
                    continue
                meta = json.loads(m.value())
                seen += 1
                if asked is None and meta["mean"] < 20:
                    asked = 40.0
                    origin = dict(m.headers())["mofka.origin"].decode()
                    print(f"analysis: frame {meta['frame']} from {meta['site']} (origin {origin}) mean "
                          f"{meta['mean']:.1f} too dim -> set_exposure {asked} ms", flush=True)
                    prod.produce("beamline7.steering", json.dumps({"cmd": "set_exposure", "exposure_ms": asked}))
                    prod.flush(10)
                elif asked is not None and meta["exposure_ms"] == asked:
                    print(f"analysis: frame {meta['frame']} arrived with exposure {asked} ms, mean "
                          f"{meta['mean']:.1f}: steering worked after {seen} frames; sending stop", flush=True)
                    prod.produce("beamline7.steering", json.dumps({"cmd": "stop"}))
                    prod.flush(10)
                    return 0
        print("analysis: steering not observed in time", flush=True)
        return 1
    finally:
        cons.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
