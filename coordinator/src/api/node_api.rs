//! Routes for node agents: enrol, netmap long-poll, attach/detach members, report endpoints.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use segwire_proto::api::{
    AttachRequest, EndpointReport, EnrollRequest, EnrollResponse, ErrorBody, Member,
};
use segwire_proto::delta::{NetMapDelta, DELTA_CONTENT_TYPE};
use segwire_proto::keys::decode_key;
use segwire_proto::names::{validate_member_name, validate_node_name};
use segwire_proto::netmap::NetMap;
use serde::Deserialize;

use super::auth::NodeAuth;
use super::error::{ApiError, ApiResult};
use super::json::ApiJson;
use super::query::ApiQuery;
use super::validate;
use super::AppState;
use crate::convert::{self, now};
use crate::events::EventKind;
use crate::fanout::Answer;
use crate::secret::{self, NODE_CRED_PREFIX};
use crate::store::{NewMember, NewNode};

/// Longest a netmap long-poll waits.
pub const MAX_WAIT_SECS: u64 = 60;
/// How often a polling node's `last_seen` is written.
const TOUCH_EVERY_SECS: i64 = 10;

fn check_endpoints_ips(eps: &[String]) -> ApiResult<()> {
    if eps.len() > validate::MAX_ENDPOINTS {
        return Err(ApiError::bad_request(format!(
            "report at most {} endpoints",
            validate::MAX_ENDPOINTS
        )));
    }
    for e in eps {
        e.parse::<std::net::IpAddr>().map_err(|_| {
            ApiError::bad_request(format!(
                "endpoint {:?} is not an IP address",
                e.chars().take(60).collect::<String>()
            ))
        })?;
    }
    Ok(())
}

/// Enrol a node with a join token.
#[utoipa::path(post, path = "/v1/enroll", request_body = EnrollRequest,
    responses((status = 201, body = EnrollResponse), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn enroll(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(req): ApiJson<EnrollRequest>,
) -> ApiResult<(StatusCode, Json<EnrollResponse>)> {
    validate_node_name(&req.name).map_err(|e| ApiError::bad_request(e.to_string()))?;
    decode_key("node public key", &req.public_key)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    check_endpoints_ips(&req.endpoints)?;
    let (id, cred_secret) = (secret::new_id(), secret::new_secret());
    let token_id: String = req.token_id.chars().take(64).collect();
    let node = st
        .store
        .enroll(
            NewNode {
                token_id: token_id.clone(),
                token_secret: req.token_secret,
                id: id.clone(),
                name: req.name,
                public_key: req.public_key,
                cred_hash: secret::hash_secret(&cred_secret),
                endpoints: req.endpoints,
                observed: Some(peer.ip().to_string()),
            },
            now(),
        )
        .await
        .map_err(|e| {
            tracing::warn!(source = %peer.ip(), reason = %e, "enrolment refused");
            // Only a wrong token counts toward the address's limit: a valid one from the
            // same address (another node behind the same NAT) is never refused.
            if matches!(e, crate::store::StoreError::TokenUnknown(_)) {
                if let Some(throttled) = super::roles::enroll_failure(&st, peer.ip()) {
                    return throttled;
                }
            }
            ApiError::from(e)
        })?;
    tracing::info!(node = %node.name, node_id = %node.id, source = %peer.ip(), "node enrolled");
    st.ops
        .events
        .emit(EventKind::TokenUsed {
            token_id: token_id.clone(),
            node_id: node.id.clone(),
            name: node.name.clone(),
            source: peer.ip().to_string(),
        })
        .await;
    Ok((
        StatusCode::CREATED,
        Json(EnrollResponse {
            node_id: node.id.clone(),
            name: node.name,
            credential: secret::credential(NODE_CRED_PREFIX, &node.id, &cred_secret),
            segments: node.segments,
            labels: node.labels,
        }),
    ))
}

/// Query of the netmap long-poll.
#[derive(Debug, Deserialize)]
pub struct NetmapQuery {
    #[serde(default)]
    since: u64,
    wait: Option<u64>,
    /// 1: the agent applies deltas (see `segwire_proto::delta`).
    #[serde(default)]
    delta: u8,
    /// 1: a full map even when a delta could be made.
    #[serde(default)]
    full: u8,
}

/// The calling node's netmap: at once if its version differs from `since`, else after a change or `wait` seconds (204).
/// With `delta=1`, a `NetMapDelta` from `since` (content type `application/vnd.segwire.netmap-delta+json`) when the coordinator still has that version, else a full map.
#[utoipa::path(get, path = "/v1/node/netmap",
    params(("since" = Option<u64>, Query, description = "version the node has", minimum = 0, maximum = 9223372036854775807_i64),
           ("wait" = Option<u64>, Query, description = "seconds to wait, default 30, at most 60", minimum = 0, maximum = 60),
           ("delta" = Option<u8>, Query, description = "1: answer with a delta from `since` when possible", minimum = 0, maximum = 1),
           ("full" = Option<u8>, Query, description = "1: a full map even with `delta=1`", minimum = 0, maximum = 1)),
    responses((status = 200, description = "a full map, or with delta=1 a delta from `since`", content(
                  (NetMap = "application/json"),
                  (NetMapDelta = "application/vnd.segwire.netmap-delta+json"))),
              (status = 204, description = "nothing newer within the wait")))]
pub async fn netmap(
    auth: NodeAuth,
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiQuery(q): ApiQuery<NetmapQuery>,
) -> ApiResult<Response> {
    if q.since > i64::MAX as u64
        || q.wait.is_some_and(|w| w > MAX_WAIT_SECS)
        || q.delta > 1
        || q.full > 1
    {
        return Err(ApiError::bad_request(format!(
            "since must be a netmap version, wait at most {MAX_WAIT_SECS} seconds, delta and full 0 or 1"
        )));
    }
    let delta_from = (q.delta == 1 && q.full == 0).then_some(q.since);
    let node = auth.node;
    let Some(_slot) = st.limits.poll_slot(&node.id) else {
        tracing::warn!(node = %node.name, node_id = %node.id, max = st.limits.max_polls_per_node, "too many open netmap polls; refusing one");
        return Err(ApiError::too_many(format!(
            "this node already has {} netmap polls open; wait for one to finish",
            st.limits.max_polls_per_node
        )));
    };
    let _present = crate::api::node_presence::PollGuard::start(&st, &node, q.since).await;
    let observed = peer.ip().to_string();
    let stale = node.last_seen.unwrap_or(0) + TOUCH_EVERY_SECS <= now();
    if node.observed.as_deref() != Some(observed.as_str()) && stale {
        // A new source address is a real change, but one a node can flip at will:
        // applied at most once per TOUCH_EVERY_SECS, so polls cannot churn every segment.
        let touched = st
            .store
            .set_endpoints(&node.id, node.endpoints.clone(), Some(observed), now())
            .await?;
        st.commit(&touched).await;
    } else if stale && node.observed.as_deref() == Some(observed.as_str()) {
        st.store.touch_node(&node.id, None, now()).await?;
    }
    let wait = Duration::from_secs(q.wait.unwrap_or(30)).min(st.limits.max_wait);
    let deadline = tokio::time::Instant::now() + wait;
    let notify = st.hub.notifier(&node.id);
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let started = std::time::Instant::now();
        let (versions, recheck) = poll_versions(&st, &node.id, started).await?;
        // A revocation wakes the node too: tell it at once rather than at its next poll.
        if !versions.live {
            return Err(match st.store.revoked_node_cred(&node.id).await? {
                Some(_) => ApiError::node_revoked(),
                None => ApiError::unauthorized(),
            });
        }
        // Any difference counts: a coordinator restored from an older backup has lower
        // versions than its nodes hold, and they must still get its map.
        if versions.version() as u64 != q.since {
            let answer = st
                .hub
                .netmaps
                .answer(&*st.store, &node, &versions, delta_from, &st.cluster.urls())
                .await?;
            crate::api::node_presence::pushed(started);
            let (kind, body) = match answer {
                Answer::Full(body) => ("application/json", body),
                Answer::Delta(body) => (DELTA_CONTENT_TYPE, body),
            };
            return Ok(([(header::CONTENT_TYPE, kind)], body).into_response());
        }
        // Versions answered from memory are read again when they expire (a wake-up may
        // have been missed); otherwise wait for a change or the end of the wait.
        let until = recheck.map_or(deadline, |r| deadline.min(r.into()));
        if tokio::time::timeout_at(until, notified).await.is_err() && until == deadline {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
    }
}

/// The node's versions: remembered by the hub when nothing woke the node since they were
/// read (the poll right after an answer costs no query), with when they expire; else read
/// from the store.
async fn poll_versions(
    st: &AppState,
    node_id: &str,
    now: std::time::Instant,
) -> ApiResult<(crate::store::NodeVersions, Option<std::time::Instant>)> {
    let (known, ticket) = st.hub.versions(node_id, now);
    if let Some((v, expires)) = known {
        return Ok((v, Some(expires)));
    }
    let v = st.store.node_versions(node_id).await?;
    if v.live {
        st.hub.remember(node_id, ticket, &v, now);
    }
    Ok((v, None))
}

/// Attach a workload of the calling node to a segment; allocates its overlay address.
/// 409 also when the node holds `--max-members-per-node` members or the name is another node's.
#[utoipa::path(post, path = "/v1/node/members", request_body = AttachRequest,
    responses((status = 201, body = Member), (status = 400, body = ErrorBody, description = "bad input, more than 32 labels or 16 endpoints"), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn attach(
    auth: NodeAuth,
    State(st): State<AppState>,
    ApiJson(req): ApiJson<AttachRequest>,
) -> ApiResult<Response> {
    decode_key("member public key", &req.public_key)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    if let Some(n) = &req.name {
        validate_member_name(n).map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    if req.workload.is_empty() || req.workload.len() > 256 || req.workload.contains('\0') {
        return Err(ApiError::bad_request(
            "workload must be host, netns:NAME, path:PATH or pid:N (at most 256 characters)",
        ));
    }
    if req.listen_port == 0 {
        return Err(ApiError::bad_request("listen_port must be 1-65535"));
    }
    if req.endpoints.len() > validate::MAX_ENDPOINTS {
        return Err(ApiError::bad_request(format!(
            "a member reports at most {} endpoints",
            validate::MAX_ENDPOINTS
        )));
    }
    for e in &req.endpoints {
        validate::endpoint(e)?;
    }
    validate::labels(&req.labels)?;
    let (row, touched) = st
        .store
        .attach(
            NewMember {
                node_id: auth.node.id.clone(),
                segment: req.segment,
                workload: req.workload,
                name: req.name,
                public_key: req.public_key,
                listen_port: req.listen_port,
                endpoints: req.endpoints,
                labels: req.labels,
                quarantine_secs: st.quarantine_secs,
                max_members_per_node: st.limits.max_members_per_node,
            },
            now(),
        )
        .await?;
    st.commit(&touched).await;
    let body = Json(convert::member(&row, Some(&auth.node)));
    if touched.is_empty() {
        // The same attach again: answered as before, nothing written.
        let mut resp = (StatusCode::CREATED, body).into_response();
        resp.extensions_mut().insert(super::roles::Unchanged);
        return Ok(resp);
    }
    tracing::info!(node = %auth.node.name, member = %row.name, segment = %row.segment, address = ?row.address, address6 = ?row.address6, "member attached");
    Ok((StatusCode::CREATED, body).into_response())
}

/// Detach one of the calling node's members; its address is quarantined before reuse.
#[utoipa::path(delete, path = "/v1/node/members/{id}", responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn detach(
    auth: NodeAuth,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let touched = st.store.detach(&auth.node.id, &id, now()).await?;
    st.commit(&touched).await;
    tracing::info!(node = %auth.node.name, member_id = %id, "member detached");
    Ok(StatusCode::NO_CONTENT)
}

/// The calling node reports its underlay addresses; the observed source is recorded too.
#[utoipa::path(post, path = "/v1/node/endpoints", request_body = EndpointReport,
    responses((status = 204), (status = 400, body = ErrorBody)))]
pub async fn endpoints(
    auth: NodeAuth,
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(req): ApiJson<EndpointReport>,
) -> ApiResult<Response> {
    check_endpoints_ips(&req.endpoints)?;
    let touched = st
        .store
        .set_endpoints(
            &auth.node.id,
            req.endpoints,
            Some(peer.ip().to_string()),
            now(),
        )
        .await?;
    st.commit(&touched).await;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if touched.is_empty() {
        resp.extensions_mut().insert(super::roles::Unchanged);
    }
    Ok(resp)
}
