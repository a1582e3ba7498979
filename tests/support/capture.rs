//! The underlay capture: tcpdump on the hosts' bridge, and the filters that say what the
//! underlay may carry (WireGuard UDP between members' ports and the coordinator's TLS,
//! nothing else), for an IPv4 and an IPv6 underlay.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use segwire_testkit::Lab;

use super::Agent;

/// The underlay's IP version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Underlay {
    /// 198.18.0.0/15.
    V4,
    /// 2001:2::/48, IPv6 only.
    V6,
}

/// A tcpdump writing everything on one interface to a pcap file.
pub struct Capture {
    child: Child,
    pcap: PathBuf,
}

impl Capture {
    /// Starts tcpdump on `iface` in `ns` and returns once it says it listens (a fixed
    /// head start loses the capture on a loaded machine).
    pub fn start(lab: &Lab, ns: &str, iface: &str, pcap: &Path) -> Capture {
        let mut child = lab
            .cmd(ns, "tcpdump")
            .args(["-i", iface, "-U", "-n", "-s", "0", "-w"])
            .arg(pcap)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
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
        Capture {
            child,
            pcap: pcap.to_path_buf(),
        }
    }

    /// The packets captured so far that match `filter`, one line each (readable while
    /// the capture runs).
    pub fn read(&self, filter: &str) -> Vec<String> {
        let out = Command::new("tcpdump")
            .args(["-r"])
            .arg(&self.pcap)
            .args(["-n", filter])
            .stderr(Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Stops tcpdump (after a moment for the last packets) and returns the pcap's bytes;
    /// [`Capture::read`] still reads the file.
    pub fn stop(&mut self) -> Vec<u8> {
        std::thread::sleep(Duration::from_millis(200));
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        std::fs::read(&self.pcap).unwrap()
    }
}

/// Every member's listen port of `agents`.
pub fn listen_ports(lab: &Lab, agents: &[&Agent]) -> Vec<u64> {
    agents
        .iter()
        .flat_map(|a| {
            a.status(lab)["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["listen_port"].as_u64().unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// WireGuard: UDP between two of `ports` whose payload starts with a message type 1-4
/// and three zero bytes. tcpdump's `udp[n]` reads IPv4 only; over IPv6 (no extension
/// headers on the underlay) the payload starts at byte 48 of the IPv6 packet.
pub fn wireguard(ports: &[u64], underlay: Underlay) -> String {
    let any_port = |dir: &str| {
        let alts: Vec<String> = ports.iter().map(|p| format!("{dir} port {p}")).collect();
        format!("({})", alts.join(" or "))
    };
    let message = match underlay {
        Underlay::V4 => "ip and udp[8] >= 1 and udp[8] <= 4 and udp[9:2] = 0 and udp[11] = 0",
        Underlay::V6 => {
            "ip6 and ip6[6] = 17 and ip6[48] >= 1 and ip6[48] <= 4 and ip6[49:2] = 0 and ip6[51] = 0"
        }
    };
    format!(
        "(udp and {} and {} and {message})",
        any_port("src"),
        any_port("dst")
    )
}

/// The control plane: TCP to or from the coordinator's `port` at `host`.
pub fn tls(host: &str, port: u16) -> String {
    format!("(tcp and host {host} and port {port})")
}

/// What the capture may hold besides `wireguard` and `tls`: nothing, on an IPv4
/// underlay, but ARP; on an IPv6 one, but neighbour discovery and the kernel's multicast
/// listener reports (link control, the ARP of IPv6: ICMPv6 133-137 and anything to a
/// multicast group), and no IPv4 at all.
pub fn other_than(wireguard: &str, tls: &str, underlay: Underlay) -> String {
    match underlay {
        Underlay::V4 => format!("ip and not ({wireguard} or {tls})"),
        Underlay::V6 => format!(
            "not arp and not ({wireguard} or {tls} or ip6 multicast \
             or (icmp6 and ip6[40] >= 133 and ip6[40] <= 137))"
        ),
    }
}

/// Whether `bytes` (a pcap) hold `marker` anywhere: clear text on the underlay.
pub fn holds(bytes: &[u8], marker: &str) -> bool {
    bytes.windows(marker.len()).any(|w| w == marker.as_bytes())
}
