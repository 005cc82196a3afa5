//! Sealing one message on several threads: its records are independent (each has
//! its own sequence number), so a [`PreparedMessage`] can be cut into
//! [`SealPart`]s, each of which seals a run of records into its own slice of the
//! wire image.

use core::ops::Range;

use super::endpoint::{PreparedMessage, SealedMessage};
use super::event::CallError;
use crate::record::{seal_records_into, MessageError, MessageLayout, RecordKey};
use crate::wire::MessageId;

/// Records per [`SealPart`] (about 3-4 us of AES-GCM at 16 KiB records here; finer
/// parts balanced better across two threads than 4 or 8 records in crypto-scaling).
const RECORDS_PER_PART: usize = 2;

/// A run of consecutive records of one message, sealed by [`seal`](SealPart::seal)
/// into its slice of the wire image. `Send`: parts may be sealed on different
/// threads at once.
#[derive(Debug)]
pub struct SealPart<'a> {
    key: &'a RecordKey,
    id: MessageId,
    layout: &'a MessageLayout,
    payload: &'a [u8],
    records: Range<usize>,
    wire: &'a mut [u8],
    result: Result<(), MessageError>,
}

impl SealPart<'_> {
    /// Seals the part's records.
    pub fn seal(&mut self) {
        self.result = seal_records_into(
            self.key,
            self.id,
            self.payload,
            self.layout,
            self.records.clone(),
            self.wire,
        );
    }

    /// Wire bytes this part produces.
    pub fn len(&self) -> usize {
        self.wire.len()
    }

    /// Whether the part is empty (never, for a part of a message).
    pub fn is_empty(&self) -> bool {
        self.wire.is_empty()
    }
}

impl PreparedMessage {
    /// [`seal`](Self::seal), with the records cut into parts that `run` seals, on
    /// whatever threads it likes (every part must be sealed before `run` returns;
    /// a part left unsealed fails the message).
    pub fn seal_with(
        &self,
        payload: &[u8],
        run: impl FnOnce(&mut [SealPart<'_>]),
    ) -> Result<SealedMessage, CallError> {
        let (layout, mut image) = self.layout_and_image(payload)?;
        {
            let key = self.sealing_key();
            let mut parts = Vec::with_capacity(layout.record_count().div_ceil(RECORDS_PER_PART));
            let mut rest: &mut [u8] = &mut image;
            let mut first = 0;
            while first < layout.record_count() {
                let end = (first + RECORDS_PER_PART).min(layout.record_count());
                let bytes = layout.record_range(end - 1).end - layout.record_range(first).start;
                let (wire, tail) = std::mem::take(&mut rest).split_at_mut(bytes);
                rest = tail;
                parts.push(SealPart {
                    key,
                    id: self.id,
                    layout: &layout,
                    payload,
                    records: first..end,
                    wire,
                    // Not sealed until `seal` runs.
                    result: Err(MessageError::InvalidLayout {
                        wire_len: layout.wire_len(),
                        record_size: layout.record_size(),
                    }),
                });
                first = end;
            }
            run(&mut parts);
            if parts.iter().any(|p| p.result.is_err()) {
                return Err(CallError::MessageTooLarge { len: payload.len(), max: self.len() });
            }
        }
        Ok(SealedMessage::from_image(image))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn parts_can_move_to_other_threads() {
        assert_send::<SealPart<'static>>();
    }
}
