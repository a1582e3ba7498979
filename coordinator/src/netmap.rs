//! Builds a node's netmap from store rows: a pure function, so it is tested without a database.

use std::collections::HashMap;

use segwire_proto::netmap::{MemberMap, NetMap, Peer};

use crate::convert::member_endpoints;
use crate::policy;
use crate::store::{MemberRow, NetmapRows, NodeRow};

/// The netmap for `rows.node`: each of its members with the other members of its segment.
pub fn build(rows: &NetmapRows) -> NetMap {
    let nodes: HashMap<&str, &NodeRow> = rows.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let members = rows
        .members
        .iter()
        .filter(|m| m.node_id == rows.node.id)
        .filter_map(|own| {
            let seg = rows.segments.iter().find(|s| s.id == own.segment_id)?;
            let pol = policy::effective(seg);
            let seg_members: Vec<&MemberRow> = rows
                .members
                .iter()
                .filter(|p| p.segment_id == own.segment_id)
                .collect();
            let as_policy: Vec<segwire_policy::Member> =
                seg_members.iter().map(|m| policy::member(m)).collect();
            let reachable = segwire_policy::reachable_peers(&pol, &policy::member(own), &as_policy);
            let peers = seg_members
                .iter()
                .filter(|p| p.id != own.id && reachable.contains(&p.name))
                .filter(|p| own.quarantined_until.is_none() && p.quarantined_until.is_none())
                .map(|p| Peer {
                    id: p.id.clone(),
                    name: p.name.clone(),
                    node: p.node_name.clone(),
                    public_key: p.public_key.clone(),
                    address: p.address.map(|a| a.to_string()),
                    address6: p.address6.map(|a| a.to_string()),
                    endpoints: member_endpoints(p, nodes.get(p.node_id.as_str()).copied()),
                    labels: p.labels.clone(),
                })
                .collect();
            Some(MemberMap {
                id: own.id.clone(),
                name: own.name.clone(),
                workload: own.workload.clone(),
                segment: seg.name.clone(),
                cidr: seg.net.map(|n| n.to_string()),
                cidr6: seg.net6.map(|n| n.to_string()),
                address: own.address.map(|a| a.to_string()),
                address6: own.address6.map(|a| a.to_string()),
                listen_port: own.listen_port,
                psk: seg.psk.clone(),
                psk_version: seg.psk_version as u64,
                psk_next: seg.psk_next().map(str::to_owned),
                psk_previous: seg.psk_previous().map(str::to_owned),
                default: seg.default,
                policy: policy::for_agents(&pol),
                policy_version: seg.policy_version as u64,
                labels: own.labels.clone(),
                quarantined_until: own.quarantined_until.map(crate::convert::rfc3339),
                peers,
            })
        })
        .collect();
    NetMap {
        version: rows.version as u64,
        node_id: rows.node.id.clone(),
        node_name: rows.node.name.clone(),
        coordinators: Vec::new(),
        members,
    }
}
