//! The policy file format: typed, validated model and its JSON shape.
//!
//! `Policy` deserializes through [`crate::parse`] (so every error names the rule and field at
//! fault) and serializes back to exactly the documented shape.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Deserialize, Serialize, Serializer};

use crate::error::PolicyError;

/// A segment's policy: rules that allow connections, and what happens to everything else.
///
/// Build one with [`Policy::from_json`] (validated) or by hand; compiling never fails, and
/// [`Policy::validate`] checks a hand-built one the same way the parser does.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "serde_json::Value")]
pub struct Policy {
    /// What happens to traffic no rule allows.
    pub default: Action,
    /// Rules in file order; the first matching rule is the one reported.
    pub rules: Vec<Rule>,
    /// The automated response to detections, if any (`"quarantine"`).
    pub quarantine: Option<crate::quarantine::Quarantine>,
}

/// The `default` of a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Traffic no rule matches is allowed.
    Allow,
    /// Traffic no rule matches is dropped.
    Deny,
}

/// One rule: `from` may open connections to `to` on `ports`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Unique, non-empty name, reported in verdicts and counters.
    pub name: String,
    /// Who may open the connection.
    pub from: Selector,
    /// Who may be connected to.
    pub to: Selector,
    /// Which protocols and ports the connection may use.
    pub ports: Vec<PortSpec>,
}

/// Which members or addresses a rule side applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// `"*"`: every address.
    Any,
    /// `{ "labels": {…} }`: members carrying all of these labels.
    Labels(BTreeMap<String, String>),
    /// `{ "cidr": "…" }`: every address inside this IPv4 or IPv6 network.
    Cidr(IpNet),
    /// `{ "member": "NAME" }`: the member with this name.
    Member(String),
}

/// An inclusive port range `start..=end` with `1 <= start <= end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    start: u16,
    end: u16,
}

/// One entry of a rule's `ports`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortSpec {
    /// `tcp/N` or `tcp/N-M`.
    Tcp(PortRange),
    /// `udp/N` or `udp/N-M`.
    Udp(PortRange),
    /// `icmp`: every ICMP message.
    Icmp,
    /// `any`: every protocol and port.
    Any,
}

/// A workload attached to a segment, as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The member's name (unique within the segment).
    pub name: String,
    /// The member's IPv4 overlay address, when its segment has an IPv4 prefix.
    pub ip: Option<Ipv4Addr>,
    /// The member's IPv6 overlay address, when its segment has an IPv6 prefix.
    pub ip6: Option<Ipv6Addr>,
    /// The member's labels.
    pub labels: BTreeMap<String, String>,
}

impl Member {
    /// The member's overlay addresses: IPv4 first, then IPv6.
    pub fn addrs(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let v4 = self.ip.map(IpAddr::V4);
        let v6 = self.ip6.map(IpAddr::V6);
        v4.into_iter().chain(v6)
    }
}

impl Policy {
    /// Parses and validates a policy file; errors name the rule and field at fault.
    pub fn from_json(text: &str) -> Result<Policy, PolicyError> {
        let value: serde_json::Value = serde_json::from_str(text)?;
        crate::parse::policy_from_value(&value)
    }

    /// Serializes the policy to its JSON file shape (pretty-printed).
    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail: every key is a string.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks a hand-built policy with the same rules the parser applies.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let value = serde_json::to_value(self)?;
        crate::parse::policy_from_value(&value).map(|_| ())
    }
}

impl std::str::FromStr for Policy {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Policy::from_json(s)
    }
}

impl TryFrom<serde_json::Value> for Policy {
    type Error = PolicyError;

    fn try_from(value: serde_json::Value) -> Result<Self, Self::Error> {
        crate::parse::policy_from_value(&value)
    }
}

impl Selector {
    /// Whether `member` is selected (a CIDR selects by the member's address).
    pub fn matches_member(&self, member: &Member) -> bool {
        match self {
            Selector::Any => true,
            Selector::Labels(want) => want
                .iter()
                .all(|(k, v)| member.labels.get(k).is_some_and(|have| have == v)),
            Selector::Cidr(net) => member.addrs().any(|a| net.contains(&a)),
            Selector::Member(name) => *name == member.name,
        }
    }
}

impl PortRange {
    /// A range `start..=end`; `None` if `start` is 0 or greater than `end`.
    pub fn new(start: u16, end: u16) -> Option<PortRange> {
        (start >= 1 && start <= end).then_some(PortRange { start, end })
    }

    /// A single port; `None` for port 0.
    pub fn single(port: u16) -> Option<PortRange> {
        PortRange::new(port, port)
    }

    /// First port of the range.
    pub fn start(self) -> u16 {
        self.start
    }

    /// Last port of the range (inclusive).
    pub fn end(self) -> u16 {
        self.end
    }

    /// Whether `port` lies in the range.
    pub fn contains(self, port: u16) -> bool {
        self.start <= port && port <= self.end
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortSpec::Tcp(r) => write!(f, "tcp/{r}"),
            PortSpec::Udp(r) => write!(f, "udp/{r}"),
            PortSpec::Icmp => f.write_str("icmp"),
            PortSpec::Any => f.write_str("any"),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
        })
    }
}

impl Serialize for Policy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let fields = 2 + usize::from(self.quarantine.is_some());
        let mut st = s.serialize_struct("Policy", fields)?;
        st.serialize_field("default", &self.default)?;
        st.serialize_field("rules", &self.rules)?;
        if let Some(q) = &self.quarantine {
            st.serialize_field("quarantine", q)?;
        }
        st.end()
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Serialize for Rule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Rule", 4)?;
        st.serialize_field("name", &self.name)?;
        st.serialize_field("from", &self.from)?;
        st.serialize_field("to", &self.to)?;
        st.serialize_field("ports", &self.ports)?;
        st.end()
    }
}

impl Serialize for Selector {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Selector::Any => s.serialize_str("*"),
            Selector::Labels(labels) => single_entry(s, "labels", labels),
            Selector::Cidr(net) => single_entry(s, "cidr", &net.to_string()),
            Selector::Member(name) => single_entry(s, "member", name),
        }
    }
}

fn single_entry<S: Serializer, T: Serialize + ?Sized>(
    s: S,
    key: &str,
    value: &T,
) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(1))?;
    map.serialize_entry(key, value)?;
    map.end()
}

impl Serialize for PortSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
