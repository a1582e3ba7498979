//! Incidents on the coordinator: what an agent's detection means (its event, whether it
//! may quarantine), a per-node budget so a flood of reports cannot flood the control
//! plane, and the timer that lifts expired quarantines.
//!
//! A node is trusted only about its own members: the API refuses a report about any
//! other member (403), and only a detection whose *offender* is that member (a scan, a
//! spoof it sent) may quarantine it. A spoof received, a denied burst or a handshake
//! failure names someone the reporting node does not own, so it is an alert only.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use segwire_policy::Trigger;
use segwire_proto::api::{DetectionKind, DetectionReport, SpoofDirection};

use crate::api::AppState;
use crate::convert::now;
use crate::events::EventKind;
use crate::store::audit::{self, AuditCtx};
use crate::store::quarantine::ACTOR_EXPIRY;
use crate::store::{MemberRow, Touched};

/// Reports one node may send per [`REPORT_WINDOW`] (agents send at most 10 per 10 s).
pub const REPORT_BUDGET: u32 = 30;
/// The window of [`REPORT_BUDGET`].
pub const REPORT_WINDOW: Duration = Duration::from_secs(10);
/// How often expired quarantines are looked for.
pub const EXPIRY_TICK: Duration = Duration::from_millis(500);
/// Most nodes whose budgets are remembered (older windows are forgotten first).
const MAX_NODES: usize = 100_000;

/// The event name of a detection: `member.scan`, `member.spoof`,
/// `peer.handshake_failed`, `member.denied_burst`.
pub fn event_name(kind: DetectionKind) -> &'static str {
    match kind {
        DetectionKind::Scan => "member.scan",
        DetectionKind::Spoof => "member.spoof",
        DetectionKind::HandshakeFailed => "peer.handshake_failed",
        DetectionKind::DeniedBurst => "member.denied_burst",
    }
}

/// The quarantine trigger of a detection whose offender is the reported member, if any.
pub fn offender_trigger(d: &DetectionReport) -> Option<Trigger> {
    match (d.kind, d.direction) {
        (DetectionKind::Scan, _) => Some(Trigger::Scan),
        (DetectionKind::Spoof, Some(SpoofDirection::Sent)) => Some(Trigger::Spoof),
        _ => None,
    }
}

/// Fixed-window report budgets per node.
#[derive(Debug, Default)]
pub struct ReportBudgets {
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl ReportBudgets {
    /// Takes one report from `node`'s budget; false when it is spent for this window.
    pub fn admit(&self, node: &str, at: Instant) -> bool {
        let mut map = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_NODES && !map.contains_key(node) {
            map.retain(|_, (start, _)| at.saturating_duration_since(*start) < REPORT_WINDOW);
        }
        let entry = map.entry(node.to_owned()).or_insert((at, 0));
        if at.saturating_duration_since(entry.0) >= REPORT_WINDOW {
            *entry = (at, 0);
        }
        if entry.1 >= REPORT_BUDGET {
            return false;
        }
        entry.1 += 1;
        true
    }
}

/// Lifts expired quarantines every [`EXPIRY_TICK`], recorded as [`ACTOR_EXPIRY`], and
/// wakes the nodes whose netmaps change. Runs until the process ends; every coordinator
/// sharing the database may run it (a quarantine is lifted once, in one transaction).
pub async fn expire_loop(st: AppState) {
    let mut tick = tokio::time::interval(EXPIRY_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let ctx = AuditCtx::new(ACTOR_EXPIRY.into(), None);
        match audit::scope(ctx, st.store.expire_quarantines(now())).await {
            Ok(released) => {
                for (m, touched) in released {
                    lifted(&st, m, &touched, ACTOR_EXPIRY.into()).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot lift expired quarantines"),
        }
    }
}

/// Publishes a lifted quarantine: wakes the nodes whose netmaps give the member its
/// peers back and emits `member.released` by `actor`.
pub async fn lifted(st: &AppState, m: MemberRow, touched: &Touched, actor: String) {
    st.commit(touched).await;
    tracing::info!(segment = %m.segment, member = %m.name, %actor, "quarantine lifted");
    st.ops
        .events
        .emit(EventKind::Released {
            segment: m.segment,
            member: m.name,
            member_id: m.id,
            actor,
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_gets_its_budget_per_window_and_others_theirs() {
        let b = ReportBudgets::default();
        let t = Instant::now();
        for _ in 0..REPORT_BUDGET {
            assert!(b.admit("a", t));
        }
        assert!(!b.admit("a", t));
        assert!(b.admit("b", t), "another node has its own budget");
        assert!(b.admit("a", t + REPORT_WINDOW), "a new window");
    }

    #[test]
    fn only_offences_of_the_reported_member_may_quarantine() {
        let report = |kind, direction| DetectionReport {
            segment: "s".into(),
            member: "m".into(),
            kind,
            direction,
            peers: vec![],
            source: None,
            count: 1,
            window_ms: 1,
        };
        assert_eq!(
            offender_trigger(&report(DetectionKind::Scan, None)),
            Some(Trigger::Scan)
        );
        let sent = report(DetectionKind::Spoof, Some(SpoofDirection::Sent));
        assert_eq!(offender_trigger(&sent), Some(Trigger::Spoof));
        for r in [
            report(DetectionKind::Spoof, Some(SpoofDirection::Received)),
            report(DetectionKind::Spoof, None),
            report(DetectionKind::HandshakeFailed, None),
            report(DetectionKind::DeniedBurst, None),
        ] {
            assert_eq!(offender_trigger(&r), None, "{r:?}");
        }
    }
}
