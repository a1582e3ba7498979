//! The SQL implementation (both backends) of [`QuarantineStore`]: two columns of `members`.

use async_trait::async_trait;
use serde_json::json;

use super::peers::agents_in_segment;
use super::rows::{member_row, MEMBER_SELECT};
use super::tx::begin_write;
use super::tx::{bump, finish, set_segment_version, Tx};
use super::{record, Backend};
use crate::store::audit::{self, Change};
use crate::store::quarantine::{QuarantineStore, ACTOR_DETECTION, ACTOR_EXPIRY};
use crate::store::{MemberRow, StoreError, StoreResult, Touched};

async fn member_by_id(tx: &mut Tx<'_>, id: &str) -> StoreResult<MemberRow> {
    let row = sqlx::query(&format!("{MEMBER_SELECT} WHERE m.id = $1"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no member {id:?}")))?;
    member_row(&row)
}

/// Sets or clears the member's quarantine, bumps its segment and records the change.
async fn set(
    tx: &mut Tx<'_>,
    before: &MemberRow,
    until: Option<i64>,
    reason: Option<&str>,
    action: &str,
    actor: Option<&str>,
) -> StoreResult<(MemberRow, Touched)> {
    sqlx::query("UPDATE members SET quarantined_until = $1, quarantine_reason = $2 WHERE id = $3")
        .bind(until)
        .bind(reason)
        .bind(&before.id)
        .execute(&mut **tx)
        .await?;
    let v = bump(tx).await?;
    set_segment_version(tx, &before.segment_id, v).await?;
    let after = member_by_id(tx, &before.id).await?;
    let mut change = Change::new(
        action,
        format!("member:{}", before.id),
        Some(audit::member(before)),
        Some(json!({
            "member": audit::member(&after),
            "quarantined_until": until,
            "reason": reason,
        })),
    );
    change.actor = actor.map(str::to_owned);
    record(tx, change).await?;
    let touched = agents_in_segment(tx, &before.segment_id).await?;
    Ok((after, touched))
}

#[async_trait]
impl QuarantineStore for Backend {
    async fn quarantine(
        &self,
        member_id: &str,
        until: i64,
        reason: &str,
    ) -> StoreResult<Option<(MemberRow, Touched)>> {
        let (_w, mut tx) = begin_write(self).await?;
        let res: StoreResult<_> = async {
            let m = member_by_id(&mut tx, member_id).await?;
            if m.quarantined_until.is_some() {
                return Ok(None);
            }
            let action = "member.quarantine";
            let done = set(
                &mut tx,
                &m,
                Some(until),
                Some(reason),
                action,
                Some(ACTOR_DETECTION),
            );
            Ok(Some(done.await?))
        }
        .await;
        finish(tx, res).await
    }

    async fn release(&self, segment: &str, member: &str) -> StoreResult<(MemberRow, Touched)> {
        let (_w, mut tx) = begin_write(self).await?;
        let res: StoreResult<_> = async {
            let row = sqlx::query(&format!("{MEMBER_SELECT} WHERE s.name = $1 AND m.name = $2"))
                .bind(segment)
                .bind(member)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| {
                    StoreError::NotFound(format!(
                        "segment {segment:?} has no member {member:?}; see `segwire member list --segment {segment}`"
                    ))
                })?;
            let m = member_row(&row)?;
            if m.quarantined_until.is_none() {
                return Err(StoreError::Conflict(format!(
                    "member {member:?} of segment {segment:?} is not quarantined"
                )));
            }
            set(&mut tx, &m, None, None, "member.release", None).await
        }
        .await;
        finish(tx, res).await
    }

    async fn expire_quarantines(&self, now: i64) -> StoreResult<Vec<(MemberRow, Touched)>> {
        let (_w, mut tx) = begin_write(self).await?;
        let res: StoreResult<_> = async {
            let rows = sqlx::query(&format!(
                "{MEMBER_SELECT} WHERE m.quarantined_until IS NOT NULL AND m.quarantined_until <= $1"
            ))
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let m = member_row(row)?;
                out.push(set(&mut tx, &m, None, None, "member.release", Some(ACTOR_EXPIRY)).await?);
            }
            Ok(out)
        }
        .await;
        finish(tx, res).await
    }
}
