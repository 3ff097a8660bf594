#!/usr/bin/env bash
# `just demo`: migrates, starts the api and two worker processes, enqueues the five fixture
# files through /api/simulate, follows the jobs until they end, and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/../.."

export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/burrow}
export AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
port=${DEMO_PORT:-8080}
export BIND_ADDR=127.0.0.1:$port
# Demo pacing: a few ms per row make each 200-row job take about a second, so the table shows
# jobs overlapping and waiting. The real import of 200 rows takes a few milliseconds.
row_delay=${DEMO_ROW_DELAY_MS:-5}

cargo build --quiet --bin burrow-api --bin burrow-worker
bin=target/debug
logs=target/demo
mkdir -p "$logs"

"$bin/burrow-api" migrate

pids=()
stop() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  echo "stopped the api and the workers (logs in $logs/)"
}
trap stop EXIT

"$bin/burrow-api" serve >"$logs/api.log" 2>&1 &
pids+=($!)
for n in 1 2; do
  WORKER_ID=demo-worker-$n WORKER_HTTP_ADDR=127.0.0.1:909$n WORKER_CONCURRENCY=1 WORKER_PREFETCH=1 IMPORT_ROW_DELAY_MS=$row_delay \
    "$bin/burrow-worker" >"$logs/worker-$n.log" 2>&1 &
  pids+=($!)
done

python3 deploy/local/demo_client.py "http://127.0.0.1:$port"
