//! What a node's netmap is read from, on SQLite.

use super::nodes::live_node;
use super::rows::{member_row, node_row, segment_row, MEMBER_SELECT, NODE_SELECT, SEGMENT_SELECT};
use super::tx::finish;
use super::SqliteStore;
use crate::store::{MemberRow, NetmapRows, NodeRow, SegmentRow, StoreResult};

pub(super) async fn node_version(s: &SqliteStore, node_id: &str) -> StoreResult<i64> {
    let v: Option<i64> = sqlx::query_scalar(
        "SELECT MAX(v) FROM (SELECT version AS v FROM nodes WHERE id = $1 \
         UNION ALL SELECT s.version AS v FROM segments s \
         WHERE s.id IN (SELECT segment_id FROM members WHERE node_id = $1)) AS versions",
    )
    .bind(node_id)
    .fetch_one(&s.pool)
    .await?;
    Ok(v.unwrap_or(0))
}

pub(super) async fn netmap_rows(s: &SqliteStore, node_id: &str) -> StoreResult<NetmapRows> {
    let mut tx = s.pool.begin().await?;
    let res: StoreResult<_> = async {
        let node = live_node(&mut tx, node_id).await?;
        let segments: Vec<SegmentRow> = sqlx::query(&format!(
            "{SEGMENT_SELECT} WHERE s.id IN (SELECT segment_id FROM members WHERE node_id = $1) ORDER BY s.name"
        ))
        .bind(node_id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(segment_row)
        .collect::<StoreResult<_>>()?;
        let members: Vec<MemberRow> = sqlx::query(&format!(
            "{MEMBER_SELECT} WHERE m.segment_id IN (SELECT segment_id FROM members WHERE node_id = $1) ORDER BY m.address"
        ))
        .bind(node_id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(member_row)
        .collect::<StoreResult<_>>()?;
        let nodes: Vec<NodeRow> = sqlx::query(&format!(
            "{NODE_SELECT} AND n.id IN (SELECT m2.node_id FROM members m2 WHERE m2.segment_id IN \
             (SELECT segment_id FROM members WHERE node_id = $1))"
        ))
        .bind(node_id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(node_row)
        .collect::<StoreResult<_>>()?;
        let version = segments
            .iter()
            .map(|s| s.version)
            .chain(std::iter::once(node.version))
            .max()
            .unwrap_or(0);
        Ok(NetmapRows {
            node,
            segments,
            members,
            nodes,
            version,
        })
    }
    .await;
    finish(tx, res).await
}
