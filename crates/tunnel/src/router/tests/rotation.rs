//! PSK rotation with a node that learns the new key late or restarts with the old one:
//! traffic both ways, in 100 ms steps, never stops (on this simulated clock the outage is
//! exact: no step loses a packet).

use std::time::Duration;

use crate::testutil::{psk, public, seq_of, underlay, Net};
use crate::DatagramBatch;

use super::{assert_flows, A, B};

const STEP: Duration = Duration::from_millis(100);

/// Sends one packet each way per step for `steps`; returns the longest stretch either
/// direction delivered nothing.
/// The first handshake initiation node `from` sent, as an attacker on the path saw it.
pub(super) fn captured_initiation(net: &Net, from: u8) -> Vec<u8> {
    net.log
        .iter()
        .find(|s| s.from == from && s.bytes[0] == 1)
        .map(|s| s.bytes.clone())
        .expect("an initiation")
}

/// Where node `at` sends to node `peer` now.
pub(super) fn endpoint_of(net: &mut Net, at: u8, peer: u8) -> Option<std::net::SocketAddr> {
    let now = net.now;
    net.router(at)
        .peer_status(&public(peer), now)
        .and_then(|p| p.endpoint)
}

pub(super) fn longest_gap(net: &mut Net, steps: u32, seq0: u32) -> Duration {
    let (mut gap_ab, mut gap_ba, mut worst) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for i in 0..steps {
        net.send(A, B, seq0 + i);
        net.send(B, A, seq0 + i);
        net.tick(STEP);
        let ab = net.take_delivered(B).iter().any(|p| seq_of(p) == seq0 + i);
        let ba = net.take_delivered(A).iter().any(|p| seq_of(p) == seq0 + i);
        gap_ab = if ab { Duration::ZERO } else { gap_ab + STEP };
        gap_ba = if ba { Duration::ZERO } else { gap_ba + STEP };
        worst = worst.max(gap_ab).max(gap_ba);
    }
    worst
}

fn rotate(net: &mut Net, id: u8, n: u8) {
    let now = net.now;
    let mut out = DatagramBatch::new(4, 1500);
    assert!(net.router(id).set_psk(now, psk(n), &mut out));
    let other = if id == A { B } else { A };
    for d in out.iter() {
        net.inject(other, underlay(id), d.bytes);
    }
    net.pump();
}

#[test]
fn a_node_that_learns_the_new_key_30_s_late_keeps_traffic_flowing() {
    let mut net = Net::new(2);
    assert_flows(&mut net, A, B, 1);
    rotate(&mut net, A, 2);
    let late = longest_gap(&mut net, 300, 100);
    rotate(&mut net, B, 2);
    let after = longest_gap(&mut net, 300, 1000);
    assert_eq!((late, after), (Duration::ZERO, Duration::ZERO));
}

#[test]
fn a_node_restarted_with_the_old_key_after_the_others_rotated_is_reached_at_once() {
    let mut net = Net::new(2);
    assert_flows(&mut net, A, B, 1);
    rotate(&mut net, A, 2);
    // B restarts from saved state that still has the old key, and greets A.
    net.restart(B, 1);
    net.greet(B);
    let gap = longest_gap(&mut net, 300, 100);
    assert_eq!(gap, Duration::ZERO);
}

#[test]
fn a_captured_initiation_replayed_after_a_rotation_or_restart_moves_no_endpoint() {
    let mut net = Net::new(2);
    assert_flows(&mut net, A, B, 1);
    let captured = captured_initiation(&net, A);
    let attacker = underlay(9);
    let endpoint_of_a = |net: &mut Net| endpoint_of(net, B, A);
    // B's fresh new-key tunnel has never seen it; B's old-key tunnel refuses it as a replay.
    rotate(&mut net, B, 2);
    net.inject(B, attacker, &captured);
    net.pump();
    assert_eq!(endpoint_of_a(&mut net), Some(underlay(A)));
    // Likewise a restarted B, whose tunnels are all fresh.
    net.restart(B, 2);
    net.inject(B, attacker, &captured);
    net.pump();
    assert_eq!(endpoint_of_a(&mut net), Some(underlay(A)));
    // The real A still gets through (B greets it from the configured endpoint).
    rotate(&mut net, A, 2);
    assert_flows(&mut net, A, B, 50);
}
