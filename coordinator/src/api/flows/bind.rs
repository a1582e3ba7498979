//! What a node's flow report may claim: each record is bound to one of the reporting
//! node's own members (its segment and overlay address), its fields are checked, and its
//! timestamps are clamped to the time it was received. Pure; time passed in.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use segwire_proto::api::FlowRecord;

/// One of the reporting node's members, as the binding needs it.
#[derive(Debug, Clone)]
pub struct OwnMember {
    /// Segment name.
    pub segment: String,
    /// Member name.
    pub name: String,
    /// Overlay IPv4 address, if the segment has an IPv4 network.
    pub address: Option<Ipv4Addr>,
    /// Overlay IPv6 address, if the segment has an IPv6 prefix.
    pub address6: Option<Ipv6Addr>,
}

impl OwnMember {
    /// True when `a` is one of the member's overlay addresses.
    fn holds(&self, a: IpAddr) -> bool {
        match a {
            IpAddr::V4(a) => self.address == Some(a),
            IpAddr::V6(a) => self.address6 == Some(a),
        }
    }
}

/// Longest rule or peer name kept (longer ones are cut).
const MAX_NAME: usize = 64;

fn short(s: &str) -> String {
    s.chars().take(MAX_NAME).collect()
}

/// The record as stored, or `None` when it does not belong to one of `own` (another
/// segment, another member's address, an unknown direction, verdict or protocol).
/// `node` is the reporting node's name; `oldest` the earliest time a record may start.
pub fn bind(
    mut f: FlowRecord,
    own: &[OwnMember],
    node: &str,
    now: i64,
    oldest: i64,
) -> Option<FlowRecord> {
    let m = own
        .iter()
        .find(|m| m.segment == f.segment && m.name == f.member)?;
    let (src, dst): (IpAddr, IpAddr) = (f.src.parse().ok()?, f.dst.parse().ok()?);
    if src.is_ipv4() != dst.is_ipv4() {
        return None;
    }
    let local = match f.direction.as_str() {
        "egress" => src,
        "ingress" => dst,
        _ => return None,
    };
    if !m.holds(local) || !matches!(f.verdict.as_str(), "allowed" | "denied") {
        return None;
    }
    let proto_ok = matches!(f.protocol.as_str(), "tcp" | "udp" | "icmp")
        || f.protocol
            .strip_prefix("ip-")
            .is_some_and(|n| n.parse::<u8>().is_ok());
    if !proto_ok {
        return None;
    }
    f.node = node.to_string();
    f.src = src.to_string();
    f.dst = dst.to_string();
    f.rule = f.rule.as_deref().map(short);
    f.peer = f.peer.as_deref().map(short);
    f.count = f.count.min(i64::MAX as u64);
    f.last_seen = f.last_seen.clamp(oldest, now);
    f.first_seen = f.first_seen.clamp(oldest, f.last_seen);
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    fn own() -> Vec<OwnMember> {
        vec![OwnMember {
            segment: "db".into(),
            name: "pg".into(),
            address: Some(Ipv4Addr::new(100, 64, 2, 5)),
            address6: Some("fd00:2::5".parse().expect("address")),
        }]
    }

    fn rec() -> FlowRecord {
        FlowRecord {
            segment: "db".into(),
            member: "pg".into(),
            node: "spoofed".into(),
            peer: None,
            direction: "ingress".into(),
            verdict: "denied".into(),
            protocol: "tcp".into(),
            src: "100.64.2.9".into(),
            dst: "100.64.2.5".into(),
            dst_port: 5432,
            rule: None,
            count: 3,
            first_seen: NOW - 5,
            last_seen: NOW - 1,
        }
    }

    #[test]
    fn a_record_of_the_member_itself_is_kept_with_the_nodes_name() {
        let f = bind(rec(), &own(), "host-a", NOW, NOW - 3600).expect("kept");
        assert_eq!((f.node.as_str(), f.last_seen), ("host-a", NOW - 1));
    }

    #[test]
    fn records_for_another_segment_address_or_member_are_dropped() {
        let mut other_segment = rec();
        other_segment.segment = "web".into();
        let mut other_address = rec();
        other_address.dst = "100.64.2.6".into();
        let mut egress_as_other = rec();
        egress_as_other.direction = "egress".into();
        let mut other_member = rec();
        other_member.member = "pg-2".into();
        let mut bad_proto = rec();
        bad_proto.protocol = "x".repeat(500);
        let mut bad_verdict = rec();
        bad_verdict.verdict = "maybe".into();
        for f in [
            other_segment,
            other_address,
            egress_as_other,
            other_member,
            bad_proto,
            bad_verdict,
        ] {
            assert!(bind(f, &own(), "host-a", NOW, NOW - 3600).is_none());
        }
    }

    #[test]
    fn ipv6_records_bind_to_the_members_ipv6_address_only() {
        let mut v6 = rec();
        (v6.src, v6.dst) = ("fd00:2::9".into(), "fd00:2::5".into());
        assert!(bind(v6.clone(), &own(), "host-a", NOW, NOW - 3600).is_some());
        let mut v6_only = own();
        v6_only[0].address = None;
        assert!(bind(v6.clone(), &v6_only, "host-a", NOW, NOW - 3600).is_some());
        assert!(bind(rec(), &v6_only, "host-a", NOW, NOW - 3600).is_none());
        let mut other = v6.clone();
        other.dst = "fd00:2::6".into();
        let mut mixed = v6;
        mixed.src = "100.64.2.9".into();
        for f in [other, mixed] {
            assert!(bind(f, &own(), "host-a", NOW, NOW - 3600).is_none());
        }
    }

    #[test]
    fn timestamps_are_clamped_to_the_time_received() {
        let mut future = rec();
        future.first_seen = NOW + 10_000_000;
        future.last_seen = i64::MAX;
        let f = bind(future, &own(), "host-a", NOW, NOW - 3600).expect("kept");
        assert_eq!((f.first_seen, f.last_seen), (NOW, NOW));
        let mut ancient = rec();
        ancient.first_seen = i64::MIN;
        ancient.last_seen = 0;
        let f = bind(ancient, &own(), "host-a", NOW, NOW - 3600).expect("kept");
        assert_eq!((f.first_seen, f.last_seen), (NOW - 3600, NOW - 3600));
        let mut huge = rec();
        huge.count = u64::MAX;
        assert_eq!(
            bind(huge, &own(), "a", NOW, 0).expect("kept").count,
            i64::MAX as u64
        );
    }
}
