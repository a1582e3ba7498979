//! Flow log of one member: what its firewall decided, aggregated.
//!
//! New allowed connections and denied packets are counted per (direction, verdict,
//! protocol, source, destination, destination port, rule) with first and last seen. The
//! table is bounded: when it is full, records that are shipped and idle make room, and
//! otherwise new flows are only counted as dropped, so a flood cannot exhaust memory.

use ahash::HashMap;
use std::net::IpAddr;

use segwire_policy::packet::Transport;
use segwire_policy::{Direction, Packet, RuleId, Verdict};

/// Most flow records kept per member.
pub const MAX_FLOWS: usize = 4096;
/// A shipped record idle this long (seconds) may be evicted to make room.
const IDLE_SECS: u64 = 600;

/// What identifies one aggregated flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Egress (sent by the member) or ingress.
    pub egress: bool,
    /// Allowed (a new connection) or denied.
    pub allowed: bool,
    /// IP protocol number.
    pub protocol: u8,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Destination port (ICMP: 0).
    pub dst_port: u16,
    /// The deciding rule, if any.
    pub rule: Option<RuleId>,
}

/// Counts of one flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowStat {
    /// Packets (denied) or connections (allowed).
    pub count: u64,
    /// Count already shipped to the coordinator.
    pub shipped: u64,
    /// First seen, unix seconds.
    pub first_seen: u64,
    /// Last seen, unix seconds.
    pub last_seen: u64,
}

/// A flow record with its rule named (the member knows the compiled policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedFlow {
    /// What the flow is.
    pub key: FlowKey,
    /// Its counts.
    pub stat: FlowStat,
    /// The deciding rule's name.
    pub rule: Option<String>,
}

/// The bounded flow table of one member.
#[derive(Debug, Default)]
pub struct FlowLog {
    flows: HashMap<FlowKey, FlowStat>,
    /// New flows not recorded because the table was full.
    pub dropped: u64,
    /// Last second an eviction scan ran (at most one scan a second under a flood).
    last_scan: u64,
}

impl FlowLog {
    /// An empty log with room for [`MAX_FLOWS`] records.
    #[must_use]
    pub fn new() -> Self {
        FlowLog {
            flows: HashMap::with_capacity_and_hasher(MAX_FLOWS, Default::default()),
            dropped: 0,
            last_scan: 0,
        }
    }

    /// Records a verdict if it is worth logging (a new allowed connection or a denial).
    pub fn record(&mut self, direction: Direction, packet: &[u8], verdict: Verdict, now: u64) {
        let (allowed, rule) = match verdict {
            Verdict::Allow {
                new_connection: true,
                rule,
            } => (true, rule),
            Verdict::Allow { .. } => return,
            Verdict::Deny { .. } => (false, None),
        };
        let Ok(p) = Packet::parse(packet) else {
            return;
        };
        let (protocol, dst_port) = match p.l4 {
            Transport::Tcp { dst_port, .. } => (6, dst_port),
            Transport::Udp { dst_port, .. } => (17, dst_port),
            Transport::Icmp(_) => (1, 0),
            Transport::Fragment { protocol } | Transport::Other { protocol } => (protocol, 0),
        };
        let key = FlowKey {
            egress: direction == Direction::Egress,
            allowed,
            protocol,
            src: p.src,
            dst: p.dst,
            dst_port,
            rule,
        };
        if let Some(stat) = self.flows.get_mut(&key) {
            stat.count += 1;
            stat.last_seen = now;
            return;
        }
        if self.flows.len() >= MAX_FLOWS && !self.evict_one(now) {
            self.dropped += 1;
            return;
        }
        self.flows.insert(
            key,
            FlowStat {
                count: 1,
                shipped: 0,
                first_seen: now,
                last_seen: now,
            },
        );
    }

    /// Frees a slot held by a fully shipped, idle record.
    fn evict_one(&mut self, now: u64) -> bool {
        if self.last_scan == now {
            return false;
        }
        self.last_scan = now;
        let victim = self
            .flows
            .iter()
            .find(|(_, s)| s.shipped == s.count && s.last_seen + IDLE_SECS <= now)
            .map(|(k, _)| *k);
        victim.is_some_and(|k| self.flows.remove(&k).is_some())
    }

    /// Records with counts not shipped yet (the unshipped part), marking them shipped.
    pub fn take_unshipped(&mut self) -> Vec<(FlowKey, FlowStat)> {
        let mut out = Vec::new();
        for (k, s) in &mut self.flows {
            if s.count > s.shipped {
                out.push((
                    *k,
                    FlowStat {
                        count: s.count - s.shipped,
                        ..*s
                    },
                ));
                s.shipped = s.count;
            }
        }
        out
    }

    /// The busiest records, most counted first.
    #[must_use]
    pub fn top(&self, n: usize) -> Vec<(FlowKey, FlowStat)> {
        let mut all: Vec<_> = self.flows.iter().map(|(k, s)| (*k, *s)).collect();
        all.sort_by(|a, b| {
            b.1.count
                .cmp(&a.1.count)
                .then(b.1.last_seen.cmp(&a.1.last_seen))
        });
        all.truncate(n);
        all
    }

    /// Records held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// Whether no record is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use segwire_policy::DenyReason;

    fn udp(src: [u8; 4], dst: [u8; 4], dport: u16) -> Vec<u8> {
        let mut p = vec![0u8; 28];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&28u16.to_be_bytes());
        p[8] = 64;
        p[9] = 17;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        p[20..22].copy_from_slice(&40000u16.to_be_bytes());
        p[22..24].copy_from_slice(&dport.to_be_bytes());
        p[24..26].copy_from_slice(&8u16.to_be_bytes());
        p
    }

    const DENY: Verdict = Verdict::Deny {
        reason: DenyReason::NoRule,
    };

    #[test]
    fn aggregates_denials_and_ships_each_count_once() {
        let mut log = FlowLog::new();
        let p = udp([100, 64, 0, 1], [100, 64, 0, 2], 53);
        for t in 0..5 {
            log.record(Direction::Egress, &p, DENY, 100 + t);
        }
        let shipped = log.take_unshipped();
        assert_eq!(shipped.len(), 1);
        let (k, s) = shipped[0];
        assert!(!k.allowed && k.egress && k.protocol == 17 && k.dst_port == 53);
        assert_eq!((s.count, s.first_seen, s.last_seen), (5, 100, 104));
        assert!(log.take_unshipped().is_empty());
        log.record(Direction::Egress, &p, DENY, 200);
        assert_eq!(log.take_unshipped()[0].1.count, 1);
        // Established traffic is not logged.
        let established = Verdict::Allow {
            rule: None,
            new_connection: false,
        };
        log.record(Direction::Ingress, &p, established, 201);
        assert!(log.take_unshipped().is_empty());
    }

    #[test]
    fn a_flood_stays_bounded() {
        let mut log = FlowLog::new();
        for i in 0..(MAX_FLOWS as u32 + 500) {
            let dport = (i % 60000) as u16 + 1;
            let src = [100, 64, (i >> 16) as u8, (i >> 8) as u8];
            log.record(
                Direction::Ingress,
                &udp(src, [100, 64, 0, 2], dport),
                DENY,
                1,
            );
        }
        assert_eq!(log.len(), MAX_FLOWS);
        assert_eq!(log.dropped, 500);
        // Shipped and idle records make room again.
        log.take_unshipped();
        log.record(
            Direction::Ingress,
            &udp([1, 2, 3, 4], [100, 64, 0, 2], 9),
            DENY,
            1 + IDLE_SECS,
        );
        assert_eq!(log.dropped, 500);
    }
}
