#!/usr/bin/env bash
# Quickstart, the main job: set up .venv, then run the three science applications
# (AI-guided campaign, instrument pipeline, multi-messenger astronomy), short and with
# their failures injected, ending in one summary table (about 2 minutes here).
# Plots and reports go to ./mofka-py-apps; extra arguments go to `mofka-py app all`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
. .venv/bin/activate
exec mofka-py app all --faults "$@"
