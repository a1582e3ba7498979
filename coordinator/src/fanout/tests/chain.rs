//! Deltas against full maps: for random sequences of changes to two segments, every
//! node that applies the chain of deltas holds, at every version, exactly the full map
//! the coordinator would send it; and deltas stay small where they should.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use proptest::prelude::*;
use segwire_proto::delta::NetMapDelta;
use segwire_proto::netmap::NetMap;

use super::super::delta::render_delta;
use super::super::view::{render, SegmentView};
use super::{member, node, segment};
use crate::store::{NodeRow, SegmentRows};

const POLICIES: [Option<&str>; 4] = [
    None,
    Some(
        r#"{"default":"deny","rules":[{"name":"w2d","from":{"labels":{"app":"web"}},"to":{"labels":{"app":"db"}},"ports":["tcp/5432"]}]}"#,
    ),
    Some(r#"{"default":"deny","rules":[{"name":"ping","from":"*","to":"*","ports":["icmp"]}]}"#),
    Some(
        r#"{"default":"deny","rules":[{"name":"one","from":{"member":"m-2"},"to":{"labels":{"app":"cache"}},"ports":["any"]}]}"#,
    ),
];
const APPS: [&str; 3] = ["web", "db", "cache"];

/// One change to one of the two segments.
#[derive(Debug, Clone)]
enum Change {
    Attach { seg: usize, node: usize, app: usize },
    Detach { seg: usize, pick: usize },
    Endpoint { seg: usize, pick: usize, port: u16 },
    Relabel { seg: usize, pick: usize, app: usize },
    Policy { seg: usize, which: usize },
    RotatePsk { seg: usize },
    Quarantine { seg: usize, pick: usize },
}

fn change() -> impl Strategy<Value = Change> {
    let seg = 0..2usize;
    prop_oneof![
        3 => (seg.clone(), 0..3usize, 0..3usize).prop_map(|(seg, node, app)| Change::Attach { seg, node, app }),
        1 => (seg.clone(), any::<usize>()).prop_map(|(seg, pick)| Change::Detach { seg, pick }),
        1 => (seg.clone(), any::<usize>(), 1000..2000u16).prop_map(|(seg, pick, port)| Change::Endpoint { seg, pick, port }),
        1 => (seg.clone(), any::<usize>(), 0..3usize).prop_map(|(seg, pick, app)| Change::Relabel { seg, pick, app }),
        1 => (seg.clone(), 0..POLICIES.len()).prop_map(|(seg, which)| Change::Policy { seg, which }),
        1 => seg.clone().prop_map(|seg| Change::RotatePsk { seg }),
        1 => (seg, any::<usize>()).prop_map(|(seg, pick)| Change::Quarantine { seg, pick }),
    ]
}

struct World {
    nodes: Vec<NodeRow>,
    segs: Vec<SegmentRows>,
    clock: i64,
    next_id: u32,
}

impl World {
    fn new() -> Self {
        let nodes = vec![
            node("a", "198.18.0.1"),
            node("b", "198.18.0.2"),
            node("c", "198.18.0.3"),
        ];
        let segs = [("web", "100.64.1.0/24"), ("db", "100.64.2.0/24")]
            .iter()
            .map(|(id, net)| SegmentRows {
                segment: segment(id, net, 1, None),
                members: Vec::new(),
                nodes: nodes.clone(),
            })
            .collect();
        World {
            nodes,
            segs,
            clock: 1,
            next_id: 0,
        }
    }

    fn apply(&mut self, c: &Change) {
        self.clock += 1;
        let (seg, clock) = match c {
            Change::Attach { seg, .. }
            | Change::Detach { seg, .. }
            | Change::Endpoint { seg, .. }
            | Change::Relabel { seg, .. }
            | Change::Policy { seg, .. }
            | Change::RotatePsk { seg }
            | Change::Quarantine { seg, .. } => (*seg, self.clock),
        };
        let rows = &mut self.segs[seg];
        let n = rows.members.len();
        match c {
            Change::Attach { node, app, .. } => {
                let third = if seg == 0 { 1 } else { 2 };
                let Some(last) = (1..250u8).find(|o| {
                    !rows
                        .members
                        .iter()
                        .any(|m| m.address.is_some_and(|a| a.octets()[3] == *o))
                }) else {
                    return;
                };
                let mut m = member(
                    &rows.segment,
                    &self.nodes[*node].id,
                    Ipv4Addr::new(100, 64, third, last),
                    APPS[*app],
                );
                self.next_id += 1;
                m.id = format!("{}-{}", rows.segment.id, self.next_id);
                rows.members.push(m);
                rows.members.sort_by_key(|m| m.address);
            }
            Change::Detach { pick, .. } if n > 0 => {
                rows.members.remove(pick % n);
            }
            Change::Endpoint { pick, port, .. } if n > 0 => {
                rows.members[pick % n].endpoints = vec![format!("198.18.5.5:{port}")];
            }
            Change::Relabel { pick, app, .. } if n > 0 => {
                let m = &mut rows.members[pick % n];
                m.labels = [("app".to_string(), APPS[*app].to_string())]
                    .into_iter()
                    .collect();
            }
            Change::Policy { which, .. } => {
                rows.segment.policy = POLICIES[*which].map(str::to_owned);
                rows.segment.policy_version += 1;
            }
            Change::RotatePsk { .. } => {
                rows.segment.psk = format!("psk-{clock}");
                rows.segment.psk_version += 1;
            }
            Change::Quarantine { pick, .. } if n > 0 => {
                let m = &mut rows.members[pick % n];
                m.quarantined_until = match m.quarantined_until {
                    Some(_) => None,
                    None => Some(1_900_000_000),
                };
            }
            _ => return,
        }
        rows.segment.version = clock;
    }
}

/// The segments `node` has members in, and the map version they make.
fn mine<'a>(views: &'a [SegmentView], node: &NodeRow) -> (i64, Vec<&'a SegmentView>) {
    let refs: Vec<&SegmentView> = views
        .iter()
        .filter(|v| !v.members_of(&node.id).is_empty())
        .collect();
    let version = refs
        .iter()
        .map(|v| v.version())
        .max()
        .unwrap_or(0)
        .max(node.version);
    (version, refs)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn applying_the_chain_of_deltas_equals_the_full_map(changes in prop::collection::vec(change(), 1..40)) {
        let mut world = World::new();
        // What each node holds: its map, and the views that map was made of.
        let mut held: BTreeMap<String, (NetMap, Vec<SegmentView>)> = BTreeMap::new();
        for c in &changes {
            world.apply(c);
            let views: Vec<SegmentView> = world.segs.iter().cloned().map(SegmentView::new).collect();
            for n in &world.nodes {
                let (version, refs) = mine(&views, n);
                let full: NetMap = serde_json::from_str(&render(n, version, &refs, &[])).expect("full map parses");
                if let Some((map, old_views)) = held.get(&n.id) {
                    if map.version as i64 != version {
                        // The old view of each current segment (the cache's `view_at`).
                        let parts: Vec<_> = refs
                            .iter()
                            .map(|v| {
                                let old = old_views.iter().find(|o| o.segment_id() == v.segment_id());
                                (old, *v)
                            })
                            .collect();
                        let text = render_delta(n, version, map.version, &parts, &[]);
                        let delta: NetMapDelta = serde_json::from_str(&text).expect("delta parses");
                        let got = delta.apply(map).expect("the delta applies and its digest matches");
                        prop_assert_eq!(&got, &full, "node {} at version {}", n.id, version);
                        prop_assert!(text.len() <= serde_json::to_string(&full).expect("json").len() + 512 * (1 + full.members.len()),
                            "a delta is never much bigger than the map");
                    }
                }
                let kept = world.segs.iter().cloned().map(SegmentView::new).collect();
                held.insert(n.id.clone(), (full, kept));
            }
        }
    }
}

#[test]
fn a_join_in_a_large_allow_all_segment_sends_one_peer_to_each() {
    let nodes: Vec<NodeRow> = (0..200)
        .map(|i| node(&format!("n{i}"), "198.18.0.1"))
        .collect();
    let seg = segment("web", "100.64.0.0/16", 5, None);
    let members = (0..200u16)
        .map(|i| {
            let [hi, lo] = (i + 1).to_be_bytes();
            member(
                &seg,
                &nodes[usize::from(i)].id,
                Ipv4Addr::new(100, 64, hi, lo),
                "web",
            )
        })
        .collect::<Vec<_>>();
    let old = SegmentRows {
        segment: seg.clone(),
        members: members[..199].to_vec(),
        nodes: nodes.clone(),
    };
    let mut new = SegmentRows {
        segment: seg,
        members,
        nodes: nodes.clone(),
    };
    new.segment.version = 6;
    let (old, new) = (SegmentView::new(old), SegmentView::new(new));
    let full = render(&nodes[0], 6, &[&new], &[]);
    let text = render_delta(&nodes[0], 6, 5, &[(Some(&old), &new)], &[]);
    let delta: NetMapDelta = serde_json::from_str(&text).expect("parses");
    assert_eq!(delta.members[0].peers_set.len(), 1);
    assert!(delta.members[0].set.is_empty() && delta.members[0].peers_removed.is_empty());
    assert!(
        text.len() * 50 < full.len(),
        "delta {} bytes, full map {}",
        text.len(),
        full.len()
    );
}
