//! A bounded connection table: LRU-ordered slots, driven by passed-in time, no allocation
//! after construction (beyond the per-peer index growing past 4,096 peers).
//!
//! Each remote peer gets a fair share of a full table: when it is full, a peer holding at
//! least `max_entries / peers` entries evicts its own longest-idle entry, and any other
//! peer evicts the longest-idle entry of the peer holding the most. So one peer opening
//! connections as fast as it can never evicts another peer's connections below its share.

use ahash::HashMap;
use std::time::Duration;

use crate::classify::{Direction, RuleId};
use crate::packet::{proto, TcpFlags};

/// How long an idle tracked connection lives, by protocol and state.
///
/// Defaults follow Linux conntrack, with a shorter established TCP timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP after the opening SYN, before the SYN-ACK (default 30 s).
    pub tcp_syn_sent: Duration,
    /// TCP after the SYN-ACK, before the opener's ACK; also a connection picked up
    /// mid-stream (first packet seen was not a SYN) until the other side answers (default 60 s).
    pub tcp_syn_received: Duration,
    /// Established TCP (default 2 h).
    pub tcp_established: Duration,
    /// TCP after a FIN from either side (default 2 min).
    pub tcp_closing: Duration,
    /// TCP after a RST from either side (default 10 s).
    pub tcp_closed: Duration,
    /// UDP (and other protocols allowed by `any`) before any reply (default 30 s).
    pub udp_unreplied: Duration,
    /// UDP (and other protocols) once a reply was seen (default 180 s).
    pub udp_replied: Duration,
    /// ICMP echo, by identifier (default 30 s).
    pub icmp_echo: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_syn_sent: Duration::from_secs(30),
            tcp_syn_received: Duration::from_secs(60),
            tcp_established: Duration::from_secs(2 * 60 * 60),
            tcp_closing: Duration::from_secs(120),
            tcp_closed: Duration::from_secs(10),
            udp_unreplied: Duration::from_secs(30),
            udp_replied: Duration::from_secs(180),
            icmp_echo: Duration::from_secs(30),
        }
    }
}

/// Size and timeouts of the connection table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConntrackConfig {
    /// Most connections tracked at once (at least 1; default 65,536). When full, a
    /// longest-idle connection is evicted, taken from a peer over its fair share (see the
    /// module doc). The table is allocated up front.
    pub max_entries: usize,
    /// Idle timeouts.
    pub timeouts: Timeouts,
}

impl Default for ConntrackConfig {
    fn default() -> Self {
        ConntrackConfig {
            max_entries: 65_536,
            timeouts: Timeouts::default(),
        }
    }
}

/// A connection seen from the local member: the local address is implied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FlowKey {
    pub(crate) remote: u128,
    /// TCP/UDP local port; ICMP echo identifier; 0 otherwise.
    pub(crate) local_port: u16,
    /// TCP/UDP remote port; for ICMP echo 0 when the local side sent the request, 1 when
    /// the remote did; 0 otherwise.
    pub(crate) remote_port: u16,
    pub(crate) protocol: u8,
}

impl FlowKey {
    /// Destination port of the connection's opening packet.
    pub(crate) fn opening_port(&self, initiator: Direction) -> u16 {
        match initiator {
            Direction::Egress => self.remote_port,
            Direction::Ingress => self.local_port,
        }
    }
}

/// Connection state (TCP states, or replied/unreplied for the others).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    SynSent,
    SynReceived,
    /// First packet seen was not a SYN; no answer yet.
    PickedUp,
    Established,
    Closing,
    Closed,
    Unreplied,
    Replied,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    pub(crate) key: FlowKey,
    pub(crate) initiator: Direction,
    pub(crate) state: State,
    pub(crate) rule: Option<RuleId>,
    last_seen: Duration,
    prev: u32,
    next: u32,
    /// Neighbours in the remote peer's own list, oldest first.
    peer_prev: u32,
    peer_next: u32,
}

const NIL: u32 = u32::MAX;

/// One remote peer's entries: a list through the slots, oldest first.
#[derive(Debug, Clone, Copy)]
struct PeerList {
    head: u32,
    tail: u32,
    count: usize,
}

/// Peers indexed up front; more make the index grow.
const PEERS_RESERVED: usize = 4096;

/// The table: a hash index into slots kept in a doubly linked list, oldest first.
#[derive(Debug)]
pub(crate) struct Conntrack {
    index: HashMap<FlowKey, u32>,
    peers: HashMap<u128, PeerList>,
    slots: Vec<Entry>,
    free: Vec<u32>,
    head: u32,
    tail: u32,
    max: usize,
    timeouts: Timeouts,
    pub(crate) evictions: u64,
    pub(crate) expired: u64,
}

impl Conntrack {
    pub(crate) fn new(config: ConntrackConfig) -> Conntrack {
        // Slot indices are u32 and NIL is reserved.
        let max = config.max_entries.clamp(1, (NIL - 1) as usize);
        Conntrack {
            // Twice the entries keeps the hash table rehashing in place, never growing.
            index: HashMap::with_capacity_and_hasher(max.saturating_mul(2), Default::default()),
            // Likewise twice the peers (at most one per entry), up to PEERS_RESERVED.
            peers: HashMap::with_capacity_and_hasher(
                max.min(PEERS_RESERVED).saturating_mul(2),
                Default::default(),
            ),
            slots: Vec::with_capacity(max),
            free: Vec::with_capacity(max),
            head: NIL,
            tail: NIL,
            max,
            timeouts: config.timeouts,
            evictions: 0,
            expired: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    /// The live entry for `key`, touched and advanced by a packet going `dir` with `flags`
    /// (TCP only). An expired entry is removed and `None` returned.
    pub(crate) fn track(
        &mut self,
        key: &FlowKey,
        dir: Direction,
        flags: TcpFlags,
        now: Duration,
    ) -> Option<Entry> {
        let slot = *self.index.get(key)?;
        if self.is_expired(slot, now) {
            self.remove(slot);
            self.expired += 1;
            return None;
        }
        let entry = self.slots.get_mut(slot as usize)?;
        entry.state = advance(entry.state, key.protocol, dir != entry.initiator, flags);
        entry.last_seen = now;
        let entry = *entry;
        // Most packets belong to the connection that moved last: already at both tails.
        if self.tail != slot {
            self.unlink(slot);
            self.push_back(slot);
        }
        if self.peers.get(&entry.key.remote).map(|l| l.tail) != Some(slot) {
            self.unlink_peer(slot, false);
            self.push_back_peer(slot);
        }
        Some(entry)
    }

    /// The live entry for `key`, unchanged (for related traffic such as ICMP errors). An
    /// expired entry is removed and `None` returned.
    pub(crate) fn peek(&mut self, key: &FlowKey, now: Duration) -> Option<Entry> {
        let slot = *self.index.get(key)?;
        if self.is_expired(slot, now) {
            self.remove(slot);
            self.expired += 1;
            return None;
        }
        self.slots.get(slot as usize).copied()
    }

    /// Starts tracking a connection opened by a packet going `initiator`; evicts the
    /// longest-idle entry when full.
    pub(crate) fn insert(
        &mut self,
        key: FlowKey,
        initiator: Direction,
        flags: TcpFlags,
        rule: Option<RuleId>,
        now: Duration,
    ) {
        if let Some(&slot) = self.index.get(&key) {
            self.remove(slot);
        }
        if self.index.len() >= self.max && self.head != NIL {
            let victim = self.victim(key.remote);
            self.remove(victim);
            self.evictions += 1;
        }
        let state = match key.protocol {
            proto::TCP if flags.has(TcpFlags::RST) => State::Closed,
            proto::TCP if flags.has(TcpFlags::FIN) => State::Closing,
            proto::TCP if flags.has(TcpFlags::SYN) && !flags.has(TcpFlags::ACK) => State::SynSent,
            proto::TCP => State::PickedUp,
            _ => State::Unreplied,
        };
        let entry = Entry {
            key,
            initiator,
            state,
            rule,
            last_seen: now,
            prev: NIL,
            next: NIL,
            peer_prev: NIL,
            peer_next: NIL,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                if let Some(s) = self.slots.get_mut(slot as usize) {
                    *s = entry;
                }
                slot
            }
            None => {
                self.slots.push(entry);
                u32::try_from(self.slots.len() - 1).unwrap_or(NIL - 1)
            }
        };
        self.index.insert(key, slot);
        self.push_back(slot);
        self.push_back_peer(slot);
    }

    /// The entry to evict from a full table for a new connection of `remote`: its own
    /// longest-idle one when it holds its fair share already, else the longest-idle one
    /// of the peer holding the most (which, the table being full, is over its share).
    fn victim(&self, remote: u128) -> u32 {
        let peers = self.peers.len() + usize::from(!self.peers.contains_key(&remote));
        let share = (self.max / peers.max(1)).max(1);
        match self.peers.get(&remote) {
            Some(p) if p.count >= share => p.head,
            _ => self
                .peers
                .values()
                .max_by_key(|p| p.count)
                .map_or(self.head, |p| p.head),
        }
    }

    /// Entries of `remote` now.
    #[cfg(test)]
    pub(crate) fn peer_entries(&self, remote: u128) -> usize {
        self.peers.get(&remote).map_or(0, |p| p.count)
    }

    /// Removes expired entries; returns how many.
    pub(crate) fn expire(&mut self, now: Duration) -> usize {
        self.retain(now, |_| true).0
    }

    /// Drops expired entries, then lets `keep` inspect (and update) each live one: `false`
    /// removes it. Returns (expired, removed by `keep`).
    pub(crate) fn retain(
        &mut self,
        now: Duration,
        mut keep: impl FnMut(&mut Entry) -> bool,
    ) -> (usize, usize) {
        let (mut expired, mut cut) = (0, 0);
        let mut slot = self.head;
        while slot != NIL {
            let next = self.slots.get(slot as usize).map_or(NIL, |e| e.next);
            if self.is_expired(slot, now) {
                self.remove(slot);
                expired += 1;
            } else if let Some(entry) = self.slots.get_mut(slot as usize) {
                if !keep(entry) {
                    self.remove(slot);
                    cut += 1;
                }
            }
            slot = next;
        }
        self.expired += expired as u64;
        (expired, cut)
    }

    /// Removes every entry; returns how many there were.
    pub(crate) fn clear(&mut self) -> usize {
        let n = self.index.len();
        self.index.clear();
        self.peers.clear();
        self.slots.clear();
        self.free.clear();
        self.head = NIL;
        self.tail = NIL;
        n
    }

    fn timeout(&self, entry: &Entry) -> Duration {
        let t = &self.timeouts;
        match (entry.key.protocol, entry.state) {
            (proto::ICMP | proto::ICMPV6, _) => t.icmp_echo,
            (_, State::SynSent) => t.tcp_syn_sent,
            (_, State::SynReceived | State::PickedUp) => t.tcp_syn_received,
            (_, State::Established) => t.tcp_established,
            (_, State::Closing) => t.tcp_closing,
            (_, State::Closed) => t.tcp_closed,
            (_, State::Unreplied) => t.udp_unreplied,
            (_, State::Replied) => t.udp_replied,
        }
    }

    fn is_expired(&self, slot: u32, now: Duration) -> bool {
        self.slots
            .get(slot as usize)
            .is_some_and(|e| now.saturating_sub(e.last_seen) >= self.timeout(e))
    }

    fn remove(&mut self, slot: u32) {
        let Some(key) = self.slots.get(slot as usize).map(|e| e.key) else {
            return;
        };
        self.unlink(slot);
        self.unlink_peer(slot, true);
        self.index.remove(&key);
        self.free.push(slot);
    }

    /// Takes `slot` out of its peer's list; forgets the peer when that was its last
    /// entry and `forget_empty`.
    fn unlink_peer(&mut self, slot: u32, forget_empty: bool) {
        let Some(&Entry {
            key,
            peer_prev,
            peer_next,
            ..
        }) = self.slots.get(slot as usize)
        else {
            return;
        };
        if let Some(p) = self.slots.get_mut(peer_prev as usize) {
            p.peer_next = peer_next;
        }
        if let Some(n) = self.slots.get_mut(peer_next as usize) {
            n.peer_prev = peer_prev;
        }
        if let Some(list) = self.peers.get_mut(&key.remote) {
            if list.head == slot {
                list.head = peer_next;
            }
            if list.tail == slot {
                list.tail = peer_prev;
            }
            list.count = list.count.saturating_sub(1);
            if list.count == 0 && forget_empty {
                self.peers.remove(&key.remote);
            }
        }
        if let Some(e) = self.slots.get_mut(slot as usize) {
            e.peer_prev = NIL;
            e.peer_next = NIL;
        }
    }

    /// Appends `slot` to its peer's list (newest last).
    fn push_back_peer(&mut self, slot: u32) {
        let Some(remote) = self.slots.get(slot as usize).map(|e| e.key.remote) else {
            return;
        };
        let list = self.peers.entry(remote).or_insert(PeerList {
            head: NIL,
            tail: NIL,
            count: 0,
        });
        let tail = list.tail;
        list.tail = slot;
        if list.head == NIL {
            list.head = slot;
        }
        list.count += 1;
        if let Some(t) = self.slots.get_mut(tail as usize) {
            t.peer_next = slot;
        }
        if let Some(e) = self.slots.get_mut(slot as usize) {
            e.peer_prev = tail;
            e.peer_next = NIL;
        }
    }

    fn unlink(&mut self, slot: u32) {
        let Some(&Entry { prev, next, .. }) = self.slots.get(slot as usize) else {
            return;
        };
        match self.slots.get_mut(prev as usize) {
            Some(p) => p.next = next,
            None => self.head = next,
        }
        match self.slots.get_mut(next as usize) {
            Some(n) => n.prev = prev,
            None => self.tail = prev,
        }
        if let Some(e) = self.slots.get_mut(slot as usize) {
            e.prev = NIL;
            e.next = NIL;
        }
    }

    fn push_back(&mut self, slot: u32) {
        let tail = self.tail;
        if let Some(e) = self.slots.get_mut(slot as usize) {
            e.prev = tail;
            e.next = NIL;
        }
        match self.slots.get_mut(tail as usize) {
            Some(t) => t.next = slot,
            None => self.head = slot,
        }
        self.tail = slot;
    }
}

/// The next state after a packet (`is_reply`: it goes against the opening direction).
fn advance(state: State, protocol: u8, is_reply: bool, flags: TcpFlags) -> State {
    if protocol != proto::TCP {
        return if is_reply { State::Replied } else { state };
    }
    let syn_only = flags.has(TcpFlags::SYN) && !flags.has(TcpFlags::ACK);
    match state {
        _ if flags.has(TcpFlags::RST) => State::Closed,
        State::Closing | State::Closed if syn_only && !is_reply => State::SynSent, // port reuse
        State::Closed => State::Closed,
        _ if flags.has(TcpFlags::FIN) => State::Closing,
        State::PickedUp if is_reply => State::Established,
        State::SynSent if is_reply && flags.has(TcpFlags::SYN | TcpFlags::ACK) => {
            State::SynReceived
        }
        State::SynReceived
            if !is_reply && flags.has(TcpFlags::ACK) && !flags.has(TcpFlags::SYN) =>
        {
            State::Established
        }
        other => other,
    }
}

#[cfg(test)]
mod tests;
