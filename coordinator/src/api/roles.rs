//! Who may call what: the one table of routes and the roles they admit, and the
//! middleware that enforces it (authentication, failure rate limits, the role check and
//! the audit context of mutating requests).
//!
//! A route missing from [`ROUTES`] admits only unscoped admin keys, so forgetting an
//! entry fails closed. Denials answer 401 (no or bad credential) or 403 (not allowed),
//! both without a body; a revoked node's credential answers 401 with a `node_revoked`
//! code, and a store failure while authenticating 503.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use segwire_proto::access::Role;

use super::auth::{authenticate, Principal};
use super::error::ApiError;
use super::AppState;
use crate::ratelimit::FailureLimiter;
use crate::store::audit::{self, AuditCtx, Change};

/// What a route admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health, metrics, the OpenAPI document).
    Public,
    /// Anyone with a join token in the body (rate-limited per source address).
    Enroll,
    /// An enrolled node (acting on itself).
    Node,
    /// An API key with at least this role; segment-scoped keys too (handlers check the segment).
    Key(Role),
    /// An unscoped API key with at least this role (keys, audit, events).
    GlobalKey(Role),
    /// A node, or an API key with at least this role.
    KeyOrNode(Role),
}

use Access::*;
use Role::{Admin, Operator, Viewer};

/// Every route and what it admits: `(method, path as routed, access)`.
pub const ROUTES: &[(&str, &str, Access)] = &[
    ("GET", "/healthz", Public),
    ("GET", "/readyz", Public),
    ("GET", "/metrics", Public),
    ("GET", "/v1/openapi.json", Public),
    ("POST", "/v1/segments", Key(Operator)),
    ("GET", "/v1/segments", Key(Viewer)),
    ("GET", "/v1/segments/{name}", Key(Viewer)),
    ("PATCH", "/v1/segments/{name}", Key(Operator)),
    ("DELETE", "/v1/segments/{name}", Key(Operator)),
    ("POST", "/v1/segments/{name}/rotate-key", Key(Operator)),
    ("GET", "/v1/segments/{name}/policy", Key(Viewer)),
    ("PUT", "/v1/segments/{name}/policy", Key(Operator)),
    ("POST", "/v1/segments/{name}/policy/check", Key(Viewer)),
    ("POST", "/v1/tokens", Key(Operator)),
    ("GET", "/v1/tokens", Key(Viewer)),
    ("DELETE", "/v1/tokens/{id}", Key(Operator)),
    ("GET", "/v1/nodes", Key(Viewer)),
    ("GET", "/v1/nodes/{node}", Key(Viewer)),
    ("DELETE", "/v1/nodes/{node}", Key(Operator)),
    ("GET", "/v1/nodes/{node}/netmap", KeyOrNode(Admin)),
    ("GET", "/v1/members", Key(Viewer)),
    (
        "POST",
        "/v1/segments/{name}/members/{member}/release",
        Key(Operator),
    ),
    ("POST", "/v1/peers", Key(Operator)),
    ("GET", "/v1/peers", Key(Viewer)),
    ("GET", "/v1/peers/{name}/config", Key(Operator)),
    ("DELETE", "/v1/peers/{name}", Key(Operator)),
    ("POST", "/v1/apikeys", GlobalKey(Admin)),
    ("GET", "/v1/apikeys", GlobalKey(Admin)),
    ("DELETE", "/v1/apikeys/{id}", GlobalKey(Admin)),
    ("POST", "/v1/apikeys/rotate", Key(Viewer)),
    ("GET", "/v1/audit", GlobalKey(Viewer)),
    ("GET", "/v1/events", GlobalKey(Viewer)),
    ("POST", "/v1/enroll", Enroll),
    ("GET", "/v1/node/netmap", Node),
    ("POST", "/v1/node/members", Node),
    ("DELETE", "/v1/node/members/{id}", Node),
    ("POST", "/v1/node/endpoints", Node),
    ("POST", "/v1/node/flows", Node),
    ("POST", "/v1/node/detections", Node),
    ("GET", "/v1/flows", Key(Viewer)),
    ("GET", "/v1/whoami", Key(Viewer)),
    ("GET", "/v1/presence", Key(Viewer)),
    ("GET", "/v1/segments/{name}/policy/matrix", Key(Viewer)),
    ("POST", "/v1/segments/{name}/policy/matrix", Key(Viewer)),
];

/// What `method path` admits (unlisted routes: unscoped admin keys only). A known path
/// with a method it does not serve is public, so the router answers 405 to anyone.
pub fn access_of(method: &Method, path: &str) -> Access {
    ROUTES
        .iter()
        .find(|(m, p, _)| *m == method.as_str() && *p == path)
        .map(|(_, _, a)| *a)
        .or_else(|| ROUTES.iter().any(|(_, p, _)| *p == path).then_some(Public))
        .unwrap_or_else(|| {
            tracing::warn!(%method, path, "route missing from the access table; admitting admin keys only");
            GlobalKey(Admin)
        })
}

/// True when `principal` may use a route with `access`.
pub fn admits(access: Access, principal: &Principal) -> bool {
    match (access, principal) {
        (Public | Enroll, _) => true,
        (Node | KeyOrNode(_), Principal::Node(_)) => true,
        (Key(min) | KeyOrNode(min), Principal::Key(k)) => k.role >= min,
        (GlobalKey(min), Principal::Key(k)) => k.role >= min && k.segments.is_none(),
        _ => false,
    }
}

/// POST routes that change no configuration, so they write no audit record: a query,
/// and telemetry that nodes ship (flow logs, detections: a quarantine a detection
/// triggers is recorded with the automated actor by its handler).
const NOT_AUDITED: &[&str] = &[
    "/v1/segments/{name}/policy/check",
    "/v1/segments/{name}/policy/matrix",
    "/v1/node/flows",
    "/v1/node/detections",
];

fn is_mutating(m: &Method, route: &str) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS) && !NOT_AUDITED.contains(&route)
}

/// Counts a failure of `ip`; `Some(429)` when the address has failed too often (logs
/// the first refusal and every 100th). Called only after a credential proved wrong, so
/// a valid caller behind a noisy address is never refused.
fn throttle_failure(
    limiter: &std::sync::Mutex<FailureLimiter>,
    ip: std::net::IpAddr,
    what: &'static str,
) -> Option<ApiError> {
    let verdict = limiter
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .check_failure(ip, Instant::now());
    let t = verdict.err()?;
    metrics::counter!("segwire_rate_limited_total", "limit" => what).increment(1);
    if t.refused == 1 || t.refused % 100 == 0 {
        tracing::warn!(source = %ip, limit = what, refused = t.refused, retry_after_secs = t.retry_after.as_secs_f64().ceil(), "throttling a source address after repeated failures");
    }
    Some(ApiError::throttled(t.retry_after))
}

/// Counts a wrong join token (unknown id or wrong secret) from `ip`; `Some(429)` once
/// the address has failed too often.
pub fn enroll_failure(st: &AppState, ip: std::net::IpAddr) -> Option<ApiError> {
    throttle_failure(&st.ops.enroll_failures, ip, "enroll")
}

/// A response extension a handler sets when its request changed nothing (a repeated
/// report), so no audit record is written for it.
#[derive(Debug, Clone, Copy)]
pub struct Unchanged;

/// The authorization middleware (a route layer, so the matched path is known).
pub async fn authorize(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let source = ip.map(|i| i.to_string());
    let access = access_of(&method, &path);
    match access {
        Public => return next.run(req).await,
        Enroll => {
            // The enrol handler counts wrong tokens (see `enroll_failure`).
            let ctx = AuditCtx::new("anonymous".into(), source);
            return audit::scope(ctx, next.run(req)).await;
        }
        _ => {}
    }
    let principal = match authenticate(req.headers(), &st).await {
        Ok(p) => p,
        Err(reason) => {
            metrics::counter!("segwire_auth_failures_total", "reason" => reason.as_str())
                .increment(1);
            tracing::debug!(source = ?ip, reason = reason.as_str(), %path, "authentication failed");
            // A missing credential, a revoked node's right one and a store failure guess
            // nothing, so only wrong ones count toward the limit; a right one never does.
            if let (Some(ip), true) = (ip, reason.counts_as_guess()) {
                if let Some(refused) = throttle_failure(&st.ops.auth_failures, ip, "auth") {
                    return refused.into_response();
                }
            }
            return reason.into_error().into_response();
        }
    };
    if !admits(access, &principal) {
        metrics::counter!("segwire_access_denied_total").increment(1);
        tracing::info!(actor = %principal.actor(), %method, %path, "access denied by role");
        return ApiError::denied().into_response();
    }
    let actor = principal.actor();
    req.extensions_mut().insert(principal);
    if !is_mutating(&method, &path) {
        return next.run(req).await;
    }
    let ctx = AuditCtx::new(actor, source);
    let resp = audit::scope(ctx.clone(), next.run(req)).await;
    let unchanged = resp.extensions().get::<Unchanged>().is_some();
    if resp.status().is_success() && ctx.appended() == 0 && !unchanged {
        // A change whose store method does not record itself: record it here, late
        // rather than never.
        tracing::warn!(%method, %path, "change not audited in its transaction; recording it now");
        let change = Change::new(&format!("{method} {path}"), path.clone(), None, None);
        if let Err(e) = audit::scope(ctx, st.ops.access.append_audit(change)).await {
            tracing::error!(error = %e, "cannot write an audit record");
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for (m, p, _) in ROUTES {
            assert!(seen.insert((m, p)), "{m} {p} listed twice");
        }
        assert_eq!(access_of(&Method::GET, "/nope"), GlobalKey(Admin));
    }
}
