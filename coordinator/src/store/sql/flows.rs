//! The SQL implementation (both backends) of [`FlowStore`].

use async_trait::async_trait;
use segwire_proto::api::FlowRecord;
use sqlx::Row;

use super::tx::begin_write;
use super::{dialect, Backend};
use crate::store::flows::{FlowKeep, FlowQuery, FlowStore};
use crate::store::StoreResult;

#[async_trait]
impl FlowStore for Backend {
    async fn add_flows(
        &self,
        node_id: &str,
        flows: &[FlowRecord],
        now: i64,
        keep: &FlowKeep,
    ) -> StoreResult<()> {
        let (_w, mut tx) = begin_write(self).await?;
        let res: StoreResult<()> = async {
            for f in flows {
                sqlx::query(
                    "INSERT INTO flows (node_id, segment, member, peer, direction, verdict, protocol, src, dst, dst_port, rule, count, first_seen, last_seen, received_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                )
                .bind(node_id)
                .bind(&f.segment)
                .bind(&f.member)
                .bind(&f.peer)
                .bind(&f.direction)
                .bind(&f.verdict)
                .bind(&f.protocol)
                .bind(&f.src)
                .bind(&f.dst)
                .bind(f.dst_port as i64)
                .bind(&f.rule)
                .bind(f.count as i64)
                .bind(f.first_seen)
                .bind(f.last_seen)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query("DELETE FROM flows WHERE received_at < $1")
                .bind(now - keep.secs)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "DELETE FROM flows WHERE node_id = $1 AND id <= \
                 (SELECT id FROM flows WHERE node_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)",
            )
            .bind(node_id)
            .bind(keep.rows_per_node)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "DELETE FROM flows WHERE id <= (SELECT id FROM flows ORDER BY id DESC LIMIT 1 OFFSET $1)",
            )
            .bind(keep.rows)
            .execute(&mut *tx)
            .await?;
            Ok(())
        }
        .await;
        super::tx::finish(tx, res).await
    }

    async fn list_flows(&self, q: &FlowQuery) -> StoreResult<Vec<FlowRecord>> {
        let sql = format!(
            "SELECT f.*, COALESCE(n.name, '') AS node_name FROM flows f LEFT JOIN nodes n ON n.id = f.node_id \
             WHERE ($1 = 0 OR f.verdict = 'denied') AND f.last_seen >= $2 \
             AND ($4 IS NULL OR f.segment IN (SELECT value FROM {})) \
             ORDER BY f.last_seen DESC, f.id DESC LIMIT $3",
            dialect::json_values("$4")
        );
        let rows = sqlx::query(&sql)
            .bind(q.denied as i64)
            .bind(q.since.unwrap_or(0))
            .bind(q.limit)
            .bind(
                q.segments
                    .as_ref()
                    .map(|s| serde_json::to_string(s).unwrap_or_default()),
            )
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let segment: String = r.try_get("segment")?;
            out.push(FlowRecord {
                segment,
                member: r.try_get("member")?,
                node: r.try_get("node_name")?,
                peer: r.try_get("peer")?,
                direction: r.try_get("direction")?,
                verdict: r.try_get("verdict")?,
                protocol: r.try_get("protocol")?,
                src: r.try_get("src")?,
                dst: r.try_get("dst")?,
                dst_port: r.try_get::<i64, _>("dst_port")? as u16,
                rule: r.try_get("rule")?,
                count: r.try_get::<i64, _>("count")? as u64,
                first_seen: r.try_get("first_seen")?,
                last_seen: r.try_get("last_seen")?,
            });
        }
        Ok(out)
    }
}
