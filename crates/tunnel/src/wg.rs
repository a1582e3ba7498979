//! The only module that touches boringtun.
//!
//! It wraps `boringtun::noise::Tunn` into [`WgTunnel`], `TunnResult` into
//! [`WgOutput`], boringtun's bare `WireGuardError` into our typed [`WgError`],
//! and the shared `RateLimiter` plus `parse_handshake_anon` into [`Identity`].
//!
//! # Time
//!
//! boringtun 0.7 reads its own clock (`sleepyinstant`, i.e. `CLOCK_BOOTTIME`)
//! inside `Tunn::update_timers`, and we must not enable its `mock-instant`
//! feature (cargo would unify it into the production binary). So we layer our
//! own timers ([`crate::timers::Timers`], driven only by the caller's `now`) on
//! top and let *them* decide: retransmit an initiation after REKEY_TIMEOUT,
//! rekey after REKEY_AFTER_TIME (on send) or REJECT_AFTER_TIME − 15 s (on
//! receive), start a handshake after 15 s without an answer, send keepalives
//! (passive and persistent), give up after REKEY_ATTEMPT_TIME, and drop every
//! session once the newest is REJECT_AFTER_TIME old. A forced initiation is
//! `format_handshake_initiation(dst, true)`, a keepalive is `encapsulate(&[])`,
//! and "drop every session" is `set_static_private` with the same key (it
//! clears the session ring but keeps the handshake replay timestamp).
//!
//! After our timers we still call `update_timers` once per tick for boringtun's
//! bookkeeping (its `TimeCurrent`, which orders sessions so that a late packet
//! on an old session does not switch sending back to it). That is safe:
//! - in production our clock and boringtun's advance together, so both layers
//!   want the same action at the same moment; every datagram either layer
//!   emits goes through [`WgTunnel::observe_sent`], so the slower layer sees
//!   the fresh state and does not repeat it (boringtun keeps the previous
//!   initiation valid too, so a duplicate would still be harmless);
//! - persistent keepalive is given to our timers only (boringtun's is off);
//! - in tests on virtual time boringtun's clock barely moves, none of its
//!   thresholds are reached and only our timers act.
//!
//! Remaining uses of boringtun's clock that we accept: the shared rate
//! limiter's once-a-second reset and its cookie secret rotation (DoS defence in
//! real time), the initiation's TAI64N timestamp (must be wall-clock anyway)
//! and the RTT estimate we do not use.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use boringtun::noise::errors::WireGuardError;
use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::noise::{Packet, Tunn, TunnResult};
use x25519_dalek::StaticSecret;

use crate::batch::DATA_OVERHEAD;
use crate::stats::DropReason;
use crate::timers::{TimerAction, Timers, REJECT_AFTER_TIME};
use crate::{PresharedKey, PublicKey};

const MSG_INITIATION: u8 = 1;
const MSG_RESPONSE: u8 = 2;
const MSG_DATA: u8 = 4;
/// Upper bound on packets boringtun queues while a handshake is pending.
const MAX_QUEUED: usize = 256;

/// A WireGuard protocol error, one per boringtun `WireGuardError`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[allow(missing_docs)] // the messages say it
pub enum WgError {
    #[error("destination buffer too small")]
    DestinationBufferTooSmall,
    #[error("incorrect packet length")]
    IncorrectPacketLength,
    #[error("unexpected packet")]
    UnexpectedPacket,
    #[error("wrong packet type")]
    WrongPacketType,
    #[error("wrong receiver index")]
    WrongIndex,
    #[error("wrong static key")]
    WrongKey,
    #[error("invalid TAI64N timestamp")]
    InvalidTai64nTimestamp,
    #[error("replayed or old handshake timestamp")]
    WrongTai64nTimestamp,
    #[error("invalid MAC")]
    InvalidMac,
    #[error("authentication tag mismatch")]
    InvalidAeadTag,
    #[error("invalid counter")]
    InvalidCounter,
    #[error("duplicate counter")]
    DuplicateCounter,
    #[error("malformed packet")]
    InvalidPacket,
    #[error("no current session")]
    NoCurrentSession,
    #[error("lock failed")]
    LockFailed,
    #[error("connection expired")]
    ConnectionExpired,
    #[error("under load")]
    UnderLoad,
}

impl From<WireGuardError> for WgError {
    fn from(e: WireGuardError) -> Self {
        use WireGuardError as E;
        match e {
            E::DestinationBufferTooSmall => Self::DestinationBufferTooSmall,
            E::IncorrectPacketLength => Self::IncorrectPacketLength,
            E::UnexpectedPacket => Self::UnexpectedPacket,
            E::WrongPacketType => Self::WrongPacketType,
            E::WrongIndex => Self::WrongIndex,
            E::WrongKey => Self::WrongKey,
            E::InvalidTai64nTimestamp => Self::InvalidTai64nTimestamp,
            E::WrongTai64nTimestamp => Self::WrongTai64nTimestamp,
            E::InvalidMac => Self::InvalidMac,
            E::InvalidAeadTag => Self::InvalidAeadTag,
            E::InvalidCounter => Self::InvalidCounter,
            E::DuplicateCounter => Self::DuplicateCounter,
            E::InvalidPacket => Self::InvalidPacket,
            E::NoCurrentSession => Self::NoCurrentSession,
            E::LockFailed => Self::LockFailed,
            E::ConnectionExpired => Self::ConnectionExpired,
            E::UnderLoad => Self::UnderLoad,
        }
    }
}

impl WgError {
    /// The drop counter for this error on a handshake message (`true`) or a data packet.
    pub fn drop_reason(self, handshake: bool) -> DropReason {
        match self {
            Self::InvalidPacket | Self::IncorrectPacketLength | Self::WrongPacketType => {
                DropReason::Malformed
            }
            Self::UnderLoad => DropReason::UnderLoad,
            _ if handshake => DropReason::HandshakeFailed,
            Self::InvalidCounter | Self::DuplicateCounter => DropReason::Replay,
            Self::NoCurrentSession | Self::WrongIndex | Self::ConnectionExpired => {
                DropReason::NoSession
            }
            _ => DropReason::DecryptFailed,
        }
    }
}

/// What a call produced; the bytes are at the start of the `dst` it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WgOutput {
    /// Nothing to send or deliver.
    Done,
    /// A datagram of this length to send to the peer.
    Network(usize),
    /// A decrypted IPv4 or IPv6 packet of this length with this source.
    Tunnel { len: usize, src: IpAddr },
}

/// Where boringtun put its output inside `dst`.
struct Settled {
    off: usize,
    out: WgOutput,
}

impl Settled {
    /// Moves the output to the start of `dst` (boringtun always writes there,
    /// so this is a no-op in practice) and returns it.
    fn place(self, dst: &mut [u8]) -> WgOutput {
        let len = match self.out {
            WgOutput::Network(len) | WgOutput::Tunnel { len, .. } => len,
            WgOutput::Done => 0,
        };
        if self.off != 0 && len > 0 {
            dst.copy_within(self.off..self.off + len, 0);
        }
        self.out
    }
}

/// Converts boringtun's result; `base` is the address of the `dst` it was given.
fn settle(base: usize, r: TunnResult<'_>) -> Result<Settled, WgError> {
    let at = |p: &[u8]| (p.as_ptr() as usize).wrapping_sub(base);
    let (off, out) = match r {
        TunnResult::Done => (0, WgOutput::Done),
        TunnResult::Err(e) => return Err(e.into()),
        TunnResult::WriteToNetwork(p) => (at(p), WgOutput::Network(p.len())),
        TunnResult::WriteToTunnelV4(p, src) => (
            at(p),
            WgOutput::Tunnel {
                len: p.len(),
                src: src.into(),
            },
        ),
        TunnResult::WriteToTunnelV6(p, src) => (
            at(p),
            WgOutput::Tunnel {
                len: p.len(),
                src: src.into(),
            },
        ),
    };
    Ok(Settled { off, out })
}

/// The member's own identity: static key and the router-wide rate limiter.
pub(crate) struct Identity {
    secret: StaticSecret,
    public: x25519_dalek::PublicKey,
    limiter: Arc<RateLimiter>,
}

/// Where an inbound datagram goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Inbound {
    /// A handshake initiation from this static key.
    Initiation(PublicKey),
    /// A response, cookie reply or data packet for the tunnel with this index.
    Indexed(u32),
    /// Under load: a cookie reply of this length was written to `cookie_dst`.
    CookieReply(usize),
}

impl Identity {
    /// Identity for `secret`, allowing `rate_limit` handshake messages per second
    /// before demanding cookies (each initiation counts twice, see [`Identity::classify`]).
    pub(crate) fn new(secret: StaticSecret, rate_limit: u64) -> Self {
        let public = x25519_dalek::PublicKey::from(&secret);
        let limiter = Arc::new(RateLimiter::new(&public, rate_limit));
        Self {
            secret,
            public,
            limiter,
        }
    }

    /// Resets the rate limiter's count (at most once per real second; call on every tick).
    pub(crate) fn reset_rate_limit(&self) {
        self.limiter.reset_count();
    }

    /// Finds out who a datagram is for. Initiations are checked (MAC, load)
    /// before the expensive decryption of the initiator's static key; the
    /// tunnel checks them again, so each counts twice against the limit.
    pub(crate) fn classify(
        &self,
        src: IpAddr,
        datagram: &[u8],
        cookie_dst: &mut [u8],
    ) -> Result<Inbound, WgError> {
        if datagram.is_empty() {
            return Err(WgError::InvalidPacket);
        }
        match Tunn::parse_incoming_packet(datagram)? {
            Packet::HandshakeInit(_) => {}
            Packet::HandshakeResponse(p) => return Ok(Inbound::Indexed(p.receiver_idx >> 8)),
            Packet::PacketCookieReply(p) => return Ok(Inbound::Indexed(p.receiver_idx >> 8)),
            Packet::PacketData(p) => return Ok(Inbound::Indexed(p.receiver_idx >> 8)),
        }
        match self.limiter.verify_packet(Some(src), datagram, cookie_dst) {
            Ok(Packet::HandshakeInit(init)) => {
                let half = parse_handshake_anon(&self.secret, &self.public, &init)?;
                Ok(Inbound::Initiation(PublicKey(half.peer_static_public)))
            }
            Ok(_) => Err(WgError::WrongPacketType),
            Err(TunnResult::WriteToNetwork(cookie)) => Ok(Inbound::CookieReply(cookie.len())),
            Err(TunnResult::Err(e)) => Err(e.into()),
            Err(_) => Err(WgError::UnexpectedPacket),
        }
    }

    fn limiter(&self) -> Arc<RateLimiter> {
        Arc::clone(&self.limiter)
    }
}

/// One boringtun `Tunn` with our timers and handshake bookkeeping.
pub(crate) struct WgTunnel {
    tunn: Tunn,
    timers: Timers,
    secret: StaticSecret,
    limiter: Arc<RateLimiter>,
    index: u32,
    /// boringtun may hold packets queued for a session that does not exist yet.
    queued: bool,
    /// Our index of a responder session that waits for the initiator's first packet.
    pending_confirm: Option<u32>,
    /// Some completed (confirmed) session exists to send on.
    sendable: bool,
    handshakes: u64,
    last_handshake: Option<Duration>,
}

impl WgTunnel {
    /// A tunnel to `peer` created at `now`; `index` (24 bits) tags its sessions.
    pub(crate) fn new(
        now: Duration,
        identity: &Identity,
        peer: &PublicKey,
        psk: &PresharedKey,
        index: u32,
        persistent_keepalive: Option<u16>,
    ) -> Self {
        let limiter = identity.limiter();
        let tunn = Tunn::new(
            identity.secret.clone(),
            x25519_dalek::PublicKey::from(peer.0),
            Some(psk.bytes()),
            None, // persistent keepalive is driven by our timers
            index,
            Some(Arc::clone(&limiter)),
        );
        Self {
            tunn,
            timers: Timers::new(now, persistent_keepalive),
            secret: identity.secret.clone(),
            limiter,
            index,
            queued: false,
            pending_confirm: None,
            sendable: false,
            handshakes: 0,
            last_handshake: None,
        }
    }

    /// The 24-bit index in the upper bits of this tunnel's session indices.
    pub(crate) fn index(&self) -> u32 {
        self.index
    }

    /// A confirmed session exists: data sent now goes out encrypted, not queued.
    pub(crate) fn sendable(&self) -> bool {
        self.sendable
    }

    /// Handshakes completed (as initiator: response received; as responder:
    /// the initiator's first packet received on the new session).
    pub(crate) fn handshakes(&self) -> u64 {
        self.handshakes
    }

    /// When the last handshake completed.
    pub(crate) fn last_handshake(&self) -> Option<Duration> {
        self.last_handshake
    }

    /// Changes the persistent keepalive interval in place.
    pub(crate) fn set_persistent_keepalive(&mut self, secs: Option<u16>) {
        self.timers.set_persistent_keepalive(secs);
    }

    /// Whether the newest session is older than REJECT_AFTER_TIME (or there is none).
    pub(crate) fn expired(&self, now: Duration) -> bool {
        self.timers
            .session_established()
            .is_none_or(|t| now.saturating_sub(t) >= REJECT_AFTER_TIME)
    }

    /// Encrypts `packet` (empty = keepalive) into `dst`, which must hold
    /// `max(packet.len() + 32, 148)` bytes. Without a session boringtun queues
    /// the packet and we make sure a handshake is under way.
    pub(crate) fn encapsulate(
        &mut self,
        now: Duration,
        packet: &[u8],
        dst: &mut [u8],
    ) -> Result<WgOutput, WgError> {
        let base = dst.as_ptr() as usize;
        let r = self.tunn.encapsulate(packet, dst);
        let out = settle(base, r)?.place(dst);
        match out {
            WgOutput::Network(len) => {
                if dst[0] != MSG_DATA {
                    self.queued = true;
                }
                self.observe_sent(now, &dst[..len]);
                Ok(out)
            }
            _ => {
                self.queued = true;
                if self.timers.attempt_active() {
                    Ok(out)
                } else {
                    self.initiate(now, dst)
                }
            }
        }
    }

    /// Sends a new initiation unless one is being retried or a session is usable.
    pub(crate) fn ensure_handshake(
        &mut self,
        now: Duration,
        dst: &mut [u8],
    ) -> Result<WgOutput, WgError> {
        if self.sendable || self.timers.attempt_active() {
            return Ok(WgOutput::Done);
        }
        self.initiate(now, dst)
    }

    /// Forces a new handshake initiation into `dst` (≥ 148 bytes).
    pub(crate) fn initiate(&mut self, now: Duration, dst: &mut [u8]) -> Result<WgOutput, WgError> {
        let base = dst.as_ptr() as usize;
        let r = self.tunn.format_handshake_initiation(dst, true);
        let out = settle(base, r)?.place(dst);
        if let WgOutput::Network(len) = out {
            self.observe_sent(now, &dst[..len]);
        }
        Ok(out)
    }

    /// Handles a non-empty datagram from `src`. `dst` must hold
    /// `max(datagram.len(), 148)` bytes.
    pub(crate) fn decapsulate(
        &mut self,
        now: Duration,
        src: IpAddr,
        datagram: &[u8],
        dst: &mut [u8],
    ) -> Result<WgOutput, WgError> {
        let Some(&kind) = datagram.first() else {
            // boringtun reads an empty datagram as "send queued packets".
            return Err(WgError::InvalidPacket);
        };
        let base = dst.as_ptr() as usize;
        let r = self.tunn.decapsulate(Some(src), datagram, dst);
        let out = settle(base, r)?.place(dst);
        match out {
            WgOutput::Network(len) => {
                if kind == MSG_RESPONSE && dst[0] == MSG_DATA {
                    // Our initiation was answered; boringtun replies with a keepalive.
                    self.timers.on_received(now, false);
                    self.timers.on_session_established(now, true);
                    self.pending_confirm = None;
                    self.complete(now);
                }
                self.observe_sent(now, &dst[..len]);
            }
            WgOutput::Tunnel { .. } | WgOutput::Done if kind == MSG_DATA => {
                self.timers.on_received(now, !matches!(out, WgOutput::Done));
                let receiver =
                    u32::from_le_bytes([datagram[4], datagram[5], datagram[6], datagram[7]]);
                if self.pending_confirm == Some(receiver) {
                    self.pending_confirm = None;
                    self.complete(now);
                }
            }
            _ => {}
        }
        Ok(out)
    }

    /// Whether queued packets may now go out through [`WgTunnel::drain`].
    pub(crate) fn wants_drain(&self) -> bool {
        self.queued && self.sendable
    }

    /// Sends one queued packet into `dst` (≥ 65535 + 32 bytes); call until `Done`.
    pub(crate) fn drain(&mut self, now: Duration, dst: &mut [u8]) -> Result<WgOutput, WgError> {
        let base = dst.as_ptr() as usize;
        let r = self.tunn.decapsulate(None, &[], dst);
        let out = settle(base, r)?.place(dst);
        match out {
            WgOutput::Network(len) if dst[0] == MSG_DATA => self.observe_sent(now, &dst[..len]),
            WgOutput::Network(len) => {
                // No session after all: boringtun re-queued and sent an initiation.
                self.observe_sent(now, &dst[..len]);
                self.sendable = false;
            }
            _ => self.queued = false,
        }
        Ok(out)
    }

    /// Upper bound on [`WgTunnel::drain`] calls that can produce something.
    pub(crate) const MAX_DRAIN: usize = MAX_QUEUED + 1;

    /// Runs the timers at `now`; writes at most one datagram (≥ 148 bytes of
    /// `dst`). Call until it returns `Done` (a few times at most).
    pub(crate) fn tick(&mut self, now: Duration, dst: &mut [u8]) -> Result<WgOutput, WgError> {
        loop {
            match self.timers.poll(now) {
                TimerAction::Nothing => break,
                TimerAction::ExpireSessions => self.clear_sessions(),
                TimerAction::Initiate => return self.initiate(now, dst),
                TimerAction::Keepalive => return self.encapsulate(now, &[], dst),
            }
        }
        let base = dst.as_ptr() as usize;
        let r = self.tunn.update_timers(dst);
        match settle(base, r).map(|s| s.place(dst)) {
            Ok(WgOutput::Network(len)) => {
                self.observe_sent(now, &dst[..len]);
                Ok(WgOutput::Network(len))
            }
            Ok(_) => Ok(WgOutput::Done),
            Err(WgError::ConnectionExpired) => {
                // boringtun's own clock expired the tunnel and cleared its sessions.
                self.timers.on_sessions_cleared();
                self.sendable = false;
                self.pending_confirm = None;
                Ok(WgOutput::Done)
            }
            Err(e) => Err(e),
        }
    }

    /// Drops every session but keeps the handshake replay protection.
    fn clear_sessions(&mut self) {
        tracing::debug!(index = self.index, "sessions expired (REJECT_AFTER_TIME)");
        let public = x25519_dalek::PublicKey::from(&self.secret);
        self.tunn
            .set_static_private(self.secret.clone(), public, Some(Arc::clone(&self.limiter)));
        self.timers.on_sessions_cleared();
        self.sendable = false;
        self.pending_confirm = None;
    }

    fn complete(&mut self, now: Duration) {
        self.sendable = true;
        // boringtun may hold packets queued while we thought a session existed
        // (its own clock can drop sessions first); one drain call is cheap.
        self.queued = true;
        self.handshakes += 1;
        self.last_handshake = Some(now);
        tracing::debug!(index = self.index, "handshake completed");
    }

    /// Feeds a datagram boringtun produced into our timers.
    fn observe_sent(&mut self, now: Duration, msg: &[u8]) {
        match msg.first() {
            Some(&MSG_INITIATION) => self.timers.on_initiation_sent(now),
            Some(&MSG_RESPONSE) if msg.len() >= 8 => {
                // We answered an initiation: a responder session exists now.
                self.timers.on_received(now, false);
                self.timers.on_session_established(now, false);
                self.timers.on_data_sent(now, true);
                self.pending_confirm = Some(u32::from_le_bytes([msg[4], msg[5], msg[6], msg[7]]));
            }
            Some(&MSG_DATA) => self.timers.on_data_sent(now, msg.len() == DATA_OVERHEAD),
            _ => {}
        }
    }
}
