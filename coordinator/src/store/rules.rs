//! Domain rules every store backend applies inside its write transaction: network
//! overlap, member naming, address allocation and join-token checks. They are pure
//! functions over rows the backend has read, so no backend writes them twice.

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::{NewSegment, SegmentRow, StoreError, StoreResult, TokenRow};
use crate::{ipam, secret};

/// Refuses a new segment whose name is taken, that has no prefix at all, or whose
/// network or prefix overlaps an existing segment's.
pub fn check_new_segment(existing: &[SegmentRow], seg: &NewSegment) -> StoreResult<()> {
    if let Some(other) = existing.iter().find(|o| o.name == seg.name) {
        return Err(StoreError::Conflict(format!(
            "a segment named {:?} already exists",
            other.name
        )));
    }
    if seg.net.is_none() && seg.net6.is_none() {
        return Err(StoreError::Invalid(
            "a segment needs an IPv4 network, an IPv6 prefix or both".into(),
        ));
    }
    for net in seg
        .net
        .map(IpNet::V4)
        .into_iter()
        .chain(seg.net6.map(IpNet::V6))
    {
        check_prefix(existing, &seg.name, net)?;
    }
    Ok(())
}

/// Refuses a network or prefix for segment `name` that overlaps another segment's of the
/// same family.
pub fn check_prefix(existing: &[SegmentRow], name: &str, net: IpNet) -> StoreResult<()> {
    for other in existing.iter().filter(|o| o.name != name) {
        let theirs = match net {
            IpNet::V4(_) => other.net.map(IpNet::V4),
            IpNet::V6(_) => other.net6.map(IpNet::V6),
        };
        if let Some(o) = theirs {
            if o.contains(&net) || net.contains(&o) {
                return Err(StoreError::Conflict(format!(
                    "{net} overlaps segment {:?} ({o}); choose an {} that does not overlap",
                    other.name,
                    family(net)
                )));
            }
        }
    }
    Ok(())
}

/// What a segment prefix of `net`'s family is called in messages: `IPv4 network` or
/// `IPv6 prefix`.
pub fn family(net: IpNet) -> &'static str {
    match net {
        IpNet::V4(_) => "IPv4 network",
        IpNet::V6(_) => "IPv6 prefix",
    }
}

/// The names a new member may get, in order: the requested one alone; or the default
/// name ([`default_member_name`]) and then its `-2`, `-3`… variants, without end. The
/// store tries them one by one, so an attach reads only the names it asks about.
pub fn name_candidates(
    requested: Option<&str>,
    node: &str,
    workload: &str,
) -> Box<dyn Iterator<Item = String> + Send> {
    match requested {
        Some(n) => Box::new(std::iter::once(n.to_string())),
        None => {
            let base = default_member_name(node, workload);
            Box::new((1u64..).map(move |i| match i {
                1 => base.clone(),
                _ => format!("{base}-{i}"),
            }))
        }
    }
}

/// The error for a requested name a member of `segment` already holds.
pub fn name_held(segment: &str, name: &str) -> StoreError {
    StoreError::Conflict(format!(
        "segment {segment:?} already has a member named {name:?}"
    ))
}

/// The error for a requested name another node's claim keeps ([`name_reserved`]).
pub fn name_claimed(segment: &str, name: &str) -> StoreError {
    StoreError::Conflict(format!(
        "member name {name:?} in segment {segment:?} belongs to another node (a released name is held for the address quarantine, and for as long as the segment's policy names it); choose another name"
    ))
}

/// A claim on a member name by a node other than the one attaching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameClaim {
    /// The claimed name.
    pub name: String,
    /// When its last member went away; `None` while a member holds it.
    pub released_at: Option<i64>,
    /// True when the claiming node was revoked.
    pub node_revoked: bool,
}

/// True when `claim` keeps its name from other nodes: while a member holds it, for the
/// quarantine after it was released (`released_at > released_after`), and for as long
/// as the segment's policy names it (`policy_names`), unless its node was revoked.
pub fn name_reserved(
    claim: &NameClaim,
    policy_names: &HashSet<String>,
    released_after: i64,
) -> bool {
    match claim.released_at {
        None => true,
        Some(at) if at > released_after => true,
        Some(_) => !claim.node_revoked && policy_names.contains(&claim.name),
    }
}

/// The member names `policy`'s `{"member": …}` selectors rely on.
pub fn policy_member_names(policy: &segwire_policy::Policy) -> HashSet<String> {
    use segwire_policy::Selector;
    policy
        .rules
        .iter()
        .flat_map(|r| [&r.from, &r.to])
        .filter_map(|s| match s {
            Selector::Member(n) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

/// A readable default member name: `<node>` for the host, `<node>-<workload>` otherwise.
pub fn default_member_name(node: &str, workload: &str) -> String {
    let w = workload.rsplit('/').next().unwrap_or(workload);
    let s = if workload == "host" {
        node.to_string()
    } else {
        format!("{node}-{w}")
    };
    let s: String = s
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s: String = s.trim_matches('-').chars().take(56).collect();
    if s.is_empty() {
        "member".into()
    } else {
        s
    }
}

/// A free overlay address of `seg`, never one `taken` by a member nor one `quarantined`
/// (released recently); `None` when the segment has no IPv4 network, `Conflict` with a
/// hint when the network is full.
pub fn pick_address(
    seg: &SegmentRow,
    taken: &HashSet<u32>,
    quarantined: &HashSet<u32>,
) -> StoreResult<Option<Ipv4Addr>> {
    let Some(net) = seg.net else {
        return Ok(None);
    };
    ipam::allocate(net, taken, quarantined).map(Some).ok_or_else(|| {
        StoreError::Conflict(format!(
            "segment {:?} ({net}) has no free address: {} in use, {} released recently and held back; detach unused members or use a larger network",
            seg.name, taken.len(), quarantined.len()
        ))
    })
}

/// A free IPv6 overlay address of `seg` by the same rules as [`pick_address`]; `None`
/// when the segment has no IPv6 prefix.
pub fn pick_address6(
    seg: &SegmentRow,
    taken: &HashSet<Ipv6Addr>,
    quarantined: &HashSet<Ipv6Addr>,
) -> StoreResult<Option<Ipv6Addr>> {
    let Some(net6) = seg.net6 else {
        return Ok(None);
    };
    ipam::allocate6(net6, taken, quarantined).map(Some).ok_or_else(|| {
        StoreError::Conflict(format!(
            "segment {:?} ({net6}) has no free IPv6 address: {} in use, {} released recently and held back; detach unused members or use a larger prefix",
            seg.name, taken.len(), quarantined.len()
        ))
    })
}

/// The answer to a token id nobody issued or a wrong secret.
pub fn token_unknown() -> StoreError {
    StoreError::TokenUnknown(
        "the join token is not valid (unknown id or wrong secret); create a new one with `segwire token create`".into(),
    )
}

/// Checks a presented join token against its row (`None` when the id is unknown); the
/// backend then consumes one use atomically.
pub fn check_token(token: Option<&TokenRow>, secret_text: &str, now: i64) -> StoreResult<()> {
    let Some(token) = token else {
        // Spend the same work as a real check so the answer time does not tell.
        let _ = secret::verify_secret(secret_text, "");
        return Err(token_unknown());
    };
    if !secret::verify_secret(secret_text, &token.secret_hash) {
        return Err(token_unknown());
    }
    if token.revoked_at.is_some() {
        return Err(StoreError::TokenRejected(
            "this join token was revoked; ask an admin for a new one".into(),
        ));
    }
    if token.expires_at <= now {
        return Err(StoreError::TokenRejected(
            "this join token has expired; ask an admin for a new one".into(),
        ));
    }
    Ok(())
}

/// The answer when the atomic consume of a token found no use left.
pub fn token_used_up() -> StoreError {
    StoreError::TokenRejected("this join token has been used up; ask an admin for a new one".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claimed_name_is_held_during_quarantine_and_while_a_policy_names_it() {
        let claim = |released_at, node_revoked| NameClaim {
            name: "bastion".into(),
            released_at,
            node_revoked,
        };
        let none = HashSet::new();
        let named: HashSet<String> = ["bastion".to_string()].into();
        assert!(name_reserved(&claim(None, false), &none, 100));
        assert!(name_reserved(&claim(Some(101), false), &none, 100));
        assert!(!name_reserved(&claim(Some(100), false), &none, 100));
        assert!(name_reserved(&claim(Some(1), false), &named, 100));
        assert!(!name_reserved(&claim(Some(1), true), &named, 100));
        assert!(name_reserved(&claim(Some(101), true), &named, 100));
    }

    #[test]
    fn default_names_are_lowercase_dns_labels() {
        assert_eq!(default_member_name("Node1", "host"), "node1");
        assert_eq!(default_member_name("n1", "netns:web_01"), "n1-netns-web-01");
        assert_eq!(default_member_name("--", "host"), "member");
    }

    #[test]
    fn default_names_go_on_with_suffixes_and_a_request_is_its_only_candidate() {
        let default: Vec<String> = name_candidates(None, "n1", "host").take(3).collect();
        assert_eq!(default, ["n1", "n1-2", "n1-3"]);
        let requested: Vec<String> = name_candidates(Some("db"), "n1", "host").collect();
        assert_eq!(requested, ["db"]);
    }
}
