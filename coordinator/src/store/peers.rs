//! External members: stock WireGuard devices registered by an operator.
//!
//! They are rows of the `members` table owned by the synthetic node
//! [`EXTERNAL_NODE_ID`] (migration `0005_external_peers.sql`), so address allocation,
//! name and key uniqueness, netmaps and policies treat them like every other member. The
//! synthetic node has no credential and is hidden from every node query.

use async_trait::async_trait;
use segwire_proto::api::Labels;

use super::{MemberRow, NodeRow, SegmentRow, StoreResult, Touched};

/// Id of the node row that owns every external member.
pub const EXTERNAL_NODE_ID: &str = "external";

/// The workload recorded for the external member named `name` (unique per segment).
#[must_use]
pub fn external_workload(name: &str) -> String {
    format!("wireguard:{name}")
}

/// An external member to add.
#[derive(Debug, Clone)]
pub struct NewPeer {
    /// Segment name.
    pub segment: String,
    /// Member name (validated).
    pub name: String,
    /// WireGuard public key (validated).
    pub public_key: String,
    /// `IP:port` the device listens on, if any (validated).
    pub endpoint: Option<String>,
    /// Labels (validated).
    pub labels: Labels,
    /// Seconds a released address stays unused.
    pub quarantine_secs: i64,
}

/// What a device's configuration is built from.
#[derive(Debug, Clone)]
pub struct PeerView {
    /// Its segment (with the preshared key).
    pub segment: SegmentRow,
    /// The external member itself.
    pub peer: MemberRow,
    /// Every member of the segment (the peer included).
    pub members: Vec<MemberRow>,
    /// The live nodes owning those members (for their endpoints).
    pub nodes: Vec<NodeRow>,
}

/// Store methods for external members. Writes run in one transaction and record an
/// audit entry; they return the nodes whose netmaps changed.
#[async_trait]
pub trait PeerStore: Send + Sync {
    /// Adds an external member, allocating its overlay address. `Conflict` on a taken
    /// name or public key, or a full segment.
    async fn add_peer(&self, peer: NewPeer, now: i64) -> StoreResult<(MemberRow, Touched)>;
    /// External members, optionally of one segment, by segment and address.
    async fn list_peers(&self, segment: Option<&str>) -> StoreResult<Vec<MemberRow>>;
    /// One external member with everything its configuration needs. Without a segment
    /// the name must be unique across segments (`Conflict` otherwise).
    async fn peer_view(&self, segment: Option<&str>, name: &str) -> StoreResult<PeerView>;
    /// Removes an external member and releases its address.
    async fn remove_peer(
        &self,
        segment: Option<&str>,
        name: &str,
        now: i64,
    ) -> StoreResult<(MemberRow, Touched)>;
}
