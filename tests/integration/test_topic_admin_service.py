"""Topic admin from the CLI against a real `mofka-py serve` service (delete, purge and alter over
tcp:// themselves run in ../unit/test_topic_admin.py, on every transport)."""
from __future__ import annotations

import subprocess
import sys

import pytest

import mofka_py as mp

from service_helpers import Service, free_port


@pytest.fixture
def service(tmp_path):
    svc = Service(tmp_path / "data", free_port()).start()
    yield svc
    svc.stop()


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
