#!/usr/bin/env bash
# Quickstart: set up .venv and run the whole test suite:
#   C++ core tests (ctest), unit tests, integration tests (real servers, real builds), MPI tests under 2, 3 and 4 ranks.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
. .venv/bin/activate
# The C++ core on its own (no Python in it), as a C++ simulation would use it.
# CTest runs test_core and the installed-package test (cmake --install, then find_package(mofka_py)).
echo "== C++ core tests (ctest)"
cmake -S . -B build/cpp-tests -DMOFKA_PY_ENABLE_MPI=OFF -DMOFKA_PY_BUILD_TESTS=ON -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/cpp-tests -j 2 >/dev/null
ctest --test-dir build/cpp-tests --output-on-failure
# Run from outside the source tree so the installed package is the one imported.
echo "== unit and integration tests (real servers started and stopped by the tests)"
(cd tests && python -m pytest -c ../pyproject.toml --rootdir .. unit integration "$@")
./scripts/test-mpi.sh
