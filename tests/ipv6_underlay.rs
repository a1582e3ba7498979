//! An IPv6-only underlay, in network namespaces: hosts whose only addresses are IPv6
//! (2001:2::/64), a coordinator listening on `[::]:7443` and advertising `[2001:2::1]`,
//! agents that join with the bracketed token and report IPv6 endpoints, and containers of
//! a dual-stack segment that reach each other over IPv4 and IPv6 through it (one agent
//! names its endpoint with `join --endpoint IPV6`). No IPv6
//! reaches across segments, and the underlay carries nothing but WireGuard UDP and the
//! control plane's TLS (and IPv6's own link control: neighbour discovery, multicast
//! listener reports). One scenario, run in order, because each step builds on the last.
//! A second one mixes the underlay: dual-stack hosts next to an IPv6-only one.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::time::Duration;

use segwire_proto::token::JoinToken;
use segwire_testkit::Lab;
use support::capture::{self, Capture, Underlay::V6};
use support::ctl::{start_coordinator, Ctl};
use support::{
    drops, member_at, peer_owning, ping, tcp_connect, tcp_echo_server, tcp_transfer, udp_marker,
    wait_until, Agent,
};

const COORDINATOR: &str = "2001:2::1";
const URL: &str = "https://[2001:2::1]:7443";

/// The IPv6 address of the member at address `v4` (IPv4, or IPv6 in an IPv6-only
/// segment), from `segwire member list`, and its endpoints.
fn member6(ctl: &Ctl, lab: &Lab, v4: &str) -> (String, Vec<String>) {
    let members: serde_json::Value =
        serde_json::from_str(&ctl.sw(lab, &["member", "list", "-o", "json"])).unwrap();
    let m = members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["address"] == v4 || m["address6"] == v4)
        .unwrap_or_else(|| panic!("no member at {v4}: {members}"));
    let endpoints = m["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect();
    (
        m["address6"]
            .as_str()
            .unwrap_or_else(|| panic!("member {v4} has no IPv6 address: {m}"))
            .to_string(),
        endpoints,
    )
}

#[test]
fn ipv6_only_underlay_end_to_end() {
    use segwire_testkit::skip::{require, Need};
    let needs = [
        Need::Root,
        Need::Program("ip"),
        Need::Program("ping"),
        Need::Program("tcpdump"),
    ];
    if !require("ipv6_only_underlay_end_to_end", &needs) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut lab = Lab::new("s");
    let ctl_ns = lab.host6("ctl", COORDINATOR);
    let h1 = lab.host6("h1", "2001:2::11");
    let h2 = lab.host6("h2", "2001:2::12");
    let h3 = lab.host6("h3", "2001:2::13");
    let c1 = lab.container6("c1");
    let c2 = lab.container6("c2");
    let c3 = lab.container6("c3");

    // 1. The coordinator on [::], advertising an IPv6 literal: admin.conf and tokens carry
    // the bracketed URL, and the CLI reaches it there (its certificate has the IP SAN).
    let data = d.join("coord");
    let log = d.join("coordinator.log");
    start_coordinator(&mut lab, &ctl_ns, &data, &log, "[::]:7443", "[2001:2::1]");
    let ctl = Ctl {
        ns: ctl_ns.clone(),
        conf: data.join("admin.conf"),
    };
    ctl.wait_ready(&lab, &log);
    let admin_conf = std::fs::read_to_string(&ctl.conf).unwrap();
    assert!(admin_conf.contains(URL), "admin.conf: {admin_conf}");
    ctl.sw(
        &lab,
        &[
            "segment",
            "create",
            "web",
            "--cidr",
            "100.64.40.0/24,fd00:40::/64",
        ],
    );
    ctl.sw(
        &lab,
        &[
            "segment",
            "create",
            "db",
            "--cidr",
            "100.64.41.0/24,fd00:41::/64",
        ],
    );
    let t_web = ctl.sw(
        &lab,
        &["token", "create", "--segment", "web", "--uses", "2"],
    );
    let t_db = ctl.sw(&lab, &["token", "create", "--segment", "db"]);
    let parsed: JoinToken = t_web.parse().unwrap();
    assert_eq!(parsed.url, URL);

    // 2. Agents on IPv6-only hosts join with it and report their IPv6 addresses.
    let mut a1 = Agent::new(&h1, d);
    let mut a2 = Agent::new(&h2, d);
    let mut a3 = Agent::new(&h3, d);
    a1.join(&lab, &t_web, "h1");
    a2.join(&lab, &t_web, "h2");
    // h3 names its endpoint (an IPv6 literal) instead of discovering it.
    a3.run_ok(
        &lab,
        &["join", &t_db, "--name", "h3", "--endpoint", "2001:2::13"],
    );
    for a in [&mut a1, &mut a2, &mut a3] {
        a.start(&mut lab);
    }
    let ip1 = a1.attach(&lab, "web", &c1, "app=web");
    let ip2 = a2.attach(&lab, "web", &c2, "app=web");
    let ip3 = a3.attach(&lab, "db", &c3, "app=db");
    let (ip1_6, ep1) = member6(&ctl, &lab, &ip1);
    let (ip2_6, ep2) = member6(&ctl, &lab, &ip2);
    let (ip3_6, ep3) = member6(&ctl, &lab, &ip3);
    for (ep, host) in [
        (&ep1, "2001:2::11"),
        (&ep2, "2001:2::12"),
        (&ep3, "2001:2::13"),
    ] {
        assert!(
            !ep.is_empty() && ep.iter().all(|e| e.starts_with(&format!("[{host}]:"))),
            "endpoints {ep:?} are not {host}'s"
        );
    }

    // 3. IPv6 and IPv4 inside the segment, both over the IPv6 underlay.
    let reached = wait_until(Duration::from_secs(30), || ping(&lab, &c1, &ip2_6, "1"));
    assert!(
        reached.is_some(),
        "no ping6 c1 -> c2 over the IPv6 underlay\nh1:\n{}\nh2:\n{}",
        std::fs::read_to_string(&a1.log).unwrap_or_default(),
        std::fs::read_to_string(&a2.log).unwrap_or_default()
    );
    assert!(ping(&lab, &c2, &ip1_6, "2"), "no ping6 c2 -> c1");
    assert!(ping(&lab, &c1, &ip2, "2"), "no IPv4 ping c1 -> c2");
    assert!(ping(&lab, &c2, &ip1, "2"), "no IPv4 ping c2 -> c1");
    assert!(tcp_transfer(&c1, &c2, &ip2_6, 4 << 20), "TCP over IPv6");
    assert!(tcp_transfer(&c2, &c1, &ip1, 4 << 20), "TCP over IPv4");
    let st = a1.status(&lab);
    let peer = peer_owning(member_at(&st, &ip1), &ip2_6).unwrap_or_else(|| panic!("{st}"));
    let endpoint = peer["endpoint"].as_str().unwrap_or_default();
    assert!(
        endpoint.starts_with("[2001:2::12]:"),
        "h1 reaches c2 at {endpoint:?}"
    );

    // 4. No IPv6 across segments: c1 routes db's prefixes into its own interface, and
    // still nothing reaches c3; h1's agent counts every probe as having no route.
    for prefix in ["fd00:41::/64", "100.64.41.0/24"] {
        segwire_testkit::netlab::sh(
            lab.cmd(&c1, "ip")
                .args(["route", "add", prefix, "dev", "sw-web"]),
        );
    }
    tcp_echo_server(&c3, &ip3_6, 5432);
    let no_route = |lab: &Lab| drops(member_at(&a1.status(lab), &ip1), "no_route");
    let before = no_route(&lab);
    for _ in 0..3 {
        assert!(!ping(&lab, &c1, &ip3_6, "1"), "ping6 crossed segments");
        assert!(
            tcp_connect(&c1, &ip3_6, 5432, Duration::from_secs(1)).is_none(),
            "TCP over IPv6 crossed segments"
        );
    }
    assert!(!ping(&lab, &c1, &ip3, "1"), "IPv4 ping crossed segments");
    let after = no_route(&lab);
    assert!(
        after >= before + 7,
        "h1's agent counted {} no-route drops for 7 probes",
        after - before
    );

    // 5. The IPv6 underlay carries only WireGuard UDP between members' ports and the
    // coordinator's TLS; the markers never appear in clear.
    let mut dump = Capture::start(&lab, &lab.ns("br"), "br0", &d.join("bridge.pcap"));
    let marker = format!("SEGWIRE-MARKER-{:016x}", rand::random::<u64>());
    assert!(
        udp_marker(&c1, &c2, &ip2_6, marker.as_bytes()),
        "IPv6 marker datagram lost"
    );
    assert!(
        udp_marker(&c2, &c1, &ip1, marker.as_bytes()),
        "IPv4 marker datagram lost"
    );
    let wireguard = capture::wireguard(&capture::listen_ports(&lab, &[&a1, &a2, &a3]), V6);
    let tls = capture::tls(COORDINATOR, 7443);
    let h1_h2 = format!("{wireguard} and host 2001:2::11 and host 2001:2::12");
    assert!(
        wait_until(Duration::from_secs(10), || !dump.read(&h1_h2).is_empty()).is_some(),
        "the capture holds no WireGuard datagram over IPv6 between h1 and h2"
    );
    let captured = dump.stop();
    assert!(
        !capture::holds(&captured, &marker),
        "the marker crossed the underlay in clear text"
    );
    let other = dump.read(&capture::other_than(&wireguard, &tls, V6));
    assert!(
        other.is_empty(),
        "underlay traffic that is neither WireGuard between members nor the coordinator's TLS:\n{}",
        other.join("\n")
    );
}

/// The endpoint `agent` uses, for its member at `own`, to reach the peer at `addr`.
fn endpoint_of(agent: &Agent, lab: &Lab, own: &str, addr: &str) -> String {
    let st = agent.status(lab);
    let peer = peer_owning(member_at(&st, own), addr).unwrap_or_else(|| panic!("{st}"));
    peer["endpoint"].as_str().unwrap_or_default().to_string()
}

/// A mixed underlay: dual-stack hosts report their IPv4 and IPv6 endpoints, an IPv6-only
/// host reaches a dual-stack one on its own (the first packet from the IPv6-only side, at
/// the dual-stack host's IPv6 endpoint), and two dual-stack hosts keep using IPv4. The
/// segment is IPv6-only.
#[test]
fn dual_stack_nodes_report_both_endpoints_and_peers_pick_their_family() {
    use segwire_testkit::skip::{require, Need};
    let needs = [Need::Root, Need::Program("ip"), Need::Program("ping")];
    if !require(
        "dual_stack_nodes_report_both_endpoints_and_peers_pick_their_family",
        &needs,
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut lab = Lab::new("m");
    let ctl_ns = lab.host6("ctl", COORDINATOR);
    let h2 = lab.host46("h2", "198.18.0.12", "2001:2::12");
    let h3 = lab.host6("h3", "2001:2::13");
    let h4 = lab.host46("h4", "198.18.0.14", "2001:2::14");
    let (c2, c3, c4) = (
        lab.container6("c2"),
        lab.container6("c3"),
        lab.container6("c4"),
    );
    let data = d.join("coord");
    let log = d.join("coordinator.log");
    start_coordinator(&mut lab, &ctl_ns, &data, &log, "[::]:7443", "[2001:2::1]");
    let ctl = Ctl {
        ns: ctl_ns.clone(),
        conf: data.join("admin.conf"),
    };
    ctl.wait_ready(&lab, &log);
    ctl.sw(
        &lab,
        &["segment", "create", "six", "--cidr", "fd00:42::/64"],
    );
    let token = ctl.sw(
        &lab,
        &["token", "create", "--segment", "six", "--uses", "3"],
    );
    let mut agents: Vec<Agent> = [&h2, &h3, &h4].iter().map(|h| Agent::new(h, d)).collect();
    for (a, name) in agents.iter_mut().zip(["h2", "h3", "h4"]) {
        a.join(&lab, &token, name);
        a.start(&mut lab);
    }
    let ip2 = agents[0].attach(&lab, "six", &c2, "app=web");
    let ip3 = agents[1].attach(&lab, "six", &c3, "app=web");
    let ip4 = agents[2].attach(&lab, "six", &c4, "app=web");

    // The dual-stack hosts report both families, IPv4 first.
    let (_, ep2) = member6(&ctl, &lab, &ip2);
    assert_eq!(ep2.len(), 2, "{ep2:?}");
    assert!(
        ep2[0].starts_with("198.18.0.12:") && ep2[1].starts_with("[2001:2::12]:"),
        "{ep2:?}"
    );

    // The IPv6-only host sends first, to the dual-stack host's IPv6 endpoint.
    let reached = wait_until(Duration::from_secs(30), || ping(&lab, &c3, &ip2, "1"));
    assert!(
        reached.is_some(),
        "no ping6 c3 (IPv6-only host) -> c2 (dual-stack host)\nh3:\n{}",
        std::fs::read_to_string(&agents[1].log).unwrap_or_default()
    );
    assert!(endpoint_of(&agents[1], &lab, &ip3, &ip2).starts_with("[2001:2::12]:"));
    assert!(ping(&lab, &c2, &ip3, "2"), "no ping6 c2 -> c3");
    assert!(endpoint_of(&agents[0], &lab, &ip2, &ip3).starts_with("[2001:2::13]:"));
    // Two dual-stack hosts use IPv4, as on an IPv4 underlay.
    let reached = wait_until(Duration::from_secs(30), || ping(&lab, &c2, &ip4, "1"));
    assert!(reached.is_some(), "no ping6 c2 -> c4");
    assert!(endpoint_of(&agents[0], &lab, &ip2, &ip4).starts_with("198.18.0.14:"));
    assert!(tcp_transfer(&c4, &c3, &ip3, 1 << 20), "TCP c4 -> c3");
}
