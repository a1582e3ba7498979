use segwire_proto::api::{DefaultAction, Labels};
use segwire_proto::keys::encode_key;
use segwire_proto::CaPin;

use super::*;
use crate::state::STATE_FORMAT;

const PSK_A: [u8; 32] = [0xa; 32];
const PSK_B: [u8; 32] = [0xb; 32];

fn local(id: &str, workload: Workload, port: u16) -> LocalMember {
    LocalMember {
        id: id.into(),
        name: format!("name-{id}"),
        segment: "web".into(),
        workload,
        address: Some(Ipv4Addr::new(100, 64, 1, 2)),
        address6: None,
        listen_port: port,
        private_key: PrivateKey::generate(),
        labels: Labels::new(),
        confirmed: false,
        interface: None,
        container: None,
        netns_id: None,
    }
}

fn state(members: Vec<LocalMember>) -> NodeState {
    NodeState {
        format: STATE_FORMAT,
        node_id: "node-a".into(),
        name: "host-a".into(),
        coordinator_url: "https://198.18.0.1:7443".into(),
        coordinator_urls: Vec::new(),
        ca_pin: CaPin([0; 32]),
        credential: "swn_x".into(),
        identity_key: PrivateKey::generate(),
        endpoint: None,
        segments: vec!["web".into()],
        labels: Labels::new(),
        members,
    }
}

fn peer(n: u8, endpoint: &str) -> Peer {
    Peer {
        id: format!("p{n}"),
        name: format!("peer-{n}"),
        node: "host-b".into(),
        public_key: encode_key(&PrivateKey::generate().public_key().0),
        address: Some(format!("100.64.1.{}", 10 + n)),
        address6: None,
        endpoints: vec![endpoint.into()],
        labels: Labels::new(),
    }
}

fn member_map(local: &LocalMember, psk: [u8; 32], peers: Vec<Peer>) -> MemberMap {
    MemberMap {
        id: local.id.clone(),
        name: local.name.clone(),
        workload: local.workload.to_string(),
        segment: local.segment.clone(),
        cidr: Some("100.64.1.0/24".into()),
        address: local.address.map(|a| a.to_string()),
        cidr6: None,
        address6: None,
        listen_port: local.listen_port,
        psk: encode_key(&psk),
        psk_version: u64::from(psk[0]),
        psk_next: None,
        psk_previous: None,
        default: DefaultAction::Allow,
        policy: serde_json::json!({"default": "allow", "rules": []}),
        policy_version: 0,
        labels: Labels::new(),
        quarantined_until: None,
        peers,
    }
}

fn netmap(version: u64, members: Vec<MemberMap>) -> NetMap {
    NetMap {
        version,
        node_id: "node-a".into(),
        node_name: "host-a".into(),
        coordinators: Vec::new(),
        members,
    }
}

fn config(state: &NodeState, map: &NetMap) -> NodeConfig {
    let d = desired(state, Some(map), Underlay::default());
    assert!(d.skipped.is_empty(), "{:?}", d.skipped);
    d.config
}

#[test]
fn desired_builds_members_from_state_and_netmap() {
    let m = local("m1", Workload::Netns("ca".into()), 51820);
    let st = state(vec![m.clone()]);
    let p = peer(1, "198.18.0.3:51820");
    let map = netmap(5, vec![member_map(&m, PSK_A, vec![p.clone()])]);
    let cfg = config(&st, &map);
    let mc = cfg.members.get("m1").expect("member");
    assert_eq!(mc.interface, "sw-web");
    assert_eq!(mc.workload, Workload::Netns("ca".into()));
    assert_eq!(
        mc.ipv4,
        Some((
            Ipv4Addr::new(100, 64, 1, 2),
            "100.64.1.0/24".parse::<Ipv4Net>().expect("cidr")
        ))
    );
    assert_eq!(mc.listen_port, 51820);
    assert_eq!(mc.public_key, m.private_key.public_key());
    assert_eq!(mc.psk, PresharedKey::new(PSK_A));
    let ps = mc.peers.values().next().expect("peer");
    assert_eq!(ps.public_key.to_base64(), p.public_key);
    assert_eq!(
        ps.allowed_ips,
        vec!["100.64.1.11/32".parse::<ipnet::IpNet>().expect("net")]
    );
    assert_eq!(ps.endpoint, Some("198.18.0.3:51820".parse().expect("ep")));
}

#[test]
fn desired_skips_unknown_members_and_bad_peers() {
    let m = local("m1", Workload::Host, 51820);
    let stranger = local("m2", Workload::Host, 51821);
    let mut bad = peer(2, "x");
    bad.public_key = "nope".into();
    let own = Peer {
        public_key: encode_key(&m.private_key.public_key().0),
        ..peer(3, "198.18.0.3:1")
    };
    let map = netmap(
        2,
        vec![
            member_map(&m, PSK_A, vec![peer(1, "not-an-endpoint"), bad, own]),
            member_map(&stranger, PSK_A, vec![]),
        ],
    );
    let d = desired(&state(vec![m]), Some(&map), Underlay::default());
    assert_eq!(d.config.members.len(), 1);
    let mc = &d.config.members["m1"];
    assert_eq!(mc.peers.len(), 1, "only the good peer");
    assert_eq!(mc.peers.values().next().map(|p| p.endpoint), Some(None));
    assert_eq!(d.skipped.len(), 3, "{:?}", d.skipped);
    assert_eq!(
        desired(&state(vec![]), None, Underlay::default()).config,
        NodeConfig::default()
    );
}

#[test]
fn unchanged_netmap_gives_no_changes() {
    let m = local("m1", Workload::Host, 51820);
    let st = state(vec![m.clone()]);
    let map = netmap(
        1,
        vec![member_map(&m, PSK_A, vec![peer(1, "198.18.0.3:51820")])],
    );
    let cfg = config(&st, &map);
    assert!(diff(&cfg, &cfg.clone()).is_empty());
    let mut newer = map.clone();
    newer.version = 9;
    assert!(diff(&cfg, &config(&st, &newer)).is_empty());
}

#[test]
fn add_and_remove_members() {
    let m1 = local("m1", Workload::Host, 51820);
    let m2 = local("m2", Workload::Netns("cb".into()), 51821);
    let st = state(vec![m1.clone(), m2.clone()]);
    let one = config(&st, &netmap(1, vec![member_map(&m1, PSK_A, vec![])]));
    let two = config(
        &st,
        &netmap(
            2,
            vec![
                member_map(&m1, PSK_A, vec![]),
                member_map(&m2, PSK_A, vec![]),
            ],
        ),
    );
    let added = diff(&one, &two);
    assert!(
        matches!(added.as_slice(), [Change::AddMember(m)] if m.id == "m2"),
        "{added:?}"
    );
    let removed = diff(&two, &one);
    assert!(
        matches!(removed.as_slice(), [Change::RemoveMember { id, interface, .. }] if id == "m2" && interface == "sw-web"),
        "{removed:?}"
    );
    let from_nothing = diff(&NodeConfig::default(), &two);
    assert_eq!(from_nothing.len(), 2);
}

#[test]
fn add_and_remove_peers() {
    let m = local("m1", Workload::Host, 51820);
    let st = state(vec![m.clone()]);
    let (p1, p2) = (peer(1, "198.18.0.3:51820"), peer(2, "198.18.0.4:51820"));
    let before = config(
        &st,
        &netmap(1, vec![member_map(&m, PSK_A, vec![p1.clone()])]),
    );
    let after = config(
        &st,
        &netmap(2, vec![member_map(&m, PSK_A, vec![p2.clone()])]),
    );
    let changes = diff(&before, &after);
    // The peer set feeds the member's classifier, so the policy is recompiled last.
    assert_eq!(changes.len(), 3, "{changes:?}");
    assert!(matches!(&changes[2], Change::SetPolicy { member, .. } if member == "m1"));
    assert!(
        matches!(&changes[0], Change::RemovePeer { member, public_key, .. }
        if member == "m1" && public_key.to_base64() == p1.public_key)
    );
    assert!(matches!(&changes[1], Change::AddPeer { member, peer }
        if member == "m1" && peer.public_key.to_base64() == p2.public_key));
}

#[test]
fn endpoint_change_updates_the_peer_in_place() {
    let m = local("m1", Workload::Host, 51820);
    let st = state(vec![m.clone()]);
    let p = peer(1, "198.18.0.3:51820");
    let moved = Peer {
        endpoints: vec!["198.18.0.9:51830".into()],
        ..p.clone()
    };
    let before = config(&st, &netmap(1, vec![member_map(&m, PSK_A, vec![p])]));
    let after = config(&st, &netmap(2, vec![member_map(&m, PSK_A, vec![moved])]));
    let changes = diff(&before, &after);
    match changes.as_slice() {
        [Change::UpdatePeerEndpoint { member, peer, from }] => {
            assert_eq!(member, "m1");
            assert_eq!(*from, Some("198.18.0.3:51820".parse().expect("ep")));
            assert_eq!(peer.endpoint, Some("198.18.0.9:51830".parse().expect("ep")));
        }
        other => panic!("expected one in-place endpoint update, got {other:?}"),
    }
}

#[test]
fn peer_rename_is_an_in_place_update() {
    let m = local("m1", Workload::Host, 51820);
    let st = state(vec![m.clone()]);
    let p = peer(1, "198.18.0.3:51820");
    let renamed = Peer {
        name: "other".into(),
        ..p.clone()
    };
    let before = config(&st, &netmap(1, vec![member_map(&m, PSK_A, vec![p])]));
    let after = config(&st, &netmap(2, vec![member_map(&m, PSK_A, vec![renamed])]));
    // Names are policy inputs (member selectors), so the policy is recompiled too.
    assert!(matches!(
        diff(&before, &after).as_slice(),
        [Change::UpdatePeer { .. }, Change::SetPolicy { .. }]
    ));
}

#[test]
fn psk_change_is_set_psk_and_hides_the_key() {
    let m = local("m1", Workload::Host, 51820);
    let st = state(vec![m.clone()]);
    let p = peer(1, "198.18.0.3:51820");
    let before = config(
        &st,
        &netmap(1, vec![member_map(&m, PSK_A, vec![p.clone()])]),
    );
    let after = config(&st, &netmap(2, vec![member_map(&m, PSK_B, vec![p])]));
    let changes = diff(&before, &after);
    match changes.as_slice() {
        [c @ Change::SetPsk {
            member,
            psk,
            also,
            version,
        }] => {
            assert_eq!(member, "m1");
            assert_eq!(*psk, PresharedKey::new(PSK_B));
            assert_eq!(*also, None);
            assert_eq!(*version, 0xb);
            let shown = format!("{c} {c:?}");
            assert!(!shown.contains(&encode_key(&PSK_B)), "{shown}");
        }
        other => panic!("expected SetPsk, got {other:?}"),
    }
}

#[test]
fn identity_change_replaces_the_member() {
    let m = local("m1", Workload::Host, 51820);
    let moved = LocalMember {
        listen_port: 51821,
        ..m.clone()
    };
    let before = config(
        &state(vec![m.clone()]),
        &netmap(1, vec![member_map(&m, PSK_A, vec![])]),
    );
    let after = config(
        &state(vec![moved.clone()]),
        &netmap(2, vec![member_map(&moved, PSK_A, vec![])]),
    );
    let changes = diff(&before, &after);
    assert!(
        matches!(changes.as_slice(), [Change::RemoveMember { .. }, Change::AddMember(m)] if m.listen_port == 51821),
        "{changes:?}"
    );
}

#[test]
fn members_are_confirmed_then_forgotten_when_the_coordinator_drops_them() {
    let m1 = local("m1", Workload::Host, 51820);
    let m2 = local("m2", Workload::Netns("cb".into()), 51821);
    let mut members = vec![m1.clone(), m2.clone()];
    // A netmap from before m2 was attached must not forget it.
    let (changed, removed) = confirm_members(
        &mut members,
        &netmap(3, vec![member_map(&m1, PSK_A, vec![])]),
    );
    assert!(changed && removed.is_empty());
    assert!(members[0].confirmed && !members[1].confirmed);
    let both = netmap(
        4,
        vec![
            member_map(&m1, PSK_A, vec![]),
            member_map(&m2, PSK_A, vec![]),
        ],
    );
    assert_eq!(confirm_members(&mut members, &both), (true, vec![]));
    assert_eq!(
        confirm_members(&mut members, &both),
        (false, vec![]),
        "nothing new"
    );
    let (changed, removed) = confirm_members(
        &mut members,
        &netmap(5, vec![member_map(&m2, PSK_A, vec![])]),
    );
    assert!(changed);
    assert_eq!(
        removed.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        ["m1"]
    );
    assert_eq!(members.len(), 1);
}

#[test]
fn policy_change_is_set_policy_and_peer_labels_count() {
    let m = local("m1", Workload::Host, 51820);
    let st = state(vec![m.clone()]);
    let p = peer(1, "198.18.0.3:51820");
    let mut mm = member_map(&m, PSK_A, vec![p]);
    let before = config(&st, &netmap(1, vec![mm.clone()]));
    mm.policy = serde_json::json!({"default": "deny", "rules": []});
    mm.policy_version = 1;
    let after = config(&st, &netmap(2, vec![mm.clone()]));
    let changes = diff(&before, &after);
    assert!(
        matches!(&changes[..], [Change::SetPolicy { policy, .. }] if policy.version == 1),
        "{changes:?}"
    );
    // A peer's labels feed the classifier: changing them recompiles too.
    mm.peers[0].labels.insert("app".into(), "db".into());
    let relabelled = config(&st, &netmap(3, vec![mm.clone()]));
    let changes = diff(&after, &relabelled);
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, Change::SetPolicy { .. })),
        "{changes:?}"
    );
    // An unreadable policy falls back to the segment default and says so.
    mm.policy = serde_json::json!("nonsense");
    let d = desired(&st, Some(&netmap(4, vec![mm])), Underlay::default());
    assert!(
        d.skipped.iter().any(|s| s.contains("cannot be read")),
        "{:?}",
        d.skipped
    );
}

#[test]
fn rotation_phases_set_the_second_key_and_hide_both_keys() {
    let m = local("m1", Workload::Host, 51820);
    let st = state(vec![m.clone()]);
    let p = peer(1, "198.18.0.3:51820");
    let phase = |psk: [u8; 32], next: Option<[u8; 32]>, previous: Option<[u8; 32]>| {
        let mut mm = member_map(&m, psk, vec![p.clone()]);
        mm.psk_next = next.map(|k| encode_key(&k));
        mm.psk_previous = previous.map(|k| encode_key(&k));
        config(&st, &netmap(1, vec![mm]))
    };
    let plain = phase(PSK_A, None, None);
    let accepting = phase(PSK_A, Some(PSK_B), None);
    let switched = phase(PSK_B, None, Some(PSK_A));
    let retired = phase(PSK_B, None, None);
    let set = |from: &NodeConfig, to: &NodeConfig| match diff(from, to).as_slice() {
        [c @ Change::SetPsk { psk, also, .. }] => {
            let shown = format!("{c} {c:?}");
            assert!(
                !shown.contains(&encode_key(&PSK_A)) && !shown.contains(&encode_key(&PSK_B)),
                "{shown}"
            );
            (psk.clone(), also.clone())
        }
        other => panic!("expected one SetPsk, got {other:?}"),
    };
    let (a, b) = (PresharedKey::new(PSK_A), PresharedKey::new(PSK_B));
    assert_eq!(set(&plain, &accepting), (a.clone(), Some(b.clone())));
    assert_eq!(set(&accepting, &switched), (b.clone(), Some(a.clone())));
    assert_eq!(set(&switched, &retired), (b.clone(), None));
    // A node that missed the accepting phase goes straight to switched.
    assert_eq!(set(&plain, &switched), (b, Some(a)));
}

#[test]
fn a_peer_is_reached_at_an_endpoint_of_a_family_this_host_has() {
    let eps: Vec<SocketAddr> = ["198.18.0.3:51820", "[2001:2::3]:51820"]
        .iter()
        .map(|e| e.parse().expect("ep"))
        .collect();
    let v4: std::net::IpAddr = "198.18.0.2".parse().expect("ip");
    let v6: std::net::IpAddr = "2001:2::2".parse().expect("ip");
    // A dual-stack peer: IPv4 from an IPv4 or dual-stack host, IPv6 from an IPv6-only one.
    assert_eq!(Underlay::of(&[v4]).pick(&eps), Some(eps[0]));
    assert_eq!(Underlay::of(&[v4, v6]).pick(&eps), Some(eps[0]));
    assert_eq!(Underlay::of(&[v6]).pick(&eps), Some(eps[1]));
    // An IPv6-only peer from a dual-stack host: its IPv6 endpoint.
    assert_eq!(Underlay::of(&[v4, v6]).pick(&eps[1..]), Some(eps[1]));
    // A host that knows no address of its own behaves as on IPv4; nothing usable: the first.
    assert_eq!(Underlay::default().pick(&eps), Some(eps[0]));
    assert_eq!(Underlay::of(&[v6]).pick(&eps[..1]), Some(eps[0]));
    assert_eq!(Underlay::of(&[v6]).pick(&[]), None);

    let m = local("m1", Workload::Netns("ca".into()), 51820);
    let mut p = peer(1, "198.18.0.3:51820");
    p.endpoints.push("[2001:2::3]:51820".into());
    let map = netmap(1, vec![member_map(&m, PSK_A, vec![p])]);
    let d = desired(&state(vec![m]), Some(&map), Underlay::of(&[v6]));
    let peer = d.config.members["m1"]
        .peers
        .values()
        .next()
        .cloned()
        .expect("peer");
    assert_eq!(peer.endpoint, Some(eps[1]));
}

#[test]
fn an_ipv6_only_member_gets_ipv6_only_and_gains_ipv4_in_place() {
    let mut m = local("m1", Workload::Netns("ca".into()), 51820);
    m.address = None;
    m.address6 = Some("fd00:6::2".parse().expect("ip"));
    let st = state(vec![m.clone()]);
    let six = |mm: &mut MemberMap| {
        mm.cidr = None;
        mm.address = None;
        mm.cidr6 = Some("fd00:6::/64".into());
        mm.address6 = Some("fd00:6::2".into());
        for p in &mut mm.peers {
            p.address = None;
            p.address6 = Some("fd00:6::9".into());
        }
    };
    let mut mm = member_map(&m, PSK_A, vec![peer(1, "198.18.0.3:51820")]);
    six(&mut mm);
    let before = config(&st, &netmap(1, vec![mm.clone()]));
    let mc = &before.members["m1"];
    assert_eq!(mc.ipv4, None);
    assert_eq!(
        mc.ipv6,
        Some((
            "fd00:6::2".parse().expect("ip"),
            "fd00:6::/64".parse().expect("net")
        ))
    );
    let p = mc.peers.values().next().expect("peer");
    assert_eq!(
        p.allowed_ips,
        vec!["fd00:6::9/128".parse::<IpNet>().expect("net")]
    );
    assert_eq!(crate::member::interface_config(mc).ipv4, None);

    // The segment gains an IPv4 network: the interface is readdressed in place, the
    // member is not recreated.
    mm.cidr = Some("100.64.6.0/24".into());
    mm.address = Some("100.64.6.1".into());
    mm.peers[0].address = Some("100.64.6.2".into());
    let after = config(&st, &netmap(2, vec![mm]));
    let changes = diff(&before, &after);
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, Change::Readdress(m) if m.ipv4.is_some())),
        "{changes:?}"
    );
    assert!(
        !changes
            .iter()
            .any(|c| matches!(c, Change::RemoveMember { .. } | Change::AddMember(_))),
        "{changes:?}"
    );
}
