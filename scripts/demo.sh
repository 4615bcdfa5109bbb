#!/usr/bin/env bash
# Serve the demo: migrate, demo admin and data, then web + worker + beat (honcho).
set -euo pipefail
cd "$(dirname "$0")/.."
export WAREHOUSES="${WAREHOUSES:-main=postgres://postgres@127.0.0.1:5432/opsconsole_demo}"
.venv/bin/python manage.py migrate --noinput
.venv/bin/python manage.py collectstatic --noinput -v 0
.venv/bin/python manage.py demo_setup
echo
echo "OpsConsole: http://127.0.0.1:8000  (Ctrl-C stops web, worker and beat)"
exec .venv/bin/honcho start
