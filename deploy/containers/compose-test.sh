#!/usr/bin/env bash
# `just compose-test`: runs deploy/compose.yaml for real with podman-compose and checks it end to
# end (compose_test.py: migrate, api, 3 → 5 → 1 workers, the fixtures imported through the api's
# loopback port, a worker container SIGKILLed mid-import, 0 lost, exact row counts).
#
#   bash deploy/containers/compose-test.sh      # after `just images` (burrow-api:local, burrow-worker:local)
#
# Here: builds the RabbitMQ 4.0 and PostgreSQL 17 images from Debian trixie's packages
# (rabbitmq.Containerfile, postgres.Containerfile on the local trixie base), picks free loopback
# ports, runs the driver, and on the way out — pass, failure or Ctrl-C — removes the compose
# project's containers, network and volumes and the two images it built.
#
# Knobs: CTEST_ROUNDS (2: how often the five fixtures are imported per phase), CTEST_ROW_DELAY_MS
# (20: the workers' pacing per row), CTEST_KEEP_IMAGES=1 keeps the RabbitMQ/Postgres images for
# the next run. Logs: target/compose-test/ (podman-compose's output, each container's log).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
export CTEST_PROJECT=burrow-compose-test
logs=$root/target/compose-test
images=(localhost/burrow-rabbitmq:4.0 localhost/burrow-postgres:17)
start=$SECONDS

log() { printf 'compose-test: %s\n' "$*" >&2; }

bash "$here/setup.sh"
export COMPOSE="$root/target/compose-venv/bin/podman-compose"
for image in localhost/burrow-api:local localhost/burrow-worker:local; do
  podman image exists "$image" || { log "$image is missing: run \`just images\` first"; exit 1; }
done

# Everything of the project, found by podman-compose's labels (also what an interrupted earlier
# run left behind).
remove_project() {
  local label=io.podman.compose.project=$CTEST_PROJECT
  local ids id
  mapfile -t ids < <(podman ps -aq --filter "label=$label")
  if ((${#ids[@]})); then
    # Logs first, for a failure's post-mortem.
    for id in "${ids[@]}"; do
      podman logs "$id" >"$logs/$(podman inspect --format '{{.Name}}' "$id").log" 2>&1 || true
    done
    # --depend: also the containers that depend on these (podman-compose's --requires links).
    podman rm -f --depend -t 5 "${ids[@]}" >/dev/null 2>&1 || true
  fi
  podman network ls -q --filter "label=$label" | xargs -r podman network rm -f >/dev/null 2>&1 || true
  podman volume ls -q --filter "label=$label" | xargs -r podman volume rm -f >/dev/null 2>&1 || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  log "tearing down (containers, network, volumes of $CTEST_PROJECT)"
  "$COMPOSE" -p "$CTEST_PROJECT" -f deploy/compose.yaml -f deploy/containers/compose.test.yaml \
    down -v -t 5 >>"$logs/compose.log" 2>&1 || true
  remove_project
  if [[ ${CTEST_KEEP_IMAGES:-0} != 1 ]]; then
    podman rmi -f "${images[@]}" >/dev/null 2>&1 || true
  fi
  left=$(podman ps -aq --filter "label=io.podman.compose.project=$CTEST_PROJECT" | wc -l)
  log "left behind: $left container(s); wall time $((SECONDS - start)) s; exit $rc"
  exit "$rc"
}

mkdir -p "$logs"
remove_project
trap cleanup EXIT
trap 'exit 130' INT TERM

# RabbitMQ 4.0 and PostgreSQL 17 from Debian trixie's packages, on the local trixie base.
base=$(bash "$here/base-image.sh" trixie)
for spec in rabbitmq:localhost/burrow-rabbitmq:4.0 postgres:localhost/burrow-postgres:17; do
  name=${spec%%:*} image=${spec#*:}
  if ! podman image exists "$image"; then
    log "building $image ($name.Containerfile, Debian trixie packages)"
    podman build --quiet --format docker --build-arg BASE="$base" \
      -f "$here/$name.Containerfile" -t "$image" "$here" >/dev/null
  fi
done
log "images ready ($((SECONDS - start)) s)"

# Free loopback ports for everything compose.yaml publishes.
read -r BURROW_API_PORT BURROW_RABBITMQ_PORT BURROW_RABBITMQ_MANAGEMENT_PORT BURROW_POSTGRES_PORT < <(
  python3 -c 'import socket
socks = [socket.socket() for _ in range(4)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
export BURROW_PUBLISH_ADDR=127.0.0.1 BURROW_API_PORT BURROW_RABBITMQ_PORT \
  BURROW_RABBITMQ_MANAGEMENT_PORT BURROW_POSTGRES_PORT

python3 "$here/compose_test.py"
