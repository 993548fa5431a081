#!/usr/bin/env bash
# Bounded fuzzing of Hubbub's parsers: every target for SECONDS (default 60),
# one after the other, at the lowest CPU priority. Prints per target the
# seconds, executions and crashes; exits 1 if any target crashed (the input
# is kept in fuzz/artifacts/TARGET/).
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). On a stable toolchain the
# sanitizer flags cargo-fuzz passes need RUSTC_BOOTSTRAP=1, set here.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(decode_json decode_msgpack topic pattern event_id config_env)
rustc --version | grep -q nightly || export RUSTC_BOOTSTRAP=1
nice -n 19 cargo fuzz build -O
status=0
printf '%-16s %8s %12s %8s\n' target seconds executions crashes
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t" "seeds/$t"
  before=$(find "artifacts/$t" -type f | wc -l)
  log=$(mktemp)
  set +e
  nice -n 19 cargo fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 -timeout=10 >"$log" 2>&1
  rc=$?
  set -e
  after=$(find "artifacts/$t" -type f | wc -l)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  elapsed=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n1)
  printf '%-16s %8s %12s %8s\n' "$t" "${elapsed:-?}" "${execs:-?}" "$((after - before))"
  if [ "$rc" -ne 0 ] || [ "$after" -ne "$before" ]; then
    status=1
    echo "---- $t failed (exit $rc); last lines of its log:" >&2
    tail -n 40 "$log" >&2
  fi
  rm -f "$log"
done
exit "$status"
