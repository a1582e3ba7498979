//! Dual-stack segments end to end, on an IPv4 underlay: a container on each of two hosts
//! sees both its addresses on its one interface (no link-local, no duplicate address
//! detection), one route per prefix, and reaches the other over IPv6 with ping6 and TCP;
//! a spoofed inner IPv6 source is dropped and reported; a tcp/5432 rule allows IPv6 5432
//! and nothing else.
//!
//! Needs root (skips with a message otherwise) and the built binaries.

mod support;

use std::net::{Ipv6Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use support::traffic::{tcp_connects, tcp_transfer};
use support::World;

const CIDRS: &str = "100.64.30.0/24,fd00:30::/64";

fn ping6(w: &World, from: &str, to: Ipv6Addr) -> bool {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            &w.ns(from),
            "ping",
            "-6",
            "-c",
            "3",
            "-i",
            "0.2",
        ])
        .args(["-W", "2", &to.to_string()])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn dual_stack_containers_talk_over_ipv6_on_an_ipv4_underlay() {
    if !support::can_run("dual_stack") {
        return;
    }
    let support::TwoAgents { world: w, conf, .. } = World::two_agents_in('6', "web", CIDRS);
    w.enable_ipv6("ca");
    w.enable_ipv6("cb");
    let a4 = w.attach_netns("ha", "ca");
    let b4 = w.attach_netns("hb", "cb");
    let (a6, b6) = (w.address6(&conf, a4), w.address6(&conf, b4));

    // One interface, both addresses, one route per prefix, nothing link-local.
    for (c, own) in [("ca", a6), ("cb", b6)] {
        assert_eq!(
            w.links(c),
            vec!["lo".to_owned(), "sw-web".to_owned()],
            "{c}"
        );
        let addrs = support::sh(
            "ip",
            &["-n", &w.ns(c), "-6", "-o", "addr", "show", "dev", "sw-web"],
        );
        assert!(addrs.contains(&format!("{own}/128")), "{c}: {addrs}");
        assert!(
            !addrs.contains("fe80"),
            "{c}: a link-local address: {addrs}"
        );
        assert!(
            !addrs.contains("tentative"),
            "{c}: duplicate address detection ran: {addrs}"
        );
        let routes = support::sh(
            "ip",
            &["-n", &w.ns(c), "-6", "route", "show", "table", "main"],
        );
        let routes: Vec<&str> = routes.lines().collect();
        assert_eq!(routes.len(), 1, "{c}: {routes:?}");
        assert!(
            routes[0].starts_with("fd00:30::/64 dev sw-web"),
            "{c}: {routes:?}"
        );
        let routes4 = support::sh(
            "ip",
            &["-n", &w.ns(c), "-4", "route", "show", "table", "main"],
        );
        assert!(
            routes4.starts_with("100.64.30.0/24 dev sw-web"),
            "{c}: {routes4}"
        );
    }

    // ping6 both ways (the first may wait for the handshake).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !ping6(&w, "ca", b6) {
        assert!(
            std::time::Instant::now() < deadline,
            "no ping6 ca -> cb\n{}",
            w.logs()
        );
    }
    assert!(ping6(&w, "cb", a6), "no ping6 cb -> ca\n{}", w.logs());

    // TCP over IPv6, checksummed, both ways; IPv4 still works next to it.
    for (from, to_ns, to) in [("ca", "cb", b6), ("cb", "ca", a6)] {
        let (took, same) = tcp_transfer(
            &w.ns(from),
            &w.ns(to_ns),
            SocketAddr::from((to, 7601)),
            4 << 20,
        );
        assert!(same, "checksum mismatch {from} -> {to_ns} over IPv6");
        eprintln!("TCP 4 MiB over IPv6 {from} -> {to_ns}: {took:.2?}");
    }
    let (_, same) = tcp_transfer(
        &w.ns("ca"),
        &w.ns("cb"),
        SocketAddr::from((b4, 7602)),
        1 << 20,
    );
    assert!(same, "IPv4 next to IPv6");

    // A spoofed inner IPv6 source goes nowhere and is reported as a `member.spoof`.
    let fake = "fd00:30::99";
    support::sh(
        "ip",
        &[
            "-n",
            &w.ns("ca"),
            "addr",
            "add",
            &format!("{fake}/128"),
            "dev",
            "sw-web",
            "nodad",
        ],
    );
    let out = w.try_exec(
        "ca",
        std::path::Path::new("ping"),
        &[
            "-6",
            "-c",
            "5",
            "-i",
            "0.2",
            "-W",
            "1",
            "-I",
            fake,
            &b6.to_string(),
        ],
    );
    assert!(
        !out.status.success(),
        "a ping from a spoofed IPv6 source was answered"
    );
    let found = support::time_until(Duration::from_secs(5), || {
        w.events(&conf, "member.spoof")
            .iter()
            .any(|e| e["data"]["source"] == fake)
    });
    assert!(found.is_some(), "no member.spoof for {fake}\n{}", w.logs());
    support::sh(
        "ip",
        &[
            "-n",
            &w.ns("ca"),
            "addr",
            "del",
            &format!("{fake}/128"),
            "dev",
            "sw-web",
        ],
    );

    // A tcp/5432 rule allows IPv6 5432 and nothing else.
    let file = w.path("pg.json");
    std::fs::write(
        &file,
        r#"{ "default": "deny", "rules": [
            { "name": "pg", "from": "*", "to": "*", "ports": ["tcp/5432"] } ] }"#,
    )
    .expect("policy file");
    w.cli(
        &conf,
        &[
            "policy",
            "set",
            "web",
            "--file",
            file.to_str().expect("utf-8"),
        ],
    );
    let wait = Duration::from_secs(2);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !tcp_connects(&w.ns("ca"), &w.ns("cb"), SocketAddr::from((b6, 5432)), wait) {
        assert!(
            std::time::Instant::now() < deadline,
            "tcp/5432 over IPv6 refused\n{}",
            w.logs()
        );
    }
    // 5432 worked under the segment's allow default too: wait (by the clock, not a number
    // of tries, which a loaded machine runs through before the policy arrives) until the
    // rest is dropped.
    let blocked = support::time_until(Duration::from_secs(20), || {
        !tcp_connects(&w.ns("ca"), &w.ns("cb"), SocketAddr::from((b6, 5433)), wait)
    });
    assert!(
        blocked.is_some(),
        "tcp/5433 over IPv6 still connects\n{}",
        w.logs()
    );
    assert!(!tcp_connects(
        &w.ns("ca"),
        &w.ns("cb"),
        SocketAddr::from((b6, 22)),
        wait
    ));
    assert!(!ping6(&w, "ca", b6), "ping6 passes a tcp/5432-only policy");
    assert!(tcp_connects(
        &w.ns("ca"),
        &w.ns("cb"),
        SocketAddr::from((b6, 5432)),
        wait
    ));
}
