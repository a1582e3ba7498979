//! The per-member router: peer table, cryptokey routing and the batch calls.

use std::collections::HashSet;

use ahash::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use x25519_dalek::StaticSecret;

use crate::batch::{DatagramBatch, PacketBatch, DATA_OVERHEAD, HANDSHAKE_MAX, MAX_PACKET};
use crate::peer::{normalized, Peer, PeerChange, PeerConfig, Which, RETIRE_GRACE};
use crate::routes::RouteTable;
use crate::stats::{DropCounts, DropReason, PeerStatus, RouterStatus, TrafficCounters};
use crate::suspect::{Suspect, Suspects};
use crate::wg::{Identity, Inbound, WgError, WgOutput, WgTunnel};
use crate::{PresharedKey, PublicKey};

/// Handshake messages per second accepted before the router demands cookies.
pub const DEFAULT_HANDSHAKE_RATE_LIMIT: u64 = 100;
/// Most peers one router holds (each peer uses up to two of 2^24 tunnel indices).
pub const MAX_PEERS: usize = 1 << 22;

const MSG_INITIATION: u8 = 1;
const MSG_COOKIE: u8 = 3;
const MSG_DATA: u8 = 4;
const MAX_TICK_OUTPUTS: usize = 4;

/// Everything a router needs to start.
pub struct RouterConfig {
    /// The member's static private key.
    pub private_key: StaticSecret,
    /// The segment's preshared key.
    pub psk: PresharedKey,
    /// The member's overlay address: its IPv4 one, or its IPv6 one on an IPv6-only
    /// segment (reported in [`RouterStatus`]; routing does not depend on it).
    pub address: IpAddr,
    /// See [`DEFAULT_HANDSHAKE_RATE_LIMIT`].
    pub handshake_rate_limit: u64,
}

impl RouterConfig {
    /// A configuration with the default handshake rate limit.
    pub fn new(private_key: StaticSecret, psk: PresharedKey, address: impl Into<IpAddr>) -> Self {
        Self {
            private_key,
            psk,
            address: address.into(),
            handshake_rate_limit: DEFAULT_HANDSHAKE_RATE_LIMIT,
        }
    }
}

/// A peer change the router refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouterError {
    /// The peer has the router's own public key.
    #[error("a peer cannot have the member's own public key")]
    OwnKey,
    /// The router already holds [`MAX_PEERS`] peers.
    #[error("too many peers (at most {MAX_PEERS})")]
    TooManyPeers,
}

/// What [`Router::sync_peers`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// New peers.
    pub added: usize,
    /// Existing peers updated in place.
    pub updated: usize,
    /// Peers removed.
    pub removed: usize,
}

#[derive(Default)]
struct Totals {
    traffic: TrafficCounters,
    drops: DropCounts,
    suspects: Suspects,
}

impl Totals {
    fn drop(&mut self, peer: Option<&mut Peer>, reason: DropReason) {
        tracing::trace!(reason = reason.as_str(), "packet dropped");
        self.drops.add(reason);
        if let Some(p) = peer {
            p.drop(reason);
        }
    }

    fn spoofed(&mut self, peer: &mut Peer, from: SocketAddr, claimed: Option<IpAddr>) {
        self.suspects.push(Suspect::SpoofedSource {
            peer: peer.key,
            from,
            claimed,
        });
        self.drop(Some(peer), DropReason::SpoofedSource);
    }

    /// Hands a handshake message to one of the peer's tunnels and commits its answer.
    /// On an initiation the endpoint moves to `src` only when that tunnel has completed a
    /// handshake before: a fresh tunnel (after a restart or a PSK change) has no memory of the
    /// initiations it saw, so a captured one replayed to it must not redirect traffic.
    fn handshake(
        &mut self,
        now: Duration,
        peer: &mut Peer,
        which: Which,
        src: SocketAddr,
        datagram: &[u8],
        out: &mut DatagramBatch,
    ) {
        let need = datagram.len().max(HANDSHAKE_MAX);
        let (r, trusted) = match peer.tunnel_mut(which) {
            Some(t) => {
                // A response answers our own initiation: it cannot be replayed.
                let trusted = datagram.first() != Some(&MSG_INITIATION) || t.handshakes() > 0;
                (
                    t.decapsulate(now, src.ip(), datagram, out.tail(need)),
                    trusted,
                )
            }
            None => (Err(WgError::WrongIndex), false),
        };
        match r {
            Ok(WgOutput::Network(len)) => {
                if trusted && out.uncommitted(len)[0] != MSG_COOKIE {
                    peer.endpoint = Some(src);
                }
                out.commit(len, src);
            }
            Ok(_) => {}
            Err(e) => {
                let reason = e.drop_reason(true);
                // With two keys in play (a rotation), one of the two answers to every
                // handshake fails by design: not a suspect.
                if reason == DropReason::HandshakeFailed && peer.retiring.is_none() {
                    self.suspects.push(Suspect::HandshakeFailed {
                        from: src,
                        peer: Some(peer.key),
                    });
                }
                self.drop(Some(peer), reason);
            }
        }
    }

    /// Commits a datagram a tunnel wrote to `out`, or counts its error.
    fn emit(
        &mut self,
        peer: &mut Peer,
        out: &mut DatagramBatch,
        r: Result<WgOutput, WgError>,
        dst: SocketAddr,
    ) {
        match r {
            Ok(WgOutput::Network(len)) => {
                let msg = out.uncommitted(len);
                if msg[0] == MSG_DATA && len > DATA_OVERHEAD {
                    peer.traffic.tx(len - DATA_OVERHEAD);
                    self.traffic.tx(len - DATA_OVERHEAD);
                }
                out.commit(len, dst);
            }
            Ok(_) => {}
            Err(e) => self.drop(Some(peer), e.drop_reason(false)),
        }
    }
}

/// Hands out the 24-bit tunnel indices and maps them back to peers.
struct Indices {
    next: u32,
    map: HashMap<u32, (usize, Which)>,
}

impl Indices {
    /// A new tunnel to `peer` with `psk`, its index registered as `which` of `slot`.
    fn tunnel(
        &mut self,
        now: Duration,
        identity: &Identity,
        slot: usize,
        which: Which,
        psk: &PresharedKey,
        peer: &Peer,
    ) -> WgTunnel {
        let index = self.alloc(slot, which);
        WgTunnel::new(
            now,
            identity,
            &peer.key,
            psk,
            index,
            peer.persistent_keepalive,
        )
    }

    fn alloc(&mut self, slot: usize, which: Which) -> u32 {
        // Terminates: at most 2 * MAX_PEERS < 2^24 indices are ever in use.
        loop {
            let i = self.next & 0x00ff_ffff;
            self.next = self.next.wrapping_add(1);
            if let std::collections::hash_map::Entry::Vacant(e) = self.map.entry(i) {
                e.insert((slot, which));
                return i;
            }
        }
    }
}

/// The sans-IO WireGuard router of one member (see the crate docs for use).
pub struct Router {
    identity: Identity,
    public_key: PublicKey,
    psk: PresharedKey,
    /// The key of the peers' second tunnels, where they have one (see `router/keys.rs`).
    second_key: Option<PresharedKey>,
    /// The control plane pinned `second_key`: second tunnels stay and are not retired.
    pinned: bool,
    address: IpAddr,
    peers: Vec<Option<Peer>>,
    free: Vec<usize>,
    by_key: HashMap<PublicKey, usize>,
    indices: Indices,
    routes: RouteTable,
    totals: Totals,
}

impl Router {
    /// A router with no peers.
    pub fn new(config: RouterConfig) -> Self {
        let public_key = PublicKey::from_secret(&config.private_key);
        Self {
            identity: Identity::new(config.private_key, config.handshake_rate_limit),
            public_key,
            psk: config.psk,
            second_key: None,
            pinned: false,
            address: config.address,
            peers: Vec::new(),
            free: Vec::new(),
            by_key: HashMap::default(),
            indices: Indices {
                next: rand::random(),
                map: HashMap::default(),
            },
            routes: RouteTable::default(),
            totals: Totals::default(),
        }
    }

    /// The member's static public key.
    pub fn public_key(&self) -> PublicKey {
        self.public_key
    }

    /// The member's overlay address (see [`RouterConfig::address`]).
    pub fn address(&self) -> IpAddr {
        self.address
    }

    /// Number of peers.
    pub fn peer_count(&self) -> usize {
        self.by_key.len()
    }

    /// Traffic summed over all peers.
    pub fn traffic(&self) -> TrafficCounters {
        self.totals.traffic
    }

    /// All drops, by reason.
    pub fn drops(&self) -> DropCounts {
        self.totals.drops
    }

    /// The suspect drops (spoofed sources, failed handshakes) since the last call, oldest
    /// first. Call after every batch: at most [`MAX_SUSPECTS`](crate::MAX_SUSPECTS) are
    /// kept in between.
    pub fn drain_suspects(&mut self) -> impl Iterator<Item = Suspect> + '_ {
        self.totals.suspects.drain()
    }

    /// Adds a peer, or updates an existing one in place: its endpoint, allowed
    /// IPs and keepalive change, its tunnel and session are kept.
    pub fn upsert_peer(
        &mut self,
        now: Duration,
        config: &PeerConfig,
    ) -> Result<PeerChange, RouterError> {
        if config.public_key == self.public_key {
            return Err(RouterError::OwnKey);
        }
        if let Some(&slot) = self.by_key.get(&config.public_key) {
            return Ok(self.update_peer(slot, config));
        }
        if self.by_key.len() >= MAX_PEERS {
            return Err(RouterError::TooManyPeers);
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.peers.push(None);
                self.peers.len() - 1
            }
        };
        let index = self.indices.alloc(slot, Which::Current);
        let tunnel = WgTunnel::new(
            now,
            &self.identity,
            &config.public_key,
            &self.psk,
            index,
            config.persistent_keepalive,
        );
        let peer = Peer::new(config, tunnel);
        for net in &peer.allowed_ips {
            self.routes.insert(*net, slot);
        }
        self.peers[slot] = Some(peer);
        self.by_key.insert(config.public_key, slot);
        self.add_second_tunnel(slot, now);
        tracing::debug!(peer = %config.public_key, "peer added");
        Ok(PeerChange::Added)
    }

    fn update_peer(&mut self, slot: usize, config: &PeerConfig) -> PeerChange {
        let Some(peer) = self.peers.get_mut(slot).and_then(Option::as_mut) else {
            return PeerChange::Unchanged;
        };
        let mut changed = false;
        if config.endpoint != peer.configured_endpoint {
            peer.configured_endpoint = config.endpoint;
            if config.endpoint.is_some() {
                peer.endpoint = config.endpoint;
                peer.greet = true;
            }
            changed = true;
        }
        let nets = normalized(&config.allowed_ips);
        if nets != peer.allowed_ips {
            for net in &peer.allowed_ips {
                self.routes.remove(*net, slot);
            }
            for net in &nets {
                self.routes.insert(*net, slot);
            }
            peer.allowed_ips = nets;
            changed = true;
        }
        if config.persistent_keepalive != peer.persistent_keepalive {
            peer.persistent_keepalive = config.persistent_keepalive;
            peer.tunnel
                .set_persistent_keepalive(config.persistent_keepalive);
            changed = true;
        }
        if changed {
            tracing::debug!(peer = %config.public_key, "peer updated in place");
            PeerChange::Updated
        } else {
            PeerChange::Unchanged
        }
    }

    /// Removes a peer and its routes; other peers' sessions are untouched.
    /// Returns whether the peer existed.
    pub fn remove_peer(&mut self, key: &PublicKey) -> bool {
        let Some(slot) = self.by_key.remove(key) else {
            return false;
        };
        if let Some(peer) = self.peers.get_mut(slot).and_then(Option::take) {
            for net in &peer.allowed_ips {
                self.routes.remove(*net, slot);
            }
            self.indices.map.remove(&peer.tunnel.index());
            if let Some(r) = &peer.retiring {
                self.indices.map.remove(&r.index());
            }
        }
        self.free.push(slot);
        tracing::debug!(peer = %key, "peer removed");
        true
    }

    /// Makes the peer set exactly `desired`: upserts each (in place when it
    /// exists) and removes the others.
    pub fn sync_peers(
        &mut self,
        now: Duration,
        desired: &[PeerConfig],
    ) -> Result<SyncReport, RouterError> {
        let keep: HashSet<PublicKey> = desired.iter().map(|p| p.public_key).collect();
        let gone: Vec<PublicKey> = self
            .by_key
            .keys()
            .filter(|k| !keep.contains(k))
            .copied()
            .collect();
        let mut report = SyncReport::default();
        for key in &gone {
            self.remove_peer(key);
            report.removed += 1;
        }
        for config in desired {
            match self.upsert_peer(now, config)? {
                PeerChange::Added => report.added += 1,
                PeerChange::Updated => report.updated += 1,
                PeerChange::Unchanged => {}
            }
        }
        Ok(report)
    }

    /// Switches to a new preshared key. Every peer gets a new tunnel with the
    /// new key and a handshake initiation right away (into `out`); until that
    /// tunnel has a session, traffic keeps flowing on the old one. Returns
    /// false (and does nothing) if the key is unchanged.
    pub fn set_psk(&mut self, now: Duration, psk: PresharedKey, out: &mut DatagramBatch) -> bool {
        if psk == self.psk {
            return false;
        }
        self.second_key = Some(std::mem::replace(&mut self.psk, psk));
        for (slot, entry) in self.peers.iter_mut().enumerate() {
            let Some(peer) = entry.as_mut() else { continue };
            let fresh =
                self.indices
                    .tunnel(now, &self.identity, slot, Which::Current, &self.psk, peer);
            let old = std::mem::replace(&mut peer.tunnel, fresh);
            if let Some(r) = peer.retiring.take() {
                self.indices.map.remove(&r.index());
                peer.absorb(&r);
            }
            if old.sendable() {
                self.indices
                    .map
                    .insert(old.index(), (slot, Which::Retiring));
                peer.retiring = Some(old);
            } else {
                self.indices.map.remove(&old.index());
                peer.absorb(&old);
            }
            peer.retire_at = None;
            if let Some(ep) = peer.endpoint {
                let r = peer.tunnel.initiate(now, out.tail(HANDSHAKE_MAX));
                self.totals.emit(peer, out, r, ep);
            }
        }
        tracing::info!("preshared key changed; new handshakes started");
        true
    }

    /// Encrypts packets read from the TUN device into datagrams for `out`.
    /// Packets to no peer, or to a peer without endpoint, are dropped and
    /// counted; packets for a peer without session are queued (up to 256) and
    /// a handshake initiation is emitted instead.
    pub fn encapsulate_batch<'a, I>(&mut self, now: Duration, packets: I, out: &mut DatagramBatch)
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        for packet in packets {
            self.encapsulate_one(now, packet, out);
        }
    }

    fn encapsulate_one(&mut self, now: Duration, packet: &[u8], out: &mut DatagramBatch) {
        let Some(dst) = destination(packet) else {
            self.totals.drop(None, DropReason::Malformed);
            return;
        };
        let Some(slot) = self.routes.lookup(dst) else {
            self.totals.drop(None, DropReason::NoRoute);
            return;
        };
        let Some(peer) = self.peers.get_mut(slot).and_then(Option::as_mut) else {
            self.totals.drop(None, DropReason::NoRoute);
            return;
        };
        let Some(ep) = peer.endpoint else {
            self.totals.drop(Some(peer), DropReason::NoEndpoint);
            return;
        };
        let need = (packet.len() + DATA_OVERHEAD).max(HANDSHAKE_MAX);
        if peer.send_on_retiring() {
            if let Some(old) = peer.retiring.as_mut() {
                let r = old.encapsulate(now, packet, out.tail(need));
                self.totals.emit(peer, out, r, ep);
            }
            let r = peer.tunnel.ensure_handshake(now, out.tail(HANDSHAKE_MAX));
            self.totals.emit(peer, out, r, ep);
        } else {
            let r = peer.tunnel.encapsulate(now, packet, out.tail(need));
            self.totals.emit(peer, out, r, ep);
        }
    }

    /// Handles datagrams read from the UDP socket (with their source address):
    /// decrypted packets go to `packets` (for the TUN device), handshake
    /// replies, cookies and queued packets to `out`. Endpoints roam to the
    /// source of authenticated datagrams. A packet whose inner source is not
    /// routed to the peer that sent it is dropped (`SpoofedSource`).
    pub fn decapsulate_batch<'a, I>(
        &mut self,
        now: Duration,
        datagrams: I,
        packets: &mut PacketBatch,
        out: &mut DatagramBatch,
    ) where
        I: IntoIterator<Item = (SocketAddr, &'a [u8])>,
    {
        for (src, datagram) in datagrams {
            self.decapsulate_one(now, src, datagram, packets, out);
        }
    }

    fn decapsulate_one(
        &mut self,
        now: Duration,
        src: SocketAddr,
        datagram: &[u8],
        packets: &mut PacketBatch,
        out: &mut DatagramBatch,
    ) {
        let kind = datagram.first().copied().unwrap_or(0);
        let handshake = kind != MSG_DATA;
        let target = match self
            .identity
            .classify(src.ip(), datagram, out.tail(HANDSHAKE_MAX))
        {
            Ok(Inbound::CookieReply(len)) => {
                out.commit(len, src);
                return;
            }
            Ok(Inbound::Initiation(key)) => self.by_key.get(&key).map(|s| (*s, Which::Current)),
            Ok(Inbound::Indexed(index)) => self.indices.map.get(&index).copied(),
            Err(e) => {
                let reason = e.drop_reason(handshake);
                if reason == DropReason::HandshakeFailed {
                    let failed = Suspect::HandshakeFailed {
                        from: src,
                        peer: None,
                    };
                    self.totals.suspects.push(failed);
                }
                self.totals.drop(None, reason);
                return;
            }
        };
        let Some((slot, which)) = target else {
            if kind == MSG_INITIATION {
                // A valid initiation from a static key no peer has: a wrong key.
                let failed = Suspect::HandshakeFailed {
                    from: src,
                    peer: None,
                };
                self.totals.suspects.push(failed);
            }
            self.totals.drop(None, DropReason::UnknownPeer);
            return;
        };
        let Some(peer) = self.peers.get_mut(slot).and_then(Option::as_mut) else {
            self.totals.drop(None, DropReason::UnknownPeer);
            return;
        };
        if handshake {
            self.totals.handshake(now, peer, which, src, datagram, out);
            // During a rotation the previous key's tunnel answers initiations too: the
            // initiator keeps whichever answer its key opens (a node that still has the
            // old key, e.g. restarted from saved state, gets a session at once).
            if kind == MSG_INITIATION && which == Which::Current && peer.retiring.is_some() {
                self.totals
                    .handshake(now, peer, Which::Retiring, src, datagram, out);
            }
        } else {
            let r = match peer.tunnel_mut(which) {
                Some(t) => t.decapsulate(now, src.ip(), datagram, packets.tail(datagram.len())),
                None => Err(WgError::WrongIndex),
            };
            match r {
                Ok(WgOutput::Tunnel { len, src: inner }) => {
                    peer.endpoint = Some(src);
                    if self.routes.lookup(inner) == Some(slot) {
                        peer.traffic.rx(len);
                        self.totals.traffic.rx(len);
                        packets.commit(len);
                    } else {
                        self.totals.spoofed(peer, src, Some(inner));
                    }
                }
                Ok(WgOutput::Done) => peer.endpoint = Some(src),
                Ok(WgOutput::Network(len)) => out.push(&packets.tail(len)[..len], src),
                Err(e) => self.totals.drop(Some(peer), e.drop_reason(false)),
            }
        }
        if which == Which::Current
            && !self.pinned
            && peer.retiring.is_some()
            && peer.retire_at.is_none()
            && peer.tunnel.sendable()
        {
            peer.retire_at = Some(now + RETIRE_GRACE);
        }
        drain(now, &mut self.totals, peer, which, out);
    }

    /// Runs WireGuard's timers: handshake retransmits, rekeys, keepalives,
    /// session expiry, and retires old-PSK tunnels. Call about every 250 ms
    /// (and it is fine to call it more often); datagrams go to `out`.
    pub fn handle_timers(&mut self, now: Duration, out: &mut DatagramBatch) {
        self.identity.reset_rate_limit();
        let pinned = self.pinned;
        for peer in self.peers.iter_mut().flatten() {
            let retire = !pinned
                && peer
                    .retiring
                    .as_ref()
                    .is_some_and(|r| peer.retire_at.is_some_and(|t| now >= t) || r.expired(now));
            if retire {
                if let Some(old) = peer.retiring.take() {
                    self.indices.map.remove(&old.index());
                    peer.absorb(&old);
                    peer.retire_at = None;
                    tracing::debug!(peer = %peer.key, "old-PSK tunnel retired");
                }
            }
            for _ in 0..MAX_TICK_OUTPUTS {
                let r = peer.tunnel.tick(now, out.tail(HANDSHAKE_MAX));
                match (r, peer.endpoint) {
                    (Ok(WgOutput::Network(len)), Some(ep)) => {
                        self.totals.emit(peer, out, Ok(WgOutput::Network(len)), ep);
                    }
                    (Ok(WgOutput::Network(_)), None) => {}
                    (Ok(_), _) => break,
                    (Err(e), _) => {
                        tracing::debug!(peer = %peer.key, error = %e, "timer error");
                        break;
                    }
                }
            }
            drain(now, &mut self.totals, peer, Which::Current, out);
        }
    }

    /// The status of every peer, with handshake ages relative to `now`.
    pub fn status(&self, now: Duration) -> RouterStatus {
        let mut peers: Vec<PeerStatus> =
            self.peers.iter().flatten().map(|p| p.status(now)).collect();
        peers.sort_by_key(|p| p.public_key);
        RouterStatus {
            public_key: self.public_key,
            address: self.address,
            traffic: self.totals.traffic,
            drops: self.totals.drops,
            peers,
        }
    }

    /// The status of one peer, with its handshake age relative to `now`.
    pub fn peer_status(&self, key: &PublicKey, now: Duration) -> Option<PeerStatus> {
        let slot = *self.by_key.get(key)?;
        self.peers.get(slot)?.as_ref().map(|p| p.status(now))
    }
}

/// Sends what a tunnel queued while it had no session, once it has one.
fn drain(
    now: Duration,
    totals: &mut Totals,
    peer: &mut Peer,
    which: Which,
    out: &mut DatagramBatch,
) {
    let Some(ep) = peer.endpoint else { return };
    for _ in 0..WgTunnel::MAX_DRAIN {
        let r = match peer.tunnel_mut(which) {
            Some(t) if t.wants_drain() => t.drain(now, out.tail(MAX_PACKET + DATA_OVERHEAD)),
            _ => return,
        };
        match r {
            Ok(WgOutput::Network(len)) => totals.emit(peer, out, Ok(WgOutput::Network(len)), ep),
            _ => return,
        }
    }
}

/// The destination of an IPv4 or IPv6 packet, or `None` if it is neither.
fn destination(packet: &[u8]) -> Option<IpAddr> {
    if packet.len() > MAX_PACKET {
        return None;
    }
    match packet.first()? >> 4 {
        4 => {
            let b: [u8; 4] = packet.get(16..20)?.try_into().ok()?;
            Some(Ipv4Addr::from(b).into())
        }
        6 => {
            let b: [u8; 16] = packet.get(24..40)?.try_into().ok()?;
            Some(Ipv6Addr::from(b).into())
        }
        _ => None,
    }
}

mod greet;
mod keys;

#[cfg(test)]
mod tests;
