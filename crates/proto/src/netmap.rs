//! The network map: what one node needs to know to build its members' tunnels.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::{DefaultAction, Labels};

/// Everything one node needs: its members and, for each, the peers in its segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NetMap {
    /// Monotonic per node; a long-poll with `since` below it returns at once.
    pub version: u64,
    /// The node this map is for.
    pub node_id: String,
    /// Node name.
    pub node_name: String,
    /// Base URLs of every live coordinator sharing the database, the answering one first:
    /// an agent whose coordinator stops answering moves to the next. (Empty from an older
    /// coordinator; before `members`, which the coordinator writes last.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub coordinators: Vec<String>,
    /// The node's members.
    pub members: Vec<MemberMap>,
}

/// One member of this node and its segment's view.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MemberMap {
    /// Member id.
    pub id: String,
    /// Member name.
    pub name: String,
    /// Workload description (`host`, `netns:NAME`, `pid:N`, `path:P`).
    pub workload: String,
    /// Segment name.
    pub segment: String,
    /// Segment IPv4 network; absent on an IPv6-only segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
    /// This member's IPv4 overlay address; absent on an IPv6-only segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The segment's IPv6 prefix, when it has one (dual-stack or IPv6-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr6: Option<String>,
    /// This member's IPv6 overlay address, when the segment has an IPv6 prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address6: Option<String>,
    /// Listen port the member registered.
    pub listen_port: u16,
    /// Segment preshared key (base64). Secret: never logged.
    pub psk: String,
    /// Version of the preshared key.
    pub psk_version: u64,
    /// In the first phase of a key rotation, the segment's next preshared key (base64):
    /// the member answers handshakes made with it but still initiates with `psk`.
    /// Secret: never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psk_next: Option<String>,
    /// In the second phase of a key rotation, the previous preshared key (base64): still
    /// answered, no longer used to initiate. Secret: never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psk_previous: Option<String>,
    /// Segment policy default.
    pub default: DefaultAction,
    /// The segment's policy document (`{"default": ..., "rules": [...]}`), parsed by the agent.
    pub policy: serde_json::Value,
    /// Version of the policy.
    pub policy_version: u64,
    /// Effective labels.
    pub labels: Labels,
    /// Until when the member is quarantined (RFC 3339), if it is: cut off from every
    /// peer of the segment, still attached, its address kept. (Before `peers`, which the
    /// coordinator's fan-out writes last.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantined_until: Option<String>,
    /// The other members of the segment this member may exchange any traffic with
    /// (peers the policy never lets it talk to are left out; none while quarantined).
    pub peers: Vec<Peer>,
}

impl std::fmt::Debug for MemberMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberMap")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("segment", &self.segment)
            .field("address", &self.address)
            .field("address6", &self.address6)
            .field("psk", &"<redacted>")
            .field("psk_version", &self.psk_version)
            .field("psk_next", &self.psk_next.as_ref().map(|_| "<redacted>"))
            .field(
                "psk_previous",
                &self.psk_previous.as_ref().map(|_| "<redacted>"),
            )
            .field("quarantined_until", &self.quarantined_until)
            .field("peers", &self.peers)
            .finish()
    }
}

/// A peer of a member: another member of the same segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Peer {
    /// Member id of the peer.
    pub id: String,
    /// Member name of the peer.
    pub name: String,
    /// Node the peer lives on (empty for an external WireGuard device).
    pub node: String,
    /// Peer's WireGuard public key (base64).
    pub public_key: String,
    /// Peer's IPv4 overlay address (an allowed IP, as /32); absent on an IPv6-only
    /// segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Peer's IPv6 overlay address (an allowed IP, as /128) on a segment with an IPv6
    /// prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address6: Option<String>,
    /// `IP:port` endpoints, best first.
    pub endpoints: Vec<String>,
    /// Peer's labels.
    pub labels: Labels,
}
