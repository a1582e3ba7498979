//! Sans-IO data path of one segwire member.
//!
//! [`Member`] composes the WireGuard [`Router`](segwire_tunnel::Router), the policy
//! [`Firewall`](segwire_policy::Firewall) and the [`FlowLog`] of one member behind four
//! calls an I/O shell drives: [`Member::handle_tun`], [`Member::handle_udp`],
//! [`Member::handle_timeout`] and [`Member::poll_timeout`], and the incident
//! [`Detection`]s it makes of what it drops ([`Member::poll_detection`]). The shell (the
//! node agent's `member` module) only moves bytes between the TUN device, the UDP socket
//! and this.
//!
//! No async runtime, no sockets, no clock: time comes in as a [`Duration`](std::time::Duration)
//! since the shell's epoch, one clock for the router, the firewall and the flow log, so
//! two members can be tested against each other in memory on virtual time.
//!
//! ```text
//! let mut member = Member::new(now, config);
//! member.upsert_peer(now, &peer)?;
//! loop {
//!     // TUN readable: read a PacketBatch        -> member.handle_tun(now, &batch)
//!     // UDP readable: read (source, datagram)s  -> member.handle_udp(now, datagrams)
//!     // now >= member.poll_timeout()            -> member.handle_timeout(now)
//!     // write member.packets() to TUN, send member.datagrams(), then clear both
//! }
//! ```

mod detect;
mod flows;
mod member;
mod placement;

pub use detect::{DetectConfig, Detection, Detections, MAX_KEYS, MAX_READY};
pub use flows::{FlowKey, FlowLog, FlowStat, NamedFlow, MAX_FLOWS};
pub use member::{Member, MemberConfig, EXPIRE_INTERVAL, TIMER_INTERVAL};
pub use placement::{Affinity, Leave, Placement, PlacementConfig, ThreadSample};
