//! Events: typed things worth telling people about, stored (so `GET /v1/events?since=`
//! survives restarts), woken to followers and handed to webhooks. Emitting never fails
//! the caller: a store failure is logged and counted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use segwire_proto::access::Event;
use segwire_proto::api::DetectionReport;
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::convert::{now, rfc3339};
use crate::presence::Presence;
use crate::store::access::{AccessStore, EventRow};
use crate::store::StoreResult;
use crate::webhook::Dispatcher;

/// Something that happened.
#[derive(Debug, Clone)]
pub enum EventKind {
    /// No netmap poll from the node for the configured time.
    NodeOffline {
        /// Node id.
        node_id: String,
        /// Node name.
        name: String,
        /// Seconds since its last poll ended.
        quiet_secs: u64,
    },
    /// The node polls again after being offline.
    NodeOnline {
        /// Node id.
        node_id: String,
        /// Node name.
        name: String,
    },
    /// A node was revoked.
    NodeRevoked {
        /// Node id.
        node_id: String,
        /// Node name.
        name: String,
        /// Who revoked it.
        actor: String,
    },
    /// A join token enrolled a node.
    TokenUsed {
        /// Token id.
        token_id: String,
        /// The new node's id.
        node_id: String,
        /// The new node's name.
        name: String,
        /// Source address of the enrolment.
        source: String,
    },
    /// A join token was revoked.
    TokenRevoked {
        /// Token id.
        token_id: String,
        /// Who revoked it.
        actor: String,
    },
    /// An API key was revoked (or rotated away).
    ApiKeyRevoked {
        /// Key id.
        key_id: String,
        /// Who revoked it.
        actor: String,
    },
    /// An agent's data path detected an incident (`member.scan`, `member.spoof`,
    /// `peer.handshake_failed`, `member.denied_burst`).
    Detected {
        /// The reporting node's id.
        node_id: String,
        /// The reporting node's name.
        node: String,
        /// The reported member's id (one of the reporting node's own).
        member_id: String,
        /// The detection as reported.
        report: DetectionReport,
    },
    /// A member was cut off from every peer of its segment.
    Quarantined {
        /// Segment name.
        segment: String,
        /// Member name.
        member: String,
        /// Member id.
        member_id: String,
        /// Until when (unix seconds).
        until: i64,
        /// The detection that triggered it (`scan`, `spoof`).
        reason: String,
        /// The node whose detection triggered it.
        reported_by: String,
        /// Who did it (`automated:quarantine`).
        actor: String,
    },
    /// A member's quarantine was lifted (released early or expired).
    Released {
        /// Segment name.
        segment: String,
        /// Member name.
        member: String,
        /// Member id.
        member_id: String,
        /// Who lifted it (`key:<id>` or `automated:expiry`).
        actor: String,
    },
}

impl EventKind {
    /// (kind, subject, data) as stored and sent.
    pub fn parts(&self) -> (&'static str, String, Value) {
        match self {
            EventKind::NodeOffline {
                node_id,
                name,
                quiet_secs,
            } => (
                "node.offline",
                format!("node:{node_id}"),
                json!({"node_id": node_id, "name": name, "quiet_secs": quiet_secs}),
            ),
            EventKind::NodeOnline { node_id, name } => (
                "node.online",
                format!("node:{node_id}"),
                json!({"node_id": node_id, "name": name}),
            ),
            EventKind::NodeRevoked {
                node_id,
                name,
                actor,
            } => (
                "node.revoked",
                format!("node:{node_id}"),
                json!({"node_id": node_id, "name": name, "actor": actor}),
            ),
            EventKind::TokenUsed {
                token_id,
                node_id,
                name,
                source,
            } => (
                "token.used",
                format!("token:{token_id}"),
                json!({"token_id": token_id, "node_id": node_id, "name": name, "source": source}),
            ),
            EventKind::TokenRevoked { token_id, actor } => (
                "token.revoked",
                format!("token:{token_id}"),
                json!({"token_id": token_id, "actor": actor}),
            ),
            EventKind::ApiKeyRevoked { key_id, actor } => (
                "apikey.revoked",
                format!("apikey:{key_id}"),
                json!({"key_id": key_id, "actor": actor}),
            ),
            EventKind::Detected {
                node_id,
                node,
                member_id,
                report,
            } => (
                crate::incidents::event_name(report.kind),
                format!("member:{member_id}"),
                json!({
                    "segment": report.segment,
                    "member": report.member,
                    "member_id": member_id,
                    "peer": report.peers.first(),
                    "peers": report.peers,
                    "source": report.source,
                    "direction": report.direction,
                    "count": report.count,
                    "window_ms": report.window_ms,
                    "reported_by": node,
                    "node_id": node_id,
                }),
            ),
            EventKind::Quarantined {
                segment,
                member,
                member_id,
                until,
                reason,
                reported_by,
                actor,
            } => (
                "member.quarantined",
                format!("member:{member_id}"),
                json!({"segment": segment, "member": member, "member_id": member_id,
                       "until": rfc3339(*until), "reason": reason, "reported_by": reported_by,
                       "actor": actor}),
            ),
            EventKind::Released {
                segment,
                member,
                member_id,
                actor,
            } => (
                "member.released",
                format!("member:{member_id}"),
                json!({"segment": segment, "member": member, "member_id": member_id,
                       "actor": actor}),
            ),
        }
    }
}

/// A stored event as the API shows it.
pub fn to_wire(r: &EventRow) -> Event {
    Event {
        id: r.id as u64,
        at: rfc3339(r.at),
        kind: r.kind.clone(),
        subject: r.subject.clone(),
        data: serde_json::from_str(&r.data).unwrap_or(Value::Null),
    }
}

/// The event bus.
pub struct Events {
    store: Arc<dyn AccessStore>,
    new_event: Notify,
    webhooks: Dispatcher,
}

impl Events {
    /// A bus storing into `store` and delivering to `webhooks`.
    pub fn new(store: Arc<dyn AccessStore>, webhooks: Dispatcher) -> Self {
        Events {
            store,
            new_event: Notify::new(),
            webhooks,
        }
    }

    /// Records, wakes followers and queues webhooks. Never fails the caller.
    pub async fn emit(&self, kind: EventKind) {
        let (name, subject, data) = kind.parts();
        metrics::counter!("segwire_events_total", "kind" => name).increment(1);
        match self
            .store
            .append_event(name, &subject, &data.to_string(), now())
            .await
        {
            Ok(row) => {
                tracing::info!(event_id = row.id, kind = name, %subject, "event");
                self.new_event.notify_waiters();
                self.webhooks.send(Arc::new(to_wire(&row)));
            }
            Err(e) => tracing::error!(kind = name, %subject, error = %e, "cannot store an event"),
        }
    }

    /// Events after `since`; with `wait`, waits up to that long for the first new one.
    pub async fn list(&self, since: i64, limit: i64, wait: Duration) -> StoreResult<Vec<Event>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.new_event.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let rows = self.store.events(since, limit).await?;
            if !rows.is_empty() || tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(rows.iter().map(to_wire).collect());
            }
        }
    }
}

/// Watches presence: emits `node.offline` after `offline_after` without a poll and keeps
/// the connected-nodes gauge current. Runs until the process ends. With `shared`, a quiet
/// node another coordinator took over is forgotten here instead (that one reports it).
pub async fn monitor(
    presence: Arc<Presence>,
    events: Arc<Events>,
    offline_after: Duration,
    shared: Option<crate::cluster::SharedPresence>,
) {
    let tick = (offline_after / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let mut interval = tokio::time::interval(tick);
    loop {
        interval.tick().await;
        let now = Instant::now();
        metrics::gauge!("segwire_connected_nodes")
            .set(presence.connected(now, Duration::from_secs(60)) as f64);
        for n in presence.sweep(now, offline_after) {
            if let Some(shared) = &shared {
                if !shared.report_offline(&n.id).await {
                    tracing::debug!(node = %n.name, node_id = %n.id, "node polls another coordinator now");
                    presence.forget(&n.id);
                    continue;
                }
            }
            tracing::warn!(node = %n.name, node_id = %n.id, "node offline: no netmap poll");
            events
                .emit(EventKind::NodeOffline {
                    node_id: n.id,
                    name: n.name,
                    quiet_secs: offline_after.as_secs(),
                })
                .await;
        }
    }
}
