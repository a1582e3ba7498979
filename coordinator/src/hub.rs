//! Wakes long-polling nodes when their netmap changes, and holds the prepared netmaps.
//!
//! One `Notify` per node that is (or was) polling. A change wakes exactly the nodes the
//! store said it touched, so a change to one segment does not wake the whole fleet.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::fanout::NetmapCache;

/// Per-node wake-up registry.
#[derive(Default)]
pub struct Hub {
    nodes: Mutex<HashMap<String, Arc<Notify>>>,
    /// Segments prepared for netmaps, per version.
    pub netmaps: NetmapCache,
}

impl Hub {
    /// The node's notifier; create the `notified()` future *before* reading the version.
    pub fn notifier(&self, node_id: &str) -> Arc<Notify> {
        let mut map = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(node_id.to_string()).or_default().clone()
    }

    /// Wakes every current long-poll (another coordinator's changes may have been missed).
    pub fn wake_all(&self) {
        let map = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        for n in map.values() {
            n.notify_waiters();
        }
    }

    /// Wakes every current long-poll of these nodes.
    pub fn wake<'a>(&self, node_ids: impl IntoIterator<Item = &'a String>) {
        let map = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        for id in node_ids {
            if let Some(n) = map.get(id) {
                n.notify_waiters();
            }
        }
    }
}
