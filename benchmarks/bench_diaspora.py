"""The same Diaspora Stream API program (produce N events of 1 KiB, flush, consume them as a named consumer
acknowledging every 100th) on mofka_py.diaspora, against mofka-py's own API doing the same work and against
Kafka (a local tansu broker) through confluent-kafka wrapped in the same API shape, all in one run.

    python benchmarks/bench_diaspora.py [--events 50000] [--rounds 11] [--size 1024]

Round 1 of each case is reported apart (cold: first topic, first producer and consumer of the process);
the warm figures are medians of the other rounds. The cases take turns within each round, and a
case's time per event against the own API's is the median of the per-round ratios (paired: these
shared machines drift between rounds more than the overhead measured).
Writes benchmarks/results/diaspora.{json,md,png}.
"""
from __future__ import annotations

import argparse
import os
import signal
import statistics
import time
from typing import Any, Callable, Dict, List, Tuple

import orjson

import mofka_py as mp
from mofka_py.diaspora import Driver

import _bench
from bench_bridge import create_topic, start_tansu

ACK_EVERY = 100


def diaspora_program(driver: Any, topic_name: str, n: int, size: int) -> Tuple[float, float]:
    """The Diaspora program under test: events/s producing (push all, flush) and consuming (pull all)."""
    topic = driver.open_topic(topic_name)
    data = bytes(size)
    producer = topic.producer("bench")
    t0 = time.perf_counter()
    for i in range(n):
        producer.push(metadata={"i": i}, data=data)
    producer.flush().wait(-1)
    t1 = time.perf_counter()
    consumer = topic.consumer("bench")
    got = keys = 0
    for i in range(n):
        event = consumer.pull().wait(-1)
        got += len(event.data[0])
        keys += len(event.metadata)
        if i % ACK_EVERY == ACK_EVERY - 1:
            event.acknowledge()
    t2 = time.perf_counter()
    assert got == n * size and keys == n
    return n / (t1 - t0), n / (t2 - t1)


def own_program(fab: mp.Fabric, topic_name: str, n: int, size: int) -> Tuple[float, float]:
    """The same work through mofka-py's own API (what the compatibility layer runs on)."""
    topic = fab.topic(topic_name)
    data = bytes(size)
    with topic.producer(selector="round_robin") as producer:
        t0 = time.perf_counter()
        for i in range(n):
            producer.push({"i": i}, data=data)
        producer.flush()
        t1 = time.perf_counter()
    with topic.consumer("bench", start="earliest") as consumer:
        got = keys = 0
        for i in range(n):
            event = consumer.pull()
            got += len(event.data)
            keys += len(event.metadata)
            if i % ACK_EVERY == ACK_EVERY - 1:
                event.ack()
                consumer.commit()
        t2 = time.perf_counter()
    assert got == n * size and keys == n
    return n / (t1 - t0), n / (t2 - t1)


class KafkaDriver:
    """confluent-kafka in the Diaspora API's shape (what an Octopus-like backend does), enough for the program."""

    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap

    def open_topic(self, name: str) -> "KafkaTopic":
        return KafkaTopic(self.bootstrap, name)


class KafkaTopic:
    def __init__(self, bootstrap: str, name: str):
        self.bootstrap, self.name = bootstrap, name

    def producer(self, name: str = "") -> "KafkaProducer":
        return KafkaProducer(self)

    def consumer(self, name: str) -> "KafkaConsumer":
        return KafkaConsumer(self, name)


class KafkaProducer:
    def __init__(self, topic: KafkaTopic):
        from confluent_kafka import Producer

        self.topic = topic.name
        self.p = Producer({"bootstrap.servers": topic.bootstrap, "linger.ms": 1, "acks": "all",
                           "queue.buffering.max.messages": 1_000_000, "queue.buffering.max.kbytes": 1 << 20})

    def push(self, metadata: Any, data: Any = b"") -> None:
        meta = orjson.dumps(metadata)
        while True:
            try:
                self.p.produce(self.topic, data, headers=[("metadata", meta)])
                return
            except BufferError:
                self.p.poll(0.001)

    def flush(self) -> "KafkaProducer":
        return self

    def wait(self, timeout_ms: float = -1) -> bool:
        return self.p.flush(3600.0 if timeout_ms < 0 else timeout_ms / 1000) == 0


class KafkaEvent:
    __slots__ = ("msg", "consumer")

    def __init__(self, msg: Any, consumer: Any):
        self.msg, self.consumer = msg, consumer

    @property
    def metadata(self) -> Any:
        return orjson.loads(self.msg.headers()[0][1])

    @property
    def data(self) -> List[Any]:
        return [self.msg.value()]

    def acknowledge(self) -> None:
        self.consumer.commit(self.msg, asynchronous=False)


class KafkaConsumer:
    def __init__(self, topic: KafkaTopic, name: str):
        from confluent_kafka import OFFSET_STORED, Consumer, TopicPartition

        self.c = Consumer({"bootstrap.servers": topic.bootstrap, "group.id": f"{topic.name}-{name}",
                           "enable.auto.commit": False, "auto.offset.reset": "earliest", "fetch.wait.max.ms": 10})
        self.c.assign([TopicPartition(topic.name, 0, OFFSET_STORED)])

    def pull(self) -> "KafkaConsumer":
        return self

    def wait(self, timeout_ms: float = -1) -> KafkaEvent:
        while True:
            msg = self.c.poll(1.0)
            if msg is not None and not msg.error():
                return KafkaEvent(msg, self.c)


def run(args: argparse.Namespace) -> List[Dict[str, Any]]:
    proc, bootstrap = start_tansu()
    driver = Driver(backend="mofka_py", options={"url": "memory://"})
    kafka = KafkaDriver(bootstrap)
    cases: Dict[str, Callable[[str], Tuple[float, float]]] = {
        "diaspora": lambda t: diaspora_program(driver, t, args.events, args.size),
        "own": lambda t: own_program(driver.fabric, t, args.events, args.size),
        "kafka": lambda t: diaspora_program(kafka, t, args.kafka_events, args.size),
    }
    runs: Dict[str, List[Tuple[float, float]]] = {c: [] for c in cases}
    try:
        for r in range(args.rounds):
            # The two mofka-py cases swap places every round (the one running second may find warmer caches).
            order = ["diaspora", "own", "kafka"] if r % 2 == 0 else ["own", "diaspora", "kafka"]
            for case in order:
                program = cases[case]
                topic = f"{case}-{r}"
                if case == "kafka":
                    create_topic(bootstrap, topic)
                else:
                    driver.create_topic(topic)
                runs[case].append(program(topic))
                if case != "kafka":
                    driver.fabric.delete_topic(topic, force=True)
                _bench.print_json({"round": r + 1, "case": case, "produce_eps": round(runs[case][-1][0]),
                                   "consume_eps": round(runs[case][-1][1])})
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(10)
        driver.close()
    rows = []
    for case, values in runs.items():
        warm = values[1:] or values
        rows.append({"case": case, "events": args.kafka_events if case == "kafka" else args.events,
                     "size": args.size,
                     "cold_produce_eps": round(values[0][0]), "cold_consume_eps": round(values[0][1]),
                     "produce_eps": round(statistics.median(v[0] for v in warm)),
                     "consume_eps": round(statistics.median(v[1] for v in warm)),
                     "produce_runs": [round(v[0]) for v in values], "consume_runs": [round(v[1]) for v in values]})
    for row in rows:
        for k, what in enumerate(("produce", "consume")):
            # Time per event relative to mofka-py's own API (1.05 = 5% slower), paired: the ratio of the two
            # programs within each round (they run back to back), then the median over the warm rounds. The
            # machine's speed drifts between rounds by more than the difference measured; within one it
            # drifts less.
            ratios = [own[k] / mine[k] for own, mine in zip(runs["own"], runs[row["case"]])]
            row[f"{what}_time_vs_own"] = round(statistics.median(ratios[1:] or ratios), 3)
            row[f"cold_{what}_time_vs_own"] = round(ratios[0], 3)
            row[f"{what}_ratio_runs"] = [round(r, 3) for r in ratios]
    for row in rows:
        _bench.print_json({"case": row["case"], **{k: v for k, v in row.items() if "vs_own" in k or "ratio" in k}})
    return rows


def report(rows: List[Dict[str, Any]], args: argparse.Namespace, machine: _bench.Machine) -> None:
    out = _bench.results_dir(args.out)
    _bench.write_json(out / "diaspora.json", {"command": machine.command, "date": machine.date,
                                              "host": machine.host, "cores": machine.cores,
                                              "load": [machine.load_start, machine.load_end], "target": 1.10,
                                              "cases": rows})
    names = {"diaspora": "mofka_py.diaspora (memory://)", "own": "mofka-py own API (memory://)",
             "kafka": "confluent-kafka, Diaspora shape (tansu)"}
    lines = [f"# Diaspora API benchmark ({args.size} B events, {machine.cores} cores, {machine.date})", "",
             f"`{machine.command}`: the same Diaspora program (push all, `flush().wait(-1)`, then `pull().wait(-1)` "
             f"each, reading its metadata and data, as a named consumer acknowledging every {ACK_EVERY}th event) "
             "per case; warm = median of rounds "
             f"2-{args.rounds}, cold = round 1. *time/event vs own* is the own API's rate over the case's "
             "in the same round (the cases run back to back), median over the warm rounds "
             "(1.10 = 10% more time per event; target for the compatibility layer: at most 1.10).", "",
             "| case | events | produce ev/s warm | cold | consume ev/s warm | cold | produce time/event vs own "
             "(warm / cold) | consume time/event vs own (warm / cold) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {names[r['case']]} | {r['events']:,} | {r['produce_eps']:,} | {r['cold_produce_eps']:,} | "
                     f"{r['consume_eps']:,} | {r['cold_consume_eps']:,} | {r['produce_time_vs_own']:.2f} / "
                     f"{r['cold_produce_time_vs_own']:.2f} | {r['consume_time_vs_own']:.2f} / "
                     f"{r['cold_consume_time_vs_own']:.2f} |")
    _bench.write_markdown(out / "diaspora.md", lines)
    plt = _bench.pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    width = 0.38
    for k, what in enumerate(("produce", "consume")):
        xs = [i + (k - 0.5) * width for i in range(len(rows))]
        ax.bar(xs, [r[f"{what}_eps"] for r in rows], width, label=f"{what} (warm median)")
        ax.scatter(xs, [r[f"cold_{what}_eps"] for r in rows], color="black", marker="_", s=200, zorder=3,
                   label="cold (round 1)" if k == 0 else None)
    ax.set_xticks(range(len(rows)), [names[r["case"]].replace(" (", "\n(") for r in rows], fontsize=8)
    ax.set_ylabel("events / s")
    ax.set_title(f"Same Diaspora-API program, {args.size} B events")
    ax.legend(fontsize=8)
    _bench.savefig(fig, out / "diaspora.png")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=50_000, help="events per round on mofka-py (default %(default)s)")
    ap.add_argument("--kafka-events", type=int, default=20_000, help="events per round on Kafka (default %(default)s)")
    ap.add_argument("--rounds", type=int, default=11, help="rounds; the first is reported as cold (default %(default)s)")
    ap.add_argument("--size", type=int, default=1024, help="bytes of data per event (default %(default)s)")
    ap.add_argument("--out", default=str(_bench.RESULTS), help="results folder (default benchmarks/results)")
    args = ap.parse_args()
    machine = _bench.Machine()
    rows = run(args)
    report(rows, args, machine.finish())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
