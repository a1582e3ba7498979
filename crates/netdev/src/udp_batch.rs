//! The member's underlay socket in batches: `recvmmsg(2)` with UDP GRO in, `sendmsg(2)` with
//! UDP GSO (`UDP_SEGMENT`) out, both probed at runtime by `quinn-udp` with a fallback to
//! one datagram per call (a GSO send the kernel refuses turns GSO off for the socket).
//!
//! GSO only changes how many datagrams one call hands the kernel: a peer, stock WireGuard
//! included, still receives one WireGuard datagram per inner packet.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use segwire_tunnel::DatagramBatch;

use crate::poll::{wait_fd, Readiness};

/// Datagrams one `recvmmsg(2)` fills at most (quinn-udp's batch on Linux).
const RECV_SLOTS: usize = 32;
/// A receive buffer without GRO: larger than any datagram a 1420-MTU peer sends.
const PLAIN_SLOT: usize = 2048;
/// A receive buffer with GRO: the kernel coalesces up to 64 KiB per buffer.
const GRO_SLOT: usize = 65_536;
/// Receive buffers with GRO (each holds many datagrams).
const GRO_SLOTS: usize = 8;
/// The most bytes one GSO send carries (the kernel's limit for one UDP send).
const GSO_MAX_BYTES: usize = 65_000;
/// How long a send waits for room in a full socket buffer before its datagrams count as
/// failed.
const SEND_WAIT: Duration = Duration::from_secs(1);

/// What the kernel and quinn-udp agreed to at runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpOffload {
    /// Datagrams one send may carry (1: no GSO).
    pub gso_segments: usize,
    /// Datagrams one receive buffer may carry (1: no GRO).
    pub gro_segments: usize,
}

/// Datagrams read by [`BatchSocket::try_recv_batch`], in buffers made once.
#[derive(Debug)]
pub struct RecvBatch {
    buf: Vec<u8>,
    slot: usize,
    meta: Vec<RecvMeta>,
    filled: usize,
}

impl RecvBatch {
    fn new(slots: usize, slot: usize) -> Self {
        Self {
            buf: vec![0; slots * slot],
            slot,
            meta: vec![RecvMeta::default(); slots],
            filled: 0,
        }
    }

    /// Whether the last receive filled every buffer (more may be waiting).
    #[must_use]
    pub fn is_full(&self) -> bool {
        self.filled == self.meta.len()
    }

    /// Every datagram received, with its source; a GRO buffer is split at its stride.
    pub fn datagrams(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> + '_ {
        self.meta[..self.filled]
            .iter()
            .enumerate()
            .flat_map(move |(i, m)| {
                let start = i * self.slot;
                let data = &self.buf[start..start + m.len.min(self.slot)];
                let stride = if m.stride == 0 {
                    data.len().max(1)
                } else {
                    m.stride
                };
                data.chunks(stride).map(move |d| (canonical(m.addr), d))
            })
    }
}

/// An IPv4 peer as the IPv4 address it is: a dual-stack socket reports it as
/// `::ffff:a.b.c.d`, and peers, endpoints and roaming all speak of `a.b.c.d`.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// `dst` in the socket's family: an IPv4 peer is `::ffff:a.b.c.d` to an IPv6 socket.
fn in_family(dst: SocketAddr, ipv6_socket: bool) -> SocketAddr {
    match dst {
        SocketAddr::V4(v4) if ipv6_socket => {
            SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port())
        }
        other => other,
    }
}

/// Counts of one [`BatchSocket::send_batch`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendReport {
    /// Datagrams the kernel took.
    pub sent: usize,
    /// Datagrams it refused (counted, not retried).
    pub failed: usize,
    /// System calls made.
    pub calls: usize,
}

/// A non-blocking UDP socket that reads and writes in batches, for one data-path thread:
/// it waits with [`crate::Poller`] (the socket is [`AsFd`]) and reads with
/// [`BatchSocket::try_recv_batch`]; sends wait only while the socket buffer is full.
#[derive(Debug)]
pub struct BatchSocket {
    socket: UdpSocket,
    state: UdpSocketState,
    recv: RecvBatch,
    /// An IPv6 socket (dual-stack, from [`crate::bind_udp_any`]): IPv4 destinations
    /// go out IPv4-mapped.
    ipv6: bool,
}

impl BatchSocket {
    /// Takes over a bound socket (e.g. from [`crate::bind_udp`]), makes it non-blocking and
    /// probes GSO and GRO.
    ///
    /// # Errors
    /// The probe's `setsockopt(2)` or `fcntl(2)` error.
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<Self> {
        let state = UdpSocketState::new((&socket).into())?;
        let recv = if state.gro_segments() > 1 {
            RecvBatch::new(GRO_SLOTS, GRO_SLOT)
        } else {
            RecvBatch::new(RECV_SLOTS, PLAIN_SLOT)
        };
        let ipv6 = socket.local_addr()?.is_ipv6();
        socket.set_nonblocking(true)?;
        let this = Self {
            socket,
            state,
            recv,
            ipv6,
        };
        let offload = this.offload();
        tracing::debug!(
            gso = offload.gso_segments,
            gro = offload.gro_segments,
            "UDP socket offloads"
        );
        Ok(this)
    }

    /// What the socket does now (GSO turns off after a send the kernel refused with it).
    #[must_use]
    pub fn offload(&self) -> UdpOffload {
        UdpOffload {
            gso_segments: self.state.max_gso_segments(),
            gro_segments: self.state.gro_segments(),
        }
    }

    /// The local address.
    ///
    /// # Errors
    /// The `getsockname(2)` error.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Blocks until a datagram is waiting or `timeout` has passed; true when one is.
    ///
    /// # Errors
    /// The `poll(2)` error.
    pub fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        wait_fd(self.socket.as_fd(), Readiness::Readable, timeout)
    }

    /// Reads what is waiting with one `recvmmsg(2)`, without waiting; `WouldBlock` when
    /// nothing is. The datagrams are in the returned batch until the next call.
    ///
    /// # Errors
    /// `WouldBlock`, or the receive error.
    pub fn try_recv_batch(&mut self) -> io::Result<&RecvBatch> {
        let recv = &mut self.recv;
        recv.filled = 0;
        let slot = recv.slot;
        let mut chunks = recv.buf.chunks_mut(slot);
        let mut iovs: [IoSliceMut<'_>; RECV_SLOTS] =
            std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or_default()));
        let slots = recv.meta.len();
        let n = self
            .state
            .recv((&self.socket).into(), &mut iovs[..slots], &mut recv.meta)?;
        recv.filled = n;
        Ok(&self.recv)
    }

    /// Sends every datagram of `batch` in order, a GSO run per call where the kernel
    /// allows, blocking while the socket buffer is full (up to a second per run). A
    /// datagram the kernel refuses is counted in [`SendReport::failed`] and the rest still
    /// go out.
    pub fn send_batch(&self, batch: &DatagramBatch) -> SendReport {
        let mut report = SendReport::default();
        let max_segments = self.state.max_gso_segments();
        for run in batch.runs(max_segments, GSO_MAX_BYTES) {
            let transmit = Transmit {
                destination: in_family(run.dst, self.ipv6),
                ecn: None,
                contents: run.bytes,
                segment_size: (run.segments > 1).then_some(run.segment_size),
                src_ip: None,
            };
            report.calls += 1;
            match self.send_one(&transmit) {
                Ok(()) => report.sent += run.segments,
                Err(e) => {
                    tracing::trace!(dst = %run.dst, segments = run.segments, error = %e, "UDP send failed");
                    report.failed += run.segments;
                }
            }
        }
        report
    }

    fn send_one(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        loop {
            match self.state.try_send((&self.socket).into(), transmit) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !wait_fd(self.socket.as_fd(), Readiness::Writable, SEND_WAIT)? {
                        return Err(e);
                    }
                }
                r => return r,
            }
        }
    }
}

impl AsFd for BatchSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

#[cfg(test)]
mod tests;
