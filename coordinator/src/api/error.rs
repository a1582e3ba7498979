//! The one place where errors become HTTP status codes and bodies.
//!
//! Every error answers `{"error": "<one sentence>"}` except authentication failures,
//! which answer 401 with no body at all. Database failures are logged in full and shown
//! to the client only as a generic sentence.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use segwire_proto::api::ErrorBody;

use crate::store::StoreError;

/// An API error: a status and a sentence for the user.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// One sentence (unused for 401).
    pub message: String,
}

impl ApiError {
    /// 400 with a message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// 401, empty body.
    pub fn unauthorized() -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: String::new(),
        }
    }

    /// 403 with a message.
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
        }
    }

    /// 404 with a message.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = match &e {
            StoreError::NotFound(_) => StatusCode::NOT_FOUND,
            StoreError::Conflict(_) => StatusCode::CONFLICT,
            StoreError::TokenRejected(_) | StoreError::Forbidden(_) => StatusCode::FORBIDDEN,
            StoreError::Db(_) | StoreError::Migrate(_) | StoreError::Corrupt(_) => {
                tracing::error!(error = %e, "store failure");
                return ApiError {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    message: "the coordinator's database failed; see the coordinator log".into(),
                };
            }
        };
        ApiError {
            status,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status == StatusCode::UNAUTHORIZED {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response()
    }
}

/// Result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;
