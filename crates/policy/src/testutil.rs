//! Packet and member builders shared by the unit tests.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use proptest::prelude::*;

use crate::model::{Member, PortRange, PortSpec, Selector};
use crate::packet::{proto, TcpFlags};

pub const SYN: u8 = TcpFlags::SYN;
pub const ACK: u8 = TcpFlags::ACK;
pub const SYN_ACK: u8 = TcpFlags::SYN | TcpFlags::ACK;
pub const FIN_ACK: u8 = TcpFlags::FIN | TcpFlags::ACK;
pub const RST: u8 = TcpFlags::RST;

pub fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

pub fn member(name: &str, addr: &str, labels: &[(&str, &str)]) -> Member {
    Member {
        name: name.to_owned(),
        ip: ip(addr),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// An IPv4 header for `payload` of `protocol`.
pub fn ipv4(src: &str, dst: &str, protocol: u8, payload: &[u8]) -> Vec<u8> {
    let total = u16::try_from(20 + payload.len()).unwrap();
    let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, protocol, 0, 0];
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&ip(src).octets());
    p.extend_from_slice(&ip(dst).octets());
    p.extend_from_slice(payload);
    p
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

/// ICMP echo request (`kind` 8) or reply (`kind` 0).
pub fn icmp(src: &str, dst: &str, kind: u8, id: u16) -> Vec<u8> {
    let mut h = vec![kind, 0, 0, 0, 0, 0, 0, 1];
    h[4..6].copy_from_slice(&id.to_be_bytes());
    ipv4(src, dst, proto::ICMP, &h)
}

/// ICMP destination unreachable quoting `quoted` (its IP header and first 8 bytes).
pub fn icmp_unreachable(src: &str, dst: &str, quoted: &[u8]) -> Vec<u8> {
    let mut h = vec![3, 4, 0, 0, 0, 0, 0, 0];
    h.extend_from_slice(&quoted[..28.min(quoted.len())]);
    ipv4(src, dst, proto::ICMP, &h)
}

pub(crate) fn arb_selector() -> impl Strategy<Value = Selector> {
    prop_oneof![
        Just(Selector::Any),
        prop::collection::btree_map("[a-c]", "[x-z]", 1..3).prop_map(Selector::Labels),
        (any::<u32>(), 0u8..=32).prop_map(|(a, len)| {
            Selector::Cidr(ipnet::Ipv4Net::new(a.into(), len).unwrap().trunc())
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
