//! The one place where errors become HTTP status codes and bodies.
//!
//! Every error answers `{"error": "<one sentence>"}` except authentication failures and
//! role denials, which answer 401 or 403 with no body at all; a revoked node's credential
//! answers 401 with `"code": "node_revoked"`. 429 carries `Retry-After`. Database failures
//! (also while authenticating) are 503, logged in full and shown to the client only as a
//! generic sentence.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use segwire_proto::api::{ErrorBody, NODE_REVOKED};

use crate::store::StoreError;

/// An API error: a status and a sentence for the user.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// One sentence (unused for 401 and role denials).
    pub message: String,
    /// Seconds to wait, for 429 and 503.
    pub retry_after: Option<u64>,
    /// A machine-readable reason in the body (see [`ErrorBody::code`]).
    pub code: Option<&'static str>,
}

impl ApiError {
    /// 400 with a message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            retry_after: None,
            code: None,
        }
    }

    /// 401, empty body.
    pub fn unauthorized() -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: String::new(),
            retry_after: None,
            code: None,
        }
    }

    /// 403 with no body: the caller's role or segment scope does not admit this.
    pub fn denied() -> Self {
        ApiError {
            status: StatusCode::FORBIDDEN,
            message: String::new(),
            retry_after: None,
            code: None,
        }
    }

    /// 429 with `Retry-After`: too many failures from the caller's address.
    pub fn throttled(retry_after: std::time::Duration) -> Self {
        let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!("too many failed attempts from this address; retry in {secs} s"),
            retry_after: Some(secs),
            code: None,
        }
    }

    /// 413: the request body is over the route's limit.
    pub fn too_large() -> Self {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: "the request body is too large for this route; send less at once".into(),
            retry_after: None,
            code: None,
        }
    }

    /// 429 with `Retry-After: 1` and a message: a per-caller limit was reached.
    pub fn too_many(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: message.into(),
            retry_after: Some(1),
            code: None,
        }
    }

    /// 503 with `Retry-After: 1`: the database failed. Says nothing about the
    /// caller's credential, so clients keep what they have and retry.
    pub fn unavailable() -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the coordinator's database failed; see the coordinator log".into(),
            retry_after: Some(1),
            code: None,
        }
    }

    /// 401 with a body whose code is [`NODE_REVOKED`]: the node's credential is right
    /// but the node was revoked. The one answer on which an agent removes its members.
    pub fn node_revoked() -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: "this node was revoked; re-join it with `segwire-node join --force TOKEN`"
                .into(),
            retry_after: None,
            code: Some(NODE_REVOKED),
        }
    }

    /// 403 with a message.
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
            retry_after: None,
            code: None,
        }
    }

    /// 404 with a message.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
            retry_after: None,
            code: None,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = match &e {
            StoreError::NotFound(_) => StatusCode::NOT_FOUND,
            StoreError::Invalid(_) => StatusCode::BAD_REQUEST,
            StoreError::Conflict(_) => StatusCode::CONFLICT,
            StoreError::TokenRejected(_)
            | StoreError::TokenUnknown(_)
            | StoreError::Forbidden(_) => StatusCode::FORBIDDEN,
            StoreError::Db(_) | StoreError::Migrate(_) | StoreError::Corrupt(_) => {
                tracing::error!(error = %e, "store failure");
                return ApiError::unavailable();
            }
        };
        ApiError {
            status,
            message: e.to_string(),
            retry_after: None,
            code: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if (self.status == StatusCode::UNAUTHORIZED && self.code.is_none())
            || (self.status == StatusCode::FORBIDDEN && self.message.is_empty())
        {
            return self.status.into_response();
        }
        let mut resp = (
            self.status,
            Json(ErrorBody {
                error: self.message,
                code: self.code.map(str::to_string),
            }),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        resp
    }
}

/// Result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;
