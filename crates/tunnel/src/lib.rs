//! Sans-IO WireGuard router for one segwire member.
//!
//! A member is one workload attached to one segment: its own static X25519
//! key, the segment's preshared key, its overlay IPv4 address and a table of
//! peers. [`Router`] holds all of that on top of boringtun's `noise::Tunn`
//! (wrapped in one adapter module) and does cryptokey routing: outbound
//! packets go to the peer whose allowed IPs hold the destination (longest
//! prefix), inbound packets are accepted only if their inner source is routed
//! to the peer that sent them.
//!
//! No sockets, no threads, no clock: every call takes `now`, a [`Duration`]
//! since an epoch the caller fixes once (e.g. `start.elapsed()` for an
//! `Instant` taken at startup). It must be monotonic and advance in real time
//! in production; tests step it by hand.
//!
//! # How an I/O shell drives it
//!
//! ```text
//! let mut router = Router::new(RouterConfig::new(secret, psk, address));
//! router.upsert_peer(now, &peer_config)?;            // for each peer, again on netmap change
//! let mut datagrams = DatagramBatch::new(64, mtu);    // once, reused
//! let mut packets = PacketBatch::new(64, mtu);        // once, reused
//! loop {
//!     // TUN readable: up to 64 packets
//!     router.encapsulate_batch(now, tun_packets, &mut datagrams);
//!     // UDP readable (recvmmsg): up to 64 (source, datagram)
//!     router.decapsulate_batch(now, udp_datagrams, &mut packets, &mut datagrams);
//!     // every ~250 ms
//!     router.handle_timers(now, &mut datagrams);
//!     // write `packets` to TUN, send `datagrams` (sendmmsg / GSO), then clear both
//! }
//! ```
//!
//! Batches grow once if a call needs more room (e.g. 64 KiB the first time a
//! queued packet is flushed) and keep their capacity across `clear()`.
//! Every drop is counted by [`DropReason`] per peer and per router; see
//! [`Router::status`].
//!
//! [`Duration`]: std::time::Duration

mod batch;
mod keys;
mod peer;
mod router;
mod routes;
mod stats;
mod suspect;
mod timers;
mod wg;

pub use batch::{
    Datagram, DatagramBatch, PacketBatch, Packets, Run, Runs, DATA_OVERHEAD, HANDSHAKE_MAX,
    MAX_PACKET,
};
pub use keys::{InvalidKey, PresharedKey, PublicKey, KEY_LEN};
pub use peer::{PeerChange, PeerConfig};
pub use router::{
    Router, RouterConfig, RouterError, SyncReport, DEFAULT_HANDSHAKE_RATE_LIMIT, MAX_PEERS,
};
pub use stats::{DropCounts, DropReason, PeerStatus, RouterStatus, TrafficCounters};
pub use suspect::{Suspect, MAX_SUSPECTS};
pub use wg::WgError;
pub use x25519_dalek::StaticSecret;

#[cfg(test)]
mod testutil;
