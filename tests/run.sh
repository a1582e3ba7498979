#!/usr/bin/env bash
# The one command that runs every segwire test (the README names it; .ci/run calls it).
# Builds the binaries the integration and end-to-end tests drive, then runs all tests.
# Tests that need root (network namespaces, TUN) run for real as root and skip with a
# message otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --bins
exec cargo test --workspace --no-fail-fast "$@"
