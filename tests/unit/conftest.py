"""Shared fixtures of the unit tests (embedded fabrics only); time limits and environment: ../conftest.py."""
from __future__ import annotations

from pathlib import Path

import pytest

import mofka_py as mp


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


@pytest.fixture(params=["memory", "file"])
def any_fab(request, tmp_path):
    url = "memory://" if request.param == "memory" else f"file://{tmp_path / 'fab'}"
    fab = mp.connect(url)
    yield fab
    fab.close()


