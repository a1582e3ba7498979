//! IPv6: the fixed header, the extension-header chain and ICMPv6.
//!
//! The chain is walked up to [`MAX_EXTENSION_HEADERS`] headers; anything that cannot be
//! walked is refused rather than guessed at. Fragments follow the IPv4 rules: the first
//! fragment must carry the whole chain and the transport header (RFC 7112) and is judged
//! like an unfragmented packet; a later one may not start inside the first 24 bytes of the
//! transport header.

use std::net::{IpAddr, Ipv6Addr};

use super::{be16, later_fragment, ports, proto, Icmp, Packet, PacketError, Quoted, Transport};

/// Most extension headers walked before the packet is refused.
pub(crate) const MAX_EXTENSION_HEADERS: usize = 8;

const HEADER: usize = 40;
const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const AUTH: u8 = 51;
const DEST_OPTIONS: u8 = 60;
/// Extension headers in the generic `(next, length in 8-byte units - 1)` format: mobility,
/// HIP, shim6 and the two experimental numbers (RFC 7045).
const GENERIC: [u8; 5] = [135, 139, 140, 253, 254];

/// ICMPv6 types the filter reads.
mod icmp6 {
    pub(super) const ECHO_REQUEST: u8 = 128;
    pub(super) const ECHO_REPLY: u8 = 129;
}

/// Parses an IPv6 packet (version nibble already 6); bytes past the payload length are
/// ignored.
pub(crate) fn parse(buf: &[u8]) -> Result<Packet, PacketError> {
    let h = buf.get(..HEADER).ok_or(PacketError::TooShort)?;
    let payload_len = usize::from(be16(h, 4));
    if payload_len == 0 || HEADER + payload_len > buf.len() {
        return Err(PacketError::BadPayloadLength);
    }
    let src = addr(&h[8..24]);
    let dst = addr(&h[24..40]);
    if src.to_ipv4_mapped().is_some() || dst.to_ipv4_mapped().is_some() {
        return Err(PacketError::MappedAddress);
    }
    let (src, dst) = (IpAddr::V6(src), IpAddr::V6(dst));
    let end = HEADER + payload_len;
    let mut next = h[6];
    let mut at = HEADER;
    let mut fragment_seen = false;
    for walked in 0..=MAX_EXTENSION_HEADERS {
        let rest = buf.get(at..end).unwrap_or_default();
        let ext = |need: usize| {
            rest.get(..need)
                .ok_or(PacketError::BadExtensionHeader(next))
        };
        let len = match next {
            proto::TCP | proto::UDP => {
                return Ok(Packet {
                    src,
                    dst,
                    l4: ports(next, rest)?,
                })
            }
            proto::ICMPV6 => {
                return Ok(Packet {
                    src,
                    dst,
                    l4: Transport::Icmp(icmp(rest)?),
                })
            }
            _ if walked == MAX_EXTENSION_HEADERS && is_extension(next) => {
                return Err(PacketError::TooManyExtensionHeaders)
            }
            HOP_BY_HOP if walked > 0 => return Err(PacketError::BadExtensionHeader(next)),
            ROUTING => {
                let e = ext(8)?;
                // A routing header still to be followed names a different final
                // destination than the one judged here: refuse it.
                if e[3] != 0 {
                    return Err(PacketError::BadExtensionHeader(next));
                }
                (usize::from(e[1]) + 1) * 8
            }
            FRAGMENT => {
                let e = ext(8)?;
                if fragment_seen {
                    return Err(PacketError::BadExtensionHeader(next));
                }
                fragment_seen = true;
                let offset = be16(e, 2) >> 3;
                if offset > 0 {
                    return later_fragment(src, dst, e[0], offset);
                }
                8
            }
            AUTH => (usize::from(ext(8)?[1]) + 2) * 4,
            n if n == HOP_BY_HOP || n == DEST_OPTIONS || GENERIC.contains(&n) => {
                (usize::from(ext(8)?[1]) + 1) * 8
            }
            // ESP, "no next header" and every other protocol: nothing more to read.
            protocol => {
                return Ok(Packet {
                    src,
                    dst,
                    l4: Transport::Other { protocol },
                })
            }
        };
        if rest.len() < len {
            return Err(PacketError::BadExtensionHeader(next));
        }
        next = rest[0];
        at += len;
    }
    Err(PacketError::TooManyExtensionHeaders)
}

/// Whether `n` is an extension header this parser walks.
fn is_extension(n: u8) -> bool {
    matches!(n, HOP_BY_HOP | ROUTING | FRAGMENT | AUTH | DEST_OPTIONS) || GENERIC.contains(&n)
}

fn addr(b: &[u8]) -> Ipv6Addr {
    let mut octets = [0u8; 16];
    octets.copy_from_slice(b);
    Ipv6Addr::from(octets)
}

fn icmp(payload: &[u8]) -> Result<Icmp, PacketError> {
    let h = payload
        .get(..8)
        .ok_or(PacketError::TruncatedTransport(proto::ICMPV6))?;
    Ok(match h[0] {
        icmp6::ECHO_REPLY => Icmp::EchoReply { id: be16(h, 4) },
        icmp6::ECHO_REQUEST => Icmp::EchoRequest { id: be16(h, 4) },
        kind @ 1..=4 => Icmp::Error {
            kind,
            quoted: payload.get(8..).and_then(quoted),
        },
        kind => Icmp::Other { kind },
    })
}

/// Reads the quoted IPv6 header of an ICMPv6 error whose transport header follows it
/// directly (a quote cut short, or one with extension headers, is `None`).
fn quoted(buf: &[u8]) -> Option<Quoted> {
    let h = buf.get(..HEADER)?;
    if h[0] >> 4 != 6 {
        return None;
    }
    let protocol = h[6];
    let l4 = buf.get(HEADER..HEADER + 8)?;
    let (src_port, dst_port) = match protocol {
        proto::TCP | proto::UDP => (be16(l4, 0), be16(l4, 2)),
        proto::ICMPV6 if l4[0] == icmp6::ECHO_REQUEST => (be16(l4, 4), 0),
        _ => return None,
    };
    Some(Quoted {
        src: IpAddr::V6(addr(&h[8..24])),
        dst: IpAddr::V6(addr(&h[24..40])),
        protocol,
        src_port,
        dst_port,
    })
}

/// Whether an ICMPv6 type is link-scoped control traffic (neighbour and router discovery,
/// redirects, multicast listener messages) that never crosses the tunnel.
pub(crate) fn is_link_control(kind: u8) -> bool {
    matches!(kind, 130..=137 | 143)
}

#[cfg(test)]
mod tests;
