//! Counters: drops by reason, traffic per peer and per router, and the
//! `status` view built from them.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;

use crate::PublicKey;

/// Why a packet or datagram was dropped. Every drop is counted under one reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// Outbound: no peer's allowed IPs cover the destination.
    NoRoute,
    /// Outbound: the peer owning the destination has no known endpoint.
    NoEndpoint,
    /// Inbound: the decrypted packet's source is not routed to the sending peer.
    SpoofedSource,
    /// Inbound: no peer matches the receiver index or the initiator's static key.
    UnknownPeer,
    /// Inbound: a data packet failed authentication (wrong key, corrupted).
    DecryptFailed,
    /// Inbound: a data packet's counter was already seen or is too old.
    Replay,
    /// A handshake message failed (bad MAC, wrong key, old timestamp, unexpected).
    HandshakeFailed,
    /// Inbound: a data packet arrived for a session that does not exist (any more).
    NoSession,
    /// Inbound: a handshake was refused because the router is under load.
    UnderLoad,
    /// Not a well-formed WireGuard message or IPv4 packet (truncated, junk, empty).
    Malformed,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 10] = [
        DropReason::NoRoute,
        DropReason::NoEndpoint,
        DropReason::SpoofedSource,
        DropReason::UnknownPeer,
        DropReason::DecryptFailed,
        DropReason::Replay,
        DropReason::HandshakeFailed,
        DropReason::NoSession,
        DropReason::UnderLoad,
        DropReason::Malformed,
    ];

    /// A short stable name for logs and `status` output (`no_route`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::NoRoute => "no_route",
            DropReason::NoEndpoint => "no_endpoint",
            DropReason::SpoofedSource => "spoofed_source",
            DropReason::UnknownPeer => "unknown_peer",
            DropReason::DecryptFailed => "decrypt_failed",
            DropReason::Replay => "replay",
            DropReason::HandshakeFailed => "handshake_failed",
            DropReason::NoSession => "no_session",
            DropReason::UnderLoad => "under_load",
            DropReason::Malformed => "malformed",
        }
    }
}

/// Drop counters, one per [`DropReason`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounts([u64; DropReason::ALL.len()]);

impl DropCounts {
    /// The count for one reason.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason as usize]
    }

    /// The sum over all reasons.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// `(reason, count)` for every reason with a non-zero count.
    pub fn nonzero(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|r| (*r, self.get(*r)))
            .filter(|(_, n)| *n > 0)
    }

    pub(crate) fn add(&mut self, reason: DropReason) {
        self.0[reason as usize] += 1;
    }
}

/// Traffic counters. Bytes are inner IP packet bytes (without WireGuard and
/// UDP overhead); keepalives and handshakes are not counted as packets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficCounters {
    /// Packets decrypted and delivered to the caller.
    pub rx_packets: u64,
    /// Bytes of those packets.
    pub rx_bytes: u64,
    /// Packets encrypted and handed to the caller to send.
    pub tx_packets: u64,
    /// Bytes of those packets.
    pub tx_bytes: u64,
}

impl TrafficCounters {
    pub(crate) fn rx(&mut self, bytes: usize) {
        self.rx_packets += 1;
        self.rx_bytes += bytes as u64;
    }

    pub(crate) fn tx(&mut self, bytes: usize) {
        self.tx_packets += 1;
        self.tx_bytes += bytes as u64;
    }
}

/// One peer as `segwire-node status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// The peer's static public key.
    pub public_key: PublicKey,
    /// Where datagrams to the peer go (configured, or roamed to).
    pub endpoint: Option<SocketAddr>,
    /// The networks routed to the peer.
    pub allowed_ips: Vec<IpNet>,
    /// Persistent keepalive interval in seconds, if any.
    pub persistent_keepalive: Option<u16>,
    /// How long ago the last handshake completed, relative to the `now` given to `status`.
    pub last_handshake_ago: Option<Duration>,
    /// Handshakes completed with this peer since it was added.
    pub handshakes: u64,
    /// Traffic with this peer.
    pub traffic: TrafficCounters,
    /// Packets from or to this peer that were dropped.
    pub drops: DropCounts,
}

/// The router as `segwire-node status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterStatus {
    /// The member's static public key.
    pub public_key: PublicKey,
    /// The member's overlay address (see [`crate::RouterConfig::address`]).
    pub address: IpAddr,
    /// Traffic summed over all peers (including removed ones).
    pub traffic: TrafficCounters,
    /// All drops, including those that no peer can be blamed for.
    pub drops: DropCounts,
    /// One entry per peer, sorted by public key.
    pub peers: Vec<PeerStatus>,
}
