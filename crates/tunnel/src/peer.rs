//! One peer of a router: its configuration, tunnel(s), endpoint and counters.

use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;

use crate::stats::{DropCounts, DropReason, PeerStatus, TrafficCounters};
use crate::wg::WgTunnel;
use crate::PublicKey;

/// What the control plane says about one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// The peer's static public key (its identity).
    pub public_key: PublicKey,
    /// The peer's UDP endpoint, if known; authenticated packets roam it.
    pub endpoint: Option<SocketAddr>,
    /// Networks routed to the peer, usually exactly its overlay /32 and/or /128.
    pub allowed_ips: Vec<IpNet>,
    /// Send a keepalive after this many quiet seconds (for NAT); `None` = off.
    pub persistent_keepalive: Option<u16>,
}

/// What [`crate::Router::upsert_peer`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerChange {
    /// A new peer with a new tunnel.
    Added,
    /// An existing peer's endpoint, allowed IPs or keepalive changed; its session was kept.
    Updated,
    /// Nothing changed.
    Unchanged,
}

/// Which of a peer's tunnels an index belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Which {
    /// The tunnel with the current PSK.
    Current,
    /// The tunnel with the previous PSK, kept while the new one comes up.
    Retiring,
}

/// How long a retiring tunnel still accepts packets after the new one works.
pub(crate) const RETIRE_GRACE: Duration = Duration::from_secs(10);

pub(crate) struct Peer {
    pub(crate) key: PublicKey,
    pub(crate) tunnel: WgTunnel,
    /// The tunnel of the previous PSK while the current one has no session yet.
    pub(crate) retiring: Option<WgTunnel>,
    /// When to drop `retiring` (set once the current tunnel can send).
    pub(crate) retire_at: Option<Duration>,
    pub(crate) endpoint: Option<SocketAddr>,
    /// The endpoint last configured (roaming changes `endpoint`, not this).
    pub(crate) configured_endpoint: Option<SocketAddr>,
    pub(crate) allowed_ips: Vec<IpNet>,
    pub(crate) persistent_keepalive: Option<u16>,
    pub(crate) traffic: TrafficCounters,
    pub(crate) drops: DropCounts,
    /// Handshakes completed by tunnels dropped since (PSK changes).
    pub(crate) past_handshakes: u64,
    /// The last handshake of tunnels dropped since.
    pub(crate) past_last_handshake: Option<Duration>,
    /// Not greeted yet: a handshake is due as soon as the endpoint is known
    /// (see `Router::initiate_pending_handshakes`).
    pub(crate) greet: bool,
}

impl Peer {
    pub(crate) fn new(config: &PeerConfig, tunnel: WgTunnel) -> Self {
        Self {
            key: config.public_key,
            tunnel,
            retiring: None,
            retire_at: None,
            endpoint: config.endpoint,
            configured_endpoint: config.endpoint,
            allowed_ips: normalized(&config.allowed_ips),
            persistent_keepalive: config.persistent_keepalive,
            traffic: TrafficCounters::default(),
            drops: DropCounts::default(),
            past_handshakes: 0,
            past_last_handshake: None,
            greet: true,
        }
    }

    /// The tunnel an index of kind `which` names.
    pub(crate) fn tunnel_mut(&mut self, which: Which) -> Option<&mut WgTunnel> {
        match which {
            Which::Current => Some(&mut self.tunnel),
            Which::Retiring => self.retiring.as_mut(),
        }
    }

    /// Whether data should go out on the retiring tunnel for now.
    pub(crate) fn send_on_retiring(&self) -> bool {
        !self.tunnel.sendable() && self.retiring.as_ref().is_some_and(WgTunnel::sendable)
    }

    pub(crate) fn handshakes(&self) -> u64 {
        self.past_handshakes
            + self.tunnel.handshakes()
            + self.retiring.as_ref().map_or(0, WgTunnel::handshakes)
    }

    pub(crate) fn last_handshake(&self) -> Option<Duration> {
        let retiring = self.retiring.as_ref().and_then(WgTunnel::last_handshake);
        self.tunnel
            .last_handshake()
            .max(retiring)
            .max(self.past_last_handshake)
    }

    /// Keeps the history of a tunnel that is being dropped.
    pub(crate) fn absorb(&mut self, old: &WgTunnel) {
        self.past_handshakes += old.handshakes();
        self.past_last_handshake = self.past_last_handshake.max(old.last_handshake());
    }

    pub(crate) fn drop(&mut self, reason: DropReason) {
        self.drops.add(reason);
    }

    pub(crate) fn status(&self, now: Duration) -> PeerStatus {
        PeerStatus {
            public_key: self.key,
            endpoint: self.endpoint,
            allowed_ips: self.allowed_ips.clone(),
            persistent_keepalive: self.persistent_keepalive,
            last_handshake_ago: self.last_handshake().map(|t| now.saturating_sub(t)),
            handshakes: self.handshakes(),
            traffic: self.traffic,
            drops: self.drops,
        }
    }
}

/// Allowed IPs with host bits cleared and duplicates removed, in order.
pub(crate) fn normalized(nets: &[IpNet]) -> Vec<IpNet> {
    let mut out: Vec<IpNet> = Vec::with_capacity(nets.len());
    for n in nets.iter().map(IpNet::trunc) {
        if !out.contains(&n) {
            out.push(n);
        }
    }
    out
}
