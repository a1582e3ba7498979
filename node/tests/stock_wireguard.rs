//! A stock WireGuard device (Debian's wireguard-go, configured with wireguard-tools from
//! the configuration `segwire peer add` prints) as a member of a segment, against the real
//! coordinator and agent in network namespaces; and `wg show` on the agent's UAPI socket.
//!
//! Needs root, `wireguard-go`, `wg` and `ping` (skips with a message otherwise), and the
//! coordinator and CLI binaries: `cargo build -p segwire-coordinator -p segwire-cli`.

mod support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::traffic::tcp_transfer;
use support::{sh, World, HOST_B_IP};

const SEGMENT_CIDR: &str = "100.64.7.0/24";
const TRANSFER_BYTES: usize = 20 * 1024 * 1024;
const DEVICE_PORT: u16 = 51900;
const UAPI_DIR: &str = "/var/run/wireguard";

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program).args(args).output().expect("run")
}

/// The configuration without the wg-quick-only lines, as `wg setconf` takes it, with
/// `private_key` put in.
fn setconf_text(wg_quick: &str, private_key: &str) -> String {
    const WG_QUICK_ONLY: &[&str] = &[
        "Address",
        "DNS",
        "MTU",
        "Table",
        "PreUp",
        "PostUp",
        "PreDown",
        "PostDown",
        "SaveConfig",
    ];
    wg_quick
        .lines()
        .filter(|l| {
            let key = l.split('=').next().unwrap_or("").trim();
            !WG_QUICK_ONLY.contains(&key)
        })
        .map(|l| {
            if l.starts_with("PrivateKey") {
                format!("PrivateKey = {private_key}")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn value<'a>(config: &'a str, key: &str) -> &'a str {
    config
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} in\n{config}"))
}

fn ping(world: &World, from: &str, to: impl Into<IpAddr>, count: &str) -> bool {
    run(
        "ip",
        &[
            "netns",
            "exec",
            &world.ns(from),
            "ping",
            "-c",
            count,
            "-i",
            "0.2",
            "-W",
            "1",
            &to.into().to_string(),
        ],
    )
    .status
    .success()
}

fn ping_within(world: &World, from: &str, to: impl Into<IpAddr>, wait: Duration) -> bool {
    let to = to.into();
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if ping(world, from, to, "1") {
            return true;
        }
    }
    false
}

fn wait_for(path: &Path, present: bool, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if path.exists() == present {
            return true;
        }
        sleep(Duration::from_millis(100));
    }
    false
}

/// One peer line of `wg show NAME dump`.
struct DumpPeer {
    public_key: String,
    latest_handshake: u64,
    rx: u64,
    tx: u64,
}

fn dump(name: &str) -> Vec<DumpPeer> {
    let text = sh("wg", &["show", name, "dump"]);
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 8, "{l}");
            DumpPeer {
                public_key: f[0].to_owned(),
                latest_handshake: f[4].parse().expect("handshake"),
                rx: f[5].parse().expect("rx"),
                tx: f[6].parse().expect("tx"),
            }
        })
        .collect()
}

fn status_json(world: &World, host: &str) -> serde_json::Value {
    let out = world.node(host, &["status", "-o", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status JSON")
}

/// A coordinator, an agent on host A and container A attached to `web` with `app=web`.
fn setup(letter: char) -> Option<(World, PathBuf, Ipv4Addr)> {
    setup_in(letter, SEGMENT_CIDR)
}

/// [`setup`] with `web` on `cidrs` (IPv6 on in host B and container A when they hold an
/// IPv6 prefix).
fn setup_in(letter: char, cidrs: &str) -> Option<(World, PathBuf, Ipv4Addr)> {
    use segwire_testkit::skip::{require, Need};
    let needs = [
        Need::Root,
        Need::Program("ip"),
        Need::Program("wireguard-go"),
        Need::Program("wg"),
        Need::Program("ping"),
    ];
    if !require("stock_wireguard", &needs) {
        return None;
    }
    let mut world = World::build(letter);
    let conf = world.start_coordinator();
    if cidrs.contains(':') {
        world.enable_ipv6("ca");
        world.enable_ipv6("hb");
    }
    world.cli(&conf, &["segment", "create", "web", "--cidr", cidrs]);
    let token = world
        .cli(&conf, &["token", "create", "--segment", "web"])
        .trim()
        .to_owned();
    let out = world.node("ha", &["join", &token, "--name", "host-a"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    world.start_agent("ha");
    let ns_ca = world.ns("ca");
    let out = world.node(
        "ha",
        &[
            "-o",
            "json",
            "attach",
            "--segment",
            "web",
            "--netns",
            &ns_ca,
            "--label",
            "app=web",
        ],
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        world.logs()
    );
    let attached: serde_json::Value = serde_json::from_slice(&out.stdout).expect("attach JSON");
    let addr_ca: Ipv4Addr = attached["address"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .expect("address");

    Some((world, conf, addr_ca))
}

/// Starts wireguard-go as `ifname` in host B, configured from `setconf`, with `address`
/// and a route for the segment.
fn start_device(world: &mut World, ifname: &str, setconf: &Path, address: &str) {
    start_device_with(world, ifname, setconf, &[address], &[SEGMENT_CIDR]);
}

/// [`start_device`] with several addresses (wg-quick's `Address`, split) and routes.
fn start_device_with(
    world: &mut World,
    ifname: &str,
    setconf: &Path,
    addresses: &[&str],
    routes: &[&str],
) {
    let wg_sock = PathBuf::from(UAPI_DIR).join(format!("{ifname}.sock"));
    let proc = world.spawn(
        "wireguard-go",
        "hb",
        Path::new("/usr/bin/env"),
        &["WG_PROCESS_FOREGROUND=1", "wireguard-go", "-f", ifname],
    );
    world.procs.push(proc);
    assert!(
        wait_for(&wg_sock, true, Duration::from_secs(10)),
        "wireguard-go did not start\n{}",
        world.logs()
    );
    let ns_hb = world.ns("hb");
    sh("wg", &["setconf", ifname, setconf.to_str().expect("utf-8")]);
    for address in addresses {
        sh("ip", &["-n", &ns_hb, "addr", "add", address, "dev", ifname]);
    }
    sh("ip", &["-n", &ns_hb, "link", "set", ifname, "up"]);
    for route in routes {
        sh("ip", &["-n", &ns_hb, "route", "add", route, "dev", ifname]);
    }
}

#[test]
fn stock_wireguard_device_joins_a_segment() {
    let Some((mut world, conf, addr_ca)) = setup('w') else {
        return;
    };
    let ns_ca = world.ns("ca");
    // The device, added with a generated key and a fixed endpoint (host B's address).
    let endpoint = format!("{HOST_B_IP}:{DEVICE_PORT}");
    let config = world.cli(
        &conf,
        &[
            "peer",
            "add",
            "--segment",
            "web",
            "--name",
            "laptop",
            "--generate",
            "--endpoint",
            &endpoint,
            "--label",
            "role=laptop",
        ],
    );
    let address = value(&config, "Address").to_owned();
    let device_ip: Ipv4Addr = address
        .trim_end_matches("/32")
        .parse()
        .expect("device address");
    let private_key = value(&config, "PrivateKey").to_owned();
    let wrong_key = sh("wg", &["genkey"]).trim().to_owned();
    let right_conf = world.path("right.conf");
    let wrong_conf = world.path("wrong.conf");
    std::fs::write(&right_conf, setconf_text(&config, &private_key)).expect("write");
    std::fs::write(&wrong_conf, setconf_text(&config, &wrong_key)).expect("write");
    let device_public = world
        .cli(&conf, &["-o", "json", "peer", "list"])
        .parse::<serde_json::Value>()
        .expect("list JSON")[0]["public_key"]
        .as_str()
        .expect("key")
        .to_owned();

    // wireguard-go in host B, first with another private key: refused, no handshake.
    let ifname = format!("{}wg", world.prefix);
    start_device(&mut world, &ifname, &wrong_conf, &address);
    assert!(
        !ping(&world, "hb", addr_ca, "5"),
        "a wrong key reached the segment"
    );
    assert!(
        dump(&ifname).iter().all(|p| p.latest_handshake == 0),
        "a wrong key completed a handshake"
    );
    // Its handshakes keep failing (wireguard-go retries every 5 s): an incident naming
    // the address they come from, reported by the agent that refused them.
    let failed = support::time_until(Duration::from_secs(30), || {
        !world.events(&conf, "peer.handshake_failed").is_empty()
    });
    assert!(
        failed.is_some(),
        "no peer.handshake_failed\n{}",
        world.logs()
    );
    let event = &world.events(&conf, "peer.handshake_failed")[0]["data"];
    assert_eq!(event["source"], endpoint.as_str(), "{event}");
    assert_eq!(event["reported_by"], "host-a", "{event}");
    assert!(event["count"].as_u64() >= Some(3), "{event}");

    // The right key: ping and 20 MiB of TCP both ways.
    sh(
        "wg",
        &["setconf", &ifname, right_conf.to_str().expect("utf-8")],
    );
    assert!(
        ping_within(&world, "hb", addr_ca, Duration::from_secs(20)),
        "the device cannot reach the container\n{}",
        world.logs()
    );
    assert!(
        ping(&world, "ca", device_ip, "3"),
        "the container cannot reach the device"
    );

    // The stock device checks nothing it sends: packets from a segment address that is not
    // its own reach the agent encrypted with the device's valid session, and the agent's
    // inner-source check drops every one (counted on the device's peer).
    let spoofed = "100.64.7.250";
    let ns_hb = world.ns("hb");
    sh(
        "ip",
        &[
            "-n",
            &ns_hb,
            "addr",
            "add",
            &format!("{spoofed}/32"),
            "dev",
            &ifname,
        ],
    );
    let spoofed_drops = |world: &World| -> u64 {
        status_json(world, "ha")["members"][0]["peers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["drops"]["spoofed_source"].as_u64())
            .sum()
    };
    let before = spoofed_drops(&world);
    let out = run(
        "ip",
        &[
            "netns",
            "exec",
            &ns_hb,
            "ping",
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "1",
            "-I",
            spoofed,
            &addr_ca.to_string(),
        ],
    );
    assert!(
        !out.status.success(),
        "a packet from an address the device does not own reached the container"
    );
    let after = spoofed_drops(&world);
    assert!(
        after >= before + 3,
        "the agent did not count the spoofed packets (spoofed_source {before} -> {after})"
    );
    sh(
        "ip",
        &[
            "-n",
            &ns_hb,
            "addr",
            "del",
            &format!("{spoofed}/32"),
            "dev",
            &ifname,
        ],
    );
    for (from, to_ns, to) in [("hb", "ca", addr_ca), ("ca", "hb", device_ip)] {
        let (took, same) = tcp_transfer(
            &world.ns(from),
            &world.ns(to_ns),
            SocketAddr::from((to, 7001)),
            TRANSFER_BYTES,
        );
        assert!(same, "checksum mismatch {from} -> {to_ns}");
        eprintln!("TCP 20 MiB {from} -> {to_ns}: {took:.2?}, checksum ok");
    }

    // `wg show` on the agent's socket lists the device with a recent handshake and traffic.
    let st = status_json(&world, "ha");
    let socket = st["members"][0]["wg_socket"]
        .as_str()
        .expect("wg_socket in status")
        .to_owned();
    assert!(
        socket.len() <= 15 && socket.starts_with("sw-web."),
        "{socket}"
    );
    let shown = sh("wg", &["show", &socket]);
    eprintln!("wg show {socket}:\n{shown}");
    assert!(shown.contains(&format!("peer: {device_public}")), "{shown}");
    assert!(sh("wg", &["show", "interfaces"])
        .split_whitespace()
        .any(|i| i == socket));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let peer = dump(&socket)
        .into_iter()
        .find(|p| p.public_key == device_public)
        .expect("the device in wg show dump");
    assert!(
        peer.latest_handshake > 0 && now - peer.latest_handshake < 180,
        "handshake {}",
        peer.latest_handshake
    );
    assert!(
        peer.rx > TRANSFER_BYTES as u64 && peer.tx > TRANSFER_BYTES as u64,
        "rx {} tx {}",
        peer.rx,
        peer.tx
    );
    // Writes through the UAPI are refused: the coordinator owns the interface.
    let set = run("wg", &["set", &socket, "listen-port", "1"]);
    assert!(!set.status.success(), "wg set was accepted");

    // A policy that does not admit the device's label prunes it: blocked.
    let policy = world.path("policy.json");
    std::fs::write(
        &policy,
        r#"{"default":"deny","rules":[{"name":"web","from":{"labels":{"app":"web"}},"to":{"labels":{"app":"web"}},"ports":["any"]}]}"#,
    )
    .expect("write policy");
    world.cli(
        &conf,
        &[
            "policy",
            "set",
            "web",
            "--file",
            policy.to_str().expect("utf-8"),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while dump(&socket).iter().any(|p| p.public_key == device_public) {
        assert!(
            Instant::now() < deadline,
            "the denied device is still a peer\n{}",
            world.logs()
        );
        sleep(Duration::from_millis(200));
    }
    assert!(
        !ping(&world, "hb", addr_ca, "5"),
        "the denied device still reaches the container"
    );

    // The socket goes with the member.
    let sock_path = PathBuf::from(UAPI_DIR).join(format!("{socket}.sock"));
    let out = world.node("ha", &["detach", "--segment", "web", "--netns", &ns_ca]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        wait_for(&sock_path, false, Duration::from_secs(5)),
        "UAPI socket left after detach"
    );
}

#[test]
fn device_without_endpoint_is_reached_once_it_connects() {
    let Some((mut world, conf, addr_ca)) = setup('n') else {
        return;
    };
    // No --endpoint: the agent cannot start a handshake; the device's keepalive does.
    let config = world.cli(
        &conf,
        &[
            "peer",
            "add",
            "--segment",
            "web",
            "--name",
            "roamer",
            "--generate",
        ],
    );
    assert!(!config.contains("ListenPort"), "{config}");
    let address = value(&config, "Address").to_owned();
    let device_ip: Ipv4Addr = address
        .trim_end_matches("/32")
        .parse()
        .expect("device address");
    let setconf = world.path("roamer.conf");
    std::fs::write(
        &setconf,
        setconf_text(&config, value(&config, "PrivateKey")),
    )
    .expect("write");
    let ifname = format!("{}wg", world.prefix);
    start_device(&mut world, &ifname, &setconf, &address);
    assert!(
        ping_within(&world, "ca", device_ip, Duration::from_secs(40)),
        "the container never reached the device\n{}",
        world.logs()
    );
    assert!(
        ping(&world, "hb", addr_ca, "3"),
        "the device cannot reach the container"
    );
    let st = status_json(&world, "ha");
    let peer = st["members"][0]["peers"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "roamer"))
        .cloned()
        .expect("roamer in status");
    assert_eq!(peer["node"], "", "{peer}");
    assert!(
        peer["endpoint"]
            .as_str()
            .is_some_and(|e| e.starts_with(HOST_B_IP)),
        "{peer}"
    );
}

#[test]
fn stock_wireguard_device_reaches_ipv6_in_a_dual_stack_segment() {
    const CIDRS: [&str; 2] = ["100.64.8.0/24", "fd00:8::/64"];
    let Some((mut world, conf, addr_ca)) = setup_in('6', &CIDRS.join(",")) else {
        return;
    };
    let ca6 = world.address6(&conf, addr_ca);
    let endpoint = format!("{HOST_B_IP}:{DEVICE_PORT}");
    let config = world.cli(
        &conf,
        &[
            "peer",
            "add",
            "--segment",
            "web",
            "--name",
            "phone",
            "--generate",
            "--endpoint",
            &endpoint,
        ],
    );
    // Both addresses for the device, both of each peer's in AllowedIPs.
    let addresses: Vec<&str> = value(&config, "Address").split(", ").collect();
    assert!(
        addresses.len() == 2 && addresses[0].ends_with("/32") && addresses[1].ends_with("/128"),
        "{config}"
    );
    let device6: Ipv6Addr = addresses[1].trim_end_matches("/128").parse().expect("v6");
    let allowed = value(&config, "AllowedIPs");
    assert_eq!(allowed, format!("{addr_ca}/32, {ca6}/128"), "{config}");

    let setconf = world.path("dual.conf");
    let private_key = value(&config, "PrivateKey").to_owned();
    std::fs::write(&setconf, setconf_text(&config, &private_key)).expect("write");
    let ifname = format!("{}w6", world.prefix);
    start_device_with(&mut world, &ifname, &setconf, &addresses, &CIDRS);
    assert!(
        ping_within(&world, "hb", ca6, Duration::from_secs(20)),
        "wireguard-go cannot reach the container's IPv6 address\n{}",
        world.logs()
    );
    assert!(
        ping(&world, "ca", device6, "3"),
        "the container cannot reach the device over IPv6"
    );
    assert!(
        ping(&world, "hb", addr_ca, "3"),
        "IPv4 stopped working next to IPv6"
    );
}
