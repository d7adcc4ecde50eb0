"""Topic delete / purge / alter over a real `mofka-py serve` service (and its CLI)."""
from __future__ import annotations

import subprocess
import sys

import pytest

import mofka_py as mp

from service_helpers import Service, free_port

sys.path.insert(0, __file__.rsplit("/", 2)[0] + "/unit")
from _group_scenarios import fill  # noqa: E402


@pytest.fixture
def service(tmp_path):
    svc = Service(tmp_path / "data", free_port()).start()
    yield svc
    svc.stop()


def test_delete_purge_alter_over_tcp(service, tmp_path):
    with mp.connect(service.url) as fab:
        t = fab.create_topic("x", partitions=3)
        fill(t, 300)
        with t.consumer("g", member_id="m-1"):
            with pytest.raises(mp.GroupActive, match="m-1"):
                fab.delete_topic("x")
        assert t.purge() == 300
        t.alter(retention_ms=60_000)
        assert t.describe()["retention_ms"] == 60_000
        fab.delete_topic("x")
        assert fab.topics() == []
    assert not (tmp_path / "data" / "topics" / "x").exists()


def test_cli_topic_delete_needs_yes_when_not_interactive(service):
    env_url = ["--url", service.url]
    run = lambda *a: subprocess.run([sys.executable, "-m", "mofka_py.cli", *env_url, *a],  # noqa: E731
                                    capture_output=True, stdin=subprocess.DEVNULL, timeout=60)
    assert run("topic", "create", "y", "--partitions", "2").returncode == 0
    r = run("topic", "delete", "y")
    assert r.returncode != 0 and b"--yes" in r.stderr
    with mp.connect(service.url) as fab:
        assert fab.topics() == ["y"]
    r = run("topic", "delete", "y", "--yes")
    assert r.returncode == 0, r.stderr
    with mp.connect(service.url) as fab:
        assert fab.topics() == []
