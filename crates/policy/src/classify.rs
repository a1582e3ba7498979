//! The compiled, per-member classifier: a pure verdict for one flow, in O(log n) of the rules.
//!
//! Lookup: the remote address picks up to three port tables (an exact per-member table, the
//! disjoint CIDR interval containing it, and the wildcard table); each answers "first rule
//! matching this protocol and port" by binary search; the smallest rule index wins, which is
//! exactly "first matching rule in file order".
//!
//! Addresses of both families share one 128-bit key space: an IPv4 address is keyed as its
//! IPv4-mapped IPv6 address (`::ffff:a.b.c.d`), which the packet parser never lets a real
//! IPv6 packet carry, so the families cannot alias.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::model::Action;
use crate::packet::proto;

/// Which way a packet crosses the member's interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the local member to a remote address.
    Egress,
    /// From a remote address to the local member.
    Ingress,
}

impl Direction {
    /// The opposite direction.
    pub fn reverse(self) -> Direction {
        match self {
            Direction::Egress => Direction::Ingress,
            Direction::Ingress => Direction::Egress,
        }
    }
}

/// Index of a rule in its policy's `rules` (file order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId(pub(crate) u32);

impl RuleId {
    /// Position of the rule in the policy's `rules`, from 0.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// What the classifier is asked about: a connection's first packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    /// Direction of the packet.
    pub direction: Direction,
    /// The address on the far side (destination on egress, source on ingress).
    pub remote: IpAddr,
    /// IP protocol number.
    pub protocol: u8,
    /// Destination port for TCP and UDP; ignored for other protocols. ICMP and ICMPv6
    /// (protocol 1 and 58) are both matched by the policy's `icmp`.
    pub port: u16,
}

/// The classifier's answer for one flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the flow may start.
    pub allowed: bool,
    /// The first rule (in file order) that allows it; `None` when the default decided.
    pub rule: Option<RuleId>,
}

/// A policy compiled for one member: classifies flows without allocating.
///
/// Made by [`CompiledPolicy::compile`]; immutable; cheap to share behind an `Arc`.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    pub(crate) local_name: String,
    pub(crate) local_ip: Option<Ipv4Addr>,
    pub(crate) local_ip6: Option<Ipv6Addr>,
    pub(crate) default: Action,
    pub(crate) rule_names: Vec<String>,
    pub(crate) egress: DirTable,
    pub(crate) ingress: DirTable,
}

impl CompiledPolicy {
    /// Decides whether `flow` may start, and by which rule.
    pub fn classify(&self, flow: &Flow) -> Decision {
        let table = match flow.direction {
            Direction::Egress => &self.egress,
            Direction::Ingress => &self.ingress,
        };
        let best = table.lookup(addr_key(flow.remote), flow.protocol, flow.port);
        if best == NO_RULE {
            Decision {
                allowed: self.default == Action::Allow,
                rule: None,
            }
        } else {
            Decision {
                allowed: true,
                rule: Some(RuleId(best)),
            }
        }
    }

    /// Name of a rule of this policy.
    pub fn rule_name(&self, id: RuleId) -> Option<&str> {
        self.rule_names.get(id.index()).map(String::as_str)
    }

    /// Number of rules in the policy.
    pub fn rule_count(&self) -> usize {
        self.rule_names.len()
    }

    /// The local member's name.
    pub fn local_name(&self) -> &str {
        &self.local_name
    }

    /// The local member's IPv4 overlay address, if it has one.
    pub fn local_ip(&self) -> Option<Ipv4Addr> {
        self.local_ip
    }

    /// The local member's IPv6 overlay address, if it has one.
    pub fn local_ip6(&self) -> Option<Ipv6Addr> {
        self.local_ip6
    }

    /// Whether `addr` is one of the local member's overlay addresses.
    pub fn is_local(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(a) => self.local_ip == Some(a),
            IpAddr::V6(a) => self.local_ip6 == Some(a),
        }
    }

    /// The policy's default action.
    pub fn default_action(&self) -> Action {
        self.default
    }
}

/// The classifier's key for an address: IPv6 bits, IPv4 as `::ffff:a.b.c.d`.
pub(crate) fn addr_key(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// Sentinel for "no rule"; larger than every real index so `min` picks real rules.
pub(crate) const NO_RULE: u32 = u32::MAX;

/// All rules relevant to one direction, indexed by remote address.
#[derive(Debug, Clone, Default)]
pub(crate) struct DirTable {
    /// Sorted member addresses and their tables (label and member selectors).
    pub(crate) exact_ips: Vec<u128>,
    pub(crate) exact_tables: Vec<PortTable>,
    /// Disjoint, sorted address intervals from CIDR selectors, inclusive ends.
    pub(crate) cidr_starts: Vec<u128>,
    pub(crate) cidr_ends: Vec<u128>,
    pub(crate) cidr_tables: Vec<PortTable>,
    /// Rules whose remote side is `"*"`.
    pub(crate) wildcard: PortTable,
}

impl DirTable {
    fn lookup(&self, ip: u128, protocol: u8, port: u16) -> u32 {
        let mut best = self.wildcard.lookup(protocol, port);
        if let Ok(i) = self.exact_ips.binary_search(&ip) {
            if let Some(t) = self.exact_tables.get(i) {
                best = best.min(t.lookup(protocol, port));
            }
        }
        let i = self.cidr_starts.partition_point(|&s| s <= ip);
        if let Some(i) = i.checked_sub(1) {
            if self.cidr_ends.get(i).is_some_and(|&end| ip <= end) {
                if let Some(t) = self.cidr_tables.get(i) {
                    best = best.min(t.lookup(protocol, port));
                }
            }
        }
        best
    }
}

/// First matching rule per protocol and port.
#[derive(Debug, Clone)]
pub(crate) struct PortTable {
    pub(crate) tcp: RangeMap,
    pub(crate) udp: RangeMap,
    pub(crate) icmp: u32,
    pub(crate) other: u32,
}

impl Default for PortTable {
    fn default() -> Self {
        PortTable {
            tcp: RangeMap::default(),
            udp: RangeMap::default(),
            icmp: NO_RULE,
            other: NO_RULE,
        }
    }
}

impl PortTable {
    pub(crate) fn lookup(&self, protocol: u8, port: u16) -> u32 {
        match protocol {
            proto::TCP => self.tcp.lookup(port),
            proto::UDP => self.udp.lookup(port),
            proto::ICMP | proto::ICMPV6 => self.icmp,
            _ => self.other,
        }
    }
}

/// Disjoint sorted port segments, each with the first rule covering it.
#[derive(Debug, Clone, Default)]
pub(crate) struct RangeMap {
    pub(crate) segments: Vec<Segment>,
}

/// Ports `start..=end` are first matched by `rule`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    pub(crate) start: u16,
    pub(crate) end: u16,
    pub(crate) rule: u32,
}

impl RangeMap {
    pub(crate) fn lookup(&self, port: u16) -> u32 {
        let i = self.segments.partition_point(|s| s.start <= port);
        match i.checked_sub(1).and_then(|i| self.segments.get(i)) {
            Some(s) if port <= s.end => s.rule,
            _ => NO_RULE,
        }
    }
}
