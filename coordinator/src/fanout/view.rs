//! One segment at one version, prepared once for every node's netmap: the policy parsed,
//! each member serialized as a peer, and the whole peer list kept as one JSON string.
//! A node's netmap is then assembled by copying slices of it, so a change costs one
//! build per segment plus a copy per answer, not a rebuild from rows per answer.

use std::collections::HashMap;
use std::ops::Range;

use segwire_policy::{Reach, Reachability};
use segwire_proto::delta::{member_digest, peer_hash};
use segwire_proto::netmap::{MemberMap, NetMap, Peer};

use crate::convert::member_endpoints;
use crate::policy;
use crate::store::{MemberRow, NodeRow, SegmentRows};

/// A segment prepared for netmaps.
pub struct SegmentView {
    rows: SegmentRows,
    policy_json: serde_json::Value,
    /// The policy resolved against the members, once for this version.
    reach: Reachability,
    /// Every member as a serialized [`Peer`], joined by commas.
    peers: String,
    /// The byte range of each member's peer in `peers`.
    spans: Vec<Range<usize>>,
    /// Member indexes by owning node.
    by_node: HashMap<String, Vec<usize>>,
    /// Whether some member is quarantined (then every peer list is filtered).
    any_quarantined: bool,
    /// Member indexes by member id.
    by_id: HashMap<String, usize>,
    /// Each member's [`peer_hash`].
    hashes: Vec<u128>,
    /// The wrapping sum of the hashes of the members not quarantined.
    live_sum: u128,
    /// Segment diffs from older versions to this one, by the older version.
    pub(super) diffs: super::delta::DiffCache,
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
                address: m.address.map(|a| a.to_string()),
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
        let policy_members: Vec<_> = rows.members.iter().map(policy::member).collect();
        let reach = Reachability::new(&policy, &policy_members);
        let any_quarantined = rows.members.iter().any(|m| m.quarantined_until.is_some());
        let hashes: Vec<u128> = spans.iter().map(|r| peer_hash(&peers[r.clone()])).collect();
        let live_sum = rows
            .members
            .iter()
            .zip(&hashes)
            .filter(|(m, _)| m.quarantined_until.is_none())
            .fold(0u128, |s, (_, h)| s.wrapping_add(*h));
        let by_id = rows
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.id.clone(), i))
            .collect();
        SegmentView {
            any_quarantined,
            rows,
            policy_json,
            reach,
            peers,
            spans,
            by_node,
            by_id,
            hashes,
            live_sum,
            diffs: Default::default(),
        }
    }

    /// The segment version this view was read at.
    pub fn version(&self) -> i64 {
        self.rows.segment.version
    }

    /// The segment's id.
    #[cfg(test)]
    pub fn segment_id(&self) -> &str {
        &self.rows.segment.id
    }

    /// Indexes of the members `node_id` owns in this segment.
    pub fn members_of(&self, node_id: &str) -> &[usize] {
        self.by_node.get(node_id).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The nodes with a member in the segment.
    pub fn node_ids(&self) -> impl Iterator<Item = &str> {
        self.by_node.keys().map(String::as_str)
    }

    /// The member at index `i`.
    pub fn member(&self, i: usize) -> &MemberRow {
        &self.rows.members[i]
    }

    /// The index of the member with id `id`.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    /// Member `i`'s serialized peer entry.
    pub fn peer_json(&self, i: usize) -> &str {
        &self.peers[self.spans[i].clone()]
    }

    /// The number of members.
    pub fn member_count(&self) -> usize {
        self.rows.members.len()
    }

    /// Approximate bytes this view holds (for the history's budget).
    pub fn weight(&self) -> usize {
        self.peers.len() * 3
    }

    /// Member `i`'s map without peers.
    pub fn head(&self, i: usize) -> MemberMap {
        let own = &self.rows.members[i];
        let seg = &self.rows.segment;
        MemberMap {
            id: own.id.clone(),
            name: own.name.clone(),
            workload: own.workload.clone(),
            segment: seg.name.clone(),
            cidr: seg.net.map(|n| n.to_string()),
            cidr6: seg.net6.map(|n| n.to_string()),
            address: own.address.map(|a| a.to_string()),
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
        }
    }

    /// Whether member `i`'s peers are every other member (no policy limit, nobody
    /// quarantined): then its list needs no per-member work.
    pub fn is_plain(&self, i: usize) -> bool {
        !self.any_quarantined && self.reach.reach(i) == Reach::All
    }

    /// Indexes of member `i`'s peers, in address order.
    pub fn peer_indexes(&self, i: usize) -> Vec<usize> {
        // A quarantined member has no peers, and no peer has it.
        if self.rows.members[i].quarantined_until.is_some() {
            return Vec::new();
        }
        let live = |j: &usize| *j != i && self.rows.members[*j].quarantined_until.is_none();
        match self.reach.reach(i) {
            Reach::All => (0..self.member_count()).filter(live).collect(),
            Reach::Some(ix) => ix.into_iter().filter(live).collect(),
        }
    }

    /// Member `i`'s [`member_digest`], as an agent computes it from its map.
    pub fn digest(&self, i: usize, head_json: &str) -> [u8; 32] {
        let sum = if self.rows.members[i].quarantined_until.is_some() {
            0
        } else if self.is_plain(i) {
            self.live_sum.wrapping_sub(self.hashes[i])
        } else {
            self.peer_indexes(i)
                .into_iter()
                .fold(0u128, |s, j| s.wrapping_add(self.hashes[j]))
        };
        member_digest(head_json, sum)
    }

    /// Appends member `i`'s map (its own fields and the peers the policy lets it reach)
    /// as JSON to `out`.
    pub fn write_member_map(&self, i: usize, out: &mut String) {
        push_open(out, &self.head(i), "\"peers\":[]}");
        if self.is_plain(i) {
            self.push_all_but(i, out);
        } else {
            self.push_peers(&self.peer_indexes(i), out);
        }
        out.push_str("]}");
    }

    /// Appends the peer entries of `indexes`, comma-separated, to `out`.
    pub fn push_peers(&self, indexes: &[usize], out: &mut String) {
        for (k, j) in indexes.iter().enumerate() {
            if k > 0 {
                out.push(',');
            }
            out.push_str(self.peer_json(*j));
        }
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
pub(super) fn push_open<T: serde::Serialize>(out: &mut String, value: &T, tail: &str) {
    let s = serde_json::to_string(value).unwrap_or_default();
    out.push_str(s.strip_suffix(tail).unwrap_or(&s));
    // The list's opening bracket is the one character of `tail` kept.
    out.push_str(&tail[..tail.len() - 2]);
}

/// The JSON netmap of `node`: its members (by address) in the given views, and the
/// `coordinators` URLs.
pub fn render(
    node: &NodeRow,
    version: i64,
    views: &[&SegmentView],
    coordinators: &[String],
) -> String {
    let mut own: Vec<(&SegmentView, usize)> = views
        .iter()
        .flat_map(|v| v.members_of(&node.id).iter().map(move |i| (*v, *i)))
        .collect();
    own.sort_by_key(|(v, i)| v.member(*i).address);
    let head = NetMap {
        version: version as u64,
        node_id: node.id.clone(),
        node_name: node.name.clone(),
        coordinators: coordinators.to_vec(),
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
