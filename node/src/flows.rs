//! Flow records on the wire: a member's [`NamedFlow`]s as the coordinator stores them.

use segwire_datapath::NamedFlow;
use segwire_proto::api::FlowRecord;

use crate::reconcile::MemberConfig;

/// The wire record of `flow`, with the other member named from `member`'s peers.
#[must_use]
pub fn to_record(flow: &NamedFlow, member: &MemberConfig) -> FlowRecord {
    let k = &flow.key;
    let other = if k.egress { k.dst } else { k.src };
    let peer = member
        .peers
        .values()
        .find(|p| p.address.is_some_and(|a| a == other) || p.address6.is_some_and(|a| a == other))
        .map(|p| p.name.clone());
    FlowRecord {
        segment: member.segment.clone(),
        member: member.name.clone(),
        node: String::new(),
        peer,
        direction: if k.egress { "egress" } else { "ingress" }.into(),
        verdict: if k.allowed { "allowed" } else { "denied" }.into(),
        protocol: match k.protocol {
            1 => "icmp".into(),
            6 => "tcp".into(),
            17 => "udp".into(),
            n => format!("ip-{n}"),
        },
        src: k.src.to_string(),
        dst: k.dst.to_string(),
        dst_port: k.dst_port,
        rule: flow.rule.clone(),
        count: flow.stat.count,
        first_seen: flow.stat.first_seen as i64,
        last_seen: flow.stat.last_seen as i64,
    }
}
