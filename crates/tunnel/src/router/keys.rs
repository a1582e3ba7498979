//! The segment keys of a router during a make-before-break rotation: the key it
//! initiates with and a second key it answers with, each peer holding a tunnel per key.
//!
//! The coordinator drives a rotation in two phases (docs/psk-rotation.md): in
//! `accepting` the second key is the *next* one (published, not yet used to initiate), in
//! `switched` it is the *previous* one (still answered). Either way a peer's second tunnel
//! answers initiations made with its key and carries data while the first tunnel has no
//! session. Set by the control plane, the second tunnels stay as long as it says so, so a
//! member restarted in either phase still has both keys; [`Router::set_psk`] alone keeps
//! today's unpinned behaviour (the old tunnel retires once the new one works).

use std::time::Duration;

use super::Router;
use crate::batch::{DatagramBatch, HANDSHAKE_MAX};
use crate::peer::Which;
use crate::PresharedKey;

impl Router {
    /// Makes `psk` the key this member initiates with and `also`, if given, a second key
    /// it answers with (and sends on while the first has no session with a peer). A
    /// switch to the key that was the second one promotes the second tunnels, sessions
    /// and all, so nothing waits for a handshake. Without `also`, the second tunnels
    /// retire as after [`Router::set_psk`]. Handshakes it starts go to `out`. Returns
    /// whether anything changed.
    pub fn set_keys(
        &mut self,
        now: Duration,
        psk: PresharedKey,
        also: Option<PresharedKey>,
        out: &mut DatagramBatch,
    ) -> bool {
        let also = also.filter(|k| *k != psk);
        let mut changed = false;
        if psk != self.psk {
            if self.second_key.as_ref() == Some(&psk) {
                self.promote_second(now, out);
            } else {
                self.set_psk(now, psk, out);
            }
            changed = true;
        }
        match also {
            Some(key) => {
                if self.second_key.as_ref() != Some(&key) {
                    self.drop_second_tunnels();
                    self.second_key = Some(key);
                    changed = true;
                }
                changed |= !self.pinned;
                self.pinned = true;
                self.fill_second_tunnels(now);
            }
            None if self.pinned => {
                self.pinned = false;
                for peer in self.peers.iter_mut().flatten() {
                    if peer.retiring.is_some() && peer.tunnel.sendable() {
                        peer.retire_at = Some(now + crate::peer::RETIRE_GRACE);
                    }
                }
                changed = true;
            }
            None => {}
        }
        if changed && self.pinned {
            tracing::info!(
                "segment keys set; the second key is answered too while the rotation runs"
            );
        } else if changed {
            tracing::info!("segment keys set; the second key retires");
        }
        changed
    }

    /// Whether a second key is pinned by the control plane (a rotation is in progress).
    pub fn rotating(&self) -> bool {
        self.pinned
    }

    /// Gives a peer added while a second key is pinned its second tunnel.
    pub(super) fn add_second_tunnel(&mut self, slot: usize, now: Duration) {
        let Some(key) = self.second_key.clone().filter(|_| self.pinned) else {
            return;
        };
        let Some(peer) = self.peers.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if peer.retiring.is_some() {
            return;
        }
        let second = self
            .indices
            .tunnel(now, &self.identity, slot, Which::Retiring, &key, peer);
        peer.retiring = Some(second);
        peer.retire_at = None;
    }

    fn fill_second_tunnels(&mut self, now: Duration) {
        for slot in 0..self.peers.len() {
            self.add_second_tunnel(slot, now);
        }
    }

    fn drop_second_tunnels(&mut self) {
        for peer in self.peers.iter_mut().flatten() {
            if let Some(old) = peer.retiring.take() {
                self.indices.map.remove(&old.index());
                peer.absorb(&old);
            }
            peer.retire_at = None;
        }
    }

    /// The second key becomes the first: every peer's second tunnel becomes its first
    /// (keeping its session, if any) and the first becomes the second.
    fn promote_second(&mut self, now: Duration, out: &mut DatagramBatch) {
        let Some(second) = self.second_key.take() else {
            return;
        };
        let first = std::mem::replace(&mut self.psk, second);
        self.second_key = Some(first);
        for (slot, entry) in self.peers.iter_mut().enumerate() {
            let Some(peer) = entry.as_mut() else { continue };
            match peer.retiring.take() {
                Some(t) => {
                    let old = std::mem::replace(&mut peer.tunnel, t);
                    self.indices
                        .map
                        .insert(peer.tunnel.index(), (slot, Which::Current));
                    self.indices
                        .map
                        .insert(old.index(), (slot, Which::Retiring));
                    peer.retiring = Some(old);
                }
                None => {
                    let fresh = self.indices.tunnel(
                        now,
                        &self.identity,
                        slot,
                        Which::Current,
                        &self.psk,
                        peer,
                    );
                    let old = std::mem::replace(&mut peer.tunnel, fresh);
                    self.indices
                        .map
                        .insert(old.index(), (slot, Which::Retiring));
                    peer.retiring = Some(old);
                }
            }
            peer.retire_at = None;
            if let (Some(ep), false) = (peer.endpoint, peer.tunnel.sendable()) {
                let r = peer.tunnel.ensure_handshake(now, out.tail(HANDSHAKE_MAX));
                self.totals.emit(peer, out, r, ep);
            }
        }
        tracing::info!("switched to the next preshared key; the previous one is still answered");
    }
}
