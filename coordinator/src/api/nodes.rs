//! Admin view of nodes and members: `/v1/nodes`, `/v1/members`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use segwire_proto::api::{ErrorBody, Member, Node};
use segwire_proto::netmap::NetMap;
use serde::Deserialize;

use super::auth::{Admin, Caller};
use super::error::{ApiError, ApiResult};
use super::AppState;
use crate::convert::{self, now};
use crate::netmap;

/// List enrolled nodes.
#[utoipa::path(get, path = "/v1/nodes", responses((status = 200, body = [Node])))]
pub async fn list(_: Admin, State(st): State<AppState>) -> ApiResult<Json<Vec<Node>>> {
    let rows = st.store.list_nodes().await?;
    Ok(Json(rows.iter().map(convert::node).collect()))
}

/// Show a node by id or name.
#[utoipa::path(get, path = "/v1/nodes/{node}", responses((status = 200, body = Node), (status = 404, body = ErrorBody)))]
pub async fn show(
    _: Admin,
    State(st): State<AppState>,
    Path(node): Path<String>,
) -> ApiResult<Json<Node>> {
    Ok(Json(convert::node(&st.store.get_node(&node).await?)))
}

/// Revoke a node: its credential stops working and its members leave every peer's netmap.
#[utoipa::path(delete, path = "/v1/nodes/{node}", responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn revoke(
    admin: Admin,
    State(st): State<AppState>,
    Path(node): Path<String>,
) -> ApiResult<StatusCode> {
    let (row, touched) = st.store.revoke_node(&node, now()).await?;
    st.hub.wake(&touched);
    tracing::info!(actor = %admin.key_id, node = %row.name, node_id = %row.id, "node revoked");
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
            st.store.get_node(&node).await?.id
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
    _: Admin,
    State(st): State<AppState>,
    Query(q): Query<MembersQuery>,
) -> ApiResult<Json<Vec<Member>>> {
    if let Some(s) = &q.segment {
        st.store.get_segment(s).await?;
    }
    let rows = st.store.list_members(q.segment.as_deref()).await?;
    let nodes = st.store.list_nodes().await?;
    Ok(Json(
        rows.iter()
            .map(|m| convert::member(m, nodes.iter().find(|n| n.id == m.node_id)))
            .collect(),
    ))
}
