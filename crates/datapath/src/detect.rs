//! Incident detections of one member, fed by the firewall's denials and the router's
//! suspect drops, reported as typed [`Detection`]s.
//!
//! - **scan** and **denied-flow burst**: [`segwire_policy::Detector`] on the firewall's
//!   denials (egress: this member probing peers; ingress: peers hammering this member);
//! - **spoof**: this member's workload sending with a source address not its own (the
//!   firewall denies it as not local), or a peer whose decrypted packet claims a source
//!   not routed to it (the router drops it);
//! - **handshake failures** from one underlay address (an unknown static key, a wrong
//!   preshared key, a bad MAC).
//!
//! Memory is bounded: the firewall detector by its thresholds, every other table by
//! [`MAX_KEYS`] entries and the queue of detections not polled yet by [`MAX_READY`].
//! Each kind is reported at most once per key and cooldown, however long an attack lasts.
//! Sans-IO: `now` is the caller's clock.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use segwire_policy::{Detection as FirewallDetection, Detector, DetectorConfig, Packet};
use segwire_tunnel::{PublicKey, Suspect};

/// Most distinct spoofing peers, spoofed sources or failing addresses tracked per kind.
pub const MAX_KEYS: usize = 64;
/// Most detections held until polled (later ones are dropped and counted).
pub const MAX_READY: usize = 64;

/// Thresholds of the detectors.
///
/// Why these numbers: a workload never sends with a foreign source by accident (the
/// kernel picks the interface's address) and a peer's packets are source-checked after
/// authentication, so a few packets in a few seconds already mean intent; 3 is the least
/// that rules out one stray packet racing a netmap change. Handshakes to a stock
/// WireGuard peer are retried every 5 s, so 3 failures in 30 s is a peer that keeps
/// trying with the wrong key or preshared key, while a preshared-key rotation (at most
/// one or two failures while the other side catches up) stays below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetectConfig {
    /// Scan and denied-burst thresholds.
    pub firewall: DetectorConfig,
    /// Spoofed packets (sent or received) that make a detection.
    pub spoof_packets: u64,
    /// Within this time.
    pub spoof_window: Duration,
    /// Failed handshakes from one address that make a detection.
    pub handshake_failures: u64,
    /// Within this time.
    pub handshake_window: Duration,
    /// After a detection, the same kind and key is not reported again for this long.
    pub cooldown: Duration,
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            firewall: DetectorConfig::default(),
            spoof_packets: 3,
            spoof_window: Duration::from_secs(10),
            handshake_failures: 3,
            handshake_window: Duration::from_secs(30),
            cooldown: Duration::from_secs(60),
        }
    }
}

/// One detection, to be reported to the coordinator at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detection {
    /// A scan (this member probing many denied peer ports) or a denied-flow burst (many
    /// denied packets toward this member), from the firewall's denials.
    Firewall(FirewallDetection),
    /// This member's workload sent packets with a source address not its own.
    SpoofSent {
        /// The source it claimed.
        claimed: IpAddr,
        /// Packets in the window.
        packets: u64,
        /// How long it took to cross the threshold.
        within: Duration,
    },
    /// A peer sent packets whose inner source is not its own address.
    SpoofReceived {
        /// The peer.
        peer: PublicKey,
        /// Its underlay address.
        from: SocketAddr,
        /// The last inner source it claimed (`None`: none could be read).
        claimed: Option<IpAddr>,
        /// Packets in the window.
        packets: u64,
        /// How long it took to cross the threshold.
        within: Duration,
    },
    /// Handshakes from one underlay address keep failing.
    HandshakeFailed {
        /// The address (last port seen).
        from: SocketAddr,
        /// The peer whose tunnel refused them; `None` for a key no peer has.
        peer: Option<PublicKey>,
        /// Failures in the window.
        failures: u64,
        /// How long it took to cross the threshold.
        within: Duration,
    },
}

/// The detectors of one member.
#[derive(Debug)]
pub struct Detections {
    firewall: Detector,
    sent: Windows<IpAddr>,
    received: Windows<PublicKey>,
    handshakes: Windows<IpAddr>,
    ready: VecDeque<Detection>,
    /// Detections dropped because [`MAX_READY`] were waiting.
    pub dropped: u64,
}

impl Detections {
    /// Detectors with `config`.
    #[must_use]
    pub fn new(config: DetectConfig) -> Self {
        let cooldown = config.cooldown;
        Self {
            firewall: Detector::new(config.firewall),
            sent: Windows::new(config.spoof_packets, config.spoof_window, cooldown),
            received: Windows::new(config.spoof_packets, config.spoof_window, cooldown),
            handshakes: Windows::new(config.handshake_failures, config.handshake_window, cooldown),
            ready: VecDeque::new(),
            dropped: 0,
        }
    }

    /// A packet of the workload's the firewall denied because no rule allows it.
    pub fn denied_egress(&mut self, packet: &Packet, now: Duration) {
        self.firewall.denied_egress(packet, now);
        self.collect_firewall();
    }

    /// A packet for the workload the firewall denied because no rule allows it.
    pub fn denied_ingress(&mut self, packet: &Packet, now: Duration) {
        self.firewall.denied_ingress(packet, now);
        self.collect_firewall();
    }

    /// A packet of the workload's with a source address not the member's.
    pub fn foreign_source(&mut self, packet: &Packet, now: Duration) {
        if let Some((packets, within)) = self.sent.hit(packet.src, now) {
            self.push(Detection::SpoofSent {
                claimed: packet.src,
                packets,
                within,
            });
        }
    }

    /// A suspect drop of the router.
    pub fn suspect(&mut self, suspect: Suspect, now: Duration) {
        match suspect {
            Suspect::SpoofedSource {
                peer,
                from,
                claimed,
            } => {
                if let Some((packets, within)) = self.received.hit(peer, now) {
                    self.push(Detection::SpoofReceived {
                        peer,
                        from,
                        claimed,
                        packets,
                        within,
                    });
                }
            }
            Suspect::HandshakeFailed { from, peer } => {
                if let Some((failures, within)) = self.handshakes.hit(from.ip(), now) {
                    self.push(Detection::HandshakeFailed {
                        from,
                        peer,
                        failures,
                        within,
                    });
                }
            }
        }
    }

    /// The next detection to report, oldest first.
    #[must_use]
    pub fn poll(&mut self) -> Option<Detection> {
        self.ready.pop_front()
    }

    fn collect_firewall(&mut self) {
        while let Some(d) = self.firewall.poll_detection() {
            self.push(Detection::Firewall(d));
        }
    }

    fn push(&mut self, d: Detection) {
        tracing::debug!(detection = ?d, "incident detected");
        if self.ready.len() < MAX_READY {
            self.ready.push_back(d);
        } else {
            self.dropped += 1;
        }
    }
}

/// Counts events per key in a window; reports a key when it crosses the threshold, at
/// most once per cooldown. At most [`MAX_KEYS`] keys: a new key then replaces the one
/// whose window started first.
#[derive(Debug)]
struct Windows<K> {
    threshold: u64,
    window: Duration,
    cooldown: Duration,
    entries: Vec<Entry<K>>,
}

#[derive(Debug)]
struct Entry<K> {
    key: K,
    start: Duration,
    count: u64,
    reported: Option<Duration>,
}

impl<K: PartialEq + Copy> Windows<K> {
    fn new(threshold: u64, window: Duration, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            window,
            cooldown,
            entries: Vec::new(),
        }
    }

    /// Counts one event of `key`; `Some((count, within))` when that makes a detection.
    fn hit(&mut self, key: K, now: Duration) -> Option<(u64, Duration)> {
        let i = match self.entries.iter().position(|e| e.key == key) {
            Some(i) => i,
            None => {
                let fresh = Entry {
                    key,
                    start: now,
                    count: 0,
                    reported: None,
                };
                if self.entries.len() < MAX_KEYS {
                    self.entries.push(fresh);
                    self.entries.len() - 1
                } else {
                    let (oldest, _) = self
                        .entries
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, e)| e.start)?;
                    self.entries[oldest] = fresh;
                    oldest
                }
            }
        };
        let e = &mut self.entries[i];
        if now.saturating_sub(e.start) > self.window {
            e.start = now;
            e.count = 0;
        }
        e.count += 1;
        if e.count < self.threshold {
            return None;
        }
        let found = (e.count, now.saturating_sub(e.start));
        e.count = 0;
        e.start = now;
        if e.reported
            .is_some_and(|t| now.saturating_sub(t) < self.cooldown)
        {
            return None;
        }
        e.reported = Some(now);
        Some(found)
    }
}

#[cfg(test)]
mod tests;
