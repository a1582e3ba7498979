//! Drops worth an incident detector's attention, with who caused them: a peer whose
//! decrypted packet claims a source that is not routed to it, and a handshake message
//! that failed (an unknown static key, a wrong preshared key, a bad MAC or timestamp).
//!
//! The router queues them as they happen, at most [`MAX_SUSPECTS`] between two
//! [`Router::drain_suspects`](crate::Router::drain_suspects) calls; beyond that they are
//! only counted as drops, so a flood cannot grow the queue.

use std::net::{IpAddr, SocketAddr};

use crate::PublicKey;

/// Most suspect drops queued between two drains (the caller drains after every batch).
pub const MAX_SUSPECTS: usize = 256;

/// One suspect drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suspect {
    /// A peer's authenticated packet carried an inner source not routed to that peer.
    SpoofedSource {
        /// The peer that sent it.
        peer: PublicKey,
        /// Where the datagram came from.
        from: SocketAddr,
        /// The inner source address it claimed (`None` when the packet had none to read).
        claimed: Option<IpAddr>,
    },
    /// A handshake message from `from` failed.
    HandshakeFailed {
        /// Where the datagram came from.
        from: SocketAddr,
        /// The peer whose tunnel refused it; `None` when no peer has the sender's key.
        peer: Option<PublicKey>,
    },
}

/// The bounded queue.
#[derive(Debug, Default)]
pub(crate) struct Suspects {
    queue: Vec<Suspect>,
}

impl Suspects {
    pub(crate) fn push(&mut self, s: Suspect) {
        if self.queue.len() < MAX_SUSPECTS {
            self.queue.push(s);
        }
    }

    pub(crate) fn drain(&mut self) -> std::vec::Drain<'_, Suspect> {
        self.queue.drain(..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_keeps_at_most_max_suspects_until_drained() {
        let mut q = Suspects::default();
        let from: SocketAddr = "198.18.0.9:51820".parse().expect("addr");
        for _ in 0..MAX_SUSPECTS + 50 {
            q.push(Suspect::HandshakeFailed { from, peer: None });
        }
        assert_eq!(q.drain().count(), MAX_SUSPECTS);
        assert_eq!(q.drain().count(), 0);
    }
}
