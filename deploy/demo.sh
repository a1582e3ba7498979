#!/usr/bin/env bash
# segwire demo: a whole cluster on one machine, in network namespaces.
#
#   sudo deploy/demo.sh          # build, start, show, wait for Ctrl-C, clean up
#   sudo deploy/demo.sh --once   # the same, but clean up right after the report
#
# It builds segwire, starts a coordinator (SQLite, embedded defaults), creates segments
# `web` and `db`, three hosts and five containers, joins the hosts with tokens, attaches
# the containers, prints who reaches whom and `segwire-node status`; when podman 4, runc
# and busybox-static are installed it also runs real podman containers on segment `web`
# through the segwire CNI plugin (deploy/demo-podman.sh) and stops and starts one. On
# exit it removes everything it made (namespaces, processes and containers named swdemo-*).
set -euo pipefail

ONCE=0
[ "${1:-}" = "--once" ] && ONCE=1
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
P=swdemo
WORK="$(mktemp -d /tmp/segwire-demo.XXXXXX)"
PIDS=()
PODMAN_CLEANUP=0
# shellcheck source=deploy/demo-podman.sh
. "$ROOT/deploy/demo-podman.sh"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
info() { printf '    %s\n' "$*"; }
die()  { printf 'error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "the demo builds network namespaces and TUN devices: run it as root (sudo $0)"
[ -e /dev/net/tun ] || die "/dev/net/tun is missing: load the tun module (modprobe tun)"

cleanup() {
  set +e
  step "Cleaning up"
  [ "$PODMAN_CLEANUP" = 1 ] && podman_cleanup
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  sleep 1
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P-"); do ip netns del "$ns"; done
  rm -rf "$WORK"
  info "removed every $P-* namespace and process; logs were in $WORK"
}
trap cleanup EXIT

step "Checking tools"
need=()
command -v ip >/dev/null || need+=(iproute2)
command -v ping >/dev/null || need+=(iputils-ping)
command -v jq >/dev/null || need+=(jq)
command -v cargo >/dev/null || die "cargo is missing: install Rust from your distribution or rustup first"
if [ ${#need[@]} -gt 0 ]; then
  info "installing missing Debian packages: ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
info "ok"

step "Building segwire (release; the first build takes a few minutes)"
(cd "$ROOT" && cargo build --release --bins -q)
BIN="$ROOT/target/release"
info "binaries in $BIN"

for ns in $(ip netns list | awk '{print $1}' | grep "^$P-"); do ip netns del "$ns"; done

step "Building the network: a bridge, a control host, three hosts, five containers"
ip netns add $P-br
ip -n $P-br link set lo up
ip -n $P-br link add br0 type bridge
ip -n $P-br link set br0 up
i=0
addhost() { # name address
  i=$((i+1))
  ip netns add "$P-$1"
  ip -n "$P-$1" link set lo up
  ip -n $P-br link add "p$i" type veth peer name eth0 netns "$P-$1"
  ip -n $P-br link set "p$i" master br0 up
  ip -n "$P-$1" addr add "$2/24" dev eth0
  ip -n "$P-$1" link set eth0 up
  info "host $P-$1 at $2"
}
addhost ctl 198.18.0.1
addhost h1 198.18.0.11
addhost h2 198.18.0.12
addhost h3 198.18.0.13
for c in web1 web2 db1 db2 api; do
  ip netns add "$P-$c"; ip -n "$P-$c" link set lo up
done
info "containers: web1 (h1), web2 (h2), db1 (h3), db2 (h1), api (h2, in web and db)"

step "Starting the coordinator on 198.18.0.1:7443 (SQLite in $WORK/coord)"
ip netns exec $P-ctl "$BIN/segwire-coordinator" serve --listen 198.18.0.1:7443 \
  --data-dir "$WORK/coord" --advertise 198.18.0.1 2>"$WORK/coordinator.log" &
PIDS+=($!)
for _ in $(seq 100); do [ -f "$WORK/coord/admin.conf" ] && break; sleep 0.1; done
[ -f "$WORK/coord/admin.conf" ] || die "the coordinator did not start; see $WORK/coordinator.log"
export SEGWIRE_CONFIG="$WORK/coord/admin.conf"
sw() { ip netns exec $P-ctl "$BIN/segwire" "$@"; }
for _ in $(seq 50); do sw segment list >/dev/null 2>&1 && break; sleep 0.1; done
info "admin config: $SEGWIRE_CONFIG"

step "Creating segments web (100.64.1.0/24) and db (100.64.2.0/24)"
sw segment create web --cidr 100.64.1.0/24 >/dev/null
sw segment create db --cidr 100.64.2.0/24 >/dev/null
sw segment list

step "Joining hosts with one-line tokens"
for h in h1 h2 h3; do
  case $h in h1) segs="--segment web --segment db";; h2) segs="--segment web --segment db";; h3) segs="--segment db";; esac
  # shellcheck disable=SC2086
  token=$(sw token create $segs --ttl 10m)
  ip netns exec "$P-$h" "$BIN/segwire-node" --state-dir "$WORK/$h" join "$token" --name "$h" >/dev/null
  ip netns exec "$P-$h" "$BIN/segwire-node" --state-dir "$WORK/$h" run 2>"$WORK/$h.log" &
  PIDS+=($!)
  info "$h joined (token ${token:0:16}…)"
done
for h in h1 h2 h3; do
  for _ in $(seq 100); do [ -S "$WORK/$h/agent.sock" ] && break; sleep 0.1; done
done

step "Attaching containers"
attach() { # host container segment
  ip netns exec "$P-$1" "$BIN/segwire-node" --state-dir "$WORK/$1" attach --segment "$3" --netns "$P-$2" --label "app=$2"
}
attach h1 web1 web
attach h2 web2 web
attach h3 db1 db
attach h1 db2 db
attach h2 api web
attach h2 api db

step "Members"
sw member list

step "Reachability (ping over the overlay; rows reach columns)"
members=$(sw member list -o json)
containers=(web1 web2 db1 db2 api)
sleep 1
printf '    %-6s' ""
for dst in "${containers[@]}"; do printf '%-8s' "$dst"; done
printf '\n'
for src in "${containers[@]}"; do
  printf '    %-6s' "$src"
  for dst in "${containers[@]}"; do
    if [ "$src" = "$dst" ]; then printf '%-8s' "-"; continue; fi
    ok="no"
    for addr in $(echo "$members" | jq -r --arg w "netns:$P-$dst" '.[] | select(.workload==$w) | .address'); do
      if ip netns exec "$P-$src" ping -c1 -W1 -q "$addr" >/dev/null 2>&1; then ok="yes"; fi
    done
    printf '%-8s' "$ok"
  done
  printf '\n'
done
info "web containers reach each other, db containers reach each other, api reaches both; web and db never meet."

step "segwire-node status on h2"
ip netns exec $P-h2 "$BIN/segwire-node" --state-dir "$WORK/h2" status

if podman_available; then
  podman_demo
else
  step "Podman containers: skipped"
  info "install podman, runc, busybox-static and containernetworking-plugins to see real containers join with --network"
fi

step "Web console (a link from this machine to the demo's network)"
ip link add $P-host type veth peer name phost netns $P-br
ip -n $P-br link set phost master br0 up
ip addr add 198.18.0.254/24 dev $P-host && ip link set $P-host up
info "open https://198.18.0.1:7443/ here (trust $WORK/coord/ca.crt or accept the warning)"
info "viewer key (read only): $(sw apikey create --role viewer --description 'demo viewer')"
info "admin key: api_key in $SEGWIRE_CONFIG"

if [ "$ONCE" = 1 ]; then exit 0; fi
step "The cluster is running. Try, in another shell:"
info "sudo ip netns exec $P-web1 ping 100.64.1.2"
info "sudo SEGWIRE_CONFIG=$SEGWIRE_CONFIG ip netns exec $P-ctl $BIN/segwire member list"
info "Press Ctrl-C to stop and clean up."
while true; do sleep 3600; done
