#!/usr/bin/env bash
# Lint checks (run by .ci/run):
#   ruff check                       python/, tests/, benchmarks/, examples/ (config: pyproject.toml)
#   clang-format --dry-run --Werror  csrc/ and tests/cpp (config: .clang-format)
#   mypy.stubtest mofka_py._core     python/mofka_py/_core.pyi against the built module
#                                    (allowlist: scripts/stubtest-allowlist.txt)
# ./scripts/lint.sh --fix applies ruff's fixes and clang-format -i, then checks.
# Uses .venv (./scripts/bootstrap.sh builds it) and installs the pinned lint tools into it.
set -uo pipefail
cd "$(dirname "$0")/.."
fix=0
case "${1:-}" in
  --fix) fix=1 ;;
  "") ;;
  *) echo "usage: $0 [--fix]" >&2; exit 2 ;;
esac
PY=.venv/bin/python
if [ ! -x "$PY" ]; then echo "lint: no .venv; run ./scripts/bootstrap.sh first" >&2; exit 2; fi
# Pinned: a new clang-format or ruff release can change what passes.
"$PY" -m pip install -q "ruff==0.17.6" "clang-format==23.1.5" "mypy==2.4.1" || exit 2
BIN=.venv/bin
failed=()

echo "== ruff"
if [ "$fix" = 1 ]; then "$BIN/ruff" check --fix -q . || true; fi
"$BIN/ruff" check . || failed+=(ruff)

echo "== clang-format"
mapfile -t cpp < <(find csrc tests/cpp -type f \( -name '*.hpp' -o -name '*.cpp' \) | sort)
if [ "$fix" = 1 ]; then "$BIN/clang-format" -i "${cpp[@]}"; fi
if "$BIN/clang-format" --dry-run --Werror "${cpp[@]}" 2>/tmp/mofka-py-clang-format.$$; then
  echo "${#cpp[@]} files formatted"
else
  n=$(grep -c "error: code should be clang-formatted" /tmp/mofka-py-clang-format.$$ || true)
  files=$(grep -o '^[^:]*' /tmp/mofka-py-clang-format.$$ | grep -E '\.(hpp|cpp)$' | sort -u)
  echo "clang-format would change $n places in $(echo "$files" | grep -c .) of ${#cpp[@]} files:"
  echo "$files" | sed 's/^/  /'
  echo "fix: ./scripts/lint.sh --fix (or $BIN/clang-format -i on those files)"
  failed+=(clang-format)
fi
rm -f /tmp/mofka-py-clang-format.$$

echo "== stubtest mofka_py._core"
# MYPYPATH=python: check the stub of this checkout against the installed (built) module.
allow=(--allowlist scripts/stubtest-allowlist.txt)
if [ "$("$PY" -c 'import mofka_py._core as c; print(c.build_info["mpi"])')" != True ]; then
  allow+=(--allowlist scripts/stubtest-allowlist-nompi.txt)
fi
MYPYPATH=python "$PY" -m mypy.stubtest mofka_py._core "${allow[@]}" || failed+=(stubtest)

if [ "${#failed[@]}" -gt 0 ]; then
  echo "lint: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "lint: OK"
