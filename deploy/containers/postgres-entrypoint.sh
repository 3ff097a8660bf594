#!/bin/sh
# The entrypoint of postgres.Containerfile: on the first start (empty PGDATA) it creates the
# cluster with POSTGRES_USER (default postgres) as superuser, password POSTGRES_PASSWORD
# (required), and the database POSTGRES_DB (default: the user's name), as the public postgres
# image does; then `postgres ARGS…` runs the server in the foreground with those arguments, and
# anything else is run as given.
set -eu

user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb --username="$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 -D "$PGDATA" >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
  # The database, through a server that listens on the socket only until it is made (so a
  # health check over TCP, pg_isready -h 127.0.0.1, fails until the real server runs).
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  if [ "$db" != postgres ]; then
    createdb --username="$user" "$db"
  fi
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "postgres-entrypoint: cluster created in $PGDATA (superuser $user, database $db)"
fi

if [ "${1:-}" = postgres ]; then
  shift
  exec postgres -D "$PGDATA" "$@"
fi
exec "$@"
