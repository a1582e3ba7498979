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
    // One query (one round trip to the database) per long-poll answer: the node's own
    // row, without a segment id, and then its segments by name.
    let rows: Vec<(Option<String>, i64, Option<String>)> = sqlx::query_as(
        "SELECT NULL AS id, version, NULL AS name FROM nodes \
         WHERE id = $1 AND revoked_at IS NULL AND kind = 'agent' \
         UNION ALL \
         SELECT s.id, s.version, s.name FROM segments s \
         WHERE s.id IN (SELECT segment_id FROM members WHERE node_id = $1) ORDER BY 3",
    )
    .bind(node_id)
    .fetch_all(&s.pool)
    .await?;
    let mut versions = NodeVersions::default();
    for (id, version, _) in rows {
        match id {
            Some(id) => versions.segments.push((id, version)),
            None => {
                versions.node = version;
                versions.live = true;
            }
        }
    }
    Ok(versions)
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
