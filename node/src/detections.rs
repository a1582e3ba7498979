//! Detections of the members' data paths, reported to the coordinator at once (not on the
//! flow-shipping cadence), within a budget per node so a flood cannot flood the control
//! plane: at most [`BUDGET`] reports per [`WINDOW`], the rest dropped and logged.

use std::time::{Duration, Instant};

use segwire_client::Client;
use segwire_datapath::Detection;
use segwire_policy::Detection as Firewall;
use segwire_proto::api::{DetectionKind, DetectionReport, SpoofDirection};
use tokio::sync::mpsc;

use crate::reconcile::MemberConfig;

/// Reports sent per [`WINDOW`] at most.
pub const BUDGET: u32 = 10;
/// The window of [`BUDGET`].
pub const WINDOW: Duration = Duration::from_secs(10);
/// Reports waiting to be sent at most (later ones are dropped).
pub const QUEUE: usize = 64;

/// The wire report of `d`, seen by `member`, with addresses and keys named from its peers.
#[must_use]
pub fn to_report(d: &Detection, member: &MemberConfig) -> DetectionReport {
    let by_address = |a: std::net::IpAddr| {
        member
            .peers
            .values()
            .find(|p| p.address.is_some_and(|a4| a4 == a) || p.address6.is_some_and(|a6| a6 == a))
            .map_or_else(|| a.to_string(), |p| p.name.clone())
    };
    let by_key = |k: &segwire_tunnel::PublicKey| member.peers.get(k).map(|p| p.name.clone());
    let (kind, direction, peers, source, count, within) = match d {
        Detection::Firewall(Firewall::Scan {
            targets,
            peers,
            within,
        }) => (
            DetectionKind::Scan,
            None,
            peers.iter().map(|a| by_address(*a)).collect(),
            None,
            *targets as u64,
            *within,
        ),
        Detection::SpoofSent {
            claimed,
            packets,
            within,
        } => (
            DetectionKind::Spoof,
            Some(SpoofDirection::Sent),
            Vec::new(),
            Some(claimed.to_string()),
            *packets,
            *within,
        ),
        Detection::SpoofReceived {
            peer,
            claimed,
            packets,
            within,
            ..
        } => (
            DetectionKind::Spoof,
            Some(SpoofDirection::Received),
            by_key(peer).into_iter().collect(),
            claimed.map(|c| c.to_string()),
            *packets,
            *within,
        ),
        Detection::HandshakeFailed {
            from,
            peer,
            failures,
            within,
        } => (
            DetectionKind::HandshakeFailed,
            None,
            peer.as_ref().and_then(by_key).into_iter().collect(),
            Some(from.to_string()),
            *failures,
            *within,
        ),
        Detection::Firewall(Firewall::DeniedBurst {
            packets,
            top_source,
            within,
        }) => (
            DetectionKind::DeniedBurst,
            None,
            vec![by_address(*top_source)],
            Some(top_source.to_string()),
            *packets,
            *within,
        ),
    };
    DetectionReport {
        segment: member.segment.clone(),
        member: member.name.clone(),
        kind,
        direction,
        peers,
        source,
        count,
        window_ms: within.as_millis().try_into().unwrap_or(u64::MAX),
    }
}

/// Sends each report as it comes, within the budget. Runs until the channel closes.
pub async fn report_loop(client: Client, mut rx: mpsc::Receiver<DetectionReport>) {
    let mut window = (Instant::now(), 0u32);
    let mut dropped = 0u64;
    while let Some(report) = rx.recv().await {
        let now = Instant::now();
        if now.duration_since(window.0) >= WINDOW {
            if dropped > 0 {
                tracing::warn!(dropped, "detections over the report budget were not sent");
                dropped = 0;
            }
            window = (now, 0);
        }
        if window.1 >= BUDGET {
            dropped += 1;
            continue;
        }
        window.1 += 1;
        match client.report_detection(&report).await {
            Ok(()) => {
                tracing::debug!(kind = ?report.kind, member = %report.member, "detection reported")
            }
            Err(e) => {
                tracing::warn!(kind = ?report.kind, member = %report.member, error = %e, "detection not reported")
            }
        }
    }
}
