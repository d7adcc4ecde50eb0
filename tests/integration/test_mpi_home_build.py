"""A build with MPI_HOME (no Spack) links that MPI, not the mpich wheel.

A second venv stands in for a site MPI prefix (`pip install mpich` into it);
mofka-py is built from this checkout with MPI_HOME pointing at it, with the
scikit-build-core and pybind11 of the Python running the tests.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _check(args, **kw):
    out = subprocess.run(args, capture_output=True, text=True, **kw)
    assert out.returncode == 0, f"{args[:4]} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


@pytest.fixture(scope="module")
def site_mpi_build(tmp_path_factory):
    for tool in ("readelf", "ldd"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")
    top = tmp_path_factory.mktemp("mpi-home")
    prefix = (top / "site-mpi").resolve()
    _check([sys.executable, "-m", "venv", str(prefix)], timeout=300)
    _check([str(prefix / "bin" / "python"), "-m", "pip", "install", "-q", "mpich"], timeout=600)
    assert (prefix / "bin" / "mpicxx").exists() and (prefix / "lib" / "libmpi.so.12").exists()

    env = {k: v for k, v in os.environ.items() if k not in ("MPI_HOME", "PYTHONPATH")}
    env["MPI_HOME"] = str(prefix)
    site = top / "site"
    _check([sys.executable, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps",
            "-C", f"build-dir={top / 'build'}", "--target", str(site), str(ROOT)],
           env=env, cwd=top, timeout=1800)
    (core,) = (site / "mofka_py").glob("_core*.so")
    return prefix, site, core


def test_runpath_is_the_site_mpi(site_mpi_build):
    prefix, _, core = site_mpi_build
    dynamic = _check(["readelf", "-d", str(core)])
    m = re.search(r"\((?:RUNPATH|RPATH)\)\s+Library r(?:un)?path: \[(.*)\]", dynamic)
    assert m, dynamic
    entries = m.group(1).split(":")
    assert str(prefix / "lib") in entries
    # No $ORIGIN entry: a venv's lib/ (which may hold the mpich wheel) must not shadow the site MPI.
    assert not any("$ORIGIN" in e for e in entries), entries


def test_ldd_resolves_libmpi_under_the_prefix(site_mpi_build):
    prefix, _, core = site_mpi_build
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    libs = _check(["ldd", str(core)], env=env)
    m = re.search(r"^\s*libmpi\.so\.12 => (\S+)", libs, re.MULTILINE)
    assert m, libs
    assert Path(m.group(1)).resolve() == (prefix / "lib" / "libmpi.so.12").resolve()


def test_build_info_and_doctor_name_the_prefix(site_mpi_build, tmp_path):
    prefix, site, _ = site_mpi_build
    env = {k: v for k, v in os.environ.items() if k not in ("MPI_HOME", "LD_LIBRARY_PATH")}
    env["PYTHONPATH"] = str(site)
    code = "import mofka_py._core as c; print(c.__file__); print(c.build_info['mpi_home'])"
    where, home = _check([sys.executable, "-c", code], env=env, cwd=tmp_path).split()
    assert Path(where).is_relative_to(site)
    assert home == str(prefix)
    # mpi4py (the wheel of the test venv) binds libmpi.so.12 by soname to the copy the
    # extension loaded first, so both call the site MPI and the doctor agrees.
    out = subprocess.run([sys.executable, "-m", "mofka_py.cli", "doctor"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"MPI_HOME={prefix}" in out.stdout
    assert re.search(rf"calls\s+{re.escape(str(prefix / 'lib'))}/libmpi\.so\.12", out.stdout), out.stdout
