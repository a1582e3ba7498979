//! Who is calling: an API key holder or an enrolled node.
//!
//! Credentials are bearer tokens `swk_<id>.<secret>` (API keys) and `swn_<id>.<secret>`
//! (nodes). The id finds the row; the secret is compared with its stored hash in constant
//! time. Any failure answers 401 with an empty body, at once.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::error::ApiError;
use super::AppState;
use crate::secret::{self, API_KEY_PREFIX, NODE_CRED_PREFIX};
use crate::store::NodeRow;

/// An authenticated API key with the admin role.
pub struct Admin {
    /// The key id (the audit actor).
    pub key_id: String,
}

/// An authenticated node.
pub struct NodeAuth {
    /// The node as stored.
    pub node: NodeRow,
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (prefix, id, secret) = bearer(parts)
            .and_then(secret::split_credential)
            .ok_or_else(ApiError::unauthorized)?;
        if prefix != API_KEY_PREFIX {
            return Err(ApiError::unauthorized());
        }
        let key = state
            .store
            .api_key(id)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        if key.revoked_at.is_some() || !secret::verify_secret(secret, &key.secret_hash) {
            return Err(ApiError::unauthorized());
        }
        if key.role != "admin" {
            return Err(ApiError::forbidden(
                "this API key's role does not allow this",
            ));
        }
        Ok(Admin { key_id: key.id })
    }
}

impl FromRequestParts<AppState> for NodeAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (prefix, id, secret) = bearer(parts)
            .and_then(secret::split_credential)
            .ok_or_else(ApiError::unauthorized)?;
        if prefix != NODE_CRED_PREFIX {
            return Err(ApiError::unauthorized());
        }
        let node = state
            .store
            .node_for_auth(id)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        if !secret::verify_secret(secret, &node.cred_hash) {
            return Err(ApiError::unauthorized());
        }
        Ok(NodeAuth { node })
    }
}

/// Either kind of caller, for routes both may use (e.g. reading a node's netmap).
pub enum Caller {
    /// An admin API key.
    Admin(Admin),
    /// A node.
    Node(Box<NodeAuth>),
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let is_node = bearer(parts)
            .map(|b| b.starts_with(NODE_CRED_PREFIX))
            .unwrap_or(false);
        if is_node {
            NodeAuth::from_request_parts(parts, state)
                .await
                .map(|n| Caller::Node(Box::new(n)))
        } else {
            Admin::from_request_parts(parts, state)
                .await
                .map(Caller::Admin)
        }
    }
}
