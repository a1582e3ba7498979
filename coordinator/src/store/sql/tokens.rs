//! Join tokens: create, list, revoke (enrolment consumes them in `nodes`).

use super::rows::{to_json, token_row, TOKEN_SELECT};
use super::tx::begin_write;
use super::tx::finish;
use super::{record, Backend};
use crate::store::audit::{self, Change};
use crate::store::{StoreError, StoreResult, TokenRow};

pub(super) async fn create_token(s: &Backend, t: TokenRow) -> StoreResult<()> {
    let (_w, mut tx) = begin_write(s).await?;
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

pub(super) async fn list_tokens(s: &Backend) -> StoreResult<Vec<TokenRow>> {
    let rows = sqlx::query(&format!("{TOKEN_SELECT} ORDER BY created_at DESC, id"))
        .fetch_all(&s.pool)
        .await?;
    rows.iter().map(token_row).collect()
}

pub(super) async fn revoke_token(s: &Backend, id: &str, now: i64) -> StoreResult<()> {
    let (_w, mut tx) = begin_write(s).await?;
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
