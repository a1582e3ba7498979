#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time and prints, per target, the
# executions and whether it crashed. Not part of CI.
#   bash tests/bench/fuzz.sh [SECONDS_PER_TARGET]   (default 60)
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`); says so and
# exits 2 when either is missing. Crashes are kept in fuzz/artifacts/TARGET/.
set -uo pipefail
cd "$(dirname "$0")/../../fuzz"
secs="${1:-60}"

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "fuzz.sh: the nightly toolchain is missing; install it with: rustup toolchain install nightly" >&2
  exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: cargo-fuzz is missing; install it with: cargo install cargo-fuzz" >&2
  exit 2
fi

crashed=0
printf '%-20s %12s %8s\n' target executions crashes
for target in $(cargo +nightly fuzz list); do
  mkdir -p "corpus/$target"
  log="$(mktemp)"
  # Seeds in corpus/TARGET are read; new inputs go to a scratch dir, not into the repo.
  scratch="$(mktemp -d)"
  cargo +nightly fuzz run "$target" "$scratch" "corpus/$target" -- \
    -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1
  rc=$?
  execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)"
  crashes=0
  if [ "$rc" -ne 0 ]; then
    crashes=1
    crashed=1
    grep -E 'panicked|ERROR|SUMMARY' "$log" | head -5 >&2
  fi
  printf '%-20s %12s %8s\n' "$target" "${execs:-?}" "$crashes"
  rm -rf "$scratch" "$log"
done
exit "$crashed"
