#!/usr/bin/env bash
# The dashboard's browser tests, end to end: builds the binaries, starts `burrow-api serve` and
# one `burrow-worker` over a private database and queue prefix, runs the `node --test` suites in
# headless Debian chromium, then stops both and drops the database and the queues (also when a
# test fails or the run is interrupted).
#
# Needs: Postgres and RabbitMQ on localhost (`just services`), chromium (`apt-get install -y
# chromium`; CHROMIUM=/path overrides), node ≥ 20 and `npm ci` done in this folder.
# Screenshots and logs land in target/browser-artifacts/. UPDATE_SCREENSHOT=1 also refreshes the
# committed crates/api/dashboard/screenshot.png.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../../.." && pwd)"
cd "$root"

log() { printf 'browser-test: %s\n' "$*" >&2; }

[[ -d "$here/node_modules/playwright-core" ]] || {
  log "run 'npm ci' in $here first"
  exit 1
}
export CHROMIUM="${CHROMIUM:-$(command -v chromium || true)}"
[[ -x "$CHROMIUM" ]] || {
  log "chromium not found: apt-get install -y chromium"
  exit 1
}

cargo build --bins --quiet

suffix="$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')"
admin_url="${BURROW_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
database="burrow_browser_${suffix}"
port="$(node -e 'const s = require("net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')"
artifacts="$root/target/browser-artifacts"
mkdir -p "$artifacts"

export DATABASE_URL="${admin_url%/*}/${database}"
export AMQP_URL="${BURROW_TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
export BURROW_QUEUE_PREFIX="browser-${suffix}"
export BIND_ADDR="127.0.0.1:${port}"
export BASE_URL="http://${BIND_ADDR}"
export ARTIFACTS_DIR="$artifacts"
export FIXTURES_DIR="$root/fixtures"
export SCREENSHOT_PATH="$root/crates/api/dashboard/screenshot.png"
export RUST_LOG="${RUST_LOG:-info}"

pids=()
cleanup() {
  local status=$?
  set +e
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  psql "$admin_url" -Atqc "DROP DATABASE IF EXISTS \"${database}\" WITH (FORCE)" >/dev/null 2>&1 ||
    log "could not drop database ${database}"
  node "$here/cleanup-broker.mjs" "$BURROW_QUEUE_PREFIX" ||
    log "could not delete the queues of ${BURROW_QUEUE_PREFIX}"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "database ${database}, queue prefix ${BURROW_QUEUE_PREFIX}, api on ${BASE_URL}"
./target/debug/burrow-api migrate >"$artifacts/migrate.log" 2>&1
./target/debug/burrow-api serve >"$artifacts/api.log" 2>&1 &
pids+=("$!")
# One worker; a small per-row delay so an import takes about a second and its progress shows.
# Its own http port is any free one, so it never clashes with a worker already running here.
WORKER_ID=browser-worker IMPORT_ROW_DELAY_MS=5 WORKER_CONCURRENCY=2 WORKER_HTTP_ADDR=127.0.0.1:0 \
  ./target/debug/burrow-worker >"$artifacts/worker.log" 2>&1 &
pids+=("$!")

# Ready once the api's outbox relay has reached RabbitMQ (which also declared the topology).
node -e '
  const deadline = Date.now() + 30000;
  (async () => {
    while (Date.now() < deadline) {
      try {
        const body = await (await fetch(process.argv[1])).json();
        if (body.rabbitmq === "up") process.exit(0);
      } catch {}
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    process.exit(1);
  })();' "$BASE_URL/readyz" || {
  log "the api did not become ready; see $artifacts/api.log"
  exit 1
}

cd "$here"
node --test --test-concurrency=1 --test-reporter=spec "$@" ./*.test.mjs
