//! `/v1/tokens`: create (the token string is returned once), list, revoke.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use segwire_proto::api::{CreateToken, ErrorBody, TokenCreated, TokenInfo};
use segwire_proto::JoinToken;

use super::auth::Admin;
use super::error::{ApiError, ApiResult};
use super::json::ApiJson;
use super::validate;
use super::AppState;
use crate::convert::{self, now, rfc3339};
use crate::events::EventKind;
use crate::secret;
use crate::store::TokenRow;

/// Default token lifetime.
pub const DEFAULT_TTL_SECS: u64 = 3600;
/// Longest token lifetime.
pub const MAX_TTL_SECS: u64 = 30 * 24 * 3600;

/// Create a join token.
#[utoipa::path(post, path = "/v1/tokens", request_body = CreateToken,
    responses((status = 201, body = TokenCreated), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create(
    admin: Admin,
    State(st): State<AppState>,
    ApiJson(req): ApiJson<CreateToken>,
) -> ApiResult<(StatusCode, Json<TokenCreated>)> {
    if req.segments.is_empty() {
        return Err(ApiError::bad_request(
            "a token must grant at least one segment (--segment NAME)",
        ));
    }
    if !admin.sees_all(req.segments.iter()) {
        return Err(ApiError::denied());
    }
    for s in &req.segments {
        st.store.get_segment(s).await?;
    }
    validate::labels(&req.labels)?;
    let ttl = req.ttl_seconds.unwrap_or(DEFAULT_TTL_SECS);
    if ttl == 0 || ttl > MAX_TTL_SECS {
        return Err(ApiError::bad_request(
            "the token lifetime must be between 1 second and 30 days",
        ));
    }
    let uses = req.uses.unwrap_or(1);
    if uses == 0 || uses > 100_000 {
        return Err(ApiError::bad_request(
            "the use count must be between 1 and 100000",
        ));
    }
    let mut segments = req.segments.clone();
    segments.sort();
    segments.dedup();
    let (id, secret_text, t) = (secret::new_id(), secret::new_secret(), now());
    let expires_at = t + ttl as i64;
    st.store
        .create_token(TokenRow {
            id: id.clone(),
            secret_hash: secret::hash_secret(&secret_text),
            segments,
            labels: req.labels,
            uses: uses as i64,
            uses_left: uses as i64,
            created_at: t,
            expires_at,
            revoked_at: None,
        })
        .await?;
    let token = JoinToken {
        url: st.url.clone(),
        pin: st.pin,
        id: id.clone(),
        secret: secret_text,
        more_urls: st
            .cluster
            .urls()
            .into_iter()
            .filter(|u| *u != st.url)
            .collect(),
    };
    tracing::info!(actor = %admin.key_id, token_id = %id, uses, ttl, "join token created");
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            id,
            token: token.encode(),
            expires_at: rfc3339(expires_at),
            uses,
        }),
    ))
}

/// List join tokens (never their secrets).
#[utoipa::path(get, path = "/v1/tokens", responses((status = 200, body = [TokenInfo])))]
pub async fn list(admin: Admin, State(st): State<AppState>) -> ApiResult<Json<Vec<TokenInfo>>> {
    let t = now();
    let rows = st.store.list_tokens().await?;
    Ok(Json(
        rows.iter()
            .filter(|r| admin.sees_all(r.segments.iter()))
            .map(|r| convert::token(r, t))
            .collect(),
    ))
}

/// Revoke a join token.
#[utoipa::path(delete, path = "/v1/tokens/{id}", responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn revoke(
    admin: Admin,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if admin.segments.is_some() {
        let tokens = st.store.list_tokens().await?;
        if let Some(t) = tokens.iter().find(|t| t.id == id) {
            if !admin.sees_all(t.segments.iter()) {
                return Err(ApiError::denied());
            }
        }
    }
    st.store.revoke_token(&id, now()).await?;
    tracing::info!(actor = %admin.key_id, token_id = %id, "join token revoked");
    st.ops
        .events
        .emit(EventKind::TokenRevoked {
            token_id: id,
            actor: format!("key:{}", admin.key_id),
        })
        .await;
    Ok(StatusCode::NO_CONTENT)
}
