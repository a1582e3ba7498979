//! Which nodes are polling: the basis of `node.offline` / `node.online` events and the
//! connected-nodes gauge. A node counts as present while one of its netmap long-polls is
//! open, and for a while after the last one ended. Time is passed in.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Presence of polling nodes, in memory (it starts empty at every coordinator start).
#[derive(Debug, Default)]
pub struct Presence {
    nodes: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug)]
struct Entry {
    name: String,
    open_polls: u32,
    last: Instant,
    online: bool,
    /// The netmap version the node said it applied (`since`) on its latest poll.
    applied: u64,
}

/// What presence knows of a node, for deciding whether it has applied a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Online; it last said it applied this netmap version.
    Online(u64),
    /// Known, and offline: it has not polled within the presence window.
    Offline,
    /// Not seen since this coordinator started.
    Unknown,
}

/// A node whose presence changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRef {
    /// Node id.
    pub id: String,
    /// Node name.
    pub name: String,
}

impl Presence {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A poll of the node, which has applied netmap version `applied`, started; true when
    /// the node was offline (it is back).
    #[must_use]
    pub fn poll_started(&self, id: &str, name: &str, applied: u64, now: Instant) -> bool {
        let mut map = self.lock();
        let e = map.entry(id.to_string()).or_insert_with(|| Entry {
            name: name.to_string(),
            open_polls: 0,
            last: now,
            online: true,
            applied,
        });
        e.open_polls += 1;
        e.last = now;
        e.applied = applied;
        e.name = name.to_string();
        let back = !e.online;
        e.online = true;
        back
    }

    /// A poll of the node ended (answered, timed out or the connection dropped).
    pub fn poll_ended(&self, id: &str, now: Instant) {
        if let Some(e) = self.lock().get_mut(id) {
            e.open_polls = e.open_polls.saturating_sub(1);
            e.last = now;
        }
    }

    /// Marks and returns the nodes that have had no open poll for `after`.
    #[must_use]
    pub fn sweep(&self, now: Instant, after: Duration) -> Vec<NodeRef> {
        let mut out = Vec::new();
        for (id, e) in self.lock().iter_mut() {
            if e.online && e.open_polls == 0 && now.saturating_duration_since(e.last) >= after {
                e.online = false;
                out.push(NodeRef {
                    id: id.clone(),
                    name: e.name.clone(),
                });
            }
        }
        out
    }

    /// Nodes polling now or within `within`.
    pub fn connected(&self, now: Instant, within: Duration) -> usize {
        self.lock()
            .values()
            .filter(|e| e.open_polls > 0 || now.saturating_duration_since(e.last) < within)
            .count()
    }

    /// Ids of the nodes counted online (no `node.offline` since their last poll).
    pub fn online_ids(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(_, e)| e.online)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// What is known of node `id`: online with the version it applied, offline, or unknown.
    pub fn seen(&self, id: &str) -> Seen {
        match self.lock().get(id) {
            Some(e) if e.online => Seen::Online(e.applied),
            Some(_) => Seen::Offline,
            None => Seen::Unknown,
        }
    }

    /// Stops tracking a node (it was revoked: no offline event follows).
    pub fn forget(&self, id: &str) {
        self.lock().remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_after_quiet_period_and_back_on_next_poll() {
        let p = Presence::default();
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        assert!(!p.poll_started("n1", "a", 7, t0));
        assert_eq!(p.seen("n1"), Seen::Online(7));
        assert_eq!(p.seen("n2"), Seen::Unknown);
        // An open long-poll keeps the node present however long it lasts.
        assert!(p.sweep(t0 + 100 * s, 30 * s).is_empty());
        p.poll_ended("n1", t0 + 100 * s);
        assert!(p.sweep(t0 + 129 * s, 30 * s).is_empty());
        assert_eq!(p.connected(t0 + 129 * s, 60 * s), 1);
        let off = p.sweep(t0 + 130 * s, 30 * s);
        assert_eq!(
            off,
            vec![NodeRef {
                id: "n1".into(),
                name: "a".into()
            }]
        );
        assert_eq!(p.seen("n1"), Seen::Offline);
        assert!(p.sweep(t0 + 200 * s, 30 * s).is_empty(), "reported once");
        assert_eq!(p.connected(t0 + 200 * s, 60 * s), 0);
        assert!(p.poll_started("n1", "a", 9, t0 + 201 * s), "back");
        assert_eq!(p.seen("n1"), Seen::Online(9));
        p.forget("n1");
        assert_eq!(p.connected(t0 + 201 * s, 60 * s), 0);
    }
}
