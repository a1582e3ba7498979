//! Drives make-before-break key rotations through their phases (docs/psk-rotation.md).
//!
//! `segment rotate-key` publishes the next key (`accepting`). Once every live node of the
//! segment has applied that netmap, members may initiate with the new key (`switched`);
//! once every live node has applied *that*, the previous key retires. A phase also ends
//! after the grace period, so a node that never answers cannot hold a rotation forever.
//! [`decide`] is the rule, on plain values; [`drive_loop`] applies it every second.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::api::AppState;
use crate::presence::Seen;
use crate::store::audit::{self, AuditCtx};
use crate::store::{Rotation, StoreResult};

/// How often rotations in progress are looked at.
pub const TICK: Duration = Duration::from_secs(1);
/// The actor audit records of automatic phase changes name.
pub const ACTOR: &str = "coordinator:key-rotation";

/// Why a phase ends now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advance {
    /// Every live node of the segment has applied the phase (`nodes` of them).
    Acknowledged {
        /// Live nodes that acknowledged.
        nodes: usize,
    },
    /// The grace period ran out with `pending` nodes yet to acknowledge.
    GraceOver {
        /// Nodes that had not acknowledged (online behind, or not seen since start).
        pending: usize,
    },
}

/// Whether `rotation`'s phase ends at `now` (unix seconds), given what presence knows of
/// each node with a member in the segment. A node offline (no poll within the presence
/// window) is not waited for; one not seen since this coordinator started is, until the
/// grace period ends, so a coordinator restart cannot end a phase before its nodes are
/// back.
#[must_use]
pub fn decide(
    rotation: &Rotation,
    now: i64,
    grace: Duration,
    nodes: impl IntoIterator<Item = Seen>,
) -> Option<Advance> {
    let (mut acked, mut pending) = (0, 0);
    for seen in nodes {
        match seen {
            Seen::Online(applied) if applied >= rotation.version as u64 => acked += 1,
            Seen::Online(_) | Seen::Unknown => pending += 1,
            Seen::Offline => {}
        }
    }
    if pending == 0 {
        Some(Advance::Acknowledged { nodes: acked })
    } else if now.saturating_sub(rotation.since) >= grace.as_secs() as i64 {
        Some(Advance::GraceOver { pending })
    } else {
        None
    }
}

/// Moves every rotation in progress on whose phase is over, every [`TICK`], until the
/// process ends. Every coordinator sharing the database may run it: a phase moves once
/// (the store's update is conditional on the phase and its version).
pub async fn drive_loop(st: AppState, grace: Duration) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = drive_once(&st, grace).await {
            tracing::warn!(error = %e, "cannot move key rotations on; trying again in a second");
        }
    }
}

async fn drive_once(st: &AppState, grace: Duration) -> StoreResult<()> {
    for seg in st.store.rotating_segments().await? {
        let Some(rotation) = &seg.rotation else {
            continue;
        };
        // The view the netmaps are answered from, read once per segment version: the
        // drive loop runs every second on every coordinator, in the middle of fan-outs.
        let view = st
            .hub
            .netmaps
            .segment(&*st.store, &seg.id, seg.version)
            .await?;
        let nodes: BTreeSet<&str> = view.node_ids().collect();
        let now = crate::convert::now();
        let seen = nodes.iter().map(|id| st.ops.presence.seen(id));
        let Some(why) = decide(rotation, now, grace, seen) else {
            continue;
        };
        let ctx = AuditCtx::new(ACTOR.into(), None);
        let moved = audit::scope(
            ctx,
            st.store
                .advance_rotation(&seg.id, rotation.phase, rotation.version, now),
        )
        .await?;
        let Some((row, touched)) = moved else {
            continue;
        };
        st.commit(&touched).await;
        let phase = row
            .rotation
            .as_ref()
            .map_or("retired", |r| r.phase.as_str());
        match why {
            Advance::Acknowledged { nodes } => tracing::info!(
                segment = %row.name, phase, nodes,
                "key rotation moved on: every live node has the previous phase"
            ),
            Advance::GraceOver { pending } => tracing::warn!(
                segment = %row.name, phase, pending, grace = ?grace,
                "key rotation moved on after the grace period; nodes that had not applied it may lose traffic until they catch up"
            ),
        }
        metrics::counter!("segwire_key_rotation_phases_total", "phase" => phase).increment(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use segwire_proto::api::RotationPhase;

    fn rotation(version: i64, since: i64) -> Rotation {
        Rotation {
            phase: RotationPhase::Accepting,
            other_psk: "k".into(),
            version,
            since,
        }
    }

    const GRACE: Duration = Duration::from_secs(60);

    #[test]
    fn a_phase_ends_when_every_live_node_has_applied_it() {
        let r = rotation(10, 1000);
        assert_eq!(
            decide(&r, 1001, GRACE, [Seen::Online(10), Seen::Online(12)]),
            Some(Advance::Acknowledged { nodes: 2 })
        );
        assert_eq!(
            decide(&r, 1001, GRACE, [Seen::Online(10), Seen::Online(9)]),
            None,
            "one node is behind"
        );
    }

    #[test]
    fn offline_nodes_are_not_waited_for_but_unknown_ones_are_until_the_grace_ends() {
        let r = rotation(10, 1000);
        assert_eq!(
            decide(&r, 1001, GRACE, [Seen::Online(10), Seen::Offline]),
            Some(Advance::Acknowledged { nodes: 1 })
        );
        assert_eq!(decide(&r, 1059, GRACE, [Seen::Unknown]), None);
        assert_eq!(
            decide(&r, 1060, GRACE, [Seen::Unknown, Seen::Online(3)]),
            Some(Advance::GraceOver { pending: 2 })
        );
    }

    #[test]
    fn a_segment_without_live_nodes_moves_on_at_once() {
        assert_eq!(
            decide(&rotation(10, 1000), 1000, GRACE, []),
            Some(Advance::Acknowledged { nodes: 0 })
        );
    }
}
