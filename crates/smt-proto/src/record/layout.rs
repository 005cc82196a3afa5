//! How a message maps to records, and records to offsets in the wire image.
//!
//! The wire image of a message is its records back to back. Record 0 begins with an
//! 8-byte *prologue* (inside the encryption) that states the payload length and the
//! record size, followed by the payload; every record except the last carries exactly
//! `record_size` content bytes and no padding. So the plaintext header fields
//! (message length, record size) fix every record's position, a receiver can open any
//! record as soon as its bytes are in, and the prologue lets it verify, under
//! authentication, that those plaintext fields were not forged.
//!
//! ```text
//! payload:  [ p0 ............................................. pN ]
//! content:  [prologue | p0 ... ][ ... ][ ... ][ ... pN]      (record_size each, last shorter)
//! wire:     [hdr|enc(content0|23)|tag][hdr|enc(content1|23)|tag]...
//! ```

use core::ops::Range;

use super::{MAX_PLAINTEXT_LEN, MAX_RECORDS_PER_MESSAGE, RECORD_HEADER_LEN, TAG_LEN};

/// Bytes of the authenticated message prologue at the start of record 0:
/// payload length (u32), record size (u16), reserved (u16, zero).
pub const PROLOGUE_LEN: usize = 8;

/// Smallest record size: record 0 must hold the whole prologue.
pub const MIN_RECORD_SIZE: usize = PROLOGUE_LEN;

/// Wire bytes a record adds to its content: header, inner content type, tag.
pub const RECORD_OVERHEAD: usize = RECORD_HEADER_LEN + 1 + TAG_LEN;

/// The record structure of one message. All values are consistent by construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageLayout {
    payload_len: u32,
    record_size: u16,
    record_count: u32,
    wire_len: u32,
}

impl MessageLayout {
    /// The layout of a `payload_len`-byte message cut into `record_size`-byte records.
    /// `None` if `record_size` is not in `8..=16384` (record 0 holds the prologue) or the message would need more
    /// than 65 536 records or a wire image longer than `u32::MAX`.
    pub fn for_payload(payload_len: usize, record_size: usize) -> Option<MessageLayout> {
        if !(MIN_RECORD_SIZE..=MAX_PLAINTEXT_LEN).contains(&record_size) {
            return None;
        }
        let content = payload_len.checked_add(PROLOGUE_LEN)?;
        let record_count = content.div_ceil(record_size);
        if record_count > MAX_RECORDS_PER_MESSAGE {
            return None;
        }
        let wire_len = content.checked_add(record_count.checked_mul(RECORD_OVERHEAD)?)?;
        Some(MessageLayout {
            payload_len: u32::try_from(payload_len).ok()?,
            record_size: record_size as u16,
            record_count: record_count as u32,
            wire_len: u32::try_from(wire_len).ok()?,
        })
    }

    /// Recovers the layout from the plaintext header fields of a DATA packet.
    /// `None` if no message has that wire length with that record size.
    pub fn from_wire(wire_len: u32, record_size: u16) -> Option<MessageLayout> {
        let record_size = usize::from(record_size);
        if !(MIN_RECORD_SIZE..=MAX_PLAINTEXT_LEN).contains(&record_size) {
            return None;
        }
        let wire = wire_len as usize;
        let full = record_size + RECORD_OVERHEAD;
        let record_count = wire.div_ceil(full);
        let content = wire.checked_sub(record_count * RECORD_OVERHEAD)?;
        let payload_len = content.checked_sub(PROLOGUE_LEN)?;
        let layout = Self::for_payload(payload_len, record_size)?;
        // Reject lengths that no sender would produce (e.g. a last record with no
        // content), so that the layout is a bijection with (payload, record size).
        (layout.wire_len == wire_len).then_some(layout)
    }

    /// Largest payload a message with this record size can carry.
    pub fn max_payload_len(record_size: usize) -> usize {
        let by_records =
            MAX_RECORDS_PER_MESSAGE * record_size.min(MAX_PLAINTEXT_LEN) - PROLOGUE_LEN;
        let by_wire = u32::MAX as usize - MAX_RECORDS_PER_MESSAGE * RECORD_OVERHEAD - PROLOGUE_LEN;
        by_records.min(by_wire)
    }

    /// Application bytes in the message.
    pub fn payload_len(&self) -> usize {
        self.payload_len as usize
    }
    /// Content bytes per record, except the last.
    pub fn record_size(&self) -> u16 {
        self.record_size
    }
    /// Number of records (at least 1).
    pub fn record_count(&self) -> usize {
        self.record_count as usize
    }
    /// Length of the whole wire image.
    pub fn wire_len(&self) -> u32 {
        self.wire_len
    }

    /// Content bytes of record `index` (including the prologue for record 0); zero
    /// for an index past the last record.
    pub fn content_len(&self, index: usize) -> usize {
        let content_total = self.payload_len as usize + PROLOGUE_LEN;
        let before = index.saturating_mul(usize::from(self.record_size));
        content_total.saturating_sub(before).min(usize::from(self.record_size))
    }

    /// Wire-image byte range of record `index`.
    pub fn record_range(&self, index: usize) -> Range<usize> {
        let start = index * (usize::from(self.record_size) + RECORD_OVERHEAD);
        start..start + self.content_len(index) + RECORD_OVERHEAD
    }

    /// Index of the record that contains wire byte `offset` (< wire_len).
    pub fn record_containing(&self, offset: usize) -> usize {
        (offset / (usize::from(self.record_size) + RECORD_OVERHEAD)).min(self.record_count() - 1)
    }

    /// Byte range of record `index`'s content within the message's contents (the
    /// prologue followed by the payload: `payload_len() + PROLOGUE_LEN` bytes), where
    /// a receiver that opens records out of place puts them.
    pub fn content_range(&self, index: usize) -> Range<usize> {
        let start = index * usize::from(self.record_size);
        start..start + self.content_len(index)
    }

    /// Payload byte range carried by record `index`, as offsets into the payload.
    pub fn payload_range(&self, index: usize) -> Range<usize> {
        let rs = usize::from(self.record_size);
        let content_start = index * rs;
        let start = content_start.saturating_sub(PROLOGUE_LEN);
        let end = content_start + self.content_len(index) - PROLOGUE_LEN;
        start..end
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_message_is_one_record_with_only_the_prologue() {
        let layout = MessageLayout::for_payload(0, 16384).unwrap();
        assert_eq!(layout.record_count(), 1);
        assert_eq!(layout.wire_len(), 8 + 22);
        assert_eq!(layout.record_range(0), 0..30);
        assert_eq!(layout.payload_range(0), 0..0);
    }

    #[test]
    fn records_are_full_except_the_last() {
        // 40 payload + 8 prologue = 48 content bytes in records of 16: 3 full records.
        let layout = MessageLayout::for_payload(40, 16).unwrap();
        assert_eq!(layout.record_count(), 3);
        assert_eq!(layout.wire_len() as usize, 48 + 3 * 22);
        assert_eq!(layout.record_range(1), 38..76);
        assert_eq!(layout.payload_range(0), 0..8);
        assert_eq!(layout.payload_range(1), 8..24);
        assert_eq!(layout.payload_range(2), 24..40);
        let layout = MessageLayout::for_payload(41, 16).unwrap();
        assert_eq!(layout.record_count(), 4);
        assert_eq!(layout.content_len(3), 1);
    }

    #[test]
    fn limits_are_enforced() {
        assert!(MessageLayout::for_payload(1, 0).is_none());
        assert!(MessageLayout::for_payload(0, MIN_RECORD_SIZE - 1).is_none());
        assert!(MessageLayout::for_payload(0, MIN_RECORD_SIZE).is_some());
        assert!(MessageLayout::from_wire(30, 7).is_none());
        assert!(MessageLayout::for_payload(1, 16385).is_none());
        let max = MessageLayout::max_payload_len(16384);
        assert!(MessageLayout::for_payload(max, 16384).is_some());
        assert!(MessageLayout::for_payload(max + 1, 16384).is_none());
        let max_small = MessageLayout::max_payload_len(100);
        assert_eq!(max_small, 65536 * 100 - 8);
        assert!(MessageLayout::for_payload(max_small + 1, 100).is_none());
    }

    #[test]
    fn wire_lengths_no_sender_produces_are_rejected() {
        // Too short for even the prologue.
        for w in 0..30 {
            assert!(MessageLayout::from_wire(w, 16384).is_none(), "{w}");
        }
        // A "last record" of 0 content bytes (22 bytes after two full records).
        assert!(MessageLayout::from_wire(2 * (16 + 22) + 22, 16).is_none());
    }

    proptest! {
        #[test]
        fn from_wire_inverts_for_payload(payload in 0usize..3_000_000, rs in 1usize..=16384) {
            if let Some(layout) = MessageLayout::for_payload(payload, rs) {
                prop_assert_eq!(MessageLayout::from_wire(layout.wire_len(), rs as u16), Some(layout));
                // Records tile the wire image and the payload exactly.
                let mut wire_end = 0;
                let mut payload_end = 0;
                for i in 0..layout.record_count() {
                    let r = layout.record_range(i);
                    prop_assert_eq!(r.start, wire_end);
                    prop_assert_eq!(layout.record_containing(r.start), i);
                    prop_assert_eq!(layout.record_containing(r.end - 1), i);
                    wire_end = r.end;
                    let p = layout.payload_range(i);
                    prop_assert_eq!(p.start, payload_end);
                    payload_end = p.end;
                }
                prop_assert_eq!(wire_end, layout.wire_len() as usize);
                prop_assert_eq!(payload_end, payload);
            }
        }

        #[test]
        fn from_wire_never_panics(w in any::<u32>(), rs in any::<u16>()) {
            let _ = MessageLayout::from_wire(w, rs);
        }
    }
}
