#!/usr/bin/env bash
# Run the MPI tests under 2, 3 and 4 ranks (4 oversubscribes a 2-core machine; fine).
# Uses the active environment's mpiexec and python (the ones mpi4py and mofka-py are in).
# Rank 0 reports; the other ranks' output is shown only when they fail, and the MPI
# library banner (pytest-mpi's "MPI Information") only once.
set -euo pipefail
cd "$(dirname "$0")/../tests"
export MOFKA_PY_PYTEST_ARGS="$*"
first=1
for n in 2 3 4; do
    echo "== MPI tests under mpiexec -n $n"
    mpiexec -n "$n" bash -c '
        args=(-m pytest -c ../pyproject.toml --rootdir .. --with-mpi -q -p no:cacheprovider mpi $MOFKA_PY_PYTEST_ARGS)
        if [ "${PMI_RANK:-0}" = 0 ]; then exec python "${args[@]}"; fi
        out=$(mktemp)
        python "${args[@]}" >"$out" 2>&1 && rc=0 || rc=$?
        if [ "$rc" != 0 ]; then echo "--- rank $PMI_RANK failed ($rc); its output:"; cat "$out"; fi
        rm -f "$out"
        exit "$rc"' | awk -v show="$first" '
        /MPI Information/ && !show { skip = 1; next }
        skip && /(passed|failed|error)/ { skip = 0 }
        !skip { print }'
    first=0
done
