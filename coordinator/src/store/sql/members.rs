//! Members: attach (address allocation and naming by [`rules`]), detach, list.

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::nodes::live_node;
use super::rows::{is_unique_violation, member_row, to_json, MEMBER_SELECT};
use super::segments::segment_by_name;
use super::tx::begin_write;
use super::tx::{bump, finish, set_node_version, set_segment_version, Tx};
use super::{record, Backend};
use crate::secret;
use crate::store::audit::{self, Change};
use crate::store::{
    rules, Labels, MemberRow, NewMember, NodeRow, SegmentRow, StoreError, StoreResult, Touched,
};

pub(super) async fn nodes_in_segment(
    tx: &mut Tx<'_>,
    segment_id: &str,
) -> StoreResult<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT DISTINCT node_id FROM members WHERE segment_id = $1")
            .bind(segment_id)
            .fetch_all(&mut **tx)
            .await?,
    )
}

/// Starts the quarantine of a departing member's addresses (each family it holds).
pub(super) async fn release_address(tx: &mut Tx<'_>, m: &MemberRow, now: i64) -> StoreResult<()> {
    if let Some(a) = m.address {
        sqlx::query(
            "INSERT INTO released_addresses (segment_id, address, released_at) VALUES ($1, $2, $3) \
             ON CONFLICT (segment_id, address) DO UPDATE SET released_at = excluded.released_at",
        )
        .bind(&m.segment_id)
        .bind(u32::from(a) as i64)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    if let Some(a6) = m.address6 {
        sqlx::query(
            "INSERT INTO released_addresses6 (segment_id, address, released_at) VALUES ($1, $2, $3) \
             ON CONFLICT (segment_id, address) DO UPDATE SET released_at = excluded.released_at",
        )
        .bind(&m.segment_id)
        .bind(a6.to_string())
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Picks a free IPv6 overlay address of `seg` (`None` without an IPv6 prefix) inside the
/// caller's write transaction, by the rules of [`allocate_address`], and takes it out of
/// quarantine bookkeeping.
pub(super) async fn allocate_address6(
    tx: &mut Tx<'_>,
    seg: &SegmentRow,
    released_after: i64,
) -> StoreResult<Option<Ipv6Addr>> {
    if seg.net6.is_none() {
        return Ok(None);
    }
    let parse = |v: Vec<String>| -> HashSet<Ipv6Addr> {
        v.into_iter().filter_map(|a| a.parse().ok()).collect()
    };
    let taken = parse(
        sqlx::query_scalar(
            "SELECT address6 FROM members WHERE segment_id = $1 AND address6 IS NOT NULL",
        )
        .bind(&seg.id)
        .fetch_all(&mut **tx)
        .await?,
    );
    let quarantined = parse(
        sqlx::query_scalar(
            "SELECT address FROM released_addresses6 WHERE segment_id = $1 AND released_at > $2",
        )
        .bind(&seg.id)
        .bind(released_after)
        .fetch_all(&mut **tx)
        .await?,
    );
    let picked = rules::pick_address6(seg, &taken, &quarantined)?;
    if let Some(a6) = picked {
        sqlx::query("DELETE FROM released_addresses6 WHERE segment_id = $1 AND address = $2")
            .bind(&seg.id)
            .bind(a6.to_string())
            .execute(&mut **tx)
            .await?;
    }
    Ok(picked)
}

/// Whether a member name is free in a segment, held by a member, or kept by another
/// node's claim.
enum NameState {
    Free,
    Held,
    Claimed,
}

/// Where `name` stands in `seg` for a member of `node_id` (see [`rules::name_reserved`]);
/// a claim of another node that reserves nothing any more is forgotten on the way. Reads
/// one member row and one claim, whatever the segment's size.
async fn name_state(
    tx: &mut Tx<'_>,
    seg: &SegmentRow,
    node_id: &str,
    name: &str,
    released_after: i64,
    policy_names: &HashSet<String>,
) -> StoreResult<NameState> {
    let held: Option<String> =
        sqlx::query_scalar("SELECT id FROM members WHERE segment_id = $1 AND name = $2")
            .bind(&seg.id)
            .bind(name)
            .fetch_optional(&mut **tx)
            .await?;
    if held.is_some() {
        return Ok(NameState::Held);
    }
    let claim: Option<(Option<i64>, Option<i64>)> = sqlx::query_as(
        "SELECT c.released_at, n.revoked_at FROM member_name_claims c \
         LEFT JOIN nodes n ON n.id = c.node_id \
         WHERE c.segment_id = $1 AND c.name = $2 AND c.node_id <> $3",
    )
    .bind(&seg.id)
    .bind(name)
    .bind(node_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((released_at, revoked_at)) = claim else {
        return Ok(NameState::Free);
    };
    let claim = rules::NameClaim {
        name: name.to_string(),
        released_at,
        node_revoked: revoked_at.is_some(),
    };
    if rules::name_reserved(&claim, policy_names, released_after) {
        return Ok(NameState::Claimed);
    }
    sqlx::query("DELETE FROM member_name_claims WHERE segment_id = $1 AND name = $2")
        .bind(&seg.id)
        .bind(name)
        .execute(&mut **tx)
        .await?;
    Ok(NameState::Free)
}

/// The name of a new member of `node` in `seg`: the requested one if free, else a
/// `Conflict`; or the first free of [`rules::name_candidates`]. Asks about each candidate
/// in turn instead of reading every name of the segment (an attach stays cheap in a
/// segment of 10,000 members).
async fn pick_name(
    tx: &mut Tx<'_>,
    seg: &SegmentRow,
    node: &NodeRow,
    m: &NewMember,
    released_after: i64,
) -> StoreResult<String> {
    let policy_names = rules::policy_member_names(&crate::policy::effective(seg));
    let requested = m.name.as_deref();
    for candidate in rules::name_candidates(requested, &node.name, &m.workload) {
        let state =
            name_state(tx, seg, &node.id, &candidate, released_after, &policy_names).await?;
        match (state, requested) {
            (NameState::Free, _) => return Ok(candidate),
            (NameState::Held, Some(n)) => return Err(rules::name_held(&seg.name, n)),
            (NameState::Claimed, Some(n)) => return Err(rules::name_claimed(&seg.name, n)),
            _ => {}
        }
    }
    Err(StoreError::Conflict(format!(
        "no free member name in segment {:?}",
        seg.name
    )))
}

/// Records that `node_id` holds `name` in the segment now.
async fn claim_name(
    tx: &mut Tx<'_>,
    segment_id: &str,
    name: &str,
    node_id: &str,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO member_name_claims (segment_id, name, node_id, released_at) VALUES ($1, $2, $3, NULL) \
         ON CONFLICT (segment_id, name) DO UPDATE SET node_id = excluded.node_id, released_at = NULL",
    )
    .bind(segment_id)
    .bind(name)
    .bind(node_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The member holding `name` went away: its claim starts its quarantine.
pub(super) async fn release_name(
    tx: &mut Tx<'_>,
    segment_id: &str,
    name: &str,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE member_name_claims SET released_at = $1 WHERE segment_id = $2 AND name = $3",
    )
    .bind(now)
    .bind(segment_id)
    .bind(name)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Picks a free overlay address of `seg` (`None` without an IPv4 network) inside the
/// caller's write transaction: never one a member holds, nor one released after
/// `released_after` (quarantine); and takes it out of quarantine bookkeeping.
pub(super) async fn allocate_address(
    tx: &mut Tx<'_>,
    seg: &SegmentRow,
    released_after: i64,
) -> StoreResult<Option<Ipv4Addr>> {
    if seg.net.is_none() {
        return Ok(None);
    }
    let taken: HashSet<u32> =
        sqlx::query_scalar::<_, i64>(
            "SELECT address FROM members WHERE segment_id = $1 AND address IS NOT NULL",
        )
            .bind(&seg.id)
            .fetch_all(&mut **tx)
            .await?
            .into_iter()
            .map(|a| a as u32)
            .collect();
    let quarantined: HashSet<u32> = sqlx::query_scalar::<_, i64>(
        "SELECT address FROM released_addresses WHERE segment_id = $1 AND released_at > $2",
    )
    .bind(&seg.id)
    .bind(released_after)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(|a| a as u32)
    .collect();
    let picked = rules::pick_address(seg, &taken, &quarantined)?;
    if let Some(a) = picked {
        sqlx::query("DELETE FROM released_addresses WHERE segment_id = $1 AND address = $2")
            .bind(&seg.id)
            .bind(u32::from(a) as i64)
            .execute(&mut **tx)
            .await?;
    }
    Ok(picked)
}

pub(super) async fn attach(
    s: &Backend,
    m: NewMember,
    now: i64,
) -> StoreResult<(MemberRow, Touched)> {
    let (_w, mut tx) = begin_write(s).await?;
    let res: StoreResult<_> = async {
        let node = live_node(&mut tx, &m.node_id).await?;
        let seg = segment_by_name(&mut tx, &m.segment).await?;
        if !node.segments.iter().any(|s| s == &seg.name) {
            return Err(StoreError::Forbidden(format!(
                "this node's join token does not grant segment {:?}; enrol with a token for it",
                seg.name
            )));
        }
        let mut labels: Labels = m.labels.clone();
        labels.extend(node.labels.clone());
        let existing: Option<String> = sqlx::query_scalar(
            "SELECT id FROM members WHERE node_id = $1 AND segment_id = $2 AND workload = $3",
        )
        .bind(&node.id)
        .bind(&seg.id)
        .bind(&m.workload)
        .fetch_optional(&mut *tx)
        .await?;
        let member_id = match existing {
            Some(id) => {
                let row = sqlx::query(&format!("{MEMBER_SELECT} WHERE m.id = $1"))
                    .bind(&id)
                    .fetch_one(&mut *tx)
                    .await?;
                let old = member_row(&row)?;
                if old.public_key == m.public_key
                    && old.listen_port == m.listen_port
                    && old.endpoints == m.endpoints
                    && old.labels == labels
                {
                    // The same attach again (an agent restarting): nothing to write or audit.
                    return Ok((old, Vec::new()));
                }
                let res = sqlx::query(
                    "UPDATE members SET public_key = $1, listen_port = $2, endpoints = $3, labels = $4 WHERE id = $5",
                )
                .bind(&m.public_key)
                .bind(m.listen_port as i64)
                .bind(to_json(&m.endpoints))
                .bind(to_json(&labels))
                .bind(&id)
                .execute(&mut *tx)
                .await;
                if let Err(e) = res {
                    return Err(if is_unique_violation(&e) {
                        StoreError::Conflict("another member of this segment already uses that public key".into())
                    } else {
                        e.into()
                    });
                }
                id
            }
            None => {
                let held: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM members WHERE node_id = $1")
                    .bind(&node.id)
                    .fetch_one(&mut *tx)
                    .await?;
                if held >= m.max_members_per_node {
                    return Err(StoreError::Conflict(format!(
                        "this node already has {held} members, the most a node may have (--max-members-per-node); detach some first"
                    )));
                }
                let addr = allocate_address(&mut tx, &seg, now - m.quarantine_secs).await?;
                let addr6 = allocate_address6(&mut tx, &seg, now - m.quarantine_secs).await?;
                let name = pick_name(&mut tx, &seg, &node, &m, now - m.quarantine_secs).await?;
                claim_name(&mut tx, &seg.id, &name, &node.id).await?;
                let id = secret::new_id();
                let res = sqlx::query(
                    "INSERT INTO members (id, node_id, segment_id, name, workload, address, public_key, listen_port, endpoints, labels, created_at, address6) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .bind(&id)
                .bind(&node.id)
                .bind(&seg.id)
                .bind(&name)
                .bind(&m.workload)
                .bind(addr.map(|a| u32::from(a) as i64))
                .bind(&m.public_key)
                .bind(m.listen_port as i64)
                .bind(to_json(&m.endpoints))
                .bind(to_json(&labels))
                .bind(now)
                .bind(addr6.map(|a| a.to_string()))
                .execute(&mut *tx)
                .await;
                if let Err(e) = res {
                    return Err(if is_unique_violation(&e) {
                        StoreError::Conflict("another member of this segment already uses that public key".into())
                    } else {
                        e.into()
                    });
                }
                id
            }
        };
        let v = bump(&mut tx).await?;
        set_segment_version(&mut tx, &seg.id, v).await?;
        set_node_version(&mut tx, &node.id, v).await?;
        let row = sqlx::query(&format!("{MEMBER_SELECT} WHERE m.id = $1"))
            .bind(&member_id)
            .fetch_one(&mut *tx)
            .await?;
        let member = member_row(&row)?;
        let touched = nodes_in_segment(&mut tx, &seg.id).await?;
        let target = format!("member:{}", member.id);
        record(&mut tx, Change::new("member.attach", target, None, Some(audit::member(&member)))).await?;
        Ok((member, touched))
    }
    .await;
    finish(tx, res).await
}

pub(super) async fn detach(
    s: &Backend,
    node_id: &str,
    member_id: &str,
    now: i64,
) -> StoreResult<Touched> {
    let (_w, mut tx) = begin_write(s).await?;
    let res: StoreResult<_> = async {
        let row = sqlx::query(&format!(
            "{MEMBER_SELECT} WHERE m.id = $1 AND m.node_id = $2"
        ))
        .bind(member_id)
        .bind(node_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("this node has no member {member_id:?}")))?;
        let m = member_row(&row)?;
        let touched = nodes_in_segment(&mut tx, &m.segment_id).await?;
        sqlx::query("DELETE FROM members WHERE id = $1")
            .bind(&m.id)
            .execute(&mut *tx)
            .await?;
        release_address(&mut tx, &m, now).await?;
        release_name(&mut tx, &m.segment_id, &m.name, now).await?;
        let v = bump(&mut tx).await?;
        set_segment_version(&mut tx, &m.segment_id, v).await?;
        set_node_version(&mut tx, node_id, v).await?;
        let target = format!("member:{}", m.id);
        record(
            &mut tx,
            Change::new("member.detach", target, Some(audit::member(&m)), None),
        )
        .await?;
        Ok(touched)
    }
    .await;
    finish(tx, res).await
}

pub(super) async fn node_members(s: &Backend, node_id: &str) -> StoreResult<Vec<MemberRow>> {
    sqlx::query(&format!(
        "{MEMBER_SELECT} WHERE m.node_id = $1 ORDER BY s.name, m.address, m.address6"
    ))
    .bind(node_id)
    .fetch_all(&s.pool)
    .await?
    .iter()
    .map(member_row)
    .collect()
}

pub(super) async fn list_members(
    s: &Backend,
    segment: Option<&str>,
) -> StoreResult<Vec<MemberRow>> {
    let rows = match segment {
        Some(name) => {
            sqlx::query(&format!(
                "{MEMBER_SELECT} WHERE s.name = $1 ORDER BY s.name, m.address, m.address6"
            ))
            .bind(name)
            .fetch_all(&s.pool)
            .await?
        }
        None => {
            sqlx::query(&format!("{MEMBER_SELECT} ORDER BY s.name, m.address, m.address6"))
                .fetch_all(&s.pool)
                .await?
        }
    };
    rows.iter().map(member_row).collect()
}
