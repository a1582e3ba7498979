//! Small read routes the web console needs: who the caller is, which nodes are online,
//! and the policy as a reachability matrix (in force, or previewed for a draft).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use segwire_policy::Policy;
use segwire_proto::access::Role;
use segwire_proto::api::ErrorBody;
use serde::Serialize;

use super::auth::{Admin, Principal};
use super::error::{ApiError, ApiResult};
use super::AppState;
use crate::matrix::{self, Cell};
use crate::policy;

/// `GET /v1/whoami`: the calling key, so a client can offer only what its role allows.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WhoAmI {
    /// Key id (the audit actor is `key:<id>`).
    pub key_id: String,
    /// `viewer`, `operator` or `admin`.
    pub role: Role,
    /// Segments the key is limited to, or null for all.
    pub segments: Option<Vec<String>>,
    /// The key's description.
    pub description: String,
}

/// Describe the calling API key.
#[utoipa::path(get, path = "/v1/whoami", responses((status = 200, body = WhoAmI)))]
pub async fn whoami(Extension(who): Extension<Principal>) -> ApiResult<Json<WhoAmI>> {
    match who {
        Principal::Key(k) => Ok(Json(WhoAmI {
            key_id: k.id.clone(),
            role: k.role,
            segments: k.segments.clone(),
            description: k.description.clone(),
        })),
        Principal::Node(_) => Err(ApiError::denied()),
    }
}

/// `GET /v1/presence`: ids of the nodes with a netmap poll open (or just closed).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PresenceView {
    /// Ids of online nodes the caller may see, sorted.
    pub online: Vec<String>,
}

/// Which nodes are online (a scoped key: only nodes granted one of its segments).
#[utoipa::path(get, path = "/v1/presence", responses((status = 200, body = PresenceView)))]
pub async fn presence(admin: Admin, State(st): State<AppState>) -> ApiResult<Json<PresenceView>> {
    let mut online = st.ops.presence.online_ids();
    if admin.segments.is_some() {
        let nodes = st.store.list_nodes().await?;
        online.retain(|id| {
            nodes
                .iter()
                .any(|n| &n.id == id && n.segments.iter().any(|s| admin.sees(s)))
        });
    }
    online.sort();
    Ok(Json(PresenceView { online }))
}

/// The policy as a reachability matrix over the segment's members.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Matrix {
    /// Segment name.
    pub segment: String,
    /// `allow` or `deny`: the default of the policy shown.
    pub default: String,
    /// Member names, in address order: the rows and the columns.
    pub members: Vec<String>,
    /// `cells[i][j]`: what `members[i]` may open to `members[j]`.
    pub cells: Vec<Vec<Cell>>,
}

async fn build(st: &AppState, name: &str, pol: &Policy) -> ApiResult<Matrix> {
    let members = st.store.list_members(Some(name)).await?;
    let all: Vec<_> = members.iter().map(policy::member).collect();
    Ok(Matrix {
        segment: name.to_string(),
        default: pol.default.to_string(),
        members: members.iter().map(|m| m.name.clone()).collect(),
        cells: matrix::reachability(pol, &all),
    })
}

/// The matrix of the policy in force.
#[utoipa::path(get, path = "/v1/segments/{name}/policy/matrix",
    responses((status = 200, body = Matrix), (status = 404, body = ErrorBody)))]
pub async fn matrix_in_force(
    admin: Admin,
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Matrix>> {
    admin.check_segment(&name)?;
    let seg = st.store.get_segment(&name).await?;
    Ok(Json(build(&st, &name, &policy::effective(&seg)).await?))
}

/// The matrix a draft policy would give, validated exactly as `PUT …/policy` validates it;
/// nothing is saved.
#[utoipa::path(post, path = "/v1/segments/{name}/policy/matrix", request_body(content = serde_json::Value, description = "draft policy document"),
    responses((status = 200, body = Matrix), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn matrix_preview(
    admin: Admin,
    State(st): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Matrix>> {
    admin.check_segment(&name)?;
    st.store.get_segment(&name).await?;
    let draft = super::policy::parse_document(&body)?;
    Ok(Json(build(&st, &name, &draft).await?))
}
