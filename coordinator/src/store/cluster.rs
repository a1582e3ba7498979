//! What the coordinators sharing one database share besides the data: the CA and the
//! registry of live coordinators with their URLs. A separate trait from [`super::Store`];
//! both SQL stores implement it (on SQLite the registry holds the one coordinator).

use async_trait::async_trait;

use super::StoreResult;

/// The cluster CA as stored: its private key and certificate, both PEM.
#[derive(Clone)]
pub struct CaRow {
    /// The CA's private key (PKCS#8 PEM). Secret.
    pub key_pem: String,
    /// The CA certificate (PEM).
    pub cert_pem: String,
}

impl std::fmt::Debug for CaRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaRow")
            .field("key_pem", &"<redacted>")
            .field("cert_pem", &self.cert_pem)
            .finish()
    }
}

/// One coordinator in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorRow {
    /// The coordinator's instance id (new at every start).
    pub id: String,
    /// Its base URLs, one per `--advertise` name, first the one its tokens name.
    pub urls: Vec<String>,
    /// When it started (unix seconds).
    pub started_at: i64,
    /// Its last heartbeat (unix seconds).
    pub last_seen: i64,
}

/// The CA and the registry of coordinators.
#[async_trait]
pub trait ClusterStore: Send + Sync + 'static {
    /// The stored CA, if any coordinator stored one.
    async fn get_ca(&self) -> StoreResult<Option<CaRow>>;
    /// Stores `ca` unless a CA is stored already, and returns the one stored: `ca`, or the
    /// one a coordinator racing this one stored first.
    async fn put_ca_if_absent(&self, ca: &CaRow, now: i64) -> StoreResult<CaRow>;
    /// Registers the coordinator `id` with its URLs, or renews its heartbeat.
    async fn heartbeat(
        &self,
        id: &str,
        urls: &[String],
        started_at: i64,
        now: i64,
    ) -> StoreResult<()>;
    /// The coordinators seen at or after `since` (unix seconds), the longest running first.
    async fn live_coordinators(&self, since: i64) -> StoreResult<Vec<CoordinatorRow>>;
    /// Coordinator `instance` takes node `node_id`'s long-polls (the node moved to it, or
    /// is back): records it and clears the node's offline mark; true when the node was
    /// marked offline (it is back: `node.online` is due).
    async fn claim_node(&self, node_id: &str, instance: &str) -> StoreResult<bool>;
    /// Marks node `node_id` offline at `now` if coordinator `instance` still holds its
    /// long-polls and nobody marked it yet; true when this call marked it (`node.offline`
    /// is due, from this coordinator alone).
    async fn mark_offline(&self, node_id: &str, instance: &str, now: i64) -> StoreResult<bool>;
    /// Removes the coordinator `id` from the registry (at a clean shutdown) and the rows
    /// not seen since `stale_before`.
    async fn deregister(&self, id: &str, stale_before: i64) -> StoreResult<()>;
}
