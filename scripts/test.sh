#!/usr/bin/env bash
# Quickstart: set up .venv and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
. .venv/bin/activate
# Run from outside the source tree so the installed package is the one imported.
cd tests
python -m pytest -c ../pyproject.toml --rootdir .. unit "$@"
