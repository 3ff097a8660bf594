#!/usr/bin/env bash
# `just cluster-chaos`: a three-node RabbitMQ 4.0 cluster in containers loses a node, twice,
# under a steady stream of jobs, and nothing is lost or applied twice.
#
#   bash deploy/containers/cluster-chaos.sh
#
# 1. Builds (if missing) the trixie RabbitMQ 4.0.5 image (rabbitmq.Containerfile) and starts
#    three nodes, rabbit@rabbit1..3, on a podman network this script creates and removes; the
#    cluster forms by classic peer discovery (cluster.conf below), with pause_minority partition
#    handling. Each node's AMQP port is published on a free 127.0.0.1 port; nothing else is.
# 2. cluster_chaos.py runs burrow's api and two workers on this host (debug binaries) against a
#    fresh database on the local Postgres and AMQP_URL = the three nodes, comma-separated; the
#    quorum queues (work, delay, dead-letter) get a replica on each node. It streams imports and
#    noop jobs through the api, stops the node leading the work queue and starts it again, then
#    cuts one node off the network and reconnects it; it prints the time to recover from each
#    fault and requires 0 lost and 0 applied twice.
# On the way out (pass, failure, Ctrl-C): containers, network, database and, unless
# CLUSTER_KEEP_IMAGE=1, the image are removed. Logs: target/cluster-chaos/.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
logs=$root/target/cluster-chaos
image=localhost/burrow-rabbitmq:4.0
run_id=$(python3 -c 'import uuid; print(uuid.uuid4().hex[:8])')
export CLUSTER_NETWORK=burrow-cluster-$run_id
export CLUSTER_DATABASE=burrow_cluster_$run_id
export CLUSTER_PASSWORD=burrow-cluster
nodes=(rabbit1 rabbit2 rabbit3)
start=$SECONDS

log() { printf 'cluster-chaos: %s\n' "$*" >&2; }

container() { printf 'burrow-cluster-%s-%s' "$run_id" "$1"; }

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for node in "${nodes[@]}"; do
    podman logs "$(container "$node")" >"$logs/$node.log" 2>&1 || true
    podman rm -f -t 5 "$(container "$node")" >/dev/null 2>&1 || true
  done
  podman network rm -f "$CLUSTER_NETWORK" >/dev/null 2>&1 || true
  psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS \"$CLUSTER_DATABASE\" WITH (FORCE)" \
    >/dev/null 2>&1 || true
  if [[ ${CLUSTER_KEEP_IMAGE:-0} != 1 ]]; then
    podman rmi -f "$image" >/dev/null 2>&1 || true
  fi
  log "removed the nodes, the network and the database; wall time $((SECONDS - start)) s; exit $rc"
  exit "$rc"
}

bash "$here/setup.sh"
mkdir -p "$logs"
trap cleanup EXIT
trap 'exit 130' INT TERM

base=$(bash "$here/base-image.sh" trixie)
if ! podman image exists "$image"; then
  log "building $image (rabbitmq.Containerfile, Debian trixie packages)"
  podman build --quiet --format docker --build-arg BASE="$base" \
    -f "$here/rabbitmq.Containerfile" -t "$image" "$here" >/dev/null
fi
log "cargo build --bins (the api and the worker run on this host)"
nice -n 10 cargo build --quiet --bins

cat >"$logs/cluster.conf" <<EOF
# The three nodes find each other by name (classic peer discovery); a node cut off from the
# other two pauses until it sees them again (pause_minority), the choice RabbitMQ recommends
# for clusters of three: https://www.rabbitmq.com/docs/partitions
cluster_formation.peer_discovery_backend = classic_config
cluster_formation.classic_config.nodes.1 = rabbit@rabbit1
cluster_formation.classic_config.nodes.2 = rabbit@rabbit2
cluster_formation.classic_config.nodes.3 = rabbit@rabbit3
cluster_partition_handling = pause_minority
EOF
cookie=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
podman network create "$CLUSTER_NETWORK" >/dev/null
ports=()
read -r -a ports < <(python3 -c 'import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
for i in "${!nodes[@]}"; do
  node=${nodes[$i]}
  podman run -d --name "$(container "$node")" --hostname "$node" \
    --network "$CLUSTER_NETWORK" --network-alias "$node" \
    -e RABBITMQ_DEFAULT_USER=burrow -e RABBITMQ_DEFAULT_PASS="$CLUSTER_PASSWORD" \
    -e RABBITMQ_ERLANG_COOKIE="$cookie" \
    -v "$root/deploy/rabbitmq/rabbitmq.conf:/etc/rabbitmq/conf.d/20-burrow.conf:ro" \
    -v "$logs/cluster.conf:/etc/rabbitmq/conf.d/30-cluster.conf:ro" \
    -p "127.0.0.1:${ports[$i]}:5672" \
    "$image" >/dev/null
done
export CLUSTER_CONTAINERS="$(container rabbit1) $(container rabbit2) $(container rabbit3)"
export CLUSTER_AMQP_PORTS="${ports[*]}"
log "nodes started: $CLUSTER_CONTAINERS on network $CLUSTER_NETWORK, AMQP on 127.0.0.1:${ports[*]}"
python3 "$here/cluster_chaos.py" 2>&1 | tee "$logs/run.log"
exit "${PIPESTATUS[0]}"
