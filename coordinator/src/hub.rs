//! Wakes long-polling nodes when their netmap changes, and holds the prepared netmaps and
//! the versions each polling node's netmap was last read at.
//!
//! One slot per node that is (or was) polling. A change wakes exactly the nodes the
//! store said it touched, so a change to one segment does not wake the whole fleet.
//!
//! Every change that moves a node's versions wakes that node (here through
//! `AppState::commit`, from another coordinator through its notification), and a wake
//! forgets the node's remembered versions. So a poll that was not woken may answer "no
//! change" from memory instead of asking the database: after a change, each node's
//! versions are read once (when its poll wakes), and its next poll costs no query.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::fanout::NetmapCache;
use crate::store::NodeVersions;

/// Longest a node's remembered versions are trusted without a fresh read. A poll that
/// answered "no change" from memory reads them again once they expire, so a change whose
/// wake-up was missed (its write handler was cancelled by the client hanging up between
/// the commit and the wake) is seen within this bound. An agent's next poll follows its
/// answer within milliseconds, well inside it.
pub const VERSIONS_TTL: Duration = Duration::from_secs(2);

/// Per-node wake-up registry.
#[derive(Default)]
pub struct Hub {
    inner: Mutex<Inner>,
    /// Segments prepared for netmaps, per version.
    pub netmaps: NetmapCache,
}

#[derive(Default)]
struct Inner {
    nodes: HashMap<String, Slot>,
    /// Bumped by [`Hub::wake_all`]: versions remembered before it are not used.
    epoch: u64,
}

#[derive(Default)]
struct Slot {
    notify: Arc<Notify>,
    /// Bumped by every wake of this node.
    wakes: u64,
    /// The versions last read, the epoch they were read in, and when.
    versions: Option<(NodeVersions, u64, Instant)>,
}

/// Where a poll stood when it looked for remembered versions: what it reads from the
/// store is remembered only if no wake came in between.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    wakes: u64,
    epoch: u64,
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The node's notifier; create the `notified()` future *before* reading the version.
    pub fn notifier(&self, node_id: &str) -> Arc<Notify> {
        self.lock()
            .nodes
            .entry(node_id.to_string())
            .or_default()
            .notify
            .clone()
    }

    /// The node's versions as last read and when they expire, unless a wake or
    /// [`VERSIONS_TTL`] has passed since; and the ticket to [`remember`](Self::remember) a
    /// fresh read with.
    pub fn versions(
        &self,
        node_id: &str,
        now: Instant,
    ) -> (Option<(NodeVersions, Instant)>, Ticket) {
        let mut inner = self.lock();
        let epoch = inner.epoch;
        let slot = inner.nodes.entry(node_id.to_string()).or_default();
        let ticket = Ticket {
            wakes: slot.wakes,
            epoch,
        };
        let known = match &slot.versions {
            Some((v, e, at))
                if *e == epoch && now.saturating_duration_since(*at) < VERSIONS_TTL =>
            {
                Some((v.clone(), *at + VERSIONS_TTL))
            }
            _ => None,
        };
        (known, ticket)
    }

    /// Remembers versions read from the store since `ticket` was taken, unless the node
    /// was woken in between (the read may predate that change).
    pub fn remember(&self, node_id: &str, ticket: Ticket, versions: &NodeVersions, now: Instant) {
        let mut inner = self.lock();
        let epoch = inner.epoch;
        if let Some(slot) = inner.nodes.get_mut(node_id) {
            if slot.wakes == ticket.wakes && epoch == ticket.epoch {
                slot.versions = Some((versions.clone(), epoch, now));
            }
        }
    }

    /// Wakes every current long-poll (another coordinator's changes may have been missed)
    /// and forgets every node's versions.
    pub fn wake_all(&self) {
        let mut inner = self.lock();
        inner.epoch += 1;
        for slot in inner.nodes.values_mut() {
            slot.versions = None;
            slot.notify.notify_waiters();
        }
    }

    /// Wakes every current long-poll of these nodes and forgets their versions.
    pub fn wake<'a>(&self, node_ids: impl IntoIterator<Item = &'a String>) {
        let mut inner = self.lock();
        for id in node_ids {
            if let Some(slot) = inner.nodes.get_mut(id) {
                slot.wakes += 1;
                slot.versions = None;
                slot.notify.notify_waiters();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(n: i64) -> NodeVersions {
        NodeVersions {
            node: n,
            segments: vec![("s1".into(), n)],
            live: true,
        }
    }

    #[test]
    fn remembered_versions_serve_until_the_node_is_woken() {
        let hub = Hub::default();
        let t0 = Instant::now();
        let (known, ticket) = hub.versions("a", t0);
        assert!(known.is_none());
        hub.remember("a", ticket, &v(1), t0);
        assert_eq!(hub.versions("a", t0).0, Some((v(1), t0 + VERSIONS_TTL)));
        hub.wake([&"b".to_string()]);
        assert_eq!(
            hub.versions("a", t0).0.map(|k| k.0),
            Some(v(1)),
            "another node's wake"
        );
        hub.wake([&"a".to_string()]);
        assert_eq!(hub.versions("a", t0).0.map(|k| k.0), None);
    }

    #[test]
    fn a_read_that_a_wake_overtook_is_not_remembered() {
        let hub = Hub::default();
        let t0 = Instant::now();
        let (_, ticket) = hub.versions("a", t0);
        // The change commits and wakes the node while the poll is reading the old versions.
        hub.wake([&"a".to_string()]);
        hub.remember("a", ticket, &v(1), t0);
        assert_eq!(hub.versions("a", t0).0.map(|k| k.0), None);
        let (_, ticket) = hub.versions("a", t0);
        hub.wake_all();
        hub.remember("a", ticket, &v(1), t0);
        assert_eq!(
            hub.versions("a", t0).0.map(|k| k.0),
            None,
            "overtaken by wake_all"
        );
    }

    #[test]
    fn wake_all_and_age_forget_remembered_versions() {
        let hub = Hub::default();
        let t0 = Instant::now();
        let (_, ticket) = hub.versions("a", t0);
        hub.remember("a", ticket, &v(1), t0);
        assert_eq!(
            hub.versions("a", t0 + VERSIONS_TTL).0.map(|k| k.0),
            None,
            "too old"
        );
        assert_eq!(hub.versions("a", t0).0.map(|k| k.0), Some(v(1)));
        hub.wake_all();
        assert_eq!(hub.versions("a", t0).0.map(|k| k.0), None);
    }
}
