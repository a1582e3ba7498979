//! TUN devices: IPv4/IPv6 packets in and out of a workload's namespace.
//!
//! We open `/dev/net/tun` and issue `TUNSETIFF` ourselves (one ioctl) instead of using the
//! `tun-tap` crate: tun-tap 0.1 compiles a C helper, its default features pull in
//! futures 0.1 / tokio-core / mio 0.6, and it cannot set the flags we want next
//! (`IFF_VNET_HDR` for TSO/GRO offload, `IFF_MULTI_QUEUE`). The device sits behind our own
//! [`TunDevice`] type so an offload-capable implementation can replace this one without
//! changing callers.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use segwire_tunnel::{PacketBatch, MAX_PACKET};

use crate::{validate_interface_name, NetdevError, Netns};

/// The clone device.
const TUN_CLONE_DEVICE: &str = "/dev/net/tun";

/// A layer-3 TUN interface (`IFF_TUN | IFF_NO_PI`: every read and write is one bare IP
/// packet), non-blocking and driven by the tokio runtime it was created on.
///
/// The interface lives as long as this value: dropping it closes the descriptor and the
/// kernel deletes the (non-persistent) interface, with its addresses and routes.
/// `recv*` and `send*` take `&self`, so one task may read while another writes.
#[derive(Debug)]
pub struct TunDevice {
    fd: AsyncFd<File>,
    name: String,
}

impl TunDevice {
    /// Creates the TUN interface `name` inside `netns` and registers it with the current
    /// tokio runtime. The interface starts down, without addresses: configure it with
    /// [`crate::configure`] (or use [`crate::create_interface`], which does both).
    ///
    /// Must be called from within a tokio runtime (the one that will drive the device).
    ///
    /// # Errors
    /// [`NetdevError::InvalidInterfaceName`], the namespace errors, [`NetdevError::TunUnavailable`],
    /// [`NetdevError::InterfaceInUse`] when a device of that name exists and is taken,
    /// [`NetdevError::PermissionDenied`], [`NetdevError::TunCreate`].
    pub async fn create(netns: &Netns, name: &str) -> Result<Self, NetdevError> {
        validate_interface_name(name)?;
        let owned = name.to_owned();
        let label = netns.to_string();
        let file = netns.run(move || open_tun(&owned, &label)).await??;
        // SAFETY: the `File` owns its descriptor, and `TunDevice` never closes or replaces
        // it while the `AsyncFd` holds it.
        let fd = unsafe {
            AsyncFd::register_with_interest(file, Interest::READABLE | Interest::WRITABLE)
        }
        .map_err(|e| NetdevError::TunCreate {
            name: name.to_owned(),
            netns: netns.to_string(),
            source: e.into_parts().1,
        })?;
        tracing::debug!(interface = name, %netns, "created TUN interface");
        Ok(Self {
            fd,
            name: name.to_owned(),
        })
    }

    /// The interface name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Receives one packet into `buf`, waiting until one is there; returns its length.
    ///
    /// # Errors
    /// The read error (e.g. the interface was deleted).
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| read_packet(fd.get_ref(), buf)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Sends one packet; returns the bytes written.
    ///
    /// # Errors
    /// The write error: `EINVAL` for a malformed packet, `EIO` while the link is down.
    pub async fn send(&self, packet: &[u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|fd| write_packet(fd.get_ref(), packet)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Clears `batch`, waits until the device is readable, then reads packets without
    /// waiting again until the kernel has no more or the batch is full (its
    /// [`PacketBatch::limit`]): one wake-up serves many packets. Returns how many packets the batch now holds (at least one).
    ///
    /// # Errors
    /// A read error when no packet was read; an error after some packets ends the batch
    /// early and shows again on the next call.
    pub async fn recv_batch(&self, batch: &mut PacketBatch) -> io::Result<usize> {
        batch.clear();
        loop {
            let mut guard = self.fd.readable().await?;
            while !batch.is_full() {
                match batch.push_with(MAX_PACKET, |buf| read_packet(self.fd.get_ref(), buf)) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        guard.clear_ready();
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if batch.is_empty() => return Err(e),
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                return Ok(batch.len());
            }
        }
    }

    /// Writes every packet of `batch` (in order) and returns how many the kernel accepted.
    /// A packet the kernel refuses (malformed, link down) is dropped and the rest still
    /// go out: the caller counts `batch.len() - sent` as drops.
    ///
    /// # Errors
    /// The first write error, when no packet at all was accepted.
    pub async fn send_batch(&self, batch: &PacketBatch) -> io::Result<usize> {
        let mut sent = 0;
        let mut first_error = None;
        for packet in batch.iter() {
            let result = loop {
                let mut guard = self.fd.writable().await?;
                match guard.try_io(|fd| write_packet(fd.get_ref(), packet)) {
                    Ok(result) => break result,
                    Err(_would_block) => continue,
                }
            };
            match result {
                Ok(_) => sent += 1,
                Err(e) => {
                    tracing::trace!(interface = %self.name, error = %e, "TUN write dropped");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) if sent == 0 => Err(e),
            _ => Ok(sent),
        }
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
mod tests;
