#!/usr/bin/env bash
# Runs the whole test suite: set-up (venv, packages), database servers, then pytest. Extra arguments go
# to pytest (for example: ./scripts/test.sh tests/unit -q).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh" --with-browser
bash "$ROOT/scripts/services.sh"
cd "$ROOT"
exec env -u AIRFLOW_HOME -u PYTHONPATH "$ROOT/.venv/bin/python" -m pytest "$@"
