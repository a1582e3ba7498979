//! IPv6-only segments end to end, in network namespaces on an IPv4 underlay: containers on
//! two hosts in a segment with only an IPv6 prefix see one IPv6 address and one IPv6 route
//! and nothing of IPv4, reach each other with ping6 and TCP, and reach nothing of another
//! IPv6-only segment; `segment update --cidr` then gives them IPv4 addresses in place,
//! without interrupting IPv6. One scenario, run in order, because each step builds on the
//! last.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::time::Duration;

use segwire_testkit::Lab;
use support::ctl::{start_coordinator, Ctl};
use support::{
    drops, member_at, ping, tcp_connect, tcp_echo_server, tcp_transfer, wait_until, Agent,
};

/// `ip ARGS` in namespace `ns`, its output.
fn ip(lab: &Lab, ns: &str, args: &[&str]) -> String {
    let out = lab.cmd(ns, "ip").args(args).output().unwrap();
    assert!(out.status.success(), "ip {args:?} in {ns}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn ipv6_only_segment_end_to_end() {
    use segwire_testkit::skip::{require, Need};
    let needs = [Need::Root, Need::Program("ip"), Need::Program("ping")];
    if !require("ipv6_only_segment_end_to_end", &needs) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut lab = Lab::new("v");
    let ctl_ns = lab.host("ctl", "198.18.0.1");
    let h1 = lab.host("h1", "198.18.0.11");
    let h2 = lab.host("h2", "198.18.0.12");
    let c1 = lab.container6("c1");
    let c2 = lab.container6("c2");
    let c3 = lab.container6("c3");

    let data = d.join("coord");
    let log = d.join("coordinator.log");
    start_coordinator(
        &mut lab,
        &ctl_ns,
        &data,
        &log,
        "198.18.0.1:7443",
        "198.18.0.1",
    );
    let ctl = Ctl {
        ns: ctl_ns.clone(),
        conf: data.join("admin.conf"),
    };
    ctl.wait_ready(&lab, &log);
    ctl.sw(
        &lab,
        &["segment", "create", "web", "--cidr", "fd00:50::/64"],
    );
    ctl.sw(&lab, &["segment", "create", "db", "--cidr", "fd00:51::/64"]);
    let token = ctl.sw(
        &lab,
        &[
            "token",
            "create",
            "--segment",
            "web",
            "--segment",
            "db",
            "--uses",
            "2",
        ],
    );
    let mut a1 = Agent::new(&h1, d);
    let mut a2 = Agent::new(&h2, d);
    a1.join(&lab, &token, "h1");
    a2.join(&lab, &token, "h2");
    a1.start(&mut lab);
    a2.start(&mut lab);
    let ip1 = a1.attach(&lab, "web", &c1, "app=web");
    let ip2 = a2.attach(&lab, "web", &c2, "app=web");
    let ip3 = a2.attach(&lab, "db", &c3, "app=db");
    assert_eq!(
        (ip1.as_str(), ip2.as_str(), ip3.as_str()),
        ("fd00:50::1", "fd00:50::2", "fd00:51::1")
    );

    // 1. What a container sees: its /128 and the segment's one route; no IPv4 at all.
    for (c, own) in [(&c1, &ip1), (&c2, &ip2)] {
        let v6 = ip(&lab, c, &["-6", "-o", "addr", "show", "dev", "sw-web"]);
        assert!(v6.contains(&format!("inet6 {own}/128")), "{c}: {v6}");
        assert_eq!(v6.lines().count(), 1, "{c}: {v6}");
        let routes = ip(&lab, c, &["-6", "route", "show", "table", "main"]);
        let routes: Vec<&str> = routes.lines().collect();
        assert_eq!(routes.len(), 1, "{c}: {routes:?}");
        assert!(
            routes[0].starts_with("fd00:50::/64 dev sw-web"),
            "{c}: {routes:?}"
        );
        let v4 = ip(&lab, c, &["-4", "addr", "show", "dev", "sw-web"]);
        assert!(!v4.contains("inet "), "{c} has an IPv4 address: {v4}");
        let routes4 = ip(&lab, c, &["-4", "route", "show", "table", "all"]);
        assert!(
            routes4.lines().all(|l| !l.contains("sw-web")),
            "{c} has an IPv4 route: {routes4}"
        );
    }

    // 2. ping6 and TCP both ways between the hosts.
    let reached = wait_until(Duration::from_secs(30), || ping(&lab, &c1, &ip2, "1"));
    assert!(
        reached.is_some(),
        "no ping6 c1 -> c2\nh1:\n{}\nh2:\n{}",
        std::fs::read_to_string(&a1.log).unwrap_or_default(),
        std::fs::read_to_string(&a2.log).unwrap_or_default()
    );
    assert!(ping(&lab, &c2, &ip1, "2"), "no ping6 c2 -> c1");
    assert!(tcp_transfer(&c1, &c2, &ip2, 4 << 20), "TCP c1 -> c2");
    assert!(tcp_transfer(&c2, &c1, &ip1, 4 << 20), "TCP c2 -> c1");
    let st = a1.status(&lab);
    let me = member_at(&st, &ip1);
    assert_eq!(
        (me["address"].as_str(), me["address6"].as_str()),
        (Some(""), Some(ip1.as_str()))
    );

    // 3. Nothing crosses to the other segment, even routed into the interface: h1's agent
    // counts every probe as having no route.
    ip(
        &lab,
        &c1,
        &["route", "add", "fd00:51::/64", "dev", "sw-web"],
    );
    tcp_echo_server(&c3, &ip3, 5432);
    let no_route = |lab: &Lab| drops(member_at(&a1.status(lab), &ip1), "no_route");
    let before = no_route(&lab);
    for _ in 0..3 {
        assert!(!ping(&lab, &c1, &ip3, "1"), "ping6 crossed segments");
        assert!(
            tcp_connect(&c1, &ip3, 5432, Duration::from_secs(1)).is_none(),
            "TCP crossed segments"
        );
    }
    let after = no_route(&lab);
    assert!(
        after >= before + 6,
        "h1's agent counted {} no-route drops for 6 probes",
        after - before
    );

    // 4. An IPv4 network added later: every member gets its IPv4 address on the same
    // interface, in place (IPv6 keeps working throughout).
    ctl.sw(
        &lab,
        &["segment", "update", "web", "--cidr", "100.64.50.0/24"],
    );
    let has_v4 = |c: &str, a: &str| {
        ip(&lab, c, &["-4", "addr", "show", "dev", "sw-web"]).contains(&format!("inet {a}/32"))
    };
    let readdressed = wait_until(Duration::from_secs(20), || {
        has_v4(&c1, "100.64.50.1") && has_v4(&c2, "100.64.50.2")
    });
    assert!(
        readdressed.is_some(),
        "no IPv4 address after segment update\nh1:\n{}",
        std::fs::read_to_string(&a1.log).unwrap_or_default()
    );
    let reached = wait_until(Duration::from_secs(20), || {
        ping(&lab, &c1, "100.64.50.2", "1")
    });
    assert!(
        reached.is_some(),
        "no IPv4 ping c1 -> c2 after segment update"
    );
    assert!(
        ping(&lab, &c2, &ip1, "2"),
        "no ping6 c2 -> c1 after segment update"
    );
    let log1 = std::fs::read_to_string(&a1.log).unwrap_or_default();
    assert!(
        !log1.contains("remove member"),
        "the member was recreated:\n{log1}"
    );
}
