#!/usr/bin/env bash
# Quickstart: set up .venv and run the whole test suite:
#   unit tests, integration tests (real servers, real builds), MPI tests under 2, 3 and 4 ranks.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
. .venv/bin/activate
# Run from outside the source tree so the installed package is the one imported.
(cd tests && python -m pytest -c ../pyproject.toml --rootdir .. unit integration "$@")
./scripts/test-mpi.sh
