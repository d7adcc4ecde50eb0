#!/usr/bin/env bash
# Quickstart: set up .venv and run the embedded producer -> consumer demo.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
. .venv/bin/activate
exec mofka-py demo "$@"
