#!/usr/bin/env bash
# Data-path benchmark: two hosts and two containers in network namespaces.
# Prints, in one run, iperf3 TCP throughput (1 and 4 streams) and ping RTT for
#   - segwire container -> container (release build, real coordinator and agents)
#   - a baseline boringtun-cli 0.7.1 tunnel host -> host (--threads 1)
# Usage: sudo tests/bench/throughput.sh [seconds-per-run]   (default 10)
set -euo pipefail
SECS=${1:-10}
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
P="swb$$"
WORK="$(mktemp -d /tmp/segwire-bench.XXXXXX)"
PIDS=()
[ "$(id -u)" = 0 ] || { echo "run as root (network namespaces)"; exit 1; }

cleanup() {
  set +e
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  sleep 0.5
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P-"); do ip netns del "$ns"; done
  rm -rf "$WORK"
}
trap cleanup EXIT

for t in iperf3 ping wg; do command -v $t >/dev/null || { echo "missing $t: apt-get install iperf3 iputils-ping wireguard-tools"; exit 1; }; done
BT="$(command -v boringtun-cli || echo "$HOME/.cargo/bin/boringtun-cli")"
if [ ! -x "$BT" ]; then
  echo "installing boringtun-cli 0.7.1 (baseline) with cargo install..."
  cargo install -q boringtun-cli --version 0.7.1 --locked
fi
(cd "$ROOT" && cargo build --release --bins -q)
BIN="$ROOT/target/release"

ip netns add $P-br; ip -n $P-br link add br0 type bridge; ip -n $P-br link set br0 up
n=0
host() {
  n=$((n+1)); ip netns add "$P-$1"; ip -n "$P-$1" link set lo up
  ip netns exec "$P-$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  ip -n $P-br link add "p$n" type veth peer name eth0 netns "$P-$1"
  ip -n $P-br link set "p$n" master br0 up
  ip -n "$P-$1" addr add "$2/24" dev eth0; ip -n "$P-$1" link set eth0 up
}
host ctl 198.18.0.1; host a 198.18.0.2; host b 198.18.0.3
for c in ca cb; do ip netns add "$P-$c"; ip -n "$P-$c" link set lo up; done

measure() { # label src-ns dst-ns dst-addr
  ip netns exec "$3" iperf3 -s -D -1 -B "$4" >/dev/null; sleep 0.3
  local one; one=$(ip netns exec "$2" iperf3 -c "$4" -t "$SECS" -J | jq '.end.sum_received.bits_per_second/1e9')
  ip netns exec "$3" iperf3 -s -D -1 -B "$4" >/dev/null; sleep 0.3
  local four; four=$(ip netns exec "$2" iperf3 -c "$4" -t "$SECS" -P 4 -J | jq '.end.sum_received.bits_per_second/1e9')
  local rtt; rtt=$(ip netns exec "$2" ping -c 20 -i 0.05 -q "$4" | awk -F/ '/rtt/ {print $5}')
  printf '%-34s %8.2f Gbit/s %8.2f Gbit/s %8s ms\n' "$1" "$one" "$four" "$rtt"
}

# --- segwire ---
ip netns exec $P-ctl "$BIN/segwire-coordinator" serve --listen 198.18.0.1:7443 --advertise 198.18.0.1 --data-dir "$WORK/coord" 2>"$WORK/coord.log" &
PIDS+=($!)
for _ in $(seq 100); do [ -f "$WORK/coord/admin.conf" ] && break; sleep 0.1; done
sw() { ip netns exec $P-ctl "$BIN/segwire" --config "$WORK/coord/admin.conf" "$@"; }
for _ in $(seq 50); do sw segment list >/dev/null 2>&1 && break; sleep 0.1; done
sw segment create bench --cidr 100.64.50.0/24 >/dev/null
tok=$(sw token create --segment bench --uses 2)
for h in a b; do
  ip netns exec $P-$h "$BIN/segwire-node" --state-dir "$WORK/$h" join "$tok" --name "$h" >/dev/null
  RUST_LOG=warn ip netns exec $P-$h "$BIN/segwire-node" --state-dir "$WORK/$h" run 2>"$WORK/$h.log" &
  PIDS+=($!)
done
for h in a b; do for _ in $(seq 100); do [ -S "$WORK/$h/agent.sock" ] && break; sleep 0.1; done; done
ip netns exec $P-a "$BIN/segwire-node" --state-dir "$WORK/a" attach --segment bench --netns $P-ca >/dev/null
addr_b=$(ip netns exec $P-b "$BIN/segwire-node" --state-dir "$WORK/b" attach --segment bench --netns $P-cb -o json | jq -r .address)
for _ in $(seq 50); do ip netns exec $P-ca ping -c1 -W0.2 -q "$addr_b" >/dev/null 2>&1 && break; done

# --- boringtun-cli baseline, host a -> host b ---
ka=$(wg genkey); kb=$(wg genkey)
for h in a b; do
  ip netns exec $P-$h "$BT" bt$h --foreground --threads 1 --disable-drop-privileges >"$WORK/bt$h.log" 2>&1 &
  PIDS+=($!)
done
sleep 1
ip netns exec $P-a wg set bta private-key <(echo "$ka") listen-port 51900 peer "$(echo "$kb" | wg pubkey)" allowed-ips 100.96.0.2/32 endpoint 198.18.0.3:51900
ip netns exec $P-b wg set btb private-key <(echo "$kb") listen-port 51900 peer "$(echo "$ka" | wg pubkey)" allowed-ips 100.96.0.1/32 endpoint 198.18.0.2:51900
ip -n $P-a addr add 100.96.0.1/24 dev bta; ip -n $P-a link set bta mtu 1420 up
ip -n $P-b addr add 100.96.0.2/24 dev btb; ip -n $P-b link set btb mtu 1420 up
for _ in $(seq 50); do ip netns exec $P-a ping -c1 -W0.2 -q 100.96.0.2 >/dev/null 2>&1 && break; done

printf '%-34s %15s %15s %11s\n' "path ($SECS s per run, $(nproc) cores)" "1 stream" "4 streams" "ping avg"
measure "segwire container->container" $P-ca $P-cb "$addr_b"

# The same path with a 1,000-rule policy (999 rules that match nothing plus the ones
# iperf3 and ping need): the classifier must cost little.
{
  printf '{"default":"deny","rules":['
  for i in $(seq 1 999); do
    printf '{"name":"r%d","from":{"cidr":"100.64.50.0/24"},"to":{"labels":{"team":"t%d"}},"ports":["tcp/%d"]},' "$i" "$i" "$((10000 + i))"
  done
  printf '{"name":"iperf","from":"*","to":"*","ports":["tcp/5201","icmp"]}]}'
} > "$WORK/rules.json"
sw policy set bench --file "$WORK/rules.json" >/dev/null
sleep 1
measure "segwire with 1,000 policy rules" $P-ca $P-cb "$addr_b"
measure "boringtun-cli --threads 1 host->host" $P-a $P-b 100.96.0.2
measure "plain veth host->host (reference)" $P-a $P-b 198.18.0.3
