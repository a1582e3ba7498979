//! Sans-IO segment policy: the policy file format, a per-member compiled classifier,
//! an IPv4 and IPv6 packet parser and a stateful, bounded connection tracker.
//!
//! Nothing here reads a clock, opens a socket or spawns: time comes in as a [`Duration`]
//! since an epoch the caller fixes once (the same clock as `segwire_tunnel`'s router), and
//! packets as byte slices.
//!
//! - The **coordinator** parses and stores policies ([`Policy::from_json`], [`Policy::to_json`];
//!   `Policy` is also serde `Deserialize`/`Serialize` in the same shape) and leaves out of a
//!   member's netmap the peers it can never talk to ([`reachable_peers`]).
//! - The **node agent** compiles the policy for each local member ([`CompiledPolicy::compile`]),
//!   keeps one [`Firewall`] per member, calls [`Firewall::egress`] / [`Firewall::ingress`] for
//!   every packet, [`Firewall::expire`] every few seconds, and [`Firewall::replace_policy`]
//!   when a new netmap changes the policy or the members.
//!
//! Rules allow connections; the first matching rule in file order is the one reported.
//!
//! ```
//! use std::time::Duration;
//! use segwire_policy::{CompiledPolicy, ConntrackConfig, Firewall, Member, Policy, Verdict};
//!
//! let policy = Policy::from_json(r#"{ "default": "deny", "rules": [
//!     { "name": "ping", "from": "*", "to": "*", "ports": ["icmp"] } ] }"#)?;
//! let me = Member {
//!     name: "web-1".into(), ip: Some("100.64.0.2".parse()?), ip6: None, labels: Default::default(),
//! };
//! let peer = Member {
//!     name: "db-1".into(), ip: Some("100.64.0.3".parse()?), ip6: None, labels: Default::default(),
//! };
//! let members = vec![me.clone(), peer];
//! let mut firewall =
//!     Firewall::new(CompiledPolicy::compile(&policy, &me, &members), ConntrackConfig::default());
//!
//! // An ICMP echo request from web-1 to db-1.
//! let mut ping = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 100, 64, 0, 2, 100, 64, 0, 3];
//! ping.extend_from_slice(&[8, 0, 0, 0, 0, 7, 0, 1]);
//! let now = Duration::ZERO; // the caller owns the clock: time since its epoch
//! match firewall.egress(&ping, now) {
//!     Verdict::Allow { rule, new_connection } => {
//!         assert_eq!(rule.and_then(|r| firewall.policy().rule_name(r)), Some("ping"));
//!         assert!(new_connection);
//!     }
//!     Verdict::Deny { reason } => panic!("denied: {reason}"),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`Duration`]: std::time::Duration

mod classify;
mod compile;
mod conntrack;
mod counters;
mod detect;
mod error;
mod firewall;
mod model;
pub mod packet;
mod parse;
mod quarantine;
mod reach;

pub use classify::{CompiledPolicy, Decision, Direction, Flow, RuleId};
pub use compile::reachable_peers;
pub use conntrack::{ConntrackConfig, Timeouts};
pub use counters::{Counters, RuleCounter};
pub use detect::{Detection, Detector, DetectorConfig};
pub use error::{FieldRef, PolicyError, Problem};
pub use firewall::{DenyReason, Firewall, ReplaceSummary, Verdict};
pub use model::{Action, Member, Policy, PortRange, PortSpec, Rule, Selector};
pub use packet::{Packet, PacketError};
pub use quarantine::{Quarantine, Trigger, MAX_QUARANTINE, MIN_QUARANTINE};
pub use reach::{Reach, Reachability};

#[cfg(test)]
mod testutil;
