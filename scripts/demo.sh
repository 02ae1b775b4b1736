#!/usr/bin/env bash
# Runs a demo privacy request end to end on embedded defaults: a SQLite shop database, a local SMTP sink
# writing .eml files, and the privacy_request DAG run in-process with dag.test(). Everything lands in .demo/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
PYTHONPATH="$ROOT" exec "$ROOT/.venv/bin/python" "$ROOT/scripts/demo.py" "$@"
