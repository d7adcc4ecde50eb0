"""Fan-in of two sites into one Kafka topic, the rate limiter (token bucket with an injected clock, and a capped
route), and spooling an in-memory fabric to file:// and on to Kafka -- each event exactly once."""
from __future__ import annotations

import time

import orjson

import mofka_py as mp
from mofka_py.bridge import Bridge, parse_origin
from mofka_py.bridge.route import RateLimiter
from waiting import wait_until

from kafka_helpers import crc, tansu  # noqa: F401 - fixture
from test_bridge import check_kafka_exactly_once, produce_frames


def test_fan_in_two_sites_one_topic(tansu, tmp_path):  # noqa: F811
    n = 1500
    with mp.connect("memory://") as a, mp.connect("memory://") as b:
        produce_frames(a.create_topic("frames", partitions=2), 0, n)
        produce_frames(b.create_topic("frames", partitions=3), n, n)
        bridges = []
        for site, fab in (("site-a", a), ("site-b", b)):
            cfg = {"bridge": {"site": site, "state_dir": str(tmp_path / site)},
                   "endpoints": {"fab": {}, "cloud": {"url": tansu.url}},
                   "rules": [{"name": "up", "from": "fab/frames", "to": "cloud/fanin", "partitions": 2,
                              "batch_size": 400}]}
            bridges.append(Bridge(cfg, fabrics={"fab": fab}).start())
        try:
            for br in bridges:
                assert br.wait_idle(60), br.status()
        finally:
            for br in bridges:
                br.stop()
    recs = tansu.wait_count("fanin", 2 * n)
    check_kafka_exactly_once(recs, range(2 * n))
    for r in recs:
        meta = orjson.loads(r["value"])
        site = parse_origin(r["headers"]["mofka.origin"])[0]
        assert site == ("site-a" if meta["i"] < n else "site-b"), (meta, site)
        assert meta["site"] == site
        assert r["key"] == r["headers"]["mofka.origin"].rsplit(b"/", 1)[0]


def test_rate_limiter_token_bucket_with_injected_clock():
    now = [100.0]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    rl = RateLimiter(1000, 0, clock=lambda: now[0], sleep=sleep, burst=0.1)
    assert rl.acquire(100) == 0            # the burst (0.1 s worth) goes at once
    assert rl.acquire(50) == 0.05          # then 50 events cost 50 ms
    for _ in range(20):
        rl.acquire(100)
    assert abs(now[0] - 100.0 - 2.05) < 1e-6   # 2150 events at 1000/s, 100 of them free: 2.05 s
    now[0] += 10.0                          # idle for long: only one burst is saved up
    slept.clear()
    rl.acquire(100)
    assert slept == []
    assert rl.acquire(100) > 0.099
    # Bytes cap: whichever cap is tighter decides.
    now[0] = 0.0
    rb = RateLimiter(1e9, 1000, clock=lambda: now[0], sleep=sleep, burst=0.0)
    assert abs(rb.acquire(1, 500) - 0.5) < 1e-9
    assert RateLimiter(0, 0, clock=lambda: 0.0, sleep=sleep).acquire(10 ** 9, 10 ** 12) == 0


def test_rate_limit_caps_a_route(tansu, tmp_path):  # noqa: F811
    n, cap, enough = 2000, 200, 300
    with mp.connect("memory://") as fab:
        produce_frames(fab.create_topic("frames"), 0, n, size=16)

        def run(limit: int, until: int) -> tuple:
            """Start a bridge with ``rate_limit = limit``, wait until it forwarded ``until`` events; the count
            then and the time since just before the start (an upper bound of the time the route ran)."""
            cfg = {"bridge": {"site": "rl", "state_dir": str(tmp_path / f"s{limit}")},
                   "endpoints": {"fab": {}, "cloud": {"url": tansu.url}},
                   "rules": [{"name": f"up{limit}", "from": "fab/frames", "to": f"cloud/rl-{limit}",
                              "rate_limit": limit}]}
            t0 = time.monotonic()
            with Bridge(cfg, fabrics={"fab": fab}) as br:
                wait_until(lambda: br.status()["routes"][0]["forwarded"] >= until, 120,
                           f"{until} events forwarded (rate_limit {limit})")
                forwarded = br.status()["routes"][0]["forwarded"]
                return forwarded, time.monotonic() - t0

        # Unlimited: the whole topic goes through.
        assert run(0, n)[0] == n
        # Capped: however slow or loaded the machine, a route capped at `cap` events/s never forwards more than
        # `cap` per second it ran, plus its burst (0.1 s worth) and one round it sends before paying for it.
        forwarded, ran = run(cap, enough)
        assert forwarded <= cap * ran + cap * 0.1 + max(1, cap // 10), (forwarded, ran)


def test_spool_memory_to_file_then_kafka(tansu, tmp_path):  # noqa: F811
    n = 2000
    spool = f"file://{tmp_path}/spool"
    with mp.connect("memory://") as job:
        frames = job.create_topic("frames", partitions=2)
        cfg = {"bridge": {"site": "job-42", "state_dir": str(tmp_path / "job-state")},
               "endpoints": {"job": {}, "disk": {"url": spool}},
               "rules": [{"name": "spool", "from": "job/frames", "to": "disk/frames"}]}
        with Bridge(cfg, fabrics={"job": job}) as br:
            produce_frames(frames, 0, n)
            assert br.wait_idle(60), br.status()
    # The job is gone; the spool on disk is forwarded onward by a site bridge.
    cfg2 = {"bridge": {"site": "site-s", "state_dir": str(tmp_path / "site-state")},
            "endpoints": {"disk": {"url": spool}, "cloud": {"url": tansu.url}},
            "rules": [{"name": "up", "from": "disk/frames", "to": "cloud/spooled"}]}
    with Bridge(cfg2) as br:
        assert br.wait_idle(60), br.status()
    recs = tansu.wait_count("spooled", n)
    check_kafka_exactly_once(recs, range(n), site="job-42")
    for r in recs[:20]:
        meta = orjson.loads(r["value"])
        assert parse_origin(meta["mofka_origin"])[:2] == ("job-42", "frames")
        assert parse_origin(r["headers"]["mofka.origin"])[:2] == ("site-s", "frames")
        assert crc(r["headers"]["mofka.data"]) == meta["crc"]
    # Running the site bridge again forwards nothing twice.
    with Bridge(cfg2) as br:
        assert br.wait_idle(60), br.status()
        assert br.status()["routes"][0]["forwarded"] == 0
    assert len(tansu.read_all("spooled")) == n
