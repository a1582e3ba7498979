//! Reusable output buffers for batches of datagrams and packets.
//!
//! Both batch types keep every item packed back to back in one byte buffer
//! that is allocated once and reused: [`DatagramBatch::clear`] and
//! [`PacketBatch::clear`] keep the capacity. If a call produces more bytes than
//! were reserved the buffer grows once (amortised doubling) and keeps the new
//! size, so a shell that sizes its batches for its read batch (e.g. 64 × MTU)
//! never allocates in steady state.
//!
//! Datagrams are stored in the order produced; consecutive datagrams of the
//! same size to the same destination are contiguous in [`DatagramBatch::bytes`],
//! which is the layout UDP GSO (`UDP_SEGMENT`) wants.

use std::net::SocketAddr;

/// Bytes WireGuard adds to an IP packet: 16 bytes header + 16 bytes tag.
pub const DATA_OVERHEAD: usize = 32;
/// The largest message WireGuard sends that is not a data packet (an initiation).
pub const HANDSHAKE_MAX: usize = 148;
/// Largest IP packet the router accepts (IPv4 total length limit).
pub const MAX_PACKET: usize = 65_535;

#[derive(Debug, Clone, Copy)]
struct Slot<A> {
    start: usize,
    len: usize,
    addr: A,
}

/// A packed, growable byte buffer of items with per-item metadata.
#[derive(Debug, Clone)]
struct Packed<A> {
    buf: Vec<u8>,
    used: usize,
    slots: Vec<Slot<A>>,
}

impl<A: Copy> Packed<A> {
    fn with_capacity(items: usize, bytes: usize) -> Self {
        Self {
            buf: vec![0; bytes],
            used: 0,
            slots: Vec::with_capacity(items),
        }
    }

    /// At least `need` writable bytes after the last item.
    fn tail(&mut self, need: usize) -> &mut [u8] {
        if self.buf.len() - self.used < need {
            let grown = (self.used + need).max(self.buf.len() * 2);
            self.buf.resize(grown, 0);
        }
        &mut self.buf[self.used..]
    }

    /// Makes `len` bytes at `offset` past the end an item; skips `offset` bytes.
    fn commit(&mut self, offset: usize, len: usize, addr: A) {
        let start = self.used + offset;
        debug_assert!(start + len <= self.buf.len());
        self.slots.push(Slot { start, len, addr });
        self.used = start + len;
    }

    fn clear(&mut self) {
        self.used = 0;
        self.slots.clear();
    }

    /// Keeps the items from index `from` on for which `keep` is true (bytes stay put).
    fn retain_from(&mut self, from: usize, mut keep: impl FnMut(&[u8]) -> bool) {
        let buf = &self.buf;
        let mut i = 0;
        self.slots.retain(|s| {
            let kept = i < from || keep(&buf[s.start..s.start + s.len]);
            i += 1;
            kept
        });
    }

    fn item(&self, i: usize) -> Option<(A, &[u8])> {
        let s = self.slots.get(i)?;
        Some((s.addr, &self.buf[s.start..s.start + s.len]))
    }
}

/// One datagram to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// Destination (the peer's endpoint, or the source of a handshake being answered).
    pub dst: SocketAddr,
    /// The UDP payload.
    pub bytes: &'a [u8],
}

/// Datagrams for the UDP socket, produced by the router, owned and reused by the shell.
#[derive(Debug, Clone)]
pub struct DatagramBatch {
    inner: Packed<SocketAddr>,
}

impl DatagramBatch {
    /// Room for `datagrams` datagrams of up to `max_packet + DATA_OVERHEAD` bytes
    /// each, e.g. `DatagramBatch::new(64, 1420)` for 64 MTU-sized packets.
    pub fn new(datagrams: usize, max_packet: usize) -> Self {
        let slot = (max_packet + DATA_OVERHEAD).max(HANDSHAKE_MAX);
        Self {
            inner: Packed::with_capacity(datagrams, datagrams.max(1) * slot),
        }
    }

    /// Number of datagrams.
    pub fn len(&self) -> usize {
        self.inner.slots.len()
    }

    /// Whether there are no datagrams.
    pub fn is_empty(&self) -> bool {
        self.inner.slots.is_empty()
    }

    /// Forgets all datagrams, keeping the buffers.
    pub fn clear(&mut self) {
        self.inner.clear();
    }

    /// The `i`-th datagram.
    pub fn get(&self, i: usize) -> Option<Datagram<'_>> {
        self.inner
            .item(i)
            .map(|(dst, bytes)| Datagram { dst, bytes })
    }

    /// All datagrams in the order produced.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Datagram<'_>> + '_ {
        let buf = &self.inner.buf;
        self.inner.slots.iter().map(move |s| Datagram {
            dst: s.addr,
            bytes: &buf[s.start..s.start + s.len],
        })
    }

    /// The packed payload bytes of all datagrams, back to back.
    pub fn bytes(&self) -> &[u8] {
        &self.inner.buf[..self.inner.used]
    }

    /// The datagrams in order, grouped for UDP GSO (`UDP_SEGMENT`): each [`Run`] is
    /// consecutive datagrams to one destination, all of the first one's size but the last
    /// (which may be shorter), at most `max_segments` of them and `max_bytes` in all. With
    /// `max_segments` 1 every run is one datagram. The receiver still gets one datagram
    /// per segment.
    pub fn runs(&self, max_segments: usize, max_bytes: usize) -> Runs<'_> {
        Runs {
            buf: &self.inner.buf,
            slots: &self.inner.slots,
            max_segments: max_segments.max(1),
            max_bytes,
        }
    }

    pub(crate) fn tail(&mut self, need: usize) -> &mut [u8] {
        self.inner.tail(need)
    }

    /// The first `len` bytes written after the last datagram (not yet committed).
    pub(crate) fn uncommitted(&self, len: usize) -> &[u8] {
        &self.inner.buf[self.inner.used..self.inner.used + len]
    }

    pub(crate) fn commit(&mut self, len: usize, dst: SocketAddr) {
        self.inner.commit(0, len, dst);
    }

    /// Copies in one datagram for `dst` (e.g. a shell's own probe; the router fills the
    /// batch itself).
    pub fn push(&mut self, bytes: &[u8], dst: SocketAddr) {
        self.tail(bytes.len())[..bytes.len()].copy_from_slice(bytes);
        self.commit(bytes.len(), dst);
    }
}

/// Datagrams to one destination, sent with one system call (see [`DatagramBatch::runs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run<'a> {
    /// Where every datagram of the run goes.
    pub dst: SocketAddr,
    /// The datagrams back to back.
    pub bytes: &'a [u8],
    /// The size of each datagram but the last (which may be shorter).
    pub segment_size: usize,
    /// How many datagrams.
    pub segments: usize,
}

/// The [`Run`]s of a [`DatagramBatch`], in order.
#[derive(Debug, Clone)]
pub struct Runs<'a> {
    buf: &'a [u8],
    slots: &'a [Slot<SocketAddr>],
    max_segments: usize,
    max_bytes: usize,
}

impl<'a> Iterator for Runs<'a> {
    type Item = Run<'a>;

    fn next(&mut self) -> Option<Run<'a>> {
        let first = *self.slots.first()?;
        let mut end = first.start + first.len;
        let mut n = 1;
        while n < self.max_segments && first.len < self.max_bytes {
            let Some(s) = self.slots.get(n) else { break };
            let fits = s.addr == first.addr
                && s.start == end
                && s.len <= first.len
                && s.len > 0
                && end + s.len - first.start <= self.max_bytes;
            if !fits {
                break;
            }
            end += s.len;
            n += 1;
            if s.len < first.len {
                break;
            }
        }
        self.slots = &self.slots[n..];
        Some(Run {
            dst: first.addr,
            bytes: &self.buf[first.start..end],
            segment_size: first.len,
            segments: n,
        })
    }
}

/// IP packets, owned and reused by the shell: read from the TUN device (the shell fills
/// it with [`PacketBatch::push_with`]) or decrypted by the router for the TUN device. The
/// one batch type from the TUN device to the UDP socket and back.
///
/// Each packet can be preceded by `headroom` spare bytes (e.g. 10 or 12 for a
/// `virtio_net_hdr` on an `IFF_VNET_HDR` TUN device) that the shell may fill in
/// place through [`PacketBatch::with_headroom_mut`] before writing, without a copy.
#[derive(Debug, Clone)]
pub struct PacketBatch {
    inner: Packed<()>,
    headroom: usize,
    limit: usize,
}

impl PacketBatch {
    /// Room for `packets` packets of up to `max_packet` bytes each, no headroom.
    pub fn new(packets: usize, max_packet: usize) -> Self {
        Self::with_headroom(packets, max_packet, 0)
    }

    /// Like [`PacketBatch::new`] with `headroom` spare bytes before each packet.
    pub fn with_headroom(packets: usize, max_packet: usize, headroom: usize) -> Self {
        let slot = headroom + max_packet + DATA_OVERHEAD;
        Self {
            inner: Packed::with_capacity(packets, packets.max(1) * slot),
            headroom,
            limit: packets,
        }
    }

    /// The number of packets it was made for ([`PacketBatch::is_full`] past it; the router
    /// may still add more, growing it).
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Whether it holds [`PacketBatch::limit`] packets or more.
    pub fn is_full(&self) -> bool {
        self.len() >= self.limit
    }

    /// Lets `fill` write one packet of at most `max_len` bytes straight into the batch
    /// (e.g. a `read(2)` from the TUN device) and keeps it when `fill` returns its length.
    /// Nothing is kept when `fill` fails or returns more than `max_len`.
    ///
    /// # Errors
    /// `fill`'s error.
    pub fn push_with<E>(
        &mut self,
        max_len: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<usize, E>,
    ) -> Result<usize, E> {
        let len = fill(&mut self.tail(max_len)[..max_len])?;
        if len <= max_len {
            self.commit(len);
        }
        Ok(len)
    }

    /// Copies `packet` in.
    pub fn push(&mut self, packet: &[u8]) {
        self.tail(packet.len())[..packet.len()].copy_from_slice(packet);
        self.commit(packet.len());
    }

    /// Keeps the packets from index `from` on for which `keep` is true, in order; the
    /// packets before `from` stay. No bytes move.
    pub fn retain_from(&mut self, from: usize, keep: impl FnMut(&[u8]) -> bool) {
        self.inner.retain_from(from, keep);
    }

    /// Number of packets.
    pub fn len(&self) -> usize {
        self.inner.slots.len()
    }

    /// Whether there are no packets.
    pub fn is_empty(&self) -> bool {
        self.inner.slots.is_empty()
    }

    /// Forgets all packets, keeping the buffers.
    pub fn clear(&mut self) {
        self.inner.clear();
    }

    /// The `i`-th packet.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        self.inner.item(i).map(|(_, p)| p)
    }

    /// All packets in the order received.
    pub fn iter(&self) -> Packets<'_> {
        Packets {
            buf: &self.inner.buf,
            slots: self.inner.slots.iter(),
        }
    }

    /// The `i`-th packet preceded by its headroom bytes (contents unspecified).
    pub fn with_headroom_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        let s = *self.inner.slots.get(i)?;
        Some(&mut self.inner.buf[s.start - self.headroom..s.start + s.len])
    }

    /// Headroom to reserve in front of the next packet; returns the writable tail after it.
    pub(crate) fn tail(&mut self, need: usize) -> &mut [u8] {
        let headroom = self.headroom;
        &mut self.inner.tail(headroom + need)[headroom..]
    }

    pub(crate) fn commit(&mut self, len: usize) {
        self.inner.commit(self.headroom, len, ());
    }
}

/// The packets of a [`PacketBatch`], in order.
#[derive(Debug, Clone)]
pub struct Packets<'a> {
    buf: &'a [u8],
    slots: std::slice::Iter<'a, Slot<()>>,
}

impl<'a> Iterator for Packets<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let s = self.slots.next()?;
        Some(&self.buf[s.start..s.start + s.len])
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.slots.size_hint()
    }
}

impl ExactSizeIterator for Packets<'_> {}

impl<'a> IntoIterator for &'a PacketBatch {
    type Item = &'a [u8];
    type IntoIter = Packets<'a>;

    fn into_iter(self) -> Packets<'a> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_are_packed_and_clear_keeps_capacity() {
        let dst: SocketAddr = "198.18.0.1:51820".parse().expect("addr");
        let mut b = DatagramBatch::new(2, 100);
        b.push(&[1; 10], dst);
        b.push(&[2; 20], dst);
        b.push(&[3; 300], dst); // grows
        assert_eq!(b.len(), 3);
        assert_eq!(b.bytes().len(), 330);
        assert_eq!(b.get(1).map(|d| d.bytes), Some(&[2u8; 20][..]));
        let cap = b.inner.buf.len();
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b.inner.buf.len(), cap);
    }

    #[test]
    fn runs_group_equal_datagrams_to_one_destination() {
        let a: SocketAddr = "198.18.0.1:51820".parse().expect("addr");
        let b: SocketAddr = "198.18.0.2:51820".parse().expect("addr");
        let mut d = DatagramBatch::new(8, 100);
        for (len, dst) in [
            (10, a),
            (10, a),
            (10, a),
            (4, a),
            (10, a),
            (10, b),
            (10, b),
            (12, b),
        ] {
            d.push(&vec![len as u8; len], dst);
        }
        let runs: Vec<(SocketAddr, usize, usize, usize)> = d
            .runs(64, 1000)
            .map(|r| (r.dst, r.bytes.len(), r.segment_size, r.segments))
            .collect();
        // A shorter datagram ends a run; a longer one or another destination starts one.
        assert_eq!(
            runs,
            vec![
                (a, 34, 10, 4),
                (a, 10, 10, 1),
                (b, 20, 10, 2),
                (b, 12, 12, 1)
            ]
        );
        assert_eq!(d.runs(2, 1000).count(), 5, "at most 2 segments a run");
        assert_eq!(d.runs(64, 25).map(|r| r.segments).sum::<usize>(), 8);
        assert!(d
            .runs(64, 25)
            .all(|r| r.bytes.len() <= 25 || r.segments == 1));
        assert_eq!(d.runs(1, 1000).count(), 8, "no GSO: one datagram each");
    }

    #[test]
    fn packets_keep_headroom() {
        let mut b = PacketBatch::with_headroom(2, 64, 10);
        b.tail(3)[..3].copy_from_slice(&[7, 8, 9]);
        b.commit(3);
        b.tail(2)[..2].copy_from_slice(&[5, 6]);
        b.commit(2);
        assert_eq!(
            b.iter().collect::<Vec<_>>(),
            vec![&[7, 8, 9][..], &[5, 6][..]]
        );
        let with = b.with_headroom_mut(1).expect("packet 1");
        assert_eq!(with.len(), 12);
        assert_eq!(&with[10..], &[5, 6]);
    }

    #[test]
    fn push_with_keeps_what_fits_and_retain_filters_in_place() {
        let mut b = PacketBatch::new(2, 8);
        assert_eq!(b.push_with(4, |s| Ok::<_, ()>(s.len())), Ok(4));
        assert_eq!(
            b.push_with(4, |_| Err::<usize, _>("would block")),
            Err("would block")
        );
        assert_eq!(
            b.push_with(4, |_| Ok::<_, ()>(9)),
            Ok(9),
            "too long: not kept"
        );
        assert_eq!(b.len(), 1);
        b.push(&[1]);
        assert!(b.is_full());
        b.push(&[2]);
        b.push(&[3]);
        b.retain_from(2, |p| p != [2]);
        assert_eq!(
            b.iter().collect::<Vec<_>>(),
            vec![&[0u8; 4][..], &[1][..], &[3][..]]
        );
        assert_eq!((&b).into_iter().len(), 3);
    }
}
