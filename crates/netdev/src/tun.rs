//! TUN devices: IPv4/IPv6 packets in and out of a workload's namespace.
//!
//! Non-blocking and synchronous: one data-path thread waits on the descriptor (see
//! [`crate::Poller`]) and reads and writes in batches, with no async runtime per packet.
//! Two implementations behind one [`TunDevice`] type, chosen at runtime:
//! - **offload** (tried first): `tun-rs` opens the device with `IFF_VNET_HDR` and
//!   `TUNSETOFFLOAD` (CSUM, TSO4/6, and USO4/6 where the kernel has them). A read returns a
//!   TCP/UDP super-packet of up to 64 KiB that tun-rs splits into MTU-sized packets (GSO);
//!   a batch write coalesces consecutive TCP segments of one flow into super-packets (GRO)
//!   and writes each with one call. See `docs/datapath.md` for why tun-rs for this part.
//! - **plain** (the fallback when the kernel refuses the offload device): our own
//!   `TUNSETIFF` with `IFF_TUN | IFF_NO_PI`, one packet per read and write.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use segwire_tunnel::{PacketBatch, MAX_PACKET};
use tun_rs::{DeviceBuilder, GROTable, SyncDevice, VIRTIO_NET_HDR_LEN};

use crate::poll::{wait_fd, Readiness};
use crate::{validate_interface_name, NetdevError, Netns};

/// The clone device.
const TUN_CLONE_DEVICE: &str = "/dev/net/tun";

/// Packets one offload read may be split into (64 KiB of TCP at a small MSS).
const SPLIT_SLOTS: usize = 128;
/// Size of one split packet buffer (larger than the MTU; one MTU-sized packet each).
const SPLIT_SLOT: usize = 4096;
/// Capacity of one write buffer: room for a whole coalesced super-packet (the IP limit of
/// 64 KiB) and tun-rs's two header offsets. tun-rs coalesces into the first packet's
/// buffer only while it has the capacity, so MTU-sized buffers would cap GRO at two
/// segments per write. Pages are touched only as far as packets fill them.
const WRITE_SLOT: usize = 2 * VIRTIO_NET_HDR_LEN + 65_535;
/// How long a write waits for room before the packet counts as dropped (a TUN device
/// practically never pushes back).
const WRITE_WAIT: Duration = Duration::from_secs(1);

/// A layer-3 TUN interface on a non-blocking descriptor, for one data-path thread: every
/// packet in and out is one bare IP packet, whatever the device does underneath (see the
/// module docs: offload with GSO/GRO, or plain). The thread waits for it with
/// [`crate::Poller`] (it is [`AsFd`]) and reads with [`TunDevice::try_recv_batch`], or
/// blocks in [`TunDevice::recv_batch`].
///
/// The interface lives as long as this value: dropping it closes the descriptor and the
/// kernel deletes the (non-persistent) interface, with its addresses and routes.
#[derive(Debug)]
pub struct TunDevice {
    io: Io,
    name: String,
}

#[derive(Debug)]
enum Io {
    Plain(File),
    Offload(Box<Offload>),
}

/// The offload device and the buffers its splitting and coalescing reuse.
struct Offload {
    dev: SyncDevice,
    read: Vec<u8>,
    split: Vec<Vec<u8>>,
    sizes: Vec<usize>,
    write: Vec<Vec<u8>>,
    gro: GROTable,
}

impl std::fmt::Debug for Offload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offload").finish_non_exhaustive()
    }
}

impl TunDevice {
    /// Creates the TUN interface `name` inside `netns`, non-blocking: with offloads when
    /// the kernel accepts them, else plain. The interface starts down, without addresses:
    /// configure it with [`crate::configure`] (or use [`crate::create_interface`], which
    /// does both).
    ///
    /// # Errors
    /// [`NetdevError::InvalidInterfaceName`], the namespace errors, [`NetdevError::TunUnavailable`],
    /// [`NetdevError::InterfaceInUse`] when a device of that name exists and is taken,
    /// [`NetdevError::PermissionDenied`], [`NetdevError::TunCreate`].
    pub async fn create(netns: &Netns, name: &str) -> Result<Self, NetdevError> {
        Self::create_with(netns, name, true).await
    }

    /// [`TunDevice::create`], with `offload` false for the plain device without trying.
    ///
    /// # Errors
    /// As [`TunDevice::create`].
    pub async fn create_with(
        netns: &Netns,
        name: &str,
        offload: bool,
    ) -> Result<Self, NetdevError> {
        validate_interface_name(name)?;
        if offload {
            let owned = name.to_owned();
            let built = netns
                .run(move || {
                    DeviceBuilder::new()
                        .name(owned)
                        .offload(true)
                        .enable(false)
                        .build_sync()
                })
                .await?;
            match built.and_then(|dev| dev.set_nonblocking(true).map(|()| dev)) {
                Ok(dev) => {
                    tracing::debug!(interface = name, %netns, "created TUN interface with offloads");
                    return Ok(Self {
                        io: Io::Offload(Box::new(Offload::new(dev))),
                        name: name.to_owned(),
                    });
                }
                Err(e) => {
                    tracing::debug!(interface = name, error = %e, "no TUN offloads; using the plain device");
                }
            }
        }
        let owned = name.to_owned();
        let label = netns.to_string();
        let file = netns.run(move || open_tun(&owned, &label)).await??;
        tracing::debug!(interface = name, %netns, "created TUN interface");
        Ok(Self {
            io: Io::Plain(file),
            name: name.to_owned(),
        })
    }

    /// The interface name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the device runs with offloads (TSO/USO reads split, GRO writes).
    #[must_use]
    pub fn offload(&self) -> bool {
        matches!(self.io, Io::Offload(_))
    }

    /// Receives one packet into `buf`, waiting up to `timeout`; returns its length.
    ///
    /// # Errors
    /// `TimedOut`, or the read error (e.g. the interface was deleted).
    pub fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        let mut batch = PacketBatch::new(1, buf.len());
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            self.recv_batch(&mut batch, left)?;
            if let Some(p) = batch.iter().next() {
                let n = p.len().min(buf.len());
                buf[..n].copy_from_slice(&p[..n]);
                return Ok(n);
            }
        }
    }

    /// Sends one packet; returns the bytes written.
    ///
    /// # Errors
    /// The write error: `EINVAL` for a malformed packet, `EIO` while the link is down.
    pub fn send(&mut self, packet: &[u8]) -> io::Result<usize> {
        let mut batch = PacketBatch::new(1, packet.len());
        batch.push(packet);
        self.send_batch(&batch).map(|_| packet.len())
    }

    /// Clears `batch` and reads the packets waiting, without blocking, until the kernel
    /// has no more or the batch is full (its [`PacketBatch::limit`]). With offloads one
    /// read may bring a super-packet, split here into MTU-sized packets (the batch may
    /// then hold a few more than its limit). Returns how many packets the batch now holds.
    ///
    /// # Errors
    /// `WouldBlock` when nothing was waiting; a read error when no packet was read (an
    /// error after some packets ends the batch early and shows again on the next call).
    pub fn try_recv_batch(&mut self, batch: &mut PacketBatch) -> io::Result<usize> {
        batch.clear();
        match &mut self.io {
            Io::Plain(file) => recv_plain(file, batch),
            Io::Offload(o) => o.recv_batch(batch),
        }
    }

    /// [`TunDevice::try_recv_batch`], waiting up to `timeout` for the first packet.
    ///
    /// # Errors
    /// `TimedOut` when no packet came in time, or the read error.
    pub fn recv_batch(&mut self, batch: &mut PacketBatch, timeout: Duration) -> io::Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.try_recv_batch(batch) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() || !wait_fd(self.as_fd(), Readiness::Readable, left)? {
                        return Err(io::ErrorKind::TimedOut.into());
                    }
                }
                r => return r,
            }
        }
    }

    /// Writes every packet of `batch` (in order) and returns how many the kernel accepted.
    /// A packet that is not IP, or that the kernel refuses, is dropped and the rest still
    /// go out: the caller counts `batch.len() - sent` as drops. With offloads, consecutive
    /// TCP segments of one flow are coalesced and written with one call.
    ///
    /// # Errors
    /// The plain device: the first write error, when no packet at all was accepted. With
    /// offloads: a write error of any of the coalesced writes (the others went out).
    pub fn send_batch(&mut self, batch: &PacketBatch) -> io::Result<usize> {
        match &mut self.io {
            Io::Plain(file) => send_plain(file, &self.name, batch),
            Io::Offload(o) => o.send_batch(batch),
        }
    }
}

impl AsFd for TunDevice {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.io {
            Io::Plain(file) => file.as_fd(),
            // SAFETY: the descriptor is the device's own, open as long as `self` is, and
            // the borrow cannot outlive `self`.
            Io::Offload(o) => unsafe { BorrowedFd::borrow_raw(o.dev.as_raw_fd()) },
        }
    }
}

impl Offload {
    fn new(dev: SyncDevice) -> Self {
        Self {
            dev,
            read: vec![0; VIRTIO_NET_HDR_LEN + MAX_PACKET],
            split: vec![vec![0; SPLIT_SLOT]; SPLIT_SLOTS],
            sizes: vec![0; SPLIT_SLOTS],
            write: Vec::new(),
            gro: GROTable::new(),
        }
    }

    fn recv_batch(&mut self, batch: &mut PacketBatch) -> io::Result<usize> {
        while !batch.is_full() {
            let r = self
                .dev
                .recv_multiple(&mut self.read, &mut self.split, &mut self.sizes, 0);
            match r {
                Ok(n) => {
                    for (buf, &len) in self.split.iter().zip(&self.sizes).take(n) {
                        batch.push(&buf[..len]);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if batch.is_empty() && e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(e)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if batch.is_empty() && is_fatal(&e) => return Err(e),
                Err(e) => {
                    // A super-packet that cannot be split: dropped, the device goes on.
                    tracing::trace!(error = %e, "TUN read dropped");
                    if !batch.is_empty() {
                        break;
                    }
                }
            }
        }
        Ok(batch.len())
    }

    /// A lone packet (an echo, a request, the reply to one) has nothing to coalesce with:
    /// it goes out behind an all-zero virtio header (no offload asked for) straight from
    /// the caller's buffer, without the copy into a write buffer and the GRO pass.
    fn send_one(&self, packet: &[u8]) -> io::Result<usize> {
        if !looks_like_ip(packet) {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let header = [0u8; VIRTIO_NET_HDR_LEN];
        self.dev
            .send_vectored(&[IoSlice::new(&header), IoSlice::new(packet)])
            .map(|_| 1)
    }

    fn send_batch(&mut self, batch: &PacketBatch) -> io::Result<usize> {
        if let (1, Some(packet)) = (batch.len(), batch.get(0)) {
            return self.send_one(packet);
        }
        if self.write.len() < batch.len() {
            self.write
                .resize_with(batch.len(), || Vec::with_capacity(WRITE_SLOT));
        }
        // What is not an IP packet is dropped here: the kernel would refuse it anyway, and
        // the coalescing pass must see only IP packets.
        let mut n = 0;
        for packet in batch.iter().filter(|p| looks_like_ip(p)) {
            let buf = &mut self.write[n];
            buf.clear();
            buf.resize(VIRTIO_NET_HDR_LEN, 0);
            buf.extend_from_slice(packet);
            n += 1;
        }
        if n == 0 {
            return if batch.is_empty() {
                Ok(0)
            } else {
                Err(io::Error::from_raw_os_error(libc::EINVAL))
            };
        }
        match self
            .dev
            .send_multiple(&mut self.gro, &mut self.write[..n], VIRTIO_NET_HDR_LEN)
        {
            Ok(_) => Ok(n),
            Err(e) => {
                tracing::trace!(error = %e, "TUN batch write failed in part");
                Err(e)
            }
        }
    }
}

/// An IPv4 or IPv6 header's first byte and room for the shortest header.
fn looks_like_ip(p: &[u8]) -> bool {
    p.len() >= 20 && matches!(p[0] >> 4, 4 | 6)
}

/// An error that means the device is gone (not one bad packet).
fn is_fatal(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EBADF | libc::EBADFD | libc::ENODEV | libc::ENXIO | libc::EIO)
    )
}

fn recv_plain(file: &File, batch: &mut PacketBatch) -> io::Result<usize> {
    while !batch.is_full() {
        match batch.push_with(MAX_PACKET, |buf| read_packet(file, buf)) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if batch.is_empty() => return Err(e),
            Err(_) => break,
        }
    }
    Ok(batch.len())
}

fn send_plain(file: &File, name: &str, batch: &PacketBatch) -> io::Result<usize> {
    let mut sent = 0;
    let mut first_error = None;
    for packet in batch.iter() {
        let result = loop {
            match write_packet(file, packet) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !wait_fd(file.as_fd(), Readiness::Writable, WRITE_WAIT)? {
                        break Err(e);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => break r,
            }
        };
        match result {
            Ok(_) => sent += 1,
            Err(e) => {
                tracing::trace!(interface = %name, error = %e, "TUN write dropped");
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) if sent == 0 => Err(e),
        _ => Ok(sent),
    }
}

fn read_packet(file: &File, buf: &mut [u8]) -> io::Result<usize> {
    let mut file = file;
    file.read(buf)
}

fn write_packet(file: &File, packet: &[u8]) -> io::Result<usize> {
    let mut file = file;
    file.write(packet)
}

/// Opens `/dev/net/tun` and attaches it to a new TUN interface `name` in the calling
/// thread's namespace.
fn open_tun(name: &str, netns: &str) -> Result<File, NetdevError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(TUN_CLONE_DEVICE)
        .map_err(|source| NetdevError::TunUnavailable { source })?;

    // SAFETY: `ifreq` is plain old data; all zeroes is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    // validate_interface_name() guarantees at most 15 bytes: the name stays NUL-terminated.
    for (dst, src) in request.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = libc::c_char::from_ne_bytes([*src]);
    }
    // IFF_TUN | IFF_NO_PI = 0x1001 fits the field's c_short.
    request.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;

    // SAFETY: TUNSETIFF reads and writes one `ifreq`, which `request` is, for the duration
    // of the call; `file` is an open /dev/net/tun descriptor.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut request) };
    if rc < 0 {
        let source = io::Error::last_os_error();
        let (name, netns) = (name.to_owned(), netns.to_owned());
        return Err(match source.raw_os_error() {
            Some(libc::EBUSY | libc::EINVAL | libc::EEXIST) => {
                NetdevError::InterfaceInUse { name, netns }
            }
            Some(libc::EPERM | libc::EACCES) => NetdevError::PermissionDenied { name, netns },
            _ => NetdevError::TunCreate {
                name,
                netns,
                source,
            },
        });
    }
    Ok(file)
}

#[cfg(test)]
mod offload_tests;
#[cfg(test)]
mod tests;
