//! Helpers of the end-to-end suites: traffic inside namespaces, agents, status.
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use segwire_netdev::Netns;
use segwire_testkit::{bin, Lab};
use sha2::{Digest, Sha256};

pub mod capture;
pub mod ctl;

/// `addr` (an IPv4 or IPv6 literal) and `port`.
pub fn sock(addr: &str, port: u16) -> SocketAddr {
    SocketAddr::new(
        addr.parse()
            .unwrap_or_else(|e| panic!("{addr:?} is not an IP: {e}")),
        port,
    )
}

/// The unspecified address of `ip`'s family.
fn unspecified_like(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// Runs `f` on a thread inside namespace `ns`; sockets it opens stay there.
pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    Netns::Named(ns.to_string()).run_blocking(f).unwrap()
}

/// One ping from `ns` to `addr` with a timeout in seconds.
pub fn ping(lab: &Lab, ns: &str, addr: &str, wait_secs: &str) -> bool {
    lab.cmd(ns, "ping")
        .args(["-c1", "-W", wait_secs, "-q", addr])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Polls `f` every 50 ms until it is true or `within` passes; returns the time it took.
pub fn wait_until(within: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < within {
        if f() {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Sends `bytes` of pseudo-random data over TCP from `from_ns` to `to_ns` at `to_addr`;
/// the receiver hashes what it got and sends the digest back; returns whether they match.
pub fn tcp_transfer(from_ns: &str, to_ns: &str, to_addr: &str, bytes: usize) -> bool {
    let addr = sock(to_addr, 5201);
    let listener = in_ns(to_ns, move || TcpListener::bind(addr).unwrap());
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        s.write_all(&h.finalize()).unwrap();
    });
    let mut stream = in_ns(from_ns, move || {
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap()
    });
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut h = Sha256::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut left = bytes;
    let mut x: u64 = 0x1234_5678;
    while left > 0 {
        for b in chunk.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let n = left.min(chunk.len());
        stream.write_all(&chunk[..n]).unwrap();
        h.update(&chunk[..n]);
        left -= n;
    }
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut digest = Vec::new();
    stream.read_to_end(&mut digest).unwrap();
    server.join().unwrap();
    digest == h.finalize().as_slice()
}

/// Sends one UDP datagram carrying `payload` from `from_ns` to `to_addr:port` in `to_ns`
/// and returns whether it arrived.
pub fn udp_marker(from_ns: &str, to_ns: &str, to_addr: &str, payload: &[u8]) -> bool {
    let addr = sock(to_addr, 5301);
    let rx = in_ns(to_ns, move || UdpSocket::bind(addr).unwrap());
    rx.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let any = SocketAddr::new(unspecified_like(addr.ip()), 0);
    let tx = in_ns(from_ns, move || UdpSocket::bind(any).unwrap());
    tx.send_to(payload, addr).unwrap();
    let mut buf = [0u8; 2048];
    matches!(rx.recv_from(&mut buf), Ok((n, _)) if &buf[..n] == payload)
}

/// A node agent on a lab host.
pub struct Agent {
    pub host: String,
    pub state: PathBuf,
    pub log: PathBuf,
    pub pid: Option<u32>,
}

impl Agent {
    pub fn new(host: &str, dir: &Path) -> Agent {
        Agent {
            host: host.to_string(),
            state: dir.join(format!("{host}-state")),
            log: dir.join(format!("{host}.log")),
            pid: None,
        }
    }

    /// `segwire-node <args>` inside the host namespace.
    pub fn cmd(&self, lab: &Lab, args: &[&str]) -> Command {
        let mut c = lab.cmd(&self.host, bin("segwire-node").to_str().unwrap());
        c.arg("--state-dir").arg(&self.state).args(args);
        c
    }

    pub fn run_ok(&self, lab: &Lab, args: &[&str]) -> String {
        let out = self.cmd(lab, args).output().unwrap();
        assert!(
            out.status.success(),
            "segwire-node {args:?} on {} failed: {}\nagent log:\n{}",
            self.host,
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn join(&self, lab: &Lab, token: &str, name: &str) {
        self.run_ok(lab, &["join", token, "--name", name]);
    }

    /// Starts `run` and waits for the control socket.
    pub fn start(&mut self, lab: &mut Lab) {
        let mut c = self.cmd(lab, &["run"]);
        c.env("RUST_LOG", "info");
        self.pid = Some(lab.spawn(c, &self.log));
        let sock = self.state.join("agent.sock");
        let up = wait_until(Duration::from_secs(20), || {
            sock.exists()
                && self
                    .cmd(lab, &["status"])
                    .output()
                    .map(|o| o.status.success())
                    .unwrap_or(false)
        });
        assert!(
            up.is_some(),
            "agent on {} did not start:\n{}",
            self.host,
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    pub fn stop(&mut self, lab: &mut Lab) {
        if let Some(pid) = self.pid.take() {
            lab.stop(pid);
        }
    }

    pub fn kill(&mut self, lab: &mut Lab) {
        if let Some(pid) = self.pid.take() {
            lab.kill(pid);
        }
    }

    /// Attaches container namespace `ns` to `segment`; returns its overlay address (the
    /// IPv4 one, or the IPv6 one on an IPv6-only segment).
    pub fn attach(&self, lab: &Lab, segment: &str, ns: &str, label: &str) -> String {
        let out = self.run_ok(
            lab,
            &[
                "attach",
                "--segment",
                segment,
                "--netns",
                ns,
                "--label",
                label,
                "-o",
                "json",
            ],
        );
        let v: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("attach output {out:?}: {e}"));
        match v["address"].as_str() {
            Some(a) if !a.is_empty() => a.to_string(),
            _ => v["address6"].as_str().unwrap().to_string(),
        }
    }

    pub fn status(&self, lab: &Lab) -> serde_json::Value {
        serde_json::from_str(&self.run_ok(lab, &["status", "-o", "json"])).unwrap()
    }

    /// Names of the peers of this agent's member in `segment`.
    pub fn peer_names(&self, lab: &Lab, segment: &str) -> Vec<String> {
        let st = self.status(lab);
        st["members"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["segment"] == segment)
            .flat_map(|m| m["peers"].as_array().cloned().unwrap_or_default())
            .map(|p| p["name"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

/// Appends a measured figure to `target/e2e-figures.txt` and prints it (visible with --nocapture).
pub fn figure(name: &str, value: String) {
    let line = format!("{name}: {value}\n");
    eprint!("FIGURE {line}");
    let path = bin("segwire-node")
        .parent()
        .unwrap()
        .join("e2e-figures.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(line.as_bytes());
    }
}

/// Starts a TCP echo server on `addr:port` inside `ns` (a detached thread per connection).
pub fn tcp_echo_server(ns: &str, addr: &str, port: u16) {
    let sa = sock(addr, port);
    let listener = in_ns(ns, move || TcpListener::bind(sa).unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
}

/// Opens a TCP connection from `ns` (None when it cannot within `timeout`).
pub fn tcp_connect(ns: &str, addr: &str, port: u16, timeout: Duration) -> Option<TcpStream> {
    let sa = sock(addr, port);
    in_ns(ns, move || TcpStream::connect_timeout(&sa, timeout).ok())
}

/// Sends a line on `s` and expects it echoed within `timeout`.
pub fn echoes(s: &mut TcpStream, timeout: Duration) -> bool {
    s.set_read_timeout(Some(timeout)).unwrap();
    if s.write_all(b"hello\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 6];
    matches!(s.read_exact(&mut buf), Ok(()) if &buf == b"hello\n")
}

/// Sends one UDP datagram from `src` (an address of `from_ns`, which need not be the
/// address of the interface it leaves by) to `to_addr:5301` in `to_ns`; whether it arrived
/// within `wait`.
pub fn udp_from(
    from_ns: &str,
    src: &str,
    to_ns: &str,
    to_addr: &str,
    payload: &[u8],
    wait: Duration,
) -> bool {
    let addr = sock(to_addr, 5301);
    let from = sock(src, 0);
    let rx = in_ns(to_ns, move || UdpSocket::bind(addr).unwrap());
    rx.set_read_timeout(Some(wait)).unwrap();
    let tx = in_ns(from_ns, move || UdpSocket::bind(from).unwrap());
    tx.send_to(payload, addr).unwrap();
    let mut buf = [0u8; 2048];
    matches!(rx.recv_from(&mut buf), Ok((n, _)) if &buf[..n] == payload)
}

/// One ping from `ns` to `addr` with source address `src`.
pub fn ping_from(lab: &Lab, ns: &str, src: &str, addr: &str, wait_secs: &str) -> bool {
    lab.cmd(ns, "ping")
        .args(["-c1", "-W", wait_secs, "-q", "-I", src, addr])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The member with overlay address `addr` (IPv4 or IPv6) in an agent's status.
pub fn member_at<'a>(status: &'a serde_json::Value, addr: &str) -> &'a serde_json::Value {
    status["members"]
        .as_array()
        .and_then(|ms| {
            ms.iter()
                .find(|m| m["address"] == addr || m["address6"] == addr)
        })
        .unwrap_or_else(|| panic!("no member at {addr} in {status}"))
}

/// The peer of `member` that owns overlay address `addr`, if any.
pub fn peer_owning<'a>(member: &'a serde_json::Value, addr: &str) -> Option<&'a serde_json::Value> {
    let host = match addr.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => format!("{addr}/128"),
        _ => format!("{addr}/32"),
    };
    member["peers"].as_array()?.iter().find(|p| {
        p["allowed_ips"]
            .as_array()
            .is_some_and(|ips| ips.iter().any(|ip| *ip == host.as_str()))
    })
}

/// Drops counted for `reason` by `member`: its own and all its peers'.
pub fn drops(member: &serde_json::Value, reason: &str) -> u64 {
    let own = member["drops"][reason].as_u64().unwrap_or(0);
    let peers: u64 = member["peers"]
        .as_array()
        .map(|ps| ps.iter().filter_map(|p| p["drops"][reason].as_u64()).sum())
        .unwrap_or(0);
    own + peers
}

/// When the last line of log file `path` containing `needle` (colours removed) was written:
/// the timestamp that starts every line of the coordinator's and agents' text logs.
pub fn log_time(path: &Path, needle: &str) -> Option<time::OffsetDateTime> {
    let text = strip_ansi(&std::fs::read_to_string(path).ok()?);
    let line = text.lines().rev().find(|l| l.contains(needle))?;
    let stamp = line.split_whitespace().next()?;
    time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339).ok()
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// How long after `from` `to` happened (both from [`log_time`]); zero when `to` was logged
/// first (e.g. a push that reached the agent before the coordinator wrote its own line).
pub fn log_gap(from: time::OffsetDateTime, to: time::OffsetDateTime) -> Duration {
    Duration::try_from(to - from).unwrap_or(Duration::ZERO)
}
