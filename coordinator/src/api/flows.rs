//! Flow logs: nodes ship records (`POST /v1/node/flows`); people query them (`GET /v1/flows`).

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use segwire_proto::api::{ErrorBody, FlowRecord, FlowReport};
use serde::Deserialize;

use super::auth::{Admin, NodeAuth};
use super::error::{ApiError, ApiResult};
use super::json::ApiJson;
use super::query::ApiQuery;
use super::AppState;
use crate::convert::now;
use crate::store::flows::{FlowKeep, FlowQuery};
use bind::OwnMember;

pub mod bind;

/// Most records one report may carry.
pub const MAX_REPORT: usize = 1000;
/// Largest report body (a full report of 1,000 records takes about 300 KB).
pub const MAX_REPORT_BYTES: usize = 512 * 1024;
/// Most records kept in all.
pub const MAX_ROWS: i64 = 200_000;
/// Reports a node may send at once; then one more per [`REPORT_INTERVAL`] (agents send
/// one every 2 s).
pub const REPORT_BURST: u32 = 10;
/// See [`REPORT_BURST`].
pub const REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// A node ships aggregated flow records of its members. Each record must be one of the
/// node's own members' (segment, member and overlay address); others are dropped.
#[utoipa::path(post, path = "/v1/node/flows", request_body = FlowReport,
    responses((status = 204), (status = 400, body = ErrorBody)))]
pub async fn report(
    auth: NodeAuth,
    State(st): State<AppState>,
    ApiJson(req): ApiJson<FlowReport>,
) -> ApiResult<StatusCode> {
    if req.flows.len() > MAX_REPORT {
        return Err(ApiError::bad_request(format!(
            "a report carries at most {MAX_REPORT} flow records"
        )));
    }
    // Counts are stored as SQLite integers (i64).
    if i64::try_from(req.dropped).is_err()
        || req.flows.iter().any(|f| i64::try_from(f.count).is_err())
    {
        return Err(ApiError::bad_request(
            "flow counts must be at most 2^63 - 1",
        ));
    }
    if let Err(t) = st.limits.flow_report(&auth.node.id, Instant::now()) {
        if t.refused == 1 {
            tracing::warn!(node = %auth.node.name, "node reports flows too often; refusing");
        }
        return Err(ApiError::too_many(
            "flow reports come too often from this node; send at most one per second",
        ));
    }
    let own: Vec<OwnMember> = st
        .store
        .node_members(&auth.node.id)
        .await?
        .into_iter()
        .map(|m| OwnMember {
            segment: m.segment,
            name: m.name,
            address: m.address,
            address6: m.address6,
        })
        .collect();
    let (received, t) = (req.flows.len(), now());
    let oldest = t - st.flow_retention_secs;
    let flows: Vec<FlowRecord> = req
        .flows
        .into_iter()
        .filter_map(|f| bind::bind(f, &own, &auth.node.name, t, oldest))
        .collect();
    if flows.len() < received {
        tracing::warn!(node = %auth.node.name, dropped = received - flows.len(), "flow records not of the node's own members dropped");
    }
    if req.dropped > 0 {
        tracing::warn!(node = %auth.node.name, dropped = req.dropped, "node's flow table was full; some flows were not logged");
    }
    if !flows.is_empty() {
        let keep = FlowKeep {
            secs: st.flow_retention_secs,
            rows: MAX_ROWS,
            rows_per_node: st.limits.max_flow_rows_per_node,
        };
        st.flows.add_flows(&auth.node.id, &flows, t, &keep).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Query of `GET /v1/flows`.
#[derive(Debug, Deserialize)]
pub struct FlowsQuery {
    segment: Option<String>,
    #[serde(default)]
    denied: bool,
    since: Option<i64>,
    limit: Option<i64>,
}

/// Flow records, newest first; a segment-scoped key sees only its segments.
#[utoipa::path(get, path = "/v1/flows",
    params(("segment" = Option<String>, Query, description = "only this segment"),
           ("denied" = Option<bool>, Query, description = "only denied packets"),
           ("since" = Option<i64>, Query, description = "unix seconds"),
           ("limit" = Option<i64>, Query, description = "at most this many (default 100, at most 10000)")),
    responses((status = 200, body = [FlowRecord])))]
pub async fn list(
    admin: Admin,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<FlowsQuery>,
) -> ApiResult<Json<Vec<FlowRecord>>> {
    let segments = match &q.segment {
        Some(s) => {
            admin.check_segment(s)?;
            Some(vec![s.clone()])
        }
        None => admin.segments.clone(),
    };
    let flows = st
        .flows
        .list_flows(&FlowQuery {
            segments,
            denied: q.denied,
            since: q.since,
            limit: q.limit.unwrap_or(100).clamp(1, 10_000),
        })
        .await?;
    Ok(Json(flows))
}
