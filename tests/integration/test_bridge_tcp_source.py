"""Bridge reliability with a real service as its source: a `mofka-py bridge` process forwarding from a
`mofka-py serve` process (tcp://) to Kafka (tansu) is killed with SIGKILL several times mid-stream and
restarted; every source event must land in Kafka exactly once, intact, in order per source partition, and
each restart must take its partitions back from the service at once (the bridge's stable group member id),
not after the dead member's session expires."""
from __future__ import annotations

import os
import random
import signal
import textwrap
import time
from collections import defaultdict

import orjson

import mofka_py as mp
from mofka_py.bridge import parse_origin
from waiting import wait_until

from kafka_helpers import crc, run_bridge_process, stop_process, tansu  # noqa: F401 - fixture
from service_helpers import Service, free_port
from test_bridge import check_kafka_exactly_once, produce_frames

SITE, RULE, PARTS = "site-tcp", "up", 3
GROUP = f"mofka-bridge.{SITE}.{RULE}"
TARGET = "tcp-killed"
# The service expires a silent group member after 30 s; a restarted bridge must resume well before that.
RESUME_DEADLINE_S = 20.0


def _committed(svc: mp.Fabric) -> dict:
    return {p["partition"]: p["committed"] or 0 for p in svc.topic("frames").describe_group(GROUP)["partitions"]}


def _ends(svc: mp.Fabric) -> dict:
    return {p["partition"]: p["end_offset"] for p in svc.topic("frames").describe()["partitions"]}


def _wait_resumed(svc: mp.Fabric, proc) -> None:
    """The restarted bridge must commit new source events within RESUME_DEADLINE_S of being ready, i.e. get
    its partitions back from the service at once (a new member id would find them held by the dead member
    until its session expires). The route reads one partition's backlog before the next, so this checks
    progress as a whole, not per partition (the final checks cover every partition)."""
    start = sum(_committed(svc).values())
    assert start < sum(_ends(svc).values())

    def moved_on() -> bool:
        assert proc.poll() is None, f"bridge exited with {proc.returncode}"
        return sum(_committed(svc).values()) > start

    wait_until(moved_on, RESUME_DEADLINE_S, f"the restarted bridge to commit past {start} events (before the "
               "service expires the dead member)")


def _wait_committed(svc: mp.Fabric, n: int, proc, timeout: float = 60.0) -> None:
    """Wait until the bridge committed ``n`` source events in the service group (the bridge commits a round
    only after Kafka acknowledged it, so they are in Kafka too)."""
    def done() -> bool:
        assert proc.poll() is None, f"bridge exited with {proc.returncode}"
        return sum(_committed(svc).values()) >= n

    wait_until(done, timeout, f"{n} events committed by the bridge")


def _kill(proc) -> None:
    assert proc.poll() is None, f"bridge exited by itself with {proc.returncode}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_kill9_with_tcp_source_exactly_once_and_prompt_resume(tansu, tmp_path):  # noqa: F811
    service = Service(tmp_path / "svc", free_port(), sync="none").start()
    proc = None
    try:
        cfg = tmp_path / "bridge.toml"
        cfg.write_text(textwrap.dedent(f"""
            [bridge]
            site = "{SITE}"

            [endpoints.service]
            url = "{service.url}"

            [endpoints.cloud]
            url = "{tansu.url}"

            [[rules]]
            name = "{RULE}"
            from = "service/frames"
            to = "cloud/{TARGET}"
            partitions = 2
            rate_limit = 300        # keeps the bridge behind the source, so every kill lands mid-stream
        """))
        seed = int(os.environ.get("BRIDGE_KILL_SEED", random.randrange(1 << 30)))
        rng = random.Random(seed)
        first, more = 2000, 1000
        total = first + more
        kills = []      # (events committed in the service group, records in Kafka) right after each kill

        def kill_midstream(svc, threshold: int) -> None:
            """Restart, check it resumes, let it forward past ``threshold`` and kill it a random moment later
            (a round is sent to Kafka before the previous one is committed in the source, so most moments
            leave events in Kafka that the source will hand out again)."""
            nonlocal proc
            proc = run_bridge_process(cfg)
            _wait_resumed(svc, proc)
            _wait_committed(svc, threshold, proc)
            time.sleep(rng.uniform(0.02, 0.3))     # a random moment to kill it: the moment is what is tested
            _kill(proc)
            kills.append((sum(_committed(svc).values()), len(tansu.read_all(TARGET))))

        with mp.connect(service.url) as svc:
            frames = svc.create_topic("frames", partitions=PARTS)
            produce_frames(frames, 0, first, size=512)

            # 1: kill mid-stream once some events reached Kafka.
            kill_midstream(svc, 500)
            # The source grows while the bridge is down.
            produce_frames(frames, first, more, size=512)

            # 2: kill right after the restart (during its recovery scan or first rounds).
            proc = run_bridge_process(cfg)
            time.sleep(0.3)     # the kill lands during the recovery scan or the first rounds: what is tested
            _kill(proc)
            kills.append((sum(_committed(svc).values()), len(tansu.read_all(TARGET))))

            # 3: kill mid-stream again, later on; again (at most twice more) until some kill has left events in
            # Kafka beyond the committed source position, so that a restart's dedup was exercised for sure.
            for threshold in (1800, 2100, 2400):
                kill_midstream(svc, threshold)
                if any(k > c for c, k in kills):
                    break
            assert any(k > c for c, k in kills), f"seed {seed}: no kill left uncommitted events in Kafka: {kills}"

            # Final run: must resume at once and finish within a generous deadline.
            proc = run_bridge_process(cfg)
            _wait_resumed(svc, proc)
            _wait_committed(svc, total, proc, timeout=60)
            # A round is committed in the source only after Kafka acknowledged it, and the bridge is stopped
            # before reading: every record it will ever write, duplicates included, is in Kafka now.
            assert stop_process(proc) == 0
            recs = tansu.read_all(TARGET)
            # The drained bridge committed everything in the service group.
            assert _committed(svc) == _ends(svc)

            # Source truth: (partition, offset) -> sequence number.
            src = {}
            with frames.consumer(start="earliest", data=False) as cons:
                while len(src) < total:
                    ev = cons.pull(timeout=10.0)
                    assert ev is not None, f"read only {len(src)} of {total} source events"
                    src[(ev.partition, ev.offset)] = ev.metadata["i"]
        print(f"seed {seed}: {len(recs)} records; (committed, in Kafka) after each kill: {kills}")

        check_kafka_exactly_once(recs, range(total), site=SITE)   # no loss, no duplicate, CRC of every payload
        by_origin = defaultdict(list)     # source partition -> [(kafka partition, kafka offset, origin offset, i)]
        for r in recs:
            o_site, o_topic, p, off = parse_origin(r["headers"]["mofka.origin"])
            assert (o_site, o_topic) == (SITE, "frames")
            meta = orjson.loads(r["value"])
            assert src[(p, off)] == meta["i"], f"origin {p}/{off} carries event {meta['i']}, not {src[(p, off)]}"
            assert crc(r["headers"].get("mofka.data", b"")) == meta["crc"]
            by_origin[p].append((r["partition"], r["offset"], off, meta["i"]))
        assert set(by_origin) == set(range(PARTS))
        ends = {p: sum(1 for (q, _) in src if q == p) for p in range(PARTS)}
        for p, rows in by_origin.items():
            assert len({q for q, _, _, _ in rows}) == 1, f"source partition {p} spread over Kafka partitions"
            rows.sort()     # Kafka order
            assert [off for _, _, off, _ in rows] == list(range(ends[p])), f"source partition {p} out of order"
            seq = [i for _, _, _, i in rows]
            assert seq == sorted(seq), f"sequence numbers of source partition {p} out of order"
    finally:
        if proc is not None and proc.poll() is None:
            stop_process(proc, signal.SIGKILL)
        service.stop()
