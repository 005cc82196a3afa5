//! Sealing a whole message into records and opening it again.

use super::{
    record_sequence, MessageLayout, RecordError, RecordKey, APPLICATION_DATA, PROLOGUE_LEN,
    RECORD_HEADER_LEN, TAG_LEN,
};
use crate::wire::MessageId;

/// Why a message could not be sealed or opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The payload is too large for the record size (or the record size is invalid).
    #[error("message of {len} bytes cannot be framed with {record_size}-byte records")]
    TooLarge {
        /// Payload length in bytes.
        len: usize,
        /// Requested content bytes per record.
        record_size: usize,
    },
    /// The plaintext header's length and record size describe no valid message.
    #[error("message length {wire_len} is impossible with record size {record_size}")]
    InvalidLayout {
        /// Wire-image length in bytes (`u32::MAX` if the buffer did not fit in 32 bits).
        wire_len: u32,
        /// Content bytes per record, as the plaintext header claims.
        record_size: u16,
    },
    /// A record failed to open.
    #[error("record {index}: {error}")]
    Record {
        /// Index of the record within the message (0-based).
        index: usize,
        /// Why the record layer refused it.
        error: RecordError,
    },
    /// A record opened but carries a content type other than application data.
    #[error("record {index} has content type {content_type}, expected 23")]
    UnexpectedContentType {
        /// Index of the record within the message (0-based).
        index: usize,
        /// The inner content type the record carried.
        content_type: u8,
    },
    /// A record opened but its content length differs from what the layout requires
    /// (padding, or a layout forged in the plaintext header).
    #[error("record {index} has {actual} content bytes, the layout requires {expected}")]
    ContentLength {
        /// Index of the record within the message (0-based).
        index: usize,
        /// Content bytes the layout requires for this record.
        expected: usize,
        /// Content bytes the record carried, content type and padding removed.
        actual: usize,
    },
    /// The authenticated prologue contradicts the plaintext header: the message
    /// length or record size was forged.
    #[error("authenticated prologue says {payload_len} bytes in {record_size}-byte records, header disagrees")]
    PrologueMismatch {
        /// Payload length the authenticated prologue states, in bytes.
        payload_len: u32,
        /// Record size the authenticated prologue states.
        record_size: u16,
    },
}

/// Seals `payload` as message `message_id` into a new wire image.
pub fn seal_message(
    key: &RecordKey,
    message_id: MessageId,
    payload: &[u8],
    record_size: usize,
) -> Result<Vec<u8>, MessageError> {
    let layout = MessageLayout::for_payload(payload.len(), record_size)
        .ok_or(MessageError::TooLarge { len: payload.len(), record_size })?;
    // Built record by record so each byte is written once (no zero-fill of the whole
    // image first), then sealed in place.
    let mut wire = Vec::with_capacity(layout.wire_len() as usize);
    for index in 0..layout.record_count() {
        let start = wire.len();
        wire.extend_from_slice(&[0u8; RECORD_HEADER_LEN]);
        if index == 0 {
            wire.extend_from_slice(&prologue(&layout));
        }
        wire.extend_from_slice(&payload[layout.payload_range(index)]);
        wire.extend_from_slice(&[0u8; 1 + TAG_LEN]);
        // The layout keeps index below 2^16.
        let sequence = record_sequence(message_id, index as u16);
        key.seal_in_place(
            sequence,
            &mut wire[start..],
            layout.content_len(index),
            APPLICATION_DATA,
            0,
        )
        .map_err(|error| MessageError::Record { index, error })?;
    }
    debug_assert_eq!(wire.len(), layout.wire_len() as usize);
    Ok(wire)
}

/// Seals `payload` into `wire`, which must be exactly `layout.wire_len()` bytes and
/// `layout` must be the layout of `payload`.
pub fn seal_message_into(
    key: &RecordKey,
    message_id: MessageId,
    payload: &[u8],
    layout: &MessageLayout,
    wire: &mut [u8],
) -> Result<(), MessageError> {
    assert_eq!(payload.len(), layout.payload_len(), "layout is for another payload");
    assert_eq!(wire.len(), layout.wire_len() as usize, "wire buffer has the wrong length");
    seal_records_into(key, message_id, payload, layout, 0..layout.record_count(), wire)
}

/// Seals records `records` of a message into `wire`, which holds exactly those
/// records' bytes of the wire image (from the start of the first to the end of the
/// last), so that parts of one message can be sealed on different threads. Panics if
/// the range or buffer does not fit the layout (a caller bug, not peer input).
pub fn seal_records_into(
    key: &RecordKey,
    message_id: MessageId,
    payload: &[u8],
    layout: &MessageLayout,
    records: core::ops::Range<usize>,
    wire: &mut [u8],
) -> Result<(), MessageError> {
    assert_eq!(payload.len(), layout.payload_len(), "layout is for another payload");
    assert!(records.end <= layout.record_count(), "records outside the layout");
    let base = if records.is_empty() { 0 } else { layout.record_range(records.start).start };
    let end = if records.is_empty() { 0 } else { layout.record_range(records.end - 1).end };
    assert_eq!(wire.len(), end - base, "wire part has the wrong length");
    for index in records {
        let range = layout.record_range(index);
        let record = &mut wire[range.start - base..range.end - base];
        let payload_part = &payload[layout.payload_range(index)];
        // The layout keeps index below 2^16.
        let sequence = record_sequence(message_id, index as u16);
        let sealed = if index == 0 {
            // Record 0 starts with the prologue, so its content is not one slice of
            // the payload: laid out first, then sealed in place.
            let content =
                &mut record[RECORD_HEADER_LEN..RECORD_HEADER_LEN + layout.content_len(index)];
            content[..PROLOGUE_LEN].copy_from_slice(&prologue(layout));
            content[PROLOGUE_LEN..].copy_from_slice(payload_part);
            key.seal_in_place(sequence, record, layout.content_len(index), APPLICATION_DATA, 0)
        } else {
            // Every other record is encrypted straight from the payload.
            key.seal_from(sequence, payload_part, APPLICATION_DATA, record)
        };
        sealed.map_err(|error| MessageError::Record { index, error })?;
    }
    Ok(())
}

fn prologue(layout: &MessageLayout) -> [u8; PROLOGUE_LEN] {
    let mut p = [0u8; PROLOGUE_LEN];
    p[..4].copy_from_slice(&(layout.payload_len() as u32).to_be_bytes());
    p[4..6].copy_from_slice(&layout.record_size().to_be_bytes());
    p
}

/// Checks an opened record 0's prologue against the layout from the plaintext header.
pub fn verify_prologue(layout: &MessageLayout, content: &[u8]) -> Result<(), MessageError> {
    let expected = prologue(layout);
    if content.len() < PROLOGUE_LEN || content[..PROLOGUE_LEN] != expected {
        let mut claimed = [0u8; PROLOGUE_LEN];
        let n = content.len().min(PROLOGUE_LEN);
        claimed[..n].copy_from_slice(&content[..n]);
        return Err(MessageError::PrologueMismatch {
            payload_len: u32::from_be_bytes([claimed[0], claimed[1], claimed[2], claimed[3]]),
            record_size: u16::from_be_bytes([claimed[4], claimed[5]]),
        });
    }
    Ok(())
}

/// Opens record `index` of a message in place inside its full wire image `wire`
/// (`layout.wire_len()` bytes), checking content type, length and, for record 0, the
/// prologue. After every record has been opened, [`compact_payload`] extracts the
/// payload. Never panics: an index outside the layout or a buffer of another length
/// is an error.
pub fn open_message_record(
    key: &RecordKey,
    message_id: MessageId,
    layout: &MessageLayout,
    index: usize,
    wire: &mut [u8],
) -> Result<(), MessageError> {
    if index >= layout.record_count() || wire.len() != layout.wire_len() as usize {
        return Err(invalid(layout));
    }
    let Some(record) = wire.get_mut(layout.record_range(index)) else {
        return Err(invalid(layout));
    };
    open_record_slice(key, message_id, layout, index, record)
}

/// Opens record `index` in place, given just that record's bytes (its
/// `layout.record_range(index)` of the wire image), so that records of one message
/// can be opened on different threads. Same checks as [`open_message_record`]; never
/// panics.
pub fn open_record_slice(
    key: &RecordKey,
    message_id: MessageId,
    layout: &MessageLayout,
    index: usize,
    record: &mut [u8],
) -> Result<(), MessageError> {
    if index >= layout.record_count() || record.len() != layout.record_range(index).len() {
        return Err(invalid(layout));
    }
    let Ok(index16) = u16::try_from(index) else {
        return Err(invalid(layout));
    };
    let opened = key
        .open_in_place(record_sequence(message_id, index16), record)
        .map_err(|error| MessageError::Record { index, error })?;
    if opened.content_type != APPLICATION_DATA {
        return Err(MessageError::UnexpectedContentType {
            index,
            content_type: opened.content_type,
        });
    }
    let expected = layout.content_len(index);
    if opened.content.len() != expected {
        return Err(MessageError::ContentLength { index, expected, actual: opened.content.len() });
    }
    if index == 0 {
        verify_prologue(layout, opened.content)?;
    }
    Ok(())
}

/// Opens record `index` out of place: `record` is that record's bytes (its
/// `layout.record_range(index)` of the wire image, left unchanged) and `out` receives
/// its inner plaintext, so it must be `layout.content_len(index) + 1` bytes: the
/// content, then the content type byte. Put `out` at
/// `layout.content_range(index)` of a contents buffer and the payload needs no
/// compaction afterwards (the content type byte lands on the next record's first
/// byte, which opening that record overwrites). Same checks as
/// [`open_message_record`]; never panics: wrong lengths are errors.
pub fn open_record_into(
    key: &RecordKey,
    message_id: MessageId,
    layout: &MessageLayout,
    index: usize,
    record: &[u8],
    out: &mut [u8],
) -> Result<(), MessageError> {
    if index >= layout.record_count()
        || record.len() != layout.record_range(index).len()
        || out.len() != layout.content_len(index) + 1
    {
        return Err(invalid(layout));
    }
    let Ok(index16) = u16::try_from(index) else {
        return Err(invalid(layout));
    };
    let opened = key
        .open_into(record_sequence(message_id, index16), record, out)
        .map_err(|error| MessageError::Record { index, error })?;
    if opened.content_type != APPLICATION_DATA {
        return Err(MessageError::UnexpectedContentType {
            index,
            content_type: opened.content_type,
        });
    }
    let expected = layout.content_len(index);
    if opened.content.len() != expected {
        return Err(MessageError::ContentLength { index, expected, actual: opened.content.len() });
    }
    if index == 0 {
        verify_prologue(layout, opened.content)?;
    }
    Ok(())
}

fn invalid(layout: &MessageLayout) -> MessageError {
    MessageError::InvalidLayout { wire_len: layout.wire_len(), record_size: layout.record_size() }
}

/// Moves the payload bytes of a fully opened wire image to its front and truncates
/// it, returning the payload without another allocation.
pub fn compact_payload(layout: &MessageLayout, mut wire: Vec<u8>) -> Vec<u8> {
    let len = compact_in_place(layout, &mut wire);
    wire.truncate(len);
    wire
}

/// [`compact_payload`] within a borrowed buffer (at least the layout's wire length):
/// moves the payload to the front and returns its length.
pub fn compact_in_place(layout: &MessageLayout, wire: &mut [u8]) -> usize {
    let mut write = 0;
    for index in 0..layout.record_count() {
        let record_start = layout.record_range(index).start;
        let skip = if index == 0 { PROLOGUE_LEN } else { 0 };
        let start = record_start + RECORD_HEADER_LEN + skip;
        let len = layout.content_len(index) - skip;
        wire.copy_within(start..start + len, write);
        write += len;
    }
    write
}

/// Opens a whole wire image received as message `message_id`, where `record_size`
/// is the plaintext header's record size. Returns the payload.
pub fn open_message(
    key: &RecordKey,
    message_id: MessageId,
    mut wire: Vec<u8>,
    record_size: u16,
) -> Result<Vec<u8>, MessageError> {
    let wire_len = u32::try_from(wire.len())
        .map_err(|_| MessageError::InvalidLayout { wire_len: u32::MAX, record_size })?;
    let layout = MessageLayout::from_wire(wire_len, record_size)
        .ok_or(MessageError::InvalidLayout { wire_len, record_size })?;
    for index in 0..layout.record_count() {
        open_message_record(key, message_id, &layout, index, &mut wire)?;
    }
    Ok(compact_payload(&layout, wire))
}
