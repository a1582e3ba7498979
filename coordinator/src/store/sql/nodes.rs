//! Nodes: enrolment, lookup, revocation, endpoints and last contact.

use std::collections::HashSet;

use super::members::{nodes_in_segment, release_address};
use super::rows::{
    is_unique_violation, member_row, node_row, to_json, token_row, MEMBER_SELECT, NODE_SELECT,
    TOKEN_SELECT,
};
use super::tx::begin_write;
use super::tx::{bump, finish, set_segment_version};
use super::{record, Backend, DbConn};
use crate::store::audit::{self, Change};
use crate::store::{rules, MemberRow, NewNode, NodeRow, StoreError, StoreResult, Touched};

/// A live node by id or name, in a transaction or on a plain connection.
pub(super) async fn live_node(conn: &mut DbConn, id_or_name: &str) -> StoreResult<NodeRow> {
    let row = sqlx::query(&format!("{NODE_SELECT} AND (n.id = $1 OR n.name = $1)"))
        .bind(id_or_name)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no enrolled node {id_or_name:?}")))?;
    node_row(&row)
}

pub(super) async fn enroll(s: &Backend, n: NewNode, now: i64) -> StoreResult<NodeRow> {
    let (_w, mut tx) = begin_write(s).await?;
    let res: StoreResult<_> = async {
        let row = sqlx::query(&format!("{TOKEN_SELECT} WHERE id = $1"))
            .bind(&n.token_id)
            .fetch_optional(&mut *tx)
            .await?;
        let token = row.as_ref().map(token_row).transpose()?;
        rules::check_token(token.as_ref(), &n.token_secret, now)?;
        let token = token.ok_or_else(rules::token_unknown)?;
        let consumed = sqlx::query(
            "UPDATE tokens SET uses_left = uses_left - 1 WHERE id = $1 AND uses_left > 0 AND revoked_at IS NULL",
        )
        .bind(&token.id)
        .execute(&mut *tx)
        .await?;
        if consumed.rows_affected() != 1 {
            return Err(rules::token_used_up());
        }
        let v = bump(&mut tx).await?;
        let inserted = sqlx::query(
            "INSERT INTO nodes (id, name, public_key, cred_hash, token_id, segments, labels, endpoints, observed, created_at, last_seen, version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11)",
        )
        .bind(&n.id)
        .bind(&n.name)
        .bind(&n.public_key)
        .bind(&n.cred_hash)
        .bind(&token.id)
        .bind(to_json(&token.segments))
        .bind(to_json(&token.labels))
        .bind(to_json(&n.endpoints))
        .bind(&n.observed)
        .bind(now)
        .bind(v)
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!(
                    "a node named {:?} is already enrolled; choose another --name or revoke the old node first",
                    n.name
                )))
            }
            other => {
                other?;
            }
        }
        let node = live_node(&mut tx, &n.id).await?;
        let mut after = audit::node(&node);
        after["token_id"] = serde_json::Value::String(token.id.clone());
        let mut change = Change::new("node.enroll", format!("node:{}", node.name), None, Some(after));
        change.actor = Some(format!("node:{}", node.id));
        record(&mut tx, change).await?;
        Ok(node)
    }
    .await;
    finish(tx, res).await
}

pub(super) async fn list_nodes(s: &Backend) -> StoreResult<Vec<NodeRow>> {
    let rows = sqlx::query(&format!("{NODE_SELECT} ORDER BY n.name"))
        .fetch_all(&s.pool)
        .await?;
    rows.iter().map(node_row).collect()
}

pub(super) async fn get_node(s: &Backend, id_or_name: &str) -> StoreResult<NodeRow> {
    live_node(&mut *s.pool.acquire().await?, id_or_name).await
}

pub(super) async fn node_for_auth(s: &Backend, id: &str) -> StoreResult<Option<NodeRow>> {
    let row = sqlx::query(&format!("{NODE_SELECT} AND n.id = $1"))
        .bind(id)
        .fetch_optional(&s.pool)
        .await?;
    row.as_ref().map(node_row).transpose()
}

pub(super) async fn revoke_node(
    s: &Backend,
    id_or_name: &str,
    now: i64,
) -> StoreResult<(NodeRow, Touched)> {
    let (_w, mut tx) = begin_write(s).await?;
    let res: StoreResult<_> = async {
        let node = live_node(&mut tx, id_or_name).await?;
        let members: Vec<MemberRow> = sqlx::query(&format!("{MEMBER_SELECT} WHERE m.node_id = $1"))
            .bind(&node.id)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(member_row)
            .collect::<StoreResult<_>>()?;
        let mut touched: HashSet<String> = HashSet::new();
        for m in &members {
            touched.extend(nodes_in_segment(&mut tx, &m.segment_id).await?);
            release_address(&mut tx, m, now).await?;
            sqlx::query("DELETE FROM members WHERE id = $1")
                .bind(&m.id)
                .execute(&mut *tx)
                .await?;
            let v = bump(&mut tx).await?;
            set_segment_version(&mut tx, &m.segment_id, v).await?;
        }
        // Its names, even those a policy relies on, are free after the quarantine.
        sqlx::query("UPDATE member_name_claims SET released_at = $1 WHERE node_id = $2")
            .bind(now)
            .bind(&node.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE nodes SET revoked_at = $1 WHERE id = $2")
            .bind(now)
            .bind(&node.id)
            .execute(&mut *tx)
            .await?;
        let target = format!("node:{}", node.name);
        record(
            &mut tx,
            Change::new("node.revoke", target, Some(audit::node(&node)), None),
        )
        .await?;
        touched.insert(node.id.clone());
        Ok((node, touched.into_iter().collect()))
    }
    .await;
    finish(tx, res).await
}

/// How often an unchanged endpoint report still refreshes `last_seen`.
const TOUCH_EVERY_SECS: i64 = 10;

pub(super) async fn set_endpoints(
    s: &Backend,
    node_id: &str,
    endpoints: Vec<String>,
    observed: Option<String>,
    now: i64,
) -> StoreResult<Touched> {
    let (_w, mut tx) = begin_write(s).await?;
    let res: StoreResult<_> = async {
        let node = live_node(&mut tx, node_id).await?;
        let observed = observed.or(node.observed.clone());
        if node.endpoints == endpoints && node.observed == observed {
            // Nothing changed: no write beyond a stale `last_seen`, no audit record, no bump.
            if node.last_seen.unwrap_or(0) + TOUCH_EVERY_SECS <= now {
                sqlx::query("UPDATE nodes SET last_seen = $1 WHERE id = $2")
                    .bind(now)
                    .bind(node_id)
                    .execute(&mut *tx)
                    .await?;
            }
            return Ok(Vec::new());
        }
        sqlx::query("UPDATE nodes SET endpoints = $1, observed = $2, last_seen = $3 WHERE id = $4")
            .bind(to_json(&endpoints))
            .bind(&observed)
            .bind(now)
            .bind(node_id)
            .execute(&mut *tx)
            .await?;
        let change = Change::new(
            "node.endpoints",
            format!("node:{}", node.name),
            Some(serde_json::json!({"endpoints": node.endpoints, "observed": node.observed})),
            Some(serde_json::json!({"endpoints": endpoints, "observed": observed})),
        );
        record(&mut tx, change).await?;
        let segs: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT segment_id FROM members WHERE node_id = $1")
                .bind(node_id)
                .fetch_all(&mut *tx)
                .await?;
        let mut touched: HashSet<String> = HashSet::new();
        for s in &segs {
            let v = bump(&mut tx).await?;
            set_segment_version(&mut tx, s, v).await?;
            touched.extend(nodes_in_segment(&mut tx, s).await?);
        }
        Ok(touched.into_iter().collect())
    }
    .await;
    finish(tx, res).await
}

pub(super) async fn touch_node(
    s: &Backend,
    node_id: &str,
    observed: Option<String>,
    now: i64,
) -> StoreResult<()> {
    let _w = s.write.lock().await;
    sqlx::query("UPDATE nodes SET last_seen = $1, observed = COALESCE($2, observed) WHERE id = $3")
        .bind(now)
        .bind(observed)
        .bind(node_id)
        .execute(&s.pool)
        .await?;
    Ok(())
}
