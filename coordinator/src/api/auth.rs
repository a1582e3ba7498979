//! Who is calling: an API key holder or an enrolled node.
//!
//! Credentials are bearer tokens `swk_<id>.<secret>` (API keys) and `swn_<id>.<secret>`
//! (nodes). The id finds the row; the secret is compared with its stored hash in constant
//! time. [`authenticate`] is called once per request by the authorization middleware
//! ([`super::roles`]), which stores the resulting [`Principal`] in the request; the
//! extractors here only read it back, so a handler can never skip the role check.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;

use super::error::{ApiError, ApiResult};
use super::AppState;
use crate::convert::now;
use crate::secret::{self, API_KEY_PREFIX, NODE_CRED_PREFIX};
use crate::store::access::KeyRow;
use crate::store::NodeRow;

/// An authenticated caller, stored in the request's extensions.
#[derive(Debug, Clone)]
pub enum Principal {
    /// An API key.
    Key(Arc<KeyRow>),
    /// An enrolled node.
    Node(Arc<NodeRow>),
}

impl Principal {
    /// The audit actor: `key:<id>` or `node:<id>`.
    pub fn actor(&self) -> String {
        match self {
            Principal::Key(k) => format!("key:{}", k.id),
            Principal::Node(n) => format!("node:{}", n.id),
        }
    }
}

/// Why a credential was refused (a metrics label; never shown to the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization: Bearer` header.
    Missing,
    /// Not a credential of ours.
    Malformed,
    /// Unknown id or wrong secret.
    Wrong,
    /// Revoked or expired.
    Dead,
    /// A node's right credential, but the node was revoked (told so explicitly).
    NodeRevoked,
    /// The store failed: says nothing about the credential (503, not counted as a guess).
    Store,
}

impl AuthFailure {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing",
            AuthFailure::Malformed => "malformed",
            AuthFailure::Wrong => "wrong",
            AuthFailure::Dead => "revoked_or_expired",
            AuthFailure::NodeRevoked => "node_revoked",
            AuthFailure::Store => "store_failure",
        }
    }

    /// True when the failure may be a guess, so it counts toward the source's limit.
    pub fn counts_as_guess(self) -> bool {
        matches!(
            self,
            AuthFailure::Malformed | AuthFailure::Wrong | AuthFailure::Dead
        )
    }

    /// The answer: 503 for a store failure, 401 with [`segwire_proto::api::NODE_REVOKED`]
    /// for a revoked node, a bare 401 otherwise.
    pub fn into_error(self) -> ApiError {
        match self {
            AuthFailure::Store => ApiError::unavailable(),
            AuthFailure::NodeRevoked => ApiError::node_revoked(),
            _ => ApiError::unauthorized(),
        }
    }
}

fn store_failed(e: impl std::fmt::Display) -> AuthFailure {
    tracing::error!(error = %e, "store failure while authenticating");
    AuthFailure::Store
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Checks the request's credential.
pub async fn authenticate(headers: &HeaderMap, st: &AppState) -> Result<Principal, AuthFailure> {
    let raw = bearer(headers).ok_or(AuthFailure::Missing)?;
    let (prefix, id, secret) = secret::split_credential(raw).ok_or(AuthFailure::Malformed)?;
    let started = Instant::now();
    let result = match prefix {
        API_KEY_PREFIX => {
            let key = st.ops.access.key(id).await.map_err(store_failed)?;
            match key {
                Some(k) if secret::verify_secret(secret, &k.secret_hash) => {
                    if k.is_live(now()) {
                        Ok(Principal::Key(Arc::new(k)))
                    } else {
                        Err(AuthFailure::Dead)
                    }
                }
                _ => Err(AuthFailure::Wrong),
            }
        }
        NODE_CRED_PREFIX => match st.store.node_for_auth(id).await {
            Ok(Some(n)) if secret::verify_secret(secret, &n.cred_hash) => {
                Ok(Principal::Node(Arc::new(n)))
            }
            Ok(Some(_)) => Err(AuthFailure::Wrong),
            Ok(None) => match st.store.revoked_node_cred(id).await {
                Ok(Some(hash)) if secret::verify_secret(secret, &hash) => {
                    Err(AuthFailure::NodeRevoked)
                }
                Ok(_) => Err(AuthFailure::Wrong),
                Err(e) => Err(store_failed(e)),
            },
            Err(e) => Err(store_failed(e)),
        },
        _ => Err(AuthFailure::Malformed),
    };
    metrics::histogram!("segwire_store_seconds", "op" => "authenticate")
        .record(started.elapsed().as_secs_f64());
    result
}

/// An authenticated API key (any role the route admits; see [`super::roles::ROUTES`]).
pub struct Actor {
    /// The key id (the audit actor is `key:<id>`).
    pub key_id: String,
    /// Segments the key is limited to; `None` for all.
    pub segments: Option<Vec<String>>,
}

/// The name handlers used before roles existed: any API key the route admits.
pub type Admin = Actor;

impl Actor {
    /// True when the key may see or change segment `name`.
    pub fn sees(&self, name: &str) -> bool {
        self.segments
            .as_ref()
            .is_none_or(|s| s.iter().any(|x| x == name))
    }

    /// True when the key may see or change every one of `names`.
    pub fn sees_all<'a>(&self, mut names: impl Iterator<Item = &'a String>) -> bool {
        names.all(|n| self.sees(n))
    }

    /// 403 (no body) unless the key may use segment `name`.
    pub fn check_segment(&self, name: &str) -> ApiResult<()> {
        if self.sees(name) {
            Ok(())
        } else {
            Err(ApiError::denied())
        }
    }
}

impl FromRequestParts<AppState> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        match parts.extensions.get::<Principal>() {
            Some(Principal::Key(k)) => Ok(Actor {
                key_id: k.id.clone(),
                segments: k.segments.clone(),
            }),
            Some(Principal::Node(_)) => Err(ApiError::denied()),
            None => Err(ApiError::unauthorized()),
        }
    }
}

/// An authenticated node.
pub struct NodeAuth {
    /// The node as stored.
    pub node: NodeRow,
}

impl FromRequestParts<AppState> for NodeAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        match parts.extensions.get::<Principal>() {
            Some(Principal::Node(n)) => Ok(NodeAuth {
                node: n.as_ref().clone(),
            }),
            Some(Principal::Key(_)) => Err(ApiError::denied()),
            None => Err(ApiError::unauthorized()),
        }
    }
}

/// Either kind of caller, for routes both may use (e.g. reading a node's netmap).
pub enum Caller {
    /// An API key.
    Admin(Admin),
    /// A node.
    Node(Box<NodeAuth>),
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
        if matches!(
            parts.extensions.get::<Principal>(),
            Some(Principal::Node(_))
        ) {
            NodeAuth::from_request_parts(parts, st)
                .await
                .map(|n| Caller::Node(Box::new(n)))
        } else {
            Actor::from_request_parts(parts, st)
                .await
                .map(Caller::Admin)
        }
    }
}
