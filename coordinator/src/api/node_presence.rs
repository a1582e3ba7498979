//! Netmap long-poll bookkeeping: node presence (for offline/online events and the
//! connected-nodes gauge) and netmap push metrics.

use std::sync::Arc;
use std::time::Instant;

use super::AppState;
use crate::events::EventKind;
use crate::presence::Presence;
use crate::store::NodeRow;

/// Marks a node present while its long-poll is open; the poll ends when this is dropped
/// (answered, timed out or the connection closed).
pub struct PollGuard {
    presence: Arc<Presence>,
    node_id: String,
}

impl PollGuard {
    /// Starts a poll of `node`, which has applied netmap version `applied`; emits
    /// `node.online` when the node was offline (on PostgreSQL: reported offline by any
    /// coordinator; this one takes the node over when another held it).
    pub async fn start(st: &AppState, node: &NodeRow, applied: u64) -> PollGuard {
        let back = st
            .ops
            .presence
            .poll_started(&node.id, &node.name, applied, Instant::now());
        let back = match &st.ops.shared {
            Some(shared) if shared.must_claim(node.polled_by.as_deref(), back) => {
                shared.claim(&node.id, back).await
            }
            Some(_) => false,
            None => back,
        };
        if back {
            tracing::info!(node = %node.name, node_id = %node.id, "node back online");
            st.ops
                .events
                .emit(EventKind::NodeOnline {
                    node_id: node.id.clone(),
                    name: node.name.clone(),
                })
                .await;
        }
        PollGuard {
            presence: st.ops.presence.clone(),
            node_id: node.id.clone(),
        }
    }
}

impl Drop for PollGuard {
    fn drop(&mut self) {
        self.presence.poll_ended(&self.node_id, Instant::now());
    }
}

/// Counts a netmap sent to a node; `started` is when the poll woke (or began) and found it newer.
pub fn pushed(started: Instant) {
    metrics::counter!("segwire_netmaps_pushed_total").increment(1);
    metrics::histogram!("segwire_netmap_push_seconds").record(started.elapsed().as_secs_f64());
}
