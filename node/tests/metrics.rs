//! `segwire-node run --metrics-listen`: the real coordinator, two agents in network
//! namespaces, a container on each; `/metrics` is scraped from inside host A's namespace,
//! parsed as Prometheus text, and its per-peer counters move with traffic; `/healthz` and
//! `/readyz` answer 200.
//!
//! Needs root (skips with a message otherwise) and the coordinator and CLI binaries:
//! `cargo build -p segwire-coordinator -p segwire-cli` first.

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::thread::sleep;
use std::time::{Duration, Instant};

use segwire_netdev::Netns;
use support::traffic::{echo_rtts, Echo};
use support::World;

const SEGMENT_CIDR: &str = "100.64.2.0/24";
const METRICS: &str = "127.0.0.1:9586";

/// One HTTP/1.1 GET to the agent's metrics listener inside namespace `ns`: (status, body).
fn get(ns: &str, path: &str) -> (u16, String) {
    let addr: SocketAddr = METRICS.parse().expect("address");
    let stream = Netns::Named(ns.to_owned())
        .run_blocking(move || TcpStream::connect_timeout(&addr, Duration::from_secs(5)))
        .expect("enter namespace");
    let mut stream = stream.unwrap_or_else(|e| panic!("connect to {METRICS} in {ns}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {METRICS}\r\nConnection: close\r\n\r\n"
    )
    .expect("send request");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    (status, body.to_owned())
}

fn scrape(ns: &str) -> (String, prometheus_parse::Scrape) {
    let (status, body) = get(ns, "/metrics");
    assert_eq!(status, 200, "{body}");
    let parsed = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned())))
        .expect("Prometheus text format");
    (body, parsed)
}

/// The sum of the samples of `name` whose labels include `labels`; `None` when none has.
fn value(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let values: Vec<f64> = s
        .samples
        .iter()
        .filter(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .filter_map(|x| match x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => Some(v),
            _ => None,
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// Starts `segwire-node run --metrics-listen` in host `short` and waits for its socket.
fn start_agent(world: &mut World, short: &str) {
    let dir = world.path(&format!("state-{short}"));
    let p = world.spawn(
        &format!("agent-{short}"),
        short,
        &world.bins.node.clone(),
        &[
            "--state-dir",
            dir.to_str().expect("utf-8"),
            "run",
            "--metrics-listen",
            METRICS,
        ],
    );
    world.procs.push(p);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !world.node(short, &["status"]).status.success() {
        assert!(
            Instant::now() < deadline,
            "agent {short} did not start:\n{}",
            world.logs()
        );
        sleep(Duration::from_millis(100));
    }
}

struct Attached {
    name: String,
    address: Ipv4Addr,
    public_key: String,
}

fn attach(world: &World, host: &str, container: &str) -> Attached {
    let ns = world.ns(container);
    let out = world.node(
        host,
        &["-o", "json", "attach", "--segment", "web", "--netns", &ns],
    );
    assert!(
        out.status.success(),
        "attach {container} on {host} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        world.logs()
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("attach JSON");
    let text = |k: &str| v[k].as_str().map(str::to_owned).expect(k);
    Attached {
        name: text("name"),
        address: text("address").parse().expect("address"),
        public_key: text("public_key"),
    }
}

/// Waits until `/readyz` on `host` answers 200; the last answer otherwise.
fn wait_ready(world: &World, host: &str) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = get(&world.ns(host), "/readyz");
        if status == 200 || Instant::now() > deadline {
            return (status, body);
        }
        sleep(Duration::from_millis(200));
    }
}

#[test]
fn agent_metrics_move_with_traffic_and_probes_answer() {
    if !support::can_run("metrics") {
        return;
    }
    let mut w = World::build('m');
    let conf = w.start_coordinator();
    w.cli(&conf, &["segment", "create", "web", "--cidr", SEGMENT_CIDR]);
    // The echoes are allowed by a named rule; anything else is denied by default.
    let policy = w.path("policy.json");
    std::fs::write(
        &policy,
        r#"{"default": "deny", "rules": [{"name": "echo", "from": "*", "to": "*", "ports": ["udp/7000"]}]}"#,
    )
    .expect("policy file");
    let policy = policy.to_str().expect("utf-8");
    w.cli(&conf, &["policy", "set", "web", "--file", policy]);
    let token = w
        .cli(
            &conf,
            &["token", "create", "--segment", "web", "--uses", "2"],
        )
        .trim()
        .to_owned();
    for (host, name) in [("ha", "host-a"), ("hb", "host-b")] {
        let out = w.node(host, &["join", &token, "--name", name]);
        assert!(
            out.status.success(),
            "join on {host} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    start_agent(&mut w, "ha");
    start_agent(&mut w, "hb");
    let ha = w.ns("ha");

    // Liveness answers as soon as the agent runs.
    let (status, body) = get(&ha, "/healthz");
    assert_eq!((status, body.trim()), (200, "ok"), "{}", w.logs());

    let a = attach(&w, "ha", "ca");
    let b = attach(&w, "hb", "cb");
    for host in ["ha", "hb"] {
        let (status, body) = wait_ready(&w, host);
        assert_eq!(status, 200, "/readyz on {host}: {body}\n{}", w.logs());
    }

    // Traffic both ways: UDP echoes from container A to container B.
    let _server = Echo::start(&w.ns("cb"), 7000);
    let dst = SocketAddr::from((b.address, 7000));
    echo_rtts(&w.ns("ca"), dst, Duration::from_secs(30), 20)
        .unwrap_or_else(|| panic!("no UDP echo from cb\n{}", w.logs()));

    let peer = [
        ("segment", "web"),
        ("member", a.name.as_str()),
        ("peer", b.name.as_str()),
    ];
    let (text, first) = scrape(&ha);
    if std::env::var_os("SEGWIRE_TEST_LOGS").is_some() {
        eprintln!("/metrics on host A:\n{text}");
    }
    for name in [a.public_key.as_str(), b.public_key.as_str()] {
        assert!(!text.contains(name), "a key leaked into /metrics:\n{text}");
    }
    let rx1 = value(&first, "segwire_node_peer_rx_bytes_total", &peer).unwrap_or(0.0);
    let tx1 = value(&first, "segwire_node_peer_tx_bytes_total", &peer).unwrap_or(0.0);
    assert!(rx1 > 0.0 && tx1 > 0.0, "rx {rx1}, tx {tx1}:\n{text}");
    for name in [
        "segwire_node_peer_rx_packets_total",
        "segwire_node_peer_tx_packets_total",
        "segwire_node_peer_handshakes_total",
    ] {
        let v = value(&first, name, &peer).unwrap_or(0.0);
        assert!(v > 0.0, "{name} = {v}:\n{text}");
    }
    let ago = value(&first, "segwire_node_peer_last_handshake_seconds", &peer);
    assert!(ago.is_some_and(|s| s < 60.0), "{ago:?}:\n{text}");
    for (name, want) in [
        ("segwire_node_coordinator_reachable", 1.0),
        ("segwire_node_ready", 1.0),
        ("segwire_node_revoked", 0.0),
    ] {
        assert_eq!(value(&first, name, &[]), Some(want), "{name}:\n{text}");
    }
    assert!(
        value(&first, "segwire_node_netmap_version", &[]).unwrap_or(0.0) > 0.0,
        "{text}"
    );
    let member = [("segment", "web"), ("member", a.name.as_str())];
    assert_eq!(
        value(&first, "segwire_node_member_up", &member),
        Some(1.0),
        "{text}"
    );
    for name in [
        "segwire_node_decrypt_failures_total",
        "segwire_node_policy_denied_packets_total",
        "segwire_node_policy_denied_by_default_packets_total",
        "segwire_node_conntrack_entries",
        "segwire_node_conntrack_evictions_total",
        "segwire_node_member_placement_moves_total",
    ] {
        assert!(value(&first, name, &member).is_some(), "{name}:\n{text}");
    }
    // The data path's home CPU while it is light, -1 while it is free.
    let home = value(&first, "segwire_node_member_home_cpu", &member);
    assert!(
        home.is_some_and(|c| c >= -1.0),
        "home CPU {home:?}:\n{text}"
    );
    // The offloads in force (this kernel has all of them) and the I/O counters: every
    // echo was read from the TUN device and sent and received over UDP.
    for (name, want) in [
        ("segwire_node_member_tun_offload", 1.0),
        ("segwire_node_member_udp_gso_segments", 2.0),
        ("segwire_node_member_udp_gro_segments", 2.0),
    ] {
        let v = value(&first, name, &member).unwrap_or(0.0);
        assert!(v >= want, "{name} = {v}, want at least {want}:\n{text}");
    }
    for (calls, items) in [
        (
            "segwire_node_member_tun_reads_total",
            "segwire_node_member_tun_read_packets_total",
        ),
        (
            "segwire_node_member_udp_recv_calls_total",
            "segwire_node_member_udp_recv_datagrams_total",
        ),
        (
            "segwire_node_member_udp_send_calls_total",
            "segwire_node_member_udp_sent_datagrams_total",
        ),
    ] {
        let (c, i) = (
            value(&first, calls, &member).unwrap_or(0.0),
            value(&first, items, &member).unwrap_or(0.0),
        );
        assert!(c >= 20.0 && i >= c, "{calls} = {c}, {items} = {i}:\n{text}");
    }
    let reason = [member[0], member[1], ("reason", "decrypt_failed")];
    assert!(
        value(&first, "segwire_node_member_drops_total", &reason).is_some(),
        "{text}"
    );

    let rule = [member[0], member[1], ("rule", "echo")];
    let by_rule = value(
        &first,
        "segwire_node_policy_rule_allowed_packets_total",
        &rule,
    );
    assert!(by_rule.is_some_and(|v| v > 0.0), "{by_rule:?}:\n{text}");

    // Packets to a port no rule allows are denied by default (at A, before encryption).
    let denied = [member[0], member[1]];
    let name = "segwire_node_policy_denied_by_default_packets_total";
    let denied1 = value(&first, name, &denied).unwrap_or(0.0);
    let probe = Netns::Named(w.ns("ca"))
        .run_blocking(|| std::net::UdpSocket::bind("0.0.0.0:0"))
        .expect("enter ca")
        .expect("bind");
    for _ in 0..5 {
        let _ = probe.send_to(b"denied", SocketAddr::from((b.address, 7999)));
    }

    // More traffic: the counters grow.
    echo_rtts(&w.ns("ca"), dst, Duration::from_secs(10), 50)
        .unwrap_or_else(|| panic!("no UDP echo from cb\n{}", w.logs()));
    let (text, second) = scrape(&ha);
    let rx2 = value(&second, "segwire_node_peer_rx_bytes_total", &peer).unwrap_or(0.0);
    let tx2 = value(&second, "segwire_node_peer_tx_bytes_total", &peer).unwrap_or(0.0);
    eprintln!("peer bytes on host A: rx {rx1} -> {rx2}, tx {tx1} -> {tx2}");
    let denied2 = value(&second, name, &denied).unwrap_or(0.0);
    assert!(denied2 >= denied1 + 5.0, "{denied1} -> {denied2}:\n{text}");
    assert!(
        rx2 > rx1 && tx2 > tx1,
        "rx {rx1} -> {rx2}, tx {tx1} -> {tx2}:\n{text}"
    );

    // Host B sees host A as its peer, with the same traffic the other way round.
    let (text, on_b) = scrape(&w.ns("hb"));
    let back = [
        ("segment", "web"),
        ("member", b.name.as_str()),
        ("peer", a.name.as_str()),
    ];
    let rx_b = value(&on_b, "segwire_node_peer_rx_bytes_total", &back).unwrap_or(0.0);
    assert!(rx_b > 0.0, "{text}");

    let (status, body) = get(&ha, "/healthz");
    assert_eq!((status, body.trim()), (200, "ok"));
    let (status, body) = get(&ha, "/readyz");
    assert_eq!(status, 200, "{body}");
    let (status, _) = get(&ha, "/nothing");
    assert_eq!(status, 404);
}
