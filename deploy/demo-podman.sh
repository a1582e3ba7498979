# Sourced by deploy/demo.sh when podman, runc and busybox-static are installed: real
# podman containers join segment `web` through the segwire CNI plugin, then stop and start.
#
# Everything podman writes goes under $WORK/podman (its own containers.conf, vfs storage,
# CNI config and plugin dirs), so the demo never touches the machine's podman setup.
# Uses from demo.sh: P, WORK, BIN, step, info, sw, PODMAN_CLEANUP.

PODDIR="$WORK/podman"

podman_available() {
  command -v podman >/dev/null && command -v runc >/dev/null &&
    [ -x /bin/busybox ] && file_is_static /bin/busybox &&
    podman --version 2>/dev/null | grep -q 'version 4\.'
}

file_is_static() { ! ldd "$1" >/dev/null 2>&1; }

# podman pointed at the demo's own configuration.
pm() {
  CONTAINERS_CONF="$PODDIR/containers.conf" CONTAINERS_STORAGE_CONF="$PODDIR/storage.conf" \
    CONTAINERS_REGISTRIES_CONF="$PODDIR/registries.conf" XDG_RUNTIME_DIR="$PODDIR/xdg" \
    TMPDIR="$PODDIR/tmp" podman "$@"
}

podman_setup() {
  mkdir -p "$PODDIR"/{tmp,xdg,cni/net.d,cni/bin,storage}
  # runc (crun cannot set rlimits in some sandboxes), the CNI backend, no default network.
  cat >"$PODDIR/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
default_sysctls = ["net.ipv4.ping_group_range=0 2147483647"]
netns = "none"
[network]
network_backend = "cni"
network_config_dir = "$PODDIR/cni/net.d"
cni_plugin_dirs = ["$PODDIR/cni/bin", "/usr/lib/cni"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$PODDIR/tmp/events.log"
tmp_dir = "$PODDIR/tmp"
lock_type = "file"
pull_policy = "never"
EOF
  printf '[storage]\ndriver = "vfs"\ngraphroot = "%s"\nrunroot = "%s"\n' \
    "$PODDIR/storage/root" "$PODDIR/storage/run" >"$PODDIR/storage.conf"
  : >"$PODDIR/registries.conf"
  # An image from Debian's busybox-static: no registry needed.
  local root="$PODDIR/rootfs"
  mkdir -p "$root"/{bin,etc,proc,sys,dev,run,tmp,www}
  cp /bin/busybox "$root/bin/busybox"
  for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$root/bin/$a"; done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
  echo "hello from a podman container on segment web" >"$root/www/index.html"
  tar --numeric-owner -C "$root" -c . |
    pm import --change 'CMD ["/bin/sh"]' --change 'STOPSIGNAL SIGKILL' - localhost/$P-busybox \
      >/dev/null 2>"$PODDIR/import.log" || die "podman import failed; see $PODDIR/import.log"
  PODMAN_CLEANUP=1
}

podman_cleanup() {
  pm rm -fa -t 0 >/dev/null 2>&1
  pm system reset -f >/dev/null 2>&1
  rm -f /var/lib/cni/results/$P-*
}

podman_demo() {
  step "Podman containers on segment web (CNI plugin; podman state in $PODDIR)"
  podman_setup
  for h in h1 h2; do
    "$BIN/segwire-node" --state-dir "$WORK/$h" cni install --segment web --label app=pod \
      --name "$P-web-$h" --conf-dir "$PODDIR/cni/net.d" --bin-dir "$PODDIR/cni/bin" \
      --plugin "$BIN/segwire-cni" >/dev/null
    info "network $P-web-$h: containers started with it join segment web through $h's agent"
  done
  pm run -d --name $P-pod1 --network $P-web-h1 localhost/$P-busybox httpd -f -p 80 -h /www >/dev/null
  pm run -d --name $P-pod2 --network $P-web-h2 localhost/$P-busybox sleep 100000 >/dev/null
  local ip1 ip2
  ip1=$(pm inspect -f "{{(index .NetworkSettings.Networks \"$P-web-h1\").IPAddress}}" $P-pod1)
  ip2=$(pm inspect -f "{{(index .NetworkSettings.Networks \"$P-web-h2\").IPAddress}}" $P-pod2)
  info "podman run --network $P-web-h1 → $P-pod1 at $ip1; --network $P-web-h2 → $P-pod2 at $ip2"
  info "inside $P-pod2: $(pm exec $P-pod2 ip -o route | head -1)"
  info "$P-pod2 → http://$ip1/: $(pm exec $P-pod2 wget -q -O - "http://$ip1/" 2>&1)"
  sw member list
  step "podman stop $P-pod1: the agent detaches it"
  pm stop -t 0 $P-pod1 >/dev/null
  sleep 1
  sw member list
  step "podman start $P-pod1: attached again"
  pm start $P-pod1 >/dev/null
  ip1=$(pm inspect -f "{{(index .NetworkSettings.Networks \"$P-web-h1\").IPAddress}}" $P-pod1)
  info "$P-pod1 is back at $ip1; web1 (a namespace container) → $P-pod1: $(ip netns exec $P-web1 ping -c1 -W2 -q "$ip1" >/dev/null 2>&1 && echo reachable || echo unreachable)"
}
