#!/usr/bin/env bash
# Idempotent set-up for a fresh machine: system library for mysqlclient, the venv, pinned packages (runtime
# and test tools).
# Run by demo.sh and test.sh; safe to run on its own. --with-browser adds Chromium for the browser test.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# mysqlclient (required by the MySQL provider) compiles against MariaDB Connector/C; the browser test drives
# Debian's Chromium through its chromedriver.
missing=()
pkg-config --exists mariadb 2>/dev/null || pkg-config --exists mysqlclient 2>/dev/null || missing+=(libmariadb-dev pkg-config)
if [ "${1:-}" = "--with-browser" ] && ! { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; }; then
  missing+=(chromium chromium-driver)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]} (apt)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Runtime pins (requirements.txt, what the image installs) and the test tools (requirements-dev.txt).
stamp="$VENV/.requirements.sha"
want="$(cat "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt" | sha256sum | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  python3 -m venv "$VENV"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing pinned requirements (about 30 s)"
  "$VENV/bin/pip" install -q --upgrade pip >/dev/null
  "$VENV/bin/pip" install -q -r "$ROOT/requirements-dev.txt"
  echo "$want" > "$stamp"
fi

# The BigQuery stand-in the tests start (bqemulator, test-only) has its own venv: it refuses the FastAPI that
# Airflow needs (requirements-bqemulator.txt says why). tests/support/bigquery_server.py runs it from there.
EMU="$ROOT/.venv-bqemulator"
emu_stamp="$EMU/.requirements.sha"
emu_want="$(sha256sum "$ROOT/requirements-bqemulator.txt" | cut -d' ' -f1)"
if [ "$(cat "$emu_stamp" 2>/dev/null)" != "$emu_want" ]; then
  echo "setup: installing the BigQuery stand-in in $EMU"
  [ -x "$EMU/bin/python" ] || python3 -m venv "$EMU"
  "$EMU/bin/pip" install -q -r "$ROOT/requirements-bqemulator.txt"
  echo "$emu_want" > "$emu_stamp"
fi
