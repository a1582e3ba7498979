#!/usr/bin/env bash
# API fuzzing: schemathesis against the coordinator's own OpenAPI document
# (/v1/openapi.json), with every check, its example, coverage, fuzzing and stateful
# phases, once per caller: an admin, an operator and a viewer key, and a node credential
# (node routes only). The throttle on failed authentication is opened wide so that it
# cannot mask the API behind 429s.
#
#   tests/api-fuzz.sh [SECONDS_PER_CALLER]   (default 60)
#
# Installs schemathesis from PyPI when `st` is missing. Exits non-zero when any run finds
# a failure (errors, such as the coordinator closing the connection on an oversized body
# it refused, are counted and shown but are not failures); the reports are kept in the
# printed directory.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_CALLER="${1:-60}"
SCHEMATHESIS_VERSION=4.32.5

if ! command -v st >/dev/null; then
  echo "installing schemathesis $SCHEMATHESIS_VERSION from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    --break-system-packages "schemathesis==$SCHEMATHESIS_VERSION"
fi
cargo build -q -p segwire-coordinator -p segwire-cli

work="$(mktemp -d /tmp/segwire-apifuzz.XXXXXX)"
data="$work/data"
coordinator_pid=""
cleanup() {
  if [ -n "$coordinator_pid" ]; then kill "$coordinator_pid" 2>/dev/null || true; wait "$coordinator_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT

target/debug/segwire-coordinator serve --listen 127.0.0.1:0 --data-dir "$data" \
  --auth-failure-burst 1000000 --auth-failure-interval 1ms >"$work/coordinator.log" 2>&1 &
coordinator_pid=$!
sw() { target/debug/segwire --config "$data/admin.conf" "$@"; }
for _ in $(seq 1 300); do
  if [ -f "$data/admin.conf" ] && sw segment list >/dev/null 2>&1; then break; fi
  sleep 0.1
done
sw segment list >/dev/null || { echo "the coordinator did not start; see $work/coordinator.log" >&2; exit 1; }

json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
url="$(sed -n 's/^url = "\(.*\)"$/\1/p' "$data/admin.conf")"
admin_key="$(sed -n 's/^api_key = "\(.*\)"$/\1/p' "$data/admin.conf")"
operator_key="$(sw apikey create --role operator)"
viewer_key="$(sw apikey create --role viewer)"
# Some objects to find: a segment, a token, an enrolled node.
sw segment create fuzz --cidr 100.64.77.0/24 >/dev/null
token="$(sw token create --segment fuzz --uses 1)"
token_json="$(python3 -c 'import base64,sys; t=sys.argv[1][5:]; print(base64.urlsafe_b64decode(t + "=" * (-len(t) % 4)).decode())' "$token")"
token_id="$(printf '%s' "$token_json" | json_field '["i"]')"
token_secret="$(printf '%s' "$token_json" | json_field '["s"]')"
node_key="$(python3 -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')"
node_credential="$(curl -sf --cacert "$data/ca.crt" -H 'content-type: application/json' \
  -d "{\"token_id\":\"$token_id\",\"token_secret\":\"$token_secret\",\"name\":\"fuzz-node\",\"public_key\":\"$node_key\",\"endpoints\":[]}" \
  "$url/v1/enroll" | json_field '["credential"]')"

status=0
run() {
  local who="$1" secret="$2"; shift 2
  echo "== schemathesis as $who (${SECONDS_PER_CALLER}s)"
  st --config-file tests/api-fuzz.toml run "$url/v1/openapi.json" --tls-verify "$data/ca.crt" \
      -H "Authorization: Bearer $secret" --max-time "$SECONDS_PER_CALLER" --workers 1 \
      --request-timeout 70 \
      --phases examples,coverage,fuzzing,stateful --report junit --report-dir "$work/$who" \
      "$@" >"$work/$who.txt" 2>&1 || true
  # The last line reads e.g. "==== 2 failures, 1 error, 3 warnings in 30.02s ====".
  local summary failures errors
  summary="$(grep -E '^=+ .* in [0-9.]+s =+$' "$work/$who.txt" | tail -1)"
  failures="$(grep -Eo '[0-9]+ failures?' <<<"$summary" | grep -Eo '[0-9]+' || echo 0)"
  errors="$(grep -Eo '[0-9]+ errors?' <<<"$summary" | grep -Eo '[0-9]+' || echo 0)"
  cases="$(grep -Eo '[0-9]+ generated' "$work/$who.txt" | head -1 | grep -Eo '[0-9]+' || echo 0)"
  echo "   $who: $cases cases, $failures failures, $errors errors (network or schemathesis-internal)"
  if [ -z "$summary" ] || [ "$failures" != 0 ]; then
    status=1
    sed -n '/^=* FAILURES/,/^=* SUMMARY/p' "$work/$who.txt"
  fi
}
# The node first: the key runs may revoke its node. `apikeys/rotate` and revoking keys
# are left out of the key runs: they end the caller's own key by design (the route x role
# tests in coordinator/tests/access.rs cover them).
run node "$node_credential" --include-path-regex '^/v1/node/'
no_self_revoke=(--exclude-path /v1/apikeys/rotate --exclude-path '/v1/apikeys/{id}')
run viewer "$viewer_key" "${no_self_revoke[@]}"
run operator "$operator_key" "${no_self_revoke[@]}"
run admin "$admin_key" "${no_self_revoke[@]}"
trap - EXIT
cleanup
echo "reports and logs: $work"
exit "$status"
