//! The assembled netmap equals the one built from rows (`netmap::build`), for every node,
//! under an allow-all segment, a deny policy with rules, and a node in two segments.

use std::net::Ipv4Addr;

use segwire_proto::api::{DefaultAction, Labels};
use segwire_proto::netmap::NetMap;

use super::view::{render, SegmentView};
use crate::netmap;
use crate::store::{MemberRow, NetmapRows, NodeRow, SegmentRow, SegmentRows};

fn node(id: &str, ip: &str) -> NodeRow {
    NodeRow {
        id: id.into(),
        name: format!("{id}-name"),
        public_key: String::new(),
        cred_hash: String::new(),
        segments: vec!["web".into(), "db".into()],
        labels: Labels::new(),
        endpoints: vec![ip.into()],
        observed: Some("198.18.9.9".into()),
        created_at: 0,
        last_seen: None,
        version: 3,
        members: 0,
        polled_by: None,
    }
}

fn segment(id: &str, net: &str, version: i64, policy: Option<&str>) -> SegmentRow {
    SegmentRow {
        id: id.into(),
        name: format!("{id}-name"),
        net: Some(net.parse().expect("net")),
        net6: None,
        default: DefaultAction::Allow,
        psk: format!("psk-{id}"),
        psk_version: 2,
        rotation: None,
        version,
        created_at: 0,
        members: 0,
        policy: policy.map(str::to_owned),
        policy_version: i64::from(policy.is_some()),
    }
}

fn member(seg: &SegmentRow, node: &str, addr: Ipv4Addr, app: &str) -> MemberRow {
    MemberRow {
        id: format!("{}-{addr}", seg.id),
        node_id: node.into(),
        node_name: format!("{node}-name"),
        segment_id: seg.id.clone(),
        segment: seg.name.clone(),
        name: format!("m-{}", addr.octets()[3]),
        workload: "host".into(),
        address: Some(addr),
        address6: None,
        public_key: format!("key-{addr}"),
        listen_port: 51820,
        endpoints: vec![],
        labels: [("app".to_string(), app.to_string())].into_iter().collect(),
        created_at: 0,
        quarantined_until: None,
    }
}

fn rows(seg: SegmentRow, third: u8, nodes: &[NodeRow]) -> SegmentRows {
    let apps = ["web", "db", "web", "cache", "db"];
    let members = (0..5u8)
        .map(|i| {
            let owner = &nodes[usize::from(i) % nodes.len()].id;
            member(
                &seg,
                owner,
                Ipv4Addr::new(100, 64, third, i + 1),
                apps[usize::from(i)],
            )
        })
        .collect();
    SegmentRows {
        segment: seg,
        members,
        nodes: nodes.to_vec(),
    }
}

fn assert_same_as_rows(segs: &[SegmentRows], nodes: &[NodeRow]) {
    let views: Vec<SegmentView> = segs.iter().cloned().map(SegmentView::new).collect();
    for n in nodes {
        let mine: Vec<&SegmentRows> = segs
            .iter()
            .filter(|s| s.members.iter().any(|m| m.node_id == n.id))
            .collect();
        let version = mine
            .iter()
            .map(|s| s.segment.version)
            .chain([n.version])
            .max()
            .unwrap_or(0);
        let mut members: Vec<MemberRow> = mine.iter().flat_map(|s| s.members.clone()).collect();
        members.sort_by_key(|m| m.address);
        let expected = netmap::build(&NetmapRows {
            node: n.clone(),
            segments: mine.iter().map(|s| s.segment.clone()).collect(),
            members,
            nodes: nodes.to_vec(),
            version,
        });
        let refs: Vec<&SegmentView> = views
            .iter()
            .filter(|v| !v.members_of(&n.id).is_empty())
            .collect();
        let got: NetMap =
            serde_json::from_str(&render(n, version, &refs, &[])).expect("rendered netmap parses");
        assert_eq!(got, expected, "netmap of {}", n.id);
    }
}

#[test]
fn allow_all_segment_matches_the_row_built_netmap() {
    let nodes = [node("a", "198.18.0.1"), node("b", "198.18.0.2")];
    let seg = rows(segment("web", "100.64.1.0/24", 7, None), 1, &nodes);
    assert_same_as_rows(&[seg], &nodes);
}

#[test]
fn deny_policy_with_rules_matches_the_row_built_netmap() {
    let policy = r#"{"default":"deny","rules":[{"name":"w2d","from":{"labels":{"app":"web"}},
        "to":{"labels":{"app":"db"}},"ports":["tcp/5432"]}]}"#;
    let nodes = [
        node("a", "198.18.0.1"),
        node("b", "198.18.0.2"),
        node("c", "198.18.0.3"),
    ];
    let seg = rows(segment("web", "100.64.1.0/24", 9, Some(policy)), 1, &nodes);
    assert_same_as_rows(&[seg], &nodes);
}

#[test]
fn a_node_in_two_segments_gets_both_in_address_order() {
    let nodes = [node("a", "198.18.0.1"), node("b", "198.18.0.2")];
    let ping =
        r#"{"default":"deny","rules":[{"name":"ping","from":"*","to":"*","ports":["icmp"]}]}"#;
    let segs = [
        rows(segment("web", "100.64.2.0/24", 4, None), 2, &nodes),
        rows(
            segment("db", "100.64.1.0/24", 11, Some(ping)),
            1,
            &nodes[..1],
        ),
    ];
    assert_same_as_rows(&segs, &nodes);
}

#[test]
fn a_quarantined_member_has_no_peers_and_no_peer_has_it() {
    let nodes = [node("a", "198.18.0.1"), node("b", "198.18.0.2")];
    for policy in [
        None,
        Some(
            r#"{"default":"deny","rules":[{"name":"ping","from":"*","to":"*","ports":["icmp"]}],"quarantine":{"on":["scan"],"for":"1m"}}"#,
        ),
    ] {
        let mut seg = rows(segment("web", "100.64.1.0/24", 7, policy), 1, &nodes);
        seg.members[1].quarantined_until = Some(1_900_000_000);
        assert_same_as_rows(std::slice::from_ref(&seg), &nodes);
        let view = SegmentView::new(seg.clone());
        let map: NetMap =
            serde_json::from_str(&render(&nodes[1], 7, &[&view], &[])).expect("parses");
        let cut = map
            .members
            .iter()
            .find(|m| m.address.as_deref() == Some("100.64.1.2"))
            .expect("the quarantined member stays attached");
        assert!(cut.peers.is_empty() && cut.quarantined_until.is_some());
        assert!(
            cut.policy.get("quarantine").is_none(),
            "agents get what they enforce"
        );
        for m in &map.members {
            assert!(
                m.peers
                    .iter()
                    .all(|p| p.address.as_deref() != Some("100.64.1.2")),
                "{m:?}"
            );
        }
        let other: NetMap =
            serde_json::from_str(&render(&nodes[0], 7, &[&view], &[])).expect("parses");
        assert!(
            other.members.iter().all(|m| m.peers.len() == 3),
            "{other:?}"
        );
    }
}

mod chain;
