//! `GET /v1/audit`: read the audit log (nothing can change it).

use axum::extract::State;
use axum::Json;
use segwire_proto::access::AuditRecord;
use segwire_proto::api::ErrorBody;
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::auth::Actor;
use super::error::{ApiError, ApiResult};
use super::query::ApiQuery;
use super::AppState;
use crate::convert::rfc3339;
use crate::store::access::{AuditQuery, AuditRow};

/// Most records one call returns.
pub const MAX_LIMIT: i64 = 10_000;

/// Query of `GET /v1/audit`.
#[derive(Debug, Deserialize)]
pub struct AuditParams {
    since: Option<String>,
    actor: Option<String>,
    target: Option<String>,
    limit: Option<i64>,
}

fn parse_time(s: &str) -> Option<i64> {
    if let Ok(t) = s.parse::<i64>() {
        return Some(t);
    }
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

fn parse_json(s: Option<&str>) -> Option<serde_json::Value> {
    s.and_then(|t| serde_json::from_str(t).ok())
}

fn to_wire(r: &AuditRow) -> AuditRecord {
    AuditRecord {
        id: r.id as u64,
        at: rfc3339(r.at),
        actor: r.actor.clone(),
        source: r.source.clone(),
        action: r.action.clone(),
        target: r.target.clone(),
        before: parse_json(r.before.as_deref()),
        after: parse_json(r.after.as_deref()),
    }
}

/// Audit records, oldest first: the newest `limit` (default 1000) matching the filters.
#[utoipa::path(get, path = "/v1/audit",
    params(("since" = Option<String>, Query, description = "RFC 3339 time or unix seconds", pattern = r"^([0-9]{1,10}|[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9]))$"),
           ("actor" = Option<String>, Query, description = "e.g. key:<id> or node:<id>"),
           ("target" = Option<String>, Query, description = "target prefix, e.g. segment:web"),
           ("limit" = Option<i64>, Query, description = "at most 10000", minimum = 1, maximum = 10000)),
    responses((status = 200, body = [AuditRecord]), (status = 400, body = ErrorBody)))]
pub async fn list(
    _: Actor,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<AuditParams>,
) -> ApiResult<Json<Vec<AuditRecord>>> {
    let since = match q.since.as_deref() {
        Some(s) => Some(parse_time(s).ok_or_else(|| {
            ApiError::bad_request(
                "since must be an RFC 3339 time (2024-05-01T12:00:00Z) or unix seconds",
            )
        })?),
        None => None,
    };
    let limit = q.limit.unwrap_or(1000);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 10000"));
    }
    let rows = st
        .ops
        .access
        .audit(AuditQuery {
            since,
            actor: q.actor,
            target: q.target,
            limit,
        })
        .await?;
    Ok(Json(rows.iter().map(to_wire).collect()))
}
