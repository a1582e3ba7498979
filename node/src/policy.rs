//! What a member's firewall is compiled from, taken from the netmap: the segment policy,
//! the member itself and the peers it can reach. A pure value, so reconcile can compare
//! it and emit a change only when the compiled classifier would differ.

use std::net::{Ipv4Addr, Ipv6Addr};

use segwire_policy::{Action, CompiledPolicy, Member, Policy};
use segwire_proto::api::{DefaultAction, Labels};
use segwire_proto::netmap::MemberMap;

/// Inputs of one member's compiled policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyInput {
    /// The segment policy.
    pub policy: Policy,
    /// Its version (for logs and status).
    pub version: u64,
    /// The member itself.
    pub local: Member,
    /// The segment members it can see (itself and its peers).
    pub members: Vec<Member>,
}

impl PolicyInput {
    /// Builds the input from a netmap entry; a policy this agent cannot read falls back
    /// to the segment default with no rules (and says so).
    pub fn from_netmap(
        mm: &MemberMap,
        address: Option<Ipv4Addr>,
        address6: Option<Ipv6Addr>,
        peers: impl Iterator<Item = (String, Option<Ipv4Addr>, Option<Ipv6Addr>, Labels)>,
        skipped: &mut Vec<String>,
    ) -> PolicyInput {
        let policy = Policy::try_from(mm.policy.clone()).unwrap_or_else(|e| {
            skipped.push(format!(
                "member {}: the segment policy (version {}) cannot be read ({e}); enforcing the segment default",
                mm.name, mm.policy_version
            ));
            Policy {
                quarantine: None,
                default: match mm.default {
                    DefaultAction::Allow => Action::Allow,
                    DefaultAction::Deny => Action::Deny,
                },
                rules: Vec::new(),
            }
        });
        let local = Member {
            name: mm.name.clone(),
            ip: address,
            ip6: address6,
            labels: mm.labels.clone(),
        };
        let mut members: Vec<Member> = peers
            .map(|(name, ip, ip6, labels)| Member {
                name,
                ip,
                ip6,
                labels,
            })
            .collect();
        members.push(local.clone());
        members.sort_by(|a, b| a.name.cmp(&b.name));
        PolicyInput {
            policy,
            version: mm.policy_version,
            local,
            members,
        }
    }

    /// The classifier for this member.
    #[must_use]
    pub fn compile(&self) -> CompiledPolicy {
        CompiledPolicy::compile(&self.policy, &self.local, &self.members)
    }
}
