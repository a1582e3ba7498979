//! What an audit record says, and who it is said about.
//!
//! The API layer knows *who* (actor, source address) and the store knows *what* (the rows
//! before and after). The authorization middleware runs every mutating request inside
//! [`scope`] with an [`AuditCtx`]; each store write transaction calls its backend's append
//! with a [`Change`] just before it commits, so the record lands in the same transaction
//! as the change. Outside a scope (bootstrap, store tests, reads) nothing is recorded.
//!
//! Before/after values are built here from allow-listed fields only, then passed through
//! [`redact`] as a second guard: no secret, preshared key or hash is ever recorded.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

use super::access::KeyRow;
use super::{MemberRow, NodeRow, SegmentRow, TokenRow};

/// Who is making the current request.
#[derive(Debug)]
pub struct AuditCtx {
    /// `key:<id>`, `node:<id>` or `anonymous`.
    pub actor: String,
    /// Source IP.
    pub source: Option<String>,
    appended: AtomicU32,
}

impl AuditCtx {
    /// A context for one request.
    pub fn new(actor: String, source: Option<String>) -> Arc<Self> {
        Arc::new(AuditCtx {
            actor,
            source,
            appended: AtomicU32::new(0),
        })
    }

    /// How many records the request has appended so far.
    pub fn appended(&self) -> u32 {
        self.appended.load(Ordering::SeqCst)
    }

    /// Counts one appended record.
    pub fn mark_appended(&self) {
        self.appended.fetch_add(1, Ordering::SeqCst);
    }
}

tokio::task_local! {
    static CTX: Arc<AuditCtx>;
}

/// Runs `fut` with `ctx` as the current request's audit context.
pub async fn scope<F: std::future::Future>(ctx: Arc<AuditCtx>, fut: F) -> F::Output {
    CTX.scope(ctx, fut).await
}

/// The current request's audit context, if any.
pub fn current() -> Option<Arc<AuditCtx>> {
    CTX.try_with(Arc::clone).ok()
}

/// One change to record.
#[derive(Debug, Clone)]
pub struct Change {
    /// What was done, e.g. `segment.create`.
    pub action: String,
    /// What it was done to, e.g. `segment:web`.
    pub target: String,
    /// Replaces the context's actor (an enrolment is done by the node it creates).
    pub actor: Option<String>,
    /// State before.
    pub before: Option<Value>,
    /// State after.
    pub after: Option<Value>,
}

impl Change {
    /// A change with before and after states.
    pub fn new(action: &str, target: String, before: Option<Value>, after: Option<Value>) -> Self {
        Change {
            action: action.to_string(),
            target,
            actor: None,
            before: before.map(redact),
            after: after.map(redact),
        }
    }
}

/// Field names whose values are never recorded.
const SECRET_FIELDS: &[&str] = &[
    "psk",
    "secret",
    "secret_hash",
    "cred_hash",
    "credential",
    "token",
    "token_secret",
    "key",
    "private_key",
];

/// Replaces the value of every secret-named field, at any depth, with `"<redacted>"`.
pub fn redact(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    if SECRET_FIELDS.contains(&k.as_str()) {
                        (k, Value::String("<redacted>".into()))
                    } else {
                        (k, redact(v))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(redact).collect()),
        other => other,
    }
}

/// A segment without its key.
pub fn segment(r: &SegmentRow) -> Value {
    json!({"id": r.id, "name": r.name, "cidr": r.net.map(|n| n.to_string()),
           "cidr6": r.net6.map(|n| n.to_string()), "default": r.default,
           "psk_version": r.psk_version, "members": r.members,
           "rotation": r.rotation.as_ref().map(|x| x.phase.as_str())})
}

/// A token without its secret.
pub fn token(r: &TokenRow) -> Value {
    json!({"id": r.id, "segments": r.segments, "labels": r.labels, "uses": r.uses,
           "uses_left": r.uses_left, "expires_at": r.expires_at, "revoked_at": r.revoked_at})
}

/// A node without its credential.
pub fn node(r: &NodeRow) -> Value {
    json!({"id": r.id, "name": r.name, "public_key": r.public_key, "segments": r.segments,
           "labels": r.labels, "endpoints": r.endpoints, "observed": r.observed})
}

/// A member (public data only).
pub fn member(r: &MemberRow) -> Value {
    json!({"id": r.id, "node_id": r.node_id, "segment": r.segment, "name": r.name,
           "workload": r.workload, "address": r.address.map(|a| a.to_string()),
           "address6": r.address6.map(|a| a.to_string()), "public_key": r.public_key,
           "listen_port": r.listen_port, "endpoints": r.endpoints, "labels": r.labels})
}

/// An API key without its secret.
pub fn api_key(r: &KeyRow) -> Value {
    json!({"id": r.id, "role": r.role, "segments": r.segments, "description": r.description,
           "expires_at": r.expires_at, "revoked_at": r.revoked_at})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_secret_fields_at_any_depth() {
        let v = json!({"name": "web", "psk": "abc", "inner": [{"secret": "s", "ok": 1}]});
        let r = redact(v);
        assert_eq!(r["psk"], "<redacted>");
        assert_eq!(r["inner"][0]["secret"], "<redacted>");
        assert_eq!(r["inner"][0]["ok"], 1);
        assert_eq!(r["name"], "web");
    }

    #[tokio::test]
    async fn context_is_visible_only_inside_its_scope() {
        assert!(current().is_none());
        let ctx = AuditCtx::new("key:k".into(), None);
        let seen = scope(ctx.clone(), async {
            current().map(|c| {
                c.mark_appended();
                c.actor.clone()
            })
        })
        .await;
        assert_eq!(seen.as_deref(), Some("key:k"));
        assert_eq!(ctx.appended(), 1);
        assert!(current().is_none());
    }
}
