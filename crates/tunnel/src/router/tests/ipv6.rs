//! Cryptokey routing and the inner-source check for IPv6 (dual-stack peers: /32 + /128).

use crate::testutil::{ipv4_packet, ipv6_packet, overlay, overlay6, public, underlay, Net};
use crate::{DropReason, Suspect};

use super::{assert_flows, drops, A, B, C};

#[test]
fn ipv6_packets_cross_both_ways_next_to_ipv4() {
    let mut net = Net::new(2);
    assert_flows(&mut net, A, B, 1);
    let there = ipv6_packet(overlay6(A), overlay6(B), 7, 100);
    net.send_raw(A, &there);
    net.pump();
    assert_eq!(net.take_delivered(B), vec![there]);
    let back = ipv6_packet(overlay6(B), overlay6(A), 8, 1200);
    net.send_raw(B, &back);
    net.pump();
    assert_eq!(net.take_delivered(A), vec![back]);
    assert_eq!(net.router(A).drops().total(), 0);
    assert_eq!(net.router(B).drops().total(), 0);
}

#[test]
fn ipv6_to_no_peer_has_no_route() {
    let mut net = Net::new(2);
    assert_flows(&mut net, A, B, 1);
    net.send_raw(A, &ipv6_packet(overlay6(A), overlay6(9), 1, 64));
    // The IPv4-mapped spelling of B's IPv4 address is not B.
    let mapped = overlay(B).to_ipv6_mapped();
    net.send_raw(A, &ipv6_packet(overlay6(A), mapped, 2, 64));
    net.pump();
    assert!(net.take_delivered(B).is_empty());
    assert_eq!(drops(&mut net, A, DropReason::NoRoute), 2);
}

#[test]
fn spoofed_inner_ipv6_source_is_dropped_and_counted() {
    let mut net = Net::new(3);
    assert_flows(&mut net, A, B, 1);
    let fakes = [
        overlay6(9),                 // nobody's
        overlay6(C),                 // another peer's
        overlay(B).to_ipv6_mapped(), // B's IPv4 address, spelled as IPv6
    ];
    for (i, fake) in fakes.into_iter().enumerate() {
        net.send_raw(B, &ipv6_packet(fake, overlay6(A), 10 + i as u32, 64));
        net.pump();
    }
    assert!(net.take_delivered(A).is_empty());
    assert_eq!(drops(&mut net, A, DropReason::SpoofedSource), 3);
    let claimed: Vec<_> = net
        .router(A)
        .drain_suspects()
        .map(|s| match s {
            Suspect::SpoofedSource {
                peer,
                from,
                claimed,
            } => {
                assert_eq!((peer, from), (public(B), underlay(B)));
                claimed
            }
            other => panic!("{other:?}"),
        })
        .collect();
    let want: Vec<_> = fakes.iter().map(|f| Some((*f).into())).collect();
    assert_eq!(claimed, want);
    // B's own addresses still pass, in both families.
    let own = ipv6_packet(overlay6(B), overlay6(A), 20, 64);
    net.send_raw(B, &own);
    net.pump();
    assert_eq!(net.take_delivered(A), vec![own]);
    let own4 = ipv4_packet(overlay(B), overlay(A), 21, 64);
    net.send_raw(B, &own4);
    net.pump();
    assert_eq!(net.take_delivered(A), vec![own4]);
}
