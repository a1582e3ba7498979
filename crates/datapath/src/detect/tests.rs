use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use segwire_tunnel::{PublicKey, Suspect};

use super::*;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn a_window_reports_at_the_threshold_then_cools_down() {
    let mut w: Windows<u8> = Windows::new(3, secs(10), secs(60));
    assert_eq!(w.hit(1, secs(0)), None);
    assert_eq!(w.hit(1, secs(1)), None);
    assert_eq!(w.hit(1, secs(2)), Some((3, secs(2))));
    // Crossing again within the cooldown is not reported again.
    for t in 3..9 {
        assert_eq!(w.hit(1, secs(t)), None);
    }
    // After it, it is.
    assert_eq!(w.hit(1, secs(70)), None);
    assert_eq!(w.hit(1, secs(71)), None);
    assert_eq!(w.hit(1, secs(72)), Some((3, secs(2))));
}

#[test]
fn hits_spread_wider_than_the_window_never_report() {
    let mut w: Windows<u8> = Windows::new(3, secs(10), secs(60));
    for t in (0..1000).step_by(6) {
        assert_eq!(w.hit(1, secs(t)), None, "at {t}s");
    }
}

#[test]
fn keys_are_bounded_and_counted_apart() {
    let mut w: Windows<u32> = Windows::new(2, secs(10), secs(60));
    for k in 0..(MAX_KEYS as u32 * 4) {
        assert_eq!(w.hit(k, secs(1)), None);
    }
    assert_eq!(w.entries.len(), MAX_KEYS);
    // A key still held keeps its count; an evicted one counts afresh.
    assert_eq!(w.hit(7, secs(2)), Some((2, secs(1))));
    assert_eq!(w.hit(0, secs(2)), None, "evicted");
    assert_eq!(w.hit(0, secs(2)), Some((2, secs(0))));
}

#[test]
fn suspects_become_spoof_and_handshake_detections() {
    let mut d = Detections::new(DetectConfig::default());
    let peer = PublicKey([3; 32]);
    let from: SocketAddr = "198.18.0.3:51820".parse().expect("addr");
    let claimed = Some(Ipv4Addr::new(100, 64, 0, 9).into());
    for t in 0..5 {
        d.suspect(
            Suspect::SpoofedSource {
                peer,
                from,
                claimed,
            },
            secs(t),
        );
        d.suspect(Suspect::HandshakeFailed { from, peer: None }, secs(t * 5));
    }
    assert_eq!(
        d.poll(),
        Some(Detection::SpoofReceived {
            peer,
            from,
            claimed,
            packets: 3,
            within: secs(2),
        })
    );
    assert_eq!(
        d.poll(),
        Some(Detection::HandshakeFailed {
            from,
            peer: None,
            failures: 3,
            within: secs(10),
        })
    );
    assert_eq!(d.poll(), None);
}

#[test]
fn unpolled_detections_are_bounded() {
    let mut d = Detections::new(DetectConfig::default());
    for i in 0..(MAX_READY as u32 + 10) {
        let from = SocketAddr::from((Ipv4Addr::from(0xc612_0000 + i), 51820));
        for _ in 0..3 {
            d.suspect(Suspect::HandshakeFailed { from, peer: None }, secs(1));
        }
    }
    assert_eq!(std::iter::from_fn(|| d.poll()).count(), MAX_READY);
    assert_eq!(d.dropped, 10);
}
