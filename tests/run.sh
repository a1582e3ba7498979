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
cargo test --workspace --no-fail-fast "$@" || status=$?
if [ -s "$SEGWIRE_SKIP_LOG" ]; then
  echo
  echo "skipped tests (they did not run; run as root with the tools .ci/run installs):"
  sort -u "$SEGWIRE_SKIP_LOG" | sed 's/^/  /'
  echo "$(sort -u "$SEGWIRE_SKIP_LOG" | wc -l) test(s) skipped"
else
  echo "no test was skipped"
fi
exit "$status"
