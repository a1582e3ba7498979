//! Segments: create, list, delete, preshared-key rotation and policy.

use segwire_proto::api::RotationPhase;

use ipnet::IpNet;

use super::members::{allocate_address, allocate_address6, nodes_in_segment};
use super::rows::{default_to_str, segment_row, SEGMENT_SELECT};
use super::tx::begin_write;
use super::tx::{bump, finish, set_node_version};
use super::{dialect, record, Backend, DbConn};
use crate::secret;
use crate::store::audit::{self, Change};
use crate::store::{
    rules, DefaultAction, NewSegment, SegmentRow, StoreError, StoreResult, Touched,
};

/// A segment by name, in a transaction or on a plain connection.
pub(super) async fn segment_by_name(conn: &mut DbConn, name: &str) -> StoreResult<SegmentRow> {
    let row = sqlx::query(&format!("{SEGMENT_SELECT} WHERE s.name = $1"))
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no segment named {name:?}")))?;
    segment_row(&row)
}

/// Every segment, by name (the overlap rules compare a new network with all of them).
async fn all_segments(conn: &mut DbConn) -> StoreResult<Vec<SegmentRow>> {
    let rows = sqlx::query(&format!("{SEGMENT_SELECT} ORDER BY s.name"))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(segment_row).collect()
}

pub(super) async fn create_segment(
    s: &Backend,
    seg: NewSegment,
    now: i64,
) -> StoreResult<SegmentRow> {
    let (_w, mut tx) = begin_write(s).await?;
    let res: StoreResult<_> = async {
        rules::check_new_segment(&all_segments(&mut tx).await?, &seg)?;
        let v = bump(&mut tx).await?;
        let id = secret::new_id();
        sqlx::query(
            "INSERT INTO segments (id, name, net, prefix, default_action, psk, psk_version, version, created_at, net6) \
             VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $9)",
        )
        .bind(&id)
        .bind(&seg.name)
        .bind(seg.net.map(|n| u32::from(n.network()) as i64))
        .bind(seg.net.map(|n| n.prefix_len() as i64))
        .bind(default_to_str(seg.default))
        .bind(&seg.psk)
        .bind(v)
        .bind(now)
        .bind(seg.net6.map(|n| n.to_string()))
        .execute(&mut *tx)
        .await?;
        let row = segment_by_name(&mut tx, &seg.name).await?;
        let target = format!("segment:{}", row.name);
        record(&mut tx, Change::new("segment.create", target, None, Some(audit::segment(&row)))).await?;
        Ok(row)
    }
    .await;
    finish(tx, res).await
}

pub(super) async fn list_segments(s: &Backend) -> StoreResult<Vec<SegmentRow>> {
    let rows = sqlx::query(&format!("{SEGMENT_SELECT} ORDER BY s.name"))
        .fetch_all(&s.pool)
        .await?;
    rows.iter().map(segment_row).collect()
}

pub(super) async fn get_segment(s: &Backend, name: &str) -> StoreResult<SegmentRow> {
    segment_by_name(&mut *s.pool.acquire().await?, name).await
}

pub(super) async fn delete_segment(
    s: &Backend,
    name: &str,
    force: bool,
    _now: i64,
) -> StoreResult<Touched> {
    let (_w, mut tx) = begin_write(s).await?;
    let res: StoreResult<_> = async {
        let seg = segment_by_name(&mut tx, name).await?;
        if seg.members > 0 && !force {
            return Err(StoreError::Conflict(format!(
                "segment {name:?} still has {} member(s); detach them first or delete with --force",
                seg.members
            )));
        }
        let touched = nodes_in_segment(&mut tx, &seg.id).await?;
        // Everything that belongs to the segment goes with it, before the segment row.
        for table in [
            "members",
            "released_addresses",
            "released_addresses6",
            "member_name_claims",
            "policy_history",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE segment_id = $1"))
                .bind(&seg.id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM segments WHERE id = $1")
            .bind(&seg.id)
            .execute(&mut *tx)
            .await?;
        // Grants and scopes name segments: drop this one from every token, node and API
        // key, so a segment re-created under the same name starts with no access at all.
        for table in ["tokens", "nodes", "api_keys"] {
            sqlx::query(&format!(
                "UPDATE {table} SET segments = (SELECT {agg} FROM {values} WHERE value <> $1) \
                 WHERE segments IS NOT NULL AND EXISTS (SELECT 1 FROM {values} WHERE value = $1)",
                agg = dialect::JSON_ARRAY_AGG,
                values = dialect::json_values(&format!("{table}.segments")),
            ))
            .bind(&seg.name)
            .execute(&mut *tx)
            .await?;
        }
        for n in &touched {
            let v = bump(&mut tx).await?;
            set_node_version(&mut tx, n, v).await?;
        }
        let target = format!("segment:{}", seg.name);
        record(
            &mut tx,
            Change::new("segment.delete", target, Some(audit::segment(&seg)), None),
        )
        .await?;
        Ok(touched)
    }
    .await;
    finish(tx, res).await
}

pub(super) async fn rotate_psk(
    s: &Backend,
    name: &str,
    psk: String,
    now: i64,
) -> StoreResult<(SegmentRow, Touched)> {
    let (_w, mut tx) = begin_write(s).await?;
    let res: StoreResult<_> = async {
        let seg = segment_by_name(&mut tx, name).await?;
        let v = bump(&mut tx).await?;
        // Whatever phase a rotation was in, a new one starts at `accepting` with the
        // current key kept for initiating: a `switched` rotation's previous key retires.
        sqlx::query(
            "UPDATE segments SET psk_next = $1, psk_previous = NULL, rotation_phase = 'accepting', \
             rotation_version = $2, rotation_since = $3, psk_version = psk_version + 1, version = $2 \
             WHERE id = $4",
        )
        .bind(&psk)
        .bind(v)
        .bind(now)
        .bind(&seg.id)
        .execute(&mut *tx)
        .await?;
        let touched = nodes_in_segment(&mut tx, &seg.id).await?;
        let row = segment_by_name(&mut tx, name).await?;
        let change = Change::new(
            "segment.rotate_key",
            format!("segment:{}", row.name),
            Some(audit::segment(&seg)),
            Some(audit::segment(&row)),
        );
        record(&mut tx, change).await?;
        Ok((row, touched))
    }
    .await;
    finish(tx, res).await
}

pub(super) async fn advance_rotation(
    s: &Backend,
    segment_id: &str,
    phase: RotationPhase,
    version: i64,
    now: i64,
) -> StoreResult<Option<(SegmentRow, Touched)>> {
    let (_w, mut tx) = begin_write(s).await?;
    let res: StoreResult<_> = async {
        let v = bump(&mut tx).await?;
        let sql = match phase {
            RotationPhase::Accepting => {
                "UPDATE segments SET psk_previous = psk, psk = psk_next, psk_next = NULL, \
                 rotation_phase = 'switched', rotation_version = $1, rotation_since = $2, version = $1 \
                 WHERE id = $3 AND rotation_phase = 'accepting' AND rotation_version = $4"
            }
            RotationPhase::Switched => {
                "UPDATE segments SET psk_previous = NULL, rotation_phase = NULL, \
                 rotation_version = $1, rotation_since = $2, version = $1 \
                 WHERE id = $3 AND rotation_phase = 'switched' AND rotation_version = $4"
            }
        };
        let done = sqlx::query(sql)
            .bind(v)
            .bind(now)
            .bind(segment_id)
            .bind(version)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if done == 0 {
            return Ok(None);
        }
        let row = segment_row(
            &sqlx::query(&format!("{SEGMENT_SELECT} WHERE s.id = $1"))
                .bind(segment_id)
                .fetch_one(&mut *tx)
                .await?,
        )?;
        let touched = nodes_in_segment(&mut tx, segment_id).await?;
        let action = match phase {
            RotationPhase::Accepting => "segment.key_switched",
            RotationPhase::Switched => "segment.key_retired",
        };
        let change = Change::new(
            action,
            format!("segment:{}", row.name),
            None,
            Some(audit::segment(&row)),
        );
        record(&mut tx, change).await?;
        Ok(Some((row, touched)))
    }
    .await;
    match res {
        // Nothing moved: give the counter value back rather than burn it.
        Ok(None) => {
            tx.rollback().await?;
            Ok(None)
        }
        res => finish(tx, res).await,
    }
}

pub(super) async fn rotating_segments(s: &Backend) -> StoreResult<Vec<SegmentRow>> {
    let mut conn = s.pool.acquire().await?;
    let rows = sqlx::query(&format!(
        "{SEGMENT_SELECT} WHERE s.rotation_phase IS NOT NULL ORDER BY s.name"
    ))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(segment_row).collect()
}

pub(super) async fn add_prefix(
    s: &Backend,
    name: &str,
    net: IpNet,
    _now: i64,
) -> StoreResult<(SegmentRow, Touched)> {
    let (_w, mut tx) = begin_write(s).await?;
    let res: StoreResult<_> = async {
        let seg = segment_by_name(&mut tx, name).await?;
        let have = match net {
            IpNet::V4(_) => seg.net.map(IpNet::V4),
            IpNet::V6(_) => seg.net6.map(IpNet::V6),
        };
        if let Some(have) = have {
            return Err(StoreError::Conflict(format!(
                "segment {name:?} already has the {} {have}; a segment has at most one and keeps it",
                rules::family(net)
            )));
        }
        rules::check_prefix(&all_segments(&mut tx).await?, name, net)?;
        let v = bump(&mut tx).await?;
        // The new prefix next to the one the segment has (IPv4 is stored as network
        // number and length, IPv6 as text).
        let (net4, net6) = match net {
            IpNet::V4(n) => (Some(n), seg.net6),
            IpNet::V6(n) => (seg.net, Some(n)),
        };
        sqlx::query(
            "UPDATE segments SET net = $1, prefix = $2, net6 = $3, version = $4 WHERE id = $5",
        )
        .bind(net4.map(|n| u32::from(n.network()) as i64))
        .bind(net4.map(|n| n.prefix_len() as i64))
        .bind(net6.map(|n| n.to_string()))
        .bind(v)
        .bind(&seg.id)
        .execute(&mut *tx)
        .await?;
        let row = segment_by_name(&mut tx, name).await?;
        // Every member, in address order, gets the lowest free address of the new family.
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM members WHERE segment_id = $1 ORDER BY address, address6",
        )
        .bind(&seg.id)
        .fetch_all(&mut *tx)
        .await?;
        for id in &ids {
            match net {
                IpNet::V4(_) => {
                    let a = allocate_address(&mut tx, &row, i64::MIN).await?;
                    sqlx::query("UPDATE members SET address = $1 WHERE id = $2")
                        .bind(a.map(|a| u32::from(a) as i64))
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                IpNet::V6(_) => {
                    let a6 = allocate_address6(&mut tx, &row, i64::MIN).await?;
                    sqlx::query("UPDATE members SET address6 = $1 WHERE id = $2")
                        .bind(a6.map(|a| a.to_string()))
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        let touched = nodes_in_segment(&mut tx, &seg.id).await?;
        for n in &touched {
            set_node_version(&mut tx, n, v).await?;
        }
        let change = Change::new(
            "segment.update",
            format!("segment:{}", row.name),
            Some(audit::segment(&seg)),
            Some(audit::segment(&row)),
        );
        record(&mut tx, change).await?;
        Ok((row, touched))
    }
    .await;
    finish(tx, res).await
}

pub(super) async fn set_policy(
    s: &Backend,
    name: &str,
    body: String,
    default: DefaultAction,
    now: i64,
) -> StoreResult<(SegmentRow, Touched)> {
    let (_w, mut tx) = begin_write(s).await?;
    let res: StoreResult<_> = async {
        let seg = segment_by_name(&mut tx, name).await?;
        let v = bump(&mut tx).await?;
        let pv = seg.policy_version + 1;
        sqlx::query(
            "UPDATE segments SET policy = $1, policy_version = $2, default_action = $3, version = $4 WHERE id = $5",
        )
        .bind(&body)
        .bind(pv)
        .bind(default_to_str(default))
        .bind(v)
        .bind(&seg.id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO policy_history (segment_id, version, body, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&seg.id)
        .bind(pv)
        .bind(&body)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let touched = nodes_in_segment(&mut tx, &seg.id).await?;
        let row = segment_by_name(&mut tx, name).await?;
        let change = Change::new(
            "policy.set",
            format!("segment:{}", row.name),
            seg.policy.as_deref().and_then(|p| serde_json::from_str(p).ok()),
            serde_json::from_str(&body).ok(),
        );
        record(&mut tx, change).await?;
        Ok((row, touched))
    }
    .await;
    finish(tx, res).await
}
