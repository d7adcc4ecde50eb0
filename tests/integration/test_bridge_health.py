"""A running bridge publishes heartbeats (kind "bridge", with its lag) on the __health topic of the
fabric it reads, and a last "leaving" beat when it stops: a site's health monitor sees it."""
from __future__ import annotations

import time

import mofka_py as mp
from mofka_py.bridge import Bridge
from mofka_py.services import HealthMonitor

from kafka_helpers import tansu  # noqa: F401 - fixture


def test_bridge_heartbeats_on_its_source_fabric(tmp_path, tansu):
    with mp.connect("memory://") as fab:
        fab.create_topic("frames")
        monitor = HealthMonitor(fab, since="earliest")
        cfg = {"bridge": {"site": "beamline-9", "state_dir": str(tmp_path / "state")},
               "endpoints": {"site": {"url": "memory://"}, "cloud": {"url": tansu.url}},
               "rules": [{"name": "up", "from": "site/frames", "to": "cloud/frames-up-9"}]}
        events = []
        with Bridge(cfg, fabrics={"site": fab}):
            deadline = time.monotonic() + 30
            while not any(e["event"] == "node_up" for e in events) and time.monotonic() < deadline:
                events += monitor.poll(0.2)
        deadline = time.monotonic() + 30
        while not any(e["event"] == "node_down" for e in events) and time.monotonic() < deadline:
            events += monitor.poll(0.2)
        monitor.close()
    up = [e for e in events if e["event"] == "node_up"]
    down = [e for e in events if e["event"] == "node_down"]
    assert up and up[0]["kind"] == "bridge" and up[0]["node"].startswith("bridge-beamline-9-")
    assert "queue" in up[0]["last"] and up[0]["last"]["routes"]
    assert down and down[0]["reason"] == "left", "a clean stop says so"
