//! Incidents end to end in network namespaces: the real coordinator, two agents and
//! containers whose only interface is the agent's TUN. A container that scans a peer is
//! one `member.scan` event and, with the policy's `"quarantine"`, is cut off from every
//! peer within seconds while the others keep their traffic; release and expiry restore
//! it; a container that spoofs another's address is a `member.spoof`; iperf3 at full speed
//! on an allowed port is no incident at all.
//!
//! Needs root, iproute2 (and iperf3, ping for their tests); skips with a message otherwise.

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::traffic::{tcp_scan, udp_reachable, Echo};
use support::{time_until, World};

const CIDR: &str = "100.64.9.0/24";
const ECHO: u16 = 7000;
/// Every kind of detection event.
const DETECTIONS: &[&str] = &[
    "member.scan",
    "member.spoof",
    "peer.handshake_failed",
    "member.denied_burst",
    "member.quarantined",
];

struct Setup {
    world: World,
    conf: PathBuf,
    /// Container A on host A: the one that misbehaves.
    a: Ipv4Addr,
    /// Container B on host B: the target.
    b: Ipv4Addr,
    /// Container C on host `c_host`: another member.
    c: Ipv4Addr,
}

/// Two agents, `policy` on segment `web`, containers A (host A), B (host B) and C.
fn setup(test: &str, letter: char, policy: &str, c_host: &str) -> Option<Setup> {
    if !support::can_run(test) {
        return None;
    }
    let support::TwoAgents {
        mut world, conf, ..
    } = World::two_agents(letter, CIDR);
    let file = world.path("policy.json");
    std::fs::write(&file, policy).expect("write policy");
    world.cli(
        &conf,
        &[
            "policy",
            "set",
            "web",
            "--file",
            file.to_str().expect("utf-8"),
        ],
    );
    world.add_container("cc");
    let a = world.attach_netns("ha", "ca");
    let b = world.attach_netns("hb", "cb");
    let c = world.attach_netns(c_host, "cc");
    Some(Setup {
        world,
        conf,
        a,
        b,
        c,
    })
}

fn echo_policy(quarantine: &str) -> String {
    format!(
        r#"{{ "default": "deny",
  "rules": [ {{ "name": "echo", "from": "*", "to": "*", "ports": ["udp/{ECHO}", "icmp"] }} ],
  "quarantine": {quarantine} }}"#
    )
}

impl Setup {
    fn name_of(&self, addr: Ipv4Addr) -> String {
        self.world
            .coordinator_members(&self.conf)
            .into_iter()
            .find(|m| m["address"] == addr.to_string())
            .and_then(|m| m["name"].as_str().map(str::to_owned))
            .expect("member listed")
    }

    fn member(&self, addr: Ipv4Addr) -> serde_json::Value {
        self.world
            .coordinator_members(&self.conf)
            .into_iter()
            .find(|m| m["address"] == addr.to_string())
            .expect("member listed")
    }

    fn reaches(&self, from: &str, to: Ipv4Addr, wait: Duration) -> bool {
        udp_reachable(&self.world.ns(from), SocketAddr::from((to, ECHO)), wait)
    }

    /// Scans 200 TCP ports of B from A; returns when the scan started and its thread.
    fn scan(&self) -> (Instant, std::thread::JoinHandle<usize>) {
        let start = Instant::now();
        let scan = tcp_scan(
            &self.world.ns("ca"),
            self.b,
            1..=200,
            Duration::from_millis(10),
        );
        (start, scan)
    }

    /// Waits (up to `limit`) until A can no longer reach B's echo: how long it took.
    fn cut_within(&self, limit: Duration) -> Option<Duration> {
        time_until(limit, || {
            !self.reaches("ca", self.b, Duration::from_millis(250))
        })
    }
}

#[test]
fn a_scan_is_one_event_and_quarantine_cuts_the_scanner_off_until_released() {
    let q = r#"{ "on": ["scan", "spoof"], "for": "10m" }"#;
    let Some(s) = setup("incidents", 'q', &echo_policy(q), "ha") else {
        return;
    };
    let w = &s.world;
    let _echo = Echo::start(&w.ns("cb"), ECHO);
    for from in ["ca", "cc"] {
        assert!(
            s.reaches(from, s.b, Duration::from_secs(30)),
            "{from} cannot reach B's allowed port\n{}",
            w.logs()
        );
    }
    let scanner = s.name_of(s.a);

    let (start, scan) = s.scan();
    let cut = s.cut_within(Duration::from_secs(5));
    let cut = cut.unwrap_or_else(|| {
        panic!(
            "the scanner still reaches its allowed port 5 s into the scan\n{}",
            w.logs()
        )
    });
    let scanned = time_until(
        Duration::from_secs(5) - cut.min(Duration::from_secs(5)),
        || !w.events(&s.conf, "member.scan").is_empty(),
    );
    eprintln!(
        "scan-to-quarantine: the scanner lost its allowed port {} ms after the scan started",
        cut.as_millis()
    );
    assert!(scanned.is_some() || !w.events(&s.conf, "member.scan").is_empty());
    assert!(start.elapsed() < Duration::from_secs(6));
    assert_eq!(
        scan.join().expect("scan thread"),
        0,
        "the policy denied every port"
    );
    assert!(
        !s.reaches("ca", s.b, Duration::from_secs(1)),
        "it stays cut off"
    );
    // The other member of the scanner's own node keeps its traffic.
    assert!(
        s.reaches("cc", s.b, Duration::from_secs(2)),
        "C lost B\n{}",
        w.logs()
    );

    // One event for 200 probes, naming the member, the peer and the reporting node.
    std::thread::sleep(Duration::from_secs(1));
    let scans = w.events(&s.conf, "member.scan");
    assert_eq!(scans.len(), 1, "{scans:?}");
    let d = &scans[0]["data"];
    assert_eq!(d["member"], scanner.as_str());
    assert_eq!(d["segment"], "web");
    assert_eq!(d["reported_by"], "host-a");
    assert_eq!(d["count"], 16);
    assert_eq!(d["peer"], s.name_of(s.b).as_str());
    let quarantined = w.events(&s.conf, "member.quarantined");
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert_eq!(quarantined[0]["data"]["actor"], "automated:quarantine");

    // Attached, address kept, shown as quarantined by the CLI and the agent; no peer has it.
    let listed = s.member(s.a);
    assert!(listed["quarantined_until"].is_string(), "{listed}");
    let status = w.status("ha");
    let own = status["members"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["address"] == s.a.to_string()).cloned())
        .expect("the scanner is still attached");
    assert!(own["quarantined_until"].is_string(), "{own}");
    assert_eq!(own["peers"].as_array().map(Vec::len), Some(0), "{own}");
    let text = w.node("ha", &["status"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("quarantined until"));
    let b_status = w.status("hb");
    let b_peers: Vec<String> = b_status["members"][0]["peers"]
        .as_array()
        .expect("peers")
        .iter()
        .map(|p| p["name"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(
        !b_peers.contains(&scanner),
        "B still has the scanner: {b_peers:?}"
    );

    // Release restores it.
    let released = Instant::now();
    w.cli(&s.conf, &["member", "release", "web", &scanner]);
    assert!(
        s.reaches("ca", s.b, Duration::from_secs(10)),
        "release did not restore the scanner\n{}",
        w.logs()
    );
    eprintln!("release-to-restore: {} ms", released.elapsed().as_millis());
    assert!(s.member(s.a)["quarantined_until"].is_null());
    assert_eq!(w.events(&s.conf, "member.released").len(), 1);
}

#[test]
fn a_quarantine_expires_by_itself() {
    let q = r#"{ "on": ["scan"], "for": "3s" }"#;
    let Some(s) = setup("incidents", 'x', &echo_policy(q), "hb") else {
        return;
    };
    let w = &s.world;
    let _echo = Echo::start(&w.ns("cb"), ECHO);
    assert!(
        s.reaches("ca", s.b, Duration::from_secs(30)),
        "{}",
        w.logs()
    );
    let (_, scan) = s.scan();
    let cut = s.cut_within(Duration::from_secs(5));
    assert!(cut.is_some(), "not quarantined\n{}", w.logs());
    scan.join().expect("scan thread");
    let back = time_until(Duration::from_secs(15), || {
        s.reaches("ca", s.b, Duration::from_millis(250))
    });
    let back = back.unwrap_or_else(|| panic!("the quarantine did not expire\n{}", w.logs()));
    eprintln!(
        "quarantine for 3s: traffic back {} ms after the cut",
        back.as_millis()
    );
    let event = time_until(Duration::from_secs(5), || {
        !w.events(&s.conf, "member.released").is_empty()
    });
    assert!(event.is_some(), "no member.released\n{}", w.logs());
    let released = w.events(&s.conf, "member.released");
    assert_eq!(released.len(), 1, "{released:?}");
    assert_eq!(released[0]["data"]["actor"], "automated:expiry");
    assert!(s.member(s.a)["quarantined_until"].is_null());
}

#[test]
fn a_container_spoofing_another_members_address_is_a_member_spoof() {
    use segwire_testkit::skip::{require, Need};
    if !require("incidents", &[Need::Program("ping")]) {
        return;
    }
    let Some(s) = setup(
        "incidents",
        's',
        &echo_policy(r#"{ "on": ["scan"], "for": "1m" }"#),
        "hb",
    ) else {
        return;
    };
    let w = &s.world;
    assert!(support::sh(
        "ip",
        &[
            "netns",
            "exec",
            &w.ns("ca"),
            "ping",
            "-c",
            "1",
            "-W",
            "5",
            &s.b.to_string()
        ]
    )
    .contains("1 received"));
    // A claims C's address on its interface and pings B from it.
    let ns = w.ns("ca");
    support::sh(
        "ip",
        &[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{}/32", s.c),
            "dev",
            "sw-web",
        ],
    );
    let out = w.try_exec(
        "ca",
        Path::new("ping"),
        &[
            "-c",
            "5",
            "-i",
            "0.2",
            "-W",
            "1",
            "-I",
            &s.c.to_string(),
            &s.b.to_string(),
        ],
    );
    assert!(!out.status.success(), "a spoofed ping was answered");
    let found = time_until(Duration::from_secs(5), || {
        !w.events(&s.conf, "member.spoof").is_empty()
    });
    assert!(found.is_some(), "no member.spoof\n{}", w.logs());
    let spoofs = w.events(&s.conf, "member.spoof");
    assert_eq!(spoofs.len(), 1, "{spoofs:?}");
    let d = &spoofs[0]["data"];
    assert_eq!(d["member"], s.name_of(s.a).as_str());
    assert_eq!(d["direction"], "sent");
    assert_eq!(d["source"], s.c.to_string());
    assert_eq!(d["reported_by"], "host-a");
    // `spoof` is not in this policy's `on`: an alert, no quarantine.
    assert!(w.events(&s.conf, "member.quarantined").is_empty());
}

#[test]
fn iperf3_at_full_speed_on_an_allowed_port_is_no_incident() {
    use segwire_testkit::skip::{require, Need};
    if !require("incidents", &[Need::Program("iperf3")]) {
        return;
    }
    let policy = r#"{ "default": "deny",
  "rules": [ { "name": "iperf", "from": "*", "to": "*", "ports": ["tcp/5201"] } ],
  "quarantine": { "on": ["scan", "spoof"], "for": "10m" } }"#;
    let Some(mut s) = setup("incidents", 'i', policy, "hb") else {
        return;
    };
    let server = s
        .world
        .spawn("iperf3-server", "cb", Path::new("iperf3"), &["-s", "-1"]);
    s.world.procs.push(server);
    std::thread::sleep(Duration::from_millis(500));
    let b = s.b.to_string();
    let mut out = None;
    for _ in 0..20 {
        let o = s
            .world
            .try_exec("ca", Path::new("iperf3"), &["-c", &b, "-t", "5", "-J"]);
        if o.status.success() {
            out = Some(o);
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = out.unwrap_or_else(|| panic!("iperf3 never ran\n{}", s.world.logs()));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("iperf3 JSON");
    let bps = report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0);
    eprintln!(
        "iperf3 A -> B over the segment, 5 s: {:.0} Mbit/s",
        bps / 1e6
    );
    assert!(bps > 0.0);
    std::thread::sleep(Duration::from_secs(2));
    for kind in DETECTIONS {
        let found = s.world.events(&s.conf, kind);
        assert!(found.is_empty(), "{kind}: {found:?}");
    }
    assert!(s.member(s.a)["quarantined_until"].is_null());
}
