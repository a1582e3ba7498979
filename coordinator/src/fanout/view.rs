//! One segment at one version, prepared once for every node's netmap: the policy parsed,
//! each member serialized as a peer, and the whole peer list kept as one JSON string.
//! A node's netmap is then assembled by copying slices of it, so a change costs one
//! build per segment plus a copy per answer, not a rebuild from rows per answer.

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;

use segwire_policy::{Action, Policy};
use segwire_proto::netmap::{MemberMap, NetMap, Peer};

use crate::convert::member_endpoints;
use crate::policy;
use crate::store::{MemberRow, NodeRow, SegmentRows};

/// A segment prepared for netmaps.
pub struct SegmentView {
    rows: SegmentRows,
    policy: Policy,
    policy_json: serde_json::Value,
    policy_members: Vec<segwire_policy::Member>,
    /// Every member as a serialized [`Peer`], joined by commas.
    peers: String,
    /// The byte range of each member's peer in `peers`.
    spans: Vec<Range<usize>>,
    /// Member indexes by owning node.
    by_node: HashMap<String, Vec<usize>>,
    /// Whether some member is quarantined (then every peer list is filtered).
    any_quarantined: bool,
}

impl SegmentView {
    /// Prepares `rows` (members by address).
    pub fn new(rows: SegmentRows) -> Self {
        let nodes: HashMap<&str, &NodeRow> =
            rows.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
        let mut peers = String::new();
        let mut spans = Vec::with_capacity(rows.members.len());
        let mut by_node: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, m) in rows.members.iter().enumerate() {
            if i > 0 {
                peers.push(',');
            }
            let start = peers.len();
            let peer = Peer {
                id: m.id.clone(),
                name: m.name.clone(),
                node: m.node_name.clone(),
                public_key: m.public_key.clone(),
                address: m.address.to_string(),
                address6: m.address6.map(|a| a.to_string()),
                endpoints: member_endpoints(m, nodes.get(m.node_id.as_str()).copied()),
                labels: m.labels.clone(),
            };
            peers.push_str(&serde_json::to_string(&peer).unwrap_or_else(|_| "null".into()));
            spans.push(start..peers.len());
            by_node.entry(m.node_id.clone()).or_default().push(i);
        }
        let policy = policy::effective(&rows.segment);
        let policy_json = policy::for_agents(&policy);
        let policy_members = rows.members.iter().map(policy::member).collect();
        let any_quarantined = rows.members.iter().any(|m| m.quarantined_until.is_some());
        SegmentView {
            any_quarantined,
            rows,
            policy,
            policy_json,
            policy_members,
            peers,
            spans,
            by_node,
        }
    }

    /// The segment version this view was read at.
    pub fn version(&self) -> i64 {
        self.rows.segment.version
    }

    /// Indexes of the members `node_id` owns in this segment.
    pub fn members_of(&self, node_id: &str) -> &[usize] {
        self.by_node.get(node_id).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The member at index `i`.
    pub fn member(&self, i: usize) -> &MemberRow {
        &self.rows.members[i]
    }

    /// Appends member `i`'s map (its own fields and the peers the policy lets it reach)
    /// as JSON to `out`.
    pub fn write_member_map(&self, i: usize, out: &mut String) {
        let own = &self.rows.members[i];
        let seg = &self.rows.segment;
        let head = MemberMap {
            id: own.id.clone(),
            name: own.name.clone(),
            workload: own.workload.clone(),
            segment: seg.name.clone(),
            cidr: seg.net.to_string(),
            cidr6: seg.net6.map(|n| n.to_string()),
            address: own.address.to_string(),
            address6: own.address6.map(|a| a.to_string()),
            listen_port: own.listen_port,
            psk: seg.psk.clone(),
            psk_version: seg.psk_version as u64,
            psk_next: seg.psk_next().map(str::to_owned),
            psk_previous: seg.psk_previous().map(str::to_owned),
            default: seg.default,
            policy: self.policy_json.clone(),
            policy_version: seg.policy_version as u64,
            labels: own.labels.clone(),
            quarantined_until: own.quarantined_until.map(crate::convert::rfc3339),
            peers: Vec::new(),
        };
        push_open(out, &head, "\"peers\":[]}");
        // A quarantined member has no peers, and no peer has it.
        if own.quarantined_until.is_some() {
            out.push_str("]}");
            return;
        }
        let reachable = self.reachable(i);
        match reachable {
            None if !self.any_quarantined => self.push_all_but(i, out),
            _ => {
                let mut first = true;
                for (j, m) in self.rows.members.iter().enumerate() {
                    let allowed = reachable.as_ref().is_none_or(|n| n.contains(&m.name));
                    if j != i && allowed && m.quarantined_until.is_none() {
                        if !first {
                            out.push(',');
                        }
                        first = false;
                        out.push_str(&self.peers[self.spans[j].clone()]);
                    }
                }
            }
        }
        out.push_str("]}");
    }

    /// `None` when member `i` may reach every other member (the common case, answered
    /// without looking at the others), else the names it may reach.
    fn reachable(&self, i: usize) -> Option<BTreeSet<String>> {
        if self.policy.default == Action::Allow {
            return None;
        }
        let names = segwire_policy::reachable_peers(
            &self.policy,
            &self.policy_members[i],
            &self.policy_members,
        );
        (names.len() + 1 < self.rows.members.len()).then_some(names)
    }

    fn push_all_but(&self, i: usize, out: &mut String) {
        let Range { start, end } = self.spans[i].clone();
        let before = self.peers[..start].trim_end_matches(',');
        let after = self.peers[end..].trim_start_matches(',');
        out.push_str(before);
        if !before.is_empty() && !after.is_empty() {
            out.push(',');
        }
        out.push_str(after);
    }
}

/// Serializes `value` and appends it to `out` without its final `tail` (an empty list and
/// the closing brace), so the caller can write the list's items and close it.
fn push_open<T: serde::Serialize>(out: &mut String, value: &T, tail: &str) {
    let s = serde_json::to_string(value).unwrap_or_default();
    out.push_str(s.strip_suffix(tail).unwrap_or(&s));
    // The list's opening bracket is the one character of `tail` kept.
    out.push_str(&tail[..tail.len() - 2]);
}

/// The JSON netmap of `node`: its members (by address) in the given views.
pub fn render(node: &NodeRow, version: i64, views: &[&SegmentView]) -> String {
    let mut own: Vec<(&SegmentView, usize)> = views
        .iter()
        .flat_map(|v| v.members_of(&node.id).iter().map(move |i| (*v, *i)))
        .collect();
    own.sort_by_key(|(v, i)| v.member(*i).address);
    let head = NetMap {
        version: version as u64,
        node_id: node.id.clone(),
        node_name: node.name.clone(),
        members: Vec::new(),
    };
    let mut out = String::new();
    push_open(&mut out, &head, "\"members\":[]}");
    for (k, (v, i)) in own.iter().enumerate() {
        if k > 0 {
            out.push(',');
        }
        v.write_member_map(*i, &mut out);
    }
    out.push_str("]}");
    out
}
