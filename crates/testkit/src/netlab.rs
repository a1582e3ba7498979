//! Test hosts and containers as network namespaces.
//!
//! A [`Lab`] owns every namespace it makes; all names start with a prefix unique to the
//! run (`sw<pid><tag>`), and dropping the lab deletes exactly those namespaces (which
//! removes their links) and kills the processes it started, even when a test fails.
//! Hosts sit on one bridge (in its own namespace) on the underlay 198.18.0.0/24, or, made
//! with [`Lab::host6`], on the IPv6 underlay 2001:2::/64 only.

use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// True when the tests can build namespaces (root and iproute2); otherwise the test is
/// skipped visibly, or fails under CI ([`crate::skip::require`]).
pub fn privileged(test: &str) -> bool {
    use crate::skip::{require, Need};
    require(test, &[Need::Root, Need::Program("ip")])
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A set of namespaces and processes that is torn down on drop.
pub struct Lab {
    /// Prefix of every name this lab creates.
    pub prefix: String,
    namespaces: Vec<String>,
    children: Vec<Child>,
    bridge: Option<String>,
    hosts: u32,
}

/// Runs a command and panics with its output when it fails.
pub fn sh(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ip(args: &[&str]) -> Output {
    sh(Command::new("ip").args(args))
}

impl Lab {
    /// A new, empty lab; `tag` (a letter or two) tells labs of one test run apart.
    pub fn new(tag: &str) -> Lab {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        Lab {
            prefix: format!("sw{}{}{n}", std::process::id() % 100_000, tag),
            namespaces: Vec::new(),
            children: Vec::new(),
            bridge: None,
            hosts: 0,
        }
    }

    /// Full name of a namespace of this lab.
    pub fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    fn add_ns(&mut self, name: &str, ipv6: bool) -> String {
        let full = self.ns(name);
        ip(&["netns", "add", &full]);
        self.namespaces.push(full.clone());
        ip(&["-n", &full, "link", "set", "lo", "up"]);
        // IPv4 only unless asked: no IPv6 autoconfiguration chatter on the underlay or in
        // containers. With IPv6 on, still no router advertisements taken or sent for.
        let mut keys = vec![format!("disable_ipv6={}", u8::from(!ipv6))];
        if ipv6 {
            keys.extend(["accept_ra=0".into(), "router_solicitations=0".into()]);
        }
        for key in ["all", "default"] {
            for k in &keys {
                sh(Command::new("ip")
                    .args(["netns", "exec", &full, "sysctl", "-qw"])
                    .arg(format!("net.ipv6.conf.{key}.{k}")));
            }
        }
        full
    }

    fn bridge(&mut self) -> String {
        if let Some(b) = &self.bridge {
            return b.clone();
        }
        let ns = self.add_ns("br", false);
        ip(&["-n", &ns, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &ns, "link", "set", "br0", "up"]);
        self.bridge = Some(ns.clone());
        ns
    }

    /// A host namespace on the underlay bridge with `addr` (e.g. 198.18.0.2) on `eth0`.
    pub fn host(&mut self, name: &str, addr: &str) -> String {
        self.host_with(name, &format!("{addr}/24"), false)
    }

    /// A host namespace on the underlay bridge whose only address is the IPv6 `addr`
    /// (e.g. 2001:2::2, in the /64) on `eth0`, besides the kernel's own fe80:: one: an
    /// IPv6-only underlay. Its address skips duplicate address detection, so it works at
    /// once.
    pub fn host6(&mut self, name: &str, addr: &str) -> String {
        self.host_with(name, &format!("{addr}/64"), true)
    }

    /// A dual-stack host namespace on the underlay bridge: the IPv4 `addr4` (in a /24)
    /// and the IPv6 `addr6` (in the /64, without duplicate address detection) on `eth0`.
    pub fn host46(&mut self, name: &str, addr4: &str, addr6: &str) -> String {
        let ns = self.host_with(name, &format!("{addr6}/64"), true);
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr4}/24"),
            "dev",
            "eth0",
        ]);
        ns
    }

    fn host_with(&mut self, name: &str, addr: &str, ipv6: bool) -> String {
        let br = self.bridge();
        let ns = self.add_ns(name, ipv6);
        self.hosts += 1;
        let port = format!("p{}", self.hosts);
        ip(&[
            "-n", &br, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]);
        ip(&["-n", &br, "link", "set", &port, "master", "br0", "up"]);
        let mut add = vec!["-n", &ns, "addr", "add", addr, "dev", "eth0"];
        if ipv6 {
            // eth0 was made in the bridge's namespace (IPv6 off there): turn it on here.
            sh(Command::new("ip")
                .args(["netns", "exec", &ns, "sysctl", "-qw"])
                .arg("net.ipv6.conf.eth0.disable_ipv6=0"));
            add.push("nodad");
        }
        ip(&add);
        ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        ns
    }

    /// A container namespace with nothing but loopback (the agent gives it its interfaces).
    pub fn container(&mut self, name: &str) -> String {
        self.add_ns(name, false)
    }

    /// A container namespace with IPv6 enabled (for dual-stack and IPv6-only segments).
    pub fn container6(&mut self, name: &str) -> String {
        self.add_ns(name, true)
    }

    /// A command that runs inside namespace `ns`.
    pub fn cmd(&self, ns: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]);
        c
    }

    /// Starts a long-running process that the lab kills on drop.
    pub fn spawn(&mut self, mut cmd: Command, log: &std::path::Path) -> u32 {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open log");
        let child = cmd
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// Sends SIGTERM to a process started with [`Lab::spawn`] and waits for it (SIGKILL after 10 s).
    pub fn stop(&mut self, pid: u32) {
        if let Some(i) = self.children.iter().position(|c| c.id() == pid) {
            let mut child = self.children.remove(i);
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills a process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self, pid: u32) {
        if let Some(i) = self.children.iter().position(|c| c.id() == pid) {
            let mut child = self.children.remove(i);
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Names of the non-loopback links in `ns`.
    pub fn links(&self, ns: &str) -> Vec<String> {
        let out = ip(&["-n", ns, "-o", "link", "show"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                l.split(':')
                    .nth(1)
                    .map(|s| s.trim().split('@').next().unwrap_or("").to_string())
            })
            .filter(|n| n != "lo")
            .collect()
    }

    /// IPv4 routes in `ns`, one per line as `ip route` prints them.
    pub fn routes(&self, ns: &str) -> Vec<String> {
        let out = ip(&["-n", ns, "-4", "route", "show"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        for c in &mut self.children {
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}
