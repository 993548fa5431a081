#!/usr/bin/env bash
# CI for the TypeScript SDK: clean install from the lockfile, build, and every
# test (types, unit, integration against the real hub, browser).
#
# Needs: Node 20+, the hub binary (HUBBUB_BIN, default ../target/debug/hubbub,
# built with `cargo build -p hubbub --bin hubbub`), and Chromium at
# /usr/bin/chromium (Debian package `chromium`; CHROMIUM_PATH overrides).
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${HUBBUB_BIN:-../target/debug/hubbub}"
if [[ ! -x "$bin" ]]; then
  echo "client-sdk-ts/scripts/ci.sh: no hub binary at $bin (cargo build -p hubbub --bin hubbub, or set HUBBUB_BIN)" >&2
  exit 1
fi
chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [[ ! -x "$chromium" ]]; then
  echo "client-sdk-ts/scripts/ci.sh: no Chromium at $chromium (apt-get install -y chromium, or set CHROMIUM_PATH)" >&2
  exit 1
fi

npm ci --no-audit --no-fund
npm run build
npm test
npm run size
