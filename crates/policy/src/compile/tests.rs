#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use crate::classify::{CompiledPolicy, Direction, Flow};
use crate::model::{Action, Member, Policy, PortSpec, Rule, Selector};
use crate::packet::proto;
use crate::reachable_peers;
use crate::testutil::{arb_port_spec, arb_selector, ip, member};

fn segment() -> Vec<Member> {
    vec![
        member("web-1", "100.64.0.2", &[("app", "web")]),
        member("db-1", "100.64.0.3", &[("app", "db"), ("tier", "data")]),
        member(
            "cache-1",
            "100.64.0.4",
            &[("app", "cache"), ("tier", "data")],
        ),
        member("batch-1", "100.64.0.5", &[("app", "batch")]),
    ]
}

fn flow(direction: Direction, remote: &str, protocol: u8, port: u16) -> Flow {
    Flow {
        direction,
        remote: ip(remote),
        protocol,
        port,
    }
}

/// The obvious implementation: scan rules in file order.
fn reference(
    policy: &Policy,
    local: &Member,
    members: &[Member],
    f: &Flow,
) -> (bool, Option<usize>) {
    let remote_matches = |sel: &Selector| match sel {
        Selector::Any => true,
        Selector::Cidr(net) => net.contains(&f.remote),
        Selector::Labels(_) | Selector::Member(_) => members
            .iter()
            .any(|m| m.addrs().any(|a| a == f.remote) && sel.matches_member(m)),
    };
    let port_matches = |spec: &PortSpec| match *spec {
        PortSpec::Tcp(r) => f.protocol == proto::TCP && r.contains(f.port),
        PortSpec::Udp(r) => f.protocol == proto::UDP && r.contains(f.port),
        PortSpec::Icmp => f.protocol == proto::ICMP || f.protocol == proto::ICMPV6,
        PortSpec::Any => true,
    };
    for (i, rule) in policy.rules.iter().enumerate() {
        let (local_side, remote_side) = match f.direction {
            Direction::Egress => (&rule.from, &rule.to),
            Direction::Ingress => (&rule.to, &rule.from),
        };
        if local_side.matches_member(local)
            && remote_matches(remote_side)
            && rule.ports.iter().any(port_matches)
        {
            return (true, Some(i));
        }
    }
    (policy.default == Action::Allow, None)
}

#[test]
fn first_matching_rule_in_file_order_wins() {
    let policy = Policy::from_json(
        r#"{ "default": "deny", "rules": [
        { "name": "narrow", "from": "*", "to": { "member": "db-1" }, "ports": ["tcp/5432"] },
        { "name": "wide", "from": "*", "to": { "cidr": "100.64.0.0/10" }, "ports": ["tcp/1-65535"] },
        { "name": "everything", "from": "*", "to": "*", "ports": ["any"] } ] }"#,
    )
    .unwrap();
    let members = segment();
    let c = CompiledPolicy::compile(&policy, &members[0], &members);
    let name = |f: Flow| {
        c.classify(&f)
            .rule
            .and_then(|r| c.rule_name(r))
            .map(str::to_owned)
    };
    assert_eq!(
        name(flow(Direction::Egress, "100.64.0.3", proto::TCP, 5432)).as_deref(),
        Some("narrow")
    );
    assert_eq!(
        name(flow(Direction::Egress, "100.64.0.3", proto::TCP, 22)).as_deref(),
        Some("wide")
    );
    assert_eq!(
        name(flow(Direction::Egress, "100.64.0.3", proto::UDP, 53)).as_deref(),
        Some("everything")
    );
    assert_eq!(
        name(flow(Direction::Egress, "8.8.8.8", proto::TCP, 5432)).as_deref(),
        Some("everything")
    );
}

#[test]
fn reachable_peers_follows_rules_in_both_directions() {
    let members = segment();
    let policy = Policy::from_json(
        r#"{ "default": "deny", "rules": [
        { "name": "web-to-db", "from": { "labels": { "app": "web" } }, "to": { "labels": { "app": "db" } }, "ports": ["tcp/5432"] },
        { "name": "batch-to-data", "from": { "member": "batch-1" }, "to": { "labels": { "tier": "data" } }, "ports": ["any"] } ] }"#,
    )
    .unwrap();
    let names = |m: &Member| {
        reachable_peers(&policy, m, &members)
            .into_iter()
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&members[0]), ["db-1"]);
    assert_eq!(names(&members[1]), ["batch-1", "web-1"]);
    assert_eq!(names(&members[2]), ["batch-1"]);
    assert_eq!(names(&members[3]), ["cache-1", "db-1"]);

    let cidr = Policy::from_json(
        r#"{ "default": "deny", "rules": [
        { "name": "to-low", "from": { "member": "web-1" }, "to": { "cidr": "100.64.0.0/31" }, "ports": ["any"] },
        { "name": "star", "from": { "member": "batch-1" }, "to": "*", "ports": ["icmp"] } ] }"#,
    )
    .unwrap();
    let names = |m: &Member| {
        reachable_peers(&cidr, m, &members)
            .into_iter()
            .collect::<Vec<_>>()
    };
    // 100.64.0.2 is web-1 itself, outside 100.64.0.0/31: web-1 reaches only batch-1 (its "*").
    assert_eq!(names(&members[0]), ["batch-1"]);
    assert_eq!(names(&members[3]), ["cache-1", "db-1", "web-1"]);

    let allow = Policy {
        quarantine: None,
        default: Action::Allow,
        rules: vec![],
    };
    assert_eq!(reachable_peers(&allow, &members[1], &members).len(), 3);
    let deny = Policy {
        quarantine: None,
        default: Action::Deny,
        rules: vec![],
    };
    assert!(reachable_peers(&deny, &members[1], &members).is_empty());
}

fn arb_member(i: usize) -> impl Strategy<Value = Member> {
    // IPv4-only, IPv6-only and dual-stack members.
    let family = prop_oneof![Just((true, false)), Just((false, true)), Just((true, true))];
    (
        prop::collection::btree_map("[a-c]", "[x-z]", 0..3),
        0u8..8,
        family,
    )
        .prop_map(move |(labels, host, (v4, v6))| Member {
            name: ["a", "b", "c", "d", "e"][i % 5].to_owned(),
            ip: v4.then(|| Ipv4Addr::new(10, 0, 0, host)),
            ip6: v6.then(|| v6_host(host)),
            labels,
        })
}

fn v6_host(host: u8) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(host))
}

fn arb_members() -> impl Strategy<Value = Vec<Member>> {
    (1usize..6).prop_flat_map(|n| (0..n).map(arb_member).collect::<Vec<_>>())
}

/// Remote addresses of both families (never IPv4-mapped IPv6: the parser refuses those).
fn arb_remote() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (0u8..10).prop_map(|h| Ipv4Addr::new(10, 0, 0, h).into()),
        any::<u32>().prop_map(|a| Ipv4Addr::from(a).into()),
        Just(Ipv4Addr::new(0, 0, 0, 0).into()),
        Just(Ipv4Addr::new(255, 255, 255, 255).into()),
        (0u8..10).prop_map(|h| v6_host(h).into()),
        any::<u128>()
            .prop_filter("not IPv4-mapped", |a| Ipv6Addr::from(*a)
                .to_ipv4_mapped()
                .is_none())
            .prop_map(|a| Ipv6Addr::from(a).into()),
        Just(Ipv6Addr::UNSPECIFIED.into()),
        Just(Ipv6Addr::from(u128::MAX).into()),
    ]
}

fn arb_selector_local() -> impl Strategy<Value = Selector> {
    // Bias CIDRs toward the members' 10.0.0.0/24 so they often match.
    prop_oneof![
        arb_selector(),
        (0u8..16, 24u8..=32).prop_map(|(h, len)| {
            Selector::Cidr(
                ipnet::Ipv4Net::new(Ipv4Addr::new(10, 0, 0, h), len)
                    .unwrap()
                    .trunc()
                    .into(),
            )
        }),
        (0u8..16, prop_oneof![Just(0u8), 1u8..=96, 120u8..=128]).prop_map(|(h, len)| {
            Selector::Cidr(ipnet::Ipv6Net::new(v6_host(h), len).unwrap().trunc().into())
        }),
    ]
}

fn arb_policy() -> impl Strategy<Value = Policy> {
    let rule = (
        arb_selector_local(),
        arb_selector_local(),
        prop::collection::vec(arb_port_spec(12), 1..4),
    );
    (any::<bool>(), prop::collection::vec(rule, 0..12)).prop_map(|(allow, rules)| Policy {
        quarantine: None,
        default: if allow { Action::Allow } else { Action::Deny },
        rules: rules
            .into_iter()
            .enumerate()
            .map(|(i, (from, to, ports))| Rule {
                name: format!("r{i}"),
                from,
                to,
                ports,
            })
            .collect(),
    })
}

fn arb_flow() -> impl Strategy<Value = Flow> {
    let dir = prop_oneof![Just(Direction::Egress), Just(Direction::Ingress)];
    let protocol = prop_oneof![
        Just(proto::TCP),
        Just(proto::UDP),
        Just(proto::ICMP),
        Just(proto::ICMPV6),
        Just(47u8)
    ];
    (dir, arb_remote(), protocol, 0u16..14).prop_map(|(direction, remote, protocol, port)| Flow {
        direction,
        remote,
        protocol,
        port,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn compiled_classifier_matches_the_reference(
        policy in arb_policy(),
        members in arb_members(),
        local_index in 0usize..5,
        flows in prop::collection::vec(arb_flow(), 1..24),
    ) {
        let local = &members[local_index % members.len()];
        let compiled = CompiledPolicy::compile(&policy, local, &members);
        for f in &flows {
            let d = compiled.classify(f);
            let want = reference(&policy, local, &members, f);
            prop_assert_eq!((d.allowed, d.rule.map(|r| r.index())), want, "flow {:?}", f);
        }
    }

    #[test]
    fn reachable_peers_matches_the_reference(
        policy in arb_policy(),
        members in arb_members(),
        local_index in 0usize..5,
    ) {
        let local = &members[local_index % members.len()];
        let got = reachable_peers(&policy, local, &members);
        let want: std::collections::BTreeSet<String> = members
            .iter()
            .filter(|m| m.name != local.name)
            .filter(|m| {
                policy.default == Action::Allow
                    || policy.rules.iter().any(|r| {
                        (r.from.matches_member(local) && r.to.matches_member(m))
                            || (r.from.matches_member(m) && r.to.matches_member(local))
                    })
            })
            .map(|m| m.name.clone())
            .collect();
        prop_assert_eq!(got, want);
    }
}
