//! Sans-IO segment policy: the policy file format, a per-member compiled classifier,
//! an IPv4 packet parser and a stateful, bounded connection tracker.
//!
//! Nothing here reads a clock, opens a socket or spawns: time comes in as an [`Instant`]
//! and packets as byte slices.
//!
//! ```
//! use std::time::Instant;
//! use segwire_policy::{CompiledPolicy, ConntrackConfig, Firewall, Member, Policy};
//!
//! let policy = Policy::from_json(r#"{ "default": "deny", "rules": [
//!     { "name": "ping", "from": "*", "to": "*", "ports": ["icmp"] } ] }"#)?;
//! let me = Member { name: "web-1".into(), ip: "100.64.0.2".parse()?, labels: Default::default() };
//! let members = vec![me.clone()];
//! let compiled = CompiledPolicy::compile(&policy, &me, &members);
//! let mut firewall = Firewall::new(compiled, ConntrackConfig::default());
//! let verdict = firewall.egress(&[0u8; 3], Instant::now());
//! assert!(!verdict.is_allowed()); // malformed
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`Instant`]: std::time::Instant

mod classify;
mod compile;
mod conntrack;
mod counters;
mod error;
mod firewall;
mod model;
pub mod packet;
mod parse;

pub use classify::{CompiledPolicy, Decision, Direction, Flow, RuleId};
pub use compile::reachable_peers;
pub use conntrack::{ConntrackConfig, Timeouts};
pub use counters::{Counters, RuleCounter};
pub use error::{FieldRef, PolicyError, Problem};
pub use firewall::{DenyReason, Firewall, ReplaceSummary, Verdict};
pub use model::{Action, Member, Policy, PortRange, PortSpec, Rule, Selector};
pub use packet::{Packet, PacketError};

#[cfg(test)]
mod testutil;
