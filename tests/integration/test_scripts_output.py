"""What the project's scripts and tools print: labelled, quiet, no tracebacks for --help."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("bench", sorted(p.name for p in (ROOT / "benchmarks").glob("bench_*.py")))
def test_benchmark_help_prints_usage_and_exits_cleanly(bench):
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / bench), "--help"], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    assert b"usage:" in r.stdout
    assert b"Traceback" not in r.stderr and b"Abort" not in r.stderr


def test_mpi_test_runner_shows_the_mpi_banner_once_and_labels_runs():
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env["PATH"]  # the venv's mpiexec
    r = subprocess.run([str(ROOT / "scripts" / "test-mpi.sh"), "-k", "collectives"], capture_output=True,
                       timeout=600, env=env, cwd=ROOT)
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    assert out.count("MPI Information") == 1, out
    assert out.count("MPI library version") == 1, out
    for n in (2, 3, 4):
        assert f"== MPI tests under mpiexec -n {n}" in out
    assert len(out.splitlines()) < 60, f"{len(out.splitlines())} lines:\n{out}"


def test_first_touch_probe_prints_a_table_per_gib_and_pass():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "probe-first-touch.py"), "--gib", "1", "--passes", "2"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "| GiB | pass 1 s | pass 2 s |", lines
    row = lines[2].strip("|").split("|")
    assert row[0].strip() == "1" and all(float(x) > 0 for x in row[1:]), lines
    assert sum(line.startswith("pass ") for line in lines) == 2, lines
    assert "pass 2: 1/1 GiB touched" in r.stderr   # progress on stderr
