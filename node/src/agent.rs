//! `segwire-node run`: the agent loop.
//!
//! One task owns everything that changes (state, netmap, applied configuration, running
//! members) and handles, one at a time: control requests, netmaps and events from the
//! background coordinator tasks, a periodic health check, and the shutdown signals.
//! Every configuration change goes through [`desired`] → [`diff`] → [`Agent::apply`].

mod attach;
mod lifecycle;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use segwire_client::{Client, ClientError};
use segwire_proto::api::FlowReport;
use segwire_proto::netmap::NetMap;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};

use self::attach::AttachOptions;
use crate::control::{self, Incoming, Request, Response};
use crate::member::{self, MemberCmd, MemberHandle};
use crate::reconcile::{confirm_members, desired, diff, Change, NodeConfig, Underlay};
use crate::state::{NodeState, StateDir};
use crate::status::{member_view, AgentStatus};
use crate::sync::{poll_netmaps, report_endpoints, SyncEvent};
use crate::telemetry;
use crate::uapi;

/// How long a TCP connection to the coordinator may take (then the poller retries, within
/// the backoff's 2 s cap).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// First UDP port tried for a new member.
pub const FIRST_PORT: u16 = 51820;
/// How often dead data paths are noticed and failed changes retried.
const HEALTH_CHECK: Duration = Duration::from_secs(5);
/// How often flow records are shipped to the coordinator.
const FLOW_SHIPPING: Duration = Duration::from_secs(2);
/// How long an attach waits for the netmap that lists the new member.
const ATTACH_WAIT: Duration = Duration::from_secs(10);
/// How often the agent looks whether attached workloads still exist (one `stat(2)` per
/// member): a workload that goes away is detached within this time.
pub const WORKLOAD_WATCH: Duration = Duration::from_secs(1);

/// Runs the agent until SIGTERM or SIGINT, then removes every member interface and the
/// control socket.
///
/// A revoked node (the coordinator answers 401 with the `node_revoked` code, twice in a
/// row) tears down all members and keeps running idle, so that `status` can say so; it
/// never serves the old netmap again. Any other failure (a bare 401, a 503, a proxy's
/// error page, no answer) keeps the last netmap applied.
///
/// With `metrics_listen`, serves `/metrics`, `/healthz` and `/readyz` there ([`telemetry`]).
/// Light data paths share `idle_cpu` (docs/datapath.md).
///
/// # Errors
/// When the node has not joined, its state cannot be read, another agent runs, or the
/// metrics address cannot be bound.
pub async fn run(
    dir: StateDir,
    metrics_listen: Option<std::net::SocketAddr>,
    idle_cpu: member::IdleCpu,
) -> anyhow::Result<()> {
    let state = dir.load_state()?;
    dir.ensure()?;
    let socket = dir.socket_file();
    let listener = control::bind(&socket)?;
    let _socket_file = RemoveOnDrop(socket);
    let mut probes = telemetry::start(metrics_listen).await?;
    let client = Client::with_urls(
        &state.coordinators(),
        state.ca_pin,
        Some(state.credential.clone()),
        CONNECT_TIMEOUT,
    )
    .context("cannot set up the coordinator client")?;
    let netmap = dir.load_netmap().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "ignoring the saved netmap");
        None
    });
    let (version_tx, version_rx) = watch::channel(netmap.clone().map(Arc::new));
    let mut sigterm = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    tracing::info!(
        node = %state.name,
        coordinators = ?state.coordinators(),
        members = state.members.len(),
        netmap_version = netmap.as_ref().map_or(0, |m| m.version),
        "agent starting"
    );

    let (sync_tx, sync_rx) = mpsc::channel(16);
    let (exits_tx, mut exits_rx) = mpsc::channel::<String>(16);
    let (found_tx, mut found_rx) = mpsc::channel::<member::Found>(crate::detections::QUEUE);
    let (reports_tx, reports_rx) = mpsc::channel(crate::detections::QUEUE);
    let mut agent = Agent {
        dir,
        client: client.clone(),
        state,
        netmap,
        applied: NodeConfig::default(),
        running: HashMap::new(),
        prebound: HashMap::new(),
        version_tx,
        revoked: false,
        reachable: false,
        last_error: None,
        last_skipped: BTreeSet::new(),
        sync_rx,
        uapi: uapi::Sockets::from_env(),
        reaping: HashMap::new(),
        process_watches: HashMap::new(),
        exits_tx,
        found_tx,
        reports_tx,
        idle_cpu,
    };
    // A killed predecessor leaves its members' UAPI socket files behind.
    agent.uapi.sweep_dead();
    // Saved members whose workload went away while the agent was down are detached;
    // the others are adopted again.
    agent.check_workloads().await;
    agent.reconcile("restored from saved state").await;

    let (control_tx, mut control_rx) = mpsc::channel::<Incoming>(16);
    let fixed = agent.state.endpoint;
    let tasks = [
        tokio::spawn(poll_netmaps(client.clone(), version_rx, sync_tx)),
        tokio::spawn(crate::detections::report_loop(client.clone(), reports_rx)),
        tokio::spawn(report_endpoints(client, fixed)),
        tokio::spawn(control::serve(listener, control_tx)),
    ];
    let mut health = tokio::time::interval(HEALTH_CHECK);
    let mut flow_tick = tokio::time::interval(FLOW_SHIPPING);
    let mut watch = tokio::time::interval(WORKLOAD_WATCH);
    watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = sigterm.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
            _ = sigint.recv() => { tracing::info!("SIGINT: shutting down"); break; }
            Some((request, reply)) = control_rx.recv() => {
                let response = agent.handle(request).await;
                let _ = reply.send(response);
            }
            Some(event) = agent.sync_rx.recv() => agent.on_sync(event).await,
            _ = health.tick() => agent.health_check().await,
            _ = flow_tick.tick() => agent.ship_flows().await,
            _ = watch.tick() => agent.check_workloads().await,
            Some((id, found)) = found_rx.recv() => agent.report_detection(&id, &found),
            Some(id) = exits_rx.recv() => {
                tracing::debug!(member_id = %id, "a member's process exited");
                agent.check_workloads().await;
            }
            Some(probe) = probes.next() => probe.answer(agent.sample().await),
        }
    }
    for task in tasks {
        task.abort();
    }
    agent.shutdown().await;
    tracing::info!("agent stopped");
    Ok(())
}

/// Removes the control socket file when the agent ends.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Everything the agent loop owns.
struct Agent {
    dir: StateDir,
    client: Client,
    state: NodeState,
    netmap: Option<NetMap>,
    applied: NodeConfig,
    running: HashMap<String, MemberHandle>,
    /// Sockets bound at attach time, handed to the member when it starts.
    prebound: HashMap<u16, std::net::UdpSocket>,
    /// The applied netmap, for the poller (its `since` and the base of deltas).
    version_tx: watch::Sender<Option<Arc<NetMap>>>,
    revoked: bool,
    reachable: bool,
    last_error: Option<String>,
    last_skipped: BTreeSet<String>,
    /// Events of the background coordinator tasks (netmaps, reachability, revocation).
    sync_rx: mpsc::Receiver<SyncEvent>,
    /// `wg show` sockets of the running members.
    uapi: uapi::Sockets,
    /// Members the coordinator lists but that are not attached here: when the agent last
    /// asked it to detach each ([`Agent::reap_orphans`]).
    reaping: HashMap<String, Instant>,
    /// pidfd watches of members attached to a process, by member id.
    process_watches: HashMap<String, tokio::task::JoinHandle<()>>,
    /// Where those watches say a process exited (member id).
    exits_tx: mpsc::Sender<String>,
    /// Where the members' data paths send their detections.
    found_tx: mpsc::Sender<member::Found>,
    /// The detection reporter's queue.
    reports_tx: mpsc::Sender<segwire_proto::api::DetectionReport>,
    /// The CPU light data paths share.
    idle_cpu: member::IdleCpu,
}

impl Agent {
    fn version(&self) -> u64 {
        self.netmap.as_ref().map_or(0, |m| m.version)
    }

    async fn handle(&mut self, request: Request) -> Response {
        let result = match request {
            Request::Attach {
                segment,
                workload,
                name,
                labels,
                interface,
                container,
            } => {
                let options = AttachOptions {
                    name,
                    labels,
                    interface,
                    container,
                };
                self.attach(segment, &workload, options)
                    .await
                    .map(|a| Response::Attached(Box::new(a)))
            }
            Request::Detach { segment, workload } => self.detach(&segment, &workload).await,
            Request::DetachContainer {
                container,
                segment,
                interface,
            } => {
                let members = self
                    .detach_container(&container, segment.as_deref(), interface.as_deref())
                    .await;
                Ok(Response::DetachedMembers { members })
            }
            Request::Check {
                container,
                segment,
                interface,
            } => self
                .check(&container, &segment, &interface)
                .await
                .map(|a| Response::Attached(Box::new(a))),
            Request::Gc { segment, valid } => {
                let members = self.collect_garbage(&segment, &valid).await;
                Ok(Response::DetachedMembers { members })
            }
            Request::Status => Ok(Response::Status(Box::new(self.status().await))),
        };
        result.unwrap_or_else(|e| Response::Error {
            message: format!("{e:#}"),
            retry: e
                .downcast_ref::<ClientError>()
                .is_some_and(ClientError::is_unreachable),
        })
    }

    async fn on_sync(&mut self, event: SyncEvent) {
        match event {
            SyncEvent::NetMap { map, delta } => self.apply_netmap(*map, delta).await,
            SyncEvent::Reachable => {
                if !self.reachable {
                    tracing::info!("coordinator reachable");
                }
                self.reachable = true;
                self.last_error = None;
            }
            SyncEvent::Unreachable(e) => {
                self.reachable = false;
                self.last_error = Some(e);
            }
            SyncEvent::Revoked => self.on_revoked().await,
        }
    }

    fn note(&mut self, e: &ClientError) {
        if e.is_unreachable() {
            self.reachable = false;
            self.last_error = Some(e.to_string());
        }
    }

    /// Takes a netmap: saves it, forgets members the coordinator removed, reconciles.
    async fn apply_netmap(&mut self, map: NetMap, delta: bool) {
        if self.revoked {
            return;
        }
        self.learn_coordinators(&map.coordinators);
        if let Some(current) = &self.netmap {
            // Any other version is taken, lower too: a coordinator restored from a backup
            // counts from an older version. Maps come in order from the single poller.
            if *current == map {
                return;
            }
        }
        tracing::info!(
            version = map.version,
            members = map.members.len(),
            delta,
            "new netmap"
        );
        if let Err(e) = self.dir.save_netmap(&map) {
            tracing::error!(error = %e, "cannot save the netmap; a restart would serve an older one");
        }
        let (changed, removed) = confirm_members(&mut self.state.members, &map);
        for m in &removed {
            tracing::warn!(member = %m.name, segment = %m.segment, "the coordinator removed this member");
        }
        if changed {
            self.save_state();
        }
        let _ = self.version_tx.send(Some(Arc::new(map.clone())));
        self.netmap = Some(map);
        self.reconcile("netmap").await;
        self.reap_orphans();
    }

    /// Takes the live coordinators a netmap lists as the ones to move to (and saves them),
    /// so a coordinator started after the join is known too.
    fn learn_coordinators(&mut self, listed: &[String]) {
        if listed.is_empty() {
            return;
        }
        if let Some(urls) = self.client.set_urls(listed) {
            tracing::info!(coordinators = ?urls, "coordinators updated from the netmap");
            self.state.coordinator_urls = urls;
            self.save_state();
        }
    }

    /// Names a member's detection from its peers and queues it for the reporter.
    fn report_detection(&self, member_id: &str, found: &segwire_datapath::Detection) {
        let Some(config) = self.applied.members.get(member_id) else {
            return;
        };
        let report = crate::detections::to_report(found, config);
        if self.reports_tx.try_send(report).is_err() {
            tracing::debug!("detection dropped: the reporter is behind");
        }
    }

    /// Collects the members' new flow records and ships them in the background; when the
    /// coordinator is unreachable they are dropped (the members' tables stay bounded).
    async fn ship_flows(&mut self) {
        let mut records = Vec::new();
        let mut dropped = 0;
        for (id, handle) in &self.running {
            let Some(config) = self.applied.members.get(id) else {
                continue;
            };
            let (tx, rx) = tokio::sync::oneshot::channel();
            if !handle.send(MemberCmd::TakeFlows(tx)).await {
                continue;
            }
            if let Ok((flows, d)) = rx.await {
                dropped += d;
                records.extend(flows.iter().map(|f| crate::flows::to_record(f, config)));
            }
        }
        if records.is_empty() && dropped == 0 {
            return;
        }
        let client = self.client.clone();
        tokio::spawn(async move {
            for chunk in records.chunks(1000) {
                let report = FlowReport {
                    flows: chunk.to_vec(),
                    dropped,
                };
                if let Err(e) = client.report_flows(&report).await {
                    tracing::debug!(error = %e, records = chunk.len(), "flow records not shipped");
                    return;
                }
            }
        });
    }

    fn save_state(&self) {
        if let Err(e) = self.dir.save_state(&self.state) {
            tracing::error!(error = %e, "cannot save the node state");
        }
    }

    /// Computes the desired configuration, diffs it against the applied one, and applies
    /// the changes. A member that fails to start stays out of `applied` and is retried.
    async fn reconcile(&mut self, why: &str) {
        let underlay = match self.state.endpoint {
            Some(ip) => Underlay::of(&[ip]),
            None => Underlay::of(&segwire_netdev::host_addrs().await.unwrap_or_default()),
        };
        let wanted = desired(&self.state, self.netmap.as_ref(), underlay);
        let skipped: BTreeSet<String> = wanted.skipped.iter().cloned().collect();
        if skipped != self.last_skipped {
            for s in skipped.difference(&self.last_skipped) {
                tracing::warn!("netmap entry skipped: {s}");
            }
            self.last_skipped = skipped;
        }
        let changes = diff(&self.applied, &wanted.config);
        if changes.is_empty() {
            tracing::debug!(reason = why, "reconcile: no changes");
            return;
        }
        tracing::info!(reason = why, changes = changes.len(), "reconciling");
        let mut failed = Vec::new();
        for change in changes {
            tracing::info!(change = %change, "apply");
            if let Err(id) = self.apply(change).await {
                failed.push(id);
            }
        }
        let mut applied = wanted.config;
        for id in failed {
            applied.members.remove(&id);
        }
        self.applied = applied;
    }

    /// Applies one change; `Err(member id)` when the member could not be started.
    async fn apply(&mut self, change: Change) -> Result<(), String> {
        match change {
            Change::AddMember(config) => {
                let socket = self.prebound.remove(&config.listen_port);
                match member::start(&config, socket, self.found_tx.clone(), self.idle_cpu).await {
                    Ok(handle) => {
                        let commands = handle.commands();
                        self.uapi
                            .open(&config.id, &config.interface, config.listen_port, commands);
                        if let Some(old) = self.running.insert(config.id.clone(), handle) {
                            old.stop().await;
                        }
                        Ok(())
                    }
                    Err(e) => {
                        tracing::error!(member = %config.name, segment = %config.segment, error = %e, "member could not start; will retry");
                        Err(config.id.clone())
                    }
                }
            }
            Change::RemoveMember { id, .. } => {
                self.uapi.close(&id);
                if let Some(handle) = self.running.remove(&id) {
                    handle.stop().await;
                }
                Ok(())
            }
            Change::AddPeer { member, peer }
            | Change::UpdatePeer { member, peer }
            | Change::UpdatePeerEndpoint { member, peer, .. } => {
                self.send(&member, MemberCmd::UpsertPeer(peer.to_peer_config()))
                    .await;
                Ok(())
            }
            Change::RemovePeer {
                member, public_key, ..
            } => {
                self.send(&member, MemberCmd::RemovePeer(public_key)).await;
                Ok(())
            }
            Change::Readdress(config) => {
                let netns = config.workload.netns();
                match segwire_netdev::configure(&netns, &member::interface_config(&config)).await {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        tracing::error!(member = %config.name, segment = %config.segment, error = %e, "could not add the new overlay address; will retry");
                        Err(config.id.clone())
                    }
                }
            }
            Change::SetPsk {
                member, psk, also, ..
            } => {
                self.send(&member, MemberCmd::SetPsk(psk, also)).await;
                Ok(())
            }
            Change::SetPolicy { member, policy } => {
                let compiled = Box::new(policy.compile());
                self.send(&member, MemberCmd::SetPolicy(compiled)).await;
                Ok(())
            }
        }
    }

    async fn send(&self, member: &str, cmd: MemberCmd) {
        let sent = match self.running.get(member) {
            Some(handle) => handle.send(cmd).await,
            None => false,
        };
        if !sent {
            tracing::warn!(
                member,
                "member data path is not running; the change waits for its restart"
            );
        }
    }

    /// Notices data paths that died and retries members that could not start.
    async fn health_check(&mut self) {
        let dead: Vec<String> = self
            .running
            .iter()
            .filter(|(_, h)| h.is_finished())
            .map(|(id, _)| id.clone())
            .collect();
        for id in dead {
            tracing::warn!(member_id = %id, "data path ended; restarting it");
            self.uapi.close(&id);
            if let Some(h) = self.running.remove(&id) {
                h.stop().await;
            }
            self.applied.members.remove(&id);
        }
        self.reconcile("health check").await;
        self.reap_orphans();
    }

    async fn on_revoked(&mut self) {
        if self.revoked {
            return;
        }
        tracing::error!("the coordinator refused this node's credential: the node was revoked; removing all members and running idle (re-join with `segwire-node join --force TOKEN`)");
        self.revoked = true;
        self.reachable = true;
        if let Some(map) = &mut self.netmap {
            map.members.clear();
            if let Err(e) = self.dir.save_netmap(map) {
                tracing::error!(error = %e, "cannot save the emptied netmap");
            }
        }
        self.reconcile("revoked").await;
    }

    async fn shutdown(&mut self) {
        self.uapi.close_all();
        for (_, handle) in self.running.drain() {
            handle.stop().await;
        }
        self.applied = NodeConfig::default();
    }

    /// What the metrics side needs ([`telemetry::Sample`]).
    async fn sample(&self) -> telemetry::Sample {
        telemetry::Sample {
            netmap_applied: self.netmap.is_some(),
            netmap_version: self.version(),
            coordinator_reachable: self.reachable,
            revoked: self.revoked,
            members: telemetry::sample_members(&self.state.members, &self.applied, &self.running)
                .await,
        }
    }

    async fn status(&self) -> AgentStatus {
        let mut members = Vec::new();
        for local in &self.state.members {
            let stats = match self.running.get(&local.id) {
                Some(h) => h.status().await,
                None => None,
            };
            let mut view = member_view(local, self.applied.members.get(&local.id), stats.as_ref());
            view.wg_socket = self.uapi.name_of(&local.id).map(str::to_owned);
            view.quarantined_until = self
                .netmap
                .iter()
                .flat_map(|n| &n.members)
                .find(|m| m.id == local.id)
                .and_then(|m| m.quarantined_until.clone());
            members.push(view);
        }
        AgentStatus {
            node: self.state.name.clone(),
            node_id: self.state.node_id.clone(),
            coordinator: self.client.url(),
            coordinator_reachable: self.reachable,
            coordinator_error: self.last_error.clone(),
            revoked: self.revoked,
            netmap_version: self.version(),
            members,
        }
    }
}
