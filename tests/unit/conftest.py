"""Shared fixtures of the unit tests; time limits and environment: ../conftest.py."""
from __future__ import annotations

from pathlib import Path

import pytest

import mofka_py as mp

from service_helpers import Service, free_port


@pytest.fixture
def mem_fab():
    fab = mp.connect("memory://")
    yield fab
    fab.close()


@pytest.fixture
def fab_dir(tmp_path) -> Path:
    return tmp_path / "fab"


@pytest.fixture
def file_fab(fab_dir):
    fab = mp.connect(f"file://{fab_dir}")
    yield fab
    fab.close()


@pytest.fixture(params=["memory", "file", "tcp"])
def any_fab(request, tmp_path):
    """One test on every transport: embedded in memory and on disk, and over TCP to a real
    `mofka-py serve` process of its own (on disk; stopped by pid at the end, and it must exit cleanly)."""
    if request.param != "tcp":
        fab = mp.connect("memory://" if request.param == "memory" else f"file://{tmp_path / 'fab'}")
        yield fab
        fab.close()
        return
    # No heartbeat reporter: the service then holds no connection or topic of its own.
    svc = Service(tmp_path / "svc", free_port(), sync="none", health=False).start()
    try:
        fab = mp.connect(svc.url)
        try:
            yield fab
        finally:
            fab.close()
    finally:
        code = svc.stop()
    assert code == 0, f"the service exited with {code}: {svc.log.decode()[-2000:]}"


