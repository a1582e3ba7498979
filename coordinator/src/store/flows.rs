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

/// Storage of flow logs.
#[async_trait]
pub trait FlowStore: Send + Sync + 'static {
    /// Appends a node's records, then drops records older than `keep_secs` and the oldest
    /// beyond `max_rows`.
    async fn add_flows(
        &self,
        node_id: &str,
        flows: &[FlowRecord],
        now: i64,
        keep_secs: i64,
        max_rows: i64,
    ) -> StoreResult<()>;
    /// Records matching the query, newest first, with their node names.
    async fn list_flows(&self, q: &FlowQuery) -> StoreResult<Vec<FlowRecord>>;
}
