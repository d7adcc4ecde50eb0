"""``mofka-py doctor`` and check_mpi_consistency(): same MPI under the extension and mpi4py."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mofka_py import _core
from mofka_py.doctor import MpiLibrary, compare_mpi, mpi_summary, mpi_vendor

MPICH_42 = textwrap.dedent("""\
    MPICH Version:      4.2.0
    MPICH Release date: Fri Feb  9 12:29:21 CST 2024
    MPICH ABI:          16:0:4
    MPICH Device:       ch4:ofi
""")
OPENMPI_5 = "Open MPI v5.0.3, package: Open MPI builder Distribution, ident: 5.0.3, repo rev: v5.0.3, Apr 08, 2024"
CRAY = "MPI VERSION    : CRAY MPICH version 8.1.28.1 (ANL base 3.4a2)\nMPI BUILD INFO : Sun Oct 29 2023\n"

needs_mpi = pytest.mark.skipif(not _core.build_info.get("mpi"), reason="mofka-py built without MPI")


def _run(args, tmp_path, env=None, timeout=120):
    # Run outside the source tree so the installed package is the one imported.
    return subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("version, vendor, summary", [
    (MPICH_42, "MPICH", "MPICH 4.2.0"),
    (OPENMPI_5, "Open MPI", "Open MPI 5.0.3"),
    (CRAY, "Cray MPICH", "Cray MPICH 8.1.28.1"),
    ("MVAPICH2 Version      :\t2.3.7\nMVAPICH2 Release date :\tWed March 02 22:00:00 EST 2022\n", "MVAPICH",
     "MVAPICH 2.3.7"),
    ("Intel(R) MPI Library 2021.10 for Linux* OS\n", "Intel MPI", "Intel MPI 2021.10"),
    ("SomeMPI 1.0", "unknown", "SomeMPI 1.0"),
])
def test_vendor_and_summary(version, vendor, summary):
    assert mpi_vendor(version) == vendor
    assert mpi_summary(version) == summary


def test_same_library_is_consistent_despite_padding():
    ext = MpiLibrary(MPICH_42.rstrip("\n"), "/opt/mpich/lib/libmpi.so.12")
    m4 = MpiLibrary(MPICH_42 + "\n  ", "/opt/mpich/lib/libmpi.so.12")
    assert compare_mpi(ext, m4) == []


def test_different_vendors_are_refused():
    problems = compare_mpi(MpiLibrary(MPICH_42), MpiLibrary(OPENMPI_5))
    assert len(problems) == 1
    assert "MPICH 4.2.0" in problems[0] and "Open MPI 5.0.3" in problems[0]


def test_cray_mpich_is_not_the_pip_mpich():
    (problem,) = compare_mpi(MpiLibrary(CRAY), MpiLibrary(MPICH_42))
    assert "Cray MPICH 8.1.28.1" in problem


def test_different_versions_of_one_vendor_are_refused():
    (problem,) = compare_mpi(MpiLibrary(MPICH_42), MpiLibrary(MPICH_42.replace("4.2.0", "4.1.2")))
    assert "versions" in problem and "MPICH 4.1.2" in problem


def test_two_library_files_are_refused():
    problems = compare_mpi(MpiLibrary(MPICH_42, "/opt/site-mpich/lib/libmpi.so.12"),
                           MpiLibrary(MPICH_42, "/venv/lib/libmpi.so.12"))
    assert len(problems) == 1 and "two MPI libraries" in problems[0]


def test_unknown_paths_compare_versions_only():
    assert compare_mpi(MpiLibrary(MPICH_42, None), MpiLibrary(MPICH_42, "/venv/lib/libmpi.so.12")) == []


def test_import_does_not_initialise_mpi(tmp_path):
    code = ("import sys, mofka_py, mofka_py.cli, mofka_py.doctor; "
            "print('mpi4py.MPI' in sys.modules)")
    out = _run([sys.executable, "-c", code], tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


@needs_mpi
def test_doctor_reports_consistent_mpich(tmp_path):
    out = _run([sys.executable, "-m", "mofka_py.cli", "doctor"], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "MPICH" in out.stdout
    assert "result: consistent" in out.stdout
    assert _core.build_info["mpi_home"] in out.stdout
    assert "transports" in out.stdout and "thread level" in out.stdout


@needs_mpi
def test_doctor_under_mpiexec(tmp_path):
    mpiexec = Path(sys.executable).parent / "mpiexec"
    if not mpiexec.exists():
        pytest.skip("no mpiexec beside this Python (pip install mpich)")
    out = _run([str(mpiexec), "-n", "2", sys.executable, "-m", "mofka_py.cli", "doctor"], tmp_path, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("mofka-py doctor") == 1  # rank 0 prints for all
    assert "ranks: 2 on 1 host(s), 2 consistent" in out.stdout


@needs_mpi
def test_check_refuses_a_different_mpi_with_rebuild_hint(tmp_path):
    # The extension pretends to run Open MPI while mpi4py loads the real MPICH.
    code = textwrap.dedent(f"""
        import types
        from mofka_py import _core, doctor
        from mofka_py.errors import Error
        fake = types.SimpleNamespace(__file__=_core.__file__, build_info=_core.build_info,
                                     mpi_library_version=lambda: {OPENMPI_5!r})
        doctor._core = fake
        try:
            doctor.check_mpi_consistency()
        except Error as exc:
            print("REFUSED:", exc)
        else:
            print("ACCEPTED")
    """)
    out = _run([sys.executable, "-c", code], tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("REFUSED:"), out.stdout
    msg = out.stdout
    assert "Open MPI 5.0.3" in msg and "MPICH" in msg
    assert "MPI_HOME=" in msg and "pip install --no-build-isolation" in msg
    assert "spack install py-mofka-py ^mpich" in msg


@needs_mpi
def test_check_accepts_the_installed_build(tmp_path):
    code = ("from mofka_py.doctor import check_mpi_consistency; "
            "r = check_mpi_consistency(); print(r.extension.vendor, r.consistent)")
    env = dict(os.environ)
    out = _run([sys.executable, "-c", code], tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["MPICH", "True"]
