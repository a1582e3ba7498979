//! A minimal IPv4 parser: just what the filter needs, never panics, never allocates.

use std::net::Ipv4Addr;

/// IP protocol numbers the filter knows.
pub mod proto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
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

/// A parsed IPv4 packet header and the transport fields the filter uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
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
    /// ICMP.
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
    /// Echo request (type 8).
    EchoRequest {
        /// Identifier.
        id: u16,
    },
    /// Echo reply (type 0).
    EchoReply {
        /// Identifier.
        id: u16,
    },
    /// An error (destination unreachable, time exceeded, parameter problem) quoting a packet.
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
    pub src: Ipv4Addr,
    /// Quoted destination address.
    pub dst: Ipv4Addr,
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
    /// Shorter than an IPv4 header.
    #[error("packet shorter than an IPv4 header")]
    TooShort,
    /// IP version is not 4.
    #[error("not an IPv4 packet (version {0})")]
    NotIpv4(u8),
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
}

/// Smallest offset (in 8-byte units) allowed for a later fragment: it may not rewrite the
/// first 24 bytes of the transport header (ports, TCP flags), as RFC 1858 advises.
const MIN_FRAGMENT_OFFSET: u16 = 3;

impl Packet {
    /// Parses an IPv4 packet; bytes past the IPv4 total length are ignored.
    pub fn parse(buf: &[u8]) -> Result<Packet, PacketError> {
        let (src, dst, protocol, frag_offset, payload) = ipv4(buf)?;
        if frag_offset > 0 {
            if frag_offset < MIN_FRAGMENT_OFFSET {
                return Err(PacketError::FragmentOverlap);
            }
            return Ok(Packet {
                src,
                dst,
                l4: Transport::Fragment { protocol },
            });
        }
        let l4 = match protocol {
            proto::TCP => {
                let h = payload
                    .get(..20)
                    .ok_or(PacketError::TruncatedTransport(protocol))?;
                Transport::Tcp {
                    src_port: be16(h, 0),
                    dst_port: be16(h, 2),
                    flags: TcpFlags(h[13]),
                }
            }
            proto::UDP => {
                let h = payload
                    .get(..8)
                    .ok_or(PacketError::TruncatedTransport(protocol))?;
                Transport::Udp {
                    src_port: be16(h, 0),
                    dst_port: be16(h, 2),
                }
            }
            proto::ICMP => Transport::Icmp(icmp(payload)?),
            _ => Transport::Other { protocol },
        };
        Ok(Packet { src, dst, l4 })
    }

    /// IP protocol number.
    pub fn protocol(&self) -> u8 {
        match self.l4 {
            Transport::Tcp { .. } => proto::TCP,
            Transport::Udp { .. } => proto::UDP,
            Transport::Icmp(_) => proto::ICMP,
            Transport::Fragment { protocol } | Transport::Other { protocol } => protocol,
        }
    }
}

/// Returns (src, dst, protocol, fragment offset in 8-byte units, payload).
fn ipv4(buf: &[u8]) -> Result<(Ipv4Addr, Ipv4Addr, u8, u16, &[u8]), PacketError> {
    let h = buf.get(..20).ok_or(PacketError::TooShort)?;
    let version = h[0] >> 4;
    if version != 4 {
        return Err(PacketError::NotIpv4(version));
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
        src: Ipv4Addr::new(h[12], h[13], h[14], h[15]),
        dst: Ipv4Addr::new(h[16], h[17], h[18], h[19]),
        protocol,
        src_port,
        dst_port,
    })
}

fn be16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
        _ => 0,
    }
}

#[cfg(test)]
mod tests;
