//! Admin view of nodes and members: `/v1/nodes`, `/v1/members`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use segwire_proto::api::{ErrorBody, Member, Node};
use segwire_proto::netmap::NetMap;
use serde::Deserialize;

use super::auth::{Admin, Caller};
use super::error::{ApiError, ApiResult};
use super::query::ApiQuery;
use super::AppState;
use crate::convert::{self, now};
use crate::events::EventKind;
use crate::netmap;

/// List enrolled nodes.
#[utoipa::path(get, path = "/v1/nodes", responses((status = 200, body = [Node])))]
pub async fn list(admin: Admin, State(st): State<AppState>) -> ApiResult<Json<Vec<Node>>> {
    let rows = st.store.list_nodes().await?;
    Ok(Json(
        rows.iter()
            .filter(|n| visible(&admin, n))
            .map(|n| view(&admin, n))
            .collect(),
    ))
}

/// A scoped key sees the nodes granted at least one of its segments.
fn visible(admin: &Admin, n: &crate::store::NodeRow) -> bool {
    admin.segments.is_none() || n.segments.iter().any(|s| admin.sees(s))
}

/// A node as `admin` may see it: a scoped key sees only its own segments among the
/// node's (never the names of others).
fn view(admin: &Admin, n: &crate::store::NodeRow) -> Node {
    let mut node = convert::node(n);
    node.segments.retain(|s| admin.sees(s));
    node
}

/// Show a node by id or name.
#[utoipa::path(get, path = "/v1/nodes/{node}", responses((status = 200, body = Node), (status = 404, body = ErrorBody)))]
pub async fn show(
    admin: Admin,
    State(st): State<AppState>,
    Path(node): Path<String>,
) -> ApiResult<Json<Node>> {
    let row = st
        .store
        .get_node(&node)
        .await
        .map_err(|e| scoped_miss(&admin, e))?;
    if !visible(&admin, &row) {
        return Err(ApiError::denied());
    }
    Ok(Json(view(&admin, &row)))
}

/// A scoped key learns nothing about nodes outside its segments, not even that they are missing.
fn scoped_miss(admin: &Admin, e: crate::store::StoreError) -> ApiError {
    match (&admin.segments, e) {
        (Some(_), crate::store::StoreError::NotFound(_)) => ApiError::denied(),
        (_, e) => e.into(),
    }
}

/// Revoke a node: its credential stops working and its members leave every peer's netmap.
#[utoipa::path(delete, path = "/v1/nodes/{node}", responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn revoke(
    admin: Admin,
    State(st): State<AppState>,
    Path(node): Path<String>,
) -> ApiResult<StatusCode> {
    if admin.segments.is_some() {
        let row = st
            .store
            .get_node(&node)
            .await
            .map_err(|e| scoped_miss(&admin, e))?;
        if !admin.sees_all(row.segments.iter()) {
            return Err(ApiError::denied());
        }
    }
    let (row, touched) = st.store.revoke_node(&node, now()).await?;
    st.commit(&touched).await;
    st.ops.presence.forget(&row.id);
    tracing::info!(actor = %admin.key_id, node = %row.name, node_id = %row.id, "node revoked");
    st.ops
        .events
        .emit(EventKind::NodeRevoked {
            node_id: row.id,
            name: row.name,
            actor: format!("key:{}", admin.key_id),
        })
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// A node's netmap: an admin may read any; a node only its own (403 otherwise).
#[utoipa::path(get, path = "/v1/nodes/{node}/netmap", responses((status = 200, body = NetMap), (status = 403, body = ErrorBody)))]
pub async fn netmap_of(
    caller: Caller,
    State(st): State<AppState>,
    Path(node): Path<String>,
) -> ApiResult<Json<NetMap>> {
    let id = match caller {
        Caller::Node(n) if n.node.id == node || n.node.name == node => n.node.id,
        Caller::Node(_) => return Err(ApiError::forbidden("a node may read only its own netmap")),
        Caller::Admin(a) => {
            tracing::debug!(actor = %a.key_id, %node, "admin reads a node's netmap");
            let row = st
                .store
                .get_node(&node)
                .await
                .map_err(|e| scoped_miss(&a, e))?;
            // The netmap holds every segment of the node (and its keys): a scoped key
            // reads it only when it sees all of them.
            if !a.sees_all(row.segments.iter()) {
                return Err(ApiError::denied());
            }
            row.id
        }
    };
    Ok(Json(netmap::build(&st.store.netmap_rows(&id).await?)))
}

/// Query of `GET /v1/members`.
#[derive(Debug, Deserialize)]
pub struct MembersQuery {
    segment: Option<String>,
}

/// List members, optionally of one segment.
#[utoipa::path(get, path = "/v1/members", params(("segment" = Option<String>, Query, description = "only this segment")),
    responses((status = 200, body = [Member]), (status = 404, body = ErrorBody)))]
pub async fn members(
    admin: Admin,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<MembersQuery>,
) -> ApiResult<Json<Vec<Member>>> {
    if let Some(s) = &q.segment {
        admin.check_segment(s)?;
        st.store.get_segment(s).await?;
    }
    let rows = st.store.list_members(q.segment.as_deref()).await?;
    let nodes = st.store.list_nodes().await?;
    Ok(Json(
        rows.iter()
            .filter(|m| admin.sees(&m.segment))
            .map(|m| convert::member(m, nodes.iter().find(|n| n.id == m.node_id)))
            .collect(),
    ))
}
