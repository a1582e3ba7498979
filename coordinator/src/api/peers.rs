//! `/v1/peers`: stock WireGuard devices as segment members (external members).
//!
//! Adding one and reading its configuration return the segment's preshared key, which the
//! device needs: both routes admit operators and admins of that segment only, and both
//! are audited (`peer.add`, `peer.config`). The key is never logged.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::Json;
use segwire_proto::api::ErrorBody;
use segwire_proto::keys::decode_key;
use segwire_proto::names::validate_member_name;
use segwire_proto::peer::{AddPeer, ConfigPeer, ExternalPeer, PeerConfig};
use serde::Deserialize;

use super::auth::Admin;
use super::error::{ApiError, ApiResult};
use super::json::ApiJson;
use super::query::ApiQuery;
use super::validate;
use super::AppState;
use crate::convert::{member_endpoints, now, rfc3339};
use crate::policy;
use crate::store::audit::{self, AuditCtx, Change};
use crate::store::peers::{NewPeer, PeerView};
use crate::store::{MemberRow, StoreError};

/// An external member for the API.
#[must_use]
pub fn external_peer(m: &MemberRow) -> ExternalPeer {
    ExternalPeer {
        id: m.id.clone(),
        name: m.name.clone(),
        segment: m.segment.clone(),
        address: m.address.map(|a| a.to_string()),
        address6: m.address6.map(|a| a.to_string()),
        public_key: m.public_key.clone(),
        endpoint: m.endpoints.first().cloned(),
        labels: m.labels.clone(),
        created_at: rfc3339(m.created_at),
    }
}

/// The device's configuration: one peer per member the segment's policy lets it
/// exchange any traffic with and that is not quarantined (the same pruning as the agents'
/// netmaps).
#[must_use]
pub fn config(view: &PeerView) -> PeerConfig {
    let pol = policy::effective(&view.segment);
    let all: Vec<segwire_policy::Member> = view.members.iter().map(policy::member).collect();
    let reachable = segwire_policy::reachable_peers(&pol, &policy::member(&view.peer), &all);
    let peers = view
        .members
        .iter()
        .filter(|m| m.id != view.peer.id && reachable.contains(&m.name))
        .filter(|m| m.quarantined_until.is_none())
        .map(|m| {
            let node = view.nodes.iter().find(|n| n.id == m.node_id);
            ConfigPeer {
                name: m.name.clone(),
                node: m.node_name.clone(),
                public_key: m.public_key.clone(),
                address: m.address.map(|a| a.to_string()),
                address6: m.address6.map(|a| a.to_string()),
                endpoint: member_endpoints(m, node).into_iter().next(),
            }
        })
        .collect();
    PeerConfig {
        peer: external_peer(&view.peer),
        cidr: view.segment.net.map(|n| n.to_string()),
        cidr6: view.segment.net6.map(|n| n.to_string()),
        psk: view.segment.psk.clone(),
        psk_version: view.segment.psk_version as u64,
        peers,
    }
}

fn validate(req: &AddPeer) -> ApiResult<()> {
    validate_member_name(&req.name).map_err(|e| ApiError::bad_request(e.to_string()))?;
    decode_key("public key", &req.public_key).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if let Some(e) = &req.endpoint {
        validate::endpoint(e)?;
    }
    validate::labels(&req.labels)?;
    Ok(())
}

/// Add a stock WireGuard device to a segment; answers its configuration (with the PSK).
#[utoipa::path(post, path = "/v1/peers", request_body = AddPeer,
    responses((status = 201, body = PeerConfig), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn add(
    admin: Admin,
    State(st): State<AppState>,
    ApiJson(req): ApiJson<AddPeer>,
) -> ApiResult<(StatusCode, Json<PeerConfig>)> {
    admin.check_segment(&req.segment)?;
    validate(&req)?;
    let (row, touched) = st
        .store
        .add_peer(
            NewPeer {
                segment: req.segment,
                name: req.name,
                public_key: req.public_key,
                endpoint: req.endpoint,
                labels: req.labels,
                quarantine_secs: st.quarantine_secs,
            },
            now(),
        )
        .await?;
    st.commit(&touched).await;
    tracing::info!(actor = %admin.key_id, segment = %row.segment, peer = %row.name, address = ?row.address, address6 = ?row.address6, "external peer added");
    let view = st.store.peer_view(Some(&row.segment), &row.name).await?;
    Ok((StatusCode::CREATED, Json(config(&view))))
}

/// Query naming an optional segment.
#[derive(Debug, Deserialize)]
pub struct SegmentQuery {
    segment: Option<String>,
}

/// List external members, optionally of one segment.
#[utoipa::path(get, path = "/v1/peers", params(("segment" = Option<String>, Query, description = "only this segment")),
    responses((status = 200, body = [ExternalPeer]), (status = 404, body = ErrorBody)))]
pub async fn list(
    admin: Admin,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<SegmentQuery>,
) -> ApiResult<Json<Vec<ExternalPeer>>> {
    if let Some(s) = &q.segment {
        admin.check_segment(s)?;
        st.store.get_segment(s).await?;
    }
    let rows = st.store.list_peers(q.segment.as_deref()).await?;
    Ok(Json(
        rows.iter()
            .filter(|m| admin.sees(&m.segment))
            .map(external_peer)
            .collect(),
    ))
}

/// A scoped key learns nothing about segments outside its scope, not even a miss.
fn scoped(admin: &Admin, e: StoreError) -> ApiError {
    match (&admin.segments, e) {
        (Some(_), StoreError::NotFound(_)) => ApiError::denied(),
        (_, e) => e.into(),
    }
}

/// The external member `name` as `admin` may find it: a scoped key without `segment`
/// searches only its own segments, so neither a hit nor a conflict names another one.
async fn scoped_view(
    st: &AppState,
    admin: &Admin,
    segment: Option<&str>,
    name: &str,
) -> ApiResult<crate::store::peers::PeerView> {
    let (Some(scope), None) = (&admin.segments, segment) else {
        let view = st
            .store
            .peer_view(segment, name)
            .await
            .map_err(|e| scoped(admin, e))?;
        admin.check_segment(&view.segment.name)?;
        return Ok(view);
    };
    let mut found = Vec::new();
    for s in scope {
        match st.store.peer_view(Some(s), name).await {
            Ok(v) => found.push(v),
            Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    match found.len() {
        0 => Err(ApiError::denied()),
        1 => Ok(found.remove(0)),
        _ => Err(StoreError::Conflict(format!(
            "external peers named {name:?} exist in segments {}; name the segment with --segment",
            found
                .iter()
                .map(|v| v.segment.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into()),
    }
}

/// An external member's configuration again (the device's private key is not known).
/// Reveals the segment's preshared key, so the read is audited.
#[utoipa::path(get, path = "/v1/peers/{name}/config", params(("segment" = Option<String>, Query, description = "the peer's segment (needed when the name is in several)")),
    responses((status = 200, body = PeerConfig), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn show_config(
    admin: Admin,
    State(st): State<AppState>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<SegmentQuery>,
) -> ApiResult<Json<PeerConfig>> {
    if let Some(s) = &q.segment {
        admin.check_segment(s)?;
    }
    let view = scoped_view(&st, &admin, q.segment.as_deref(), &name).await?;
    let ctx = AuditCtx::new(
        format!("key:{}", admin.key_id),
        Some(source.ip().to_string()),
    );
    let change = Change::new(
        "peer.config",
        format!("peer:{}/{}", view.segment.name, view.peer.name),
        None,
        Some(audit::member(&view.peer)),
    );
    audit::scope(ctx, st.ops.access.append_audit(change)).await?;
    Ok(Json(config(&view)))
}

/// Remove an external member: it leaves every netmap and its address is quarantined.
#[utoipa::path(delete, path = "/v1/peers/{name}", params(("segment" = Option<String>, Query, description = "the peer's segment (needed when the name is in several)")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn remove(
    admin: Admin,
    State(st): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<SegmentQuery>,
) -> ApiResult<StatusCode> {
    if let Some(s) = &q.segment {
        admin.check_segment(s)?;
    }
    let view = scoped_view(&st, &admin, q.segment.as_deref(), &name).await?;
    let (row, touched) = st
        .store
        .remove_peer(Some(&view.segment.name), &name, now())
        .await?;
    st.commit(&touched).await;
    tracing::info!(actor = %admin.key_id, segment = %row.segment, peer = %row.name, "external peer removed");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests;
