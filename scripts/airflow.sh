#!/usr/bin/env bash
# Serves the demo configuration in a real local Airflow (UI and REST API on http://127.0.0.1:8080) until
# Ctrl-C. Runs made by ./scripts/demo.sh show up here too; vendor emails land in .demo/mailbox/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
PYTHONPATH="$ROOT" exec "$ROOT/.venv/bin/python" "$ROOT/scripts/local_airflow.py" "$@"
