//! Handshakes a member starts on its own: with every peer it has not greeted yet, as soon
//! as the peer's endpoint is known. A restarted member (or one with a new key) would
//! otherwise wait for outgoing traffic, and a peer that only answers (a database) would
//! keep sending into its stale session until WireGuard's keepalive timeout (~15 s).

use std::time::Duration;

use super::Router;
use crate::batch::{DatagramBatch, HANDSHAKE_MAX};
use crate::wg::WgOutput;

impl Router {
    /// Starts a handshake with every peer added (or moved to a new endpoint) since the
    /// last call that has an endpoint and no usable session; datagrams go to `out`.
    /// Returns how many initiations it wrote.
    ///
    /// Call it when the data path starts and after changing its peers; calling it again
    /// without changes sends nothing. A peer without an endpoint is greeted once it gets
    /// one.
    pub fn initiate_pending_handshakes(&mut self, now: Duration, out: &mut DatagramBatch) -> usize {
        let mut sent = 0;
        for peer in self.peers.iter_mut().flatten() {
            let Some(ep) = peer.endpoint.filter(|_| peer.greet) else {
                continue;
            };
            peer.greet = false;
            let r = peer.tunnel.ensure_handshake(now, out.tail(HANDSHAKE_MAX));
            if matches!(r, Ok(WgOutput::Network(_))) {
                sent += 1;
            }
            self.totals.emit(peer, out, r, ep);
            // During a rotation, greet with the second key too: a peer that has only
            // that one (it is late, or restarted from saved state) answers it at once.
            if self.pinned {
                if let Some(second) = peer.retiring.as_mut().filter(|t| !t.sendable()) {
                    let r = second.ensure_handshake(now, out.tail(HANDSHAKE_MAX));
                    self.totals.emit(peer, out, r, ep);
                }
            }
        }
        if sent > 0 {
            tracing::debug!(
                peers = sent,
                "handshakes started without waiting for traffic"
            );
        }
        sent
    }
}
