//! Events: typed things worth telling people about, stored (so `GET /v1/events?since=`
//! survives restarts), woken to followers and handed to webhooks. Emitting never fails
//! the caller: a store failure is logged and counted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use segwire_proto::access::Event;
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::convert::{now, rfc3339};
use crate::presence::Presence;
use crate::store::access::{AccessStore, EventRow};
use crate::store::StoreResult;
use crate::webhook::Dispatcher;

/// Something that happened. Agents will report the last two (a typed hook for later).
#[derive(Debug, Clone)]
#[allow(
    dead_code,
    reason = "HandshakeFailed and DeniedFlowBurst are reported by agents (not yet)"
)]
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
    /// An agent's WireGuard handshakes to a peer keep failing (reported by agents).
    HandshakeFailed {
        /// Reporting node.
        node_id: String,
        /// Peer member.
        peer: String,
        /// Failures in the reporting window.
        failures: u64,
    },
    /// Policy denied more flows than the threshold in a window (reported by agents).
    DeniedFlowBurst {
        /// Reporting node.
        node_id: String,
        /// Segment.
        segment: String,
        /// Denied flows in the window.
        denied: u64,
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
            EventKind::HandshakeFailed {
                node_id,
                peer,
                failures,
            } => (
                "peer.handshake_failed",
                format!("node:{node_id}"),
                json!({"node_id": node_id, "peer": peer, "failures": failures}),
            ),
            EventKind::DeniedFlowBurst {
                node_id,
                segment,
                denied,
            } => (
                "flow.denied_burst",
                format!("node:{node_id}"),
                json!({"node_id": node_id, "segment": segment, "denied": denied}),
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
/// the connected-nodes gauge current. Runs until the process ends.
pub async fn monitor(presence: Arc<Presence>, events: Arc<Events>, offline_after: Duration) {
    let tick = (offline_after / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let mut interval = tokio::time::interval(tick);
    loop {
        interval.tick().await;
        let now = Instant::now();
        metrics::gauge!("segwire_connected_nodes")
            .set(presence.connected(now, Duration::from_secs(60)) as f64);
        for n in presence.sweep(now, offline_after) {
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
