#!/usr/bin/env bash
# The tests. Set-up first (venv, pinned packages, database servers), then pytest.
#
#   ./scripts/test.sh          the fast loop: every tier except the tests that start Airflow clusters
#                              (-m "not cluster": unit, dag, integration), in 2 processes
#   ./scripts/test.sh --all    everything, what CI runs: the fast loop in 2 processes, then the tests
#                              that start Airflow clusters one module after another (two clusters or more
#                              at once on 2 cores time out: measured 2026-12-04, load 20, 2 of 18 failed)
#
# Other arguments go to pytest: ./scripts/test.sh tests/unit -q, ./scripts/test.sh -k pools.
# Naming a file or folder of tests/e2e runs it even without --all: ./scripts/test.sh tests/e2e/test_ui.py
# PYTEST_WORKERS sets the number of processes; -n 0 (or --pdb) runs in this one process.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

all=0
args=()
parallel=1
for arg in "$@"; do
  case "$arg" in
    --all) all=1 ;;
    *) args+=("$arg") ;;
  esac
  case "$arg" in
    -n*|--numprocesses*|no:xdist|-pno:xdist|--pdb|--trace) parallel=0 ;;  # the caller chose how to run
  esac
done

if [ "$all" = 1 ]; then
  bash "$ROOT/scripts/setup.sh" --with-browser
else
  bash "$ROOT/scripts/setup.sh"
fi
bash "$ROOT/scripts/services.sh"
cd "$ROOT"

run() {  # pytest with the given selection; exit 5 (nothing selected) counts as success here
  local rc=0
  env -u AIRFLOW_HOME -u PYTHONPATH "$ROOT/.venv/bin/python" -m pytest "$@" || rc=$?
  [ "$rc" = 5 ] && rc=0
  return "$rc"
}

select=(-m "not cluster")
for arg in "${args[@]+"${args[@]}"}"; do
  case "$arg" in
    -m|-m*|tests/e2e*|*/tests/e2e*) select=() ;;  # the caller chose: run what they named
  esac
done
fast=("${select[@]+"${select[@]}"}")
if [ "$parallel" = 1 ]; then
  # One process per work unit: a module, or the modules sharing the demo cluster (tests/conftest.py).
  fast+=(-n "${PYTEST_WORKERS:-2}" --dist loadscope --no-loadscope-reorder)
fi
if [ "$all" = 0 ] || [ ${#select[@]} = 0 ]; then
  run "${fast[@]+"${fast[@]}"}" "${args[@]+"${args[@]}"}"
  exit
fi
status=0
run "${fast[@]}" "${args[@]+"${args[@]}"}" || status=$?
run -m cluster "${args[@]+"${args[@]}"}" || status=$?
exit "$status"
