//! `/v1/apikeys`: create (the key is shown once), list, revoke, rotate the caller's key.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use segwire_proto::access::{ApiKeyCreated, ApiKeyInfo, CreateApiKey, Role};
use segwire_proto::api::ErrorBody;

use super::auth::Actor;
use super::error::{ApiError, ApiResult};
use super::json::ApiJson;
use super::AppState;
use crate::convert::{now, rfc3339};
use crate::events::EventKind;
use crate::secret::{self, API_KEY_PREFIX};
use crate::store::access::KeyRow;

/// Longest key lifetime (10 years); keys without a TTL never expire.
pub const MAX_TTL_SECS: u64 = 10 * 365 * 24 * 3600;

fn info(k: &KeyRow, t: i64) -> ApiKeyInfo {
    let state = if k.revoked_at.is_some() {
        "revoked"
    } else if !k.is_live(t) {
        "expired"
    } else {
        "active"
    };
    ApiKeyInfo {
        id: k.id.clone(),
        role: k.role,
        segments: k.segments.clone(),
        description: k.description.clone(),
        created_at: rfc3339(k.created_at),
        expires_at: k.expires_at.map(rfc3339),
        state: state.into(),
    }
}

fn new_key(
    role: Role,
    segments: Option<Vec<String>>,
    expires_at: Option<i64>,
    description: String,
) -> (KeyRow, ApiKeyCreated) {
    let (id, secret_text) = (secret::new_id(), secret::new_secret());
    let row = KeyRow {
        id: id.clone(),
        secret_hash: secret::hash_secret(&secret_text),
        role,
        segments: segments.clone(),
        description,
        created_at: now(),
        expires_at,
        revoked_at: None,
    };
    let created = ApiKeyCreated {
        id: id.clone(),
        key: secret::credential(API_KEY_PREFIX, &id, &secret_text),
        role,
        segments,
        expires_at: expires_at.map(rfc3339),
    };
    (row, created)
}

/// Create an API key.
#[utoipa::path(post, path = "/v1/apikeys", request_body = CreateApiKey,
    responses((status = 201, body = ApiKeyCreated), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create(
    actor: Actor,
    State(st): State<AppState>,
    ApiJson(req): ApiJson<CreateApiKey>,
) -> ApiResult<(StatusCode, Json<ApiKeyCreated>)> {
    let segments = match req.segments {
        Some(_) if req.role == Role::Admin => {
            return Err(ApiError::bad_request(
                "an admin key cannot be limited to segments; use the operator or viewer role",
            ))
        }
        Some(s) if s.is_empty() => {
            return Err(ApiError::bad_request(
                "give at least one segment, or none for all segments",
            ))
        }
        Some(mut s) => {
            for name in &s {
                st.store.get_segment(name).await?;
            }
            s.sort();
            s.dedup();
            Some(s)
        }
        None => None,
    };
    let expires_at = match req.ttl_seconds {
        Some(0) => return Err(ApiError::bad_request("ttl_seconds must be at least 1")),
        Some(t) if t > MAX_TTL_SECS => {
            return Err(ApiError::bad_request(
                "ttl_seconds must be at most ten years",
            ))
        }
        Some(t) => Some(now() + t as i64),
        None => None,
    };
    let description = req.description.unwrap_or_default();
    if description.len() > 200 || description.contains(['\n', '\0']) {
        return Err(ApiError::bad_request(
            "the description must be one line of at most 200 characters",
        ));
    }
    let (row, created) = new_key(req.role, segments, expires_at, description);
    st.ops.access.create_key(row).await?;
    tracing::info!(actor = %actor.key_id, key_id = %created.id, role = %created.role, "API key created");
    Ok((StatusCode::CREATED, Json(created)))
}

/// List API keys (never their secrets).
#[utoipa::path(get, path = "/v1/apikeys", responses((status = 200, body = [ApiKeyInfo])))]
pub async fn list(_: Actor, State(st): State<AppState>) -> ApiResult<Json<Vec<ApiKeyInfo>>> {
    let t = now();
    Ok(Json(
        st.ops
            .access
            .list_keys()
            .await?
            .iter()
            .map(|k| info(k, t))
            .collect(),
    ))
}

/// Revoke an API key (the last live admin key cannot be revoked).
#[utoipa::path(delete, path = "/v1/apikeys/{id}", responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn revoke(
    actor: Actor,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    st.ops.access.revoke_key(&id, now()).await?;
    tracing::info!(actor = %actor.key_id, key_id = %id, "API key revoked");
    st.ops
        .events
        .emit(EventKind::ApiKeyRevoked {
            key_id: id,
            actor: format!("key:{}", actor.key_id),
        })
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Replace the calling key: a new key with the same role, scope and expiry is returned
/// once, and the calling key stops working (e.g. to rotate the bootstrap admin key).
#[utoipa::path(post, path = "/v1/apikeys/rotate", responses((status = 201, body = ApiKeyCreated)))]
pub async fn rotate(
    actor: Actor,
    State(st): State<AppState>,
) -> ApiResult<(StatusCode, Json<ApiKeyCreated>)> {
    let old = st
        .ops
        .access
        .key(&actor.key_id)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    let description = format!("rotated from {}", old.id);
    let (row, created) = new_key(old.role, old.segments.clone(), old.expires_at, description);
    st.ops.access.rotate_key(&old.id, row, now()).await?;
    tracing::info!(old_key_id = %old.id, key_id = %created.id, "API key rotated");
    st.ops
        .events
        .emit(EventKind::ApiKeyRevoked {
            key_id: old.id,
            actor: format!("key:{}", actor.key_id),
        })
        .await;
    Ok((StatusCode::CREATED, Json(created)))
}
