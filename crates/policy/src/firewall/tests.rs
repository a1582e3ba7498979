#![allow(clippy::unwrap_used)]

use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::model::{Member, Policy};
use crate::testutil::{icmp, icmp_unreachable, ipv4, member2, tcp, udp, ACK, SYN, SYN_ACK};

mod ipv6;

const WEB: &str = "100.64.0.2";
const DB: &str = "100.64.0.3";
const CACHE: &str = "100.64.0.4";
const OUTSIDER: &str = "100.64.9.9";
const WEB6: &str = "fd00::2";
const DB6: &str = "fd00::3";
const CACHE6: &str = "fd00::4";
const OUTSIDER6: &str = "fd00::9:9";

/// A dual-stack segment: every member has an IPv4 and an IPv6 address.
fn segment() -> Vec<Member> {
    vec![
        member2("web-1", WEB, WEB6, &[("app", "web")]),
        member2("db-1", DB, DB6, &[("app", "db")]),
        member2("cache-1", CACHE, CACHE6, &[("app", "cache")]),
    ]
}

fn firewall_for(policy: &str, local: &str) -> Firewall {
    firewall_with(policy, local, ConntrackConfig::default())
}

fn firewall_with(policy: &str, local: &str, config: ConntrackConfig) -> Firewall {
    Firewall::new(compile(policy, local), config)
}

fn compile(policy: &str, local: &str) -> CompiledPolicy {
    let policy = Policy::from_json(policy).unwrap();
    let members = segment();
    let me = members
        .iter()
        .find(|m| m.addrs().any(|a| a.to_string() == local))
        .unwrap();
    CompiledPolicy::compile(&policy, me, &members)
}

/// `Some(name)` for an allow by that rule, `Some("")` for an allow by default, `None` for deny.
fn outcome(fw: &Firewall, v: Verdict) -> Option<String> {
    match v {
        Verdict::Allow { rule, .. } => Some(rule.map_or(String::new(), |r| {
            fw.policy().rule_name(r).unwrap().to_owned()
        })),
        Verdict::Deny { .. } => None,
    }
}

const DENY_ALL: &str = r#"{ "default": "deny" }"#;
const ALLOW_ALL: &str = r#"{ "default": "allow" }"#;
const WEB_TO_DB: &str = r#"{ "default": "deny", "rules": [
    { "name": "web-to-db", "from": { "labels": { "app": "web" } }, "to": { "labels": { "app": "db" } }, "ports": ["tcp/5432"] } ] }"#;
const DNS: &str = r#"{ "default": "deny", "rules": [
    { "name": "dns", "from": "*", "to": { "member": "db-1" }, "ports": ["udp/53"] } ] }"#;
const PING: &str = r#"{ "default": "deny", "rules": [
    { "name": "ping", "from": { "labels": { "app": "web" } }, "to": "*", "ports": ["icmp"] } ] }"#;
const CIDR: &str = r#"{ "default": "deny", "rules": [
    { "name": "low-to-db", "from": { "cidr": "100.64.0.0/30" }, "to": { "labels": { "app": "db" } }, "ports": ["tcp/80"] } ] }"#;
const MEMBER: &str = r#"{ "default": "deny", "rules": [
    { "name": "cache-to-db", "from": { "member": "cache-1" }, "to": { "member": "db-1" }, "ports": ["tcp/6379-6380"] } ] }"#;
const ANY: &str = r#"{ "default": "deny", "rules": [
    { "name": "web-to-cache", "from": { "labels": { "app": "web" } }, "to": { "labels": { "app": "cache" } }, "ports": ["any"] } ] }"#;

/// (name, policy, local member, direction, packet, allowing rule: "" = default, None = deny)
type VerdictCase<'a> = (
    &'a str,
    &'a str,
    &'a str,
    Direction,
    Vec<u8>,
    Option<&'a str>,
);

/// The first-packet table for one address family: `cidr` is a policy whose `from` CIDR
/// covers `web` and `db` but not `cache` or `outsider`.
fn first_packet_cases<'a>(
    [web, db, cache, outsider]: [&'a str; 4],
    cidr: &'a str,
) -> Vec<VerdictCase<'a>> {
    let e = Direction::Egress;
    let i = Direction::Ingress;
    #[rustfmt::skip]
    let cases: Vec<VerdictCase<'_>> = vec![
        ("default deny blocks tcp", DENY_ALL, web, e, tcp(web, 40000, db, 5432, SYN), None),
        ("default deny blocks udp in", DENY_ALL, db, i, udp(web, 5000, db, 53), None),
        ("default deny blocks icmp", DENY_ALL, web, e, icmp(web, db, 8, 1), None),
        ("default allow passes", ALLOW_ALL, web, e, tcp(web, 40000, db, 22, SYN), Some("")),
        ("default allow passes in", ALLOW_ALL, web, i, udp(db, 1, web, 2), Some("")),
        ("web reaches db:5432", WEB_TO_DB, web, e, tcp(web, 40000, db, 5432, SYN), Some("web-to-db")),
        ("db accepts web on 5432", WEB_TO_DB, db, i, tcp(web, 40000, db, 5432, SYN), Some("web-to-db")),
        ("web not to db:22", WEB_TO_DB, web, e, tcp(web, 40000, db, 22, SYN), None),
        ("db refuses web on 22", WEB_TO_DB, db, i, tcp(web, 40000, db, 22, SYN), None),
        ("web not to db over udp", WEB_TO_DB, web, e, udp(web, 40000, db, 5432), None),
        ("db may not open to web", WEB_TO_DB, db, e, tcp(db, 40000, web, 5432, SYN), None),
        ("web refuses db", WEB_TO_DB, web, i, tcp(db, 40000, web, 5432, SYN), None),
        ("cache not to db", WEB_TO_DB, cache, e, tcp(cache, 40000, db, 5432, SYN), None),
        ("udp rule", DNS, web, e, udp(web, 5353, db, 53), Some("dns")),
        ("udp rule at db", DNS, db, i, udp(cache, 5353, db, 53), Some("dns")),
        ("udp rule other port", DNS, web, e, udp(web, 5353, db, 54), None),
        ("udp rule not tcp", DNS, web, e, tcp(web, 5353, db, 53, SYN), None),
        ("udp rule other member", DNS, web, e, udp(web, 5353, cache, 53), None),
        ("icmp rule", PING, web, e, icmp(web, db, 8, 1), Some("ping")),
        ("icmp rule at db", PING, db, i, icmp(web, db, 8, 1), Some("ping")),
        ("icmp rule to non-member", PING, web, e, icmp(web, outsider, 8, 1), Some("ping")),
        ("icmp rule reverse", PING, db, e, icmp(db, web, 8, 1), None),
        ("icmp rule not tcp", PING, web, e, tcp(web, 1, db, 2, SYN), None),
        ("cidr selector in range", cidr, web, e, tcp(web, 1, db, 80, SYN), Some("low-to-db")),
        ("cidr selector out of range", cidr, cache, e, tcp(cache, 1, db, 80, SYN), None),
        ("cidr selector at db", cidr, db, i, tcp(web, 1, db, 80, SYN), Some("low-to-db")),
        ("cidr selector at db, outsider", cidr, db, i, tcp(outsider, 1, db, 80, SYN), None),
        ("member selector", MEMBER, cache, e, tcp(cache, 1, db, 6380, SYN), Some("cache-to-db")),
        ("member selector at db", MEMBER, db, i, tcp(cache, 1, db, 6379, SYN), Some("cache-to-db")),
        ("member selector other port", MEMBER, cache, e, tcp(cache, 1, db, 6381, SYN), None),
        ("member selector other member", MEMBER, web, e, tcp(web, 1, db, 6379, SYN), None),
        ("any: tcp", ANY, web, e, tcp(web, 1, cache, 1234, SYN), Some("web-to-cache")),
        ("any: udp", ANY, web, e, udp(web, 1, cache, 9), Some("web-to-cache")),
        ("any: icmp", ANY, web, e, icmp(web, cache, 8, 3), Some("web-to-cache")),
        ("any: gre", ANY, web, e, ipv4(web, cache, 47, &[0; 4]), Some("web-to-cache")),
        ("any: at cache", ANY, cache, i, tcp(web, 1, cache, 1, SYN), Some("web-to-cache")),
        ("any: not to db", ANY, web, e, tcp(web, 1, db, 1, SYN), None),
        ("any: not reversed", ANY, cache, e, udp(cache, 1, web, 9), None),
    ];
    cases
}

#[test]
fn verdicts_for_first_packets() {
    check_first_packets(first_packet_cases([WEB, DB, CACHE, OUTSIDER], CIDR));
}

fn check_first_packets(cases: Vec<VerdictCase<'_>>) {
    let now = Duration::ZERO;
    for (name, policy, local, dir, packet, want) in cases {
        let mut fw = firewall_for(policy, local);
        let v = match dir {
            Direction::Egress => fw.egress(&packet, now),
            Direction::Ingress => fw.ingress(&packet, now),
        };
        assert_eq!(outcome(&fw, v).as_deref(), want, "{name}: {v:?}");
        if want.is_none() {
            assert_eq!(
                v,
                Verdict::Deny {
                    reason: DenyReason::NoRule
                },
                "{name}"
            );
        }
    }
}

#[test]
fn replies_of_an_allowed_connection_pass() {
    let now = Duration::ZERO;
    let mut web = firewall_for(WEB_TO_DB, WEB);
    let mut db = firewall_for(WEB_TO_DB, DB);
    let opening = tcp(WEB, 40000, DB, 5432, SYN);
    let reply = tcp(DB, 5432, WEB, 40000, SYN_ACK);
    let rule = Some(RuleId(0));
    assert_eq!(
        web.egress(&opening, now),
        Verdict::Allow {
            rule,
            new_connection: true
        }
    );
    assert_eq!(
        db.ingress(&opening, now),
        Verdict::Allow {
            rule,
            new_connection: true
        }
    );
    assert_eq!(
        db.egress(&reply, now),
        Verdict::Allow {
            rule,
            new_connection: false
        }
    );
    assert_eq!(
        web.ingress(&reply, now),
        Verdict::Allow {
            rule,
            new_connection: false
        }
    );
    assert!(web
        .egress(&tcp(WEB, 40000, DB, 5432, ACK), now)
        .is_allowed());
    // Only that connection: another port pair from db is still refused.
    assert!(!web
        .ingress(&tcp(DB, 5432, WEB, 40001, SYN_ACK), now)
        .is_allowed());
    assert!(!web
        .ingress(&tcp(DB, 5433, WEB, 40000, SYN_ACK), now)
        .is_allowed());

    // UDP and ICMP echo replies too.
    let mut web = firewall_for(ANY, WEB);
    assert!(web.egress(&udp(WEB, 5000, CACHE, 53), now).is_allowed());
    assert!(web.ingress(&udp(CACHE, 53, WEB, 5000), now).is_allowed());
    assert!(!web.ingress(&udp(CACHE, 53, WEB, 5001), now).is_allowed());
    assert!(web.egress(&icmp(WEB, CACHE, 8, 7), now).is_allowed());
    assert!(web.ingress(&icmp(CACHE, WEB, 0, 7), now).is_allowed());
    assert!(
        !web.ingress(&icmp(CACHE, WEB, 0, 8), now).is_allowed(),
        "other echo id"
    );
    assert!(
        !web.ingress(&icmp(CACHE, WEB, 8, 7), now).is_allowed(),
        "a request is no reply"
    );
}

#[test]
fn icmp_errors_about_tracked_connections_pass() {
    let now = Duration::ZERO;
    let mut web = firewall_for(DNS, WEB);
    let query = udp(WEB, 5000, DB, 53);
    assert!(web.egress(&query, now).is_allowed());
    let error = icmp_unreachable(DB, WEB, &query);
    assert_eq!(
        web.ingress(&error, now),
        Verdict::Allow {
            rule: Some(RuleId(0)),
            new_connection: false
        }
    );
    let unrelated = icmp_unreachable(DB, WEB, &udp(WEB, 5001, DB, 53));
    assert!(!web.ingress(&unrelated, now).is_allowed());
    // Another member cannot report on WEB's connection to DB.
    let forged = icmp_unreachable(CACHE, WEB, &query);
    assert!(
        !web.ingress(&forged, now).is_allowed(),
        "an error from a third member"
    );
    assert_eq!(web.counters().allowed_related, 1);
}

#[test]
fn fragments_malformed_and_foreign_packets() {
    let now = Duration::ZERO;
    let mut fw = firewall_for(DENY_ALL, WEB);
    let mut fragment = udp(WEB, 1, DB, 2);
    fragment[7] = 10;
    assert_eq!(
        fw.egress(&fragment, now),
        Verdict::Allow {
            rule: None,
            new_connection: false
        }
    );
    assert_eq!(
        fw.egress(&[0x45, 0, 0], now),
        Verdict::Deny {
            reason: DenyReason::Malformed(PacketError::TooShort)
        }
    );
    let mut fw = firewall_for(ALLOW_ALL, WEB);
    assert_eq!(
        fw.egress(&udp(DB, 1, CACHE, 2), now),
        Verdict::Deny {
            reason: DenyReason::NotLocal
        }
    );
    assert_eq!(
        fw.ingress(&udp(DB, 1, CACHE, 2), now),
        Verdict::Deny {
            reason: DenyReason::NotLocal
        }
    );
}

#[test]
fn connections_expire_with_passed_in_time() {
    // Each denied packet below was allowed a moment earlier as a reply of the same tracked
    // connection (no rule allows it on its own): only the passing of time denies it.
    let t0 = Duration::ZERO;
    let syn_ack = tcp(DB, 5432, WEB, 40000, SYN_ACK);
    let mut web = firewall_for(WEB_TO_DB, WEB);
    assert!(web.egress(&tcp(WEB, 40000, DB, 5432, SYN), t0).is_allowed());
    assert!(web
        .ingress(&syn_ack, t0 + Duration::from_secs(29))
        .is_allowed());
    let mut web = firewall_for(WEB_TO_DB, WEB);
    assert!(web.egress(&tcp(WEB, 40000, DB, 5432, SYN), t0).is_allowed());
    assert_eq!(
        web.ingress(&syn_ack, t0 + Duration::from_secs(30)),
        Verdict::Deny {
            reason: DenyReason::NoRule
        }
    );
    assert_eq!(web.counters().conntrack_expired, 1);

    let reply = udp(CACHE, 53, WEB, 5000);
    let mut web = firewall_for(ANY, WEB);
    assert!(web.egress(&udp(WEB, 5000, CACHE, 53), t0).is_allowed());
    assert!(web
        .ingress(&reply, t0 + Duration::from_secs(29))
        .is_allowed());
    // Replied: 180 s from the last packet.
    let late = t0 + Duration::from_secs(29 + 179);
    assert!(web.ingress(&reply, late).is_allowed());
    assert_eq!(web.expire(late + Duration::from_secs(179)), 0);
    assert_eq!(web.counters().conntrack_entries, 1);
    assert_eq!(web.expire(late + Duration::from_secs(180)), 1);
    assert_eq!(web.counters().conntrack_entries, 0);
    assert_eq!(
        web.ingress(&reply, late + Duration::from_secs(180)),
        Verdict::Deny {
            reason: DenyReason::NoRule
        }
    );
}

#[test]
fn a_full_table_evicts_the_oldest_and_counts() {
    let t0 = Duration::ZERO;
    let config = ConntrackConfig {
        max_entries: 2,
        ..ConntrackConfig::default()
    };
    let mut web = firewall_with(ANY, WEB, config);
    let at = |s: u64| t0 + Duration::from_secs(s);
    assert!(web.egress(&udp(WEB, 1, CACHE, 53), at(0)).is_allowed());
    assert!(web.egress(&udp(WEB, 2, CACHE, 53), at(1)).is_allowed());
    assert!(web.egress(&udp(WEB, 1, CACHE, 53), at(2)).is_allowed()); // port 2 now oldest
    assert!(web.egress(&udp(WEB, 3, CACHE, 53), at(3)).is_allowed());
    let c = web.counters();
    assert_eq!((c.conntrack_entries, c.conntrack_evictions), (2, 1));
    assert!(web.ingress(&udp(CACHE, 53, WEB, 1), at(4)).is_allowed());
    assert!(web.ingress(&udp(CACHE, 53, WEB, 3), at(4)).is_allowed());
    assert!(
        !web.ingress(&udp(CACHE, 53, WEB, 2), at(4)).is_allowed(),
        "evicted"
    );
}

#[test]
fn replace_policy_cuts_connections_no_longer_allowed() {
    let t0 = Duration::ZERO;
    let both = r#"{ "default": "deny", "rules": [
        { "name": "ssh", "from": { "member": "web-1" }, "to": { "member": "db-1" }, "ports": ["tcp/22"] },
        { "name": "pg", "from": { "member": "web-1" }, "to": { "member": "db-1" }, "ports": ["tcp/5432"] } ] }"#;
    let mut web = firewall_for(both, WEB);
    for port in [22, 5432] {
        assert!(web.egress(&tcp(WEB, 40000, DB, port, SYN), t0).is_allowed());
        assert!(web
            .ingress(&tcp(DB, port, WEB, 40000, SYN_ACK), t0)
            .is_allowed());
    }
    let summary = web.replace_policy(compile(WEB_TO_DB, WEB), t0);
    assert_eq!(
        summary,
        ReplaceSummary {
            kept: 1,
            cut: 1,
            expired: 0
        }
    );
    // Kept, and credited to the rule of the new policy.
    assert_eq!(
        web.ingress(&tcp(DB, 5432, WEB, 40000, ACK), t0),
        Verdict::Allow {
            rule: Some(RuleId(0)),
            new_connection: false
        }
    );
    assert!(!web.ingress(&tcp(DB, 22, WEB, 40000, ACK), t0).is_allowed());
    assert!(!web.egress(&tcp(WEB, 40000, DB, 22, ACK), t0).is_allowed());
    assert_eq!(web.counters().conntrack_cut, 1);
    let counts: Vec<(String, u64)> = web
        .rule_counters()
        .map(|r| (r.name.to_owned(), r.allowed))
        .collect();
    assert_eq!(counts, [("web-to-db".to_owned(), 1)]);

    // Remote-initiated connections are re-judged the same way.
    let mut db = firewall_for(WEB_TO_DB, DB);
    assert!(db.ingress(&tcp(WEB, 40000, DB, 5432, SYN), t0).is_allowed());
    assert_eq!(db.replace_policy(compile(DENY_ALL, DB), t0).cut, 1);
    assert!(!db
        .egress(&tcp(DB, 5432, WEB, 40000, SYN_ACK), t0)
        .is_allowed());
}

#[test]
fn counters_by_rule_and_reason() {
    let now = Duration::ZERO;
    let mut web = firewall_for(WEB_TO_DB, WEB);
    let _ = web.egress(&tcp(WEB, 1, DB, 5432, SYN), now);
    let _ = web.ingress(&tcp(DB, 5432, WEB, 1, SYN_ACK), now);
    let _ = web.egress(&tcp(WEB, 1, DB, 22, SYN), now);
    let _ = web.egress(&[1, 2, 3], now);
    let _ = web.egress(&udp(DB, 1, WEB, 2), now);
    let c = web.counters();
    assert_eq!(
        (c.allowed, c.new_connections, c.allowed_by_default),
        (2, 1, 0)
    );
    assert_eq!(
        (
            c.denied,
            c.denied_by_default,
            c.denied_malformed,
            c.denied_not_local
        ),
        (3, 1, 1, 1)
    );
    assert_eq!(c.conntrack_entries, 1);
    let counts: Vec<(&str, u64)> = web.rule_counters().map(|r| (r.name, r.allowed)).collect();
    assert_eq!(counts, [("web-to-db", 2)]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn arbitrary_bytes_never_panic_the_firewall(
        packets in prop::collection::vec((any::<bool>(), prop::collection::vec(any::<u8>(), 0..64), 0u64..100), 1..20),
    ) {
        let mut fw = firewall_with(ANY, WEB, ConntrackConfig { max_entries: 4, ..Default::default() });
        let mut now = Duration::ZERO;
        for (egress, bytes, step) in packets {
            now += Duration::from_secs(step);
            let _ = if egress { fw.egress(&bytes, now) } else { fw.ingress(&bytes, now) };
            prop_assert!(fw.counters().conntrack_entries <= 4);
        }
    }

    #[test]
    fn mutated_real_packets_never_panic_and_stay_bounded(
        packets in prop::collection::vec((any::<bool>(), 0usize..6, 0usize..48, any::<u8>(), 0u64..40), 1..40),
    ) {
        let templates = [
            tcp(WEB, 40000, CACHE, 80, SYN),
            tcp(CACHE, 80, WEB, 40000, SYN_ACK),
            udp(WEB, 5000, CACHE, 53),
            icmp(WEB, CACHE, 8, 1),
            icmp_unreachable(CACHE, WEB, &udp(WEB, 5000, CACHE, 53)),
            ipv4(CACHE, WEB, 47, &[0; 8]),
        ];
        let mut fw = firewall_with(ANY, WEB, ConntrackConfig { max_entries: 3, ..Default::default() });
        let mut now = Duration::ZERO;
        for (egress, which, pos, val, step) in packets {
            let mut p = templates[which].clone();
            if let Some(b) = p.get_mut(pos) { *b = val; }
            now += Duration::from_secs(step);
            let _ = if egress { fw.egress(&p, now) } else { fw.ingress(&p, now) };
            prop_assert!(fw.counters().conntrack_entries <= 3);
        }
        let _ = fw.replace_policy(compile(WEB_TO_DB, WEB), now);
        let _ = fw.expire(now);
    }
}

const TO_DB: &str = r#"{ "default": "deny", "rules": [
    { "name": "to-db", "from": "*", "to": { "member": "db-1" }, "ports": ["tcp/5432"] } ] }"#;

#[test]
fn a_syn_flood_from_one_peer_does_not_evict_anothers_connection() {
    // B (db-1) with the default 65,536-entry table; A (web-1) connects to B's tcp/5432.
    let now = Duration::from_secs(100);
    let mut b = firewall_for(TO_DB, DB);
    assert!(b.ingress(&tcp(WEB, 40000, DB, 5432, SYN), now).is_allowed());
    assert!(b
        .egress(&tcp(DB, 5432, WEB, 40000, SYN_ACK), now)
        .is_allowed());
    assert!(b.ingress(&tcp(WEB, 40000, DB, 5432, ACK), now).is_allowed());
    // C (cache-1) sends 65,536 SYNs, each a new allowed connection.
    for port in 0..=u16::MAX {
        let syn = tcp(CACHE, port, DB, 5432, SYN);
        assert!(b.ingress(&syn, now + Duration::from_millis(1)).is_allowed());
    }
    let c = b.counters();
    assert!(c.conntrack_evictions > 0, "the table filled up");
    assert!(c.conntrack_entries <= 65_536);
    // B's reply to A still passes: A's connection kept its share.
    let reply = tcp(DB, 5432, WEB, 40000, ACK);
    assert_eq!(
        b.egress(&reply, now + Duration::from_millis(2)),
        Verdict::Allow {
            rule: Some(RuleId(0)),
            new_connection: false
        }
    );
}

#[test]
fn tcp_is_tracked_from_its_syn_only() {
    let now = Duration::ZERO;
    let mut web = firewall_for(WEB_TO_DB, WEB);
    // An allowed ACK with no connection passes on its own but opens nothing.
    assert_eq!(
        web.egress(&tcp(WEB, 40000, DB, 5432, ACK), now),
        Verdict::Allow {
            rule: Some(RuleId(0)),
            new_connection: false
        }
    );
    assert_eq!(web.counters().conntrack_entries, 0);
    assert!(!web
        .ingress(&tcp(DB, 5432, WEB, 40000, ACK), now)
        .is_allowed());
    // A SYN opens it; then the reply passes.
    assert!(web
        .egress(&tcp(WEB, 40000, DB, 5432, SYN), now)
        .is_allowed());
    assert_eq!(web.counters().conntrack_entries, 1);
    assert!(web
        .ingress(&tcp(DB, 5432, WEB, 40000, SYN_ACK), now)
        .is_allowed());
}
