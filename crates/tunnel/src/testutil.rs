//! Test harness: routers wired to each other in memory, on virtual time.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::{
    DatagramBatch, PacketBatch, PeerConfig, PresharedKey, PublicKey, Router, RouterConfig,
    StaticSecret,
};

/// The static secret of test node `n` (deterministic).
pub(crate) fn secret(n: u8) -> StaticSecret {
    StaticSecret::from([n; 32])
}

/// The public key of test node `n`.
pub(crate) fn public(n: u8) -> PublicKey {
    PublicKey::from_secret(&secret(n))
}

/// Test preshared key number `n`.
pub(crate) fn psk(n: u8) -> PresharedKey {
    PresharedKey::new([0xa0 ^ n; 32])
}

/// Overlay address of node `n`: 100.64.0.n.
pub(crate) fn overlay(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(100, 64, 0, n)
}

/// Underlay endpoint of node `n`: 198.18.0.n:51820.
/// Test node `n`'s IPv6 overlay address, `fd00::n`.
pub(crate) fn overlay6(n: u8) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(n))
}

pub(crate) fn underlay(n: u8) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(198, 18, 0, n), 51820))
}

/// An IPv4/UDP packet with a correct header carrying `seq` and `len` payload bytes.
pub(crate) fn ipv4_packet(src: Ipv4Addr, dst: Ipv4Addr, seq: u32, len: usize) -> Vec<u8> {
    let payload = len.max(4);
    let total = 20 + 8 + payload;
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64; // TTL
    p[9] = 17; // UDP
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let mut sum: u32 = 0;
    for chunk in p[..20].chunks(2) {
        sum += u32::from(u16::from_be_bytes([chunk[0], chunk[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    p[20..22].copy_from_slice(&4000u16.to_be_bytes());
    p[22..24].copy_from_slice(&5000u16.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
    p[28..32].copy_from_slice(&seq.to_be_bytes());
    p
}

/// An IPv6/UDP packet carrying `seq` and `len` payload bytes (the UDP checksum is left
/// zero: nothing on this path reads it).
pub(crate) fn ipv6_packet(src: Ipv6Addr, dst: Ipv6Addr, seq: u32, len: usize) -> Vec<u8> {
    let payload = len.max(4);
    let mut p = vec![0u8; 40 + 8 + payload];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
    p[6] = 17; // UDP
    p[7] = 64; // hop limit
    p[8..24].copy_from_slice(&src.octets());
    p[24..40].copy_from_slice(&dst.octets());
    p[40..42].copy_from_slice(&4000u16.to_be_bytes());
    p[42..44].copy_from_slice(&5000u16.to_be_bytes());
    p[44..46].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
    p[48..52].copy_from_slice(&seq.to_be_bytes());
    p
}

/// The sequence number [`ipv4_packet`] put in.
pub(crate) fn seq_of(packet: &[u8]) -> u32 {
    u32::from_be_bytes([packet[28], packet[29], packet[30], packet[31]])
}

/// The peer config of test node `n` as others see it.
pub(crate) fn peer_config(n: u8) -> PeerConfig {
    PeerConfig {
        public_key: public(n),
        endpoint: Some(underlay(n)),
        allowed_ips: vec![
            ipnet::Ipv4Net::from(overlay(n)).into(),
            ipnet::Ipv6Net::from(overlay6(n)).into(),
        ],
        persistent_keepalive: None,
    }
}

pub(crate) struct Node {
    pub(crate) id: u8,
    pub(crate) router: Router,
    pub(crate) underlay: SocketAddr,
    inbox: Vec<(SocketAddr, Vec<u8>)>,
    pub(crate) delivered: Vec<Vec<u8>>,
}

/// A datagram that crossed the in-memory underlay.
pub(crate) struct Sent {
    pub(crate) from: u8,
    pub(crate) bytes: Vec<u8>,
}

/// Nodes 1..=n, each a peer of all others, wired in memory.
pub(crate) struct Net {
    pub(crate) nodes: Vec<Node>,
    pub(crate) now: Duration,
    pub(crate) log: Vec<Sent>,
    out: DatagramBatch,
    packets: PacketBatch,
}

impl Net {
    pub(crate) fn new(n: u8) -> Self {
        Self::with_psks(&vec![1; usize::from(n)])
    }

    /// One node per entry, with that preshared key number.
    pub(crate) fn with_psks(psks: &[u8]) -> Self {
        let now = Duration::from_secs(1000);
        let ids: Vec<u8> = (1..=psks.len() as u8).collect();
        let nodes = ids
            .iter()
            .map(|&id| Node {
                id,
                router: make_router(now, id, psk(psks[usize::from(id - 1)]), &ids),
                underlay: underlay(id),
                inbox: Vec::new(),
                delivered: Vec::new(),
            })
            .collect();
        Self {
            nodes,
            now,
            log: Vec::new(),
            out: DatagramBatch::new(16, 1500),
            packets: PacketBatch::new(16, 1500),
        }
    }

    pub(crate) fn node(&mut self, id: u8) -> &mut Node {
        &mut self.nodes[usize::from(id - 1)]
    }

    pub(crate) fn router(&mut self, id: u8) -> &mut Router {
        &mut self.node(id).router
    }

    /// Node `id` sends `packet` into its TUN side; the underlay carries the result.
    pub(crate) fn send_raw(&mut self, id: u8, packet: &[u8]) {
        let now = self.now;
        let mut out = std::mem::replace(&mut self.out, DatagramBatch::new(0, 0));
        self.node(id)
            .router
            .encapsulate_batch(now, [packet], &mut out);
        self.route(id, &mut out);
        self.out = out;
    }

    /// Node `from` sends packet `seq` to node `to`'s overlay address.
    pub(crate) fn send(&mut self, from: u8, to: u8, seq: u32) {
        self.send_raw(from, &ipv4_packet(overlay(from), overlay(to), seq, 64));
    }

    /// Delivers `bytes` to node `to` as if it came from `src`.
    pub(crate) fn inject(&mut self, to: u8, src: SocketAddr, bytes: &[u8]) {
        self.node(to).inbox.push((src, bytes.to_vec()));
    }

    /// Runs the underlay until no datagram is in flight.
    pub(crate) fn pump(&mut self) {
        for _ in 0..1000 {
            let Some(i) = self.nodes.iter().position(|n| !n.inbox.is_empty()) else {
                return;
            };
            let now = self.now;
            let mut out = std::mem::replace(&mut self.out, DatagramBatch::new(0, 0));
            let mut packets = std::mem::replace(&mut self.packets, PacketBatch::new(0, 0));
            let node = &mut self.nodes[i];
            let inbox = std::mem::take(&mut node.inbox);
            node.router.decapsulate_batch(
                now,
                inbox.iter().map(|(s, d)| (*s, d.as_slice())),
                &mut packets,
                &mut out,
            );
            node.delivered.extend(packets.iter().map(<[u8]>::to_vec));
            packets.clear();
            let id = node.id;
            self.route(id, &mut out);
            self.out = out;
            self.packets = packets;
        }
        panic!("underlay did not settle");
    }

    /// Advances virtual time by `dt`, runs every node's timers, then the underlay.
    pub(crate) fn tick(&mut self, dt: Duration) {
        self.now += dt;
        let now = self.now;
        for i in 0..self.nodes.len() {
            let mut out = std::mem::replace(&mut self.out, DatagramBatch::new(0, 0));
            self.nodes[i].router.handle_timers(now, &mut out);
            let id = self.nodes[i].id;
            self.route(id, &mut out);
            self.out = out;
        }
        self.pump();
    }

    /// Ticks every 250 ms for `total`.
    pub(crate) fn run_for(&mut self, total: Duration) {
        let step = Duration::from_millis(250);
        let mut t = Duration::ZERO;
        while t < total {
            self.tick(step);
            t += step;
        }
    }

    /// Replaces node `id` with a fresh router (same key, same peers): a restart.
    pub(crate) fn restart(&mut self, id: u8, psk_n: u8) {
        let ids: Vec<u8> = self.nodes.iter().map(|n| n.id).collect();
        let now = self.now;
        let node = self.node(id);
        node.router = make_router(now, id, psk(psk_n), &ids);
        node.inbox.clear();
    }

    /// Node `id` starts its pending handshakes (as a data path does when it starts);
    /// the underlay carries them. Returns how many it started.
    pub(crate) fn greet(&mut self, id: u8) -> usize {
        let now = self.now;
        let mut out = std::mem::replace(&mut self.out, DatagramBatch::new(0, 0));
        let n = self
            .node(id)
            .router
            .initiate_pending_handshakes(now, &mut out);
        self.route(id, &mut out);
        self.out = out;
        self.pump();
        n
    }

    /// Removes and returns what node `id` delivered to its TUN side.
    pub(crate) fn take_delivered(&mut self, id: u8) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.node(id).delivered)
    }

    fn route(&mut self, from: u8, out: &mut DatagramBatch) {
        let src = self.node(from).underlay;
        for d in out.iter() {
            if let Some(n) = self.nodes.iter_mut().find(|n| n.underlay == d.dst) {
                n.inbox.push((src, d.bytes.to_vec()));
                self.log.push(Sent {
                    from,
                    bytes: d.bytes.to_vec(),
                });
            }
        }
        out.clear();
    }
}

fn make_router(now: Duration, id: u8, psk: PresharedKey, ids: &[u8]) -> Router {
    let mut r = Router::new(RouterConfig::new(secret(id), psk, overlay(id)));
    for &other in ids.iter().filter(|&&o| o != id) {
        r.upsert_peer(now, &peer_config(other)).expect("add peer");
    }
    r
}
