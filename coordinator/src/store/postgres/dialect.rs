//! What PostgreSQL spells differently from SQLite in the shared queries of `store/sql/`.

use super::tx::Tx;
use super::{notify, PgStore};
use crate::store::{StoreResult, Touched};

/// The advisory lock every write transaction takes: one writer at a time across all the
/// coordinators sharing the database (released at commit or rollback).
const WRITER_LOCK: i64 = 0x0053_6567_7769_7265; // "Segwire"

/// The aggregate that turns the `value` column of [`json_values`] back into a JSON array
/// (text); `[]` when no row is left.
pub(super) const JSON_ARRAY_AGG: &str = "COALESCE(jsonb_agg(value), '[]'::jsonb)::text";

/// A FROM item with one text column `value` per element of the JSON array (text) `expr`.
pub(super) fn json_values(expr: &str) -> String {
    format!("jsonb_array_elements_text(CAST({expr} AS jsonb)) AS elements(value)")
}

/// Waits for the writer lock inside `tx`.
pub(super) async fn lock_writers(tx: &mut Tx<'_>) -> StoreResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(WRITER_LOCK)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Tells the other coordinators sharing the database which nodes a committed change
/// touched, so they wake their long-polls (a failure is logged: their long-polls still
/// end at their timeout).
pub(super) async fn announce(s: &PgStore, touched: &Touched) {
    if let Err(e) = notify::announce(&s.pool, &s.instance, touched).await {
        tracing::warn!(error = %e, nodes = touched.len(), "cannot notify the other coordinators of a change");
    }
}
