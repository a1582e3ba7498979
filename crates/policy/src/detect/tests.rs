use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::*;
use crate::packet::TcpFlags;

const ME: IpAddr = IpAddr::V4(Ipv4Addr::new(100, 64, 1, 2));

fn syn(dst: IpAddr, port: u16) -> Packet {
    Packet {
        src: ME,
        dst,
        l4: Transport::Tcp {
            src_port: 40000,
            dst_port: port,
            flags: TcpFlags(TcpFlags::SYN),
        },
    }
}

fn inbound(src: IpAddr) -> Packet {
    Packet {
        src,
        dst: ME,
        l4: Transport::Udp {
            src_port: 5000,
            dst_port: 53,
        },
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn drain(d: &mut Detector) -> Vec<Detection> {
    std::iter::from_fn(|| d.poll_detection()).collect()
}

#[test]
fn a_100_port_scan_is_one_detection_well_within_two_seconds() {
    let mut d = Detector::new(DetectorConfig::default());
    let peer = IpAddr::from([100, 64, 1, 3]);
    let mut first = None;
    // 100 ports at 50 probes a second: 2 s in all.
    for (i, port) in (1..=100).enumerate() {
        let now = ms(i as u64 * 20);
        d.denied_egress(&syn(peer, port), now);
        if first.is_none() && d.ready.len() == 1 {
            first = Some(now);
        }
    }
    let found = drain(&mut d);
    assert_eq!(found.len(), 1, "{found:?}");
    let Detection::Scan {
        targets,
        peers,
        within,
    } = &found[0]
    else {
        panic!("{found:?}");
    };
    assert_eq!(*targets, 16);
    assert_eq!(peers, &vec![peer]);
    // The 16th distinct port, 15 probes after the first.
    assert_eq!(*within, ms(15 * 20));
    assert_eq!(first, Some(ms(15 * 20)));
}

#[test]
fn retries_of_one_denied_port_and_slow_probing_are_not_a_scan() {
    let mut d = Detector::new(DetectorConfig::default());
    let peer = IpAddr::from([100, 64, 1, 3]);
    for i in 0..10_000 {
        d.denied_egress(&syn(peer, 5432), ms(i));
    }
    // 15 distinct ports per window, forever: never 16 within 5 s.
    for w in 0..20u64 {
        for port in 0..15u16 {
            d.denied_egress(
                &syn(peer, 1000 + port),
                ms(20_000 + w * 5_100 + u64::from(port)),
            );
        }
    }
    assert!(drain(&mut d).is_empty());
}

#[test]
fn a_long_scan_is_reported_again_only_after_the_cooldown() {
    let config = DetectorConfig::default();
    let mut d = Detector::new(config);
    let peer = IpAddr::from([100, 64, 1, 3]);
    // 65,535 ports at 1,000 a second: 65 s, past one 60 s cooldown.
    for port in 1..=u16::MAX {
        d.denied_egress(&syn(peer, port), ms(u64::from(port)));
    }
    assert_eq!(drain(&mut d).len(), 2);
    assert!(
        d.targets.len() < config.scan_targets,
        "memory stays bounded"
    );
}

#[test]
fn a_denied_burst_names_its_top_source() {
    let mut d = Detector::new(DetectorConfig::default());
    let (loud, quiet) = (IpAddr::from([100, 64, 1, 9]), IpAddr::from([100, 64, 1, 8]));
    for i in 0..199 {
        let src = if i % 4 == 0 { quiet } else { loud };
        d.denied_ingress(&inbound(src), ms(i));
    }
    assert!(d.poll_detection().is_none(), "199 is below the threshold");
    d.denied_ingress(&inbound(loud), ms(199));
    assert_eq!(
        drain(&mut d),
        vec![Detection::DeniedBurst {
            packets: 200,
            top_source: loud,
            within: ms(199),
        }]
    );
    // Spread over more than the window, the same count is no burst.
    let mut d = Detector::new(DetectorConfig::default());
    for i in 0..1_000u64 {
        d.denied_ingress(&inbound(loud), ms(i * 30));
    }
    assert!(drain(&mut d).is_empty());
}
