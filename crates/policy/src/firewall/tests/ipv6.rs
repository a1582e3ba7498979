//! The same firewall, judging IPv6 packets of a dual-stack segment.

use super::*;
use crate::packet::proto;
use crate::testutil::ipv6;

const CIDR6: &str = r#"{ "default": "deny", "rules": [
    { "name": "low-to-db", "from": { "cidr": "fd00::/126" }, "to": { "labels": { "app": "db" } }, "ports": ["tcp/80"] } ] }"#;

#[test]
fn verdicts_for_first_ipv6_packets() {
    check_first_packets(first_packet_cases([WEB6, DB6, CACHE6, OUTSIDER6], CIDR6));
}

#[test]
fn a_tcp_5432_rule_allows_ipv6_5432_and_nothing_else() {
    let now = Duration::ZERO;
    let mut db = firewall_for(WEB_TO_DB, DB6);
    assert!(db
        .ingress(&tcp(WEB6, 40000, DB6, 5432, SYN), now)
        .is_allowed());
    assert!(db
        .egress(&tcp(DB6, 5432, WEB6, 40000, SYN_ACK), now)
        .is_allowed());
    for (what, p) in [
        ("tcp/5433", tcp(WEB6, 40000, DB6, 5433, SYN)),
        ("udp/5432", udp(WEB6, 40000, DB6, 5432)),
        ("ping6", icmp(WEB6, DB6, 8, 1)),
        ("from cache", tcp(CACHE6, 40000, DB6, 5432, SYN)),
        ("other protocol", ipv6(WEB6, DB6, 47, &[0; 8])),
    ] {
        assert!(!db.ingress(&p, now).is_allowed(), "{what}");
    }
}

#[test]
fn families_do_not_cross() {
    let now = Duration::ZERO;
    // An IPv4 CIDR selects no IPv6 address, and the other way round.
    let mut db = firewall_for(super::CIDR, DB6);
    assert!(!db.ingress(&tcp(WEB6, 1, DB6, 80, SYN), now).is_allowed());
    let mut db = firewall_for(CIDR6, DB);
    assert!(!db.ingress(&tcp(WEB, 1, DB, 80, SYN), now).is_allowed());
    // `::/0` covers IPv6 only, `0.0.0.0/0` IPv4 only.
    let v6_only = r#"{ "default": "deny", "rules": [
        { "name": "v6", "from": { "cidr": "::/0" }, "to": "*", "ports": ["any"] } ] }"#;
    let mut db = firewall_for(v6_only, DB);
    assert!(db.ingress(&udp(WEB6, 1, DB6, 2), now).is_allowed());
    assert!(!db.ingress(&udp(WEB, 1, DB, 2), now).is_allowed());
    // A reply in one family is no reply for a connection of the other.
    let mut web = firewall_for(ANY, WEB);
    assert!(web.egress(&udp(WEB, 5000, CACHE, 53), now).is_allowed());
    assert!(!web.ingress(&udp(DB6, 53, WEB6, 5000), now).is_allowed());
    // A member's local addresses are both of its own, no one else's.
    let mut fw = firewall_for(ALLOW_ALL, WEB);
    assert!(fw.egress(&udp(WEB6, 1, DB6, 2), now).is_allowed());
    assert_eq!(
        fw.egress(&udp(DB6, 1, CACHE6, 2), now),
        Verdict::Deny {
            reason: DenyReason::NotLocal
        }
    );
}

#[test]
fn ipv6_replies_and_echo_are_tracked() {
    let now = Duration::ZERO;
    let mut web = firewall_for(ANY, WEB6);
    assert!(web
        .egress(&tcp(WEB6, 40000, CACHE6, 80, SYN), now)
        .is_allowed());
    assert!(web
        .ingress(&tcp(CACHE6, 80, WEB6, 40000, SYN_ACK), now)
        .is_allowed());
    assert!(web
        .egress(&tcp(WEB6, 40000, CACHE6, 80, ACK), now)
        .is_allowed());
    assert!(web.egress(&icmp(WEB6, CACHE6, 8, 7), now).is_allowed());
    let v = web.ingress(&icmp(CACHE6, WEB6, 0, 7), now);
    assert_eq!(
        v,
        Verdict::Allow {
            rule: Some(RuleId(0)),
            new_connection: false
        }
    );
    assert!(!web.ingress(&icmp(CACHE6, WEB6, 0, 8), now).is_allowed());
    // Replies from a member the policy does not allow still need a connection.
    let mut web = firewall_for(WEB_TO_DB, WEB6);
    assert!(!web
        .ingress(&tcp(DB6, 5432, WEB6, 1, SYN_ACK), now)
        .is_allowed());
}

#[test]
fn icmpv6_errors_about_tracked_connections_pass() {
    let now = Duration::ZERO;
    let mut web = firewall_for(DNS, WEB6);
    let query = udp(WEB6, 5000, DB6, 53);
    assert!(web.egress(&query, now).is_allowed());
    assert!(web
        .ingress(&icmp_unreachable(DB6, WEB6, &query), now)
        .is_allowed());
    let forged = icmp_unreachable(CACHE6, WEB6, &query);
    assert!(!web.ingress(&forged, now).is_allowed());
    let unrelated = icmp_unreachable(DB6, WEB6, &udp(WEB6, 5001, DB6, 53));
    assert!(!web.ingress(&unrelated, now).is_allowed());
    assert_eq!(web.counters().allowed_related, 1);
}

#[test]
fn neighbour_discovery_never_crosses() {
    let now = Duration::ZERO;
    let mut fw = firewall_for(ALLOW_ALL, WEB6);
    for kind in [133, 134, 135, 136, 137, 143] {
        let p = icmp(WEB6, DB6, kind, 0);
        assert_eq!(
            fw.egress(&p, now),
            Verdict::Deny {
                reason: DenyReason::LinkControl
            },
            "type {kind} out"
        );
        let p = icmp("fe80::1", WEB6, kind, 0);
        assert!(!fw.ingress(&p, now).is_allowed(), "type {kind} in");
    }
    assert_eq!(fw.counters().denied_link_control, 12);
    // Other ICMPv6 follows the policy (allow here).
    assert!(fw.egress(&icmp(WEB6, DB6, 8, 1), now).is_allowed());
}

#[test]
fn ipv6_fragments_follow_the_ipv4_rules() {
    let now = Duration::ZERO;
    let frag = |offset: u16, more: bool, body: &[u8]| {
        let field = (offset << 3) | u16::from(more);
        let mut h = vec![proto::TCP, 0, 0, 0, 0, 0, 0, 1];
        h[2..4].copy_from_slice(&field.to_be_bytes());
        h.extend_from_slice(body);
        ipv6(WEB6, DB6, 44, &h)
    };
    let mut tcp_header = vec![0u8; 20];
    tcp_header[0..2].copy_from_slice(&40000u16.to_be_bytes());
    tcp_header[2..4].copy_from_slice(&5432u16.to_be_bytes());
    tcp_header[13] = SYN;
    let mut db = firewall_for(WEB_TO_DB, DB6);
    // The first fragment is judged like a whole packet.
    assert!(db.ingress(&frag(0, true, &tcp_header), now).is_allowed());
    tcp_header[2..4].copy_from_slice(&22u16.to_be_bytes());
    assert!(!db.ingress(&frag(0, true, &tcp_header), now).is_allowed());
    // Later fragments pass (their first was judged); overlapping ones are malformed.
    assert_eq!(
        db.ingress(&frag(3, false, &[0; 8]), now),
        Verdict::Allow {
            rule: None,
            new_connection: false
        }
    );
    assert_eq!(
        db.ingress(&frag(1, false, &[0; 8]), now),
        Verdict::Deny {
            reason: DenyReason::Malformed(PacketError::FragmentOverlap)
        }
    );
    assert_eq!(db.counters().allowed_fragments, 1);
}
