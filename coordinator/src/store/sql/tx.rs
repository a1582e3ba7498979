//! The write-transaction helpers of the SQL stores: commit-or-rollback, the global
//! change counter and the version stamps it writes.

use sqlx::Transaction;
use tokio::sync::MutexGuard;

use super::{dialect, Backend, Db};
use crate::store::StoreResult;

/// A write transaction.
pub(super) type Tx<'a> = Transaction<'a, Db>;

/// Starts a write transaction: one writer at a time in this process (the mutex), and on
/// PostgreSQL one writer at a time across every coordinator sharing the database (the
/// dialect's writer lock), so that every write sees the latest state.
pub(super) async fn begin_write(s: &Backend) -> StoreResult<(MutexGuard<'_, ()>, Tx<'static>)> {
    let guard = s.write.lock().await;
    let mut tx = s.pool.begin().await?;
    if let Err(e) = dialect::lock_writers(&mut tx).await {
        if let Err(rb) = tx.rollback().await {
            tracing::warn!(error = %rb, "rollback failed");
        }
        return Err(e);
    }
    Ok((guard, tx))
}

/// Commits on success and rolls back on failure, at once: a dropped transaction would
/// hold the write lock (SQLite) or its row locks (PostgreSQL) until its connection is next used.
pub(super) async fn finish<T>(tx: Tx<'_>, res: StoreResult<T>) -> StoreResult<T> {
    match res {
        Ok(v) => {
            tx.commit().await?;
            Ok(v)
        }
        Err(e) => {
            if let Err(rb) = tx.rollback().await {
                tracing::warn!(error = %rb, "rollback failed");
            }
            Err(e)
        }
    }
}

/// Takes the next value of the global change counter.
pub(super) async fn bump(tx: &mut Tx<'_>) -> StoreResult<i64> {
    let v: i64 = sqlx::query_scalar(
        "UPDATE counters SET value = value + 1 WHERE name = 'version' RETURNING value",
    )
    .fetch_one(&mut **tx)
    .await?;
    Ok(v)
}

pub(super) async fn set_segment_version(
    tx: &mut Tx<'_>,
    segment_id: &str,
    v: i64,
) -> StoreResult<()> {
    sqlx::query("UPDATE segments SET version = $1 WHERE id = $2")
        .bind(v)
        .bind(segment_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(super) async fn set_node_version(tx: &mut Tx<'_>, node_id: &str, v: i64) -> StoreResult<()> {
    sqlx::query("UPDATE nodes SET version = $1 WHERE id = $2")
        .bind(v)
        .bind(node_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
