//! The SQL implementation (both backends) of [`ClusterStore`]. Writes go through the
//! store's writer lock like every other (on SQLite a write beside the lock would make a
//! concurrent write transaction fail); each is one short statement.

use async_trait::async_trait;
use sqlx::Row;

use super::tx::{begin_write, finish};
use super::Backend;
use crate::store::cluster::{CaRow, ClusterStore, CoordinatorRow};
use crate::store::{StoreError, StoreResult};

#[async_trait]
impl ClusterStore for Backend {
    async fn get_ca(&self) -> StoreResult<Option<CaRow>> {
        let row = sqlx::query("SELECT key_pem, cert_pem FROM cluster_ca WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| CaRow {
            key_pem: r.get("key_pem"),
            cert_pem: r.get("cert_pem"),
        }))
    }

    async fn put_ca_if_absent(&self, ca: &CaRow, now: i64) -> StoreResult<CaRow> {
        let (_w, mut tx) = begin_write(self).await?;
        let res = sqlx::query(
            "INSERT INTO cluster_ca (id, key_pem, cert_pem, created_at) VALUES (1, $1, $2, $3) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&ca.key_pem)
        .bind(&ca.cert_pem)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map(|_| ())
        .map_err(StoreError::from);
        finish(tx, res).await?;
        self.get_ca()
            .await?
            .ok_or_else(|| StoreError::Corrupt("the CA row vanished right after it was written".into()))
    }

    async fn heartbeat(
        &self,
        id: &str,
        urls: &[String],
        started_at: i64,
        now: i64,
    ) -> StoreResult<()> {
        let urls = serde_json::to_string(urls).unwrap_or_else(|_| "[]".into());
        let (_w, mut tx) = begin_write(self).await?;
        let res = sqlx::query(
            "INSERT INTO coordinators (id, urls, started_at, last_seen) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET urls = excluded.urls, last_seen = excluded.last_seen",
        )
        .bind(id)
        .bind(urls)
        .bind(started_at)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map(|_| ())
        .map_err(StoreError::from);
        finish(tx, res).await
    }

    async fn live_coordinators(&self, since: i64) -> StoreResult<Vec<CoordinatorRow>> {
        let rows = sqlx::query(
            "SELECT id, urls, started_at, last_seen FROM coordinators WHERE last_seen >= $1 \
             ORDER BY started_at, id",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                let urls: String = r.get("urls");
                Ok(CoordinatorRow {
                    id: r.get("id"),
                    urls: serde_json::from_str(&urls)
                        .map_err(|e| StoreError::Corrupt(format!("coordinator urls: {e}")))?,
                    started_at: r.get("started_at"),
                    last_seen: r.get("last_seen"),
                })
            })
            .collect()
    }

    async fn claim_node(&self, node_id: &str, instance: &str) -> StoreResult<bool> {
        let (_w, mut tx) = begin_write(self).await?;
        let res: StoreResult<bool> = async {
            let was: Option<Option<i64>> =
                sqlx::query_scalar("SELECT offline_at FROM nodes WHERE id = $1")
                    .bind(node_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            sqlx::query("UPDATE nodes SET polled_by = $2, offline_at = NULL WHERE id = $1")
                .bind(node_id)
                .bind(instance)
                .execute(&mut *tx)
                .await?;
            Ok(was.flatten().is_some())
        }
        .await;
        finish(tx, res).await
    }

    async fn mark_offline(&self, node_id: &str, instance: &str, now: i64) -> StoreResult<bool> {
        let (_w, mut tx) = begin_write(self).await?;
        let res = sqlx::query(
            "UPDATE nodes SET offline_at = $3 WHERE id = $1 AND polled_by = $2 AND offline_at IS NULL",
        )
        .bind(node_id)
        .bind(instance)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map(|r| r.rows_affected() == 1)
        .map_err(StoreError::from);
        finish(tx, res).await
    }

    async fn deregister(&self, id: &str, stale_before: i64) -> StoreResult<()> {
        let (_w, mut tx) = begin_write(self).await?;
        let res = sqlx::query("DELETE FROM coordinators WHERE id = $1 OR last_seen < $2")
            .bind(id)
            .bind(stale_before)
            .execute(&mut *tx)
            .await
            .map(|_| ())
            .map_err(StoreError::from);
        finish(tx, res).await
    }
}
