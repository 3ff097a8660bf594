#!/usr/bin/env bash
# Makes sure PostgreSQL and RabbitMQ run on localhost for the demo and the tests.
# Installs them from Debian's packages when missing, starts them when stopped, and waits until
# both accept connections. Idempotent; needs root for the install and start steps.
set -euo pipefail

log() { printf 'services: %s\n' "$*" >&2; }

missing=()
command -v pg_ctlcluster >/dev/null 2>&1 || missing+=(postgresql postgresql-client)
command -v rabbitmq-server >/dev/null 2>&1 || missing+=(rabbitmq-server)
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# PostgreSQL: start the newest cluster if it is not accepting connections.
if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  log "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 60); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.5; done
fi
pg_isready -h 127.0.0.1 -p 5432 -q || { log "PostgreSQL did not start"; exit 1; }

# burrow connects as postgres@127.0.0.1 without a password (trust, as on the dev machines).
# A freshly installed Debian cluster asks for one over TCP: trust loopback, for local use only.
if ! psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'SELECT 1' >/dev/null 2>&1; then
  hba=$(su postgres -c "psql -Atqc 'SHOW hba_file'")
  log "allowing trust auth on loopback in $hba (local development only)"
  sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  su postgres -c "psql -Atqc 'SELECT pg_reload_conf()'" >/dev/null
fi

# RabbitMQ: start the node if it does not answer, then wait for it to boot.
if ! rabbitmqctl -q status >/dev/null 2>&1; then
  log "starting RabbitMQ"
  rabbitmq-server -detached
fi
timeout 120 rabbitmqctl -q await_startup >/dev/null 2>&1 || {
  log "RabbitMQ did not start"
  exit 1
}
# The management UI (http://127.0.0.1:15672, guest/guest) shows the queues; optional.
rabbitmq-plugins -q enable rabbitmq_management >/dev/null 2>&1 || log "management plugin not enabled"
log "PostgreSQL and RabbitMQ are up"
