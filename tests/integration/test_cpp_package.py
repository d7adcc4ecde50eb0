"""The C++ API as a simulation would use it: the core installed with `cmake --install`, found
with find_package(mofka_py CONFIG), and the example of Fabric.hpp's documentation built against
it and run."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _header_example() -> str:
    text = (ROOT / "csrc" / "include" / "mofka_py" / "Fabric.hpp").read_text()
    block = text.split("@code", 1)[1].split("@endcode", 1)[0]
    lines = [re.sub(r"^\s*\*( |$)", "", ln).strip() for ln in block.splitlines()]
    includes = [ln for ln in lines if ln.startswith("#include")]
    body = [ln for ln in lines if ln and not ln.startswith("#include")]
    return "\n".join(includes + ["#include <cstdio>", "int main() {"] + ["    " + ln for ln in body] +
                     ['    std::puts("example OK");', "    return 0;", "}", ""])


@pytest.mark.timeout(600)
def test_installed_cpp_package_builds_and_runs_the_header_example(tmp_path):
    cmake = shutil.which("cmake")
    assert cmake, "cmake is needed (pip install cmake)"
    build = ROOT / "build" / "cpp-package"  # kept between runs: incremental
    prefix = tmp_path / "prefix"
    subprocess.run([cmake, "-S", str(ROOT), "-B", str(build), "-DMOFKA_PY_ENABLE_MPI=OFF",
                    "-DCMAKE_BUILD_TYPE=Release", f"-DCMAKE_INSTALL_PREFIX={prefix}"], check=True, capture_output=True)
    subprocess.run([cmake, "--build", str(build), "-j", "2"], check=True, capture_output=True)
    subprocess.run([cmake, "--install", str(build)], check=True, capture_output=True)
    assert (prefix / "include" / "mofka_py" / "Fabric.hpp").exists()
    assert not (prefix / "include" / "mofka_py" / "Frame.hpp").exists(), "an internal header was installed"
    app = tmp_path / "app"
    app.mkdir()
    (app / "main.cpp").write_text(_header_example())
    (app / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.18)\nproject(sim LANGUAGES CXX)\nset(CMAKE_CXX_STANDARD 17)\n"
        "find_package(mofka_py CONFIG REQUIRED)\nadd_executable(sim main.cpp)\n"
        "target_link_libraries(sim PRIVATE mofka_py::core)\n")
    r = subprocess.run([cmake, "-S", str(app), "-B", str(app / "build"), f"-DCMAKE_PREFIX_PATH={prefix}"],
                       capture_output=True)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    r = subprocess.run([cmake, "--build", str(app / "build")], capture_output=True)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    r = subprocess.run([str(app / "build" / "sim")], capture_output=True, timeout=60)
    assert r.returncode == 0 and b"example OK" in r.stdout, r.stderr.decode()
