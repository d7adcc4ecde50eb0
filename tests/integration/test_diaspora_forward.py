"""A `diaspora-ctl forward` configuration (YAML) run by `mofka-py bridge --config`: events produced through
mofka_py.diaspora (a files driver and a mofka_py driver on a real service) reach a local Kafka-protocol
broker (tansu) through an octopus driver exactly once, across a restart of the bridge."""
from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest

from mofka_py.diaspora import Driver
from waiting import wait_until

from kafka_helpers import crc, payload, stop_process, tansu  # noqa: F401 - fixture
from service_helpers import Service, free_port

CONFIG = """\
drivers:
  site:
    type: mofka_py
    options:
      url: {site_url}
  local:
    type: files
    options:
      root_path: {root}
  remote:
    type: octopus
    options:
      kafka:
        bootstrap.servers: "{bootstrap}"

forward:
  - from: site/detector-events
    to:   remote/detector-events
  - from: local/staging
    to:   remote/{staging}
"""


def produce(driver: Driver, topic: str, ids: range) -> None:
    producer = driver.open_topic(topic).producer("detector")
    for i in ids:
        data = payload(i, 100 + i % 50)
        producer.push(metadata={"i": i, "crc": crc(data)}, data=data)
    assert producer.flush().wait(-1)
    producer.close()


def start_bridge(config: Path) -> subprocess.Popen:
    """``mofka-py bridge --config CONFIG.yaml`` until its routes run (its ready file appears)."""
    ready = config.with_suffix(".ready")
    if ready.exists():
        ready.unlink()
    env = dict(os.environ, MOFKA_PY_BRIDGE_READY_FILE=str(ready))
    with open(config.with_suffix(".log"), "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "mofka_py.cli", "bridge", "--config", str(config)], env=env,
                                stdout=subprocess.DEVNULL, stderr=log)
    wait_until(lambda: ready.exists() or proc.poll() is not None, 60, "the bridge's routes to run")
    assert proc.poll() is None, config.with_suffix(".log").read_text()[-3000:]
    return proc


def check_exactly_once(records, ids) -> None:
    seen = Counter()
    for r in records:
        meta = orjson.loads(r["value"])
        assert crc(r["headers"].get("mofka.data", b"")) == meta["crc"], f"data of event {meta['i']} damaged"
        seen[meta["i"]] += 1
    assert not [i for i, n in seen.items() if n > 1], "duplicates"
    assert set(seen) == set(ids)


def test_diaspora_forward_yaml_forwards_to_kafka_exactly_once(tansu, tmp_path):  # noqa: F811
    svc = Service(tmp_path / "svc", free_port()).start()
    root = tmp_path / "diaspora-data"
    try:
        site = Driver(backend="mofka_py", options={"url": svc.url})
        site.create_topic("detector-events", options={"num_partitions": 2})
        produce(site, "detector-events", range(0, 300))
        with Driver(backend="files", options={"root_path": str(root)}) as local:
            local.create_topic("staging")
            produce(local, "staging", range(1000, 1200))
        config = tmp_path / "forward.yaml"
        config.write_text(CONFIG.format(site_url=svc.url, root=root, bootstrap=tansu.bootstrap,
                                        staging="staging-copy"))

        bridge = start_bridge(config)
        try:
            tansu.wait_count("detector-events", 300)
            tansu.wait_count("staging-copy", 200)
        finally:
            assert stop_process(bridge) == 0, config.with_suffix(".log").read_text()[-3000:]
        produce(site, "detector-events", range(300, 500))   # while the bridge is down
        bridge = start_bridge(config)
        try:
            recs = tansu.wait_count("detector-events", 500)
        finally:
            assert stop_process(bridge) == 0, config.with_suffix(".log").read_text()[-3000:]
        check_exactly_once(recs, range(500))
        check_exactly_once(tansu.read_all("staging-copy"), range(1000, 1200))
        site.close()
    finally:
        svc.stop()


@pytest.mark.parametrize("driver, policy, message", [
    ("{type: mofka, options: {group_file: g.json}}", "", "Mofka (Mochi) services are not reachable"),
    ("{type: files, options: {root_path: /tmp}}", "data_selector: 'libplugin.so:select'", "cannot be loaded"),
    ("{type: octopus, options: {kafka: {}}}", "", "bootstrap.servers"),
])
def test_diaspora_forward_yaml_mistakes_are_named(tmp_path, driver, policy, message):
    config = tmp_path / "bad.yml"
    config.write_text(f"drivers:\n  a: {driver}\n  b: {{type: files, options: {{root_path: {tmp_path}}}}}\n"
                      f"forward:\n  - from: a/x\n    to: b/y\n    {policy}\n")
    proc = subprocess.run([sys.executable, "-m", "mofka_py.cli", "bridge", "check", "--config", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and message in proc.stderr and "bad.yml" in proc.stderr, proc.stderr
