//! What SQLite spells differently from PostgreSQL in the shared queries of `store/sql/`.

use super::tx::Tx;
use super::SqliteStore;
use crate::store::{StoreResult, Touched};

/// The aggregate that turns the `value` column of [`json_values`] back into a JSON array
/// (text); `[]` when no row is left.
pub(super) const JSON_ARRAY_AGG: &str = "json_group_array(value)";

/// A FROM item with one text column `value` per element of the JSON array (text) `expr`.
pub(super) fn json_values(expr: &str) -> String {
    format!("json_each({expr})")
}

/// Nothing to do: SQLite has one writer at a time anyway, and this process serialises
/// its writers with the store's mutex.
pub(super) async fn lock_writers(_tx: &mut Tx<'_>) -> StoreResult<()> {
    Ok(())
}

/// Nothing to do: one coordinator per SQLite file, and it woke its own long-polls.
pub(super) async fn announce(_s: &SqliteStore, _touched: &Touched) {}
