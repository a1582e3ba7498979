//! Quarantined members: cut off from every peer of their segment until a time, still
//! attached and keeping their address. The time is a column of `members`
//! (migration `0006_quarantine.sql`), so a quarantine survives a coordinator restart; the
//! netmap builders leave a quarantined member out of every peer list and give it none.

use async_trait::async_trait;

use super::{MemberRow, StoreResult, Touched};

/// The actor recorded in the audit log for a quarantine triggered by a detection.
pub const ACTOR_DETECTION: &str = "automated:quarantine";
/// The actor recorded in the audit log for a quarantine lifted by its expiry.
pub const ACTOR_EXPIRY: &str = "automated:expiry";

/// Store methods for quarantines. Each write runs in one transaction, bumps the
/// segment's version, records an audit entry and returns the nodes to wake.
#[async_trait]
pub trait QuarantineStore: Send + Sync {
    /// Quarantines the member until `until` (unix seconds) for `reason`. `None` when it
    /// is quarantined already (the running quarantine is kept, not extended).
    async fn quarantine(
        &self,
        member_id: &str,
        until: i64,
        reason: &str,
    ) -> StoreResult<Option<(MemberRow, Touched)>>;
    /// Lifts the quarantine of the member named `member` in `segment`; `NotFound` for an
    /// unknown member, `Conflict` when it is not quarantined.
    async fn release(&self, segment: &str, member: &str) -> StoreResult<(MemberRow, Touched)>;
    /// Lifts every quarantine that ended at or before `now`, recorded as
    /// [`ACTOR_EXPIRY`]; returns each member released and the nodes to wake.
    async fn expire_quarantines(&self, now: i64) -> StoreResult<Vec<(MemberRow, Touched)>>;
}
