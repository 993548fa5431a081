#!/usr/bin/env bash
# Makes sure PostgreSQL answers on 127.0.0.1:5432 with trust auth for the
# user `postgres` (the outbox tests create and drop a database of their own
# there), and that the server binaries (initdb, pg_ctl) are installed (the
# restart test runs a private cluster on another loopback port). Uses a
# server that already answers; otherwise installs postgresql with apt-get if
# it is missing and starts a cluster of its own on loopback. Idempotent;
# exits non-zero when it cannot.
set -euo pipefail

HOST=127.0.0.1
PORT=${POSTGRES_FOR_TESTS_PORT:-5432}  # another port only to try the script itself
DIR=${POSTGRES_FOR_TESTS_DIR:-/tmp/postgres-for-tests}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

pg_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$dir" ] && [ -x "$dir/initdb" ] && echo "$dir"
}

answers() {
  if command -v psql >/dev/null 2>&1; then
    psql -h "$HOST" -p "$PORT" -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1
  else
    # No client yet: at least something listens.
    (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null
  fi
}

if [ -z "$(pg_bin || true)" ] || ! command -v psql >/dev/null 2>&1; then
  echo "postgres-for-tests: installing postgresql"
  as_root apt-get update -qq
  # The package's own cluster is not started here (no init system in CI);
  # a private one is, below, unless a server already answers.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
BIN=$(pg_bin) || { echo "postgres-for-tests: no initdb under /usr/lib/postgresql" >&2; exit 1; }

if answers; then
  if psql -h "$HOST" -p "$PORT" -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1; then
    echo "postgres-for-tests: PostgreSQL already answers on $HOST:$PORT"
    exit 0
  fi
  echo "postgres-for-tests: something listens on $HOST:$PORT but does not let user postgres in without a password" >&2
  exit 1
fi

echo "postgres-for-tests: starting a cluster in $DIR on $HOST:$PORT (trust auth)"
run_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
as_root mkdir -p "$DIR"
if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$DIR"; fi
if [ ! -f "$DIR/data/PG_VERSION" ]; then
  run_pg "$BIN/initdb" -D "$DIR/data" -U postgres --auth=trust -E UTF8 >/dev/null
fi
run_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w \
  -o "-c listen_addresses=$HOST -p $PORT -k $DIR -c max_connections=200" start >/dev/null

for _ in $(seq 1 100); do
  if psql -h "$HOST" -p "$PORT" -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1; then
    echo "postgres-for-tests: PostgreSQL answers on $HOST:$PORT"
    exit 0
  fi
  sleep 0.1
done
echo "postgres-for-tests: PostgreSQL did not answer on $HOST:$PORT (see $DIR/log)" >&2
exit 1
