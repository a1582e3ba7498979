#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;
use crate::packet::TcpFlags;
use crate::testutil::{icmp, icmp_unreachable, ip, ipv6, tcp, udp, SYN};

const A: &str = "fd00::2";
const B: &str = "fd00::3";

/// A generic extension header (hop-by-hop, destination options) of `units` × 8 bytes.
fn ext(next: u8, units: u8) -> Vec<u8> {
    let mut h = vec![0u8; usize::from(units) * 8];
    h[0] = next;
    h[1] = units - 1;
    h
}

/// A fragment header: `offset` in 8-byte units, `more` fragments flag.
fn frag(next: u8, offset: u16, more: bool) -> Vec<u8> {
    let field = (offset << 3) | u16::from(more);
    let mut h = vec![next, 0, 0, 0, 0, 0, 0, 9];
    h[2..4].copy_from_slice(&field.to_be_bytes());
    h
}

fn tcp_header(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut h = vec![0u8; 20];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[12] = 5 << 4;
    h[13] = flags;
    h
}

fn l4(bytes: &[u8]) -> Result<Transport, PacketError> {
    Packet::parse(bytes).map(|p| p.l4)
}

#[test]
fn parses_tcp_udp_and_icmpv6() {
    let p = Packet::parse(&tcp(A, 40000, B, 5432, SYN)).unwrap();
    assert_eq!((p.src, p.dst), (ip(A), ip(B)));
    assert_eq!(p.protocol(), proto::TCP);
    assert_eq!(
        p.l4,
        Transport::Tcp {
            src_port: 40000,
            dst_port: 5432,
            flags: TcpFlags(SYN)
        }
    );
    assert_eq!(
        l4(&udp(A, 5353, B, 53)),
        Ok(Transport::Udp {
            src_port: 5353,
            dst_port: 53
        })
    );
    let ping = Packet::parse(&icmp(A, B, 8, 7)).unwrap();
    assert_eq!(ping.l4, Transport::Icmp(Icmp::EchoRequest { id: 7 }));
    assert_eq!(ping.protocol(), proto::ICMPV6);
    assert_eq!(
        l4(&icmp(A, B, 0, 7)),
        Ok(Transport::Icmp(Icmp::EchoReply { id: 7 }))
    );
    assert_eq!(
        l4(&icmp(A, B, 135, 0)),
        Ok(Transport::Icmp(Icmp::Other { kind: 135 }))
    );
    // Bytes past the payload length are ignored.
    let mut padded = udp(A, 1, B, 2);
    padded.extend_from_slice(&[7; 9]);
    assert!(matches!(
        l4(&padded),
        Ok(Transport::Udp { dst_port: 2, .. })
    ));
}

#[test]
fn walks_the_extension_header_chain() {
    let mut chain = ext(DEST_OPTIONS, 1);
    chain.extend(ext(ROUTING, 2));
    chain.extend([proto::TCP, 0, 0, 0, 0, 0, 0, 0]); // routing, segments left 0
    chain.extend(tcp_header(1, 443, SYN));
    assert!(matches!(
        l4(&ipv6(A, B, HOP_BY_HOP, &chain)),
        Ok(Transport::Tcp { dst_port: 443, .. })
    ));
    // Authentication header: length in 4-byte units minus 2.
    let mut ah = vec![proto::UDP, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    ah.extend_from_slice(&[0, 9, 0, 53, 0, 8, 0, 0]);
    assert!(matches!(
        l4(&ipv6(A, B, AUTH, &ah)),
        Ok(Transport::Udp { dst_port: 53, .. })
    ));
    // ESP and "no next header" end the walk.
    assert_eq!(
        l4(&ipv6(A, B, 50, &[0; 16])),
        Ok(Transport::Other { protocol: 50 })
    );
    assert_eq!(
        l4(&ipv6(A, B, 59, &[0; 8])),
        Ok(Transport::Other { protocol: 59 })
    );
}

#[test]
fn refuses_what_cannot_be_walked() {
    let hop_late = {
        let mut c = ext(HOP_BY_HOP, 1);
        c.extend(ext(proto::TCP, 1));
        c.extend(tcp_header(1, 2, 0));
        ipv6(A, B, DEST_OPTIONS, &c)
    };
    let routing_left = {
        let mut c = vec![proto::TCP, 0, 0, 1, 0, 0, 0, 0];
        c.extend(tcp_header(1, 2, 0));
        ipv6(A, B, ROUTING, &c)
    };
    let two_fragments = {
        let mut c = frag(FRAGMENT, 0, true);
        c.extend(frag(proto::TCP, 0, false));
        c.extend(tcp_header(1, 2, 0));
        ipv6(A, B, FRAGMENT, &c)
    };
    let cut_ext = ipv6(A, B, DEST_OPTIONS, &[proto::TCP, 3, 0, 0, 0, 0, 0, 0]);
    let endless = {
        let mut c = Vec::new();
        for _ in 0..=MAX_EXTENSION_HEADERS {
            c.extend(ext(DEST_OPTIONS, 1));
        }
        ipv6(A, B, DEST_OPTIONS, &c)
    };
    let mut zero_len = udp(A, 1, B, 2);
    zero_len[4..6].copy_from_slice(&[0, 0]);
    let mut long_len = udp(A, 1, B, 2);
    long_len[5] = 200;
    let cases: Vec<(Vec<u8>, PacketError)> = vec![
        (hop_late, PacketError::BadExtensionHeader(HOP_BY_HOP)),
        (routing_left, PacketError::BadExtensionHeader(ROUTING)),
        (two_fragments, PacketError::BadExtensionHeader(FRAGMENT)),
        (cut_ext, PacketError::BadExtensionHeader(DEST_OPTIONS)),
        (endless, PacketError::TooManyExtensionHeaders),
        (zero_len, PacketError::BadPayloadLength),
        (long_len, PacketError::BadPayloadLength),
        (udp(A, 1, B, 2)[..39].to_vec(), PacketError::TooShort),
        (
            ipv6(A, B, proto::TCP, &[0; 19]),
            PacketError::TruncatedTransport(proto::TCP),
        ),
        (
            ipv6("::ffff:10.0.0.1", B, proto::UDP, &[0; 8]),
            PacketError::MappedAddress,
        ),
        (
            ipv6(A, "::ffff:10.0.0.2", proto::UDP, &[0; 8]),
            PacketError::MappedAddress,
        ),
    ];
    for (i, (bytes, want)) in cases.into_iter().enumerate() {
        assert_eq!(Packet::parse(&bytes), Err(want), "case {i}");
    }
}

#[test]
fn fragments_follow_the_ipv4_rules() {
    // First fragment: judged by its transport header.
    let mut first = frag(proto::TCP, 0, true);
    first.extend(tcp_header(1, 5432, SYN));
    assert!(matches!(
        l4(&ipv6(A, B, FRAGMENT, &first)),
        Ok(Transport::Tcp { dst_port: 5432, .. })
    ));
    // A first fragment that does not carry the transport header is refused (RFC 7112).
    let cut_first = frag(proto::TCP, 0, true);
    assert_eq!(
        l4(&ipv6(A, B, FRAGMENT, &[cut_first, vec![0; 8]].concat())),
        Err(PacketError::TruncatedTransport(proto::TCP))
    );
    // Later fragments: no transport to read; offsets under 24 bytes overlap it.
    assert_eq!(
        l4(&ipv6(
            A,
            B,
            FRAGMENT,
            &[frag(proto::UDP, 3, false), vec![0; 8]].concat()
        )),
        Ok(Transport::Fragment {
            protocol: proto::UDP
        })
    );
    assert_eq!(
        l4(&ipv6(
            A,
            B,
            FRAGMENT,
            &[frag(proto::UDP, 1, true), vec![0; 8]].concat()
        )),
        Err(PacketError::FragmentOverlap)
    );
}

#[test]
fn icmpv6_errors_carry_their_quote() {
    let quoted = udp(B, 5000, A, 53);
    let p = Packet::parse(&icmp_unreachable(A, B, &quoted)).unwrap();
    let Transport::Icmp(Icmp::Error {
        kind: 1,
        quoted: Some(q),
    }) = p.l4
    else {
        panic!("{p:?}")
    };
    assert_eq!(
        (q.src, q.dst, q.protocol, q.src_port, q.dst_port),
        (ip(B), ip(A), proto::UDP, 5000, 53)
    );
    let cut = Packet::parse(&icmp_unreachable(A, B, &quoted[..44])).unwrap();
    assert_eq!(
        cut.l4,
        Transport::Icmp(Icmp::Error {
            kind: 1,
            quoted: None
        })
    );
}

#[test]
fn link_control_types() {
    for kind in [130, 133, 134, 135, 136, 137, 143] {
        assert!(is_link_control(kind), "{kind}");
    }
    for kind in [1, 2, 3, 4, 128, 129, 138] {
        assert!(!is_link_control(kind), "{kind}");
    }
}

/// The reference model of a well-formed IPv6 packet: an extension chain and a transport.
#[derive(Debug, Clone)]
enum Ext {
    Options(u8),
    Routing(u8),
    Fragment,
    Auth(u8),
}

#[derive(Debug, Clone)]
enum L4 {
    Tcp(u16, u16, u8),
    Udp(u16, u16),
    Echo(bool, u16),
    Other(u8),
}

/// Builds the bytes for a model packet and what the parser must answer.
fn build(exts: &[Ext], first_hop: bool, l4: &L4) -> (Vec<u8>, Transport) {
    let (next_l4, body, want) = match *l4 {
        L4::Tcp(s, d, f) => (
            proto::TCP,
            tcp_header(s, d, f),
            Transport::Tcp {
                src_port: s,
                dst_port: d,
                flags: TcpFlags(f),
            },
        ),
        L4::Udp(s, d) => {
            let mut h = vec![0u8; 8];
            h[0..2].copy_from_slice(&s.to_be_bytes());
            h[2..4].copy_from_slice(&d.to_be_bytes());
            (
                proto::UDP,
                h,
                Transport::Udp {
                    src_port: s,
                    dst_port: d,
                },
            )
        }
        L4::Echo(request, id) => {
            let mut h = vec![if request { 128 } else { 129 }, 0, 0, 0, 0, 0, 0, 1];
            h[4..6].copy_from_slice(&id.to_be_bytes());
            let icmp = if request {
                Icmp::EchoRequest { id }
            } else {
                Icmp::EchoReply { id }
            };
            (proto::ICMPV6, h, Transport::Icmp(icmp))
        }
        L4::Other(p) => (p, vec![0; 4], Transport::Other { protocol: p }),
    };
    // Headers are written back to front so each knows its successor.
    let mut next = next_l4;
    let mut bytes = body;
    let mut all: Vec<(u8, Vec<u8>)> = exts
        .iter()
        .map(|e| match *e {
            Ext::Options(units) => (DEST_OPTIONS, ext(0, units)),
            Ext::Routing(units) => (ROUTING, ext(0, units)),
            Ext::Fragment => (FRAGMENT, frag(0, 0, true)),
            Ext::Auth(words) => {
                let mut h = vec![0u8; (usize::from(words) + 2) * 4];
                h[1] = words;
                (AUTH, h)
            }
        })
        .collect();
    if first_hop {
        all.insert(0, (HOP_BY_HOP, ext(0, 1)));
    }
    for (kind, mut h) in all.into_iter().rev() {
        h[0] = next;
        next = kind;
        h.extend(bytes);
        bytes = h;
    }
    (ipv6(A, B, next, &bytes), want)
}

fn arb_ext() -> impl Strategy<Value = Ext> {
    prop_oneof![
        (1u8..4).prop_map(Ext::Options),
        (1u8..4).prop_map(Ext::Routing),
        Just(Ext::Fragment),
        (1u8..5).prop_map(|w| Ext::Auth(w * 2)),
    ]
}

fn arb_l4() -> impl Strategy<Value = L4> {
    prop_oneof![
        (any::<u16>(), any::<u16>(), any::<u8>()).prop_map(|(s, d, f)| L4::Tcp(s, d, f)),
        (any::<u16>(), any::<u16>()).prop_map(|(s, d)| L4::Udp(s, d)),
        (any::<bool>(), any::<u16>()).prop_map(|(r, id)| L4::Echo(r, id)),
        prop_oneof![Just(50u8), Just(59), Just(47), Just(132)].prop_map(L4::Other),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5000))]

    /// The parser agrees with the model on every well-formed chain it is built from, and
    /// refuses a chain longer than it walks.
    #[test]
    fn parser_matches_the_reference_model(
        exts in prop::collection::vec(arb_ext(), 0..10),
        first_hop in any::<bool>(),
        l4_model in arb_l4(),
    ) {
        // At most one fragment header in a well-formed chain.
        let mut seen = false;
        let exts: Vec<Ext> = exts
            .into_iter()
            .filter(|e| !matches!(e, Ext::Fragment) || !std::mem::replace(&mut seen, true))
            .collect();
        let (bytes, want) = build(&exts, first_hop, &l4_model);
        let count = exts.len() + usize::from(first_hop);
        let got = Packet::parse(&bytes);
        if count > MAX_EXTENSION_HEADERS {
            prop_assert_eq!(got, Err(PacketError::TooManyExtensionHeaders));
        } else {
            let p = got.unwrap();
            prop_assert_eq!((p.src, p.dst, p.l4), (ip(A), ip(B), want));
        }
    }

    #[test]
    fn arbitrary_ipv6_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..120)) {
        let mut bytes = bytes;
        if let Some(b) = bytes.first_mut() {
            *b = 0x60 | (*b & 0x0f);
        }
        let _ = Packet::parse(&bytes);
    }

    #[test]
    fn mutated_ipv6_packets_never_panic(
        pos in 0usize..96, val in any::<u8>(), cut in 0usize..100,
    ) {
        let (mut p, _) = build(&[Ext::Options(1), Ext::Fragment], true, &L4::Tcp(1, 2, 2));
        if let Some(b) = p.get_mut(pos) { *b = val; }
        p.truncate(cut);
        let _ = Packet::parse(&p);
    }
}
