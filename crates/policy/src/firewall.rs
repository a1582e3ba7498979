//! The per-member filter: classifier plus connection tracking, one call per packet.

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use crate::classify::{addr_key, CompiledPolicy, Direction, Flow, RuleId};
use crate::conntrack::{Conntrack, ConntrackConfig, FlowKey};
use crate::counters::{Counters, RuleCounter};
use crate::packet::{proto, Icmp, Packet, PacketError, Quoted, TcpFlags, Transport};

/// What to do with one packet.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Pass the packet.
    Allow {
        /// The rule that allowed the connection; `None` when the default allowed it (or for
        /// a later IP fragment, which cannot be judged alone).
        rule: Option<RuleId>,
        /// Whether this packet opened a newly tracked connection.
        new_connection: bool,
    },
    /// Drop the packet.
    Deny {
        /// Why.
        reason: DenyReason,
    },
}

impl Verdict {
    /// Whether the packet passes.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Verdict::Allow { .. })
    }
}

/// Why a packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DenyReason {
    /// Not a well-formed IPv4 or IPv6 packet.
    #[error("malformed packet: {0}")]
    Malformed(#[from] PacketError),
    /// Its local address (source on egress, destination on ingress) is not the member's.
    #[error("local address is not the member's")]
    NotLocal,
    /// No rule allows it, it belongs to no tracked connection, and the default is deny.
    #[error("no rule allows it")]
    NoRule,
    /// ICMPv6 neighbour or router discovery, redirects or multicast listener messages:
    /// link-scoped, and the member's interface is point-to-point, so they never cross.
    #[error("link-scoped ICMPv6 never crosses the tunnel")]
    LinkControl,
}

/// What [`Firewall::replace_policy`] did to the tracked connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplaceSummary {
    /// Connections the new policy still allows.
    pub kept: usize,
    /// Connections it no longer allows, now forgotten: their next packet is judged afresh.
    pub cut: usize,
    /// Connections that had expired anyway.
    pub expired: usize,
}

/// One member's stateful packet filter.
///
/// Call [`Firewall::egress`] for every packet the member sends and [`Firewall::ingress`] for
/// every packet it receives, with the current time; call [`Firewall::expire`] now and then
/// (every few seconds) to free idle connections early; call [`Firewall::replace_policy`]
/// when a new netmap brings a new policy or member set.
#[derive(Debug)]
pub struct Firewall {
    policy: CompiledPolicy,
    conntrack: Conntrack,
    counters: Counters,
    per_rule: Vec<u64>,
}

/// A TCP packet that opens a connection: SYN without ACK, RST or FIN.
fn opens_tcp(flags: TcpFlags) -> bool {
    flags.has(TcpFlags::SYN)
        && !flags.has(TcpFlags::ACK)
        && !flags.has(TcpFlags::RST)
        && !flags.has(TcpFlags::FIN)
}

impl Firewall {
    /// A filter for the member `policy` was compiled for.
    pub fn new(policy: CompiledPolicy, config: ConntrackConfig) -> Firewall {
        let per_rule = vec![0; policy.rule_count()];
        Firewall {
            policy,
            conntrack: Conntrack::new(config),
            counters: Counters::default(),
            per_rule,
        }
    }

    /// Judges a packet the local member sends.
    pub fn egress(&mut self, packet: &[u8], now: Duration) -> Verdict {
        self.judge(Direction::Egress, packet, now)
    }

    /// Judges a packet the local member receives.
    pub fn ingress(&mut self, packet: &[u8], now: Duration) -> Verdict {
        self.judge(Direction::Ingress, packet, now)
    }

    /// Applies a new compiled policy to live traffic: tracked connections it no longer allows
    /// are forgotten (so their next packet is judged afresh); the others keep flowing,
    /// attributed to the rule that allows them now. Per-rule counters restart from zero.
    pub fn replace_policy(&mut self, policy: CompiledPolicy, now: Duration) -> ReplaceSummary {
        let mut summary = ReplaceSummary::default();
        if (policy.local_ip(), policy.local_ip6())
            != (self.policy.local_ip(), self.policy.local_ip6())
        {
            summary.cut = self.conntrack.clear();
        } else {
            let (expired, cut) = self.conntrack.retain(now, |entry| {
                let flow = Flow {
                    direction: entry.initiator,
                    remote: key_addr(entry.key.remote),
                    protocol: entry.key.protocol,
                    port: entry.key.opening_port(entry.initiator),
                };
                let decision = policy.classify(&flow);
                entry.rule = decision.rule;
                decision.allowed
            });
            summary.expired = expired;
            summary.cut = cut;
        }
        summary.kept = self.conntrack.len();
        self.counters.conntrack_cut += summary.cut as u64;
        self.per_rule = vec![0; policy.rule_count()];
        self.policy = policy;
        tracing::debug!(
            member = self.policy.local_name(),
            kept = summary.kept,
            cut = summary.cut,
            "policy replaced"
        );
        summary
    }

    /// Frees connections idle past their timeout; returns how many.
    pub fn expire(&mut self, now: Duration) -> usize {
        self.conntrack.expire(now)
    }

    /// The policy in force.
    pub fn policy(&self) -> &CompiledPolicy {
        &self.policy
    }

    /// Totals since creation.
    pub fn counters(&self) -> Counters {
        Counters {
            conntrack_entries: self.conntrack.len() as u64,
            conntrack_evictions: self.conntrack.evictions,
            conntrack_expired: self.conntrack.expired,
            ..self.counters
        }
    }

    /// Packets allowed per rule of the policy in force (opening and tracked packets alike).
    pub fn rule_counters(&self) -> impl Iterator<Item = RuleCounter<'_>> + '_ {
        self.per_rule
            .iter()
            .enumerate()
            .map(|(i, &allowed)| RuleCounter {
                name: self.policy.rule_names.get(i).map_or("", String::as_str),
                allowed,
            })
    }

    fn judge(&mut self, dir: Direction, bytes: &[u8], now: Duration) -> Verdict {
        let verdict = self.decide(dir, bytes, now);
        self.count(&verdict);
        verdict
    }

    fn decide(&mut self, dir: Direction, bytes: &[u8], now: Duration) -> Verdict {
        let packet = match Packet::parse(bytes) {
            Ok(p) => p,
            Err(e) => {
                return Verdict::Deny {
                    reason: DenyReason::Malformed(e),
                }
            }
        };
        let (local, remote) = match dir {
            Direction::Egress => (packet.src, packet.dst),
            Direction::Ingress => (packet.dst, packet.src),
        };
        if let Transport::Icmp(Icmp::Other { kind }) = packet.l4 {
            if packet.src.is_ipv6() && crate::packet::is_link_control(kind) {
                return Verdict::Deny {
                    reason: DenyReason::LinkControl,
                };
            }
        }
        if !self.policy.is_local(local) {
            return Verdict::Deny {
                reason: DenyReason::NotLocal,
            };
        }
        let protocol = packet.protocol();
        let remote_key = addr_key(remote);
        let (key, flags, port) = match packet.l4 {
            Transport::Tcp {
                src_port,
                dst_port,
                flags,
            } => (
                Some(port_key(dir, remote_key, proto::TCP, src_port, dst_port)),
                flags,
                dst_port,
            ),
            Transport::Udp { src_port, dst_port } => (
                Some(port_key(dir, remote_key, proto::UDP, src_port, dst_port)),
                TcpFlags(0),
                dst_port,
            ),
            Transport::Icmp(icmp) => {
                if let Some(verdict) = self.related(dir, remote, icmp, now) {
                    return verdict;
                }
                (echo_key(dir, remote_key, protocol, icmp), TcpFlags(0), 0)
            }
            Transport::Other { protocol } => {
                let key = FlowKey {
                    remote: remote_key,
                    local_port: 0,
                    remote_port: 0,
                    protocol,
                };
                (Some(key), TcpFlags(0), 0)
            }
            Transport::Fragment { .. } => {
                // The first fragment was judged; later ones cannot be reassembled without it.
                self.counters.allowed_fragments += 1;
                return Verdict::Allow {
                    rule: None,
                    new_connection: false,
                };
            }
        };
        if let Some(key) = &key {
            if let Some(entry) = self.conntrack.track(key, dir, flags, now) {
                return Verdict::Allow {
                    rule: entry.rule,
                    new_connection: false,
                };
            }
        }
        let flow = Flow {
            direction: dir,
            remote,
            protocol,
            port,
        };
        let decision = self.policy.classify(&flow);
        if !decision.allowed {
            return Verdict::Deny {
                reason: DenyReason::NoRule,
            };
        }
        match key {
            // TCP is tracked from its opening SYN only: any other allowed TCP packet (an
            // ACK, a RST, a FIN) passes on its own but opens nothing, so it cannot fill
            // the table with entries for connections that never began.
            Some(key) if key.protocol != proto::TCP || opens_tcp(flags) => {
                self.conntrack.insert(key, dir, flags, decision.rule, now);
                Verdict::Allow {
                    rule: decision.rule,
                    new_connection: true,
                }
            }
            _ => Verdict::Allow {
                rule: decision.rule,
                new_connection: false,
            },
        }
    }

    /// An ICMP error about a tracked connection passes as related traffic, but only from
    /// (or to) that connection's own remote end: segments are flat, with no router between
    /// members, so another member has no business reporting on someone else's connection.
    fn related(
        &mut self,
        dir: Direction,
        remote: IpAddr,
        icmp: Icmp,
        now: Duration,
    ) -> Option<Verdict> {
        let Icmp::Error {
            quoted: Some(q), ..
        } = icmp
        else {
            return None;
        };
        if !self.policy.is_local(match dir.reverse() {
            Direction::Egress => q.src,
            Direction::Ingress => q.dst,
        }) {
            return None;
        }
        let key = quoted_key(dir, remote, q)?;
        let entry = self.conntrack.peek(&key, now)?;
        self.counters.allowed_related += 1;
        Some(Verdict::Allow {
            rule: entry.rule,
            new_connection: false,
        })
    }

    fn count(&mut self, verdict: &Verdict) {
        let c = &mut self.counters;
        match *verdict {
            Verdict::Allow {
                rule,
                new_connection,
            } => {
                c.allowed += 1;
                c.new_connections += u64::from(new_connection);
                match rule.and_then(|r| self.per_rule.get_mut(r.index())) {
                    Some(n) => *n += 1,
                    None => c.allowed_by_default += 1,
                }
            }
            Verdict::Deny { reason } => {
                c.denied += 1;
                match reason {
                    DenyReason::Malformed(_) => c.denied_malformed += 1,
                    DenyReason::NotLocal => c.denied_not_local += 1,
                    DenyReason::NoRule => c.denied_by_default += 1,
                    DenyReason::LinkControl => c.denied_link_control += 1,
                }
            }
        }
    }
}

/// The address a conntrack key stands for (the inverse of [`addr_key`]).
fn key_addr(key: u128) -> IpAddr {
    let v6 = Ipv6Addr::from(key);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

fn port_key(dir: Direction, remote: u128, protocol: u8, src_port: u16, dst_port: u16) -> FlowKey {
    let (local_port, remote_port) = match dir {
        Direction::Egress => (src_port, dst_port),
        Direction::Ingress => (dst_port, src_port),
    };
    FlowKey {
        remote,
        local_port,
        remote_port,
        protocol,
    }
}

/// Echo requests and replies share a key per identifier and per side that asked.
fn echo_key(dir: Direction, remote: u128, protocol: u8, icmp: Icmp) -> Option<FlowKey> {
    let (id, local_asked) = match icmp {
        Icmp::EchoRequest { id } => (id, dir == Direction::Egress),
        Icmp::EchoReply { id } => (id, dir == Direction::Ingress),
        _ => return None,
    };
    let remote_port = if local_asked { 0 } else { 1 };
    Some(FlowKey {
        remote,
        local_port: id,
        remote_port,
        protocol,
    })
}

/// The key of the connection an ICMP error quotes; the quoted packet went the other way.
/// The caller has checked that the quote's local side is the member's.
fn quoted_key(dir: Direction, outer_remote: IpAddr, q: Quoted) -> Option<FlowKey> {
    let quoted_dir = dir.reverse();
    let q_remote = match quoted_dir {
        Direction::Egress => q.dst,
        Direction::Ingress => q.src,
    };
    if q_remote != outer_remote {
        return None;
    }
    let remote = addr_key(q_remote);
    match q.protocol {
        proto::TCP | proto::UDP => Some(port_key(
            quoted_dir, remote, q.protocol, q.src_port, q.dst_port,
        )),
        proto::ICMP | proto::ICMPV6 => echo_key(
            quoted_dir,
            remote,
            q.protocol,
            Icmp::EchoRequest { id: q.src_port },
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
