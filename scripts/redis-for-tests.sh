#!/usr/bin/env bash
# Makes sure a Redis (7 or newer: the engine uses sharded pub/sub) answers on
# 127.0.0.1:6379 for the test suite, and that the `redis-server` binary is
# installed (the restart and cluster tests start their own servers on other
# loopback ports). Uses a Redis that already answers; otherwise starts one on
# loopback without persistence. Installs redis-server with apt-get only when
# it is missing. Idempotent; exits non-zero when it cannot.
set -euo pipefail

HOST=127.0.0.1
PORT=6379

ping() {
  if command -v redis-cli >/dev/null 2>&1; then
    [ "$(redis-cli -h "$HOST" -p "$PORT" ping 2>/dev/null)" = "PONG" ]
  else
    # No redis-cli: speak RESP over bash's /dev/tcp.
    exec 3<>"/dev/tcp/$HOST/$PORT" 2>/dev/null || return 1
    printf 'PING\r\n' >&3
    local reply
    IFS= read -r -t 2 reply <&3 || true
    exec 3<&- 3>&-
    [ "${reply%$'\r'}" = "+PONG" ]
  fi
}

install_redis_server() {
  echo "redis-for-tests: installing redis-server"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
}

if ! command -v redis-server >/dev/null 2>&1; then
  install_redis_server
fi
version="$(redis-server --version | sed -n 's/.* v=\([0-9]*\)\..*/\1/p')"
if [ -z "$version" ] || [ "$version" -lt 7 ]; then
  echo "redis-for-tests: redis-server ${version:-?}.x found; the tests need Redis 7 or newer" >&2
  exit 1
fi

if ping; then
  echo "redis-for-tests: Redis already answers on $HOST:$PORT"
  exit 0
fi

echo "redis-for-tests: starting redis-server on $HOST:$PORT"
redis-server --bind "$HOST" --port "$PORT" --save "" --appendonly no --daemonize yes \
  --logfile /tmp/redis-for-tests.log

for _ in $(seq 1 100); do
  if ping; then
    echo "redis-for-tests: Redis answers on $HOST:$PORT"
    exit 0
  fi
  sleep 0.1
done
echo "redis-for-tests: Redis did not answer on $HOST:$PORT (see /tmp/redis-for-tests.log)" >&2
exit 1
