//! End-to-end tests in network namespaces: the real coordinator, two hosts running
//! `segwire-node`, and a container on each whose only interface is the agent's TUN.
//!
//! Needs root (skips with a message otherwise) and the coordinator and CLI binaries:
//! `cargo build -p segwire-coordinator -p segwire-cli` first.

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use support::traffic::{echo_losses, echo_outage, echo_rtts, tcp_transfer, Echo};
use support::World;

const SEGMENT_CIDR: &str = "100.64.1.0/24";
const TRANSFER_BYTES: usize = 50 * 1024 * 1024;

struct Setup {
    world: World,
    agent_a: usize,
    addr_a: Ipv4Addr,
    addr_b: Ipv4Addr,
}

fn setup(letter: char) -> Option<Setup> {
    if !support::can_run("namespaces") {
        return None;
    }
    let support::TwoAgents { world, agents, .. } = World::two_agents(letter, SEGMENT_CIDR);
    let agent_a = agents[0];
    let addr_a = world.attach_netns("ha", "ca");
    let addr_b = world.attach_netns("hb", "cb");
    Some(Setup {
        world,
        agent_a,
        addr_a,
        addr_b,
    })
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

fn ping(world: &World, from: &str, to: Ipv4Addr) -> Option<String> {
    if Command::new("ping").arg("-V").output().is_err() {
        eprintln!("ping is not installed; relying on the UDP echo");
        return None;
    }
    let out = support::sh(
        "ip",
        &[
            "netns",
            "exec",
            &world.ns(from),
            "ping",
            "-c",
            "5",
            "-i",
            "0.2",
            "-W",
            "2",
            &to.to_string(),
        ],
    );
    out.lines().find(|l| l.contains("rtt")).map(str::to_owned)
}

fn summary(rtts: &[Duration]) -> String {
    let mut v: Vec<f64> = rtts.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    v.sort_by(f64::total_cmp);
    format!(
        "min {:.3} ms, median {:.3} ms, max {:.3} ms over {}",
        v[0],
        v[v.len() / 2],
        v[v.len() - 1],
        v.len()
    )
}

fn echo(world: &World, from: &str, to_ns: &str, to: Ipv4Addr, wait: Duration) -> Vec<Duration> {
    let _server = Echo::start(&world.ns(to_ns), 7000);
    echo_rtts(&world.ns(from), SocketAddr::from((to, 7000)), wait, 20).unwrap_or_else(|| {
        panic!(
            "no UDP echo from {to} ({to_ns}) to {from} within {wait:?}\n{}",
            world.logs()
        )
    })
}

#[test]
fn containers_on_two_hosts_talk_over_the_segment() {
    let Some(s) = setup('a') else { return };
    let mut w = s.world;

    // The container has exactly one interface besides loopback, and one route.
    for c in ["ca", "cb"] {
        let names = w.links(c);
        assert_eq!(names, vec!["lo".to_owned(), "sw-web".to_owned()], "{c}");
        let routes = support::sh(
            "ip",
            &["-n", &w.ns(c), "-4", "route", "show", "table", "main"],
        );
        let routes: Vec<&str> = routes.lines().collect();
        assert_eq!(routes.len(), 1, "{c}: {routes:?}");
        assert!(
            routes[0].starts_with("100.64.1.0/24 dev sw-web"),
            "{c}: {routes:?}"
        );
    }

    let ab = echo(&w, "ca", "cb", s.addr_b, Duration::from_secs(30));
    let ba = echo(&w, "cb", "ca", s.addr_a, Duration::from_secs(30));
    eprintln!("UDP echo cA->cB: {}", summary(&ab));
    eprintln!("UDP echo cB->cA: {}", summary(&ba));
    if let Some(rtt) = ping(&w, "ca", s.addr_b) {
        eprintln!("ping cA->cB: {rtt}");
    }
    if let Some(rtt) = ping(&w, "cb", s.addr_a) {
        eprintln!("ping cB->cA: {rtt}");
    }

    for (from, to_ns, to) in [("ca", "cb", s.addr_b), ("cb", "ca", s.addr_a)] {
        let (took, same) = tcp_transfer(
            &w.ns(from),
            &w.ns(to_ns),
            SocketAddr::from((to, 7001)),
            TRANSFER_BYTES,
        );
        assert!(same, "checksum mismatch {from} -> {to_ns}");
        let mbit = TRANSFER_BYTES as f64 * 8.0 / took.as_secs_f64() / 1e6;
        eprintln!("TCP 50 MiB {from} -> {to_ns}: {took:.2?} ({mbit:.0} Mbit/s), checksum ok");
    }

    // Host A had its map when cB joined: that change reached it as a delta.
    let log = w.procs[s.agent_a].log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("new netmap") && l.contains("delta=true")),
        "host A applied no delta:\n{log}"
    );

    let st = status_json(&w, "ha");
    let member = &st["members"][0];
    assert_eq!(member["up"], true, "{st}");
    assert_eq!(member["interface"], "sw-web");
    let peer = &member["peers"][0];
    assert_eq!(peer["name"].as_str().map(|n| n != "?"), Some(true), "{st}");
    assert!(peer["last_handshake_secs"].as_u64().is_some(), "{st}");
    assert!(
        peer["rx_bytes"].as_u64().unwrap_or(0) > TRANSFER_BYTES as u64,
        "{st}"
    );
    let table = w.node("ha", &["status"]);
    eprintln!("{}", String::from_utf8_lossy(&table.stdout));

    // A second agent on the same state directory refuses to start.
    let second = w.node("ha", &["run"]);
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("already running"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );

    // A segment key rotation keeps traffic flowing, and the switch to the new key (version
    // 2 on both agents and a new handshake each) is seen while the echoes run, so the loss
    // counted covers it.
    let conf = w.admin_conf.clone().expect("admin.conf");
    let keys = |h: &str| {
        let m = &status_json(&w, h)["members"][0];
        (
            m["psk_version"].as_u64(),
            m["peers"][0]["handshakes"].as_u64().unwrap_or(0),
        )
    };
    let before = [keys("ha").1, keys("hb").1];
    {
        let _server = Echo::start(&w.ns("cb"), 7002);
        let (ns, dst) = (w.ns("ca"), SocketAddr::from((s.addr_b, 7002)));
        let flood =
            std::thread::spawn(move || echo_losses(&ns, dst, 400, Duration::from_millis(20)));
        std::thread::sleep(Duration::from_secs(1));
        w.cli(&conf, &["segment", "rotate-key", "web"]);
        let mut switched = false;
        while !flood.is_finished() {
            let (ka, ha) = keys("ha");
            let (kb, hb) = keys("hb");
            if ka == Some(2) && kb == Some(2) && ha > before[0] && hb > before[1] {
                switched = !flood.is_finished();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let lost = flood.join().expect("flood");
        eprintln!("UDP echoes lost during key rotation: {lost} of 400 (every 20 ms)");
        assert!(
            switched,
            "the agents did not switch to key version 2 with a new handshake while the echoes ran\n{}",
            w.logs()
        );
        assert!(lost <= 20, "lost {lost} of 400 echoes during key rotation");
    }
    echo(&w, "ca", "cb", s.addr_b, Duration::from_secs(10));

    // Revoking host B: host A drops the peer within seconds; host B's agent learns it
    // on its next long-poll (at most 30 s) and tears down cB's interface.
    w.cli(&conf, &["node", "revoke", "host-b"]);
    wait_until(
        &w,
        Duration::from_secs(5),
        "host A drops host B's member",
        || {
            status_json(&w, "ha")["members"][0]["peers"]
                .as_array()
                .is_some_and(Vec::is_empty)
        },
    );
    wait_until(
        &w,
        Duration::from_secs(45),
        "host B tears down cB's interface",
        || w.links("cb") == vec!["lo".to_owned()],
    );
    let st_b = status_json(&w, "hb");
    assert_eq!(st_b["revoked"], true, "{st_b}");

    // SIGTERM removes the interface and the socket, and exits 0.
    let agent = &mut w.procs[s.agent_a];
    agent.signal("-TERM");
    assert_eq!(
        agent.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        agent.log_text()
    );
    assert_eq!(w.links("ca"), vec!["lo".to_owned()]);
    assert!(!w.path("state-ha").join("agent.sock").exists());
}

#[test]
fn path_comes_back_from_saved_state_without_the_coordinator() {
    let Some(s) = setup('b') else { return };
    let mut w = s.world;
    echo(&w, "ca", "cb", s.addr_b, Duration::from_secs(30));

    let coordinator = w
        .procs
        .iter_mut()
        .find(|p| p.name == "coordinator")
        .expect("coordinator");
    coordinator.signal("-KILL");
    assert!(coordinator.wait_exit(Duration::from_secs(5)).is_some());

    let agent = &mut w.procs[s.agent_a];
    agent.signal("-KILL");
    assert!(agent.wait_exit(Duration::from_secs(5)).is_some());

    // With the agent down, the CLI says how to start it.
    let out = w.node("ha", &["status"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("segwire-node run") && err.lines().count() == 1,
        "{err}"
    );

    w.start_agent("ha");
    let ab = echo(&w, "ca", "cb", s.addr_b, Duration::from_secs(30));
    let ba = echo(&w, "cb", "ca", s.addr_a, Duration::from_secs(60));
    eprintln!(
        "after restart without coordinator: cA->cB {}; cB->cA {}",
        summary(&ab),
        summary(&ba)
    );
    let st = status_json(&w, "ha");
    assert_eq!(st["coordinator_reachable"], false, "{st}");
    assert_eq!(st["members"][0]["up"], true, "{st}");
    assert_eq!(w.links("ca"), vec!["lo".to_owned(), "sw-web".to_owned()]);

    // A detach needs the coordinator: a clear error, and the member stays.
    let ns = w.ns("ca");
    let out = w.node("ha", &["detach", "--segment", "web", "--netns", &ns]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("coordinator"), "{err}");
    assert_eq!(status_json(&w, "ha")["members"][0]["up"], true);
}

#[test]
fn traffic_follows_a_host_whose_underlay_address_changes() {
    let Some(s) = setup('d') else { return };
    let w = s.world;
    echo(&w, "ca", "cb", s.addr_b, Duration::from_secs(30));
    echo(&w, "cb", "ca", s.addr_a, Duration::from_secs(30));
    let port = status_json(&w, "ha")["members"][0]["listen_port"]
        .as_u64()
        .expect("listen port");
    let ns_ha = w.ns("ha");
    // Host A's underlay link (World::build names it `<prefix><index>h`; A is index 1).
    let link = format!("{}1h", w.prefix);
    const MOVED_TO: &str = "198.18.0.4";

    // Echoes from cA every 20 ms; after 1 s host A's address changes from .2 to .4. Host
    // B's agent learns the new endpoint from A's authenticated datagrams and answers there.
    let _server = Echo::start(&w.ns("cb"), 7003);
    let start = std::time::Instant::now();
    let mut moved = false;
    let outage = echo_outage(
        &w.ns("ca"),
        SocketAddr::from((s.addr_b, 7003)),
        Duration::from_millis(20),
        || {
            if !moved && start.elapsed() > Duration::from_secs(1) {
                let old = format!("{}/24", support::HOST_A_IP);
                support::sh("ip", &["-n", &ns_ha, "addr", "del", &old, "dev", &link]);
                let new = format!("{MOVED_TO}/24");
                support::sh("ip", &["-n", &ns_ha, "addr", "add", &new, "dev", &link]);
                moved = true;
            }
            start.elapsed() > Duration::from_secs(6)
        },
    );
    eprintln!(
        "roaming: {} of {} echoes answered, longest stretch without an answer {:?}",
        outage.answered, outage.sent, outage.longest
    );
    let last = outage
        .answered_at
        .last()
        .copied()
        .expect("some echo answered");
    assert!(
        last > start + Duration::from_secs(5),
        "no echo answered after the move (last answer {:?} after the start)\n{}",
        last - start,
        w.logs()
    );
    assert!(
        outage.longest < Duration::from_secs(2),
        "traffic stopped for {:?} when host A moved\n{}",
        outage.longest,
        w.logs()
    );
    // B now sends to A's new address on its own initiative too.
    let endpoint = format!("{MOVED_TO}:{port}");
    wait_until(
        &w,
        Duration::from_secs(5),
        "host B's peer endpoint is A's new address",
        || status_json(&w, "hb")["members"][0]["peers"][0]["endpoint"] == endpoint.as_str(),
    );
    echo(&w, "cb", "ca", s.addr_a, Duration::from_secs(5));
}

/// The CPUs thread `tid` of process `pid` may run on (`Cpus_allowed_list`).
fn allowed_cpus(pid: u32, tid: &str) -> Vec<usize> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).unwrap_or_default();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap_or("")
        .trim();
    list.split(',')
        .filter(|r| !r.is_empty())
        .flat_map(|r| {
            let (a, b) = r.split_once('-').unwrap_or((r, r));
            let (a, b): (usize, usize) = (a.parse().expect("cpu"), b.parse().expect("cpu"));
            a..=b
        })
        .collect()
}

/// The id of the agent's one data-path thread (`dp-…`).
fn data_path_thread(pid: u32) -> Option<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
        .find_map(|t| {
            let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
            comm.starts_with("dp-")
                .then(|| t.file_name().to_string_lossy().into_owned())
        })
}

#[test]
fn a_light_data_path_stays_home_and_a_busy_one_is_freed() {
    let Some(s) = setup('h') else { return };
    let pid = s.world.procs[s.agent_a].pid();
    let all = allowed_cpus(pid, &pid.to_string());
    if all.len() < 2 {
        eprintln!("skipping: one CPU only, so there is no home to keep");
        return;
    }
    let tid = data_path_thread(pid).expect("the member's data-path thread");
    // Idle (the handshake is long done): within a second or so the thread is home, on the
    // first CPU the agent may use.
    let home = vec![all[0]];
    wait_until(
        &s.world,
        Duration::from_secs(10),
        "the idle data path is home",
        || allowed_cpus(pid, &tid) == home,
    );
    // Busy: a bulk transfer frees it while it runs.
    let (ca, cb) = (s.world.ns("ca"), s.world.ns("cb"));
    let to = SocketAddr::from((s.addr_b, 5202));
    let transfer = std::thread::spawn(move || tcp_transfer(&ca, &cb, to, TRANSFER_BYTES));
    let mut freed = false;
    while !transfer.is_finished() {
        freed |= allowed_cpus(pid, &tid) == all;
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_, intact) = transfer.join().expect("transfer");
    assert!(intact, "the transfer arrived intact");
    assert!(
        freed,
        "the busy data path was freed to every CPU\n{}",
        s.world.logs()
    );
    // Light again: home again.
    wait_until(
        &s.world,
        Duration::from_secs(10),
        "the data path is home again",
        || allowed_cpus(pid, &tid) == home,
    );
}

fn wait_until(w: &World, timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}\n{}",
            w.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Throughput figures with iperf3 (1 and 4 streams, both directions). Not a pass/fail
/// test: run it on purpose, ideally with a release build:
/// `cargo test --release -p segwire-node --test namespaces -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark; needs iperf3"]
fn iperf3_throughput() {
    let Some(s) = setup('c') else { return };
    let w = s.world;
    echo(&w, "ca", "cb", s.addr_b, Duration::from_secs(30));
    echo(&w, "cb", "ca", s.addr_a, Duration::from_secs(30));
    // Experiment knob: a longer TUN queue in the containers (default 500).
    if let Ok(qlen) = std::env::var("SEGWIRE_BENCH_TXQLEN") {
        for c in ["ca", "cb"] {
            support::sh(
                "ip",
                &["-n", &w.ns(c), "link", "set", "sw-web", "txqueuelen", &qlen],
            );
        }
    }
    for (from, to_ns, to) in [("ca", "cb", s.addr_b), ("cb", "ca", s.addr_a)] {
        for streams in ["1", "4"] {
            let mut server = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &w.ns(to_ns),
                    "iperf3",
                    "-s",
                    "-1",
                    "-B",
                    &to.to_string(),
                ])
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("iperf3 server");
            std::thread::sleep(Duration::from_millis(500));
            let out = support::sh(
                "ip",
                &[
                    "netns",
                    "exec",
                    &w.ns(from),
                    "iperf3",
                    "-c",
                    &to.to_string(),
                    "-t",
                    "5",
                    "-P",
                    streams,
                    "-J",
                ],
            );
            let _ = server.wait();
            let v: serde_json::Value = serde_json::from_str(&out).expect("iperf3 JSON");
            let bps = v["end"]["sum_received"]["bits_per_second"]
                .as_f64()
                .unwrap_or(0.0);
            let retr = v["end"]["sum_sent"]["retransmits"].as_u64().unwrap_or(0);
            eprintln!(
                "iperf3 {from} -> {to_ns}, {streams} stream(s): {:.0} Mbit/s, {retr} retransmits",
                bps / 1e6
            );
        }
    }
    for c in ["ca", "cb"] {
        let link = support::sh("ip", &["-n", &w.ns(c), "-s", "link", "show", "sw-web"]);
        eprintln!("{c}: {link}");
    }
    for h in ["ha", "hb"] {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &w.ns(h),
                "nstat",
                "-az",
                "UdpRcvbufErrors",
                "UdpSndbufErrors",
            ])
            .output();
        if let Ok(out) = out {
            eprintln!("{h}: {}", String::from_utf8_lossy(&out.stdout));
        }
        let st = w.node(h, &["status"]);
        eprintln!("{}", String::from_utf8_lossy(&st.stdout));
    }
}
