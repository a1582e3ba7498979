//! Incidents over the API: nodes report detections (`POST /v1/node/detections`), people
//! lift quarantines (`POST /v1/segments/{name}/members/{member}/release`).

use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use segwire_proto::api::{DetectionReport, ErrorBody, Member};

use super::auth::{Admin, NodeAuth};
use super::error::{ApiError, ApiResult};
use super::json::ApiJson;
use super::AppState;
use crate::convert::{self, now};
use crate::events::EventKind;
use crate::incidents::{self, REPORT_WINDOW};
use crate::policy;
use crate::store::audit::{self, AuditCtx};
use crate::store::quarantine::ACTOR_DETECTION;

/// Most peers one report may name.
pub const MAX_PEERS: usize = 64;
/// Longest string field of a report.
const MAX_FIELD: usize = 256;

/// A node reports one detection about one of its own members. The event is recorded
/// (and sent to webhooks); with a matching `"quarantine"` block in the segment's policy
/// the member is cut off from every peer at once. A report about a member the node does
/// not own is refused (403) and never quarantines anyone.
#[utoipa::path(post, path = "/v1/node/detections", request_body = DetectionReport,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 429)))]
pub async fn report(
    auth: NodeAuth,
    State(st): State<AppState>,
    ApiJson(req): ApiJson<DetectionReport>,
) -> ApiResult<StatusCode> {
    let kind = incidents::event_name(req.kind);
    if !st.incidents.admit(&auth.node.id, Instant::now()) {
        metrics::counter!("segwire_detections_throttled_total").increment(1);
        tracing::warn!(node = %auth.node.name, kind, "detection reports over budget; refused");
        return Err(ApiError::throttled(REPORT_WINDOW));
    }
    let too_long = [&req.segment, &req.member]
        .into_iter()
        .chain(req.peers.iter())
        .chain(req.source.iter())
        .any(|s| s.len() > MAX_FIELD);
    if req.peers.len() > MAX_PEERS || too_long {
        return Err(ApiError::bad_request(format!(
            "a detection names at most {MAX_PEERS} peers and fields of at most {MAX_FIELD} bytes"
        )));
    }
    let member = st
        .store
        .list_members(Some(&req.segment))
        .await?
        .into_iter()
        .find(|m| m.name == req.member && m.node_id == auth.node.id)
        .ok_or_else(|| {
            metrics::counter!("segwire_detections_refused_total").increment(1);
            tracing::warn!(node = %auth.node.name, segment = %req.segment, member = %req.member,
                "detection about a member this node does not own; refused");
            ApiError::forbidden("a node reports detections only about its own members")
        })?;
    metrics::counter!("segwire_detections_total", "kind" => kind).increment(1);
    tracing::warn!(node = %auth.node.name, segment = %req.segment, member = %req.member, kind,
        count = req.count, window_ms = req.window_ms, "incident detected");
    let trigger = incidents::offender_trigger(&req);
    st.ops
        .events
        .emit(EventKind::Detected {
            node_id: auth.node.id.clone(),
            node: auth.node.name.clone(),
            member_id: member.id.clone(),
            report: req,
        })
        .await;
    let Some(trigger) = trigger else {
        return Ok(StatusCode::NO_CONTENT);
    };
    let seg = st.store.get_segment(&member.segment).await?;
    let Some(q) = policy::effective(&seg)
        .quarantine
        .filter(|q| q.triggers(trigger))
    else {
        return Ok(StatusCode::NO_CONTENT);
    };
    let until = now() + q.duration.as_secs().max(1) as i64;
    // Not a request's change but an automated response: audited as such.
    let ctx = AuditCtx::new(ACTOR_DETECTION.into(), None);
    let cut = st.store.quarantine(&member.id, until, trigger.as_str());
    if let Some((m, touched)) = audit::scope(ctx, cut).await? {
        st.commit(&touched).await;
        metrics::counter!("segwire_quarantines_total", "reason" => trigger.as_str()).increment(1);
        tracing::warn!(segment = %m.segment, member = %m.name, reason = trigger.as_str(), until,
            "member quarantined: cut off from every peer");
        st.ops
            .events
            .emit(EventKind::Quarantined {
                segment: m.segment,
                member: m.name,
                member_id: m.id,
                until,
                reason: trigger.as_str().into(),
                reported_by: auth.node.name,
                actor: ACTOR_DETECTION.into(),
            })
            .await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Lifts a member's quarantine before it expires; its peers get it back at once.
#[utoipa::path(post, path = "/v1/segments/{name}/members/{member}/release",
    responses((status = 200, body = Member), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn release(
    admin: Admin,
    State(st): State<AppState>,
    Path((segment, member)): Path<(String, String)>,
) -> ApiResult<Json<Member>> {
    admin.check_segment(&segment)?;
    let (m, touched) = st.store.release(&segment, &member).await?;
    let nodes = st.store.list_nodes().await?;
    let out = convert::member(&m, nodes.iter().find(|n| n.id == m.node_id));
    incidents::lifted(&st, m, &touched, format!("key:{}", admin.key_id)).await;
    Ok(Json(out))
}
