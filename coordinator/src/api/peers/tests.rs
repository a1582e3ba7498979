use std::net::Ipv4Addr;

use segwire_proto::api::{DefaultAction, Labels};

use super::config;
use crate::store::peers::PeerView;
use crate::store::{MemberRow, NodeRow, SegmentRow};

fn labels(k: &str, v: &str) -> Labels {
    [(k.to_owned(), v.to_owned())].into_iter().collect()
}

fn member(id: &str, node: &str, last: u8, l: Labels, endpoints: Vec<String>) -> MemberRow {
    MemberRow {
        id: id.into(),
        node_id: node.into(),
        node_name: if node == "external" {
            String::new()
        } else {
            format!("{node}-name")
        },
        segment_id: "s1".into(),
        segment: "web".into(),
        name: id.into(),
        workload: "host".into(),
        address: Some(Ipv4Addr::new(100, 64, 1, last)),
        address6: None,
        public_key: format!("key-{id}"),
        listen_port: 51820,
        endpoints,
        labels: l,
        created_at: 0,
        quarantined_until: None,
    }
}

fn view(policy: Option<&str>) -> PeerView {
    let node = NodeRow {
        id: "n1".into(),
        name: "n1-name".into(),
        public_key: String::new(),
        cred_hash: String::new(),
        segments: vec!["web".into()],
        labels: Labels::new(),
        endpoints: vec!["198.18.0.2".into()],
        observed: Some("198.18.0.2".into()),
        created_at: 0,
        last_seen: None,
        version: 1,
        members: 2,
        polled_by: None,
    };
    let laptop = member("laptop", "external", 9, labels("role", "laptop"), vec![]);
    PeerView {
        segment: SegmentRow {
            id: "s1".into(),
            name: "web".into(),
            net: Some("100.64.1.0/24".parse().expect("net")),
            net6: None,
            default: DefaultAction::Allow,
            psk: "PSK".into(),
            psk_version: 3,
            rotation: None,
            version: 1,
            created_at: 0,
            members: 3,
            policy: policy.map(str::to_owned),
            policy_version: u64::from(policy.is_some()) as i64,
        },
        peer: laptop.clone(),
        members: vec![
            member("web", "n1", 2, labels("app", "web"), vec![]),
            member(
                "db",
                "n1",
                3,
                labels("app", "db"),
                vec!["198.18.0.7:5000".into()],
            ),
            laptop,
        ],
        nodes: vec![node],
    }
}

#[test]
fn lists_every_other_member_with_its_first_endpoint() {
    let c = config(&view(None));
    assert_eq!(c.psk, "PSK");
    assert_eq!(c.psk_version, 3);
    assert_eq!(c.peer.address.as_deref(), Some("100.64.1.9"));
    let names: Vec<_> = c.peers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["web", "db"]);
    assert_eq!(c.peers[0].endpoint.as_deref(), Some("198.18.0.2:51820"));
    assert_eq!(c.peers[0].node, "n1-name");
    assert_eq!(c.peers[1].endpoint.as_deref(), Some("198.18.0.7:5000"));
}

#[test]
fn policy_prunes_members_the_device_may_not_reach() {
    let p = r#"{"default":"deny","rules":[{"name":"l","from":{"labels":{"role":"laptop"}},"to":{"labels":{"app":"web"}},"ports":["tcp/80"]}]}"#;
    let c = config(&view(Some(p)));
    let names: Vec<_> = c.peers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["web"]);
    let none = r#"{"default":"deny","rules":[{"name":"w","from":{"labels":{"app":"web"}},"to":{"labels":{"app":"db"}},"ports":["any"]}]}"#;
    assert!(config(&view(Some(none))).peers.is_empty());
}

#[test]
fn a_quarantined_member_is_left_out_of_the_device_config() {
    let mut v = view(None);
    v.members[0].quarantined_until = Some(1_900_000_000);
    let c = config(&v);
    let names: Vec<_> = c.peers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["db"]);
}
