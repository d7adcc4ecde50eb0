"""One version: the file VERSION is what the package metadata and mofka_py.__version__ say."""
from __future__ import annotations

import importlib.metadata
from pathlib import Path

import mofka_py

ROOT = Path(__file__).resolve().parents[2]


def test_version_comes_from_the_version_file():
    version = (ROOT / "VERSION").read_text().strip()
    assert mofka_py.__version__ == version
    assert importlib.metadata.version("mofka-py") == version
