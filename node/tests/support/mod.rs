//! A test world in network namespaces: a bridge, a coordinator host, two agent hosts and
//! two containers, all named with a per-run prefix and deleted on drop (even on failure).

#![allow(dead_code)]

pub mod traffic;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// Underlay addresses.
pub const CTL_IP: &str = "198.18.0.1";
/// Host A's underlay address.
pub const HOST_A_IP: &str = "198.18.0.2";
/// Host B's underlay address.
pub const HOST_B_IP: &str = "198.18.0.3";

/// Whether a namespace test can run (root, iproute2): a visible skip otherwise, and a
/// failure under CI (`segwire_testkit::skip::require`).
pub fn can_run(test: &str) -> bool {
    use segwire_testkit::skip::{require, Need};
    require(test, &[Need::Root, Need::Program("ip")])
}

/// The binaries under test.
pub struct Bins {
    pub node: PathBuf,
    pub coordinator: PathBuf,
    pub cli: PathBuf,
}

impl Bins {
    pub fn find() -> Bins {
        let node = PathBuf::from(env!("CARGO_BIN_EXE_segwire-node"));
        // SEGWIRE_BIN_DIR points at other builds of the coordinator and CLI (e.g. debug
        // ones while this test runs a release agent).
        let dir = std::env::var_os("SEGWIRE_BIN_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| node.parent().expect("bin dir").to_owned());
        let bins = Bins {
            coordinator: dir.join("segwire-coordinator"),
            cli: dir.join("segwire"),
            node,
        };
        for b in [&bins.coordinator, &bins.cli] {
            assert!(
                b.exists(),
                "{} is missing: build it first with `cargo build -p segwire-coordinator -p segwire-cli`",
                b.display()
            );
        }
        bins
    }
}

/// Runs a command and panics with its output if it fails.
pub fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    check(program, args, &out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn check(program: &str, args: &[&str], out: &Output) {
    assert!(
        out.status.success(),
        "`{program} {}` failed ({}): {}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A child process that is killed (SIGKILL) when dropped.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (by number via `kill`).
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .stderr(Stdio::null())
            .status();
    }

    /// Waits up to `timeout` for the process to exit; its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.code().unwrap_or(-1));
            }
            sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The namespaces of one test run.
pub struct World {
    pub prefix: String,
    pub tmp: tempfile::TempDir,
    pub bins: Bins,
    namespaces: Vec<String>,
    pub procs: Vec<Proc>,
    /// admin.conf of the coordinator, once started.
    pub admin_conf: Option<PathBuf>,
}

impl World {
    /// Builds `net` (bridge), `ctl`, `ha`, `hb` (hosts on 198.18.0.0/24) and `ca`, `cb`
    /// (containers with only a loopback).
    pub fn build(letter: char) -> World {
        let prefix = format!("sw{}{letter}", std::process::id() % 10000);
        let mut world = World {
            prefix: prefix.clone(),
            tmp: tempfile::tempdir().expect("tempdir"),
            bins: Bins::find(),
            namespaces: Vec::new(),
            procs: Vec::new(),
            admin_conf: None,
        };
        for ns in ["net", "ctl", "ha", "hb", "ca", "cb"] {
            let name = world.ns(ns);
            let _ = Command::new("ip").args(["netns", "del", &name]).output();
            sh("ip", &["netns", "add", &name]);
            world.namespaces.push(name.clone());
            sh("ip", &["-n", &name, "link", "set", "lo", "up"]);
        }
        let net = world.ns("net");
        let bridge = format!("{prefix}br");
        sh(
            "ip",
            &["-n", &net, "link", "add", &bridge, "type", "bridge"],
        );
        sh("ip", &["-n", &net, "link", "set", &bridge, "up"]);
        for (i, (host, ip)) in [("ctl", CTL_IP), ("ha", HOST_A_IP), ("hb", HOST_B_IP)]
            .into_iter()
            .enumerate()
        {
            let ns = world.ns(host);
            let (inner, outer) = (format!("{prefix}{i}h"), format!("{prefix}{i}b"));
            sh(
                "ip",
                &[
                    "-n", &ns, "link", "add", &inner, "type", "veth", "peer", "name", &outer,
                    "netns", &net,
                ],
            );
            sh(
                "ip",
                &["-n", &net, "link", "set", &outer, "master", &bridge, "up"],
            );
            sh(
                "ip",
                &["-n", &ns, "addr", "add", &format!("{ip}/24"), "dev", &inner],
            );
            sh("ip", &["-n", &ns, "link", "set", &inner, "up"]);
        }
        world
    }

    /// The full name of namespace `short` (`net`, `ctl`, `ha`, `hb`, `ca`, `cb`).
    pub fn ns(&self, short: &str) -> String {
        format!("{}-{short}", self.prefix)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// The IPv6 address of the member at `v4`, as the coordinator lists it.
    pub fn address6(&self, conf: &Path, v4: std::net::Ipv4Addr) -> std::net::Ipv6Addr {
        self.coordinator_members(conf)
            .iter()
            .find(|m| m["address"] == v4.to_string())
            .and_then(|m| m["address6"].as_str())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("member {v4} has no IPv6 address"))
    }

    /// IPv6 on inside namespace `short` (it is off in some kernels' new namespaces); the
    /// agent does not change a workload's sysctls.
    pub fn enable_ipv6(&self, short: &str) {
        for key in ["all", "default"] {
            let set = format!("echo 0 > /proc/sys/net/ipv6/conf/{key}/disable_ipv6");
            sh("ip", &["netns", "exec", &self.ns(short), "sh", "-c", &set]);
        }
    }

    /// Starts `program args` inside namespace `short`, logging to a file.
    pub fn spawn(&self, name: &str, short: &str, program: &Path, args: &[&str]) -> Proc {
        let log = self.path(&format!("{name}.log"));
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(short)])
            .arg(program)
            .args(args)
            // SEGWIRE_TEST_RUST_LOG turns up the processes' logs when debugging a test.
            .env(
                "RUST_LOG",
                std::env::var("SEGWIRE_TEST_RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .expect("spawn");
        Proc {
            name: name.to_owned(),
            child,
            log,
        }
    }

    /// Runs `program args` inside namespace `short` and returns stdout (panics on failure).
    pub fn exec(&self, short: &str, program: &Path, args: &[&str]) -> String {
        let ns = self.ns(short);
        let program = program.to_str().expect("utf-8 path");
        let mut all = vec!["netns", "exec", &ns, program];
        all.extend_from_slice(args);
        sh("ip", &all)
    }

    /// Like [`World::exec`] but returns the output whatever the exit status.
    pub fn try_exec(&self, short: &str, program: &Path, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns(short)])
            .arg(program)
            .args(args)
            .output()
            .expect("run")
    }

    /// Starts the coordinator in `ctl` and waits until the CLI can use it.
    pub fn start_coordinator(&mut self) -> PathBuf {
        self.start_coordinator_with(&[])
    }

    /// Like [`World::start_coordinator`], with extra `serve` arguments.
    pub fn start_coordinator_with(&mut self, extra: &[&str]) -> PathBuf {
        let data = self.path("coordinator");
        let data_s = data.to_str().expect("utf-8").to_owned();
        let listen = format!("{CTL_IP}:7443");
        let mut args = vec![
            "serve",
            "--listen",
            &listen,
            "--data-dir",
            &data_s,
            "--advertise",
            CTL_IP,
        ];
        args.extend_from_slice(extra);
        let p = self.spawn("coordinator", "ctl", &self.bins.coordinator.clone(), &args);
        self.procs.push(p);
        let conf = data.join("admin.conf");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if conf.exists() {
                let out = self.try_exec(
                    "ctl",
                    &self.bins.cli,
                    &["--config", conf.to_str().expect("utf-8"), "segment", "list"],
                );
                if out.status.success() {
                    self.admin_conf = Some(conf.clone());
                    return conf;
                }
            }
            assert!(
                Instant::now() < deadline,
                "coordinator did not start:\n{}",
                self.logs()
            );
            sleep(Duration::from_millis(200));
        }
    }

    /// Runs the admin CLI in `ctl`.
    pub fn cli(&self, conf: &Path, args: &[&str]) -> String {
        let mut all = vec!["--config", conf.to_str().expect("utf-8")];
        all.extend_from_slice(args);
        self.exec("ctl", &self.bins.cli, &all)
    }

    /// `segwire-node --state-dir DIR args...` inside host `short`.
    pub fn node(&self, short: &str, args: &[&str]) -> Output {
        let dir = self.path(&format!("state-{short}"));
        let mut all = vec!["--state-dir", dir.to_str().expect("utf-8")];
        all.extend_from_slice(args);
        self.try_exec(short, &self.bins.node, &all)
    }

    /// Starts `segwire-node run` in host `short` and waits for its control socket.
    pub fn start_agent(&mut self, short: &str) -> usize {
        let dir = self.path(&format!("state-{short}"));
        let p = self.spawn(
            &format!("agent-{short}"),
            short,
            &self.bins.node.clone(),
            &["--state-dir", dir.to_str().expect("utf-8"), "run"],
        );
        self.procs.push(p);
        let index = self.procs.len() - 1;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.node(short, &["status"]).status.success() {
                return index;
            }
            assert!(
                Instant::now() < deadline,
                "agent {short} did not start:\n{}",
                self.logs()
            );
            sleep(Duration::from_millis(100));
        }
    }

    /// Every process log, for failure messages.
    pub fn logs(&self) -> String {
        self.procs
            .iter()
            .map(|p| format!("----- {} -----\n{}", p.name, p.log_text()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A world with the coordinator running, segment `web` on `cidr`, and both hosts joined
/// (as `host-a`, `host-b`) with their agents running.
pub struct TwoAgents {
    /// The namespaces and processes.
    pub world: World,
    /// The coordinator's admin.conf.
    pub conf: PathBuf,
    /// Indices in `world.procs` of host A's and host B's agents.
    pub agents: [usize; 2],
}

impl World {
    /// Builds the world, starts the coordinator, creates segment `web` on `cidr` and joins
    /// and starts both agents.
    pub fn two_agents(letter: char, cidr: &str) -> TwoAgents {
        World::two_agents_in(letter, "web", cidr)
    }

    /// Like [`World::two_agents`] with segment `segment` instead of `web`.
    pub fn two_agents_in(letter: char, segment: &str, cidr: &str) -> TwoAgents {
        World::two_agents_with(letter, segment, cidr, &[])
    }

    /// Like [`World::two_agents_in`], with extra `serve` arguments for the coordinator.
    pub fn two_agents_with(
        letter: char,
        segment: &str,
        cidr: &str,
        coordinator_args: &[&str],
    ) -> TwoAgents {
        let mut world = World::build(letter);
        let conf = world.start_coordinator_with(coordinator_args);
        world.cli(&conf, &["segment", "create", segment, "--cidr", cidr]);
        let token = world
            .cli(
                &conf,
                &["token", "create", "--segment", segment, "--uses", "2"],
            )
            .trim()
            .to_owned();
        for (host, name) in [("ha", "host-a"), ("hb", "host-b")] {
            let out = world.node(host, &["join", &token, "--name", name]);
            assert!(out.status.success(), "join on {host}: {out:?}");
        }
        let a = world.start_agent("ha");
        let b = world.start_agent("hb");
        TwoAgents {
            world,
            conf,
            agents: [a, b],
        }
    }

    /// `segwire-node status -o json` on host `short`.
    pub fn status(&self, short: &str) -> serde_json::Value {
        let out = self.node(short, &["status", "-o", "json"]);
        assert!(out.status.success(), "status: {out:?}");
        serde_json::from_slice(&out.stdout).expect("status JSON")
    }

    /// How many members the agent on host `short` has.
    pub fn member_count(&self, short: &str) -> usize {
        self.status(short)["members"].as_array().map_or(0, Vec::len)
    }

    /// Every member the coordinator lists (`segwire member list -o json`).
    pub fn coordinator_members(&self, conf: &Path) -> Vec<serde_json::Value> {
        let text = self.cli(conf, &["member", "list", "-o", "json"]);
        serde_json::from_str::<serde_json::Value>(&text)
            .expect("member list JSON")
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl World {
    /// Attaches namespace `container` to segment `web` through host `short`'s agent;
    /// returns the member's overlay address.
    pub fn attach_netns(&self, short: &str, container: &str) -> std::net::Ipv4Addr {
        let ns = self.ns(container);
        let out = self.node(
            short,
            &["-o", "json", "attach", "--segment", "web", "--netns", &ns],
        );
        assert!(
            out.status.success(),
            "attach {container} on {short} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("attach JSON");
        assert_eq!(v["interface"], "sw-web");
        assert_eq!(v["up"], true, "{v}");
        v["address"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .expect("address")
    }

    /// Adds a container namespace `short` (only a loopback), deleted with the world.
    pub fn add_container(&mut self, short: &str) -> String {
        let name = self.ns(short);
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        sh("ip", &["netns", "add", &name]);
        self.namespaces.push(name.clone());
        sh("ip", &["-n", &name, "link", "set", "lo", "up"]);
        name
    }

    /// The coordinator's events of `kind` (`segwire events -o json`).
    pub fn events(&self, conf: &Path, kind: &str) -> Vec<serde_json::Value> {
        let text = self.cli(conf, &["events", "-o", "json"]);
        serde_json::from_str::<Vec<serde_json::Value>>(&text)
            .expect("events JSON")
            .into_iter()
            .filter(|e| e["kind"] == kind)
            .collect()
    }

    /// Interface names in namespace `container`.
    pub fn links(&self, container: &str) -> Vec<String> {
        let out = sh("ip", &["-n", &self.ns(container), "-o", "link", "show"]);
        out.lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_owned())
            .collect()
    }
}

/// Polls `done` every 50 ms for up to `limit`; how long it took, or `None`.
pub fn time_until(limit: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return Some(start.elapsed());
        }
        sleep(Duration::from_millis(50));
    }
    None
}

impl Drop for World {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("SEGWIRE_TEST_LOGS").is_some() {
            eprintln!("{}", self.logs());
        }
        for p in &mut self.procs {
            if matches!(p.child.try_wait(), Ok(None)) {
                p.signal("-TERM");
            }
        }
        for p in &mut self.procs {
            let _ = p.wait_exit(Duration::from_secs(5));
        }
        self.procs.clear();
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}
