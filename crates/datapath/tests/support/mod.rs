//! Two or more members wired to each other in memory, on virtual time.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use segwire_datapath::{DetectConfig, Member, MemberConfig};
use segwire_policy::{CompiledPolicy, ConntrackConfig, Member as PolicyMember, Policy};
use segwire_tunnel::{PeerConfig, PresharedKey, PublicKey, RouterConfig, StaticSecret};

/// Wall-clock seconds the test clock starts at.
pub const UNIX_EPOCH: u64 = 1_700_000_000;

pub fn secret(n: u8) -> StaticSecret {
    StaticSecret::from([n; 32])
}

pub fn public(n: u8) -> PublicKey {
    PublicKey::from_secret(&secret(n))
}

pub fn psk() -> PresharedKey {
    PresharedKey::new([0x5a; 32])
}

/// Overlay address of node `n`: 100.64.0.n.
pub fn overlay(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(100, 64, 0, n)
}

/// Underlay endpoint of node `n`: 198.18.0.n:51820.
pub fn underlay(n: u8) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(198, 18, 0, n), 51820))
}

pub fn peer_config(n: u8) -> PeerConfig {
    PeerConfig {
        public_key: public(n),
        endpoint: Some(underlay(n)),
        allowed_ips: vec![std::net::IpAddr::from(overlay(n)).into()],
        persistent_keepalive: None,
    }
}

/// The policy as member `me` of nodes `ids` compiles it; node `n` has label `role=node<n>`.
pub fn compile(json: &str, me: u8, ids: &[u8]) -> CompiledPolicy {
    let policy = Policy::from_json(json).unwrap();
    let member = |n: u8| PolicyMember {
        name: format!("node{n}"),
        ip: Some(overlay(n)),
        ip6: None,
        labels: BTreeMap::from([("role".to_owned(), format!("node{n}"))]),
    };
    let members: Vec<PolicyMember> = ids.iter().map(|&n| member(n)).collect();
    CompiledPolicy::compile(&policy, &member(me), &members)
}

pub const ALLOW_ALL: &str = r#"{ "default": "allow", "rules": [] }"#;

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in bytes.chunks(2) {
        let hi = u32::from(chunk[0]) << 8;
        sum += hi | chunk.get(1).map_or(0, |b| u32::from(*b));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 packet of `protocol` with `l4` as its payload.
pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, l4: &[u8]) -> Vec<u8> {
    let total = 20 + l4.len();
    let mut p = vec![0u8; 20];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = protocol;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let sum = checksum(&p);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p.extend_from_slice(l4);
    p
}

/// A UDP datagram from port 40000 to `dport` with `len` payload bytes.
pub fn udp(src: Ipv4Addr, dst: Ipv4Addr, dport: u16, len: usize) -> Vec<u8> {
    let mut l4 = vec![0u8; 8 + len];
    l4[0..2].copy_from_slice(&40000u16.to_be_bytes());
    l4[2..4].copy_from_slice(&dport.to_be_bytes());
    l4[4..6].copy_from_slice(&((8 + len) as u16).to_be_bytes());
    ipv4(src, dst, 17, &l4)
}

/// A TCP segment from port 40000 to `dport` with `flags` (0x02 = SYN).
pub fn tcp(src: Ipv4Addr, dst: Ipv4Addr, dport: u16, flags: u8) -> Vec<u8> {
    let mut l4 = vec![0u8; 20];
    l4[0..2].copy_from_slice(&40000u16.to_be_bytes());
    l4[2..4].copy_from_slice(&dport.to_be_bytes());
    l4[12] = 5 << 4;
    l4[13] = flags;
    ipv4(src, dst, 6, &l4)
}

/// An ICMP echo request with identifier `id`.
pub fn ping(src: Ipv4Addr, dst: Ipv4Addr, id: u16) -> Vec<u8> {
    let mut l4 = vec![8, 0, 0, 0, 0, 0, 0, 1];
    l4[4..6].copy_from_slice(&id.to_be_bytes());
    let sum = checksum(&l4);
    l4[2..4].copy_from_slice(&sum.to_be_bytes());
    ipv4(src, dst, 1, &l4)
}

pub struct Node {
    pub id: u8,
    pub member: Member,
    inbox: Vec<(SocketAddr, Vec<u8>)>,
    /// What the member wrote to its TUN device.
    pub delivered: Vec<Vec<u8>>,
    /// Datagrams it sent, in order.
    pub sent: usize,
}

/// Nodes, each a peer of all others, wired in memory; `now` is virtual.
pub struct Net {
    pub nodes: Vec<Node>,
    pub now: Duration,
    /// Datagrams to this node are lost.
    pub blackhole: Option<u8>,
    /// This node's timers do not run (its loop is busy receiving).
    pub starved: Option<u8>,
}

impl Net {
    /// Nodes 1..=policies.len(), node `n` enforcing `policies[n - 1]`.
    pub fn new(policies: &[&str]) -> Self {
        let now = Duration::from_secs(10);
        let ids: Vec<u8> = (1..=policies.len() as u8).collect();
        let nodes = ids
            .iter()
            .map(|&id| {
                let mut member = Member::new(
                    now,
                    MemberConfig {
                        router: RouterConfig::new(secret(id), psk(), overlay(id)),
                        policy: compile(policies[usize::from(id - 1)], id, &ids),
                        conntrack: ConntrackConfig::default(),
                        detect: DetectConfig::default(),
                        unix_epoch: UNIX_EPOCH,
                        batch: 16,
                        max_packet: 1500,
                    },
                );
                for &other in ids.iter().filter(|&&o| o != id) {
                    member.upsert_peer(now, &peer_config(other)).unwrap();
                }
                Node {
                    id,
                    member,
                    inbox: Vec::new(),
                    delivered: Vec::new(),
                    sent: 0,
                }
            })
            .collect();
        Self {
            nodes,
            now,
            blackhole: None,
            starved: None,
        }
    }

    pub fn node(&mut self, id: u8) -> &mut Node {
        &mut self.nodes[usize::from(id - 1)]
    }

    pub fn member(&mut self, id: u8) -> &mut Member {
        &mut self.node(id).member
    }

    /// Node `id`'s workload sends `packets`; the underlay runs until it settles.
    pub fn send(&mut self, id: u8, packets: &[Vec<u8>]) {
        let now = self.now;
        self.member(id)
            .handle_tun(now, packets.iter().map(Vec::as_slice));
        self.flush(id);
        self.pump();
    }

    /// Delivers `bytes` to node `to` as if it came from `src`.
    pub fn inject(&mut self, to: u8, src: SocketAddr, bytes: &[u8]) {
        self.node(to).inbox.push((src, bytes.to_vec()));
    }

    /// Runs the underlay until no datagram is in flight.
    pub fn pump(&mut self) {
        for _ in 0..1000 {
            let Some(i) = self.nodes.iter().position(|n| !n.inbox.is_empty()) else {
                return;
            };
            let now = self.now;
            let node = &mut self.nodes[i];
            let inbox = std::mem::take(&mut node.inbox);
            node.member
                .handle_udp(now, inbox.iter().map(|(s, d)| (*s, d.as_slice())));
            let id = node.id;
            self.flush(id);
        }
        panic!("underlay did not settle");
    }

    /// Moves virtual time to the earliest `poll_timeout` (at most `until`), runs what is
    /// due there and the underlay. Returns false when `until` is reached.
    pub fn step(&mut self, until: Duration) -> bool {
        let next = self
            .nodes
            .iter()
            .filter(|n| Some(n.id) != self.starved)
            .map(|n| n.member.poll_timeout())
            .min()
            .unwrap_or(until);
        if next > until {
            self.now = until;
            return false;
        }
        self.now = self.now.max(next);
        let now = self.now;
        for i in 0..self.nodes.len() {
            if Some(self.nodes[i].id) != self.starved && self.nodes[i].member.poll_timeout() <= now
            {
                self.nodes[i].member.handle_timeout(now);
                let id = self.nodes[i].id;
                self.flush(id);
            }
        }
        self.pump();
        true
    }

    /// Runs timers for `total` of virtual time.
    pub fn run_for(&mut self, total: Duration) {
        let until = self.now + total;
        while self.step(until) {}
    }

    /// Sends node `id`'s datagrams across the underlay and takes its TUN packets.
    fn flush(&mut self, id: u8) {
        let blackhole = self.blackhole;
        let from = underlay(id);
        let node = self.node(id);
        let datagrams: Vec<(SocketAddr, Vec<u8>)> = node
            .member
            .datagrams()
            .iter()
            .map(|d| (d.dst, d.bytes.to_vec()))
            .collect();
        node.sent += datagrams.len();
        node.member.clear_datagrams();
        let packets: Vec<Vec<u8>> = node.member.packets().iter().map(<[u8]>::to_vec).collect();
        node.delivered.extend(packets);
        node.member.clear_packets();
        for (dst, bytes) in datagrams {
            if let Some(to) = self.nodes.iter_mut().find(|n| underlay(n.id) == dst) {
                if Some(to.id) != blackhole {
                    to.inbox.push((from, bytes));
                }
            }
        }
    }

    pub fn take_delivered(&mut self, id: u8) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.node(id).delivered)
    }
}
