//! Linux I/O for the segwire node agent, behind our own types.
//!
//! - [`Netns`]: where a workload lives, parsed from the CLI's `--netns`/`--pid`, and
//!   [`Netns::run`]/[`Netns::run_future`] to run code inside it on a dedicated thread
//!   (tokio worker threads never switch namespace).
//! - [`TunDevice`]: a non-blocking TUN interface for a data-path thread, with batch reads and
//!   writes through a reusable [`PacketBatch`] (the tunnel's own batch type, re-exported:
//!   one batch type from the TUN device to the UDP socket).
//! - [`configure`], [`create_interface`], [`remove_link`]: the interface's MTU, /32
//!   address, link state and the one route for the segment's CIDR, over rtnetlink inside
//!   the namespace; [`link_exists`], [`list_links`], [`list_ipv4_addrs`],
//!   [`host_addrs`] to look.
//! - [`interface_name`]: `sw-<segment>`, shortened with a stable hash to fit 15 bytes.
//! - [`bind_udp`]: underlay UDP sockets with large buffers; [`BatchSocket`]: one of them
//!   read with `recvmmsg(2)` + UDP GRO and written with UDP GSO, probed at runtime.
//! - [`Poller`], [`Waker`], [`wait_fd`]: level-triggered epoll for that thread, an eventfd
//!   to wake it, and waiting on one descriptor.
//! - [`ProcessWatch`]: awaiting a process's exit through a pidfd.
//!
//! Linux only.

mod affinity;
mod config;
mod error;
mod naming;
mod netns;
mod nl;
mod pidfd;
mod poll;
mod query;
#[cfg(test)]
mod testutil;
mod tun;
mod udp;
mod udp_batch;

pub use affinity::{thread_sample, CpuMask};
pub use config::{
    configure, create_interface, remove_link, InterfaceConfig, DEFAULT_MTU, DEFAULT_TX_QUEUE_LEN,
};
pub use error::NetdevError;
pub use naming::{
    interface_name, validate_interface_name, INTERFACE_PREFIX, MAX_INTERFACE_NAME_LEN,
};
pub use netns::{Netns, NetnsError, NETNS_RUN_DIR};
pub use pidfd::ProcessWatch;
pub use poll::{wait_fd, Poller, Readiness, Waker};
pub use query::{host_addrs, link_exists, list_ipv4_addrs, list_links, InterfaceAddr, LinkInfo};
pub use segwire_tunnel::PacketBatch;
pub use tun::TunDevice;
pub use udp::{
    bind_udp, bind_udp_any, bind_udp_tokio, socket_buffers, SocketBuffers, DEFAULT_SOCKET_BUFFER,
};
pub use udp_batch::{BatchSocket, RecvBatch, SendReport, UdpOffload};
