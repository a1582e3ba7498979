//! Two or three routers wired in memory, on virtual time.

use std::net::IpAddr;
use std::time::Duration;

use crate::testutil::{ipv4_packet, overlay, peer_config, psk, public, seq_of, underlay, Net};
use crate::{DropReason, PeerChange, Suspect};

const A: u8 = 1;
const B: u8 = 2;
const C: u8 = 3;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn handshakes(net: &mut Net, at: u8, peer: u8) -> u64 {
    let now = net.now;
    net.router(at)
        .peer_status(&public(peer), now)
        .expect("peer exists")
        .handshakes
}

fn drops(net: &mut Net, at: u8, reason: DropReason) -> u64 {
    net.router(at).drops().get(reason)
}

/// Sends one packet each way and checks both arrive intact.
fn assert_flows(net: &mut Net, x: u8, y: u8, seq: u32) {
    net.send(x, y, seq);
    net.pump();
    let got = net.take_delivered(y);
    assert_eq!(
        got,
        vec![ipv4_packet(overlay(x), overlay(y), seq, 64)],
        "{x} -> {y}"
    );
    net.send(y, x, seq + 1);
    net.pump();
    let got = net.take_delivered(x);
    assert_eq!(
        got,
        vec![ipv4_packet(overlay(y), overlay(x), seq + 1, 64)],
        "{y} -> {x}"
    );
}

#[test]
fn handshake_then_data_both_ways() {
    let mut net = Net::new(2);
    assert_flows(&mut net, A, B, 1);
    assert_eq!(handshakes(&mut net, A, B), 1);
    assert_eq!(handshakes(&mut net, B, A), 1);

    let now = net.now + secs(3);
    let status = net.router(A).status(now);
    let b = &status.peers[0];
    assert_eq!(b.public_key, public(B));
    assert_eq!(b.endpoint, Some(underlay(B)));
    assert_eq!(b.last_handshake_ago, Some(secs(3)));
    assert_eq!(b.traffic.tx_packets, 1);
    assert_eq!(b.traffic.rx_packets, 1);
    assert_eq!(b.traffic.tx_bytes, 92);
    assert_eq!(status.drops.total(), 0);
    assert_eq!(net.router(B).drops().total(), 0);
}

#[test]
fn spoofed_inner_source_is_dropped_and_counted() {
    let mut net = Net::new(3);
    assert_flows(&mut net, A, B, 1);
    // B claims an address nobody owns, then C's address.
    for (i, fake) in [overlay(9), overlay(C)].into_iter().enumerate() {
        net.send_raw(B, &ipv4_packet(fake, overlay(A), 10 + i as u32, 64));
        net.pump();
    }
    assert!(net.take_delivered(A).is_empty());
    assert_eq!(drops(&mut net, A, DropReason::SpoofedSource), 2);
    let now = net.now;
    let b = net.router(A).peer_status(&public(B), now).expect("B");
    assert_eq!(b.drops.get(DropReason::SpoofedSource), 2);
    let suspects: Vec<Suspect> = net.router(A).drain_suspects().collect();
    let claimed: Vec<Option<IpAddr>> = suspects
        .iter()
        .map(|s| match s {
            Suspect::SpoofedSource {
                peer,
                from,
                claimed,
            } => {
                assert_eq!((*peer, *from), (public(B), underlay(B)));
                *claimed
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        claimed,
        vec![Some(overlay(9).into()), Some(overlay(C).into())]
    );
    assert_eq!(net.router(A).drain_suspects().count(), 0);
    // B's own address still passes.
    assert_flows(&mut net, B, A, 20);
}

#[test]
fn peer_restart_recovers_when_only_the_survivor_sends() {
    let mut net = Net::new(2);
    assert_flows(&mut net, A, B, 1);
    net.restart(B, 1);
    // A keeps sending on its dead session, one packet a second. WireGuard starts a new
    // handshake once data sent has had no answer for KEEPALIVE_TIMEOUT + REKEY_TIMEOUT
    // (10 s + 5 s): on this simulated clock the first packet to arrive is the one sent
    // exactly 15 s after the restart, and nothing before it does.
    let restart = net.now;
    let mut first = None;
    for seq in 100..140 {
        let sent = net.now - restart;
        net.send(A, B, seq);
        net.run_for(Duration::from_secs(1));
        let got = net.take_delivered(B);
        if first.is_none() && !got.is_empty() {
            first = Some((sent, got.iter().map(|p| seq_of(p)).min()));
        }
    }
    assert_eq!(first, Some((secs(15), Some(115))), "traffic recovered");
    assert_eq!(handshakes(&mut net, A, B), 2);
    assert_flows(&mut net, A, B, 1000);
}

#[test]
fn peer_restart_recovers_at_once_when_the_restarted_side_sends() {
    let mut net = Net::new(2);
    assert_flows(&mut net, A, B, 1);
    net.restart(B, 1);
    assert_flows(&mut net, B, A, 10);
    assert_eq!(handshakes(&mut net, A, B), 2);
}

#[test]
fn rekey_after_120s_without_loss() {
    let mut net = Net::new(2);
    assert_flows(&mut net, A, B, 0);
    let (mut sent_ab, mut sent_ba) = (Vec::new(), Vec::new());
    let mut got_ab = Vec::new();
    let mut got_ba = Vec::new();
    for step in 0..3000u32 {
        // 300 s in 100 ms steps, a packet each way every step
        net.send(A, B, step);
        sent_ab.push(step);
        net.send(B, A, step);
        sent_ba.push(step);
        net.tick(Duration::from_millis(100));
        got_ab.extend(net.take_delivered(B).iter().map(|p| seq_of(p)));
        got_ba.extend(net.take_delivered(A).iter().map(|p| seq_of(p)));
    }
    assert_eq!(got_ab, sent_ab, "A -> B lost or reordered nothing");
    assert_eq!(got_ba, sent_ba, "B -> A lost or reordered nothing");
    // rekeyed at ~120 s and ~240 s
    assert_eq!(handshakes(&mut net, A, B), 3);
    assert_eq!(handshakes(&mut net, B, A), 3);
    assert_eq!(net.router(A).drops().total(), 0);
    assert_eq!(net.router(B).drops().total(), 0);
}

#[test]
fn idle_session_expires_and_comes_back_on_demand() {
    let mut net = Net::new(2);
    assert_flows(&mut net, A, B, 1);
    net.run_for(secs(200)); // past REJECT_AFTER_TIME, no traffic
    assert_flows(&mut net, A, B, 2);
    assert_eq!(handshakes(&mut net, A, B), 2);
}

#[test]
fn passive_keepalive_answers_one_way_traffic() {
    let mut net = Net::new(2);
    assert_flows(&mut net, A, B, 1);
    net.run_for(secs(1));
    let before = net.log.len();
    net.send(A, B, 2);
    net.pump();
    net.run_for(secs(11));
    let keepalives = net.log[before..]
        .iter()
        .filter(|s| s.from == B && s.bytes.len() == 32)
        .count();
    assert_eq!(keepalives, 1);
}

#[test]
fn removing_a_peer_leaves_other_sessions_untouched() {
    let mut net = Net::new(3);
    assert_flows(&mut net, A, B, 1);
    assert_flows(&mut net, A, C, 1);
    assert!(net.router(A).remove_peer(&public(C)));
    assert!(!net.router(A).remove_peer(&public(C)));
    assert_flows(&mut net, A, B, 10);
    assert_eq!(handshakes(&mut net, A, B), 1);
    assert_eq!(handshakes(&mut net, B, A), 1);
    // C's packets are now from an unknown peer, A's to C have no route.
    net.send(C, A, 20);
    net.pump();
    assert!(net.take_delivered(A).is_empty());
    assert_eq!(drops(&mut net, A, DropReason::UnknownPeer), 1);
    net.send(A, C, 21);
    assert_eq!(drops(&mut net, A, DropReason::NoRoute), 1);
}

#[test]
fn upsert_updates_in_place_without_new_session() {
    let mut net = Net::new(2);
    assert_flows(&mut net, A, B, 1);
    let now = net.now;
    let mut cfg = peer_config(B);
    assert_eq!(
        net.router(A).upsert_peer(now, &cfg),
        Ok(PeerChange::Unchanged)
    );
    cfg.allowed_ips.push("100.64.1.0/24".parse().expect("net"));
    cfg.persistent_keepalive = Some(25);
    assert_eq!(
        net.router(A).upsert_peer(now, &cfg),
        Ok(PeerChange::Updated)
    );
    assert_flows(&mut net, A, B, 2);
    // the new network routes to B without a new handshake
    net.send_raw(
        A,
        &ipv4_packet(overlay(A), "100.64.1.7".parse().expect("ip"), 3, 64),
    );
    net.pump();
    assert_eq!(net.take_delivered(B).len(), 1);
    assert_eq!(handshakes(&mut net, A, B), 1);
}

#[test]
fn psk_change_moves_peers_to_a_new_session_without_loss() {
    let mut net = Net::new(2);
    assert_flows(&mut net, A, B, 1);
    let mut out = crate::DatagramBatch::new(4, 1500);
    let now = net.now;
    assert!(net.router(A).set_psk(now, psk(2), &mut out));
    assert_eq!(out.len(), 1, "initiation sent right away");
    for d in out.iter() {
        net.inject(B, underlay(A), d.bytes);
    }
    net.pump();
    // B still has the old PSK: A cannot complete, but traffic goes on over the old session.
    assert!(drops(&mut net, A, DropReason::HandshakeFailed) >= 1);
    assert_eq!(handshakes(&mut net, A, B), 1);
    assert_flows(&mut net, A, B, 10);

    out.clear();
    let now = net.now;
    assert!(net.router(B).set_psk(now, psk(2), &mut out));
    for d in out.iter() {
        net.inject(A, underlay(B), d.bytes);
    }
    net.pump();
    assert_flows(&mut net, A, B, 20);
    assert_eq!(handshakes(&mut net, A, B), 2);
    assert_eq!(handshakes(&mut net, B, A), 2);
    // after the grace period the old tunnel is gone; traffic still flows
    net.run_for(secs(12));
    assert_flows(&mut net, B, A, 30);
    assert_eq!(handshakes(&mut net, A, B), 2);
}

#[test]
fn mismatched_psk_cannot_complete_a_handshake() {
    let mut net = Net::with_psks(&[1, 2]);
    net.send(A, B, 1);
    net.pump();
    net.run_for(secs(12)); // a few retransmits
    assert!(net.take_delivered(B).is_empty());
    assert_eq!(handshakes(&mut net, A, B), 0);
    assert!(drops(&mut net, A, DropReason::HandshakeFailed) >= 2);
    // Each failure names the address it came from and the peer whose tunnel refused it.
    let failed: Vec<Suspect> = net.router(A).drain_suspects().collect();
    assert!(failed.len() >= 2, "{failed:?}");
    let want = Suspect::HandshakeFailed {
        from: underlay(B),
        peer: Some(public(B)),
    };
    assert!(failed.iter().all(|s| *s == want), "{failed:?}");
}

#[test]
fn an_initiation_with_an_unknown_key_is_a_suspect_handshake() {
    // Node 3 knows A, but A does not know node 3's key.
    let mut net = Net::new(3);
    net.router(A).remove_peer(&public(C));
    net.send(C, A, 1);
    net.pump();
    let failed: Vec<Suspect> = net.router(A).drain_suspects().collect();
    let want = Suspect::HandshakeFailed {
        from: underlay(C),
        peer: None,
    };
    assert_eq!(failed, vec![want]);
    assert_eq!(drops(&mut net, A, DropReason::UnknownPeer), 1);
}

#[test]
fn no_endpoint_and_no_route_are_counted() {
    let mut net = Net::new(2);
    let now = net.now;
    let mut cfg = peer_config(B);
    cfg.public_key = public(7);
    cfg.endpoint = None;
    cfg.allowed_ips = vec![ipnet::Ipv4Net::from(overlay(7)).into()];
    assert_eq!(net.router(A).upsert_peer(now, &cfg), Ok(PeerChange::Added));
    net.send(A, 7, 1);
    net.send(A, 8, 2);
    net.send_raw(A, &[0x50; 40]); // IP version 5: neither IPv4 nor IPv6
    net.send_raw(A, &[]);
    assert_eq!(drops(&mut net, A, DropReason::NoEndpoint), 1);
    assert_eq!(drops(&mut net, A, DropReason::NoRoute), 1);
    assert_eq!(drops(&mut net, A, DropReason::Malformed), 2);
    assert!(net.log.is_empty());
}

#[test]
fn endpoint_roams_to_authenticated_source() {
    let mut net = Net::new(2);
    assert_flows(&mut net, A, B, 1);
    let moved = "198.18.0.99:40000".parse().expect("addr");
    net.node(B).underlay = moved;
    assert_flows(&mut net, B, A, 2);
    let now = net.now;
    let b = net.router(A).peer_status(&public(B), now).expect("B");
    assert_eq!(b.endpoint, Some(moved));
}

#[test]
fn handshake_completes_with_cookie_under_load() {
    let mut net = Net::new(2);
    // B demands a cookie for every handshake message
    let now = net.now;
    let mut cfg = crate::RouterConfig::new(crate::testutil::secret(B), psk(1), overlay(B));
    cfg.handshake_rate_limit = 0;
    let mut router = crate::Router::new(cfg);
    router.upsert_peer(now, &peer_config(A)).expect("peer");
    net.node(B).router = router;
    net.send(A, B, 1);
    net.pump();
    assert!(net.take_delivered(B).is_empty());
    assert!(
        net.log.iter().any(|s| s.from == B && s.bytes[0] == 3),
        "cookie reply"
    );
    net.run_for(secs(6)); // A retransmits with mac2
    assert_eq!(net.take_delivered(B).len(), 1);
    assert_eq!(handshakes(&mut net, A, B), 1);
}

mod ipv6;
mod junk;
mod phases;
mod rotation;

#[test]
fn a_restarted_peer_greets_so_a_survivor_that_only_answers_reaches_it_at_once() {
    let mut net = Net::new(2);
    assert_flows(&mut net, A, B, 1);
    net.restart(B, 1);
    // Without traffic from B, A's packets would go into its stale session for ~15 s
    // (see peer_restart_recovers_when_only_the_survivor_sends). B greets A on start.
    assert_eq!(net.greet(B), 1);
    assert_eq!(handshakes(&mut net, A, B), 2);
    net.send(A, B, 7);
    net.pump();
    assert_eq!(
        net.take_delivered(B),
        vec![ipv4_packet(overlay(A), overlay(B), 7, 64)]
    );
    // Greeting is once: nothing more without a change.
    assert_eq!(net.greet(B), 0);
}

#[test]
fn a_peer_is_greeted_once_its_endpoint_is_known_and_after_a_move() {
    let mut net = Net::new(2);
    let now = net.now;
    let mut unknown = peer_config(A);
    unknown.endpoint = None;
    net.restart(B, 1);
    assert!(net.router(B).remove_peer(&public(A)));
    net.router(B).upsert_peer(now, &unknown).expect("add");
    assert_eq!(net.greet(B), 0, "no endpoint, nothing to greet");
    net.router(B)
        .upsert_peer(now, &peer_config(A))
        .expect("endpoint");
    assert_eq!(net.greet(B), 1);
    assert_eq!(handshakes(&mut net, B, A), 1);
    // A session is up: a peer that moves is greeted only if it has none.
    let mut moved = peer_config(A);
    moved.endpoint = Some(underlay(9));
    net.router(B).upsert_peer(now, &moved).expect("move");
    assert_eq!(net.greet(B), 0);
}
