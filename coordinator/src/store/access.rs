//! The store's side of access control and monitoring: scoped API keys, the append-only
//! audit log and the event log. A separate trait from [`super::Store`] so the two can
//! grow apart; the SQLite store implements both.

use async_trait::async_trait;
use segwire_proto::access::Role;

use super::audit::Change;
use super::StoreResult;

/// An API key as stored (the secret only hashed).
#[derive(Debug, Clone)]
pub struct KeyRow {
    /// Key id.
    pub id: String,
    /// SHA-256 of the secret.
    pub secret_hash: String,
    /// Role.
    pub role: Role,
    /// Segments the key is limited to; `None` for all.
    pub segments: Option<Vec<String>>,
    /// A note for people.
    pub description: String,
    /// Creation time (unix seconds).
    pub created_at: i64,
    /// Expiry time, if any.
    pub expires_at: Option<i64>,
    /// Revocation time, if revoked.
    pub revoked_at: Option<i64>,
}

impl KeyRow {
    /// True when the key may authenticate at `now`.
    pub fn is_live(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }
}

/// One stored audit record.
#[derive(Debug, Clone)]
pub struct AuditRow {
    /// Sequence number.
    pub id: i64,
    /// Time (unix seconds).
    pub at: i64,
    /// `key:<id>` or `node:<id>`.
    pub actor: String,
    /// Source IP.
    pub source: Option<String>,
    /// Action, e.g. `segment.create`.
    pub action: String,
    /// Target, e.g. `segment:web`.
    pub target: String,
    /// State before, as redacted JSON text.
    pub before: Option<String>,
    /// State after, as redacted JSON text.
    pub after: Option<String>,
}

/// Filter of [`AccessStore::audit`].
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only records at or after this time.
    pub since: Option<i64>,
    /// Only this actor (exact).
    pub actor: Option<String>,
    /// Only targets starting with this.
    pub target: Option<String>,
    /// At most this many (the newest).
    pub limit: i64,
}

/// One stored event.
#[derive(Debug, Clone)]
pub struct EventRow {
    /// Sequence number.
    pub id: i64,
    /// Time (unix seconds).
    pub at: i64,
    /// Kind, e.g. `node.offline`.
    pub kind: String,
    /// Subject, e.g. `node:<id>`.
    pub subject: String,
    /// Details as JSON text.
    pub data: String,
}

/// Persistent state of access control and monitoring.
#[async_trait]
pub trait AccessStore: Send + Sync + 'static {
    /// Succeeds when the database answers (for `/readyz`).
    async fn ping(&self) -> StoreResult<()>;
    /// Stores a new key (audited as `apikey.create`).
    async fn create_key(&self, key: KeyRow) -> StoreResult<()>;
    /// A key by id, live or not.
    async fn key(&self, id: &str) -> StoreResult<Option<KeyRow>>;
    /// All keys, newest first.
    async fn list_keys(&self) -> StoreResult<Vec<KeyRow>>;
    /// Revokes a key (audited as `apikey.revoke`); `Conflict` for the last live admin key.
    async fn revoke_key(&self, id: &str, now: i64) -> StoreResult<KeyRow>;
    /// Stores `new` and revokes `old_id` in one transaction (audited as `apikey.rotate`).
    async fn rotate_key(&self, old_id: &str, new: KeyRow, now: i64) -> StoreResult<()>;
    /// Appends an audit record in its own transaction: the fallback for a change whose
    /// store method did not record itself.
    async fn append_audit(&self, change: Change) -> StoreResult<()>;
    /// Audit records matching the query, oldest first.
    async fn audit(&self, q: AuditQuery) -> StoreResult<Vec<AuditRow>>;
    /// Appends an event and returns it with its id.
    async fn append_event(
        &self,
        kind: &str,
        subject: &str,
        data: &str,
        now: i64,
    ) -> StoreResult<EventRow>;
    /// Events with an id above `since`, oldest first, at most `limit`.
    async fn events(&self, since: i64, limit: i64) -> StoreResult<Vec<EventRow>>;
}
