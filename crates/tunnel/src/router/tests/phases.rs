//! Rotation driven by the control plane in phases (`Router::set_keys`): accepting the next
//! key, switching to it while the previous one is still answered, retiring it. Traffic
//! both ways in 100 ms steps never stops, also for a member restarted in a phase while a
//! peer is late, and the answer that fails by design in every two-key handshake raises no
//! suspect.

use std::time::Duration;

use crate::testutil::{psk, Net};
use crate::DatagramBatch;

use super::rotation::{captured_initiation, endpoint_of, longest_gap};
use super::{assert_flows, A, B};

const C: u8 = 3;

/// Node `id` is told keys (`first`, `also`); what it sends crosses the underlay.
fn keys(net: &mut Net, id: u8, first: u8, also: Option<u8>) -> bool {
    let now = net.now;
    let mut out = DatagramBatch::new(8, 1500);
    let changed = net
        .router(id)
        .set_keys(now, psk(first), also.map(psk), &mut out);
    let peers: Vec<u8> = net
        .nodes
        .iter()
        .map(|n| n.id)
        .filter(|&n| n != id)
        .collect();
    for d in out.iter() {
        if let Some(to) = peers
            .iter()
            .copied()
            .find(|&p| crate::testutil::underlay(p) == d.dst)
        {
            net.inject(to, crate::testutil::underlay(id), d.bytes);
        }
    }
    net.pump();
    changed
}

fn no_suspects(net: &mut Net) {
    for id in [A, B, C] {
        let n = net.router(id).drain_suspects().count();
        assert_eq!(n, 0, "node {id} raised suspects");
    }
}

#[test]
fn three_phases_with_a_node_30_s_late_at_each_step_stop_no_traffic() {
    let mut net = Net::new(3);
    assert_flows(&mut net, A, B, 1);
    assert_flows(&mut net, B, C, 2);
    // Accepting: everyone learns the next key, C 30 s late.
    assert!(keys(&mut net, A, 1, Some(2)));
    assert!(keys(&mut net, B, 1, Some(2)));
    assert_eq!(longest_gap(&mut net, 300, 100), Duration::ZERO);
    assert!(keys(&mut net, C, 1, Some(2)));
    assert!(net.router(C).rotating());
    // Switched: A first, B and C 30 s later.
    assert!(keys(&mut net, A, 2, Some(1)));
    assert_eq!(longest_gap(&mut net, 300, 1000), Duration::ZERO);
    assert!(keys(&mut net, B, 2, Some(1)));
    assert!(keys(&mut net, C, 2, Some(1)));
    assert_eq!(longest_gap(&mut net, 100, 2000), Duration::ZERO);
    // Retired: the previous key goes, A first.
    assert!(keys(&mut net, A, 2, None));
    assert!(!net.router(A).rotating());
    assert_eq!(longest_gap(&mut net, 300, 3000), Duration::ZERO);
    assert!(keys(&mut net, B, 2, None));
    assert!(keys(&mut net, C, 2, None));
    assert!(!keys(&mut net, C, 2, None), "nothing left to change");
    // Long after: only new-key sessions remain and traffic still flows.
    net.run_for(Duration::from_secs(200));
    assert_eq!(longest_gap(&mut net, 50, 4000), Duration::ZERO);
    no_suspects(&mut net);
}

#[test]
fn a_member_restarted_in_the_switched_phase_reaches_a_peer_that_never_learnt_the_next_key() {
    let mut net = Net::new(2);
    assert_flows(&mut net, A, B, 1);
    // A goes through accepting into switched; B is cut off from the control plane and
    // still has only key 1 (the grace period ran out without it).
    keys(&mut net, A, 1, Some(2));
    keys(&mut net, A, 2, Some(1));
    assert_eq!(longest_gap(&mut net, 50, 100), Duration::ZERO);
    // A restarts from its saved netmap, which holds both keys, and greets.
    net.restart(A, 2);
    keys(&mut net, A, 2, Some(1));
    net.greet(A);
    assert_eq!(longest_gap(&mut net, 300, 1000), Duration::ZERO);
}

#[test]
fn a_member_restarted_in_the_accepting_phase_is_reached_by_a_peer_that_already_switched() {
    let mut net = Net::new(2);
    assert_flows(&mut net, A, B, 1);
    keys(&mut net, A, 1, Some(2));
    keys(&mut net, B, 1, Some(2));
    keys(&mut net, A, 2, Some(1));
    // B restarts from a saved netmap of the accepting phase.
    net.restart(B, 1);
    keys(&mut net, B, 1, Some(2));
    net.greet(B);
    assert_eq!(longest_gap(&mut net, 300, 100), Duration::ZERO);
    keys(&mut net, B, 2, Some(1));
    assert_eq!(longest_gap(&mut net, 100, 1000), Duration::ZERO);
}

#[test]
fn a_peer_added_during_a_rotation_gets_a_second_tunnel() {
    // C joins with only the next key (it enrolled after the switch); A and B rotate.
    let mut net = Net::with_psks(&[1, 1, 2]);
    keys(&mut net, A, 1, Some(2));
    keys(&mut net, B, 1, Some(2));
    // A rebuilds its peer C (e.g. C's member re-attached): the new peer has both tunnels.
    let c = crate::testutil::public(C);
    let now = net.now;
    assert!(net.router(A).remove_peer(&c));
    net.router(A)
        .upsert_peer(now, &crate::testutil::peer_config(C))
        .expect("peer");
    net.greet(C);
    assert_flows(&mut net, C, A, 10);
    assert_flows(&mut net, A, C, 11);
}

#[test]
fn a_captured_initiation_replayed_in_either_phase_moves_no_endpoint() {
    let mut net = Net::new(2);
    assert_flows(&mut net, A, B, 1);
    let captured = captured_initiation(&net, A);
    let attacker = crate::testutil::underlay(9);
    let endpoint_of_a = |net: &mut Net| endpoint_of(net, B, A);
    // B's second (next-key) tunnel is fresh, B's first refuses the replay.
    keys(&mut net, B, 1, Some(2));
    net.inject(B, attacker, &captured);
    net.pump();
    assert_eq!(endpoint_of_a(&mut net), Some(crate::testutil::underlay(A)));
    // Switched, and restarted in the switched phase: every tunnel fresh.
    keys(&mut net, B, 2, Some(1));
    net.inject(B, attacker, &captured);
    net.pump();
    assert_eq!(endpoint_of_a(&mut net), Some(crate::testutil::underlay(A)));
    net.restart(B, 2);
    keys(&mut net, B, 2, Some(1));
    net.inject(B, attacker, &captured);
    net.pump();
    assert_eq!(endpoint_of_a(&mut net), Some(crate::testutil::underlay(A)));
}
