//! `segwire-node run --metrics-listen ADDR`: Prometheus metrics at `/metrics`, liveness at
//! `/healthz` and readiness at `/readyz`.
//!
//! The HTTP side never touches the agent's state. It sends a [`Probe`] to the agent loop,
//! which answers between two other events with a [`Sample`]: the loop's own state and every
//! running member's [`MemberStats`]. The sample is turned into metrics here, outside the
//! loop. A scrape (and `/readyz`) asks for a fresh sample; a background task asks every
//! [`REFRESH_EVERY`] so that `/healthz` knows the loop still answers.
//!
//! The data path's counters start from zero when a member's data path restarts; the
//! exported counters do not: each refresh adds what grew since the last one (all of a
//! smaller value, after a reset), so they only ever go up. Series of peers and members
//! that are gone are dropped from the output after [`IDLE_TIMEOUT`]. No label ever holds a
//! key: members and peers are named by their member names.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics::Label;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use metrics_util::MetricKindMask;
use segwire_tunnel::{DropCounts, DropReason, TrafficCounters};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::member::{MemberHandle, MemberStats};
use crate::reconcile::NodeConfig;
use crate::state::LocalMember;

/// How long a request waits for the agent loop to answer a probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the background task asks the loop for a sample.
const REFRESH_EVERY: Duration = Duration::from_secs(10);
/// `/healthz` fails when the loop has not answered for this long (longer than the
/// slowest thing the loop does between two events: an attach waits up to 10 s).
const STALE_AFTER: Duration = Duration::from_secs(30);
/// Series not refreshed for this long (gone peers and members) leave the output.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// What the agent loop reports to the metrics side.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Whether the agent has a netmap (fresh, or restored from the saved state).
    pub netmap_applied: bool,
    /// Version of that netmap (0: none).
    pub netmap_version: u64,
    /// Whether the last request to the coordinator succeeded.
    pub coordinator_reachable: bool,
    /// Whether the coordinator revoked the node.
    pub revoked: bool,
    /// Every local member.
    pub members: Vec<MemberSample>,
}

/// One local member in a [`Sample`].
#[derive(Debug, Clone)]
pub struct MemberSample {
    /// Member name.
    pub name: String,
    /// Segment.
    pub segment: String,
    /// Its data path's counters; `None` when the data path does not run.
    pub stats: Option<MemberStats>,
    /// The peer names, in the order of `stats.router.peers` (`?` when unknown).
    pub peer_names: Vec<String>,
}

/// Gathers the members' samples: `members` are the local members, `applied` their running
/// configuration and `running` their data paths (by member id).
pub async fn sample_members(
    members: &[LocalMember],
    applied: &NodeConfig,
    running: &HashMap<String, MemberHandle>,
) -> Vec<MemberSample> {
    let mut out = Vec::with_capacity(members.len());
    for local in members {
        let stats = match running.get(&local.id) {
            Some(h) => h.status().await,
            None => None,
        };
        let config = applied.members.get(&local.id);
        let peer_names = stats.as_ref().map_or_else(Vec::new, |s| {
            s.router
                .peers
                .iter()
                .map(|p| {
                    config
                        .and_then(|c| c.peers.get(&p.public_key))
                        .map_or_else(|| "?".to_owned(), |spec| spec.name.clone())
                })
                .collect()
        });
        out.push(MemberSample {
            name: local.name.clone(),
            segment: local.segment.clone(),
            stats,
            peer_names,
        });
    }
    out
}

/// A request for a [`Sample`], answered by the agent loop.
#[derive(Debug)]
pub struct Probe(oneshot::Sender<Sample>);

impl Probe {
    /// Answers the probe (nothing happens when the asker gave up).
    pub fn answer(self, sample: Sample) {
        let _ = self.0.send(sample);
    }
}

/// The agent loop's end: probes to answer, and the HTTP tasks (stopped on drop).
#[derive(Debug, Default)]
pub struct Probes {
    rx: Option<mpsc::Receiver<Probe>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Probes {
    /// The next probe; never resolves when metrics are off.
    pub async fn next(&mut self) -> Option<Probe> {
        match &mut self.rx {
            Some(rx) => rx.recv().await,
            None => std::future::pending().await,
        }
    }
}

impl Drop for Probes {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Starts serving `/metrics`, `/healthz` and `/readyz` on `listen`; with `None` nothing is
/// served and the returned [`Probes`] never yields.
///
/// # Errors
/// When the address cannot be bound.
pub async fn start(listen: Option<SocketAddr>) -> anyhow::Result<Probes> {
    let Some(addr) = listen else {
        return Ok(Probes::default());
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for --metrics-listen"))?;
    let (tx, rx) = mpsc::channel(8);
    let exporter = Arc::new(Exporter::new(tx));
    let app = axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(exporter.clone());
    tracing::info!(listen = %addr, "serving /metrics, /healthz and /readyz");
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics listener failed");
        }
    });
    let refresher = tokio::spawn(async move {
        let mut tick = tokio::time::interval(REFRESH_EVERY);
        loop {
            tick.tick().await;
            exporter.refresh().await;
        }
    });
    Ok(Probes {
        rx: Some(rx),
        tasks: vec![server, refresher],
    })
}

async fn metrics(State(e): State<Arc<Exporter>>) -> Response {
    e.refresh().await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        e.recorder.handle().render(),
    )
        .into_response()
}

async fn healthz(State(e): State<Arc<Exporter>>) -> Response {
    let since = e.lock().last_answer.elapsed();
    if since < STALE_AFTER {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        let msg = format!("the agent loop has not answered for {}s\n", since.as_secs());
        (StatusCode::SERVICE_UNAVAILABLE, msg).into_response()
    }
}

async fn readyz(State(e): State<Arc<Exporter>>) -> Response {
    let fresh = e.refresh().await;
    let ready = e.lock().ready.clone();
    match (fresh, ready) {
        (false, _) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the agent loop did not answer within {}s\n",
                PROBE_TIMEOUT.as_secs()
            ),
        )
            .into_response(),
        (true, Ok(())) => (StatusCode::OK, "ready\n").into_response(),
        (true, Err(reason)) => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")).into_response()
        }
    }
}

/// Whether a sample means ready: a netmap is applied and every member's data path runs.
///
/// # Errors
/// The first reason it is not, in one line.
pub fn readiness(sample: &Sample) -> Result<(), String> {
    if sample.revoked {
        return Err("not ready: the coordinator revoked this node".into());
    }
    if !sample.netmap_applied {
        return Err("not ready: no netmap applied yet".into());
    }
    let down: Vec<String> = sample
        .members
        .iter()
        .filter(|m| m.stats.is_none())
        .map(|m| format!("{} ({})", m.name, m.segment))
        .collect();
    if down.is_empty() {
        Ok(())
    } else {
        Err(format!("not ready: data path down for {}", down.join(", ")))
    }
}

/// The metrics side: the recorder, the way to the loop, what was published last.
struct Exporter {
    recorder: PrometheusRecorder,
    probe_tx: mpsc::Sender<Probe>,
    published: Mutex<Published>,
}

struct Published {
    /// The last absolute value of every counter series, by series key.
    totals: HashMap<String, u64>,
    ready: Result<(), String>,
    last_answer: Instant,
}

impl Exporter {
    fn new(probe_tx: mpsc::Sender<Probe>) -> Self {
        let recorder = PrometheusBuilder::new()
            .idle_timeout(MetricKindMask::ALL, Some(IDLE_TIMEOUT))
            .build_recorder();
        metrics::with_local_recorder(&recorder, describe);
        Self {
            recorder,
            probe_tx,
            published: Mutex::new(Published {
                totals: HashMap::new(),
                ready: Err("not ready: the agent loop has not answered yet".into()),
                last_answer: Instant::now(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Published> {
        self.published
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks the loop for a sample and publishes it; false when the loop did not answer.
    async fn refresh(&self) -> bool {
        let (tx, rx) = oneshot::channel();
        let asked = tokio::time::timeout(PROBE_TIMEOUT, self.probe_tx.send(Probe(tx))).await;
        if !matches!(asked, Ok(Ok(()))) {
            return false;
        }
        match tokio::time::timeout(PROBE_TIMEOUT, rx).await {
            Ok(Ok(sample)) => {
                self.publish(&sample);
                true
            }
            _ => false,
        }
    }

    fn publish(&self, sample: &Sample) {
        let mut published = self.lock();
        published.ready = readiness(sample);
        published.last_answer = Instant::now();
        metrics::with_local_recorder(&self.recorder, || {
            let mut round = Round {
                totals: &mut published.totals,
                seen: HashSet::new(),
            };
            round.sample(sample);
            let seen = round.seen;
            published.totals.retain(|k, _| seen.contains(k));
        });
    }
}

/// One publication: sets every series from a sample.
struct Round<'a> {
    totals: &'a mut HashMap<String, u64>,
    seen: HashSet<String>,
}

impl Round<'_> {
    fn sample(&mut self, s: &Sample) {
        gauge(NETMAP_VERSION, &[], s.netmap_version as f64);
        gauge(
            COORDINATOR_REACHABLE,
            &[],
            bool_value(s.coordinator_reachable),
        );
        gauge(REVOKED, &[], bool_value(s.revoked));
        gauge(READY, &[], bool_value(readiness(s).is_ok()));
        for m in &s.members {
            self.member(m);
        }
    }

    fn member(&mut self, m: &MemberSample) {
        let labels = [("segment", m.segment.as_str()), ("member", m.name.as_str())];
        gauge(MEMBER_UP, &labels, bool_value(m.stats.is_some()));
        let Some(stats) = &m.stats else {
            return;
        };
        let r = &stats.router;
        self.drops(MEMBER_DROPS, &labels, &r.drops);
        self.counter(
            MEMBER_DROPS,
            &[labels[0], labels[1], ("reason", "tun_write_error")],
            stats.tun_write_errors,
        );
        self.counter(
            MEMBER_DROPS,
            &[labels[0], labels[1], ("reason", "udp_send_error")],
            stats.udp_send_errors,
        );
        self.counter(
            DECRYPT_FAILURES,
            &labels,
            r.drops.get(DropReason::DecryptFailed),
        );
        let io = &stats.io;
        gauge(TUN_OFFLOAD, &labels, bool_value(io.tun_offload));
        gauge(UDP_GSO_SEGMENTS, &labels, io.udp_gso_segments as f64);
        gauge(UDP_GRO_SEGMENTS, &labels, io.udp_gro_segments as f64);
        gauge(HOME_CPU, &labels, io.home_cpu.map_or(-1.0, |c| c as f64));
        for (name, value) in [
            (TUN_READS, io.tun_reads),
            (TUN_READ_PACKETS, io.tun_read_packets),
            (UDP_RECV_CALLS, io.udp_recv_calls),
            (UDP_RECV_DATAGRAMS, io.udp_recv_datagrams),
            (UDP_SEND_CALLS, io.udp_send_calls),
            (UDP_SENT_DATAGRAMS, io.udp_sent_datagrams),
            (PLACEMENT_MOVES, io.placement_moves),
        ] {
            self.counter(name, &labels, value);
        }
        let fw = &stats.firewall;
        self.counter(POLICY_ALLOWED, &labels, fw.allowed);
        self.counter(POLICY_DENIED, &labels, fw.denied);
        self.counter(POLICY_DENIED_BY_DEFAULT, &labels, fw.denied_by_default);
        self.counter(POLICY_NEW_CONNECTIONS, &labels, fw.new_connections);
        gauge(CONNTRACK_ENTRIES, &labels, fw.conntrack_entries as f64);
        self.counter(CONNTRACK_EVICTIONS, &labels, fw.conntrack_evictions);
        for (i, (rule, allowed)) in stats.rules.iter().enumerate() {
            let rule = if rule.is_empty() {
                format!("#{i}")
            } else {
                rule.clone()
            };
            self.counter(
                RULE_ALLOWED,
                &[labels[0], labels[1], ("rule", rule.as_str())],
                *allowed,
            );
        }
        for (p, peer) in r.peers.iter().zip(&m.peer_names) {
            let labels = [labels[0], labels[1], ("peer", peer.as_str())];
            self.traffic(&labels, &p.traffic);
            self.counter(PEER_HANDSHAKES, &labels, p.handshakes);
            if let Some(ago) = p.last_handshake_ago {
                gauge(PEER_LAST_HANDSHAKE, &labels, ago.as_secs_f64());
            }
            self.drops(PEER_DROPS, &labels, &p.drops);
        }
    }

    fn traffic(&mut self, labels: &[(&'static str, &str)], t: &TrafficCounters) {
        self.counter(PEER_RX_BYTES, labels, t.rx_bytes);
        self.counter(PEER_TX_BYTES, labels, t.tx_bytes);
        self.counter(PEER_RX_PACKETS, labels, t.rx_packets);
        self.counter(PEER_TX_PACKETS, labels, t.tx_packets);
    }

    /// Every reason, zeros included, so that rates work from the first drop.
    fn drops(&mut self, name: &'static str, labels: &[(&'static str, &str)], d: &DropCounts) {
        for reason in DropReason::ALL {
            let mut l = labels.to_vec();
            l.push(("reason", reason.as_str()));
            self.counter(name, &l, d.get(reason));
        }
    }

    /// Brings a counter series up to `value` (all of `value` after a reset).
    fn counter(&mut self, name: &'static str, labels: &[(&'static str, &str)], value: u64) {
        let mut key = name.to_owned();
        for (k, v) in labels {
            let _ = write!(key, "\u{0}{k}={v}");
        }
        let last = self.totals.insert(key.clone(), value);
        let delta = match last {
            Some(last) if value >= last => value - last,
            _ => value,
        };
        self.seen.insert(key);
        metrics::counter!(name, to_labels(labels)).increment(delta);
    }
}

fn gauge(name: &'static str, labels: &[(&'static str, &str)], value: f64) {
    metrics::gauge!(name, to_labels(labels)).set(value);
}

fn to_labels(labels: &[(&'static str, &str)]) -> Vec<Label> {
    labels
        .iter()
        .map(|(k, v)| Label::new(*k, (*v).to_owned()))
        .collect()
}

fn bool_value(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// Metric names (documented in docs/access-control-and-monitoring.md, "Agent metrics").
const NETMAP_VERSION: &str = "segwire_node_netmap_version";
const COORDINATOR_REACHABLE: &str = "segwire_node_coordinator_reachable";
const REVOKED: &str = "segwire_node_revoked";
const READY: &str = "segwire_node_ready";
const MEMBER_UP: &str = "segwire_node_member_up";
const MEMBER_DROPS: &str = "segwire_node_member_drops_total";
const DECRYPT_FAILURES: &str = "segwire_node_decrypt_failures_total";
const POLICY_ALLOWED: &str = "segwire_node_policy_allowed_packets_total";
const POLICY_DENIED: &str = "segwire_node_policy_denied_packets_total";
const POLICY_DENIED_BY_DEFAULT: &str = "segwire_node_policy_denied_by_default_packets_total";
const POLICY_NEW_CONNECTIONS: &str = "segwire_node_policy_connections_total";
const RULE_ALLOWED: &str = "segwire_node_policy_rule_allowed_packets_total";
const CONNTRACK_ENTRIES: &str = "segwire_node_conntrack_entries";
const CONNTRACK_EVICTIONS: &str = "segwire_node_conntrack_evictions_total";
const PEER_RX_BYTES: &str = "segwire_node_peer_rx_bytes_total";
const PEER_TX_BYTES: &str = "segwire_node_peer_tx_bytes_total";
const PEER_RX_PACKETS: &str = "segwire_node_peer_rx_packets_total";
const PEER_TX_PACKETS: &str = "segwire_node_peer_tx_packets_total";
const PEER_HANDSHAKES: &str = "segwire_node_peer_handshakes_total";
const PEER_LAST_HANDSHAKE: &str = "segwire_node_peer_last_handshake_seconds";
const PEER_DROPS: &str = "segwire_node_peer_drops_total";
const TUN_OFFLOAD: &str = "segwire_node_member_tun_offload";
const UDP_GSO_SEGMENTS: &str = "segwire_node_member_udp_gso_segments";
const UDP_GRO_SEGMENTS: &str = "segwire_node_member_udp_gro_segments";
const TUN_READS: &str = "segwire_node_member_tun_reads_total";
const TUN_READ_PACKETS: &str = "segwire_node_member_tun_read_packets_total";
const UDP_RECV_CALLS: &str = "segwire_node_member_udp_recv_calls_total";
const UDP_RECV_DATAGRAMS: &str = "segwire_node_member_udp_recv_datagrams_total";
const UDP_SEND_CALLS: &str = "segwire_node_member_udp_send_calls_total";
const UDP_SENT_DATAGRAMS: &str = "segwire_node_member_udp_sent_datagrams_total";
const HOME_CPU: &str = "segwire_node_member_home_cpu";
const PLACEMENT_MOVES: &str = "segwire_node_member_placement_moves_total";

fn describe() {
    use metrics::{describe_counter, describe_gauge};
    describe_gauge!(
        NETMAP_VERSION,
        "Version of the netmap the agent serves (0: none)."
    );
    describe_gauge!(
        COORDINATOR_REACHABLE,
        "1 when the last request to the coordinator succeeded."
    );
    describe_gauge!(REVOKED, "1 when the coordinator revoked this node.");
    describe_gauge!(
        READY,
        "1 when a netmap is applied and every member's data path runs (as /readyz)."
    );
    describe_gauge!(MEMBER_UP, "1 when the member's data path runs.");
    describe_counter!(
        MEMBER_DROPS,
        "Packets and datagrams the member dropped, by reason (all peers and none)."
    );
    describe_counter!(
        DECRYPT_FAILURES,
        "Data packets that failed authentication (drop reason decrypt_failed)."
    );
    describe_counter!(POLICY_ALLOWED, "Packets the member's firewall allowed.");
    describe_counter!(POLICY_DENIED, "Packets the member's firewall denied.");
    describe_counter!(
        POLICY_DENIED_BY_DEFAULT,
        "Packets denied because no rule allows them and the default is deny."
    );
    describe_counter!(POLICY_NEW_CONNECTIONS, "Connections newly tracked.");
    describe_counter!(
        RULE_ALLOWED,
        "Packets allowed per rule of the policy in force (opening and tracked)."
    );
    describe_gauge!(CONNTRACK_ENTRIES, "Connections tracked now.");
    describe_counter!(
        CONNTRACK_EVICTIONS,
        "Tracked connections evicted because the table was full."
    );
    describe_counter!(PEER_RX_BYTES, "Inner packet bytes received from the peer.");
    describe_counter!(PEER_TX_BYTES, "Inner packet bytes sent to the peer.");
    describe_counter!(PEER_RX_PACKETS, "Packets received from the peer.");
    describe_counter!(PEER_TX_PACKETS, "Packets sent to the peer.");
    describe_counter!(PEER_HANDSHAKES, "Handshakes completed with the peer.");
    describe_gauge!(
        PEER_LAST_HANDSHAKE,
        "Seconds since the last handshake with the peer (absent: never)."
    );
    describe_counter!(
        PEER_DROPS,
        "Packets from or to the peer dropped, by reason."
    );
    describe_gauge!(
        TUN_OFFLOAD,
        "1 when the TUN device splits TSO super-packets and coalesces writes (GRO)."
    );
    describe_gauge!(
        UDP_GSO_SEGMENTS,
        "Datagrams one UDP send may carry (1: no GSO)."
    );
    describe_gauge!(
        UDP_GRO_SEGMENTS,
        "Datagrams one UDP receive buffer may carry (1: no GRO)."
    );
    describe_counter!(
        TUN_READS,
        "Batches read from the TUN device (one wake-up each)."
    );
    describe_counter!(
        TUN_READ_PACKETS,
        "Packets read from the TUN device (super-packets split)."
    );
    describe_counter!(UDP_RECV_CALLS, "recvmmsg calls that returned datagrams.");
    describe_counter!(
        UDP_RECV_DATAGRAMS,
        "Datagrams received (GRO buffers split)."
    );
    describe_counter!(UDP_SEND_CALLS, "UDP send system calls (one GSO run each).");
    describe_counter!(UDP_SENT_DATAGRAMS, "Datagrams the UDP socket took.");
    describe_gauge!(
        HOME_CPU,
        "The CPU the light data path shares with the node's others (-1: free)."
    );
    describe_counter!(
        PLACEMENT_MOVES,
        "Moves of the data path to the home CPU and away from it."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A member whose data path does not run.
    fn down(name: &str) -> MemberSample {
        MemberSample {
            name: name.into(),
            segment: "web".into(),
            stats: None,
            peer_names: Vec::new(),
        }
    }

    #[test]
    fn readiness_needs_a_netmap_and_every_data_path() {
        let mut s = Sample::default();
        assert!(readiness(&s).expect_err("not ready").contains("no netmap"));
        s.netmap_applied = true;
        assert_eq!(readiness(&s), Ok(()));
        s.members.push(down("m1"));
        let e = readiness(&s).expect_err("not ready");
        assert!(e.contains("m1 (web)") && !e.contains('\n'), "{e}");
        s.revoked = true;
        assert!(readiness(&s).expect_err("not ready").contains("revoked"));
    }

    #[test]
    fn counters_follow_absolute_values_and_survive_resets() {
        let (tx, _rx) = mpsc::channel(1);
        let e = Exporter::new(tx);
        let labels = [("segment", "web"), ("member", "m1"), ("peer", "p")];
        let publish = |v: u64| {
            let mut p = e.lock();
            metrics::with_local_recorder(&e.recorder, || {
                let mut round = Round {
                    totals: &mut p.totals,
                    seen: HashSet::new(),
                };
                round.counter(PEER_RX_BYTES, &labels, v);
            });
        };
        let rendered = |e: &Exporter| e.recorder.handle().render();
        publish(100);
        publish(150);
        assert!(
            rendered(&e).contains(
                r#"segwire_node_peer_rx_bytes_total{segment="web",member="m1",peer="p"} 150"#
            ),
            "{}",
            rendered(&e)
        );
        // The data path restarted: 30 new bytes count on top of the 150.
        publish(30);
        publish(40);
        let text = rendered(&e);
        assert!(text.contains("} 190"), "{text}");
        assert!(
            text.contains("# HELP segwire_node_peer_rx_bytes_total"),
            "{text}"
        );
    }

    #[test]
    fn a_sample_without_members_publishes_the_node_gauges() {
        let (tx, _rx) = mpsc::channel(1);
        let e = Exporter::new(tx);
        e.publish(&Sample {
            netmap_applied: true,
            netmap_version: 7,
            coordinator_reachable: true,
            revoked: false,
            members: vec![down("m1")],
        });
        let text = e.recorder.handle().render();
        for line in [
            "segwire_node_netmap_version 7",
            "segwire_node_coordinator_reachable 1",
            "segwire_node_ready 0",
            r#"segwire_node_member_up{segment="web",member="m1"} 0"#,
        ] {
            assert!(text.contains(line), "{line}:\n{text}");
        }
        assert!(e.lock().ready.is_err());
    }
}
