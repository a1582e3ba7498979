//! What `segwire-node status` shows: the agent, its members and their peers.

use std::collections::BTreeMap;

use segwire_proto::api::FlowRecord;
use serde::{Deserialize, Serialize};

/// The whole agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentStatus {
    /// Node name.
    pub node: String,
    /// Node id.
    pub node_id: String,
    /// Coordinator URL.
    pub coordinator: String,
    /// Whether the last request to the coordinator succeeded.
    pub coordinator_reachable: bool,
    /// The last error talking to the coordinator, if any since the last success.
    pub coordinator_error: Option<String>,
    /// True once the coordinator said the node was revoked (the agent then runs idle).
    pub revoked: bool,
    /// Version of the netmap applied (0: none yet).
    pub netmap_version: u64,
    /// The members.
    pub members: Vec<MemberView>,
}

/// One member.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberView {
    /// Member id.
    pub id: String,
    /// Member name.
    pub name: String,
    /// Segment.
    pub segment: String,
    /// Interface name.
    pub interface: String,
    /// Workload (`host`, `netns:NAME`, ...).
    pub workload: String,
    /// Overlay IPv4 address; empty on an IPv6-only segment.
    pub address: String,
    /// Overlay IPv6 address, on a segment with an IPv6 prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address6: Option<String>,
    /// UDP listen port.
    pub listen_port: u16,
    /// Public key.
    pub public_key: String,
    /// Whether its interface and data path run.
    pub up: bool,
    /// Preshared key version in use.
    pub psk_version: Option<u64>,
    /// Drops no peer can be blamed for, and shell-level errors, by reason.
    pub drops: BTreeMap<String, u64>,
    /// Its peers.
    pub peers: Vec<PeerView>,
    /// Its WireGuard UAPI socket name (`wg show NAME`), if served.
    #[serde(default)]
    pub wg_socket: Option<String>,
    /// Version of the segment policy enforced.
    #[serde(default)]
    pub policy_version: Option<u64>,
    /// Firewall counters.
    #[serde(default)]
    pub firewall: FirewallView,
    /// The busiest flow-log records (new allowed connections, denied packets).
    #[serde(default)]
    pub flows: Vec<FlowRecord>,
    /// Until when the coordinator keeps it quarantined (no peers), if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantined_until: Option<String>,
}

/// Firewall counters of one member.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FirewallView {
    /// Packets allowed.
    pub allowed: u64,
    /// Packets denied.
    pub denied: u64,
    /// Connections tracked now.
    pub connections: u64,
    /// Tracked connections evicted because the table was full.
    pub evictions: u64,
    /// Connections cut by a policy change.
    pub cut: u64,
    /// New flows not logged because the flow table was full.
    pub flows_dropped: u64,
}

/// One peer of a member.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerView {
    /// Peer member name.
    pub name: String,
    /// Node the peer lives on.
    pub node: String,
    /// Public key.
    pub public_key: String,
    /// Current endpoint.
    pub endpoint: Option<String>,
    /// Allowed IPs.
    pub allowed_ips: Vec<String>,
    /// Seconds since the last handshake.
    pub last_handshake_secs: Option<u64>,
    /// Handshakes completed with this peer since it was added (each rekey and each key
    /// rotation adds one).
    #[serde(default)]
    pub handshakes: u64,
    /// Bytes received (inner packets).
    pub rx_bytes: u64,
    /// Bytes sent (inner packets).
    pub tx_bytes: u64,
    /// Drops by reason.
    pub drops: BTreeMap<String, u64>,
}
