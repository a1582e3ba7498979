//! `/metrics` (Prometheus text format, rendered by `metrics-exporter-prometheus`),
//! `/readyz`, and the middleware counting requests by route and status.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;

/// Counts every routed request: `segwire_http_requests_total{method,route,status}` and
/// `segwire_http_request_duration_seconds{method,route}`.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let started = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("segwire_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("segwire_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    resp
}

/// Prometheus metrics of this coordinator.
pub async fn metrics(State(st): State<AppState>) -> Response {
    let body = st
        .ops
        .prometheus
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// 200 when the database answers, else 503.
pub async fn readyz(State(st): State<AppState>) -> Response {
    let started = Instant::now();
    let result = st.ops.access.ping().await;
    metrics::histogram!("segwire_store_seconds", "op" => "ping")
        .record(started.elapsed().as_secs_f64());
    match result {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: the database does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
        }
    }
}
