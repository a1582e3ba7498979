//! `GET /v1/events`: list events after an id, or wait for the next ones (long-poll).

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use segwire_proto::access::Event;
use segwire_proto::api::ErrorBody;
use serde::Deserialize;

use super::auth::Actor;
use super::error::{ApiError, ApiResult};
use super::query::ApiQuery;
use super::AppState;

/// Longest a follow waits.
pub const MAX_WAIT_SECS: u64 = 60;

/// Query of `GET /v1/events`.
#[derive(Debug, Deserialize)]
pub struct EventParams {
    #[serde(default)]
    since: i64,
    #[serde(default)]
    follow: bool,
    wait: Option<u64>,
    limit: Option<i64>,
}

/// Events with an id above `since`, oldest first. With `follow=true` and none yet, waits
/// up to `wait` seconds (default 30, at most 60) for the next and answers `[]` if none.
#[utoipa::path(get, path = "/v1/events",
    params(("since" = Option<i64>, Query, description = "last event id seen", minimum = 0, maximum = 9223372036854775807_i64),
           ("follow" = Option<bool>, Query, description = "wait for new events"),
           ("wait" = Option<u64>, Query, description = "seconds to wait when following (at most 60)", minimum = 0, maximum = 60),
           ("limit" = Option<i64>, Query, description = "at most 1000", minimum = 1, maximum = 1000)),
    responses((status = 200, body = [Event]), (status = 400, body = ErrorBody)))]
pub async fn list(
    _: Actor,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<EventParams>,
) -> ApiResult<Json<Vec<Event>>> {
    let limit = q.limit.unwrap_or(1000);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    if q.since < 0 {
        return Err(ApiError::bad_request(
            "since must be an event id (0 or more)",
        ));
    }
    if q.wait.is_some_and(|w| w > MAX_WAIT_SECS) {
        return Err(ApiError::bad_request(format!(
            "wait must be at most {MAX_WAIT_SECS} seconds"
        )));
    }
    let wait = if q.follow {
        Duration::from_secs(q.wait.unwrap_or(30)).min(st.limits.max_wait)
    } else {
        Duration::ZERO
    };
    Ok(Json(st.ops.events.list(q.since, limit, wait).await?))
}
