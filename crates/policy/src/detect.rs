//! Incident detectors of one member, fed by the firewall's denials: a **scan** (this
//! member's denied attempts toward many distinct peer ports) and a **denied-flow burst**
//! (many denied packets toward this member). Sans-IO: time comes in as a [`Duration`] on
//! the caller's clock, memory is bounded by the thresholds, and each detection is reported
//! once per cooldown however long the attack lasts.
//!
//! Why these numbers ([`DetectorConfig::default`]): a scan of 100 ports sends 100 denied
//! first packets to 100 distinct (peer, port) targets; at even 10 probes a second it
//! reaches 16 distinct targets in 1.6 s, and nmap's defaults do it in milliseconds. A busy
//! allowed service never counts (only denials do), and a client retrying one refused
//! port counts once, so normal traffic stays at 0 or 1 target.

use std::net::IpAddr;
use std::time::Duration;

use crate::packet::{Packet, Transport};

/// Thresholds of the detectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetectorConfig {
    /// Distinct denied (peer, protocol, port) targets that make a scan.
    pub scan_targets: usize,
    /// Within this time.
    pub scan_window: Duration,
    /// Denied packets toward the member that make a burst.
    pub burst_packets: u64,
    /// Within this time.
    pub burst_window: Duration,
    /// After a detection, the same kind is not reported again for this long.
    pub cooldown: Duration,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            scan_targets: 16,
            scan_window: Duration::from_secs(5),
            burst_packets: 200,
            burst_window: Duration::from_secs(5),
            cooldown: Duration::from_secs(60),
        }
    }
}

/// One detection, to be reported as an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detection {
    /// The member tried many distinct peer ports that the policy denies.
    Scan {
        /// Distinct targets seen in the window (the threshold).
        targets: usize,
        /// Peers among them.
        peers: Vec<IpAddr>,
        /// How long it took to cross the threshold.
        within: Duration,
    },
    /// Many denied packets arrived for the member.
    DeniedBurst {
        /// Denied packets in the window (the threshold).
        packets: u64,
        /// The source that sent the most of them.
        top_source: IpAddr,
        /// How long it took to cross the threshold.
        within: Duration,
    },
}

/// A denied target: peer, IP protocol, destination port (0 for ICMP and others).
type Target = (IpAddr, u8, u16);

/// The detectors of one member.
#[derive(Debug, Clone)]
pub struct Detector {
    config: DetectorConfig,
    scan_start: Duration,
    targets: Vec<Target>,
    burst_start: Duration,
    burst: u64,
    sources: Vec<(IpAddr, u64)>,
    last_scan: Option<Duration>,
    last_burst: Option<Duration>,
    ready: Vec<Detection>,
}

/// Most distinct sources a burst remembers (to name the top one).
const MAX_SOURCES: usize = 16;

impl Detector {
    /// Detectors with `config`.
    #[must_use]
    pub fn new(config: DetectorConfig) -> Self {
        Self {
            config,
            scan_start: Duration::ZERO,
            targets: Vec::with_capacity(config.scan_targets),
            burst_start: Duration::ZERO,
            burst: 0,
            sources: Vec::with_capacity(MAX_SOURCES),
            last_scan: None,
            last_burst: None,
            ready: Vec::new(),
        }
    }

    /// Call for each packet the firewall denied on its way out of the member (toward a
    /// peer).
    pub fn denied_egress(&mut self, packet: &Packet, now: Duration) {
        if now.saturating_sub(self.scan_start) > self.config.scan_window {
            self.scan_start = now;
            self.targets.clear();
        }
        let target = target_of(packet);
        if self.targets.contains(&target) {
            return;
        }
        self.targets.push(target);
        if self.targets.len() < self.config.scan_targets {
            return;
        }
        if !cooling(self.last_scan, now, self.config.cooldown) {
            let mut peers: Vec<IpAddr> = self.targets.iter().map(|t| t.0).collect();
            peers.sort_unstable();
            peers.dedup();
            self.ready.push(Detection::Scan {
                targets: self.targets.len(),
                peers,
                within: now.saturating_sub(self.scan_start),
            });
            self.last_scan = Some(now);
        }
        self.targets.clear();
        self.scan_start = now;
    }

    /// Call for each packet the firewall denied on its way into the member.
    pub fn denied_ingress(&mut self, packet: &Packet, now: Duration) {
        if now.saturating_sub(self.burst_start) > self.config.burst_window {
            self.burst_start = now;
            self.burst = 0;
            self.sources.clear();
        }
        self.burst += 1;
        if let Some((_, n)) = self.sources.iter_mut().find(|(ip, _)| *ip == packet.src) {
            *n += 1;
        } else if self.sources.len() < MAX_SOURCES {
            self.sources.push((packet.src, 1));
        }
        if self.burst < self.config.burst_packets {
            return;
        }
        if !cooling(self.last_burst, now, self.config.cooldown) {
            let top_source = self
                .sources
                .iter()
                .max_by_key(|(_, n)| *n)
                .map_or(packet.src, |(ip, _)| *ip);
            self.ready.push(Detection::DeniedBurst {
                packets: self.burst,
                top_source,
                within: now.saturating_sub(self.burst_start),
            });
            self.last_burst = Some(now);
        }
        self.burst = 0;
        self.sources.clear();
        self.burst_start = now;
    }

    /// The next detection to report, if any. Call after feeding a batch.
    #[must_use]
    pub fn poll_detection(&mut self) -> Option<Detection> {
        if self.ready.is_empty() {
            None
        } else {
            Some(self.ready.remove(0))
        }
    }
}

fn cooling(last: Option<Duration>, now: Duration, cooldown: Duration) -> bool {
    last.is_some_and(|t| now.saturating_sub(t) < cooldown)
}

fn target_of(p: &Packet) -> Target {
    match p.l4 {
        Transport::Tcp { dst_port, .. } => (p.dst, crate::packet::proto::TCP, dst_port),
        Transport::Udp { dst_port, .. } => (p.dst, crate::packet::proto::UDP, dst_port),
        Transport::Icmp(_) => (p.dst, crate::packet::proto::ICMP, 0),
        Transport::Fragment { protocol } | Transport::Other { protocol } => (p.dst, protocol, 0),
    }
}

#[cfg(test)]
mod tests;
