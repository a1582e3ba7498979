//! A reusable batch of packet buffers, filled and drained by the TUN device.

/// A fixed number of equal-sized packet slots in one contiguous allocation, reused from
/// call to call: no allocation per packet.
///
/// [`crate::TunDevice::recv_batch`] fills it; [`crate::TunDevice::send_batch`] writes out
/// every packet in it. Make the slots at least as large as the device MTU (packets longer
/// than a slot are cut by the kernel).
#[derive(Debug, Clone)]
pub struct PacketBatch {
    data: Vec<u8>,
    slot_size: usize,
    slots: usize,
    lens: Vec<usize>,
}

impl PacketBatch {
    /// A batch of `slots` packets of at most `slot_size` bytes each.
    #[must_use]
    pub fn new(slots: usize, slot_size: usize) -> Self {
        Self {
            data: vec![0; slots.saturating_mul(slot_size)],
            slot_size,
            slots,
            lens: Vec::with_capacity(slots),
        }
    }

    /// How many packets the batch can hold.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.slots
    }

    /// The largest packet a slot holds.
    #[must_use]
    pub fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// How many packets the batch holds now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lens.len()
    }

    /// Whether the batch holds no packet.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// Whether every slot is taken.
    #[must_use]
    pub fn is_full(&self) -> bool {
        self.lens.len() >= self.slots
    }

    /// Empties the batch, keeping its buffers.
    pub fn clear(&mut self) {
        self.lens.clear();
    }

    /// The `i`th packet.
    #[must_use]
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let len = *self.lens.get(i)?;
        let start = i * self.slot_size;
        self.data.get(start..start + len)
    }

    /// The `i`th packet, mutable (to rewrite it in place).
    pub fn get_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        let len = *self.lens.get(i)?;
        let start = i * self.slot_size;
        self.data.get_mut(start..start + len)
    }

    /// The packets in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.len()).filter_map(move |i| self.get(i))
    }

    /// Copies `packet` into the next free slot; false (and nothing changes) when the batch
    /// is full or the packet is larger than a slot.
    #[must_use]
    pub fn push(&mut self, packet: &[u8]) -> bool {
        self.push_with(|slot| {
            slot.get_mut(..packet.len())
                .map(|dst| {
                    dst.copy_from_slice(packet);
                    packet.len()
                })
                .unwrap_or(usize::MAX)
        })
    }

    /// Lets `fill` write a packet straight into the next free slot (e.g. decrypt into it)
    /// and return its length; false when the batch is full or the length returned is larger
    /// than the slot, in which case the slot stays free.
    #[must_use]
    pub fn push_with(&mut self, fill: impl FnOnce(&mut [u8]) -> usize) -> bool {
        let Some(slot) = self.next_slot_mut() else {
            return false;
        };
        let len = fill(slot);
        if len > self.slot_size {
            return false;
        }
        self.lens.push(len);
        true
    }

    /// The next free slot, whole.
    pub(crate) fn next_slot_mut(&mut self) -> Option<&mut [u8]> {
        if self.is_full() {
            return None;
        }
        let start = self.lens.len() * self.slot_size;
        self.data.get_mut(start..start + self.slot_size)
    }

    /// Marks the next free slot as holding a packet of `len` bytes.
    pub(crate) fn commit(&mut self, len: usize) {
        debug_assert!(!self.is_full() && len <= self.slot_size);
        self.lens.push(len.min(self.slot_size));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_get_clear() {
        let mut batch = PacketBatch::new(2, 4);
        assert!(batch.is_empty());
        assert!(batch.push(b"ab"));
        assert!(!batch.push(b"toolong"), "larger than a slot");
        assert!(batch.push(b"cdef"));
        assert!(batch.is_full());
        assert!(!batch.push(b"x"), "full");
        assert_eq!(batch.iter().collect::<Vec<_>>(), [&b"ab"[..], &b"cdef"[..]]);
        batch.get_mut(0).expect("slot 0")[0] = b'z';
        assert_eq!(batch.get(0), Some(&b"zb"[..]));
        assert_eq!(batch.get(2), None);
        batch.clear();
        assert_eq!(batch.len(), 0);
        assert_eq!(batch.capacity(), 2);
        assert_eq!(batch.slot_size(), 4);
    }

    #[test]
    fn push_with_rejects_overlong_lengths() {
        let mut batch = PacketBatch::new(1, 4);
        assert!(!batch.push_with(|_| 5));
        assert!(batch.is_empty());
        assert!(batch.push_with(|slot| {
            slot[..3].copy_from_slice(b"abc");
            3
        }));
        assert_eq!(batch.get(0), Some(&b"abc"[..]));
    }
}
