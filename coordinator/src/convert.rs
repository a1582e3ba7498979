//! Store rows to wire types, and time formatting.

use std::time::{SystemTime, UNIX_EPOCH};

use segwire_proto::api::{Member, Node, Segment, TokenInfo};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::store::{MemberRow, NodeRow, SegmentRow, TokenRow};

/// Current unix time in seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Unix seconds as RFC 3339 UTC.
pub fn rfc3339(t: i64) -> String {
    OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&Rfc3339).ok())
        .unwrap_or_else(|| t.to_string())
}

/// A segment for the API (never with its key).
pub fn segment(r: &SegmentRow) -> Segment {
    Segment {
        name: r.name.clone(),
        cidr: r.net.map(|n| n.to_string()),
        cidr6: r.net6.map(|n| n.to_string()),
        default: r.default,
        psk_version: r.psk_version as u64,
        rotation: r.rotation.as_ref().map(|x| x.phase),
        policy_version: r.policy_version as u64,
        members: r.members as u64,
        version: r.version as u64,
        created_at: rfc3339(r.created_at),
    }
}

/// A token for listing (never with its secret).
pub fn token(r: &TokenRow, now: i64) -> TokenInfo {
    let state = if r.revoked_at.is_some() {
        "revoked"
    } else if r.expires_at <= now {
        "expired"
    } else if r.uses_left <= 0 {
        "used"
    } else {
        "active"
    };
    TokenInfo {
        id: r.id.clone(),
        segments: r.segments.clone(),
        labels: r.labels.clone(),
        uses: r.uses as u32,
        uses_left: r.uses_left.max(0) as u32,
        created_at: rfc3339(r.created_at),
        expires_at: rfc3339(r.expires_at),
        state: state.into(),
    }
}

/// A node for the API (never with its credential hash).
pub fn node(r: &NodeRow) -> Node {
    Node {
        id: r.id.clone(),
        name: r.name.clone(),
        public_key: r.public_key.clone(),
        endpoints: r.endpoints.clone(),
        observed_address: r.observed.clone(),
        segments: r.segments.clone(),
        labels: r.labels.clone(),
        members: r.members as u64,
        created_at: rfc3339(r.created_at),
        last_seen: r.last_seen.map(rfc3339),
    }
}

/// The `IP:port` endpoints peers use for a member: its explicit ones, else its node's
/// reported addresses and then the observed address, each with the member's port.
pub fn member_endpoints(m: &MemberRow, node: Option<&NodeRow>) -> Vec<String> {
    if !m.endpoints.is_empty() {
        return m.endpoints.clone();
    }
    let mut out: Vec<String> = Vec::new();
    if let Some(n) = node {
        for ip in n.endpoints.iter().chain(n.observed.iter()) {
            // Stored addresses were checked as IPs; an IPv6 one needs brackets.
            let ep = match ip.parse::<std::net::IpAddr>() {
                Ok(ip) => std::net::SocketAddr::new(ip, m.listen_port).to_string(),
                Err(_) => continue,
            };
            if !out.contains(&ep) {
                out.push(ep);
            }
        }
    }
    out
}

/// A member for the API.
pub fn member(m: &MemberRow, node: Option<&NodeRow>) -> Member {
    Member {
        id: m.id.clone(),
        name: m.name.clone(),
        segment: m.segment.clone(),
        node: m.node_name.clone(),
        node_id: m.node_id.clone(),
        workload: m.workload.clone(),
        address: m.address.map(|a| a.to_string()),
        address6: m.address6.map(|a| a.to_string()),
        public_key: m.public_key.clone(),
        listen_port: m.listen_port,
        endpoints: member_endpoints(m, node),
        labels: m.labels.clone(),
        created_at: rfc3339(m.created_at),
        quarantined_until: m.quarantined_until.map(rfc3339),
    }
}
