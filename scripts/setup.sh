#!/usr/bin/env bash
# Prepare this machine for OpsConsole: virtualenv and pinned requirements,
# Redis and PostgreSQL running, pg_stat_statements and hypopg available,
# Debian's Chromium for the browser tests. Safe to run again: each step
# checks before it acts.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_HOST=127.0.0.1
PG_PORT=5432
REDIS_PORT=6379
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3

say() { printf '\033[1m== %s\033[0m\n' "$*"; }
is_root() { [ "$(id -u)" = 0 ]; }
apt_updated=""
apt_install() {
  if ! is_root; then
    echo "Missing: $*. Install them (apt-get install -y $*) or run this script as root." >&2
    exit 1
  fi
  if [ -z "$apt_updated" ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

say "Python virtualenv (.venv)"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r requirements.txt
  echo "$want" > "$stamp"
fi

say "Redis on 127.0.0.1:$REDIS_PORT"
command -v redis-server >/dev/null || apt_install redis-server
if ! redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
redis-cli -p "$REDIS_PORT" ping >/dev/null

say "Redis Cluster and Sentinel tooling (the cache tests start their own servers)"
# redis-cli --cluster create joins the test cluster; Sentinel runs as
# `redis-server <conf> --sentinel` (built in), or from Debian's redis-sentinel package.
command -v redis-cli >/dev/null || apt_install redis-tools
if ! command -v redis-sentinel >/dev/null && ! redis-server --version | grep -Eq 'v=([5-9]|[1-9][0-9])\.'; then
  apt_install redis-sentinel
fi

say "PostgreSQL 15 on $PG_HOST:$PG_PORT"
[ -d /usr/lib/postgresql/15/bin ] || apt_install postgresql-15 postgresql-contrib
[ -f /usr/share/postgresql/15/extension/hypopg.control ] || apt_install postgresql-15-hypopg
[ -f /usr/share/postgresql/15/extension/pg_partman.control ] || apt_install postgresql-15-partman
pg() { PGOPTIONS="-c client_min_messages=warning" psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qAtX "$@"; }
if ! pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; then
  pg_ctlcluster --skip-systemctl-redirect 15 main start
  for _ in $(seq 100); do pg_isready -q -h "$PG_HOST" -p "$PG_PORT" && break; sleep 0.1; done
fi
if ! pg -c 'SHOW shared_preload_libraries' | grep -q pg_stat_statements; then
  pg -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"
  pg_ctlcluster --skip-systemctl-redirect 15 main restart
  for _ in $(seq 100); do pg_isready -q -h "$PG_HOST" -p "$PG_PORT" && break; sleep 0.1; done
fi
for db in opsconsole opsconsole_demo; do
  pg -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 \
    || pg -d postgres -c "CREATE DATABASE $db"
done
pg -d opsconsole_demo -c 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements; CREATE EXTENSION IF NOT EXISTS hypopg;'

# --- BigQuery emulator (partitions tests and demo) ----------------------------
# Its own virtualenv, because bqemulator pins an older sqlglot than the console.
# It starts offline only with DuckDB's spatial extension in DuckDB's extension
# directory, which the duckdb-extension-spatial wheel ships; copy it there.
say "BigQuery emulator (.venv/bqemulator)"
bq_stamp=.venv/bqemulator/.requirements.sha256
bq_want=$(sha256sum partitions/bqemulator-requirements.txt | cut -d' ' -f1)
if [ "$(cat "$bq_stamp" 2>/dev/null)" != "$bq_want" ]; then
  [ -x .venv/bqemulator/bin/python ] || "$PYTHON" -m venv .venv/bqemulator
  .venv/bqemulator/bin/pip install -q --upgrade pip
  .venv/bqemulator/bin/pip install -q -r partitions/bqemulator-requirements.txt
  echo "$bq_want" > "$bq_stamp"
fi
spatial=$(find .venv/bqemulator -path '*duckdb_extension_spatial/extensions/v1.5.5/spatial.duckdb_extension' | head -n1)
ext_dir="$HOME/.duckdb/extensions/v1.5.5/linux_amd64"
if [ -n "$spatial" ] && ! cmp -s "$spatial" "$ext_dir/spatial.duckdb_extension"; then
  mkdir -p "$ext_dir"
  cp "$spatial" "$ext_dir/spatial.duckdb_extension"
fi
# ------------------------------------------------------------------------------

say "Chromium for the browser tests"
[ -x /usr/bin/chromium ] || apt_install chromium

say "Ready"
