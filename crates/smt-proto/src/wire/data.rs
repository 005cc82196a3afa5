//! DATA: a contiguous range of one message's wire image.
//!
//! Body after the common header (16 bytes, then payload):
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +---------------------------------------------------------------+
//! |                     Message Length (32)                       |
//! +---------------------------------------------------------------+
//! |                         Offset (32)                           |
//! +---------------------------------------------------------------+
//! |                      Unscheduled (32)                         |
//! +-------------------------------+---------------+---------------+
//! |       Record Size (16)        |   Priority    |  Reserved (0) |
//! +-------------------------------+---------------+---------------+
//! |                     Payload (wire image bytes) ...
//! ```
//!
//! * Message Length: bytes in the message's whole wire image (all records).
//! * Offset: where this packet's payload starts in the wire image.
//! * Unscheduled: how many bytes from offset 0 the sender sends without a grant.
//! * Record Size: plaintext bytes in every record of the message except the last
//!   (8..=16384; record 0 must hold the 8-byte prologue); fixes where every record starts, so that any record can be opened as
//!   soon as its bytes have arrived.
//! * Priority: the priority the sender used (from the latest GRANT or RESEND), for traces.
//!
//! All of these are plaintext and attacker-controlled; `docs/PROTOCOL.md` section
//! "Security" explains why forging them cannot deliver a wrong message.

use core::fmt;

use super::{read_u16, read_u32, Result, WireError};
use crate::record::{MAX_PLAINTEXT_LEN, MIN_RECORD_SIZE};

/// Length of the fixed DATA body in bytes.
pub(super) const BODY_LEN: usize = 16;

pub(crate) mod field {
    use core::ops::{Range, RangeFrom};
    pub(crate) const MESSAGE_LENGTH: Range<usize> = 0..4;
    pub(crate) const OFFSET: Range<usize> = 4..8;
    pub(crate) const UNSCHEDULED: Range<usize> = 8..12;
    pub(crate) const RECORD_SIZE: Range<usize> = 12..14;
    pub(crate) const PRIORITY: usize = 14;
    pub(crate) const RESERVED: usize = 15;
    pub(crate) const PAYLOAD: RangeFrom<usize> = 16..;
}

/// A view of a DATA body (the bytes after the common header).
#[derive(Debug, Clone)]
pub struct DataPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> DataPacket<T> {
    /// Wraps a body buffer without checking its length (see the no-panic contract).
    pub const fn new_unchecked(buffer: T) -> Self {
        DataPacket { buffer }
    }
    /// Wraps a body buffer after checking it holds the 16-byte fixed DATA body.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }
    /// Checks that the buffer holds the fixed body; the payload may be empty here.
    pub fn check_len(&self) -> Result<()> {
        let actual = self.buffer.as_ref().len();
        if actual < BODY_LEN {
            return Err(WireError::Truncated { needed: BODY_LEN, actual });
        }
        Ok(())
    }
    /// Message Length: bytes in the message's whole wire image (body 0-3).
    pub fn message_length(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::MESSAGE_LENGTH])
    }
    /// Offset: position of the payload's first byte in the wire image (body 4-7).
    pub fn offset(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::OFFSET])
    }
    /// Unscheduled: bytes from offset 0 the sender sends without a grant (body 8-11).
    pub fn unscheduled(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::UNSCHEDULED])
    }
    /// Record Size: content bytes per record except the last (body 12-13), as sent.
    pub fn record_size(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::RECORD_SIZE])
    }
    /// Priority echoed from the latest GRANT or RESEND (body 14); informational.
    pub fn priority(&self) -> u8 {
        self.buffer.as_ref()[field::PRIORITY]
    }
    /// The reserved byte (body 15); a valid packet has 0 here.
    pub fn reserved(&self) -> u8 {
        self.buffer.as_ref()[field::RESERVED]
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> DataPacket<&'a T> {
    /// The wire-image bytes this packet carries, borrowed for the buffer's lifetime.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> DataPacket<T> {
    /// Writes the Message Length field.
    pub fn set_message_length(&mut self, v: u32) {
        self.buffer.as_mut()[field::MESSAGE_LENGTH].copy_from_slice(&v.to_be_bytes());
    }
    /// Writes the Offset field.
    pub fn set_offset(&mut self, v: u32) {
        self.buffer.as_mut()[field::OFFSET].copy_from_slice(&v.to_be_bytes());
    }
    /// Writes the Unscheduled field.
    pub fn set_unscheduled(&mut self, v: u32) {
        self.buffer.as_mut()[field::UNSCHEDULED].copy_from_slice(&v.to_be_bytes());
    }
    /// Writes the Record Size field.
    pub fn set_record_size(&mut self, v: u16) {
        self.buffer.as_mut()[field::RECORD_SIZE].copy_from_slice(&v.to_be_bytes());
    }
    /// Writes the Priority byte.
    pub fn set_priority(&mut self, v: u8) {
        self.buffer.as_mut()[field::PRIORITY] = v;
    }
    /// Writes the reserved byte (0 in every valid packet).
    pub fn set_reserved(&mut self, v: u8) {
        self.buffer.as_mut()[field::RESERVED] = v;
    }
    /// Everything after the fixed body, writable: where the wire-image bytes go.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

/// A parsed DATA body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataRepr<'a> {
    /// Bytes in the message's whole wire image, records included (PROTOCOL.md 4.1).
    pub message_length: u32,
    /// Position of `payload`'s first byte in the wire image.
    pub offset: u32,
    /// Bytes from offset 0 sent without a grant; the receiver's initial grant.
    /// At most `message_length` and the same in every packet of the message.
    pub unscheduled: u32,
    /// Content bytes in every record but the last, `8..=16384`; with
    /// `message_length` it fixes the message layout (PROTOCOL.md 6.3).
    pub record_size: u16,
    /// Priority of the latest GRANT or RESEND the sender received (0 before any);
    /// informational.
    pub priority: u8,
    /// The wire-image bytes `[offset, offset + payload.len())`; never empty.
    pub payload: &'a [u8],
}

impl<'a> DataRepr<'a> {
    /// Parses a DATA body, checking that the payload lies inside the message and
    /// that the record size is one TLS 1.3 allows.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &DataPacket<&'a T>) -> Result<DataRepr<'a>> {
        packet.check_len()?;
        if packet.reserved() != 0 {
            return Err(WireError::ReservedNotZero);
        }
        let record_size = packet.record_size();
        if !(MIN_RECORD_SIZE..=MAX_PLAINTEXT_LEN).contains(&usize::from(record_size)) {
            return Err(WireError::InvalidField {
                field: "record size",
                value: record_size.into(),
            });
        }
        let payload = packet.payload();
        if payload.is_empty() {
            return Err(WireError::InvalidField { field: "payload length", value: 0 });
        }
        let end = u64::from(packet.offset()) + payload.len() as u64;
        if end > u64::from(packet.message_length()) {
            return Err(WireError::InvalidField { field: "offset + payload length", value: end });
        }
        if packet.unscheduled() > packet.message_length() {
            return Err(WireError::InvalidField {
                field: "unscheduled",
                value: packet.unscheduled().into(),
            });
        }
        Ok(DataRepr {
            message_length: packet.message_length(),
            offset: packet.offset(),
            unscheduled: packet.unscheduled(),
            record_size,
            priority: packet.priority(),
            payload,
        })
    }

    /// Bytes needed to emit the body: 16 plus the payload length.
    pub const fn buffer_len(&self) -> usize {
        BODY_LEN + self.payload.len()
    }

    /// Writes the body (reserved byte 0) and payload; panics if `packet`'s buffer is
    /// shorter than [`buffer_len`](Self::buffer_len).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut DataPacket<T>) {
        packet.set_message_length(self.message_length);
        packet.set_offset(self.offset);
        packet.set_unscheduled(self.unscheduled);
        packet.set_record_size(self.record_size);
        packet.set_priority(self.priority);
        packet.set_reserved(0);
        packet.payload_mut()[..self.payload.len()].copy_from_slice(self.payload);
    }
}

impl fmt::Display for DataRepr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "len={} off={} bytes={} unsched={} rec={} prio={}",
            self.message_length,
            self.offset,
            self.payload.len(),
            self.unscheduled,
            self.record_size,
            self.priority
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: [u8; 19] = [
        0x00, 0x00, 0x10, 0x00, // message length 4096
        0x00, 0x00, 0x05, 0x96, // offset 1430
        0x00, 0x00, 0x0b, 0xb8, // unscheduled 3000
        0x40, 0x00, // record size 16384
        0x03, 0x00, // priority 3, reserved
        0xaa, 0xbb, 0xcc, // payload
    ];

    fn fixture_repr() -> DataRepr<'static> {
        DataRepr {
            message_length: 4096,
            offset: 1430,
            unscheduled: 3000,
            record_size: 16384,
            priority: 3,
            payload: &[0xaa, 0xbb, 0xcc],
        }
    }

    #[test]
    fn parses_fixture_bytes() {
        let packet = DataPacket::new_checked(&FIXTURE[..]).unwrap();
        assert_eq!(DataRepr::parse(&packet).unwrap(), fixture_repr());
    }

    #[test]
    fn emits_fixture_bytes() {
        let repr = fixture_repr();
        let mut buf = vec![0xffu8; repr.buffer_len()];
        repr.emit(&mut DataPacket::new_unchecked(&mut buf[..]));
        assert_eq!(buf, FIXTURE);
    }

    #[test]
    fn rejects_payload_beyond_message_length() {
        let mut bytes = FIXTURE;
        bytes[field::OFFSET].copy_from_slice(&4094u32.to_be_bytes());
        let packet = DataPacket::new_checked(&bytes[..]).unwrap();
        assert!(matches!(DataRepr::parse(&packet), Err(WireError::InvalidField { .. })));
    }

    #[test]
    fn rejects_offset_overflow_without_wrapping() {
        let mut bytes = FIXTURE;
        bytes[field::OFFSET].copy_from_slice(&u32::MAX.to_be_bytes());
        bytes[field::MESSAGE_LENGTH].copy_from_slice(&u32::MAX.to_be_bytes());
        let packet = DataPacket::new_checked(&bytes[..]).unwrap();
        assert!(matches!(DataRepr::parse(&packet), Err(WireError::InvalidField { .. })));
    }

    #[test]
    fn rejects_invalid_record_sizes_and_empty_payload() {
        for size in [0u16, 1, 7, 16385, u16::MAX] {
            let mut bytes = FIXTURE;
            bytes[field::RECORD_SIZE].copy_from_slice(&size.to_be_bytes());
            let packet = DataPacket::new_checked(&bytes[..]).unwrap();
            assert!(DataRepr::parse(&packet).is_err(), "record size {size}");
        }
        let packet = DataPacket::new_checked(&FIXTURE[..BODY_LEN]).unwrap();
        assert!(DataRepr::parse(&packet).is_err());
    }

    #[test]
    fn rejects_unscheduled_beyond_message_and_reserved() {
        let mut bytes = FIXTURE;
        bytes[field::UNSCHEDULED].copy_from_slice(&4097u32.to_be_bytes());
        assert!(DataRepr::parse(&DataPacket::new_checked(&bytes[..]).unwrap()).is_err());
        let mut bytes = FIXTURE;
        bytes[field::RESERVED] = 1;
        assert_eq!(
            DataRepr::parse(&DataPacket::new_checked(&bytes[..]).unwrap()),
            Err(WireError::ReservedNotZero)
        );
    }

    #[test]
    fn short_bodies_are_truncated_errors() {
        for len in 0..BODY_LEN {
            assert!(matches!(
                DataPacket::new_checked(&FIXTURE[..len]),
                Err(WireError::Truncated { .. })
            ));
        }
    }
}
