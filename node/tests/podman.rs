//! End-to-end with Debian's podman 4.3 (CNI backend, runc): real containers on two hosts'
//! agents through `segwire-node cni install` and the `segwire` plugin, following them
//! through run, stop, start and rm; and a `--network none` container attached by name.
//!
//! Needs root, podman, runc, busybox-static and containernetworking-plugins (skips with
//! a message otherwise).

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use segwire_testkit::podman::Podman;
use support::{time_until, TwoAgents, World};

const SEGMENT_CIDR: &str = "100.64.1.0/24";
/// The contract: a stopped container's member is gone within this time.
const DETACH_WITHIN: Duration = Duration::from_secs(3);

struct Setup {
    world: World,
    conf: std::path::PathBuf,
    podman: Podman,
    /// Network names of host A's and host B's agents.
    nets: [String; 2],
}

fn setup(letter: char, tag: &str) -> Option<Setup> {
    if !support::can_run("podman") {
        return None;
    }
    let podman = match Podman::new(tag) {
        Ok(Some(p)) => p,
        // CI installs podman: there a missing podman is a failure, not a skip.
        Ok(None) if std::env::var_os("CI").is_some() => {
            panic!("CI is set but podman cannot run here (see the reason above)")
        }
        Ok(None) => return None,
        Err(e) => panic!("podman is installed but could not be set up: {e}"),
    };
    let TwoAgents { world, conf, .. } = World::two_agents(letter, SEGMENT_CIDR);
    let plugin = world.bins.node.with_file_name("segwire-cni");
    let mut nets = Vec::new();
    for host in ["ha", "hb"] {
        let net = podman.net_name(host);
        let out = world.node(
            host,
            &[
                "cni",
                "install",
                "--segment",
                "web",
                "--label",
                &format!("host={host}"),
                "--name",
                &net,
                "--conf-dir",
                path(podman.cni_conf_dir()),
                "--bin-dir",
                path(podman.cni_bin_dir()),
                "--plugin",
                path(&plugin),
            ],
        );
        assert!(out.status.success(), "cni install: {out:?}");
        nets.push(net);
    }
    let nets = [nets[0].clone(), nets[1].clone()];
    Some(Setup {
        world,
        conf,
        podman,
        nets,
    })
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `name -> address` of every member the coordinator lists.
fn members(s: &Setup) -> Vec<(String, String)> {
    s.world
        .coordinator_members(&s.conf)
        .iter()
        .map(|m| {
            let f = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
            (f("name"), f("address"))
        })
        .collect()
}

fn member_address(s: &Setup, name: &str) -> Option<String> {
    members(s)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, a)| a)
}

fn agent_members(s: &Setup, host: &str) -> usize {
    s.world.member_count(host)
}

/// One ping from container `from` to `to`, waiting at most 1 s.
fn pings(s: &Setup, from: &str, to: &str) -> bool {
    s.podman
        .run(&["exec", from, "ping", "-c", "1", "-W", "1", to])
        .status
        .success()
}

fn timed(f: impl FnOnce() -> String) -> (String, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

/// `segwire-node` on host `short` with this podman environment's variables (so that
/// `--container` finds the test's containers).
fn node_with_podman(s: &Setup, short: &str, args: &[&str]) -> Output {
    let dir = s.world.path(&format!("state-{short}"));
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &s.world.ns(short)])
        .arg(&s.world.bins.node)
        .arg("--state-dir")
        .arg(&dir)
        .args(args);
    for (k, v) in s.podman.cmd().get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    cmd.output().expect("segwire-node")
}

#[test]
fn podman_containers_follow_their_lifecycle_on_a_segment() {
    let Some(s) = setup('p', "pa") else { return };
    let (c1, c2) = (
        format!("{}-c1", s.podman.prefix()),
        format!("{}-c2", s.podman.prefix()),
    );
    let (_, add1) = timed(|| s.podman.sleeper(&c1, &s.nets[0]));
    let (_, add2) = timed(|| s.podman.sleeper(&c2, &s.nets[1]));
    eprintln!("podman run -d (with CNI ADD): {add1:?}, {add2:?}");
    // The address podman reports is the coordinator's, and the container has one
    // interface (eth0) with one route.
    let ip1 = s.podman.ip(&c1, &s.nets[0]);
    let ip2 = s.podman.ip(&c2, &s.nets[1]);
    assert_eq!(
        member_address(&s, &c1).as_deref(),
        Some(ip1.as_str()),
        "{:?}",
        members(&s)
    );
    assert_eq!(member_address(&s, &c2).as_deref(), Some(ip2.as_str()));
    let routes = s.podman.ok(&["exec", &c1, "ip", "route"]);
    assert_eq!(routes.lines().count(), 1, "{routes}");
    assert!(
        routes.starts_with(SEGMENT_CIDR) && routes.contains("eth0"),
        "{routes}"
    );
    // ICMP and TCP across the two agents.
    let first = time_until(Duration::from_secs(10), || pings(&s, &c1, &ip2));
    assert!(first.is_some(), "c1 cannot ping c2:\n{}", s.world.logs());
    s.podman.ok(&[
        "exec",
        &c2,
        "sh",
        "-c",
        "mkdir -p /www && echo hello-segwire > /www/index.html && httpd -p 8080 -h /www",
    ]);
    let page = s.podman.ok(&[
        "exec",
        &c1,
        "wget",
        "-q",
        "-O",
        "-",
        &format!("http://{ip2}:8080/"),
    ]);
    assert_eq!(page, "hello-segwire");

    // What the member holds on host B: its `wg show` socket and its UDP port.
    let st = s.world.status("hb");
    let wg_socket = st["members"][0]["wg_socket"]
        .as_str()
        .expect("wg socket")
        .to_owned();
    let port = st["members"][0]["listen_port"].as_u64().expect("port");
    let socket_file = Path::new("/var/run/wireguard").join(format!("{wg_socket}.sock"));
    assert!(socket_file.exists(), "{}", socket_file.display());

    // stop: the member is gone from the agent and the coordinator within 3 s.
    let stop = Instant::now();
    s.podman.ok(&["stop", "-t", "0", &c2]);
    let gone = time_until(Duration::from_secs(10), || {
        agent_members(&s, "hb") == 0 && member_address(&s, &c2).is_none()
    })
    .map(|_| stop.elapsed());
    let gone =
        gone.unwrap_or_else(|| panic!("stopped container still a member:\n{}", s.world.logs()));
    eprintln!("podman stop -> member gone: {gone:?}");
    assert!(gone <= DETACH_WITHIN, "took {gone:?}");
    assert!(!pings(&s, &c1, &ip2));

    // start: the container is attached again (a new namespace; ADD) and reachable.
    let start = Instant::now();
    s.podman.ok(&["start", &c2]);
    let ip2b = s.podman.ip(&c2, &s.nets[1]);
    assert_eq!(member_address(&s, &c2).as_deref(), Some(ip2b.as_str()));
    let back = time_until(Duration::from_secs(10), || pings(&s, &c1, &ip2b))
        .map(|_| start.elapsed())
        .unwrap_or_else(|| panic!("restarted c2 not reachable:\n{}", s.world.logs()));
    eprintln!("podman start -> first ping answered: {back:?}");

    // rm: nothing is left behind.
    s.podman.ok(&["rm", "-f", &c2]);
    let clean = time_until(Duration::from_secs(10), || {
        agent_members(&s, "hb") == 0 && member_address(&s, &c2).is_none()
    });
    assert!(
        clean.is_some(),
        "podman rm left a member:\n{}",
        s.world.logs()
    );
    assert_eq!(agent_members(&s, "ha"), 1);
    assert!(
        !socket_file.exists(),
        "{} left behind",
        socket_file.display()
    );
    let udp = support::sh("ip", &["netns", "exec", &s.world.ns("hb"), "ss", "-Hlun"]);
    assert!(
        !udp.contains(&format!(":{port} ")),
        "UDP port {port} still bound on host B:\n{udp}"
    );
}

#[test]
fn a_container_without_network_is_attached_by_name_and_detached_when_it_stops() {
    let Some(s) = setup('q', "pb") else { return };
    let (c1, c3) = (
        format!("{}-c1", s.podman.prefix()),
        format!("{}-c3", s.podman.prefix()),
    );
    s.podman.sleeper(&c1, &s.nets[0]);
    s.podman.sleeper(&c3, "none");
    let out = node_with_podman(
        &s,
        "hb",
        &[
            "-o",
            "json",
            "attach",
            "--segment",
            "web",
            "--container",
            &c3,
        ],
    );
    assert!(
        out.status.success(),
        "attach --container: {out:?}\n{}",
        s.world.logs()
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("attach JSON");
    assert_eq!(
        v["name"],
        c3.as_str(),
        "the member is named after the container"
    );
    assert_eq!(v["interface"], "sw-web");
    let ip3 = v["address"].as_str().expect("address").to_owned();
    assert!(
        time_until(Duration::from_secs(10), || pings(&s, &c1, &ip3)).is_some(),
        "c1 cannot reach the attached c3:\n{}",
        s.world.logs()
    );
    // A stopped container cannot be attached, and says so.
    let stopped = format!("{}-c4", s.podman.prefix());
    s.podman.ok(&[
        "create",
        "--name",
        &stopped,
        "--network",
        "none",
        s.podman.image(),
        "sleep",
        "9",
    ]);
    let out = node_with_podman(
        &s,
        "hb",
        &["attach", "--segment", "web", "--container", &stopped],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not running"), "{err}");
    // Its process exits with the container: detached within 3 s.
    let stop = Instant::now();
    s.podman.ok(&["stop", "-t", "0", &c3]);
    let gone = time_until(Duration::from_secs(10), || {
        agent_members(&s, "hb") == 0 && member_address(&s, &c3).is_none()
    })
    .map(|_| stop.elapsed())
    .unwrap_or_else(|| panic!("c3 still attached:\n{}", s.world.logs()));
    eprintln!("podman stop (attached by name) -> member gone: {gone:?}");
    assert!(gone <= DETACH_WITHIN, "took {gone:?}");
}
