#!/usr/bin/env bash
# Runs schemathesis (a REST fuzzer we did not write) against the OpenAPI
# document of a running hub: every documented operation is called with
# generated valid and invalid requests, authenticated with an API key that may
# publish everywhere. Fails on any 5xx other than 503, on any response whose
# status, content type or body the document does not describe, and on bodies
# the document forbids being accepted (and valid ones being refused).
#
#   tests/schemathesis.sh [max-examples-per-operation]   (default 60, < 2 min)
#
# Needs `schemathesis` on PATH (pip install schemathesis) and builds the hub
# (debug) unless HUB_BIN points at a binary.
set -euo pipefail
cd "$(dirname "$0")/.."
examples=${1:-60}
work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

command -v schemathesis >/dev/null || { echo "schemathesis not found: pip install schemathesis" >&2; exit 2; }
if [ -z "${HUB_BIN:-}" ]; then
  nice -n 19 cargo build -q -p hubbub --bin hubbub
  HUB_BIN=target/debug/hubbub
fi

key="schemathesis-key-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
sha=$(printf %s "$key" | sha256sum | cut -d' ' -f1)
cat > "$work/hub.toml" <<TOML
listen = "127.0.0.1:0"
drain_timeout = "1s"

[auth]
jwt_algorithm = "HS256"
jwt_secret = "schemathesis-secret-0123456789abcdef"

[[api_keys]]
name = "schemathesis"
key_sha256 = "$sha"
publish = ["*"]
operator = true
TOML

HUBBUB_LOG=${HUBBUB_LOG:-warn} "$HUB_BIN" --config "$work/hub.toml" > "$work/stdout" 2> "$work/stderr" &
pid=$!
addr=
for _ in $(seq 100); do
  addr=$(sed -n 's#^listening on http://##p' "$work/stdout" | head -n1)
  [ -n "$addr" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/stderr" >&2; echo "the hub exited" >&2; exit 1; }
  sleep 0.1
done
[ -n "$addr" ] || { echo "the hub did not report its address" >&2; exit 1; }
echo "hub at http://$addr (pid $pid); schemathesis with at most $examples examples per operation"

status=0
nice -n 19 schemathesis --config-file tests/schemathesis.toml run "http://$addr/api/openapi.json" \
  --header "Authorization: Bearer $key" \
  --checks all \
  --max-examples "$examples" \
  --workers 1 \
  --seed "${SCHEMATHESIS_SEED:-20261121}" \
  --generation-database none \
  --request-timeout 10 \
  --no-color \
  --report junit --report-dir "${SCHEMATHESIS_REPORT_DIR:-$work/report}" || status=$?

if grep -qiE 'panic|internal server error' "$work/stderr"; then
  echo "the hub logged a panic or internal error:" >&2
  grep -iE 'panic|internal server error' "$work/stderr" >&2
  status=1
fi
kill -0 "$pid" 2>/dev/null || { echo "the hub died during the run" >&2; status=1; }
exit "$status"
