//! [`Member`]: the router, the firewall and the flow log of one member, composed.

use std::net::SocketAddr;
use std::time::Duration;

use segwire_policy::{
    CompiledPolicy, ConntrackConfig, Counters, DenyReason, Direction, Firewall, Packet,
    ReplaceSummary, Verdict,
};
use segwire_tunnel::{
    DatagramBatch, PacketBatch, PeerChange, PeerConfig, PeerStatus, PresharedKey, PublicKey,
    Router, RouterConfig, RouterError, RouterStatus,
};

use crate::detect::{DetectConfig, Detection, Detections};
use crate::flows::{FlowKey, FlowLog, FlowStat, NamedFlow};

/// How often WireGuard's timers run (handshake retries, keepalives, rekeys).
pub const TIMER_INTERVAL: Duration = Duration::from_millis(250);
/// How often expired tracked connections are swept.
pub const EXPIRE_INTERVAL: Duration = Duration::from_secs(4);

/// Everything a [`Member`] needs to start.
pub struct MemberConfig {
    /// The router's keys and address.
    pub router: RouterConfig,
    /// The member's compiled policy.
    pub policy: CompiledPolicy,
    /// Connection tracking limits.
    pub conntrack: ConntrackConfig,
    /// Incident detection thresholds.
    pub detect: DetectConfig,
    /// Wall-clock unix seconds at `now == 0` (flow records carry real times; the member
    /// adds `now` to it and never reads a clock).
    pub unix_epoch: u64,
    /// Packets per batch the shell reads (sizes the output batches once).
    pub batch: usize,
    /// The largest packet the shell reads from the TUN device (sizes the output batches).
    pub max_packet: usize,
}

/// The sans-IO data path of one member: packets from the workload are judged by the
/// firewall and encrypted; datagrams from peers are decrypted, source-checked and judged;
/// every new connection and every denial goes to the flow log, and denials and suspect
/// drops feed the incident detectors ([`Member::poll_detection`]).
///
/// No sockets, no tasks, no clock: every call takes `now`, a [`Duration`] since an epoch
/// the shell fixes once, the same clock for the router and the firewall. The shell:
///
/// 1. reads a batch from the TUN device and calls [`Member::handle_tun`], or reads a batch
///    from the UDP socket and calls [`Member::handle_udp`];
/// 2. sends [`Member::datagrams`] and writes [`Member::packets`], then clears both
///    ([`Member::clear_datagrams`], [`Member::clear_packets`]);
/// 3. calls [`Member::handle_timeout`] when [`Member::poll_timeout`] has passed (and
///    sends what it produced).
///
/// Output batches are made once and reused: in the steady state no packet allocates.
pub struct Member {
    router: Router,
    firewall: Firewall,
    flows: FlowLog,
    detections: Detections,
    unix_epoch: u64,
    /// Dropped-flow count already reported with a shipment.
    flows_dropped_reported: u64,
    to_tun: PacketBatch,
    to_udp: DatagramBatch,
    next_timers: Duration,
    next_expire: Duration,
}

impl Member {
    /// A member with no peers, whose timers first run at `now`.
    #[must_use]
    pub fn new(now: Duration, config: MemberConfig) -> Self {
        Self {
            router: Router::new(config.router),
            firewall: Firewall::new(config.policy, config.conntrack),
            flows: FlowLog::new(),
            detections: Detections::new(config.detect),
            unix_epoch: config.unix_epoch,
            flows_dropped_reported: 0,
            to_tun: PacketBatch::new(config.batch, config.max_packet),
            to_udp: DatagramBatch::new(config.batch, config.max_packet),
            next_timers: now,
            next_expire: now + EXPIRE_INTERVAL,
        }
    }

    /// Adds a peer or updates it in place (its session is kept).
    ///
    /// # Errors
    /// [`RouterError`] when the router refuses the peer.
    pub fn upsert_peer(
        &mut self,
        now: Duration,
        peer: &PeerConfig,
    ) -> Result<PeerChange, RouterError> {
        self.router.upsert_peer(now, peer)
    }

    /// Starts a handshake with every peer added (or moved) since the last call that has an
    /// endpoint and no session (initiations go to [`Member::datagrams`]); returns how many.
    /// Call it when the data path starts and after changing peers.
    pub fn initiate_pending_handshakes(&mut self, now: Duration) -> usize {
        self.router
            .initiate_pending_handshakes(now, &mut self.to_udp)
    }

    /// Removes a peer; false when there was none.
    pub fn remove_peer(&mut self, key: &PublicKey) -> bool {
        self.router.remove_peer(key)
    }

    /// Sets the segment key to initiate with and, during a rotation, a second key that is
    /// answered too (handshakes it starts go to [`Member::datagrams`]; see
    /// `Router::set_keys`); false when nothing changed.
    pub fn set_keys(
        &mut self,
        now: Duration,
        psk: PresharedKey,
        also: Option<PresharedKey>,
    ) -> bool {
        self.router.set_keys(now, psk, also, &mut self.to_udp)
    }

    /// Enforces a newly compiled policy; connections it no longer allows are cut.
    pub fn set_policy(&mut self, now: Duration, policy: CompiledPolicy) -> ReplaceSummary {
        self.firewall.replace_policy(policy, now)
    }

    /// Packets read from the TUN device: each is judged by the firewall (egress), and the
    /// allowed ones are encrypted into [`Member::datagrams`].
    pub fn handle_tun<'a, I>(&mut self, now: Duration, packets: I)
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let unix = self.unix_secs(now);
        let (firewall, flows, detections) =
            (&mut self.firewall, &mut self.flows, &mut self.detections);
        let allowed = packets.into_iter().filter(|p| {
            let v = firewall.egress(p, now);
            flows.record(Direction::Egress, p, v, unix);
            if let Verdict::Deny { reason } = v {
                detect_denied(detections, Direction::Egress, reason, p, now);
            }
            v.is_allowed()
        });
        self.router
            .encapsulate_batch(now, allowed, &mut self.to_udp);
    }

    /// Datagrams read from the UDP socket with their source: decrypted packets whose inner
    /// source belongs to the sending peer and that the firewall allows (ingress) go to
    /// [`Member::packets`]; handshake replies and cookies to [`Member::datagrams`].
    /// Returns how many datagrams it took (so the shell need not walk the batch twice).
    pub fn handle_udp<'a, I>(&mut self, now: Duration, datagrams: I) -> usize
    where
        I: IntoIterator<Item = (SocketAddr, &'a [u8])>,
    {
        let before = self.to_tun.len();
        let mut taken = 0;
        let counted = datagrams.into_iter().inspect(|_| taken += 1);
        self.router
            .decapsulate_batch(now, counted, &mut self.to_tun, &mut self.to_udp);
        for suspect in self.router.drain_suspects() {
            self.detections.suspect(suspect, now);
        }
        let unix = self.unix_secs(now);
        let (firewall, flows, detections) =
            (&mut self.firewall, &mut self.flows, &mut self.detections);
        self.to_tun.retain_from(before, |p| {
            let v = firewall.ingress(p, now);
            flows.record(Direction::Ingress, p, v, unix);
            if let Verdict::Deny { reason } = v {
                detect_denied(detections, Direction::Ingress, reason, p, now);
            }
            v.is_allowed()
        });
        taken
    }

    /// The next incident detection to report, oldest first. Call after every
    /// `handle_*` call and report each one at once (each kind and key is reported at most
    /// once per cooldown, so this stays quiet during a long attack).
    #[must_use]
    pub fn poll_detection(&mut self) -> Option<Detection> {
        self.detections.poll()
    }

    /// Detections dropped because too many waited to be polled (since start).
    #[must_use]
    pub fn detections_dropped(&self) -> u64 {
        self.detections.dropped
    }

    /// Runs what is due at `now`: WireGuard's timers every [`TIMER_INTERVAL`] and the sweep
    /// of expired connections every [`EXPIRE_INTERVAL`]. Calling it early does nothing.
    pub fn handle_timeout(&mut self, now: Duration) {
        if now >= self.next_timers {
            self.router.handle_timers(now, &mut self.to_udp);
            self.next_timers = now + TIMER_INTERVAL;
        }
        if now >= self.next_expire {
            let gone = self.firewall.expire(now);
            tracing::trace!(gone, "expired tracked connections");
            self.next_expire = now + EXPIRE_INTERVAL;
        }
    }

    /// When to call [`Member::handle_timeout`] next (on the same clock as `now`). Ask again
    /// after every `handle_*` call.
    #[must_use]
    pub fn poll_timeout(&self) -> Duration {
        self.next_timers.min(self.next_expire)
    }

    /// Datagrams to send, each to its destination, in order.
    #[must_use]
    pub fn datagrams(&self) -> &DatagramBatch {
        &self.to_udp
    }

    /// Forgets the datagrams (once sent), keeping the buffer.
    pub fn clear_datagrams(&mut self) {
        self.to_udp.clear();
    }

    /// Packets for the TUN device, in order (mutable, so the shell may fill headroom).
    pub fn packets(&mut self) -> &mut PacketBatch {
        &mut self.to_tun
    }

    /// Forgets the packets (once written), keeping the buffer.
    pub fn clear_packets(&mut self) {
        self.to_tun.clear();
    }

    /// Hands over the flow records not shipped yet, and how many new flows were not
    /// logged (table full) since the last call.
    pub fn take_flows(&mut self) -> (Vec<NamedFlow>, u64) {
        let taken = self.flows.take_unshipped();
        let dropped = self.flows.dropped - self.flows_dropped_reported;
        self.flows_dropped_reported = self.flows.dropped;
        (self.name_flows(taken), dropped)
    }

    /// The `n` busiest flow records.
    #[must_use]
    pub fn top_flows(&self, n: usize) -> Vec<NamedFlow> {
        self.name_flows(self.flows.top(n))
    }

    /// New flows not logged because the flow table was full (since start).
    #[must_use]
    pub fn flows_dropped(&self) -> u64 {
        self.flows.dropped
    }

    /// The router's view: peers, handshakes, traffic, drops.
    #[must_use]
    pub fn router_status(&self, now: Duration) -> RouterStatus {
        self.router.status(now)
    }

    /// One peer's status.
    #[must_use]
    pub fn peer_status(&self, key: &PublicKey, now: Duration) -> Option<PeerStatus> {
        self.router.peer_status(key, now)
    }

    /// Firewall counters (allowed, denied, tracked connections, evictions).
    #[must_use]
    pub fn firewall_counters(&self) -> Counters {
        self.firewall.counters()
    }

    /// Packets allowed per rule of the policy in force: `(rule name, count)`.
    #[must_use]
    pub fn rule_counters(&self) -> Vec<(String, u64)> {
        self.firewall
            .rule_counters()
            .map(|r| (r.name.to_owned(), r.allowed))
            .collect()
    }

    fn unix_secs(&self, now: Duration) -> u64 {
        self.unix_epoch + now.as_secs()
    }

    fn name_flows(&self, flows: Vec<(FlowKey, FlowStat)>) -> Vec<NamedFlow> {
        let policy = self.firewall.policy();
        flows
            .into_iter()
            .map(|(key, stat)| NamedFlow {
                key,
                stat,
                rule: key
                    .rule
                    .and_then(|r| policy.rule_name(r))
                    .map(str::to_owned),
            })
            .collect()
    }
}

/// Feeds one denial to the detectors: no rule allowed it (scan, burst) or the workload
/// used a source address not its own (spoof).
fn detect_denied(
    detections: &mut Detections,
    direction: Direction,
    reason: DenyReason,
    bytes: &[u8],
    now: Duration,
) {
    let Ok(packet) = Packet::parse(bytes) else {
        return;
    };
    match (direction, reason) {
        (Direction::Egress, DenyReason::NoRule) => detections.denied_egress(&packet, now),
        (Direction::Ingress, DenyReason::NoRule) => detections.denied_ingress(&packet, now),
        (Direction::Egress, DenyReason::NotLocal) => detections.foreign_source(&packet, now),
        _ => {}
    }
}
