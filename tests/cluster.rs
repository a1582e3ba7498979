//! The whole product in network namespaces: a coordinator, three hosts on a bridge,
//! containers in two segments and one in both, real agents, real TUN devices, real
//! WireGuard. One scenario, run in order, because each step builds on the last.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use segwire_testkit::netlab::privileged;
use segwire_testkit::{bin, Lab};
use support::{figure, ping, tcp_transfer, udp_marker, wait_until, Agent};

struct Ctl {
    ns: String,
    conf: std::path::PathBuf,
}

impl Ctl {
    fn sw(&self, lab: &Lab, args: &[&str]) -> String {
        let out = lab
            .cmd(&self.ns, bin("segwire").to_str().unwrap())
            .arg("--config")
            .arg(&self.conf)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "segwire {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

fn start_coordinator(
    lab: &mut Lab,
    ns: &str,
    data: &std::path::Path,
    log: &std::path::Path,
) -> u32 {
    let mut c = lab.cmd(ns, bin("segwire-coordinator").to_str().unwrap());
    c.args([
        "serve",
        "--listen",
        "198.18.0.1:7443",
        "--advertise",
        "198.18.0.1",
        "--data-dir",
    ])
    .arg(data)
    .env("RUST_LOG", "info");
    lab.spawn(c, log)
}

fn loss_percent(out: &str) -> f64 {
    out.lines()
        .find(|l| l.contains("packet loss"))
        .and_then(|l| l.split(',').find(|p| p.contains("packet loss")))
        .and_then(|p| p.trim().split('%').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(100.0)
}

#[test]
fn cluster_end_to_end() {
    if !privileged("cluster_end_to_end") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut lab = Lab::new("e");
    let ctl_ns = lab.host("ctl", "198.18.0.1");
    let h1 = lab.host("h1", "198.18.0.11");
    let h2 = lab.host("h2", "198.18.0.12");
    let h3 = lab.host("h3", "198.18.0.13");
    let web1 = lab.container("web1");
    let web2 = lab.container("web2");
    let db1 = lab.container("db1");
    let dual = lab.container("dual");

    let coord_data = d.join("coord");
    let coord_log = d.join("coordinator.log");
    let mut coord = start_coordinator(&mut lab, &ctl_ns, &coord_data, &coord_log);
    let conf = coord_data.join("admin.conf");
    let ctl = Ctl {
        ns: ctl_ns.clone(),
        conf: conf.clone(),
    };
    let ready = wait_until(Duration::from_secs(30), || {
        conf.exists()
            && lab
                .cmd(&ctl_ns, bin("segwire").to_str().unwrap())
                .arg("--config")
                .arg(&conf)
                .args(["segment", "list"])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
    });
    assert!(
        ready.is_some(),
        "coordinator did not start:\n{}",
        std::fs::read_to_string(&coord_log).unwrap_or_default()
    );
    ctl.sw(
        &lab,
        &["segment", "create", "web", "--cidr", "100.64.1.0/24"],
    );
    ctl.sw(
        &lab,
        &["segment", "create", "db", "--cidr", "100.64.2.0/24"],
    );
    let t_web = ctl.sw(&lab, &["token", "create", "--segment", "web"]);
    let t_both = ctl.sw(
        &lab,
        &["token", "create", "--segment", "web", "--segment", "db"],
    );
    let t_db = ctl.sw(&lab, &["token", "create", "--segment", "db"]);

    let mut a1 = Agent::new(&h1, d);
    let mut a2 = Agent::new(&h2, d);
    let mut a3 = Agent::new(&h3, d);
    a1.join(&lab, &t_web, "h1");
    a2.join(&lab, &t_both, "h2");
    a3.join(&lab, &t_db, "h3");
    a1.start(&mut lab);
    a2.start(&mut lab);
    a3.start(&mut lab);
    let ip_web1 = a1.attach(&lab, "web", &web1, "app=web");
    let ip_web2 = a2.attach(&lab, "web", &web2, "app=web");
    let ip_dual_web = a2.attach(&lab, "web", &dual, "app=api");
    let ip_dual_db = a2.attach(&lab, "db", &dual, "app=api");
    let ip_db1 = a3.attach(&lab, "db", &db1, "app=db");

    // 1. Same-segment containers reach each other across hosts: ICMP and TCP.
    let first = wait_until(Duration::from_secs(15), || ping(&lab, &web1, &ip_web2, "1"));
    assert!(
        first.is_some(),
        "web1 cannot reach web2:\n{}",
        std::fs::read_to_string(&a1.log).unwrap_or_default()
    );
    assert!(ping(&lab, &web2, &ip_web1, "1"));
    assert!(wait_until(Duration::from_secs(10), || ping(&lab, &dual, &ip_db1, "1")).is_some());
    let t = Instant::now();
    assert!(
        tcp_transfer(&web1, &web2, &ip_web2, 50 << 20),
        "50 MB web1 -> web2 corrupted"
    );
    figure(
        "tcp 50MB web1->web2 seconds",
        format!("{:.2}", t.elapsed().as_secs_f64()),
    );
    assert!(
        tcp_transfer(&web2, &web1, &ip_web1, 50 << 20),
        "50 MB web2 -> web1 corrupted"
    );

    // 2. Segments are isolated; the dual container reaches both.
    assert!(!ping(&lab, &web1, &ip_db1, "1"), "web1 must not reach db1");
    assert!(!ping(&lab, &db1, &ip_web1, "1"), "db1 must not reach web1");
    assert!(ping(&lab, &dual, &ip_web1, "1") && ping(&lab, &dual, &ip_db1, "1"));
    assert_eq!(lab.links(&web1), ["sw-web"]);
    let mut dual_links = lab.links(&dual);
    dual_links.sort();
    assert_eq!(dual_links, ["sw-db", "sw-web"]);
    let routes = lab.routes(&web1);
    assert_eq!(routes.len(), 1, "{routes:?}");
    assert!(
        routes[0].starts_with("100.64.1.0/24 dev sw-web"),
        "{routes:?}"
    );
    let _ = (&ip_dual_web, &ip_dual_db);

    // 3. The underlay carries only WireGuard UDP and the control plane's TLS.
    let pcap = d.join("bridge.pcap");
    let mut dump = lab
        .cmd(&lab.ns("br"), "tcpdump")
        .args(["-i", "br0", "-U", "-n", "-s", "0", "-w"])
        .arg(&pcap)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Send only once tcpdump says it listens (a fixed head start loses the capture on a
    // loaded machine).
    let stderr = dump.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("listening on") {
                let _ = tx.send(());
            }
        }
    });
    assert!(
        rx.recv_timeout(Duration::from_secs(20)).is_ok(),
        "tcpdump did not start listening"
    );
    let marker = format!("SEGWIRE-MARKER-{:016x}", rand::random::<u64>());
    assert!(
        udp_marker(&web1, &web2, &ip_web2, marker.as_bytes()),
        "marker datagram lost"
    );
    assert!(
        udp_marker(&dual, &db1, &ip_db1, marker.as_bytes()),
        "marker datagram lost"
    );
    // The markers' WireGuard datagrams are in the file once it holds more than a header.
    let written = wait_until(Duration::from_secs(10), || {
        std::fs::metadata(&pcap).is_ok_and(|m| m.len() > 200)
    });
    assert!(written.is_some(), "capture is empty");
    std::thread::sleep(Duration::from_millis(200));
    let _ = Command::new("kill")
        .args(["-INT", &dump.id().to_string()])
        .status();
    let _ = dump.wait();
    let captured = std::fs::read(&pcap).unwrap();
    assert!(captured.len() > 200, "capture is empty");
    assert!(
        !captured
            .windows(marker.len())
            .any(|w| w == marker.as_bytes()),
        "the marker crossed the underlay in clear text"
    );
    let other = Command::new("tcpdump")
        .args(["-r"])
        .arg(&pcap)
        .args(["-n", "ip and not udp and not (tcp port 7443)"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&other.stdout).trim().is_empty(),
        "unexpected underlay traffic:\n{}",
        String::from_utf8_lossy(&other.stdout)
    );

    // 4. A segment key rotation keeps traffic flowing.
    let flood = lab
        .cmd(&web1, "ping")
        .args(["-i", "0.02", "-c", "250", "-W", "1", &ip_web2])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    ctl.sw(&lab, &["segment", "rotate-key", "web"]);
    let out = flood.wait_with_output().unwrap();
    let loss = loss_percent(&String::from_utf8_lossy(&out.stdout));
    figure(
        "ping loss during key rotation (250 pings at 20 ms)",
        format!("{loss}%"),
    );
    assert!(loss <= 5.0, "lost {loss}% of pings during rotation");
    let rotated = wait_until(Duration::from_secs(5), || {
        a1.status(&lab)["members"][0]["psk_version"] == 2
    });
    assert!(rotated.is_some(), "h1 did not move to key version 2");
    assert!(ping(&lab, &web1, &ip_web2, "1"));

    // 5. Join to first packet for a new host.
    let h4 = lab.host("h4", "198.18.0.14");
    let web3 = lab.container("web3");
    let t_new = ctl.sw(&lab, &["token", "create", "--segment", "web"]);
    let mut a4 = Agent::new(&h4, d);
    let t0 = Instant::now();
    a4.join(&lab, &t_new, "h4");
    let t_started = Instant::now();
    a4.start(&mut lab);
    let ip_web3 = a4.attach(&lab, "web", &web3, "app=web");
    let reached = wait_until(Duration::from_secs(10), || {
        ping(&lab, &web3, &ip_web1, "0.2")
    });
    assert!(reached.is_some(), "new host never reached web1");
    figure(
        "join to first ping reply (ms)",
        format!("{}", t0.elapsed().as_millis()),
    );
    figure(
        "agent start to first ping reply (ms)",
        format!("{}", t_started.elapsed().as_millis()),
    );
    assert!(ping(&lab, &web1, &ip_web3, "1"));

    // 6. Without the coordinator, traffic flows and a restarted agent restores its members.
    lab.stop(coord);
    assert!(
        ping(&lab, &web1, &ip_web2, "1"),
        "traffic stopped with the coordinator"
    );
    a1.stop(&mut lab);
    a1.start(&mut lab);
    let back = wait_until(Duration::from_secs(15), || {
        ping(&lab, &web1, &ip_web2, "0.5")
    });
    assert!(
        back.is_some(),
        "restarted agent did not restore web1 from saved state:\n{}",
        std::fs::read_to_string(&a1.log).unwrap_or_default()
    );
    figure(
        "agent restart (coordinator down) to traffic (ms)",
        format!("{}", back.unwrap().as_millis()),
    );
    coord = start_coordinator(&mut lab, &ctl_ns, &coord_data, &coord_log);
    let again = wait_until(Duration::from_secs(30), || {
        lab.cmd(&ctl_ns, bin("segwire").to_str().unwrap())
            .arg("--config")
            .arg(&conf)
            .args(["member", "list", "-o", "json"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    });
    assert!(again.is_some());
    let members: serde_json::Value =
        serde_json::from_str(&ctl.sw(&lab, &["member", "list", "-o", "json"])).unwrap();
    assert_eq!(members.as_array().unwrap().len(), 6, "{members}");

    // 7. A revoked node's members become unreachable within 2 s and leave peers' status.
    assert!(ping(&lab, &dual, &ip_db1, "1"));
    ctl.sw(&lab, &["node", "revoke", "h3"]);
    let t_rev = Instant::now();
    let gone = wait_until(Duration::from_secs(2), || {
        !a2.peer_names(&lab, "db").iter().any(|n| n.contains("db1"))
    });
    assert!(
        gone.is_some(),
        "h2 still lists db1 as a peer 2 s after revocation: {:?}",
        a2.peer_names(&lab, "db")
    );
    let unreachable = wait_until(
        Duration::from_secs(2).saturating_sub(t_rev.elapsed()),
        || !ping(&lab, &dual, &ip_db1, "0.2"),
    );
    assert!(
        unreachable.is_some(),
        "db1 still reachable after revocation"
    );
    figure(
        "revocation to peer removal (ms)",
        format!("{}", t_rev.elapsed().as_millis()),
    );

    a4.stop(&mut lab);
    for a in [&mut a1, &mut a2, &mut a3] {
        a.stop(&mut lab);
    }
    lab.stop(coord);
    // Agents remove their interfaces when they stop.
    assert!(
        lab.links(&web1).is_empty(),
        "sw-web left behind: {:?}",
        lab.links(&web1)
    );
}
