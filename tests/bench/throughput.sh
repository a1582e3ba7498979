#!/usr/bin/env bash
# Data-path benchmark: two hosts and two containers in network namespaces.
# Prints, in one run, for each path: iperf3 TCP throughput with 1 and 4 streams and their
# retransmits, UDP at a fixed offered rate ($UDP_RATE, default 1G) with its loss, ping RTT,
# and the CPU seconds per GB moved by both tunnel processes (utime+stime from /proc during
# the TCP runs); then segwire's ratios to boringtun-cli and to Debian's wireguard-go.
# Paths:
#   - segwire container -> container, no policy (IPv4, then IPv6 inside the same
#     dual-stack segment), then with 10,000 policy rules
#     (release build, real coordinator and agents)
#   - boringtun-cli 0.7.1 host -> host (--threads 1), the baseline
#   - Debian's wireguard-go host -> host
#   - plain veth host -> host (reference)
# Ping is measured first on each path, on the idle tunnel (100 echoes 10 ms apart).
# The policy's cost is measured again in PAIRS (default 3) alternating TCP 1-stream runs,
# allow-all then 10,000 rules, compared by medians.
# Latency: then, on each idle path again, 1,000 echoes 10 ms apart with the CPU both tunnel
# processes spent per round trip (perf stat task-clock; /proc ticks without perf).
# Head to head: then ROUNDS (default 3) rounds alternating segwire and boringtun-cli (TCP 1
# and 4 streams, idle ping), compared by medians: the steadiest figures of the run.
# Usage: sudo tests/bench/throughput.sh [seconds-per-run]   (default 10)
#        LATENCY_ONLY=1 prints only the latency table (ping and CPU per round trip).
#        BIN=DIR runs the binaries in DIR instead of building target/release (A/B runs).
#        BIN2=DIR prints only an A/B of idle ping: a second segwire pair from DIR (hosts a2,
#        b2) beside the first, AB_ROUNDS (default 8) rounds of 100 echoes alternating the
#        two pairs (each first in every other round) and boringtun-cli, and their medians.
#        STEPS=1 prints only where one pass of an idle echo goes, step by step, for segwire
#        and boringtun-cli (scheduler and system-call tracepoints, tests/bench/echo_steps.py).
#        PROFILE=1 also records the whole machine with perf during segwire's 1-stream run and
#        prints where the cycles went (by process and by symbol).
# Share of the machine matters: say whether other work ran at the same time.
set -euo pipefail
SECS=${1:-10}
UDP_RATE=${UDP_RATE:-1G}
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
P="swb$$"
WORK="$(mktemp -d /tmp/segwire-bench.XXXXXX)"
PIDS=(); AGENTS=(); BTS=(); WGS=()
[ "$(id -u)" = 0 ] || { echo "run as root (network namespaces)"; exit 1; }

cleanup() {
  set +e
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  sleep 0.5
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P-"); do ip netns del "$ns"; done
  [ -z "${KEEP_LOGS:-}" ] || cp "$WORK"/*.log "$WORK"/*.data "$KEEP_LOGS"/ 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

for t in iperf3 ping wg jq wireguard-go; do command -v $t >/dev/null || { echo "missing $t: apt-get install iperf3 iputils-ping wireguard-tools jq wireguard-go"; exit 1; }; done
BT="$(command -v boringtun-cli || echo "$HOME/.cargo/bin/boringtun-cli")"
if [ ! -x "$BT" ]; then
  echo "installing boringtun-cli 0.7.1 (baseline) with cargo install..."
  cargo install -q boringtun-cli --version 0.7.1 --locked
fi
if [ -z "${BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --bins -q)
  BIN="$ROOT/target/release"
fi

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

TCK=$(getconf CLK_TCK)
cpu_ticks() { # pids... -> utime+stime summed
  local t=0 pid
  for pid in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done
  echo "$t"
}
bps() { jq '.end.sum_received.bits_per_second/1e9'; } # iperf3 JSON on stdin -> Gbit/s received
avg_rtt() { ip netns exec "$1" ping -c 100 -i 0.01 -q "$2" | awk -F/ '/rtt/ {print $5}'; } # src-ns addr -> ms
# Inter-processor interrupts so far, all CPUs (rescheduling and function-call IPIs): each
# wake-up of a thread on another, idle CPU costs one, and in a VM one is a VM exit.
ipis() { awk '/^ *(RES|CAL):/ { for (i = 2; i <= NF; i++) if ($i ~ /^[0-9]+$/) s += $i } END { print s + 0 }' /proc/interrupts; }
# Migrations so far of every thread of the given processes (se.nr_migrations): a thread
# that moves to another CPU finds its data in the other core's cache, or none.
migrations() { cat "${@/#//proc/}"/task/*/sched 2>/dev/null | awk '/nr_migrations/ { s += $3 } END { print s + 0 }'; }
avg_rtt_ipis() { # src-ns addr pids... -> "ms ipis-per-echo migrations-per-echo"
  local src=$1 addr=$2 i0 m0 r; shift 2
  i0=$(ipis); m0=$(migrations "$@"); r=$(avg_rtt "$src" "$addr")
  echo "$r $(awk -v d=$(($(ipis) - i0)) -v m=$(($(migrations "$@") - m0)) 'BEGIN { printf "%.1f/%.2f", d / 100, m / 100 }')"
}
iperf() { # src-ns dst-ns dst-addr args... -> JSON on stdout
  local src=$1 dst=$2 addr=$3; shift 3
  ip netns exec "$dst" iperf3 -s -D -1 -B "$addr" >/dev/null; sleep 0.3
  ip netns exec "$src" iperf3 -c "$addr" -t "$SECS" -J "$@"
}
declare -A TCP1 TCP4
measure() { # key label src-ns dst-ns dst-addr tunnel-pids...
  local key=$1 label=$2 src=$3 dst=$4 addr=$5; shift 5
  local c0 c1 j1 j4 ju rtt
  # Ping first, on the idle tunnel (session up, no load behind it): 100 echoes 10 ms apart.
  rtt=$(avg_rtt "$src" "$addr")
  c0=$(cpu_ticks "$@")
  local perf_pid=""
  if [ -n "${PROFILE:-}" ] && [ "$key" = sw ]; then # the whole machine during segwire's TCP 1 stream
    perf record -a -q -o "$WORK/perf.data" -- sleep "$SECS" 2>/dev/null & perf_pid=$!
  fi
  j1=$(iperf "$src" "$dst" "$addr")
  [ -z "$perf_pid" ] || wait "$perf_pid" || true
  j4=$(iperf "$src" "$dst" "$addr" -P 4)
  c1=$(cpu_ticks "$@")
  ju=$(iperf "$src" "$dst" "$addr" -u -b "$UDP_RATE" -l 1300)
  local one four retr bytes udp loss cpu
  one=$(bps <<<"$j1")
  four=$(bps <<<"$j4")
  retr=$(jq -r '"\(.end.sum_sent.retransmits // 0)"' <<<"$j1")/$(jq -r '"\(.end.sum_sent.retransmits // 0)"' <<<"$j4")
  bytes=$(jq -n --argjson a "$(jq '.end.sum_received.bytes' <<<"$j1")" --argjson b "$(jq '.end.sum_received.bytes' <<<"$j4")" '$a + $b')
  loss=$(jq '.end.sum.lost_percent' <<<"$ju")
  udp=$(jq '.end.sum.bits_per_second * (1 - .end.sum.lost_percent / 100) / 1e9' <<<"$ju") # delivered
  if [ $# -gt 0 ]; then
    cpu=$(awk -v t=$((c1 - c0)) -v h="$TCK" -v b="$bytes" 'BEGIN { printf "%.2f", (t / h) / (b / 1e9) }')
  else
    cpu="-"
  fi
  TCP1[$key]=$one; TCP4[$key]=$four
  printf '%-34s %7.2f %7.2f %9s %6.2f %6.2f%% %8s ms %7s\n' "$label" "$one" "$four" "$retr" "$udp" "$loss" "$rtt" "$cpu"
}
# Idle latency and its CPU: 1,000 echoes 10 ms apart; the tunnel processes' task-clock over
# them (perf stat, or utime+stime from /proc at 10 ms resolution without perf), per echo.
latency() { # label src-ns dst-addr tunnel-pids...
  local label=$1 src=$2 addr=$3; shift 3
  local out rtt cpu="-" c0 c1 i0
  i0=$(ipis)
  if [ $# -gt 0 ] && command -v perf >/dev/null; then
    local pids; pids=$(IFS=,; echo "$*")
    out=$(perf stat -e task-clock -x, -o "$WORK/lat.perf" -p "$pids" -- \
      ip netns exec "$src" ping -c 1000 -i 0.01 -q "$addr")
    cpu=$(awk -F, '/task-clock/ { printf "%.0f", $1 }' "$WORK/lat.perf") # ms over 1,000 echoes = us per echo
  else
    [ $# -gt 0 ] && c0=$(cpu_ticks "$@")
    out=$(ip netns exec "$src" ping -c 1000 -i 0.01 -q "$addr")
    if [ $# -gt 0 ]; then
      c1=$(cpu_ticks "$@")
      cpu=$(awk -v t=$((c1 - c0)) -v h="$TCK" 'BEGIN { printf "%.0f", t / h * 1e6 / 1000 }')
    fi
  fi
  rtt=$(awk '/rtt/ { split($0, a, "= "); split(a[2], v, "/"); printf "%s / %s / %s", v[1], v[2], v[3] }' <<<"$out")
  printf '%-34s %24s ms %9s %8s\n' "$label" "$rtt" "$cpu" "$(awk -v d=$(($(ipis) - i0)) 'BEGIN { printf "%.1f", d / 1000 }')"
}
profile_echoes() { # tag label src-ns dst-addr pids...: perf record over 1,000 echoes
  local tag=$1 label=$2 src=$3 addr=$4; shift 4
  local pids; pids=$(IFS=,; echo "$*")
  perf record -q -g -o "$WORK/$tag.data" -p "$pids" -- \
    ip netns exec "$src" ping -c 1000 -i 0.01 -q "$addr" >/dev/null 2>&1
  echo "$label during 1,000 idle echoes (perf: by thread, by object, by symbol):"
  perf report -i "$WORK/$tag.data" --stdio --no-children --sort comm --percent-limit 2 -g none 2>/dev/null | grep '%' | head -6
  perf report -i "$WORK/$tag.data" --stdio --no-children --sort dso --percent-limit 1 -g none 2>/dev/null | grep '%' | head -6
  perf report -i "$WORK/$tag.data" --stdio --no-children --sort dso,sym --percent-limit 0.7 -g none 2>/dev/null | grep '%' | head -40
}
syscalls() { # label src-ns dst-addr pids...: strace -c over 200 echoes
  local label=$1 src=$2 addr=$3; shift 3
  local args=() pid
  for pid in "$@"; do args+=(-p "$pid"); done
  strace -f -c -o "$WORK/strace.txt" "${args[@]}" & local st=$!
  sleep 1
  ip netns exec "$src" ping -c 200 -i 0.01 -q "$addr" >/dev/null
  kill -INT "$st"; wait "$st" 2>/dev/null || true
  echo "$label: system calls over 200 echoes (both ends):"
  awk 'NR > 2 && $NF != "total" && $1 !~ /^-/ { print "  " $0 }' "$WORK/strace.txt" | head -12
}
latency_table() {
  echo "idle latency, 1,000 echoes 10 ms apart; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  printf '%-34s %27s %9s %8s\n' "path" "rtt min / avg / max" "CPU us/rt" "IPIs/rt"
  latency "segwire, no policy" $P-ca "$addr_b" "${AGENTS[@]}"
  latency "boringtun-cli --threads 1" $P-a 100.96.0.2 "${BTS[@]}"
  latency "wireguard-go (Debian)" $P-a 100.97.0.2 "${WGS[@]}"
  latency "plain veth (reference)" $P-a 198.18.0.3
  if [ -n "${PROFILE:-}" ]; then # where the tunnels spend the CPU of idle echoes
    profile_echoes segwire "segwire's agents" $P-ca "$addr_b" "${AGENTS[@]}"
    profile_echoes boringtun "boringtun-cli" $P-a 100.96.0.2 "${BTS[@]}"
    if command -v strace >/dev/null; then # system calls per echo, both tunnels
      syscalls "segwire" $P-ca "$addr_b" "${AGENTS[@]}"
      syscalls "boringtun-cli" $P-a 100.96.0.2 "${BTS[@]}"
    fi
  fi
}
# A second segwire pair from $BIN2 beside the first, and idle ping alternated between the
# two pairs and boringtun-cli: machine drift between separate runs is larger than most
# changes, drift within one run hits all three alike.
latency_ab() {
  host a2 198.18.0.4; host b2 198.18.0.5
  for c in ca2 cb2; do ip netns add "$P-$c"; ip -n "$P-$c" link set lo up; done
  segwire_pair "$BIN2" a2 b2 ca2 cb2
  local addr_b2=$PAIR_ADDR r x i one=() two=() bt=() i1=() i2=() ib=()
  for r in $(seq "${AB_ROUNDS:-8}"); do # odd rounds BIN's pair first, even rounds BIN2's
    if [ $((r % 2)) = 1 ]; then read -r x i <<<"$(avg_rtt_ipis $P-ca "$addr_b" "${AGENTS[@]}")"; one+=("$x"); i1+=("$i"); fi
    read -r x i <<<"$(avg_rtt_ipis $P-ca2 "$addr_b2" "${PAIR_AGENTS[@]}")"; two+=("$x"); i2+=("$i")
    if [ $((r % 2)) = 0 ]; then read -r x i <<<"$(avg_rtt_ipis $P-ca "$addr_b" "${AGENTS[@]}")"; one+=("$x"); i1+=("$i"); fi
    read -r x i <<<"$(avg_rtt_ipis $P-a 100.96.0.2 "${BTS[@]}")"; bt+=("$x"); ib+=("$i")
  done
  echo "idle ping avg (ms), ${AB_ROUNDS:-8} alternating rounds of 100 echoes 10 ms apart (IPIs/migrations per echo):"
  printf '  %-28s %s\n' "segwire BIN=$BIN" "${one[*]}  (${i1[*]})" "segwire BIN2=$BIN2" "${two[*]}  (${i2[*]})" \
    "boringtun-cli --threads 1" "${bt[*]}  (${ib[*]})"
  printf '  %-28s %s\n' "medians" "BIN $(median "${one[@]}"), BIN2 $(median "${two[@]}"), boringtun-cli $(median "${bt[@]}")"
  printf '  %-28s %s\n' "BIN2 / BIN" "$(ratio "$(median "${two[@]}")" "$(median "${one[@]}")")"
}
# Where one tunnel pass of an idle echo goes, for segwire and boringtun-cli: the pass ping
# wakes (read the request from the TUN device, seal it, send it) step by step.
echo_steps() {
  command -v perf >/dev/null || { echo "STEPS=1 needs perf: apt-get install linux-perf"; exit 1; }
  steps segwire dp- $P-ca "$addr_b"
  steps boringtun-cli boringtun $P-a 100.96.0.2
}
steps() { # label thread-prefix src-ns dst-addr: trace 500 echoes, print the steps
  perf record -q -a -e sched:sched_switch,sched:sched_wakeup,raw_syscalls:sys_enter,raw_syscalls:sys_exit \
    -o "$WORK/$1.steps" -- ip netns exec "$3" ping -c 500 -i 0.01 -q "$4" >/dev/null 2>&1
  python3 "$ROOT/tests/bench/echo_steps.py" "$WORK/$1.steps" "$2" "$1"
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }

# --- segwire ---
ip netns exec $P-ctl "$BIN/segwire-coordinator" serve --listen 198.18.0.1:7443 --advertise 198.18.0.1 --data-dir "$WORK/coord" 2>"$WORK/coord.log" &
PIDS+=($!)
for _ in $(seq 100); do [ -f "$WORK/coord/admin.conf" ] && break; sleep 0.1; done
sw() { ip netns exec $P-ctl "$BIN/segwire" --config "$WORK/coord/admin.conf" "$@"; }
for _ in $(seq 50); do sw segment list >/dev/null 2>&1 && break; sleep 0.1; done
sw segment create bench --cidr 100.64.50.0/24 --cidr fd50:5e67::/64 >/dev/null
# Two agents from binaries in DIR on hosts HA and HB, joined to the segment, with
# container CA attached on HA and CB on HB; sets PAIR_AGENTS (their pids) and PAIR_ADDR
# (CB's address) once CA reaches CB.
segwire_pair() { # DIR HA HB CA CB
  local dir=$1 ha=$2 hb=$3 ca=$4 cb=$5 tok h
  tok=$(sw token create --segment bench --uses 2)
  PAIR_AGENTS=()
  for h in "$ha" "$hb"; do
    ip netns exec $P-$h "$dir/segwire-node" --state-dir "$WORK/$h" join "$tok" --name "$h" >/dev/null
    RUST_LOG=warn ip netns exec $P-$h "$dir/segwire-node" --state-dir "$WORK/$h" run 2>"$WORK/$h.log" &
    PIDS+=($!); PAIR_AGENTS+=($!)
  done
  for h in "$ha" "$hb"; do for _ in $(seq 100); do [ -S "$WORK/$h/agent.sock" ] && break; sleep 0.1; done; done
  ip netns exec $P-$ha "$dir/segwire-node" --state-dir "$WORK/$ha" attach --segment bench --netns $P-$ca >/dev/null
  PAIR_ADDR=$(ip netns exec $P-$hb "$dir/segwire-node" --state-dir "$WORK/$hb" attach --segment bench --netns $P-$cb -o json | jq -r .address)
  for _ in $(seq 50); do ip netns exec $P-$ca ping -c1 -W0.2 -q "$PAIR_ADDR" >/dev/null 2>&1 && return; done
  echo "segwire pair $ha -> $hb ($dir) does not pass traffic; the agents' logs end:"
  tail -n 5 "$WORK/$ha.log" "$WORK/$hb.log"
  exit 1
}
segwire_pair "$BIN" a b ca cb
AGENTS=("${PAIR_AGENTS[@]}"); addr_b=$PAIR_ADDR
# The segment is dual-stack: container B's IPv6 address, for the IPv6 row.
addr_b6=""
for _ in $(seq 50); do
  addr_b6=$(ip -n $P-cb -6 -o addr show scope global | awk '{print $4}' | cut -d/ -f1 | head -1)
  [ -n "$addr_b6" ] && ip netns exec $P-ca ping -c1 -W0.2 -q "$addr_b6" >/dev/null 2>&1 && break
  sleep 0.1
done

# --- boringtun-cli baseline, host a -> host b ---
ka=$(wg genkey); kb=$(wg genkey)
for h in a b; do
  ip netns exec $P-$h "$BT" bt$h --foreground --threads 1 --disable-drop-privileges >"$WORK/bt$h.log" 2>&1 &
  PIDS+=($!); BTS+=($!)
done
sleep 1
ip netns exec $P-a wg set bta private-key <(echo "$ka") listen-port 51900 peer "$(echo "$kb" | wg pubkey)" allowed-ips 100.96.0.2/32 endpoint 198.18.0.3:51900
ip netns exec $P-b wg set btb private-key <(echo "$kb") listen-port 51900 peer "$(echo "$ka" | wg pubkey)" allowed-ips 100.96.0.1/32 endpoint 198.18.0.2:51900
ip -n $P-a addr add 100.96.0.1/24 dev bta; ip -n $P-a link set bta mtu 1420 up
ip -n $P-b addr add 100.96.0.2/24 dev btb; ip -n $P-b link set btb mtu 1420 up
for _ in $(seq 50); do ip netns exec $P-a ping -c1 -W0.2 -q 100.96.0.2 >/dev/null 2>&1 && break; done

# --- Debian's wireguard-go, host a -> host b ---
for h in a b; do
  WG_PROCESS_FOREGROUND=1 ip netns exec $P-$h wireguard-go -f wg$h >"$WORK/wg$h.log" 2>&1 &
  PIDS+=($!); WGS+=($!)
done
sleep 1
ip netns exec $P-a wg set wga private-key <(echo "$ka") listen-port 51901 peer "$(echo "$kb" | wg pubkey)" allowed-ips 100.97.0.2/32 endpoint 198.18.0.3:51901
ip netns exec $P-b wg set wgb private-key <(echo "$kb") listen-port 51901 peer "$(echo "$ka" | wg pubkey)" allowed-ips 100.97.0.1/32 endpoint 198.18.0.2:51901
ip -n $P-a addr add 100.97.0.1/24 dev wga; ip -n $P-a link set wga mtu 1420 up
ip -n $P-b addr add 100.97.0.2/24 dev wgb; ip -n $P-b link set wgb mtu 1420 up
for _ in $(seq 50); do ip netns exec $P-a ping -c1 -W0.2 -q 100.97.0.2 >/dev/null 2>&1 && break; done

if [ -n "${BIN2:-}" ]; then latency_ab; exit 0; fi
if [ -n "${STEPS:-}" ]; then echo_steps; exit 0; fi
if [ -n "${LATENCY_ONLY:-}" ]; then latency_table; exit 0; fi
echo "$SECS s per run, $(nproc) cores, UDP offered at $UDP_RATE; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-34s %7s %7s %9s %6s %7s %11s %7s\n' "path" "TCP 1" "TCP 4" "retr 1/4" "UDP" "loss" "idle ping" "CPU s/GB"
printf '%-34s %7s %7s %9s %6s %7s %11s %7s\n' "" "Gbit/s" "Gbit/s" "" "deliv." "" "" "(both)"
measure sw "segwire, no policy" $P-ca $P-cb "$addr_b" "${AGENTS[@]}"
measure sw6 "segwire, no policy, IPv6 inside" $P-ca $P-cb "$addr_b6" "${AGENTS[@]}"

# The same path with a 10,000-rule policy (9,999 rules that match nothing plus the one
# iperf3 and ping need): the classifier must cost little.
{
  printf '{"default":"deny","rules":['
  for i in $(seq 1 9999); do
    printf '{"name":"r%d","from":{"cidr":"100.64.50.0/24"},"to":{"labels":{"team":"t%d"}},"ports":["tcp/%d"]},' "$i" "$i" "$((10000 + i % 50000))"
  done
  printf '{"name":"iperf","from":"*","to":"*","ports":["tcp/5201","udp/5201","icmp"]}]}'
} > "$WORK/rules.json"
sw policy set bench --file "$WORK/rules.json" >/dev/null
sleep 2
measure sw10k "segwire, 10,000 policy rules" $P-ca $P-cb "$addr_b" "${AGENTS[@]}"
# One row each is too noisy to tell a few per cent apart, so the policy's cost is also
# measured in alternating TCP 1-stream runs (allow-all, then the 10,000 rules, PAIRS
# times) and compared by their medians: drift of the machine hits both alike.
echo '{"default":"allow","rules":[]}' > "$WORK/allow.json"
ALLOW1=(); RULES1=()
for _ in $(seq "${PAIRS:-3}"); do
  sw policy set bench --file "$WORK/allow.json" >/dev/null; sleep 2
  ALLOW1+=("$(iperf $P-ca $P-cb "$addr_b" | bps)")
  sw policy set bench --file "$WORK/rules.json" >/dev/null; sleep 2
  RULES1+=("$(iperf $P-ca $P-cb "$addr_b" | bps)")
done
measure bt "boringtun-cli --threads 1" $P-a $P-b 100.96.0.2 "${BTS[@]}"
measure wg "wireguard-go (Debian)" $P-a $P-b 100.97.0.2 "${WGS[@]}"
measure veth "plain veth (reference)" $P-a $P-b 198.18.0.3
echo
sw policy set bench --file "$WORK/allow.json" >/dev/null; sleep 2
latency_table
echo
printf '%-34s %9s %9s\n' "segwire (no policy) vs" "TCP 1" "TCP 4"
printf '%-34s %9s %9s\n' "boringtun-cli --threads 1" "$(ratio "${TCP1[sw]}" "${TCP1[bt]}")" "$(ratio "${TCP4[sw]}" "${TCP4[bt]}")"
printf '%-34s %9s %9s\n' "wireguard-go (Debian)" "$(ratio "${TCP1[sw]}" "${TCP1[wg]}")" "$(ratio "${TCP4[sw]}" "${TCP4[wg]}")"
printf '%-34s %9s %9s\n' "IPv6 / IPv4 inside" "$(ratio "${TCP1[sw6]}" "${TCP1[sw]}")" "$(ratio "${TCP4[sw6]}" "${TCP4[sw]}")"
printf '%-34s %9s %9s\n' "10,000 rules / no policy" "$(ratio "${TCP1[sw10k]}" "${TCP1[sw]}")" "$(ratio "${TCP4[sw10k]}" "${TCP4[sw]}")"
echo
echo "policy cost, alternating TCP 1-stream runs (Gbit/s):"
printf '  %-32s %s\n' "allow-all" "${ALLOW1[*]}" "10,000 rules" "${RULES1[*]}"
printf '  %-32s %s\n' "median ratio 10,000 / allow-all" "$(ratio "$(median "${RULES1[@]}")" "$(median "${ALLOW1[@]}")")"
# segwire against boringtun-cli the same way: one row each moves by 10-20% from run to run
# (the machine's share of its host drifts), so ROUNDS (default 3) rounds alternate the two
# paths for TCP 1 stream, TCP 4 streams and idle ping (100 echoes 10 ms apart), and their
# medians are compared.
SW1=(); BT1=(); SW4=(); BT4=(); SWP=(); BTP=()
for _ in $(seq "${ROUNDS:-3}"); do
  SWP+=("$(avg_rtt $P-ca "$addr_b")"); BTP+=("$(avg_rtt $P-a 100.96.0.2)")
  SW1+=("$(iperf $P-ca $P-cb "$addr_b" | bps)"); BT1+=("$(iperf $P-a $P-b 100.96.0.2 | bps)")
  SW4+=("$(iperf $P-ca $P-cb "$addr_b" -P 4 | bps)"); BT4+=("$(iperf $P-a $P-b 100.96.0.2 -P 4 | bps)")
done
echo
echo "segwire (no policy) against boringtun-cli, ${ROUNDS:-3} alternating rounds:"
printf '  %-32s %s
' "TCP 1 stream, Gbit/s" "segwire ${SW1[*]}; boringtun-cli ${BT1[*]}"
printf '  %-32s %s
' "TCP 4 streams, Gbit/s" "segwire ${SW4[*]}; boringtun-cli ${BT4[*]}"
printf '  %-32s %s
' "idle ping avg, ms" "segwire ${SWP[*]}; boringtun-cli ${BTP[*]}"
printf '  %-32s %s
' "median ratios" "TCP 1 $(ratio "$(median "${SW1[@]}")" "$(median "${BT1[@]}")"), TCP 4 $(ratio "$(median "${SW4[@]}")" "$(median "${BT4[@]}")"), ping $(ratio "$(median "${SWP[@]}")" "$(median "${BTP[@]}")")"
if [ -n "${PROFILE:-}" ] && [ -s "$WORK/perf.data" ]; then
  echo
  echo "where the cycles went during segwire's TCP 1-stream run (perf, whole machine):"
  perf report -i "$WORK/perf.data" --stdio --sort comm --percent-limit 2 2>/dev/null | grep '%' | head -12
  perf report -i "$WORK/perf.data" --stdio --sort comm,sym --percent-limit 0.8 2>/dev/null | grep '%' | head -30
fi
