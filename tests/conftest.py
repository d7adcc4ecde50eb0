"""Shared by every test directory (unit, integration, mpi): a time limit per test and no fabric
URL or token leaking in from the environment."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Helpers shared by every test directory (waiting.py, service_helpers.py) are imported from here.
sys.path.insert(0, str(Path(__file__).parent))

# A hung wait must fail the test, not the whole run (pytest-timeout). A test's own marker wins;
# the MPI tests set theirs per module.
_LIMIT_SECONDS = {"unit": 180, "integration": 300}


def pytest_collection_modifyitems(config, items):
    if not config.pluginmanager.hasplugin("timeout"):
        return
    for item in items:
        limit = _LIMIT_SECONDS.get(item.path.parent.name)
        if limit and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(limit))


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("MOFKA_PY_URL", raising=False)
    monkeypatch.delenv("MOFKA_PY_TOKEN", raising=False)
