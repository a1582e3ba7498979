//! The real timers together: two agents in network namespaces carry steady UDP traffic
//! both ways (iperf3, 250 datagrams a second each way) for five minutes, across at least
//! two of WireGuard's 120 s rekeys. Loss is counted by iperf3 and asserted; the rekeys are
//! shown by each agent's per-peer handshake counter in `segwire-node status`.
//!
//! Its own test binary, ignored by a plain `cargo test`: `tests/run.sh` starts it
//! alongside the rest of the suite so that its five minutes overlap the other tests,
//! `cargo test -p segwire-node --test soak -- --ignored` runs it alone. Needs root, `ip`
//! and `iperf3` (skips with a message otherwise, fails under CI).

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::traffic::echo_rtts;
use support::traffic::Echo;
use support::World;

const SEGMENT_CIDR: &str = "100.64.3.0/24";
const SOAK_SECS: u64 = 300;
/// Largest share of datagrams a direction may lose over the whole soak, in percent.
const MAX_LOSS_PERCENT: f64 = 0.5;

fn handshakes(world: &World, host: &str) -> u64 {
    world.status(host)["members"][0]["peers"][0]["handshakes"]
        .as_u64()
        .unwrap_or(0)
}

/// `iperf3 -c` from namespace `from` to `to:port`: UDP, 2 Mbit/s in 1000-byte datagrams.
fn iperf3_client(ns: String, to: Ipv4Addr, port: u16) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let out = Command::new("ip")
            .args([
                "netns", "exec", &ns, "iperf3", "-u", "-b", "2M", "-l", "1000",
            ])
            .args(["-t", &SOAK_SECS.to_string(), "-J", "-c", &to.to_string()])
            .args(["-p", &port.to_string()])
            .output()
            .expect("run iperf3");
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
}

/// (datagrams sent, datagrams lost) from an iperf3 UDP client's JSON report.
fn udp_loss(report: &str) -> (u64, u64) {
    let v: serde_json::Value = serde_json::from_str(report)
        .unwrap_or_else(|e| panic!("iperf3 report is not JSON ({e}):\n{report}"));
    let sum = &v["end"]["sum"];
    match (sum["packets"].as_u64(), sum["lost_packets"].as_u64()) {
        (Some(p), Some(l)) => (p, l),
        _ => panic!("no UDP totals in the iperf3 report:\n{report}"),
    }
}

#[test]
#[ignore = "soak: 5 minutes; tests/run.sh runs it alongside the rest of the suite"]
fn five_minutes_of_traffic_across_two_rekeys() {
    use segwire_testkit::skip::{require, Need};
    let needs = [Need::Root, Need::Program("ip"), Need::Program("iperf3")];
    if !require("five_minutes_of_traffic_across_two_rekeys", &needs) {
        return;
    }
    let support::TwoAgents { mut world, .. } = World::two_agents('s', SEGMENT_CIDR);
    let addr_a = world.attach_netns("ha", "ca");
    let addr_b = world.attach_netns("hb", "cb");
    {
        let _echo = Echo::start(&world.ns("cb"), 7000);
        echo_rtts(
            &world.ns("ca"),
            SocketAddr::from((addr_b, 7000)),
            Duration::from_secs(30),
            5,
        )
        .unwrap_or_else(|| panic!("no path between the containers\n{}", world.logs()));
    }
    for (name, ns, addr, port) in [
        ("iperf3-b", "cb", addr_b, "5201"),
        ("iperf3-a", "ca", addr_a, "5202"),
    ] {
        let server = world.spawn(
            name,
            ns,
            Path::new("/usr/bin/env"),
            &[
                "iperf3",
                "-s",
                "-1",
                "--forceflush",
                "-B",
                &addr.to_string(),
                "-p",
                port,
            ],
        );
        world.procs.push(server);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while !world
        .procs
        .iter()
        .filter(|p| p.name.starts_with("iperf3"))
        .all(|p| p.log_text().contains("Server listening"))
    {
        assert!(
            Instant::now() < deadline,
            "the iperf3 servers did not start\n{}",
            world.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = [handshakes(&world, "ha"), handshakes(&world, "hb")];
    let start = Instant::now();
    let ab = iperf3_client(world.ns("ca"), addr_b, 5201);
    let ba = iperf3_client(world.ns("cb"), addr_a, 5202);
    // Where the rekeys fall: the handshake counters sampled every 10 s.
    let mut seen = before;
    let mut rekeys = Vec::new();
    while !(ab.is_finished() && ba.is_finished()) {
        std::thread::sleep(Duration::from_secs(10));
        let now = [handshakes(&world, "ha"), handshakes(&world, "hb")];
        if now != seen {
            rekeys.push((start.elapsed().as_secs(), now));
            seen = now;
        }
        assert!(
            start.elapsed() < Duration::from_secs(SOAK_SECS + 60),
            "iperf3 ran past the soak\n{}",
            world.logs()
        );
    }
    let after = [handshakes(&world, "ha"), handshakes(&world, "hb")];
    eprintln!(
        "soak {SOAK_SECS} s: handshakes (host a, host b) {before:?} -> {after:?}, changes seen at (s, counts) {rekeys:?}"
    );
    let ab = udp_loss(&ab.join().expect("iperf3 a -> b"));
    let ba = udp_loss(&ba.join().expect("iperf3 b -> a"));
    eprintln!(
        "soak {SOAK_SECS} s: a -> b lost {} of {} datagrams, b -> a lost {} of {}",
        ab.1, ab.0, ba.1, ba.0
    );
    for (dir, (sent, lost)) in [("a -> b", ab), ("b -> a", ba)] {
        // 250 datagrams a second for the whole soak (a few percent slack for pacing).
        assert!(
            sent >= 250 * SOAK_SECS * 95 / 100,
            "{dir}: only {sent} datagrams sent"
        );
        let percent = lost as f64 * 100.0 / sent as f64;
        assert!(
            percent <= MAX_LOSS_PERCENT,
            "{dir}: lost {lost} of {sent} datagrams ({percent:.3}%)\n{}",
            world.logs()
        );
    }
    for (host, b, a) in [("a", before[0], after[0]), ("b", before[1], after[1])] {
        assert!(
            a >= b + 2,
            "host {host}: {b} -> {a} handshakes; two rekeys in {SOAK_SECS} s expected"
        );
    }
}
