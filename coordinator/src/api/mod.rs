//! The REST API: routes, shared state, OpenAPI document.

pub mod apikeys;
pub mod audit;
pub mod auth;
pub mod console;
pub mod detections;
pub mod error;
pub mod events;
pub mod flows;
pub mod json;
pub mod node_api;
pub mod node_presence;
pub mod nodes;
pub mod openapi;
pub mod peers;
pub mod policy;
pub mod query;
pub mod roles;
pub mod segments;
pub mod telemetry;
pub mod tokens;
pub mod validate;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use openapi::CommonResponses;
use segwire_proto::CaPin;
use utoipa::OpenApi;

use crate::hub::Hub;
use crate::ops::Ops;
use crate::store::Store;

/// State shared by all handlers.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Long-poll wake-ups.
    pub hub: Arc<Hub>,
    /// Coordinator URL put into join tokens.
    pub url: String,
    /// CA pin put into join tokens.
    pub pin: CaPin,
    /// Seconds a released overlay address is held back.
    pub quarantine_secs: i64,
    /// Access control and monitoring: keys, audit, events, presence, limits, metrics.
    pub ops: Arc<Ops>,
    /// Flow logs.
    pub flows: Arc<dyn crate::store::flows::FlowStore>,
    /// Seconds flow records are kept.
    pub flow_retention_secs: i64,
    /// Per-node budgets of detection reports.
    pub incidents: Arc<crate::incidents::ReportBudgets>,
    /// Connection and per-node limits.
    pub limits: Arc<crate::limits::Limits>,
    /// The live coordinators sharing the database (their URLs go into tokens and netmaps).
    pub cluster: Arc<crate::cluster::Registry>,
}

impl AppState {
    /// Publishes a committed change: tells the other coordinators on a shared PostgreSQL
    /// (one round trip), then wakes the long-polls of the nodes it touched here (each
    /// then reads only the segments whose version moved). Every write handler ends here.
    ///
    /// The others are told first: the local wake-ups make thousands of answers ready at
    /// once, and a notification queued behind them would reach the other coordinators'
    /// nodes that much later.
    ///
    /// Both run in a task of their own: a client that hangs up cancels its handler, and
    /// a change already committed must still be announced and woken.
    pub async fn commit(&self, touched: &crate::store::Touched) {
        if touched.is_empty() {
            return;
        }
        let (store, hub, touched) = (self.store.clone(), self.hub.clone(), touched.clone());
        let publish = tokio::spawn(async move {
            store.announce(&touched).await;
            hub.wake(&touched);
        });
        if let Err(e) = publish.await {
            tracing::warn!(error = %e, "publishing a change failed");
        }
    }
}

/// The OpenAPI document of `/v1`.
#[derive(OpenApi)]
#[openapi(
    modifiers(&CommonResponses),
    info(
        title = "segwire coordinator API",
        description = "Segments, join tokens, nodes, members and netmaps. Authenticate with `Authorization: Bearer <key>`."
    ),
    paths(
        segments::create,
        segments::list,
        segments::show,
        segments::delete,
        segments::update,
        segments::rotate_key,
        policy::set,
        policy::show,
        policy::check,
        tokens::create,
        tokens::list,
        tokens::revoke,
        nodes::list,
        nodes::show,
        nodes::revoke,
        nodes::netmap_of,
        nodes::members,
        node_api::enroll,
        node_api::netmap,
        node_api::attach,
        node_api::detach,
        node_api::endpoints,
        peers::add,
        peers::list,
        peers::show_config,
        peers::remove,
        flows::report,
        flows::list,
        detections::report,
        detections::release,
        apikeys::create,
        apikeys::list,
        apikeys::revoke,
        apikeys::rotate,
        audit::list,
        events::list,
        console::whoami,
        console::presence,
        console::matrix_in_force,
        console::matrix_preview,
    )
)]
pub struct ApiDoc;

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

async fn openapi() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}

async fn not_found() -> error::ApiError {
    error::ApiError::not_found("no such API route; see /v1/openapi.json")
}

/// All routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/segments", post(segments::create).get(segments::list))
        .route(
            "/v1/segments/{name}",
            get(segments::show)
                .patch(segments::update)
                .delete(segments::delete),
        )
        .route("/v1/segments/{name}/rotate-key", post(segments::rotate_key))
        .route(
            "/v1/segments/{name}/policy",
            get(policy::show)
                .put(policy::set)
                .layer(axum::extract::DefaultBodyLimit::max(
                    policy::MAX_POLICY_BYTES,
                )),
        )
        .route("/v1/segments/{name}/policy/check", post(policy::check))
        .route("/v1/tokens", post(tokens::create).get(tokens::list))
        .route("/v1/tokens/{id}", delete(tokens::revoke))
        .route("/v1/nodes", get(nodes::list))
        .route("/v1/nodes/{node}", get(nodes::show).delete(nodes::revoke))
        .route("/v1/nodes/{node}/netmap", get(nodes::netmap_of))
        .route("/v1/members", get(nodes::members))
        .route("/v1/peers", post(peers::add).get(peers::list))
        .route("/v1/peers/{name}", delete(peers::remove))
        .route("/v1/peers/{name}/config", get(peers::show_config))
        .route("/v1/enroll", post(node_api::enroll))
        .route("/v1/node/netmap", get(node_api::netmap))
        .route("/v1/node/members", post(node_api::attach))
        .route("/v1/node/members/{id}", delete(node_api::detach))
        .route("/v1/node/endpoints", post(node_api::endpoints))
        .route(
            "/v1/node/flows",
            post(flows::report).layer(axum::extract::DefaultBodyLimit::max(
                flows::MAX_REPORT_BYTES,
            )),
        )
        .route("/v1/flows", get(flows::list))
        .route("/v1/node/detections", post(detections::report))
        .route(
            "/v1/segments/{name}/members/{member}/release",
            post(detections::release),
        )
        .route("/readyz", get(telemetry::readyz))
        .route("/metrics", get(telemetry::metrics))
        .route("/v1/apikeys", post(apikeys::create).get(apikeys::list))
        .route("/v1/apikeys/rotate", post(apikeys::rotate))
        .route("/v1/apikeys/{id}", delete(apikeys::revoke))
        .route("/v1/audit", get(audit::list))
        .route("/v1/events", get(events::list))
        .route("/v1/whoami", get(console::whoami))
        .route("/v1/presence", get(console::presence))
        .route(
            "/v1/segments/{name}/policy/matrix",
            get(console::matrix_in_force)
                .post(console::matrix_preview)
                .layer(axum::extract::DefaultBodyLimit::max(
                    policy::MAX_POLICY_BYTES,
                )),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            roles::authorize,
        ))
        .route_layer(axum::middleware::from_fn(telemetry::track))
        .merge(crate::web::router())
        .fallback(not_found)
        .with_state(state)
        .layer(axum::middleware::map_request(canonical_source))
}

/// On a dual-stack listener (`--listen [::]:7443`) an IPv4 client arrives as
/// `::ffff:a.b.c.d`; every handler, the audit log and the observed endpoints see
/// `a.b.c.d`, as on an IPv4 listener.
async fn canonical_source(mut req: axum::extract::Request) -> axum::extract::Request {
    use axum::extract::ConnectInfo;
    use std::net::SocketAddr;
    if let Some(ConnectInfo(addr)) = req.extensions_mut().get_mut::<ConnectInfo<SocketAddr>>() {
        *addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
    }
    req
}
