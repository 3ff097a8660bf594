#!/usr/bin/env bash
# `just contract`: checks that the api does what its OpenAPI document says, with schemathesis.
#
#   bash crates/api/contract/run.sh
#
# 1. Installs the pinned schemathesis (requirements.txt, PyPI only) into target/contract-venv,
#    once, and builds `burrow-api`.
# 2. Starts an isolated api: its own database (`burrow_test_contract_*`, migrated), its own
#    queue prefix, a free loopback port, `AUTH_MODE=keys` and one admin key made with
#    `burrow-api keys create`. The rate limit is raised so that schemathesis's requests test
#    the routes, not the limiter.
# 3. Runs `schemathesis run --checks all` on the served document (`/api/openapi.json`) with that
#    key: every phase (examples, coverage, fuzzing, stateful), a bounded number of examples per
#    operation and a time budget; the JUnit report and the api's log go to target/contract/.
#    schemathesis.toml holds the one expectation no schema can state (an upload must be an
#    .xlsx by content), with why.
# 4. Stops the api and drops the database, queues and exchanges, also when a step fails.
#
# Knobs: CONTRACT_MAX_EXAMPLES (default 30 per operation), CONTRACT_MAX_TIME (seconds, default
# 120), CONTRACT_SEED (default: random; schemathesis prints the seed to replay a run).
# Exits with schemathesis's status: 0 when every check passed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
cd "$root"
venv=${CONTRACT_VENV:-$root/target/contract-venv}
requirements=$here/requirements.txt
out=$root/target/contract
max_examples=${CONTRACT_MAX_EXAMPLES:-30}
max_time=${CONTRACT_MAX_TIME:-120}

log() { printf 'contract: %s\n' "$*" >&2; }

# The tools: (re)installed only when the venv is missing or the pinned list changed.
if [[ ! -x $venv/bin/python ]] || ! cmp -s "$requirements" "$venv/.requirements"; then
  log "installing schemathesis into ${venv#"$root"/} (PyPI)"
  if [[ ! -x $venv/bin/python ]]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$venv/.requirements"
fi

cargo build --quiet --bin burrow-api
api_bin=${CARGO_TARGET_DIR:-$root/target}/debug/burrow-api
mkdir -p "$out"

# Isolation: a database and a queue prefix of this run only; a port nothing else holds.
run_id=$(date +%s)_$$
db_name=burrow_test_contract_$run_id
prefix=burrow_contract_$run_id
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$db_name
export AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
export BURROW_QUEUE_PREFIX=$prefix
export BIND_ADDR=127.0.0.1:$port
export AUTH_MODE=keys
export RATE_LIMIT_PER_SECOND=100000 RATE_LIMIT_BURST=100000
export RUST_LOG=${RUST_LOG:-warn}

api_pid=
cleanup() {
  local status=$?
  if [[ -n $api_pid ]]; then
    kill -TERM "$api_pid" 2>/dev/null || true
    wait "$api_pid" 2>/dev/null || true
  fi
  psql -h 127.0.0.1 -U postgres -d postgres -q \
    -c "DROP DATABASE IF EXISTS \"$db_name\" WITH (FORCE)" >/dev/null 2>&1 ||
    log "could not drop database $db_name"
  # The relay declared the exchanges and queues; rabbitmqctl removes them (no management plugin
  # needed). Best effort: a failure here does not change the run's verdict.
  local name
  for name in $(rabbitmqctl -q list_queues name 2>/dev/null | grep "^$prefix" || true); do
    rabbitmqctl -q delete_queue "$name" >/dev/null 2>&1 || log "could not delete queue $name"
  done
  for name in $(rabbitmqctl -q list_exchanges name 2>/dev/null | grep "^$prefix" || true); do
    rabbitmqctl eval "rabbit_exchange:delete(rabbit_misc:r(<<\"/\">>, exchange, <<\"$name\">>), false, <<\"contract\">>)." \
      >/dev/null 2>&1 || log "could not delete exchange $name"
  done
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$api_bin" migrate >"$out/migrate.log" 2>&1 || { cat "$out/migrate.log" >&2; exit 1; }
key=$("$api_bin" keys create --user contract --name contract --admin)

"$api_bin" serve >"$out/api.log" 2>&1 &
api_pid=$!
base=http://127.0.0.1:$port
answers() { python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$base/healthz" 2>/dev/null; }
for _ in $(seq 100); do
  answers && break
  kill -0 "$api_pid" 2>/dev/null || { log "the api exited; its log:"; cat "$out/api.log" >&2; exit 1; }
  sleep 0.1
done
answers || { log "the api did not answer on $base"; exit 1; }

seed_args=()
[[ -n ${CONTRACT_SEED:-} ]] && seed_args=(--seed "$CONTRACT_SEED")
log "schemathesis on $base (≤ $max_examples examples per operation, ≤ ${max_time}s)"
status=0
# From target/contract/, where schemathesis keeps its state (`.schemathesis/`, for `st replay`).
cd "$out"
"$venv/bin/schemathesis" --config-file "$here/schemathesis.toml" run "$base/api/openapi.json" \
  --checks all \
  --header "Authorization: Bearer $key" \
  --max-examples "$max_examples" \
  --max-time "$max_time" \
  --request-timeout 10 \
  --workers 2 \
  --generation-database none \
  --report junit --report-dir "$out" \
  --no-color \
  "${seed_args[@]}" || status=$?
if ((status != 0)); then
  log "failed; the api's log is $out/api.log"
fi
exit "$status"
