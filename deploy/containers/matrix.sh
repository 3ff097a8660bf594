#!/usr/bin/env bash
# `just matrix`: the test suite and the fault-injection suite against RabbitMQ 4.0 and
# PostgreSQL 17 in containers (Debian trixie's packages: rabbitmq.Containerfile,
# postgres.Containerfile), the other column of the matrix whose first is this machine's
# RabbitMQ 3.10 and PostgreSQL 15 (`just test`, `just chaos`).
#
#   bash deploy/containers/matrix.sh            # both suites
#   MATRIX_SUITES=chaos bash deploy/containers/matrix.sh
#
# 1. Starts burrow-matrix-rabbitmq (4.0.5, deploy/rabbitmq/rabbitmq.conf mounted as in compose)
#    and burrow-matrix-postgres (17) with their ports on 127.0.0.1 (free ones).
# 2. tests: every test of the workspace (cargo-nextest) with BURROW_TEST_AMQP_URL and
#    BURROW_TEST_DATABASE_URL pointing at the two containers: the broker-facing tests (topology,
#    retries and DLQ, priorities, delivery limit, re-drive, shutdown, …) run on 4.0, the
#    store-facing ones on 17.
# 3. chaos: the fault-injection suite (`just chaos`) against the same containers; its outages
#    stop and start the containers' services (BURROW_CHAOS_RABBITMQCTL = `podman exec …
#    rabbitmqctl`, BURROW_CHAOS_POSTGRES_RESTART = `podman restart …`), never this machine's.
# The containers and the two images are removed on the way out (pass, failure or Ctrl-C);
# MATRIX_KEEP_IMAGES=1 keeps the images. Logs: target/matrix/.
#
# Knobs: MATRIX_SUITES ("tests chaos"), CHAOS_ONLY (passed to the chaos suite).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
suites=${MATRIX_SUITES:-tests chaos}
logs=$root/target/matrix
rabbitmq=burrow-matrix-rabbitmq
postgres=burrow-matrix-postgres
images=(localhost/burrow-rabbitmq:4.0 localhost/burrow-postgres:17)
password=burrow-matrix
start=$SECONDS

log() { printf 'matrix: %s\n' "$*" >&2; }

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for c in "$rabbitmq" "$postgres"; do
    podman logs "$c" >"$logs/$c.log" 2>&1 || true
    podman rm -f -t 5 "$c" >/dev/null 2>&1 || true
  done
  if [[ ${MATRIX_KEEP_IMAGES:-0} != 1 ]]; then
    podman rmi -f "${images[@]}" >/dev/null 2>&1 || true
  fi
  log "removed the containers; wall time $((SECONDS - start)) s; exit $rc"
  exit "$rc"
}

bash "$here/setup.sh"
mkdir -p "$logs"
podman rm -f -t 0 "$rabbitmq" "$postgres" >/dev/null 2>&1 || true
trap cleanup EXIT
trap 'exit 130' INT TERM

base=$(bash "$here/base-image.sh" trixie)
for spec in rabbitmq:localhost/burrow-rabbitmq:4.0 postgres:localhost/burrow-postgres:17; do
  name=${spec%%:*} image=${spec#*:}
  if ! podman image exists "$image"; then
    log "building $image ($name.Containerfile)"
    podman build --quiet --format docker --build-arg BASE="$base" \
      -f "$here/$name.Containerfile" -t "$image" "$here" >/dev/null
  fi
done

read -r amqp_port management_port pg_port < <(python3 -c 'import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')

podman run -d --name "$rabbitmq" --hostname rabbitmq \
  -e RABBITMQ_DEFAULT_USER=burrow -e RABBITMQ_DEFAULT_PASS="$password" \
  -v "$root/deploy/rabbitmq/rabbitmq.conf:/etc/rabbitmq/conf.d/20-burrow.conf:ro" \
  -p "127.0.0.1:$amqp_port:5672" -p "127.0.0.1:$management_port:15672" \
  localhost/burrow-rabbitmq:4.0 >/dev/null 2>&1
# The suite runs tests in parallel, each with its own pools: as many connections as the host's.
podman run -d --name "$postgres" \
  -e POSTGRES_USER=postgres -e POSTGRES_PASSWORD="$password" \
  -p "127.0.0.1:$pg_port:5432" \
  localhost/burrow-postgres:17 postgres -c max_connections=300 >/dev/null 2>&1

# Healthy = the image's own HEALTHCHECK passes (podman without systemd runs none by itself).
deadline=$((SECONDS + 120))
for c in "$rabbitmq" "$postgres"; do
  until podman healthcheck run "$c" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { log "$c not healthy after 120 s"; exit 1; }
    sleep 1
  done
done
export BURROW_TEST_AMQP_URL="amqp://burrow:$password@127.0.0.1:$amqp_port/%2f"
export BURROW_TEST_DATABASE_URL="postgres://postgres:$password@127.0.0.1:$pg_port/postgres"
versions="RabbitMQ $(podman exec "$rabbitmq" rabbitmqctl -q version), PostgreSQL $(podman exec "$postgres" psql -U postgres -Atc 'SHOW server_version')"
log "$versions up ($((SECONDS - start)) s): AMQP 127.0.0.1:$amqp_port, Postgres 127.0.0.1:$pg_port"

failed=()
for suite in $suites; do
  suite_start=$SECONDS
  case $suite in
    tests)
      log "the workspace's tests against $versions"
      if nice -n 10 cargo nextest run --workspace --all-features --no-fail-fast 2>&1 | tee "$logs/tests.log"; then
        result=passed
      else
        result=FAILED
        failed+=(tests)
      fi
      ;;
    chaos)
      log "the fault-injection suite against $versions"
      export BURROW_CHAOS_RABBITMQCTL="podman exec $rabbitmq rabbitmqctl"
      export BURROW_CHAOS_POSTGRES_RESTART="podman restart -t 30 $postgres"
      export BURROW_CHAOS_POSTGRES_START="podman start $postgres"
      nice -n 10 cargo build --bins
      if cargo test -p burrow-worker --all-features --test chaos -- --ignored --nocapture \
        --test-threads 1 2>&1 | tee "$logs/chaos.log"; then
        result=passed
      else
        result=FAILED
        failed+=(chaos)
      fi
      ;;
    *)
      log "unknown suite $suite (tests, chaos)"
      exit 2
      ;;
  esac
  log "$suite: $result against $versions ($((SECONDS - suite_start)) s)"
done

if ((${#failed[@]})); then
  log "FAILED: ${failed[*]}"
  exit 1
fi
log "all passed against $versions"
