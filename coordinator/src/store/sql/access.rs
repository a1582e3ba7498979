//! The SQL implementation (both backends) of [`AccessStore`], and the in-transaction audit append that the
//! write methods of [`super::Backend`] call just before they commit.

use async_trait::async_trait;
use segwire_proto::access::Role;
use sqlx::Row;

use super::rows::{from_json, to_json};
use super::tx::begin_write;
use super::tx::{finish, Tx};
use super::{Backend, DbRow};
use crate::convert::now;
use crate::store::access::{AccessStore, AuditQuery, AuditRow, EventRow, KeyRow};
use crate::store::audit::{self, Change};
use crate::store::{StoreError, StoreResult};

const KEY_SELECT: &str = "SELECT id, secret_hash, role, segments, description, created_at, \
    expires_at, revoked_at FROM api_keys";

/// Appends `change` to the audit log inside `tx`, if the current request has an audit
/// context (see [`audit::scope`]); otherwise does nothing.
pub(super) async fn record(tx: &mut Tx<'_>, change: Change) -> StoreResult<()> {
    let Some(ctx) = audit::current() else {
        return Ok(());
    };
    let actor = change.actor.clone().unwrap_or_else(|| ctx.actor.clone());
    insert(tx, &actor, ctx.source.as_deref(), &change).await?;
    ctx.mark_appended();
    Ok(())
}

async fn insert(tx: &mut Tx<'_>, actor: &str, source: Option<&str>, c: &Change) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (id, at, actor, source, action, target, before, after) \
         VALUES ((SELECT COALESCE(MAX(id), 0) + 1 FROM audit_log), $1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(now())
    .bind(actor)
    .bind(source)
    .bind(&c.action)
    .bind(&c.target)
    .bind(c.before.as_ref().map(to_json))
    .bind(c.after.as_ref().map(to_json))
    .execute(&mut **tx)
    .await?;
    metrics::counter!("segwire_audit_records_total").increment(1);
    Ok(())
}

fn key_row(r: &DbRow) -> StoreResult<KeyRow> {
    let role: String = r.try_get("role")?;
    let segments: Option<String> = r.try_get("segments")?;
    Ok(KeyRow {
        id: r.try_get("id")?,
        secret_hash: r.try_get("secret_hash")?,
        role: role.parse().map_err(StoreError::Corrupt)?,
        segments: segments.as_deref().map(from_json).transpose()?,
        description: r.try_get("description")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

async fn insert_key(tx: &mut Tx<'_>, k: &KeyRow) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO api_keys (id, secret_hash, role, description, created_at, segments, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&k.id)
    .bind(&k.secret_hash)
    .bind(k.role.as_str())
    .bind(&k.description)
    .bind(k.created_at)
    .bind(k.segments.as_ref().map(to_json))
    .bind(k.expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn key_in(tx: &mut Tx<'_>, id: &str) -> StoreResult<KeyRow> {
    let row = sqlx::query(&format!("{KEY_SELECT} WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no API key with id {id:?}")))?;
    key_row(&row)
}

async fn revoke_in(tx: &mut Tx<'_>, id: &str, now: i64) -> StoreResult<(KeyRow, KeyRow)> {
    let before = key_in(tx, id).await?;
    if before.role == Role::Admin && before.is_live(now) {
        let others: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM api_keys WHERE role = 'admin' AND id <> $1 AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(id)
        .bind(now)
        .fetch_one(&mut **tx)
        .await?;
        if others == 0 {
            return Err(StoreError::Conflict(
                "this is the last live admin key; create another admin key first (or use `segwire apikey rotate`)".into(),
            ));
        }
    }
    sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    let after = key_in(tx, id).await?;
    Ok((before, after))
}

#[async_trait]
impl AccessStore for Backend {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query_scalar::<_, i64>("SELECT CAST(1 AS BIGINT)")
            .fetch_one(&self.pool)
            .await?;
        Ok(())
    }

    async fn create_key(&self, key: KeyRow) -> StoreResult<()> {
        let (_w, mut tx) = begin_write(self).await?;
        let res = async {
            insert_key(&mut tx, &key).await?;
            let target = format!("apikey:{}", key.id);
            let change = Change::new("apikey.create", target, None, Some(audit::api_key(&key)));
            record(&mut tx, change).await
        }
        .await;
        finish(tx, res).await
    }

    async fn key(&self, id: &str) -> StoreResult<Option<KeyRow>> {
        let row = sqlx::query(&format!("{KEY_SELECT} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(key_row).transpose()
    }

    async fn list_keys(&self) -> StoreResult<Vec<KeyRow>> {
        let rows = sqlx::query(&format!("{KEY_SELECT} ORDER BY created_at DESC, id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(key_row).collect()
    }

    async fn revoke_key(&self, id: &str, now: i64) -> StoreResult<KeyRow> {
        let (_w, mut tx) = begin_write(self).await?;
        let res = async {
            let (before, after) = revoke_in(&mut tx, id, now).await?;
            let change = Change::new(
                "apikey.revoke",
                format!("apikey:{id}"),
                Some(audit::api_key(&before)),
                Some(audit::api_key(&after)),
            );
            record(&mut tx, change).await?;
            Ok(after)
        }
        .await;
        finish(tx, res).await
    }

    async fn rotate_key(&self, old_id: &str, new: KeyRow, now: i64) -> StoreResult<()> {
        let (_w, mut tx) = begin_write(self).await?;
        let res = async {
            insert_key(&mut tx, &new).await?;
            let (before, _) = revoke_in(&mut tx, old_id, now).await?;
            let change = Change::new(
                "apikey.rotate",
                format!("apikey:{old_id}"),
                Some(audit::api_key(&before)),
                Some(audit::api_key(&new)),
            );
            record(&mut tx, change).await
        }
        .await;
        finish(tx, res).await
    }

    async fn append_audit(&self, change: Change) -> StoreResult<()> {
        let (_w, mut tx) = begin_write(self).await?;
        let res = record(&mut tx, change).await;
        finish(tx, res).await
    }

    async fn audit(&self, q: AuditQuery) -> StoreResult<Vec<AuditRow>> {
        let rows = sqlx::query(
            "SELECT * FROM (SELECT id, at, actor, source, action, target, before, after FROM audit_log \
             WHERE at >= $1 AND ($2 IS NULL OR actor = $2) AND ($3 IS NULL OR substr(target, 1, length($3)) = $3) \
             ORDER BY id DESC LIMIT $4) AS newest ORDER BY id",
        )
        .bind(q.since.unwrap_or(0))
        .bind(q.actor)
        .bind(q.target)
        .bind(q.limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRow {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    source: r.try_get("source")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    before: r.try_get("before")?,
                    after: r.try_get("after")?,
                })
            })
            .collect()
    }

    async fn append_event(
        &self,
        kind: &str,
        subject: &str,
        data: &str,
        now: i64,
    ) -> StoreResult<EventRow> {
        let (_w, mut tx) = begin_write(self).await?;
        let res = sqlx::query_scalar(
            "INSERT INTO events (id, at, kind, subject, data) \
             VALUES ((SELECT COALESCE(MAX(id), 0) + 1 FROM events), $1, $2, $3, $4) RETURNING id",
        )
        .bind(now)
        .bind(kind)
        .bind(subject)
        .bind(data)
        .fetch_one(&mut *tx)
        .await
        .map_err(StoreError::from);
        let id: i64 = finish(tx, res).await?;
        Ok(EventRow {
            id,
            at: now,
            kind: kind.into(),
            subject: subject.into(),
            data: data.into(),
        })
    }

    async fn events(&self, since: i64, limit: i64) -> StoreResult<Vec<EventRow>> {
        let rows = sqlx::query(
            "SELECT id, at, kind, subject, data FROM events WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(since)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EventRow {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    kind: r.try_get("kind")?,
                    subject: r.try_get("subject")?,
                    data: r.try_get("data")?,
                })
            })
            .collect()
    }
}
