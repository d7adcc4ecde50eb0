"""A C program on the C API, built against the installed package the way a simulation is built.

It runs a produce/consume cycle on a file:// fabric (zero-copy pushes with futures, pushes whose
buffers a release callback frees, metadata-only pushes, a group consumer that acks and commits,
error paths) and checks what it reads. Under valgrind's leak checker the same run must show no
memory definitely or indirectly lost and no invalid access.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mofka_py import capi

SOURCE = Path(__file__).resolve().parent.parent / "c" / "produce_consume.c"


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler (cc) on this machine")
    out = tmp_path_factory.mktemp("cprog") / "produce_consume"
    # The flags as a user gets them: mofka-py capi --cflags --libs.
    flags = subprocess.run([sys.executable, "-m", "mofka_py.cli", "capi", "--cflags", "--libs"], check=True,
                           capture_output=True, text=True).stdout.split()
    cmd = [cc, "-std=c11", "-O1", "-g", "-Wall", "-Wextra", "-Werror", str(SOURCE), *flags, "-o", str(out)]
    build = subprocess.run(cmd, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    return out


def test_c_program_round_trip(program, tmp_path):
    run = subprocess.run([str(program), str(tmp_path / "fab")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "ok 300 events"
    # What the C program wrote is there for Python, with the group's commit.
    import mofka_py as mp

    with mp.connect(f"file://{tmp_path / 'fab'}") as fab:
        t = fab.topic("cycle")
        assert sum(p["end_offset"] for p in t.describe()["partitions"]) == 300
        assert sum(p["committed"] for p in t.describe_group("checkers")["partitions"]) == 300


def test_c_program_compiles_with_pkg_config(tmp_path):
    if not (shutil.which("pkg-config") and (shutil.which("cc") or shutil.which("gcc"))):
        pytest.skip("pkg-config or a C compiler is missing")
    env = dict(os.environ, PKG_CONFIG_PATH=str(capi.pkg_config_dir()))
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "mofka_py_c"], env=env, check=True,
                           capture_output=True, text=True).stdout.split()
    exe = tmp_path / "pc"
    subprocess.run([shutil.which("cc") or "gcc", "-std=c11", str(SOURCE), *flags, "-o", str(exe)], check=True)
    run = subprocess.run([str(exe), str(tmp_path / "fab")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr


def test_no_leak_under_valgrind(program, tmp_path):
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        pytest.skip("valgrind is not installed")
    cmd = [valgrind, "-q", "--leak-check=full", "--show-leak-kinds=definite,indirect",
           "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=42", str(program), str(tmp_path / "fab")]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"valgrind exit {run.returncode}:\n{run.stderr[-6000:]}"
    assert "ok 300 events" in run.stdout
    assert "definitely lost" not in run.stderr and "Invalid" not in run.stderr, run.stderr[-6000:]


def test_c_program_in_an_mpi_job(tmp_path):
    """A C program with <mpi.h> passes an MPI_Comm; rank 0 serves, ranks 1-2 stream, rank 1 reads."""
    import mofka_py as mp

    if not mp._core.build_info.get("mpi"):
        pytest.skip("this mofka-py was built without MPI")
    mpicc, mpiexec = shutil.which("mpicc"), shutil.which("mpiexec")
    if mpicc is None or mpiexec is None:
        pytest.skip("mpicc or mpiexec is not on PATH (pip install mpich, or load an MPI module)")
    exe = tmp_path / "mpi_stream"
    flags = capi.compile_flags().split() + capi.link_flags().split()
    build = subprocess.run([mpicc, "-std=c11", "-O1", "-Wall", "-Werror", str(SOURCE.parent / "mpi_stream.c"),
                            *flags, "-o", str(exe)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    proc = subprocess.Popen([mpiexec, "-n", "3", str(exe)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, errs = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.communicate()
        raise
    assert proc.returncode == 0, errs
    assert "rank 1 read 16 fields: ok" in out, out + errs
