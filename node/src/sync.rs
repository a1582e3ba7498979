//! Background tasks that talk to the coordinator: the netmap long-poll and the endpoint
//! reports. They only fetch and forward; the agent loop decides and applies.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use segwire_client::{Client, ClientError, NetmapUpdate};
use segwire_proto::api::EndpointReport;
use segwire_proto::netmap::NetMap;
use tokio::sync::{mpsc, watch};

use segwire_client::backoff::Backoff;

/// How long one long-poll waits on the coordinator.
pub const POLL_WAIT_SECS: u64 = 30;
/// How often the host's addresses are checked for changes.
const ENDPOINT_CHECK: Duration = Duration::from_secs(30);

/// How long the poller waits before asking again to confirm a revocation.
const CONFIRM_DELAY: Duration = Duration::from_millis(200);

/// What the background tasks tell the agent loop.
#[derive(Debug)]
pub enum SyncEvent {
    /// A newer netmap.
    NetMap {
        /// The whole map.
        map: Box<NetMap>,
        /// Whether it was made from a delta.
        delta: bool,
    },
    /// A request succeeded.
    Reachable,
    /// A request failed; retrying (the last netmap stays applied).
    Unreachable(String),
    /// The coordinator said twice in a row, explicitly, that the node was revoked.
    Revoked,
}

/// Long-polls the netmap forever (from the map the agent applied, asking for deltas),
/// with backoff on errors; stops after a confirmed revocation. Every other failure (a
/// bare 401, a 503, a proxy's error page, no answer) is retried and keeps the last
/// netmap. A delta is applied to the applied map and checked against its digest; one
/// that does not fit is dropped and a full map asked for at once.
pub async fn poll_netmaps(
    client: Client,
    applied: watch::Receiver<Option<Arc<NetMap>>>,
    tx: mpsc::Sender<SyncEvent>,
) {
    let mut backoff = Backoff::default();
    // After a failure the next poll does not wait, so the agent knows at once that the
    // coordinator is back (and `status` says so) rather than after a long-poll.
    let mut failing = false;
    let mut full = false;
    loop {
        let held = applied.borrow().clone();
        let since = held.as_ref().map_or(0, |m| m.version);
        let wait = if failing || full { 0 } else { POLL_WAIT_SECS };
        let mut answer = client.netmap_update(since, wait, full).await;
        if matches!(answer, Err(ClientError::Revoked)) {
            // One answer is not enough: ask again before tearing anything down.
            tracing::warn!("the coordinator says this node was revoked; asking again to confirm");
            tokio::time::sleep(CONFIRM_DELAY).await;
            answer = client.netmap_update(since, 0, full).await;
            if matches!(answer, Err(ClientError::Revoked)) {
                let _ = tx.send(SyncEvent::Revoked).await;
                return;
            }
        }
        failing = answer.is_err();
        let event = match answer {
            Ok(Some(update)) => {
                backoff.reset();
                let _ = tx.send(SyncEvent::Reachable).await;
                let delta = matches!(update, NetmapUpdate::Delta(_));
                match resolve(held.as_deref(), update) {
                    Some(map) => {
                        full = false;
                        SyncEvent::NetMap { map, delta }
                    }
                    None => {
                        full = true;
                        continue;
                    }
                }
            }
            Ok(None) => {
                backoff.reset();
                SyncEvent::Reachable
            }
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "netmap poll failed; keeping the last netmap");
                let _ = tx.send(SyncEvent::Unreachable(e.to_string())).await;
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        if tx.send(event).await.is_err() {
            return;
        }
    }
}

/// The whole map an answer brings: itself, or the delta applied to `held`; `None`
/// (logged) when the delta does not apply.
fn resolve(held: Option<&NetMap>, update: NetmapUpdate) -> Option<Box<NetMap>> {
    let delta = match update {
        NetmapUpdate::Full(map) => return Some(map),
        NetmapUpdate::Delta(d) => d,
    };
    let Some(base) = held else {
        tracing::warn!(
            base = delta.base,
            "the coordinator sent a delta but no netmap is held; asking for a full map"
        );
        return None;
    };
    match delta.apply(base) {
        Ok(map) => {
            tracing::debug!(
                base = delta.base,
                version = delta.version,
                members = delta.members.len(),
                "netmap delta applied"
            );
            Some(Box::new(map))
        }
        Err(e) => {
            tracing::warn!(error = %e, base = delta.base, version = delta.version, "netmap delta did not apply; asking for a full map");
            None
        }
    }
}

/// Reports the node's underlay addresses at start and whenever they change (`fixed`
/// instead of the host's addresses when `join --endpoint` gave one); stops when the
/// coordinator says the node was revoked.
pub async fn report_endpoints(client: Client, fixed: Option<IpAddr>) {
    let mut reported: Option<Vec<String>> = None;
    let mut backoff = Backoff::default();
    loop {
        let current: Vec<String> = match fixed {
            Some(ip) => vec![ip.to_string()],
            None => match segwire_netdev::host_addrs().await {
                Ok(ips) => ips.iter().map(ToString::to_string).collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list the host's addresses");
                    tokio::time::sleep(ENDPOINT_CHECK).await;
                    continue;
                }
            },
        };
        if reported.as_ref() == Some(&current) {
            tokio::time::sleep(ENDPOINT_CHECK).await;
            continue;
        }
        let report = EndpointReport {
            endpoints: current.clone(),
        };
        match client.report_endpoints(&report).await {
            Ok(()) => {
                tracing::info!(endpoints = ?current, "endpoints reported");
                reported = Some(current);
                backoff.reset();
            }
            // The netmap poller confirms a revocation and tells the agent.
            Err(ClientError::Revoked) => return,
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::debug!(error = %e, "endpoint report failed; will retry");
                tokio::time::sleep(delay).await;
            }
        }
    }
}
