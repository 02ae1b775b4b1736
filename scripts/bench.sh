#!/usr/bin/env bash
# Runs the benchmark (bench/run.py) against PostgreSQL on 127.0.0.1: ./scripts/bench.sh [--quick]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
bash "$ROOT/scripts/services.sh"
cd "$ROOT"
PYTHONPATH="$ROOT" exec env -u AIRFLOW_HOME "$ROOT/.venv/bin/python" "$ROOT/bench/run.py" "$@"
