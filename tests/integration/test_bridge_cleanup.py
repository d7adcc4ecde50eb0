"""Tests leave nothing behind in the temporary directory: tansu's logs go to pytest's own temporary directory
(or one removed on stop)."""
from __future__ import annotations

import tempfile
from pathlib import Path

from kafka_helpers import Tansu, tansu, tansu_binary  # noqa: F401 - fixture


def test_tansu_logs_stay_out_of_tmp(tansu, tmp_path_factory):  # noqa: F811
    tmp = Path(tempfile.gettempdir())
    assert tansu.log_path.exists()
    assert tmp_path_factory.getbasetemp() in tansu.log_path.parents, tansu.log_path
    assert not (tmp / f"tansu-{tansu.port}.log").exists()
    binary = tansu_binary()
    standalone = Tansu(binary)          # no log directory given: a private one, removed on stop
    try:
        standalone.start()
        log = standalone.log_path
        assert log.exists() and log.parent != tmp
    finally:
        standalone.stop()
    assert not log.parent.exists(), f"{log.parent} left behind"
    assert not (tmp / f"tansu-{standalone.port}.log").exists()
