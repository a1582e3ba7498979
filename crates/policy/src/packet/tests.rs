#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;
use crate::testutil::{icmp, icmp_unreachable, ip, ipv4, tcp, udp, SYN_ACK};

#[test]
fn parses_well_formed_packets() {
    let cases: Vec<(Vec<u8>, Transport)> = vec![
        (
            tcp("10.0.0.1", 40000, "10.0.0.2", 443, SYN_ACK),
            Transport::Tcp {
                src_port: 40000,
                dst_port: 443,
                flags: TcpFlags(SYN_ACK),
            },
        ),
        (
            udp("10.0.0.1", 5353, "10.0.0.2", 53),
            Transport::Udp {
                src_port: 5353,
                dst_port: 53,
            },
        ),
        (
            icmp("10.0.0.1", "10.0.0.2", 8, 77),
            Transport::Icmp(Icmp::EchoRequest { id: 77 }),
        ),
        (
            icmp("10.0.0.1", "10.0.0.2", 0, 78),
            Transport::Icmp(Icmp::EchoReply { id: 78 }),
        ),
        (
            icmp("10.0.0.1", "10.0.0.2", 13, 1),
            Transport::Icmp(Icmp::Other { kind: 13 }),
        ),
        (
            ipv4("10.0.0.1", "10.0.0.2", 47, &[1, 2, 3]),
            Transport::Other { protocol: 47 },
        ),
        (
            // Bytes past the IPv4 total length are ignored.
            tcp("10.0.0.1", 1, "10.0.0.2", 2, 0)
                .into_iter()
                .chain([9; 4])
                .collect(),
            Transport::Tcp {
                src_port: 1,
                dst_port: 2,
                flags: TcpFlags(0),
            },
        ),
    ];
    for (i, (bytes, want)) in cases.into_iter().enumerate() {
        let p = Packet::parse(&bytes).unwrap();
        assert_eq!(
            (p.src, p.dst, p.l4),
            (ip("10.0.0.1"), ip("10.0.0.2"), want),
            "case {i}"
        );
    }
}

#[test]
fn parses_icmp_errors_with_their_quote() {
    let quoted = udp("10.0.0.2", 5000, "10.0.0.1", 53);
    let p = Packet::parse(&icmp_unreachable("10.0.0.1", "10.0.0.2", &quoted)).unwrap();
    let Transport::Icmp(Icmp::Error {
        kind: 3,
        quoted: Some(q),
    }) = p.l4
    else {
        panic!("{p:?}")
    };
    assert_eq!(
        (q.src, q.dst, q.protocol, q.src_port, q.dst_port),
        (ip("10.0.0.2"), ip("10.0.0.1"), 17, 5000, 53)
    );
    // A quote cut short is reported as unreadable, not as an error.
    let p = Packet::parse(&icmp_unreachable("10.0.0.1", "10.0.0.2", &quoted[..22])).unwrap();
    assert_eq!(
        p.l4,
        Transport::Icmp(Icmp::Error {
            kind: 3,
            quoted: None
        })
    );
}

#[test]
fn fragments() {
    let mut later = udp("10.0.0.1", 1, "10.0.0.2", 2);
    later[6] = 0x00;
    later[7] = 3; // offset 24 bytes
    assert_eq!(
        Packet::parse(&later).unwrap().l4,
        Transport::Fragment { protocol: 17 }
    );
    later[7] = 1; // offset 8 bytes would rewrite the ports
    assert_eq!(Packet::parse(&later), Err(PacketError::FragmentOverlap));
    let mut first = tcp("10.0.0.1", 1, "10.0.0.2", 2, 0);
    first[6] = 0x20; // more fragments, offset 0: parsed normally
    assert!(matches!(
        Packet::parse(&first).unwrap().l4,
        Transport::Tcp { dst_port: 2, .. }
    ));
}

#[test]
fn rejects_malformed_input() {
    let good = tcp("10.0.0.1", 1, "10.0.0.2", 2, 0);
    let mut v5 = good.clone();
    v5[0] = 0x50;
    let mut short_ihl = good.clone();
    short_ihl[0] = 0x44;
    let mut long_ihl = good.clone();
    long_ihl[0] = 0x4f;
    let mut total_too_big = good.clone();
    total_too_big[3] = 200;
    let mut total_too_small = good.clone();
    total_too_small[3] = 10;
    let cut_udp = udp("10.0.0.1", 1, "10.0.0.2", 2);
    let cases: Vec<(&[u8], PacketError)> = vec![
        (&[], PacketError::TooShort),
        (&good[..19], PacketError::TooShort),
        (&v5, PacketError::NotIp(5)),
        (&short_ihl, PacketError::BadHeaderLength),
        (&good[..30], PacketError::BadTotalLength),
        (&long_ihl, PacketError::BadHeaderLength),
        (&total_too_big, PacketError::BadTotalLength),
        (&total_too_small, PacketError::BadTotalLength),
        (&cut_udp[..27], PacketError::BadTotalLength),
    ];
    for (i, (bytes, want)) in cases.into_iter().enumerate() {
        assert_eq!(Packet::parse(bytes), Err(want), "case {i}");
    }
    let mut cut_tcp = ipv4("10.0.0.1", "10.0.0.2", 6, &[0; 19]);
    assert_eq!(
        Packet::parse(&cut_tcp),
        Err(PacketError::TruncatedTransport(6))
    );
    cut_tcp = ipv4("10.0.0.1", "10.0.0.2", 1, &[8, 0, 0]);
    assert_eq!(
        Packet::parse(&cut_tcp),
        Err(PacketError::TruncatedTransport(1))
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..80)) {
        let _ = Packet::parse(&bytes);
    }

    #[test]
    fn mutated_packets_never_panic(
        pos in 0usize..60, val in any::<u8>(), cut in 0usize..64, proto in prop_oneof![Just(1u8), Just(6), Just(17)],
    ) {
        let mut p = ipv4("10.0.0.1", "10.0.0.2", proto, &[3, 4, 0, 0, 0, 0, 0, 0, 0x45, 0, 0, 40,
            0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1, 0, 80, 1, 187]);
        if let Some(b) = p.get_mut(pos) { *b = val; }
        p.truncate(cut);
        let _ = Packet::parse(&p);
    }
}
