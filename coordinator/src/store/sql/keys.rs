//! The bootstrap admin key (all other key handling is in `access`).

use super::Backend;
use crate::store::StoreResult;

pub(super) async fn create_api_key(
    s: &Backend,
    id: &str,
    hash: &str,
    role: &str,
    description: &str,
    now: i64,
) -> StoreResult<()> {
    let _w = s.write.lock().await;
    sqlx::query(
        "INSERT INTO api_keys (id, secret_hash, role, description, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(hash)
    .bind(role)
    .bind(description)
    .bind(now)
    .execute(&s.pool)
    .await?;
    Ok(())
}
