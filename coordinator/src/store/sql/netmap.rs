//! What a node's netmap is read from.

use super::nodes::live_node;
use super::rows::{member_row, node_row, segment_row, MEMBER_SELECT, NODE_SELECT, SEGMENT_SELECT};
use super::tx::{finish, Tx};
use super::{Backend, DbRow};
use crate::store::{
    MemberRow, NetmapRows, NodeRow, NodeVersions, SegmentRow, SegmentRows, StoreError, StoreResult,
};

/// Runs `sql` with its one `$1` bound to `id` and converts every row with `convert`.
async fn fetch_all<T>(
    tx: &mut Tx<'_>,
    sql: &str,
    id: &str,
    convert: fn(&DbRow) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    sqlx::query(sql)
        .bind(id)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(convert)
        .collect()
}

pub(super) async fn netmap_rows(s: &Backend, node_id: &str) -> StoreResult<NetmapRows> {
    let mut tx = s.pool.begin().await?;
    let res: StoreResult<_> = async {
        let node = live_node(&mut tx, node_id).await?;
        let segments: Vec<SegmentRow> = fetch_all(
            &mut tx,
            &format!(
                "{SEGMENT_SELECT} WHERE s.id IN (SELECT segment_id FROM members WHERE node_id = $1) ORDER BY s.name"
            ),
            node_id,
            segment_row,
        )
        .await?;
        let members: Vec<MemberRow> = fetch_all(
            &mut tx,
            &format!(
                "{MEMBER_SELECT} WHERE m.segment_id IN (SELECT segment_id FROM members WHERE node_id = $1) ORDER BY m.address, m.address6"
            ),
            node_id,
            member_row,
        )
        .await?;
        let nodes: Vec<NodeRow> = fetch_all(
            &mut tx,
            &format!(
                "{NODE_SELECT} AND n.id IN (SELECT m2.node_id FROM members m2 WHERE m2.segment_id IN \
                 (SELECT segment_id FROM members WHERE node_id = $1))"
            ),
            node_id,
            node_row,
        )
        .await?;
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

pub(super) async fn node_versions(s: &Backend, node_id: &str) -> StoreResult<NodeVersions> {
    let mut conn = s.pool.acquire().await?;
    let node: Option<i64> = sqlx::query_scalar("SELECT version FROM nodes WHERE id = $1")
        .bind(node_id)
        .fetch_optional(&mut *conn)
        .await?;
    let segments: Vec<(String, i64)> = sqlx::query_as(
        "SELECT s.id, s.version FROM segments s \
         WHERE s.id IN (SELECT segment_id FROM members WHERE node_id = $1) ORDER BY s.name",
    )
    .bind(node_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(NodeVersions {
        node: node.unwrap_or(0),
        segments,
    })
}

pub(super) async fn segment_rows(s: &Backend, segment_id: &str) -> StoreResult<SegmentRows> {
    let mut tx = s.pool.begin().await?;
    let res: StoreResult<_> = async {
        let segment = sqlx::query(&format!("{SEGMENT_SELECT} WHERE s.id = $1"))
            .bind(segment_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no segment with id {segment_id:?}")))?;
        let segment = segment_row(&segment)?;
        let members: Vec<MemberRow> = fetch_all(
            &mut tx,
            &format!("{MEMBER_SELECT} WHERE m.segment_id = $1 ORDER BY m.address, m.address6"),
            segment_id,
            member_row,
        )
        .await?;
        let nodes: Vec<NodeRow> = fetch_all(
            &mut tx,
            &format!(
                "{NODE_SELECT} AND n.id IN (SELECT node_id FROM members WHERE segment_id = $1)"
            ),
            segment_id,
            node_row,
        )
        .await?;
        Ok(SegmentRows {
            segment,
            members,
            nodes,
        })
    }
    .await;
    finish(tx, res).await
}
