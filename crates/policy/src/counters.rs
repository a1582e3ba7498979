//! Filter counters, readable at any time without stopping traffic.

/// Packet and connection totals of one [`crate::Firewall`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets allowed (by a rule, the default, a tracked connection or as fragments).
    pub allowed: u64,
    /// Allowed packets no rule is credited with (default allow, fragments).
    pub allowed_by_default: u64,
    /// Later IP fragments passed (their first fragment was judged).
    pub allowed_fragments: u64,
    /// ICMP errors passed because they quote a tracked connection.
    pub allowed_related: u64,
    /// Connections newly tracked.
    pub new_connections: u64,
    /// Packets denied, for any reason.
    pub denied: u64,
    /// Packets denied because no rule allows them and the default is deny.
    pub denied_by_default: u64,
    /// Packets denied as malformed.
    pub denied_malformed: u64,
    /// Packets denied because their local address is not the member's.
    pub denied_not_local: u64,
    /// Link-scoped ICMPv6 (neighbour discovery and the like) denied.
    pub denied_link_control: u64,
    /// Connections tracked right now.
    pub conntrack_entries: u64,
    /// Connections evicted because the table was full.
    pub conntrack_evictions: u64,
    /// Connections dropped after their idle timeout.
    pub conntrack_expired: u64,
    /// Connections cut because a new policy no longer allows them.
    pub conntrack_cut: u64,
}

/// Packets allowed by one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleCounter<'a> {
    /// The rule's name.
    pub name: &'a str,
    /// Packets it allowed (opening and tracked packets alike).
    pub allowed: u64,
}
