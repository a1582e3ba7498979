//! The SQL implementation (both backends) of [`PeerStore`]: external members as rows of `members` owned
//! by the synthetic node [`EXTERNAL_NODE_ID`].

use std::collections::HashSet;

use async_trait::async_trait;

use super::members::{allocate_address, allocate_address6, nodes_in_segment, release_address};
use super::rows::{is_unique_violation, member_row, node_row, to_json, MEMBER_SELECT, NODE_SELECT};
use super::segments::segment_by_name;
use super::tx::begin_write;
use super::tx::{bump, finish, set_segment_version, Tx};
use super::{record, Backend};
use crate::secret;
use crate::store::audit::{self, Change};
use crate::store::peers::{external_workload, NewPeer, PeerStore, PeerView, EXTERNAL_NODE_ID};
use crate::store::{MemberRow, StoreError, StoreResult, Touched};

/// The nodes to wake for a change in `segment_id` (the synthetic node never polls).
pub(super) async fn agents_in_segment(tx: &mut Tx<'_>, segment_id: &str) -> StoreResult<Touched> {
    let mut nodes = nodes_in_segment(tx, segment_id).await?;
    nodes.retain(|n| n != EXTERNAL_NODE_ID);
    Ok(nodes)
}

/// The external member named `name`, in `segment` or in the only segment that has one.
async fn find_peer(tx: &mut Tx<'_>, segment: Option<&str>, name: &str) -> StoreResult<MemberRow> {
    let rows = sqlx::query(&format!(
        "{MEMBER_SELECT} WHERE m.node_id = $1 AND m.name = $2 AND ($3 IS NULL OR s.name = $3) \
         ORDER BY s.name"
    ))
    .bind(EXTERNAL_NODE_ID)
    .bind(name)
    .bind(segment)
    .fetch_all(&mut **tx)
    .await?;
    let mut found = rows
        .iter()
        .map(member_row)
        .collect::<StoreResult<Vec<_>>>()?;
    match (found.len(), segment) {
        (0, Some(s)) => Err(StoreError::NotFound(format!(
            "segment {s:?} has no external peer named {name:?}"
        ))),
        (0, None) => Err(StoreError::NotFound(format!(
            "no external peer named {name:?}"
        ))),
        (1, _) => Ok(found.remove(0)),
        _ => Err(StoreError::Conflict(format!(
            "external peers named {name:?} exist in segments {}; name the segment with --segment",
            found
                .iter()
                .map(|m| m.segment.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn key_conflict(e: sqlx::Error) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::Conflict("another member of this segment already uses that public key".into())
    } else {
        e.into()
    }
}

#[async_trait]
impl PeerStore for Backend {
    async fn add_peer(&self, p: NewPeer, now: i64) -> StoreResult<(MemberRow, Touched)> {
        let (_w, mut tx) = begin_write(self).await?;
        let res: StoreResult<_> = async {
            let seg = segment_by_name(&mut tx, &p.segment).await?;
            let names: HashSet<String> =
                sqlx::query_scalar("SELECT name FROM members WHERE segment_id = $1")
                    .bind(&seg.id)
                    .fetch_all(&mut *tx)
                    .await?
                    .into_iter()
                    .collect();
            if names.contains(&p.name) {
                return Err(StoreError::Conflict(format!(
                    "segment {:?} already has a member named {:?}",
                    seg.name, p.name
                )));
            }
            let addr = allocate_address(&mut tx, &seg, now - p.quarantine_secs).await?;
            let addr6 = allocate_address6(&mut tx, &seg, now - p.quarantine_secs).await?;
            let port = p
                .endpoint
                .as_deref()
                .and_then(|e| e.parse::<std::net::SocketAddr>().ok())
                .map_or(0, |e| e.port());
            let endpoints: Vec<String> = p.endpoint.iter().cloned().collect();
            let id = secret::new_id();
            sqlx::query(
                "INSERT INTO members (id, node_id, segment_id, name, workload, address, public_key, \
                 listen_port, endpoints, labels, created_at, address6) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(&id)
            .bind(EXTERNAL_NODE_ID)
            .bind(&seg.id)
            .bind(&p.name)
            .bind(external_workload(&p.name))
            .bind(addr.map(|a| u32::from(a) as i64))
            .bind(&p.public_key)
            .bind(port as i64)
            .bind(to_json(&endpoints))
            .bind(to_json(&p.labels))
            .bind(now)
            .bind(addr6.map(|a| a.to_string()))
            .execute(&mut *tx)
            .await
            .map_err(key_conflict)?;
            let v = bump(&mut tx).await?;
            set_segment_version(&mut tx, &seg.id, v).await?;
            let row = sqlx::query(&format!("{MEMBER_SELECT} WHERE m.id = $1"))
                .bind(&id)
                .fetch_one(&mut *tx)
                .await?;
            let member = member_row(&row)?;
            let touched = agents_in_segment(&mut tx, &seg.id).await?;
            let target = format!("peer:{}/{}", seg.name, member.name);
            record(
                &mut tx,
                Change::new("peer.add", target, None, Some(audit::member(&member))),
            )
            .await?;
            Ok((member, touched))
        }
        .await;
        finish(tx, res).await
    }

    async fn list_peers(&self, segment: Option<&str>) -> StoreResult<Vec<MemberRow>> {
        let rows = sqlx::query(&format!(
            "{MEMBER_SELECT} WHERE m.node_id = $1 AND ($2 IS NULL OR s.name = $2) \
             ORDER BY s.name, m.address, m.address6"
        ))
        .bind(EXTERNAL_NODE_ID)
        .bind(segment)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(member_row).collect()
    }

    async fn peer_view(&self, segment: Option<&str>, name: &str) -> StoreResult<PeerView> {
        let mut tx = self.pool.begin().await?;
        let res: StoreResult<_> = async {
            let peer = find_peer(&mut tx, segment, name).await?;
            let segment = segment_by_name(&mut tx, &peer.segment).await?;
            let members = sqlx::query(&format!(
                "{MEMBER_SELECT} WHERE m.segment_id = $1 ORDER BY m.address, m.address6"
            ))
            .bind(&segment.id)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(member_row)
            .collect::<StoreResult<Vec<_>>>()?;
            let nodes = sqlx::query(&format!(
                "{NODE_SELECT} AND n.id IN (SELECT node_id FROM members WHERE segment_id = $1)"
            ))
            .bind(&segment.id)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(node_row)
            .collect::<StoreResult<Vec<_>>>()?;
            Ok(PeerView {
                segment,
                peer,
                members,
                nodes,
            })
        }
        .await;
        finish(tx, res).await
    }

    async fn remove_peer(
        &self,
        segment: Option<&str>,
        name: &str,
        now: i64,
    ) -> StoreResult<(MemberRow, Touched)> {
        let (_w, mut tx) = begin_write(self).await?;
        let res: StoreResult<_> = async {
            let m = find_peer(&mut tx, segment, name).await?;
            let touched = agents_in_segment(&mut tx, &m.segment_id).await?;
            sqlx::query("DELETE FROM members WHERE id = $1")
                .bind(&m.id)
                .execute(&mut *tx)
                .await?;
            release_address(&mut tx, &m, now).await?;
            let v = bump(&mut tx).await?;
            set_segment_version(&mut tx, &m.segment_id, v).await?;
            let target = format!("peer:{}/{}", m.segment, m.name);
            record(
                &mut tx,
                Change::new("peer.remove", target, Some(audit::member(&m)), None),
            )
            .await?;
            Ok((m, touched))
        }
        .await;
        finish(tx, res).await
    }
}
