//! Members against each other in memory on virtual time: routing, anti-spoofing, policy on
//! both sides, the flow log and the timers, all through `handle_*` and `poll_timeout`.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::time::Duration;

use segwire_datapath::{EXPIRE_INTERVAL, TIMER_INTERVAL};
use segwire_tunnel::{DatagramBatch, DropReason, PacketBatch, Router, RouterConfig};
use support::*;

const PING_ONLY: &str = r#"{ "default": "deny", "rules": [
    { "name": "ping", "from": "*", "to": "*", "ports": ["icmp"] },
    { "name": "web", "from": "*", "to": { "labels": { "role": "node2" } }, "ports": ["tcp/80"] } ] }"#;
const DENY_ALL: &str = r#"{ "default": "deny", "rules": [] }"#;

#[test]
fn a_packet_crosses_after_the_handshake_and_is_logged_on_both_sides() {
    let mut net = Net::new(&[PING_ONLY, PING_ONLY]);
    let echo = ping(overlay(1), overlay(2), 7);
    net.send(1, std::slice::from_ref(&echo));
    assert_eq!(
        net.take_delivered(2),
        vec![echo],
        "queued, then sent once the session is up"
    );
    let now = net.now;
    let status = net.member(1).router_status(now);
    assert!(status.peers[0].last_handshake_ago.is_some());

    let (flows, dropped) = net.member(1).take_flows();
    assert_eq!(dropped, 0);
    assert_eq!(flows.len(), 1);
    let f = &flows[0];
    assert!(f.key.egress && f.key.allowed && f.key.protocol == 1);
    assert_eq!(f.rule.as_deref(), Some("ping"));
    assert_eq!(
        f.stat.first_seen,
        UNIX_EPOCH + now.as_secs(),
        "wall clock from the epoch"
    );
    let (flows, _) = net.member(2).take_flows();
    assert_eq!(flows.len(), 1);
    assert!(!flows[0].key.egress && flows[0].key.allowed);
    assert!(
        net.member(2).take_flows().0.is_empty(),
        "each count is shipped once"
    );
    assert_eq!(net.member(2).rule_counters()[0], ("ping".to_owned(), 1));
}

#[test]
fn egress_the_policy_denies_never_leaves() {
    let mut net = Net::new(&[PING_ONLY, PING_ONLY]);
    net.send(1, &[udp(overlay(1), overlay(2), 53, 10)]);
    assert_eq!(net.node(1).sent, 0, "no datagram, not even a handshake");
    assert!(net.take_delivered(2).is_empty());
    let (flows, _) = net.member(1).take_flows();
    assert!(flows[0].key.egress && !flows[0].key.allowed && flows[0].key.dst_port == 53);
    assert_eq!(net.member(1).firewall_counters().denied, 1);
}

#[test]
fn ingress_is_judged_by_the_receiver_too() {
    // Node 1 allows everything; node 2 allows nothing in.
    let mut net = Net::new(&[ALLOW_ALL, DENY_ALL]);
    net.send(1, &[tcp(overlay(1), overlay(2), 22, 0x02)]);
    assert!(
        net.take_delivered(2).is_empty(),
        "the receiver's firewall drops it"
    );
    let (flows, _) = net.member(2).take_flows();
    assert_eq!(flows.len(), 1);
    assert!(!flows[0].key.egress && !flows[0].key.allowed && flows[0].key.dst_port == 22);
    let now = net.now;
    assert_eq!(
        net.member(2).router_status(now).traffic.rx_packets,
        1,
        "it was decrypted"
    );
}

#[test]
fn a_reply_of_an_allowed_connection_passes_back() {
    let mut net = Net::new(&[PING_ONLY, PING_ONLY]);
    net.send(1, &[tcp(overlay(1), overlay(2), 80, 0x02)]);
    assert_eq!(net.take_delivered(2).len(), 1);
    let mut reply = tcp(overlay(2), overlay(1), 0, 0x12);
    // Swap the ports: 80 -> 40000.
    reply[20..22].copy_from_slice(&80u16.to_be_bytes());
    reply[22..24].copy_from_slice(&40000u16.to_be_bytes());
    net.send(2, std::slice::from_ref(&reply));
    assert_eq!(net.take_delivered(1), vec![reply]);
}

#[test]
fn a_peer_cannot_use_another_peers_address() {
    let mut net = Net::new(&[ALLOW_ALL, ALLOW_ALL, ALLOW_ALL]);
    net.send(1, &[ping(overlay(1), overlay(2), 1)]);
    assert_eq!(net.take_delivered(2).len(), 1);
    // A rogue node 1 (its own key, no firewall) claims node 3's address.
    let now = net.now;
    let mut rogue = Router::new(RouterConfig::new(secret(1), psk(), overlay(1)));
    rogue.upsert_peer(now, &peer_config(2)).unwrap();
    let mut out = DatagramBatch::new(4, 1500);
    let mut packets = PacketBatch::new(4, 1500);
    let spoofed = ping(overlay(3), overlay(2), 9);
    rogue.encapsulate_batch(now, [spoofed.as_slice()], &mut out);
    // Handshake with node 2 by hand, then the queued packet goes out.
    for _ in 0..4 {
        let sent: Vec<_> = out.iter().map(|d| d.bytes.to_vec()).collect();
        out.clear();
        for bytes in sent {
            net.member(2)
                .handle_udp(now, [(underlay(1), bytes.as_slice())]);
        }
        let replies: Vec<_> = net
            .member(2)
            .datagrams()
            .iter()
            .map(|d| d.bytes.to_vec())
            .collect();
        net.member(2).clear_datagrams();
        rogue.decapsulate_batch(
            now,
            replies.iter().map(|r| (underlay(2), r.as_slice())),
            &mut packets,
            &mut out,
        );
    }
    assert!(
        net.member(2).packets().is_empty(),
        "nothing reached the workload"
    );
    let drops = net.member(2).router_status(now).drops;
    assert_eq!(drops.get(DropReason::SpoofedSource), 1);
}

#[test]
fn timeouts_are_polled_not_ticked() {
    let mut net = Net::new(&[ALLOW_ALL, ALLOW_ALL]);
    let t0 = net.now;
    let next = net.member(1).poll_timeout();
    assert_eq!(next, t0, "timers first run at the start");
    net.member(1).handle_timeout(t0);
    assert_eq!(net.member(1).poll_timeout(), t0 + TIMER_INTERVAL);
    net.member(1).handle_timeout(t0 + Duration::from_millis(10));
    assert_eq!(
        net.member(1).poll_timeout(),
        t0 + TIMER_INTERVAL,
        "early: nothing runs"
    );
    net.run_for(EXPIRE_INTERVAL * 2);
    assert!(net.member(1).poll_timeout() > net.now);
}

#[test]
fn a_lost_handshake_is_retried_on_the_timer() {
    let mut net = Net::new(&[ALLOW_ALL, ALLOW_ALL]);
    net.blackhole = Some(2);
    net.send(1, &[ping(overlay(1), overlay(2), 1)]);
    assert_eq!(net.node(1).sent, 1, "one initiation");
    net.run_for(Duration::from_secs(6));
    assert_eq!(net.node(1).sent, 2, "retried after REKEY_TIMEOUT (5 s)");
    net.blackhole = None;
    net.run_for(Duration::from_secs(6));
    assert_eq!(net.take_delivered(2).len(), 1, "the queued packet arrives");
}

#[test]
fn idle_connections_expire_on_the_sweep() {
    let mut net = Net::new(&[PING_ONLY, PING_ONLY]);
    net.send(1, &[tcp(overlay(1), overlay(2), 80, 0x02)]);
    assert_eq!(net.member(1).firewall_counters().conntrack_entries, 1);
    net.run_for(Duration::from_secs(400));
    let c = net.member(1).firewall_counters();
    assert_eq!((c.conntrack_entries, c.conntrack_expired), (0, 1));
}

#[test]
fn a_new_policy_cuts_what_it_no_longer_allows() {
    let mut net = Net::new(&[ALLOW_ALL, ALLOW_ALL]);
    net.send(1, &[udp(overlay(1), overlay(2), 53, 10)]);
    assert_eq!(net.take_delivered(2).len(), 1);
    let now = net.now;
    let summary = net
        .member(1)
        .set_policy(now, compile(PING_ONLY, 1, &[1, 2]));
    assert_eq!((summary.kept, summary.cut), (0, 1));
    net.send(1, &[udp(overlay(1), overlay(2), 53, 10)]);
    assert!(net.take_delivered(2).is_empty());
}

#[test]
fn pending_handshakes_start_without_traffic() {
    let mut net = Net::new(&[ALLOW_ALL, ALLOW_ALL]);
    let now = net.now;
    assert_eq!(net.member(1).initiate_pending_handshakes(now), 1);
    assert_eq!(net.member(1).datagrams().len(), 1, "one initiation out");
    assert_eq!(
        net.member(1).initiate_pending_handshakes(now),
        0,
        "nothing new: nothing sent"
    );
}

#[test]
fn a_long_one_way_flow_survives_the_rekey_it_causes() {
    let mut net = Net::new(&[ALLOW_ALL, ALLOW_ALL]);
    net.send(1, &[udp(overlay(1), overlay(2), 5201, 1300)]);
    assert_eq!(net.take_delivered(2).len(), 1);
    // Node 1 sends for 30 s and node 2 never answers: node 1 re-handshakes after
    // KEEPALIVE + REKEY_TIMEOUT (15 s) without a reply, in the middle of the flow
    // (node 2 is too busy receiving to run its timers and send a keepalive).
    net.starved = Some(2);
    let end = net.now + Duration::from_secs(30);
    let mut sent = 0;
    while net.now < end {
        let until = net.now + Duration::from_millis(10);
        while net.step(until) {}
        net.send(1, &[udp(overlay(1), overlay(2), 5201, 1300)]);
        sent += 1;
    }
    net.starved = None;
    let got = net.take_delivered(2).len();
    assert!(got + 2 >= sent, "{got} of {sent} one-way packets arrived");
    let now = net.now;
    let handshakes = net.member(1).router_status(now).peers[0].handshakes;
    assert!(
        handshakes >= 2,
        "node 1 re-handshook during the flow ({handshakes})"
    );
    // Full-size packets both ways afterwards.
    for (from, to) in [(1u8, 2u8), (2, 1), (1, 2)] {
        let big = udp(overlay(from), overlay(to), 5201, 1392);
        net.send(from, std::slice::from_ref(&big));
        let until = net.now + Duration::from_millis(10);
        while net.step(until) {}
        assert_eq!(
            net.take_delivered(to),
            vec![big],
            "{from} -> {to} after the flow"
        );
    }
}
