//! Applying deltas by hand-made examples; the coordinator's tests check its deltas
//! against its full maps for random change sequences.

use serde_json::{json, Map, Value};

use super::*;
use crate::api::{DefaultAction, Labels};

fn peer(n: u8) -> Peer {
    Peer {
        id: format!("p{n}"),
        name: format!("m-{n}"),
        node: "host".into(),
        public_key: format!("key-{n}"),
        address: Some(format!("100.64.0.{n}")),
        address6: None,
        endpoints: vec![format!("198.18.0.{n}:51820")],
        labels: Labels::new(),
    }
}

fn member(peers: &[u8]) -> MemberMap {
    MemberMap {
        id: "me".into(),
        name: "m-1".into(),
        workload: "host".into(),
        segment: "web".into(),
        cidr: Some("100.64.0.0/24".into()),
        address: Some("100.64.0.1".into()),
        address6: None,
        cidr6: None,
        listen_port: 51820,
        psk: "PSK".into(),
        psk_version: 1,
        psk_next: None,
        psk_previous: None,
        default: DefaultAction::Allow,
        policy: json!({"default": "allow", "rules": []}),
        policy_version: 0,
        labels: Labels::new(),
        quarantined_until: None,
        peers: peers.iter().map(|&n| peer(n)).collect(),
    }
}

fn map(version: u64, members: Vec<MemberMap>) -> NetMap {
    NetMap {
        version,
        node_id: "n1".into(),
        node_name: "host-a".into(),
        coordinators: Vec::new(),
        members,
    }
}

fn head() -> Map<String, Value> {
    let mut h = Map::new();
    h.insert("node_id".into(), json!("n1"));
    h.insert("node_name".into(), json!("host-a"));
    h
}

fn delta(base: u64, target: &NetMap, members: Vec<MemberDelta>) -> NetMapDelta {
    NetMapDelta {
        version: target.version,
        base,
        digest: target.digest(),
        head: head(),
        members,
    }
}

#[test]
fn peers_added_changed_and_removed_land_in_address_order() {
    let old = map(3, vec![member(&[2, 3, 5])]);
    let mut changed = peer(3);
    changed.endpoints = vec!["198.18.9.9:51820".into()];
    let mut want = map(7, vec![member(&[2, 3, 4])]);
    want.members[0].peers[1] = changed.clone();
    let d = delta(
        3,
        &want,
        vec![MemberDelta {
            id: "me".into(),
            set: Map::new(),
            peers_removed: vec!["p5".into()],
            peers_set: vec![peer(4), changed],
        }],
    );
    assert_eq!(d.apply(&old), Ok(want));
}

#[test]
fn fields_are_set_and_cleared_generically() {
    let mut old = map(3, vec![member(&[2])]);
    old.members[0].quarantined_until = Some("2026-12-02T00:00:00Z".into());
    let mut want = map(4, vec![member(&[2])]);
    want.members[0].psk = "NEW".into();
    want.members[0].psk_version = 2;
    let mut set = Map::new();
    set.insert("psk".into(), json!("NEW"));
    set.insert("psk_version".into(), json!(2));
    set.insert("quarantined_until".into(), Value::Null);
    let d = delta(
        3,
        &want,
        vec![MemberDelta {
            id: "me".into(),
            set,
            peers_removed: vec![],
            peers_set: vec![],
        }],
    );
    assert_eq!(d.apply(&old), Ok(want));
}

#[test]
fn members_not_listed_are_gone_and_new_ones_come_whole() {
    let old = map(3, vec![member(&[2])]);
    let mut new_member = member(&[5]);
    new_member.id = "other".into();
    let want = map(9, vec![new_member.clone()]);
    let mut fields = match serde_json::to_value(MemberMap {
        peers: vec![],
        ..new_member
    }) {
        Ok(Value::Object(f)) => f,
        other => panic!("not an object: {other:?}"),
    };
    fields.remove("peers");
    let d = delta(
        3,
        &want,
        vec![MemberDelta {
            id: "other".into(),
            set: fields,
            peers_removed: vec![],
            peers_set: vec![peer(5)],
        }],
    );
    assert_eq!(d.apply(&old), Ok(want));
}

#[test]
fn a_wrong_base_or_digest_is_refused() {
    let old = map(3, vec![member(&[2])]);
    let want = map(4, vec![member(&[2, 3])]);
    let mut d = delta(
        3,
        &want,
        vec![MemberDelta {
            id: "me".into(),
            set: Map::new(),
            peers_removed: vec![],
            peers_set: vec![peer(3)],
        }],
    );
    assert_eq!(
        d.apply(&map(2, vec![])),
        Err(DeltaError::WrongBase {
            expected: 3,
            held: 2
        })
    );
    d.members[0].peers_set.clear();
    assert_eq!(d.apply(&old), Err(DeltaError::Digest));
}

#[test]
fn a_member_that_misses_fields_is_invalid() {
    let want = map(4, vec![member(&[])]);
    let d = delta(
        0,
        &want,
        vec![MemberDelta {
            id: "me".into(),
            set: Map::new(),
            peers_removed: vec![],
            peers_set: vec![],
        }],
    );
    assert!(matches!(
        d.apply(&map(0, vec![])),
        Err(DeltaError::Invalid { .. })
    ));
}

#[test]
fn debug_hides_the_psk() {
    let mut set = Map::new();
    set.insert("psk".into(), json!("SECRETPSK"));
    let d = MemberDelta {
        id: "me".into(),
        set,
        peers_removed: vec![],
        peers_set: vec![],
    };
    assert!(!format!("{d:?}").contains("SECRETPSK"));
}
