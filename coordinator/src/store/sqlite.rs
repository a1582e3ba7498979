//! SQLite implementation of [`Store`]: WAL journal, `synchronous=FULL`, versioned
//! migrations from `coordinator/migrations`. Writers are serialised by one async mutex so
//! that every write transaction sees the latest state (SQLite allows one writer anyway),
//! while readers run in parallel on the pool.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use ipnet::Ipv4Net;
use segwire_proto::api::{DefaultAction, Labels};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, SqliteConnection, SqlitePool, Transaction};
use tokio::sync::Mutex;

use super::*;
use crate::{ipam, secret};

mod access;
mod flows;
mod peers;
use self::access::record;
use super::audit::{self, Change};

/// The SQLite store.
pub struct SqliteStore {
    pool: SqlitePool,
    write: Mutex<()>,
}

type Tx<'a> = Transaction<'a, Sqlite>;

const SEGMENT_SELECT: &str = "SELECT s.id, s.name, s.net, s.prefix, s.default_action, s.psk, \
    s.psk_version, s.version, s.created_at, s.policy, s.policy_version, \
    (SELECT COUNT(*) FROM members m WHERE m.segment_id = s.id) AS members FROM segments s";

const NODE_SELECT: &str = "SELECT n.id, n.name, n.public_key, n.cred_hash, n.segments, n.labels, \
    n.endpoints, n.observed, n.created_at, n.last_seen, n.version, \
    (SELECT COUNT(*) FROM members m WHERE m.node_id = n.id) AS members \
    FROM nodes n WHERE n.revoked_at IS NULL AND n.kind = 'agent'";

const MEMBER_SELECT: &str = "SELECT m.id, m.node_id, n.name AS node_name, m.segment_id, \
    s.name AS segment, m.name, m.workload, m.address, m.public_key, m.listen_port, m.endpoints, \
    m.labels, m.created_at FROM members m JOIN nodes n ON n.id = m.node_id \
    JOIN segments s ON s.id = m.segment_id";

const TOKEN_SELECT: &str =
    "SELECT id, secret_hash, segments, labels, uses, uses_left, created_at, \
    expires_at, revoked_at FROM tokens";

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        Self::connect(opts).await
    }

    /// Opens a store from a `sqlite://` URL.
    pub async fn open_url(url: &str) -> StoreResult<Self> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        Self::connect(opts).await
    }

    async fn connect(opts: SqliteConnectOptions) -> StoreResult<Self> {
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(SqliteStore {
            pool,
            write: Mutex::new(()),
        })
    }
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

fn from_json<T: DeserializeOwned>(s: &str) -> StoreResult<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn default_to_str(d: DefaultAction) -> &'static str {
    match d {
        DefaultAction::Allow => "allow",
        DefaultAction::Deny => "deny",
    }
}

fn segment_row(r: &SqliteRow) -> StoreResult<SegmentRow> {
    let net = Ipv4Addr::from(r.try_get::<i64, _>("net")? as u32);
    let prefix: i64 = r.try_get("prefix")?;
    let default = match r.try_get::<String, _>("default_action")?.as_str() {
        "deny" => DefaultAction::Deny,
        _ => DefaultAction::Allow,
    };
    Ok(SegmentRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        net: Ipv4Net::new(net, prefix as u8).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        default,
        psk: r.try_get("psk")?,
        psk_version: r.try_get("psk_version")?,
        version: r.try_get("version")?,
        created_at: r.try_get("created_at")?,
        members: r.try_get("members")?,
        policy: r.try_get("policy")?,
        policy_version: r.try_get("policy_version")?,
    })
}

fn node_row(r: &SqliteRow) -> StoreResult<NodeRow> {
    Ok(NodeRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        public_key: r.try_get("public_key")?,
        cred_hash: r.try_get("cred_hash")?,
        segments: from_json(&r.try_get::<String, _>("segments")?)?,
        labels: from_json(&r.try_get::<String, _>("labels")?)?,
        endpoints: from_json(&r.try_get::<String, _>("endpoints")?)?,
        observed: r.try_get("observed")?,
        created_at: r.try_get("created_at")?,
        last_seen: r.try_get("last_seen")?,
        version: r.try_get("version")?,
        members: r.try_get("members")?,
    })
}

fn member_row(r: &SqliteRow) -> StoreResult<MemberRow> {
    Ok(MemberRow {
        id: r.try_get("id")?,
        node_id: r.try_get("node_id")?,
        node_name: r.try_get("node_name")?,
        segment_id: r.try_get("segment_id")?,
        segment: r.try_get("segment")?,
        name: r.try_get("name")?,
        workload: r.try_get("workload")?,
        address: Ipv4Addr::from(r.try_get::<i64, _>("address")? as u32),
        public_key: r.try_get("public_key")?,
        listen_port: r.try_get::<i64, _>("listen_port")? as u16,
        endpoints: from_json(&r.try_get::<String, _>("endpoints")?)?,
        labels: from_json(&r.try_get::<String, _>("labels")?)?,
        created_at: r.try_get("created_at")?,
    })
}

fn token_row(r: &SqliteRow) -> StoreResult<TokenRow> {
    Ok(TokenRow {
        id: r.try_get("id")?,
        secret_hash: r.try_get("secret_hash")?,
        segments: from_json(&r.try_get::<String, _>("segments")?)?,
        labels: from_json(&r.try_get::<String, _>("labels")?)?,
        uses: r.try_get("uses")?,
        uses_left: r.try_get("uses_left")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .map(|d| d.is_unique_violation())
        .unwrap_or(false)
}

/// Commits on success and rolls back on failure, at once: a dropped transaction would
/// keep SQLite's write lock until its connection is next used.
async fn finish<T>(tx: Tx<'_>, res: StoreResult<T>) -> StoreResult<T> {
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
async fn bump(tx: &mut Tx<'_>) -> StoreResult<i64> {
    let v: i64 = sqlx::query_scalar(
        "UPDATE counters SET value = value + 1 WHERE name = 'version' RETURNING value",
    )
    .fetch_one(&mut **tx)
    .await?;
    Ok(v)
}

async fn nodes_in_segment(tx: &mut Tx<'_>, segment_id: &str) -> StoreResult<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT DISTINCT node_id FROM members WHERE segment_id = $1")
            .bind(segment_id)
            .fetch_all(&mut **tx)
            .await?,
    )
}

/// A segment by name, in a transaction or on a plain connection.
async fn segment_by_name(conn: &mut SqliteConnection, name: &str) -> StoreResult<SegmentRow> {
    let row = sqlx::query(&format!("{SEGMENT_SELECT} WHERE s.name = $1"))
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no segment named {name:?}")))?;
    segment_row(&row)
}

/// A live node by id or name, in a transaction or on a plain connection.
async fn live_node(conn: &mut SqliteConnection, id_or_name: &str) -> StoreResult<NodeRow> {
    let row = sqlx::query(&format!("{NODE_SELECT} AND (n.id = $1 OR n.name = $1)"))
        .bind(id_or_name)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no enrolled node {id_or_name:?}")))?;
    node_row(&row)
}

async fn set_segment_version(tx: &mut Tx<'_>, segment_id: &str, v: i64) -> StoreResult<()> {
    sqlx::query("UPDATE segments SET version = $1 WHERE id = $2")
        .bind(v)
        .bind(segment_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn set_node_version(tx: &mut Tx<'_>, node_id: &str, v: i64) -> StoreResult<()> {
    sqlx::query("UPDATE nodes SET version = $1 WHERE id = $2")
        .bind(v)
        .bind(node_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn release_address(
    tx: &mut Tx<'_>,
    segment_id: &str,
    addr: Ipv4Addr,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO released_addresses (segment_id, address, released_at) VALUES ($1, $2, $3) \
         ON CONFLICT (segment_id, address) DO UPDATE SET released_at = excluded.released_at",
    )
    .bind(segment_id)
    .bind(u32::from(addr) as i64)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Picks a free overlay address of `seg` inside the caller's write transaction: never
/// one a member holds, nor one released after `released_after` (quarantine).
async fn allocate_address(
    tx: &mut Tx<'_>,
    seg: &SegmentRow,
    released_after: i64,
) -> StoreResult<Ipv4Addr> {
    let taken: HashSet<u32> =
        sqlx::query_scalar::<_, i64>("SELECT address FROM members WHERE segment_id = $1")
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
    ipam::allocate(seg.net, &taken, &quarantined).ok_or_else(|| {
        StoreError::Conflict(format!(
            "segment {:?} ({}) has no free address: {} in use, {} released recently and held back; detach unused members or use a larger network",
            seg.name, seg.net, taken.len(), quarantined.len()
        ))
    })
}

/// A readable default member name: `<node>` for the host, `<node>-<workload>` otherwise.
fn default_member_name(node: &str, workload: &str) -> String {
    let w = workload.rsplit('/').next().unwrap_or(workload);
    let mut s = if workload == "host" {
        node.to_string()
    } else {
        format!("{node}-{w}")
    };
    s = s
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s: String = s.trim_matches('-').chars().take(56).collect();
    if s.is_empty() {
        "member".into()
    } else {
        s
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_segment(&self, seg: NewSegment, now: i64) -> StoreResult<SegmentRow> {
        let _w = self.write.lock().await;
        let mut tx = self.pool.begin().await?;
        let res: StoreResult<_> = async {
            let existing = sqlx::query(&format!("{SEGMENT_SELECT} ORDER BY s.name"))
                .fetch_all(&mut *tx)
                .await?;
            for r in &existing {
                let other = segment_row(r)?;
                if other.name == seg.name {
                    return Err(StoreError::Conflict(format!(
                        "a segment named {:?} already exists",
                        seg.name
                    )));
                }
                if other.net.contains(&seg.net) || seg.net.contains(&other.net) {
                    return Err(StoreError::Conflict(format!(
                        "{} overlaps segment {:?} ({}); choose a network that does not overlap",
                        seg.net, other.name, other.net
                    )));
                }
            }
            let v = bump(&mut tx).await?;
            let id = secret::new_id();
            sqlx::query(
                "INSERT INTO segments (id, name, net, prefix, default_action, psk, psk_version, version, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8)",
            )
            .bind(&id)
            .bind(&seg.name)
            .bind(u32::from(seg.net.network()) as i64)
            .bind(seg.net.prefix_len() as i64)
            .bind(default_to_str(seg.default))
            .bind(&seg.psk)
            .bind(v)
            .bind(now)
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

    async fn list_segments(&self) -> StoreResult<Vec<SegmentRow>> {
        let rows = sqlx::query(&format!("{SEGMENT_SELECT} ORDER BY s.name"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(segment_row).collect()
    }

    async fn get_segment(&self, name: &str) -> StoreResult<SegmentRow> {
        segment_by_name(&mut *self.pool.acquire().await?, name).await
    }

    async fn delete_segment(&self, name: &str, force: bool, _now: i64) -> StoreResult<Touched> {
        let _w = self.write.lock().await;
        let mut tx = self.pool.begin().await?;
        let res: StoreResult<_> = async {
            let seg = segment_by_name(&mut tx, name).await?;
            if seg.members > 0 && !force {
                return Err(StoreError::Conflict(format!(
                    "segment {name:?} still has {} member(s); detach them first or delete with --force",
                    seg.members
                )));
            }
            let touched = nodes_in_segment(&mut tx, &seg.id).await?;
            sqlx::query("DELETE FROM members WHERE segment_id = $1")
                .bind(&seg.id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM released_addresses WHERE segment_id = $1")
                .bind(&seg.id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM policy_history WHERE segment_id = $1")
                .bind(&seg.id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM segments WHERE id = $1")
                .bind(&seg.id)
                .execute(&mut *tx)
                .await?;
            for n in &touched {
                let v = bump(&mut tx).await?;
                set_node_version(&mut tx, n, v).await?;
            }
            let target = format!("segment:{}", seg.name);
            record(&mut tx, Change::new("segment.delete", target, Some(audit::segment(&seg)), None)).await?;
            Ok(touched)
        }
        .await;
        finish(tx, res).await
    }

    async fn rotate_psk(&self, name: &str, psk: String) -> StoreResult<(SegmentRow, Touched)> {
        let _w = self.write.lock().await;
        let mut tx = self.pool.begin().await?;
        let res: StoreResult<_> = async {
            let seg = segment_by_name(&mut tx, name).await?;
            let v = bump(&mut tx).await?;
            sqlx::query(
                "UPDATE segments SET psk = $1, psk_version = psk_version + 1, version = $2 WHERE id = $3",
            )
            .bind(&psk)
            .bind(v)
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

    async fn set_policy(
        &self,
        name: &str,
        body: String,
        default: DefaultAction,
        now: i64,
    ) -> StoreResult<(SegmentRow, Touched)> {
        let _w = self.write.lock().await;
        let mut tx = self.pool.begin().await?;
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

    async fn create_token(&self, t: TokenRow) -> StoreResult<()> {
        let _w = self.write.lock().await;
        let mut tx = self.pool.begin().await?;
        let res: StoreResult<_> = async {
            sqlx::query(
                "INSERT INTO tokens (id, secret_hash, segments, labels, uses, uses_left, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&t.id)
            .bind(&t.secret_hash)
            .bind(to_json(&t.segments))
            .bind(to_json(&t.labels))
            .bind(t.uses)
            .bind(t.uses_left)
            .bind(t.created_at)
            .bind(t.expires_at)
            .execute(&mut *tx)
            .await?;
            let change = Change::new("token.create", format!("token:{}", t.id), None, Some(audit::token(&t)));
            record(&mut tx, change).await?;
            Ok(())
        }
        .await;
        finish(tx, res).await
    }

    async fn list_tokens(&self) -> StoreResult<Vec<TokenRow>> {
        let rows = sqlx::query(&format!("{TOKEN_SELECT} ORDER BY created_at DESC, id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(token_row).collect()
    }

    async fn revoke_token(&self, id: &str, now: i64) -> StoreResult<()> {
        let _w = self.write.lock().await;
        let mut tx = self.pool.begin().await?;
        let res: StoreResult<_> = async {
            let token_by_id = format!("{TOKEN_SELECT} WHERE id = $1");
            let before = match sqlx::query(&token_by_id)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
            {
                Some(r) => token_row(&r)?,
                None => return Err(StoreError::NotFound(format!("no token with id {id:?}"))),
            };
            sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let after = token_row(
                &sqlx::query(&token_by_id)
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?,
            )?;
            let change = Change::new(
                "token.revoke",
                format!("token:{id}"),
                Some(audit::token(&before)),
                Some(audit::token(&after)),
            );
            record(&mut tx, change).await?;
            Ok(())
        }
        .await;
        finish(tx, res).await
    }

    async fn enroll(&self, n: NewNode, now: i64) -> StoreResult<NodeRow> {
        let _w = self.write.lock().await;
        let mut tx = self.pool.begin().await?;
        let res: StoreResult<_> = async {
            let rejected = || {
                StoreError::TokenUnknown(
                    "the join token is not valid (unknown id or wrong secret); create a new one with `segwire token create`".into(),
                )
            };
            let row = sqlx::query(&format!("{TOKEN_SELECT} WHERE id = $1"))
                .bind(&n.token_id)
                .fetch_optional(&mut *tx)
                .await?;
            let token = match row {
                Some(r) => token_row(&r)?,
                None => {
                    // Spend the same work as a real check so the answer time does not tell.
                    let _ = secret::verify_secret(&n.token_secret, "");
                    return Err(rejected());
                }
            };
            if !secret::verify_secret(&n.token_secret, &token.secret_hash) {
                return Err(rejected());
            }
            if token.revoked_at.is_some() {
                return Err(StoreError::TokenRejected(
                    "this join token was revoked; ask an admin for a new one".into(),
                ));
            }
            if token.expires_at <= now {
                return Err(StoreError::TokenRejected(
                    "this join token has expired; ask an admin for a new one".into(),
                ));
            }
            let consumed = sqlx::query(
                "UPDATE tokens SET uses_left = uses_left - 1 WHERE id = $1 AND uses_left > 0 AND revoked_at IS NULL",
            )
            .bind(&token.id)
            .execute(&mut *tx)
            .await?;
            if consumed.rows_affected() != 1 {
                return Err(StoreError::TokenRejected(
                    "this join token has been used up; ask an admin for a new one".into(),
                ));
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

    async fn list_nodes(&self) -> StoreResult<Vec<NodeRow>> {
        let rows = sqlx::query(&format!("{NODE_SELECT} ORDER BY n.name"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(node_row).collect()
    }

    async fn get_node(&self, id_or_name: &str) -> StoreResult<NodeRow> {
        live_node(&mut *self.pool.acquire().await?, id_or_name).await
    }

    async fn node_for_auth(&self, id: &str) -> StoreResult<Option<NodeRow>> {
        let row = sqlx::query(&format!("{NODE_SELECT} AND n.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(node_row).transpose()
    }

    async fn revoked_node_cred(&self, id: &str) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT cred_hash FROM nodes WHERE id = $1 AND revoked_at IS NOT NULL AND kind = 'agent'",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn revoke_node(&self, id_or_name: &str, now: i64) -> StoreResult<(NodeRow, Touched)> {
        let _w = self.write.lock().await;
        let mut tx = self.pool.begin().await?;
        let res: StoreResult<_> = async {
            let node = live_node(&mut tx, id_or_name).await?;
            let members: Vec<MemberRow> =
                sqlx::query(&format!("{MEMBER_SELECT} WHERE m.node_id = $1"))
                    .bind(&node.id)
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(member_row)
                    .collect::<StoreResult<_>>()?;
            let mut touched: HashSet<String> = HashSet::new();
            for m in &members {
                touched.extend(nodes_in_segment(&mut tx, &m.segment_id).await?);
                release_address(&mut tx, &m.segment_id, m.address, now).await?;
                sqlx::query("DELETE FROM members WHERE id = $1")
                    .bind(&m.id)
                    .execute(&mut *tx)
                    .await?;
                let v = bump(&mut tx).await?;
                set_segment_version(&mut tx, &m.segment_id, v).await?;
            }
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

    async fn set_endpoints(
        &self,
        node_id: &str,
        endpoints: Vec<String>,
        observed: Option<String>,
        now: i64,
    ) -> StoreResult<Touched> {
        let _w = self.write.lock().await;
        let mut tx = self.pool.begin().await?;
        let res: StoreResult<_> = async {
            let node = live_node(&mut tx, node_id).await?;
            let observed = observed.or(node.observed.clone());
            sqlx::query(
                "UPDATE nodes SET endpoints = $1, observed = $2, last_seen = $3 WHERE id = $4",
            )
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
            if node.endpoints == endpoints && node.observed == observed {
                return Ok(Vec::new());
            }
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

    async fn touch_node(
        &self,
        node_id: &str,
        observed: Option<String>,
        now: i64,
    ) -> StoreResult<()> {
        let _w = self.write.lock().await;
        sqlx::query(
            "UPDATE nodes SET last_seen = $1, observed = COALESCE($2, observed) WHERE id = $3",
        )
        .bind(now)
        .bind(observed)
        .bind(node_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn attach(&self, m: NewMember, now: i64) -> StoreResult<(MemberRow, Touched)> {
        let _w = self.write.lock().await;
        let mut tx = self.pool.begin().await?;
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
                    let addr = allocate_address(&mut tx, &seg, now - m.quarantine_secs).await?;
                    let names: HashSet<String> =
                        sqlx::query_scalar("SELECT name FROM members WHERE segment_id = $1")
                            .bind(&seg.id)
                            .fetch_all(&mut *tx)
                            .await?
                            .into_iter()
                            .collect();
                    let name = match &m.name {
                        Some(n) if names.contains(n) => {
                            return Err(StoreError::Conflict(format!(
                                "segment {:?} already has a member named {n:?}",
                                seg.name
                            )))
                        }
                        Some(n) => n.clone(),
                        None => {
                            let base = default_member_name(&node.name, &m.workload);
                            (1..)
                                .map(|i| if i == 1 { base.clone() } else { format!("{base}-{i}") })
                                .find(|c| !names.contains(c))
                                .unwrap_or(base)
                        }
                    };
                    let id = secret::new_id();
                    let res = sqlx::query(
                        "INSERT INTO members (id, node_id, segment_id, name, workload, address, public_key, listen_port, endpoints, labels, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                    )
                    .bind(&id)
                    .bind(&node.id)
                    .bind(&seg.id)
                    .bind(&name)
                    .bind(&m.workload)
                    .bind(u32::from(addr) as i64)
                    .bind(&m.public_key)
                    .bind(m.listen_port as i64)
                    .bind(to_json(&m.endpoints))
                    .bind(to_json(&labels))
                    .bind(now)
                    .execute(&mut *tx)
                    .await;
                    if let Err(e) = res {
                        return Err(if is_unique_violation(&e) {
                            StoreError::Conflict("another member of this segment already uses that public key".into())
                        } else {
                            e.into()
                        });
                    }
                    sqlx::query("DELETE FROM released_addresses WHERE segment_id = $1 AND address = $2")
                        .bind(&seg.id)
                        .bind(u32::from(addr) as i64)
                        .execute(&mut *tx)
                        .await?;
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

    async fn detach(&self, node_id: &str, member_id: &str, now: i64) -> StoreResult<Touched> {
        let _w = self.write.lock().await;
        let mut tx = self.pool.begin().await?;
        let res: StoreResult<_> = async {
            let row = sqlx::query(&format!(
                "{MEMBER_SELECT} WHERE m.id = $1 AND m.node_id = $2"
            ))
            .bind(member_id)
            .bind(node_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| {
                StoreError::NotFound(format!("this node has no member {member_id:?}"))
            })?;
            let m = member_row(&row)?;
            let touched = nodes_in_segment(&mut tx, &m.segment_id).await?;
            sqlx::query("DELETE FROM members WHERE id = $1")
                .bind(&m.id)
                .execute(&mut *tx)
                .await?;
            release_address(&mut tx, &m.segment_id, m.address, now).await?;
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

    async fn list_members(&self, segment: Option<&str>) -> StoreResult<Vec<MemberRow>> {
        let rows = match segment {
            Some(s) => {
                sqlx::query(&format!(
                    "{MEMBER_SELECT} WHERE s.name = $1 ORDER BY s.name, m.address"
                ))
                .bind(s)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!("{MEMBER_SELECT} ORDER BY s.name, m.address"))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(member_row).collect()
    }

    async fn node_version(&self, node_id: &str) -> StoreResult<i64> {
        let v: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(v) FROM (SELECT version AS v FROM nodes WHERE id = $1 \
             UNION ALL SELECT s.version AS v FROM segments s \
             WHERE s.id IN (SELECT segment_id FROM members WHERE node_id = $1)) AS versions",
        )
        .bind(node_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(v.unwrap_or(0))
    }

    async fn netmap_rows(&self, node_id: &str) -> StoreResult<NetmapRows> {
        let mut tx = self.pool.begin().await?;
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

    async fn create_api_key(
        &self,
        id: &str,
        hash: &str,
        role: &str,
        description: &str,
        now: i64,
    ) -> StoreResult<()> {
        let _w = self.write.lock().await;
        sqlx::query(
            "INSERT INTO api_keys (id, secret_hash, role, description, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(hash)
        .bind(role)
        .bind(description)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
