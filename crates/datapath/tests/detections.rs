//! Incident detections through the member core, on virtual time: a port scan, a spoofing
//! workload, a burst of denied packets and a stranger's failing handshakes each make one
//! detection; busy allowed traffic makes none.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::time::Duration;

use segwire_datapath::{Detection, Member};
use segwire_policy::Detection as Firewall;
use segwire_tunnel::{DatagramBatch, Router, RouterConfig};
use support::*;

/// Member 1 may reach member 2 on tcp/80 only.
const WEB_ONLY: &str = r#"{ "default": "deny", "rules": [
    { "name": "web", "from": "*", "to": { "labels": { "role": "node2" } }, "ports": ["tcp/80"] } ] }"#;
const DENY_ALL: &str = r#"{ "default": "deny", "rules": [] }"#;

fn drain(m: &mut Member) -> Vec<Detection> {
    std::iter::from_fn(|| m.poll_detection()).collect()
}

#[test]
fn a_200_port_scan_is_one_detection_and_the_allowed_port_still_works() {
    let mut net = Net::new(&[WEB_ONLY, WEB_ONLY]);
    net.send(1, &[tcp(overlay(1), overlay(2), 80, 0x02)]);
    assert_eq!(net.take_delivered(2).len(), 1);
    let start = net.now;
    let mut seen_at = None;
    for port in 1..=200u16 {
        net.now += Duration::from_millis(1);
        net.send(1, &[tcp(overlay(1), overlay(2), 1000 + port, 0x02)]);
        if seen_at.is_none() {
            let found = drain(net.member(1));
            if !found.is_empty() {
                assert_eq!(found.len(), 1, "{found:?}");
                let Detection::Firewall(Firewall::Scan { targets, peers, .. }) = &found[0] else {
                    panic!("{found:?}");
                };
                assert_eq!((*targets, peers.clone()), (16, vec![overlay(2).into()]));
                seen_at = Some(net.now - start);
            }
        }
    }
    assert_eq!(seen_at, Some(Duration::from_millis(16)), "the 16th port");
    assert!(drain(net.member(1)).is_empty(), "one detection, not 200");
    assert!(
        drain(net.member(2)).is_empty(),
        "denied at the scanner's side"
    );
    assert!(net.take_delivered(2).is_empty());
}

#[test]
fn busy_allowed_traffic_is_never_a_detection() {
    let mut net = Net::new(&[WEB_ONLY, WEB_ONLY]);
    for i in 0..5_000u32 {
        net.now += Duration::from_micros(100);
        let mut syn = tcp(overlay(1), overlay(2), 80, 0x02);
        // A new connection each time: another source port.
        syn[20..22].copy_from_slice(&(10_000 + (i % 50_000) as u16).to_be_bytes());
        net.send(1, &[syn]);
    }
    assert_eq!(net.take_delivered(2).len(), 5_000);
    assert!(drain(net.member(1)).is_empty());
    assert!(drain(net.member(2)).is_empty());
}

#[test]
fn a_workload_sending_with_another_members_address_is_a_spoof() {
    let mut net = Net::new(&[ALLOW_ALL, ALLOW_ALL, ALLOW_ALL]);
    for i in 0..3u16 {
        net.now += Duration::from_millis(200);
        net.send(1, &[ping(overlay(3), overlay(2), i)]);
    }
    assert!(net.take_delivered(2).is_empty(), "the firewall drops it");
    let found = drain(net.member(1));
    assert_eq!(
        found,
        vec![Detection::SpoofSent {
            claimed: overlay(3).into(),
            packets: 3,
            within: Duration::from_millis(400),
        }]
    );
}

#[test]
fn a_burst_of_denied_packets_names_its_top_source() {
    // Member 1 sends anything; member 2 lets nothing in.
    let mut net = Net::new(&[ALLOW_ALL, DENY_ALL]);
    for i in 0..200u16 {
        net.now += Duration::from_millis(5);
        net.send(1, &[udp(overlay(1), overlay(2), 1 + i % 3, 10)]);
    }
    let found = drain(net.member(2));
    assert_eq!(found.len(), 1, "{found:?}");
    let Detection::Firewall(Firewall::DeniedBurst {
        packets,
        top_source,
        ..
    }) = found[0]
    else {
        panic!("{found:?}");
    };
    assert_eq!((packets, top_source), (200, overlay(1).into()));
}

#[test]
fn a_stranger_whose_handshakes_fail_is_a_detection() {
    let mut net = Net::new(&[ALLOW_ALL, ALLOW_ALL]);
    let stranger = underlay(9);
    for i in 0..3u8 {
        net.now += Duration::from_secs(5);
        let now = net.now;
        // A device with a key member 2 does not know (a fresh one each time).
        let mut rogue = Router::new(RouterConfig::new(secret(90 + i), psk(), overlay(9)));
        rogue.upsert_peer(now, &peer_config(2)).unwrap();
        let mut out = DatagramBatch::new(4, 1500);
        rogue.encapsulate_batch(now, [ping(overlay(9), overlay(2), 1).as_slice()], &mut out);
        let init = out.iter().next().unwrap().bytes.to_vec();
        net.member(2).handle_udp(now, [(stranger, init.as_slice())]);
    }
    let found = drain(net.member(2));
    assert_eq!(
        found,
        vec![Detection::HandshakeFailed {
            from: stranger,
            peer: None,
            failures: 3,
            within: Duration::from_secs(10),
        }]
    );
}
