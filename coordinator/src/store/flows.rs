//! Flow logs: agents ship aggregated records; the coordinator keeps them for a bounded
//! time and row count, and answers queries by segment, verdict and time.

use async_trait::async_trait;
use segwire_proto::api::FlowRecord;

use super::StoreResult;

/// A flow query.
#[derive(Debug, Clone, Default)]
pub struct FlowQuery {
    /// Only these segments (`None`: all).
    pub segments: Option<Vec<String>>,
    /// Only denied records.
    pub denied: bool,
    /// Only records last seen at or after this unix time.
    pub since: Option<i64>,
    /// At most this many records, newest first.
    pub limit: i64,
}

/// How much of the flow log is kept.
#[derive(Debug, Clone, Copy)]
pub struct FlowKeep {
    /// Seconds a record is kept after it was received.
    pub secs: i64,
    /// Most records in all.
    pub rows: i64,
    /// Most records of one node.
    pub rows_per_node: i64,
}

/// Storage of flow logs.
#[async_trait]
pub trait FlowStore: Send + Sync + 'static {
    /// Appends a node's records, then drops records older than `keep.secs`, the node's
    /// oldest beyond `keep.rows_per_node` and the oldest of all beyond `keep.rows`.
    async fn add_flows(
        &self,
        node_id: &str,
        flows: &[FlowRecord],
        now: i64,
        keep: &FlowKeep,
    ) -> StoreResult<()>;
    /// Records matching the query, newest first, with their node names.
    async fn list_flows(&self, q: &FlowQuery) -> StoreResult<Vec<FlowRecord>>;
}
