//! One member's data path: a TUN device in the workload's namespace, a UDP socket in the
//! host namespace and the sans-IO member core ([`segwire_datapath::Member`]: router,
//! firewall, flow log), moved by one OS thread (`dp-<interface>`). This module only moves
//! bytes.
//!
//! The thread owns the core (no lock) and blocks in one level-triggered epoll over the TUN
//! device, the UDP socket and an eventfd: no async scheduler runs per packet (see
//! docs/datapath.md for what that saved). Peer updates and status queries arrive on the
//! handle's tokio channel; a small task forwards them to the thread and rings the
//! eventfd. Buffers are made once when the thread starts; in the steady state no packet
//! allocates. Both directions are read in batches, the clock is read once per wake-up,
//! and the epoll timeout is the core's `poll_timeout` (sooner while a thread away from
//! its home CPU is due to sample its placement: [`placement`]).

use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::{Duration, Instant};

use segwire_datapath::{
    DetectConfig, Detection, Member, MemberConfig as DatapathConfig, NamedFlow,
};
use segwire_netdev::{
    bind_udp_any, create_interface, BatchSocket, InterfaceConfig, NetdevError, Netns, Poller,
    TunDevice, Waker, DEFAULT_SOCKET_BUFFER,
};
use segwire_policy::{CompiledPolicy, ConntrackConfig, Counters};
use segwire_tunnel::{
    PacketBatch, PeerConfig, PresharedKey, PublicKey, RouterConfig, RouterError, RouterStatus,
};
use tokio::sync::{mpsc, oneshot};

use crate::reconcile::MemberConfig;

mod placement;
pub use placement::IdleCpu;
use placement::Placer;

/// Packets (or datagrams) handled per batch.
const BATCH: usize = 64;
/// Largest packet the output batches are sized for: larger than any 1420-MTU packet.
const SLOT: usize = 2048;
/// `recvmmsg` rounds per wake-up before the TUN side and commands get a turn.
const UDP_ROUNDS: usize = 8;
/// Epoll tokens of the data path's descriptors.
const TOKEN_TUN: u64 = 0;
const TOKEN_UDP: u64 = 1;
const TOKEN_WAKE: u64 = 2;

/// Why a member's data path could not start.
#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    /// The UDP port could not be bound.
    #[error("cannot listen on UDP port {port}: {source}")]
    Bind {
        /// The port.
        port: u16,
        /// The cause.
        source: io::Error,
    },
    /// The interface could not be created or configured.
    #[error(transparent)]
    Netdev(#[from] NetdevError),
    /// The router refused a peer.
    #[error("a peer was refused: {0}")]
    Router(#[from] RouterError),
    /// The data path's thread or its epoll instance could not be made.
    #[error("cannot start the data path's thread: {0}")]
    Thread(#[source] io::Error),
}

/// Commands to a running data path.
#[derive(Debug)]
pub enum MemberCmd {
    /// Add a peer or update it in place.
    UpsertPeer(PeerConfig),
    /// Remove a peer.
    RemovePeer(PublicKey),
    /// Set the segment keys: the one to initiate with and, during a rotation, a second one answered too.
    SetPsk(PresharedKey, Option<PresharedKey>),
    /// Enforce a newly compiled policy (cuts connections it no longer allows).
    SetPolicy(Box<CompiledPolicy>),
    /// Hand over the flow records not shipped yet.
    TakeFlows(oneshot::Sender<(Vec<NamedFlow>, u64)>),
    /// Report the router's status and the shell's own counters.
    Status(oneshot::Sender<MemberStats>),
}

/// What a data path reports for `status`.
#[derive(Debug, Clone)]
pub struct MemberStats {
    /// The router's view: peers, handshakes, traffic, drops.
    pub router: RouterStatus,
    /// Packets the TUN device refused.
    pub tun_write_errors: u64,
    /// Datagrams the UDP socket refused.
    pub udp_send_errors: u64,
    /// Firewall counters (allowed, denied, tracked connections, evictions).
    pub firewall: Counters,
    /// The busiest flow records.
    pub flows: Vec<NamedFlow>,
    /// New flows not logged because the flow table was full.
    pub flows_dropped: u64,
    /// Packets allowed per rule of the policy in force: `(rule name, count)`.
    pub rules: Vec<(String, u64)>,
    /// The offloads in force and how many packets each read and send carried.
    pub io: IoStats,
}

/// The offloads a member's devices run with and the shell's I/O counters: packets per
/// wake-up and per system call tell an operator whether batching and offloads pay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoStats {
    /// The TUN device splits TSO super-packets and coalesces writes (GRO); false: the
    /// plain device, one packet per read and write.
    pub tun_offload: bool,
    /// Datagrams one UDP send may carry (1: no GSO).
    pub udp_gso_segments: usize,
    /// Datagrams one UDP receive buffer may carry (1: no GRO).
    pub udp_gro_segments: usize,
    /// Batches read from the TUN device (one wake-up each).
    pub tun_reads: u64,
    /// Packets those batches held (after splitting super-packets).
    pub tun_read_packets: u64,
    /// `recvmmsg` calls that returned datagrams.
    pub udp_recv_calls: u64,
    /// Datagrams they returned (after splitting GRO buffers).
    pub udp_recv_datagrams: u64,
    /// UDP send system calls (one GSO run each).
    pub udp_send_calls: u64,
    /// Datagrams the kernel took from them.
    pub udp_sent_datagrams: u64,
    /// The CPU the data path shares with the node's other light data paths while it is
    /// light (`None`: free, busy or placement off; see docs/datapath.md).
    pub home_cpu: Option<usize>,
    /// Moves to the home CPU and away from it since start.
    pub placement_moves: u64,
}

/// A detection of one member's data path: (member id, detection).
pub type Found = (String, Detection);

/// A running member: its command channel and data-path thread.
#[derive(Debug)]
pub struct MemberHandle {
    tx: mpsc::Sender<MemberCmd>,
    thread: std::thread::JoinHandle<()>,
    forward: tokio::task::JoinHandle<()>,
    control: Arc<Control>,
    interface: String,
    netns: Netns,
}

/// What the handle (and the forwarding task) share with the thread: its eventfd and the
/// request to stop.
#[derive(Debug)]
struct Control {
    waker: Waker,
    stop: AtomicBool,
}

impl Control {
    fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.waker.wake();
    }
}

/// Moves commands from the handle's tokio channel to the thread and wakes it; when every
/// sender is gone (or the thread is), the data path stops.
async fn forward(
    mut rx: mpsc::Receiver<MemberCmd>,
    to: std_mpsc::Sender<MemberCmd>,
    control: Arc<Control>,
) {
    while let Some(cmd) = rx.recv().await {
        if to.send(cmd).is_err() {
            break;
        }
        control.waker.wake();
    }
    control.stop();
}

/// Binds the member's UDP socket in the host namespace (all addresses of both families,
/// `port`), so its peers may sit on an IPv4 or an IPv6 underlay.
///
/// # Errors
/// [`MemberError::Bind`].
pub fn bind_port(port: u16) -> Result<std::net::UdpSocket, MemberError> {
    bind_udp_any(port, DEFAULT_SOCKET_BUFFER).map_err(|source| MemberError::Bind { port, source })
}

/// How the member's interface is configured: an address and a route per family the
/// segment has (IPv4, IPv6 or both).
#[must_use]
pub fn interface_config(config: &MemberConfig) -> InterfaceConfig {
    InterfaceConfig::with_families(config.interface.clone(), config.ipv4, config.ipv6)
}

/// The address the member's router reports: its IPv4 one, or its IPv6 one on an
/// IPv6-only segment.
fn overlay_address(config: &MemberConfig) -> std::net::IpAddr {
    match (config.ipv4, config.ipv6) {
        (Some((a, _)), _) => a.into(),
        (None, Some((a6, _))) => a6.into(),
        (None, None) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    }
}

/// Starts the member: binds its port (unless `socket` is already bound), creates and
/// configures its interface, adds its peers and starts its data-path thread, which sends
/// its detections to `found` as they happen (dropping them when the channel is full) and
/// stays on the `idle_cpu` while it is light.
///
/// # Errors
/// [`MemberError`]; nothing is left behind on error.
pub async fn start(
    config: &MemberConfig,
    socket: Option<std::net::UdpSocket>,
    found: mpsc::Sender<Found>,
    idle_cpu: IdleCpu,
) -> Result<MemberHandle, MemberError> {
    let socket = match socket {
        Some(s) => s,
        None => bind_port(config.listen_port)?,
    };
    let port = config.listen_port;
    let udp = BatchSocket::from_std(socket).map_err(|source| MemberError::Bind { port, source })?;
    let netns = config.workload.netns();
    let iface = interface_config(config);
    let tun = create_interface(&netns, &iface).await?;
    let epoch = Instant::now();
    let mut core = Member::new(
        Duration::ZERO,
        DatapathConfig {
            router: RouterConfig::new(
                config.private_key.secret(),
                config.psk.clone(),
                overlay_address(config),
            ),
            policy: config.policy.compile(),
            conntrack: ConntrackConfig::default(),
            detect: DetectConfig::default(),
            unix_epoch: unix_now(),
            batch: BATCH,
            max_packet: SLOT,
        },
    );
    for peer in config.peers.values() {
        core.upsert_peer(Duration::ZERO, &peer.to_peer_config())?;
    }
    if config.psk_also.is_some() {
        // Started during a key rotation (or restarted from a netmap saved in one).
        core.set_keys(Duration::ZERO, config.psk.clone(), config.psk_also.clone());
    }
    let control = Arc::new(Control {
        waker: Waker::new().map_err(MemberError::Thread)?,
        stop: AtomicBool::new(false),
    });
    let poller = Poller::new().map_err(MemberError::Thread)?;
    poller
        .add(tun.as_fd(), TOKEN_TUN)
        .and_then(|()| poller.add(udp.as_fd(), TOKEN_UDP))
        .and_then(|()| poller.add(control.waker.as_fd(), TOKEN_WAKE))
        .map_err(MemberError::Thread)?;
    let (tx, rx) = mpsc::channel(64);
    let (to_thread, commands) = std_mpsc::channel();
    let span = tracing::info_span!(
        "member",
        segment = %config.segment,
        member = %config.name,
        interface = %config.interface,
    );
    let mut path = DataPath::new(core, tun, udp, epoch, (config.id.clone(), found));
    let thread_control = Arc::clone(&control);
    let thread = std::thread::Builder::new()
        .name(format!("dp-{}", config.interface))
        .spawn(move || {
            let _entered = span.enter();
            path.placer = Placer::new(idle_cpu, path.now());
            path.run(poller, &commands, &thread_control);
        })
        .map_err(MemberError::Thread)?;
    let forward = tokio::spawn(forward(rx, to_thread, Arc::clone(&control)));
    Ok(MemberHandle {
        tx,
        thread,
        forward,
        control,
        interface: config.interface.clone(),
        netns,
    })
}

impl MemberHandle {
    /// Sends a command; false when the data path has stopped.
    pub async fn send(&self, cmd: MemberCmd) -> bool {
        self.tx.send(cmd).await.is_ok()
    }

    /// A sender of commands to the data path (for the UAPI socket).
    #[must_use]
    pub fn commands(&self) -> mpsc::Sender<MemberCmd> {
        self.tx.clone()
    }

    /// The data path's status, or `None` when it has stopped.
    pub async fn status(&self) -> Option<MemberStats> {
        let (tx, rx) = oneshot::channel();
        if !self.send(MemberCmd::Status(tx)).await {
            return None;
        }
        rx.await.ok()
    }

    /// Whether the data path's thread has ended (e.g. its interface was deleted, or it
    /// panicked).
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Stops the data path, joins its thread (closing the TUN device deletes the
    /// interface) and makes sure the interface is gone.
    pub async fn stop(self) {
        self.control.stop();
        self.forward.abort();
        drop(self.tx);
        let thread = self.thread;
        match tokio::task::spawn_blocking(move || thread.join()).await {
            Ok(Ok(())) => {}
            Ok(Err(_panic)) => tracing::warn!("member data path panicked"),
            Err(e) => tracing::warn!(error = %e, "could not join the member data path"),
        }
        match segwire_netdev::remove_link(&self.netns, &self.interface).await {
            Ok(_) => {}
            Err(NetdevError::Netns(e)) => {
                tracing::debug!(error = %e, "namespace gone; its interface went with it")
            }
            Err(e) => {
                tracing::warn!(interface = %self.interface, error = %e, "could not remove interface")
            }
        }
    }
}

/// The thread's state: the sans-IO member core, the devices and the buffers made once.
struct DataPath {
    core: Member,
    tun: TunDevice,
    udp: BatchSocket,
    epoch: Instant,
    tun_in: PacketBatch,
    tun_write_errors: u64,
    udp_send_errors: u64,
    io: IoStats,
    /// This member's id and where its detections go.
    found: (String, mpsc::Sender<Found>),
    /// The thread's placement on the home CPU (made on the thread: affinity is per thread).
    placer: Option<Placer>,
}

impl DataPath {
    fn new(
        core: Member,
        tun: TunDevice,
        udp: BatchSocket,
        epoch: Instant,
        found: (String, mpsc::Sender<Found>),
    ) -> Self {
        let offload = udp.offload();
        let io = IoStats {
            tun_offload: tun.offload(),
            udp_gso_segments: offload.gso_segments,
            udp_gro_segments: offload.gro_segments,
            ..IoStats::default()
        };
        tracing::debug!(?io, "device offloads");
        Self {
            core,
            tun,
            udp,
            epoch,
            found,
            placer: None,
            tun_in: PacketBatch::new(BATCH, SLOT),
            tun_write_errors: 0,
            udp_send_errors: 0,
            io,
        }
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// The event loop: waits in `poller` until a device is readable, a command is
    /// announced on the eventfd or the core's next timeout; returns when asked to stop,
    /// when every command sender is gone, or when the TUN device fails.
    fn run(
        mut self,
        mut poller: Poller,
        commands: &std_mpsc::Receiver<MemberCmd>,
        control: &Control,
    ) {
        tracing::info!("data path up");
        let mut now = self.now();
        self.core.initiate_pending_handshakes(now);
        self.flush_udp();
        loop {
            if now >= self.core.poll_timeout() {
                self.core.handle_timeout(now);
                self.flush_udp();
            }
            // A free thread samples its placement on time, so it is home again soon after
            // a burst; a thread at home samples on the wake-ups it has anyway (at least
            // every 250 ms, for the core's timers): an idle member is not woken for it.
            let due = self.core.poll_timeout();
            let due = match &self.placer {
                Some(p) if p.home_now().is_none() => due.min(p.poll_timeout()),
                _ => due,
            };
            let wait = due.saturating_sub(now);
            let (mut tun, mut udp, mut wake) = (false, false, false);
            match poller.wait(Some(wait)) {
                Ok(ready) => {
                    for token in ready {
                        match token {
                            TOKEN_TUN => tun = true,
                            TOKEN_UDP => udp = true,
                            _ => wake = true,
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "epoll failed; stopping this member's data path");
                    break;
                }
            }
            // One clock read per wake-up serves everything it brought (and the next wait).
            now = self.now();
            if wake {
                control.waker.reset();
                if control.stop.load(Ordering::Acquire) || !self.commands(now, commands) {
                    break;
                }
            }
            if udp {
                self.drain_udp(now);
            }
            if tun && !self.read_tun(now) {
                break;
            }
            if let Some(placer) = &mut self.placer {
                if !placer.handle_timeout(now) {
                    self.placer = None;
                }
            }
        }
        tracing::info!("data path down");
    }

    /// Runs the commands waiting; false when every sender is gone.
    fn commands(&mut self, now: Duration, commands: &std_mpsc::Receiver<MemberCmd>) -> bool {
        loop {
            match commands.try_recv() {
                Ok(cmd) => self.command(now, cmd),
                Err(std_mpsc::TryRecvError::Empty) => break,
                Err(std_mpsc::TryRecvError::Disconnected) => return false,
            }
        }
        self.flush_udp();
        true
    }

    /// Reads a batch from the TUN device and hands it to the core; false when the device
    /// failed (the data path stops).
    fn read_tun(&mut self, now: Duration) -> bool {
        match self.tun.try_recv_batch(&mut self.tun_in) {
            Ok(n) => {
                self.io.tun_reads += 1;
                self.io.tun_read_packets += n as u64;
                self.core.handle_tun(now, &self.tun_in);
                self.report_detections();
                self.flush_udp();
                true
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
            Err(e) => {
                tracing::error!(error = %e, "the interface failed; stopping this member's data path");
                false
            }
        }
    }

    fn command(&mut self, now: Duration, cmd: MemberCmd) {
        match cmd {
            MemberCmd::UpsertPeer(peer) => {
                if let Err(e) = self.core.upsert_peer(now, &peer) {
                    tracing::warn!(peer = %peer.public_key, error = %e, "peer refused");
                }
                self.core.initiate_pending_handshakes(now);
            }
            MemberCmd::RemovePeer(key) => {
                self.core.remove_peer(&key);
            }
            MemberCmd::SetPsk(psk, also) => {
                self.core.set_keys(now, psk, also);
            }
            MemberCmd::SetPolicy(policy) => {
                let s = self.core.set_policy(now, *policy);
                tracing::info!(kept = s.kept, cut = s.cut, "policy applied to live traffic");
            }
            MemberCmd::TakeFlows(reply) => {
                let _ = reply.send(self.core.take_flows());
            }
            MemberCmd::Status(reply) => {
                let _ = reply.send(MemberStats {
                    router: self.core.router_status(now),
                    tun_write_errors: self.tun_write_errors,
                    udp_send_errors: self.udp_send_errors,
                    firewall: self.core.firewall_counters(),
                    flows: self.core.top_flows(20),
                    flows_dropped: self.core.flows_dropped(),
                    rules: self.core.rule_counters(),
                    io: IoStats {
                        home_cpu: self.placer.as_ref().and_then(Placer::home_now),
                        placement_moves: self.placer.as_ref().map_or(0, Placer::moves),
                        ..self.io
                    },
                });
            }
        }
    }

    /// Reads datagrams (one `recvmmsg` per round, GRO-coalesced where the kernel does it)
    /// until the socket has no more, handing each round to the core and writing what it
    /// decrypted to the TUN device. At most [`UDP_ROUNDS`] rounds before the loop looks
    /// at the TUN device and the commands again. A round that fills fewer buffers than the
    /// batch has ends the drain: the epoll is level-triggered, so what arrived since wakes
    /// the loop again, and no read is spent only to see `EAGAIN`.
    fn drain_udp(&mut self, now: Duration) {
        for _ in 0..UDP_ROUNDS {
            let full = match self.udp.try_recv_batch() {
                Ok(batch) => {
                    self.io.udp_recv_calls += 1;
                    let taken = self.core.handle_udp(now, batch.datagrams());
                    self.io.udp_recv_datagrams += taken as u64;
                    batch.is_full()
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::trace!(error = %e, "UDP receive error");
                    return;
                }
            };
            self.report_detections();
            self.flush_tun();
            self.flush_udp();
            if !full {
                return;
            }
        }
    }

    /// Hands the core's new detections to the agent at once (never waits: when the
    /// agent is behind, they are dropped; the core reports each kind once per cooldown).
    fn report_detections(&mut self) {
        while let Some(d) = self.core.poll_detection() {
            tracing::warn!(detection = ?d, "incident detected");
            if self.found.1.try_send((self.found.0.clone(), d)).is_err() {
                tracing::debug!("detection dropped: the agent is behind");
            }
        }
    }

    /// Writes the packets the core let through to the TUN device.
    fn flush_tun(&mut self) {
        if self.core.packets().is_empty() {
            return;
        }
        let batch = self.core.packets();
        match self.tun.send_batch(batch) {
            Ok(sent) => self.tun_write_errors += (batch.len() - sent) as u64,
            Err(e) => {
                self.tun_write_errors += batch.len() as u64;
                tracing::trace!(error = %e, "TUN write failed");
            }
        }
        self.core.clear_packets();
    }

    /// Sends the core's datagrams: GSO runs where the socket has it, one call each otherwise.
    fn flush_udp(&mut self) {
        if self.core.datagrams().is_empty() {
            return;
        }
        let report = self.udp.send_batch(self.core.datagrams());
        self.udp_send_errors += report.failed as u64;
        self.io.udp_send_calls += report.calls as u64;
        self.io.udp_sent_datagrams += report.sent as u64;
        self.core.clear_datagrams();
    }
}

/// Wall-clock unix seconds (flow records carry real times).
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
