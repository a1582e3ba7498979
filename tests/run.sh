#!/usr/bin/env bash
# The one command that runs every segwire test (the README names it; .ci/run calls it).
# Builds the binaries the integration and end-to-end tests drive, then runs all tests.
# Tests that need root or a tool (network namespaces, TUN, podman, wireguard-go) run for
# real when they can; otherwise each prints `SKIPPED <test>: <reason>`, and the skips are
# listed with a count at the end. Under CI (CI set) a skip is a failure instead.
set -euo pipefail
cd "$(dirname "$0")/.."
SEGWIRE_SKIP_LOG="$(mktemp /tmp/segwire-skips.XXXXXX)"
export SEGWIRE_SKIP_LOG
trap 'rm -f "$SEGWIRE_SKIP_LOG"' EXIT
cargo build --workspace --bins
status=0
# The soak (node/tests/soak.rs: five minutes of traffic across two rekeys) is ignored by a
# plain `cargo test`; its binary runs here in the background so that it overlaps the rest
# of the suite instead of adding its five minutes after it. SEGWIRE_SOAK=0 leaves it out.
soak_pid=""
if [ "${SEGWIRE_SOAK:-1}" != 0 ]; then
  soak_bin="$(cargo test -p segwire-node --test soak --no-run --message-format=json \
    | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "soak":
        print(m["executable"])')"
  soak_log="$(mktemp /tmp/segwire-soak.XXXXXX)"
  trap 'rm -f "$SEGWIRE_SKIP_LOG" "$soak_log"' EXIT
  (cd node && exec "$soak_bin" --ignored --nocapture) >"$soak_log" 2>&1 &
  soak_pid=$!
fi
cargo test --workspace --no-fail-fast "$@" || status=$?
# The coordinator's end-to-end API suites again with the store on PostgreSQL (each test
# starts its own cluster in a temp dir, testkit::postgres; ~1.5-2 min). The store's unit
# tests run on both backends in the pass above. SEGWIRE_PG_SUITES=0 leaves this out.
if [ "${SEGWIRE_PG_SUITES:-1}" != 0 ] && [ $# = 0 ]; then
  SEGWIRE_TEST_DB=postgres cargo test -p segwire-coordinator --no-fail-fast \
    --test api --test abuse --test access --test scopes --test peers --test policy \
    --test names --test incidents --test flow_reports --test rotation --test dual_stack \
    --test ipv6_only || status=$?
fi
if [ -n "$soak_pid" ]; then
  soak_status=0
  wait "$soak_pid" || soak_status=$?
  echo
  echo "soak (node/tests/soak.rs, run alongside the suite):"
  grep -E '^(soak |test |SKIPPED)|panicked|lost' "$soak_log" | sed 's/^/  /' || true
  if [ "$soak_status" != 0 ]; then
    echo "the soak failed (exit $soak_status); its output:"
    cat "$soak_log"
    status=1
  fi
fi
if [ -s "$SEGWIRE_SKIP_LOG" ]; then
  echo
  echo "skipped tests (they did not run; run as root with the tools .ci/run installs):"
  sort -u "$SEGWIRE_SKIP_LOG" | sed 's/^/  /'
  echo "$(sort -u "$SEGWIRE_SKIP_LOG" | wc -l) test(s) skipped"
else
  echo "no test was skipped"
fi
exit "$status"
