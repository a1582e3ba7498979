//! A minimal IPv4 and IPv6 parser: just what the filter needs, never panics, never allocates.
//!
//! IPv6 lives in [`ipv6`](self) (the extension-header chain is walked there); both families
//! share [`Packet`], [`Transport`] and the fragment rules.

use std::net::{IpAddr, Ipv4Addr};

/// IP protocol numbers the filter knows.
pub mod proto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
}

/// TCP flag bits (byte 13 of the TCP header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// ACK.
    pub const ACK: u8 = 0x10;

    /// Whether all bits of `mask` are set.
    pub fn has(self, mask: u8) -> bool {
        self.0 & mask == mask
    }
}

/// A parsed IPv4 or IPv6 packet header and the transport fields the filter uses.
///
/// Both addresses are of the packet's own family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Transport details.
    pub l4: Transport,
}

/// The transport part of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP with ports and flags.
    Tcp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
        /// Flags.
        flags: TcpFlags,
    },
    /// UDP with ports.
    Udp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
    },
    /// ICMP (on IPv4) or ICMPv6 (on IPv6).
    Icmp(Icmp),
    /// A later fragment (offset > 0) of any protocol: no transport header to read.
    Fragment {
        /// IP protocol number.
        protocol: u8,
    },
    /// Another IP protocol.
    Other {
        /// IP protocol number.
        protocol: u8,
    },
}

/// The ICMP fields the filter uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmp {
    /// Echo request (ICMP type 8, ICMPv6 type 128).
    EchoRequest {
        /// Identifier.
        id: u16,
    },
    /// Echo reply (ICMP type 0, ICMPv6 type 129).
    EchoReply {
        /// Identifier.
        id: u16,
    },
    /// An error (destination unreachable, time exceeded, parameter problem; on IPv6 also
    /// packet too big) quoting a packet.
    Error {
        /// ICMP type.
        kind: u8,
        /// The quoted packet's addresses and ports, when readable.
        quoted: Option<Quoted>,
    },
    /// Any other type.
    Other {
        /// ICMP type.
        kind: u8,
    },
}

/// The start of the packet quoted inside an ICMP error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoted {
    /// Quoted source address (the error's receiver sent it).
    pub src: IpAddr,
    /// Quoted destination address.
    pub dst: IpAddr,
    /// Quoted protocol number.
    pub protocol: u8,
    /// Quoted source port (TCP/UDP) or echo id (ICMP echo request); 0 otherwise.
    pub src_port: u16,
    /// Quoted destination port (TCP/UDP); 0 otherwise.
    pub dst_port: u16,
}

/// Why bytes are not a packet the filter can judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Shorter than an IPv4 (or IPv6) header.
    #[error("packet shorter than an IP header")]
    TooShort,
    /// IP version is neither 4 nor 6.
    #[error("not an IPv4 or IPv6 packet (version {0})")]
    NotIp(u8),
    /// Header length field below 20 bytes or beyond the packet.
    #[error("bad IPv4 header length")]
    BadHeaderLength,
    /// Total length field below the header length or beyond the buffer.
    #[error("bad IPv4 total length")]
    BadTotalLength,
    /// The transport header is cut short.
    #[error("truncated transport header (protocol {0})")]
    TruncatedTransport(u8),
    /// A later fragment that overlaps the transport header (tiny-fragment attack).
    #[error("fragment overlaps the transport header")]
    FragmentOverlap,
    /// IPv6 payload length beyond the buffer, or zero (jumbograms are not carried).
    #[error("bad IPv6 payload length")]
    BadPayloadLength,
    /// An IPv6 extension header that cannot be walked: cut short, out of place (hop-by-hop
    /// not first, a second fragment header), or a routing header with segments left.
    #[error("IPv6 extension header cannot be parsed (next header {0})")]
    BadExtensionHeader(u8),
    /// More IPv6 extension headers than the filter walks.
    #[error("too many IPv6 extension headers")]
    TooManyExtensionHeaders,
    /// An IPv6 packet with an IPv4-mapped address (`::ffff:0:0/96`), which never appears on
    /// the wire and would alias an IPv4 address.
    #[error("IPv4-mapped address in an IPv6 packet")]
    MappedAddress,
}

/// Smallest offset (in 8-byte units) allowed for a later fragment: it may not rewrite the
/// first 24 bytes of the transport header (ports, TCP flags), as RFC 1858 advises.
pub(crate) const MIN_FRAGMENT_OFFSET: u16 = 3;

impl Packet {
    /// Parses an IPv4 or IPv6 packet; bytes past the IP total (payload) length are ignored.
    pub fn parse(buf: &[u8]) -> Result<Packet, PacketError> {
        match buf.first().map(|b| b >> 4) {
            Some(6) => ipv6::parse(buf),
            _ => Self::parse_v4(buf),
        }
    }

    fn parse_v4(buf: &[u8]) -> Result<Packet, PacketError> {
        let (src, dst, protocol, frag_offset, payload) = ipv4(buf)?;
        let (src, dst) = (IpAddr::V4(src), IpAddr::V4(dst));
        if frag_offset > 0 {
            return later_fragment(src, dst, protocol, frag_offset);
        }
        let l4 = match protocol {
            proto::TCP | proto::UDP => ports(protocol, payload)?,
            proto::ICMP => Transport::Icmp(icmp(payload)?),
            _ => Transport::Other { protocol },
        };
        Ok(Packet { src, dst, l4 })
    }

    /// IP protocol number (ICMPv6 is 58, IPv4's ICMP 1).
    pub fn protocol(&self) -> u8 {
        match self.l4 {
            Transport::Tcp { .. } => proto::TCP,
            Transport::Udp { .. } => proto::UDP,
            Transport::Icmp(_) if self.src.is_ipv6() => proto::ICMPV6,
            Transport::Icmp(_) => proto::ICMP,
            Transport::Fragment { protocol } | Transport::Other { protocol } => protocol,
        }
    }
}

/// A later fragment (offset > 0, in 8-byte units) of either family: it may not reach back
/// into the transport header the first fragment carried.
pub(crate) fn later_fragment(
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    offset: u16,
) -> Result<Packet, PacketError> {
    if offset < MIN_FRAGMENT_OFFSET {
        return Err(PacketError::FragmentOverlap);
    }
    Ok(Packet {
        src,
        dst,
        l4: Transport::Fragment { protocol },
    })
}

/// The TCP or UDP header at the start of `payload`.
pub(crate) fn ports(protocol: u8, payload: &[u8]) -> Result<Transport, PacketError> {
    let need = if protocol == proto::TCP { 20 } else { 8 };
    let h = payload
        .get(..need)
        .ok_or(PacketError::TruncatedTransport(protocol))?;
    Ok(if protocol == proto::TCP {
        Transport::Tcp {
            src_port: be16(h, 0),
            dst_port: be16(h, 2),
            flags: TcpFlags(h[13]),
        }
    } else {
        Transport::Udp {
            src_port: be16(h, 0),
            dst_port: be16(h, 2),
        }
    })
}

/// Returns (src, dst, protocol, fragment offset in 8-byte units, payload).
fn ipv4(buf: &[u8]) -> Result<(Ipv4Addr, Ipv4Addr, u8, u16, &[u8]), PacketError> {
    let h = buf.get(..20).ok_or(PacketError::TooShort)?;
    let version = h[0] >> 4;
    if version != 4 {
        return Err(PacketError::NotIp(version));
    }
    let ihl = usize::from(h[0] & 0x0f) * 4;
    if ihl < 20 || ihl > buf.len() {
        return Err(PacketError::BadHeaderLength);
    }
    let total = usize::from(be16(h, 2));
    if total < ihl || total > buf.len() {
        return Err(PacketError::BadTotalLength);
    }
    let frag_offset = be16(h, 6) & 0x1fff;
    let src = Ipv4Addr::new(h[12], h[13], h[14], h[15]);
    let dst = Ipv4Addr::new(h[16], h[17], h[18], h[19]);
    let payload = buf.get(ihl..total).ok_or(PacketError::BadTotalLength)?;
    Ok((src, dst, h[9], frag_offset, payload))
}

fn icmp(payload: &[u8]) -> Result<Icmp, PacketError> {
    let h = payload
        .get(..8)
        .ok_or(PacketError::TruncatedTransport(proto::ICMP))?;
    Ok(match h[0] {
        0 => Icmp::EchoReply { id: be16(h, 4) },
        8 => Icmp::EchoRequest { id: be16(h, 4) },
        kind @ (3 | 11 | 12) => Icmp::Error {
            kind,
            quoted: payload.get(8..).and_then(quoted),
        },
        kind => Icmp::Other { kind },
    })
}

/// Reads the quoted header of an ICMP error (the quote may be cut short: then `None`).
fn quoted(buf: &[u8]) -> Option<Quoted> {
    let h = buf.get(..20)?;
    if h[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(h[0] & 0x0f) * 4;
    if ihl < 20 {
        return None;
    }
    let protocol = h[9];
    let l4 = buf.get(ihl..ihl + 8)?;
    let (src_port, dst_port) = match protocol {
        proto::TCP | proto::UDP => (be16(l4, 0), be16(l4, 2)),
        proto::ICMP if l4[0] == 8 => (be16(l4, 4), 0),
        _ => (0, 0),
    };
    Some(Quoted {
        src: Ipv4Addr::new(h[12], h[13], h[14], h[15]).into(),
        dst: Ipv4Addr::new(h[16], h[17], h[18], h[19]).into(),
        protocol,
        src_port,
        dst_port,
    })
}

pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
        _ => 0,
    }
}

mod ipv6;
pub(crate) use ipv6::is_link_control;

#[cfg(test)]
mod tests;
