#!/usr/bin/env bash
# Run the MPI tests under 2, 3 and 4 ranks (4 oversubscribes a 2-core machine; fine).
# Uses the active environment's mpiexec and python (the ones mpi4py and mofka-py are in).
set -euo pipefail
cd "$(dirname "$0")/../tests"
for n in 2 3 4; do
    echo "== mpiexec -n $n"
    mpiexec -n "$n" python -m pytest -c ../pyproject.toml --rootdir .. --with-mpi -q -p no:cacheprovider mpi "$@"
done
