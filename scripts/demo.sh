#!/usr/bin/env bash
# Serve the demo: the BigQuery emulator, migrations, the demo admin and data,
# then web + worker + beat (honcho). Ctrl-C stops all of them.
set -euo pipefail
cd "$(dirname "$0")/.."

BQ_REST_PORT=${BQ_REST_PORT:-9050}
BQ_GRPC_PORT=${BQ_GRPC_PORT:-9060}
export WAREHOUSES="${WAREHOUSES:-main=postgres://postgres@127.0.0.1:5432/opsconsole_demo,analytics=bigquery://demo-proj/analytics?endpoint=http://127.0.0.1:$BQ_REST_PORT}"

echo "== BigQuery emulator on 127.0.0.1:$BQ_REST_PORT"
mkdir -p .venv/bqemulator/data
.venv/bqemulator/bin/bqemulator start --rest-port "$BQ_REST_PORT" --grpc-port "$BQ_GRPC_PORT" \
  --project demo-proj > .venv/bqemulator/demo.log 2>&1 &
bq_pid=$!
trap 'kill "$bq_pid" 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$BQ_REST_PORT") 2>/dev/null && break
  sleep 0.2
done

# DEMO_CLUSTER=1: a throwaway local 3-primary Redis Cluster as a second cache target
# ("cluster"), stopped with the rest (manage.py cache local-cluster).
if [ "${DEMO_CLUSTER:-0}" = 1 ]; then
  echo "== Local Redis Cluster (second cache target)"
  cluster_log=$(mktemp)
  .venv/bin/python manage.py cache local-cluster > "$cluster_log" 2>&1 &
  cluster_pid=$!
  trap 'kill "$bq_pid" "$cluster_pid" 2>/dev/null || true' EXIT INT TERM
  for _ in $(seq 300); do grep -q '^cluster=' "$cluster_log" && break; sleep 0.1; done
  cluster_url=$(sed -n 's/^cluster=//p' "$cluster_log")
  [ -n "$cluster_url" ] || { cat "$cluster_log"; exit 1; }
  export CACHE_TARGETS="${CACHE_TARGETS:-main=redis://127.0.0.1:6379/1},cluster=$cluster_url"
  echo "   cluster=$cluster_url"
fi

# Static files need no database: collect them while demo_setup migrates the console's
# database and, meanwhile, loads each app's demo data into the warehouses and Redis
# (loader_seconds: how long each loader took). The full 800k-row shop.orders table loads
# afterwards, as a run the worker takes once it starts (the dashboard shows its progress).
.venv/bin/python manage.py collectstatic --noinput -v 0 &
static_pid=$!
.venv/bin/python manage.py demo_setup --migrate
wait "$static_pid"
echo "== migrated, demo data loaded, static files collected (${SECONDS} s); starting web, worker and beat"
echo
echo "OpsConsole: http://127.0.0.1:${WEB_PORT:-8000}  (Ctrl-C stops web, worker, beat and the emulator)"
.venv/bin/honcho start
