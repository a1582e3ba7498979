//! Packet and member builders shared by the unit tests.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use crate::model::{Member, PortRange, PortSpec, Selector};
use crate::packet::{proto, TcpFlags};

pub const SYN: u8 = TcpFlags::SYN;
pub const ACK: u8 = TcpFlags::ACK;
pub const SYN_ACK: u8 = TcpFlags::SYN | TcpFlags::ACK;
pub const FIN_ACK: u8 = TcpFlags::FIN | TcpFlags::ACK;
pub const RST: u8 = TcpFlags::RST;

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A member with one address (IPv4 or IPv6, by its spelling).
pub fn member(name: &str, addr: &str, labels: &[(&str, &str)]) -> Member {
    let (v4, v6) = match ip(addr) {
        IpAddr::V4(a) => (Some(a), None),
        IpAddr::V6(a) => (None, Some(a)),
    };
    Member {
        name: name.to_owned(),
        ip: v4,
        ip6: v6,
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// A dual-stack member.
pub fn member2(name: &str, v4: &str, v6: &str, labels: &[(&str, &str)]) -> Member {
    Member {
        ip6: Some(v6.parse().unwrap()),
        ..member(name, v4, labels)
    }
}

/// An IPv4 or IPv6 header (by the spelling of `src`) for `payload` of `protocol`.
pub fn ipv4(src: &str, dst: &str, protocol: u8, payload: &[u8]) -> Vec<u8> {
    if src.contains(':') {
        return ipv6(src, dst, protocol, payload);
    }
    let total = u16::try_from(20 + payload.len()).unwrap();
    let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, protocol, 0, 0];
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&src.parse::<Ipv4Addr>().unwrap().octets());
    p.extend_from_slice(&dst.parse::<Ipv4Addr>().unwrap().octets());
    p.extend_from_slice(payload);
    p
}

/// An IPv6 header for `payload` (which starts with any extension headers) after `next`.
pub fn ipv6(src: &str, dst: &str, next: u8, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len()).unwrap();
    let mut p = vec![0x60, 0, 0, 0, 0, 0, next, 64];
    p[4..6].copy_from_slice(&len.to_be_bytes());
    p.extend_from_slice(&src.parse::<Ipv6Addr>().unwrap().octets());
    p.extend_from_slice(&dst.parse::<Ipv6Addr>().unwrap().octets());
    p.extend_from_slice(payload);
    p
}

fn is_v6(src: &str) -> bool {
    src.contains(':')
}

pub fn tcp(src: &str, sport: u16, dst: &str, dport: u16, flags: u8) -> Vec<u8> {
    let mut h = vec![0u8; 20];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[12] = 5 << 4;
    h[13] = flags;
    ipv4(src, dst, proto::TCP, &h)
}

pub fn udp(src: &str, sport: u16, dst: &str, dport: u16) -> Vec<u8> {
    let mut h = vec![0u8; 8];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[4..6].copy_from_slice(&8u16.to_be_bytes());
    ipv4(src, dst, proto::UDP, &h)
}

/// ICMP echo request (`kind` 8) or reply (`kind` 0); on IPv6 ICMPv6 with the same
/// meaning (types 128 and 129), or any other ICMPv6 `kind` as given.
pub fn icmp(src: &str, dst: &str, kind: u8, id: u16) -> Vec<u8> {
    let kind = match (is_v6(src), kind) {
        (true, 8) => 128,
        (true, 0) => 129,
        (_, k) => k,
    };
    let mut h = vec![kind, 0, 0, 0, 0, 0, 0, 1];
    h[4..6].copy_from_slice(&id.to_be_bytes());
    let protocol = if is_v6(src) {
        proto::ICMPV6
    } else {
        proto::ICMP
    };
    ipv4(src, dst, protocol, &h)
}

/// ICMP (ICMPv6) destination unreachable quoting `quoted` (its IP header and first 8
/// bytes).
pub fn icmp_unreachable(src: &str, dst: &str, quoted: &[u8]) -> Vec<u8> {
    let (kind, protocol, header) = if is_v6(src) {
        (1, proto::ICMPV6, 40)
    } else {
        (3, proto::ICMP, 20)
    };
    let mut h = vec![kind, 4, 0, 0, 0, 0, 0, 0];
    h.extend_from_slice(&quoted[..(header + 8).min(quoted.len())]);
    ipv4(src, dst, protocol, &h)
}

pub(crate) fn arb_selector() -> impl Strategy<Value = Selector> {
    prop_oneof![
        Just(Selector::Any),
        prop::collection::btree_map("[a-c]", "[x-z]", 1..3).prop_map(Selector::Labels),
        (any::<u32>(), 0u8..=32).prop_map(|(a, len)| {
            Selector::Cidr(ipnet::Ipv4Net::new(a.into(), len).unwrap().trunc().into())
        }),
        (any::<u128>(), 0u8..=128).prop_map(|(a, len)| {
            Selector::Cidr(ipnet::Ipv6Net::new(a.into(), len).unwrap().trunc().into())
        }),
        "[a-e]".prop_map(Selector::Member),
    ]
}

/// Port specs with ports up to `max` (small values make rules overlap often).
pub(crate) fn arb_port_spec(max: u16) -> impl Strategy<Value = PortSpec> {
    let range = move || {
        (1u16..=max, 1u16..=max).prop_map(|(a, b)| PortRange::new(a.min(b), a.max(b)).unwrap())
    };
    prop_oneof![
        range().prop_map(PortSpec::Tcp),
        range().prop_map(PortSpec::Udp),
        Just(PortSpec::Icmp),
        Just(PortSpec::Any),
    ]
}
