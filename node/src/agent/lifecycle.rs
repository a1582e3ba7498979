//! Following workloads through their lifecycle: a member whose workload went away (its
//! process exited, its namespace was deleted or replaced) is detached within
//! [`super::WORKLOAD_WATCH`], and members the coordinator still lists for this node but
//! that have no local key (detached while the coordinator was unreachable) are detached
//! from the coordinator once it answers.

use std::time::{Duration, Instant};

use segwire_client::ClientError;
use segwire_netdev::ProcessWatch;

use super::Agent;
use crate::control::DetachedMember;
use crate::workload::{Liveness, Workload};

/// How long to wait before asking the coordinator again to detach a member it still lists.
/// A detach that worked drops the member from the next netmap within milliseconds, so
/// asking again is rare; one that failed (a busy or restarting coordinator) is retried
/// soon instead of leaving the coordinator with a member nobody serves.
const REAP_RETRY: Duration = Duration::from_secs(3);

impl Agent {
    /// Detaches every member whose workload is gone. Runs every [`super::WORKLOAD_WATCH`]
    /// and once at start, before the saved members are brought up again.
    pub(super) async fn check_workloads(&mut self) {
        let gone: Vec<(String, String)> = self
            .state
            .members
            .iter()
            .filter_map(|m| match m.workload.liveness(m.netns_id) {
                Liveness::Gone(why) => Some((m.id.clone(), why)),
                Liveness::Alive => None,
            })
            .collect();
        for (id, why) in gone {
            if let Some(m) = self.state.members.iter().find(|m| m.id == id) {
                tracing::info!(member = %m.name, segment = %m.segment, workload = %m.workload, "workload gone ({why}); detaching");
            }
            self.forget(&[id], "workload gone").await;
        }
        self.watch_processes();
    }

    /// Keeps one pidfd watch per member attached to a process, so its exit is seen at
    /// once (the watch wakes [`Agent::check_workloads`], which decides); the one-second
    /// check still covers a process that exits before its watch opens.
    fn watch_processes(&mut self) {
        let members = &self.state.members;
        self.process_watches.retain(|id, task| {
            let keep = members.iter().any(|m| &m.id == id) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for m in members {
            let Workload::Pid(pid) = m.workload else {
                continue;
            };
            if self.process_watches.contains_key(&m.id) {
                continue;
            }
            let Ok(watch) = ProcessWatch::open(pid) else {
                continue;
            };
            let tx = self.exits_tx.clone();
            let id = m.id.clone();
            let task = tokio::spawn(async move {
                if watch.exited().await.is_ok() {
                    let _ = tx.send(id).await;
                }
            });
            self.process_watches.insert(m.id.clone(), task);
        }
    }

    /// Detaches members here at once (data path, interface, UAPI socket, saved state) and
    /// asks the coordinator to release them in the background. When it cannot be told now,
    /// its netmap keeps listing them and [`Agent::reap_orphans`] asks again.
    pub(super) async fn forget(&mut self, ids: &[String], why: &str) -> Vec<DetachedMember> {
        let detached: Vec<DetachedMember> = self
            .state
            .members
            .iter()
            .filter(|m| ids.contains(&m.id))
            .map(|m| DetachedMember {
                id: m.id.clone(),
                name: m.name.clone(),
                segment: m.segment.clone(),
                interface: m.interface(),
            })
            .collect();
        if detached.is_empty() {
            return detached;
        }
        if !self.revoked {
            for m in &detached {
                self.tell_coordinator(&m.id);
            }
        }
        let ids: Vec<String> = detached.iter().map(|m| m.id.clone()).collect();
        self.remove_local(&ids, why).await;
        detached
    }

    /// Removes members from the saved state and the netmap copy, then reconciles (which
    /// stops their data paths and removes their interfaces).
    pub(super) async fn remove_local(&mut self, ids: &[String], why: &str) {
        let before = self.state.members.len();
        self.state.members.retain(|m| !ids.contains(&m.id));
        if self.state.members.len() != before {
            self.save_state();
        }
        if let Some(map) = &mut self.netmap {
            map.members.retain(|m| !ids.contains(&m.id));
        }
        self.reconcile(why).await;
        for id in ids {
            tracing::info!(member_id = %id, reason = why, "member detached");
        }
    }

    /// Asks the coordinator, in the background, to detach members its netmap lists for
    /// this node but that are not attached here (no key): at most every [`REAP_RETRY`] per
    /// member, and only while the netmap lists them.
    pub(super) fn reap_orphans(&mut self) {
        if self.revoked {
            return;
        }
        let Some(map) = &self.netmap else {
            return;
        };
        let orphans: Vec<String> = map
            .members
            .iter()
            .filter(|mm| !self.state.members.iter().any(|m| m.id == mm.id))
            .map(|mm| mm.id.clone())
            .collect();
        self.reaping.retain(|id, _| orphans.contains(id));
        let now = Instant::now();
        for id in orphans {
            let due = self
                .reaping
                .get(&id)
                .is_none_or(|last| now.duration_since(*last) >= REAP_RETRY);
            if due {
                self.reaping.insert(id.clone(), now);
                self.tell_coordinator(&id);
            }
        }
    }

    /// Sends one detach of member `id` to the coordinator without waiting for it.
    fn tell_coordinator(&self, id: &str) {
        let client = self.client.clone();
        let id = id.to_owned();
        tokio::spawn(async move {
            match client.detach(&id).await {
                Ok(()) | Err(ClientError::Api { status: 404, .. }) => {
                    tracing::debug!(member_id = %id, "coordinator released the member");
                }
                Err(e) => {
                    tracing::warn!(member_id = %id, error = %e, "the coordinator could not be told of a detach yet; asking again later");
                }
            }
        });
    }
}
