//! A JSON body extractor whose rejections are our one-sentence errors.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Like `axum::Json`, but a bad body answers `400 {"error": ...}` naming the problem.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::too_large())
            }
            Err(rejection) => Err(ApiError::bad_request(describe(&rejection))),
        }
    }
}

fn describe(r: &JsonRejection) -> String {
    match r {
        JsonRejection::MissingJsonContentType(_) => {
            "send the body as JSON with the header Content-Type: application/json".into()
        }
        JsonRejection::JsonSyntaxError(e) => format!("the body is not valid JSON: {}", inner(e)),
        JsonRejection::JsonDataError(e) => format!("the body has the wrong shape: {}", inner(e)),
        other => format!("the body could not be read: {other}"),
    }
}

fn inner(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        msg = s.to_string();
        cur = s.source();
    }
    msg.chars().take(300).collect()
}
