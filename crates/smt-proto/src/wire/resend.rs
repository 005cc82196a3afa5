//! RESEND: the receiver asks for a byte range of a message's wire image again.
//!
//! Body after the common header (12 bytes):
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +---------------------------------------------------------------+
//! |                         Offset (32)                           |
//! +---------------------------------------------------------------+
//! |                         Length (32)                           |
//! +---------------+-----------------------------------------------+
//! |   Priority    |                 Reserved (0)                  |
//! +---------------+-----------------------------------------------+
//! ```
//!
//! What the receiver of a RESEND does (PROTOCOL.md 4.3; section 7.5 gives the full
//! rules):
//!
//! * it holds the message asked about: the RESEND is also a grant up to
//!   `offset + length` with the given priority, and it retransmits the part of
//!   `[offset, offset + length)` it has transmitted before, as byte-identical DATA
//!   with the RETRANSMIT flag set, ahead of new data;
//! * it is a server whose RPC has delivered its request to the application and has
//!   no response queued yet (the request is *in service*): it answers BUSY, the only
//!   case in which BUSY is sent;
//! * it is a server still receiving that request: it does not answer (its own
//!   RESENDs and GRANTs drive the transfer);
//! * it is a server holding no state for that ID and its replay window (section 7.8)
//!   says the ID already ran, or is too old to tell: it does not answer, so a request
//!   that ran is never solicited again;
//! * otherwise, holding no state for that message ID, it answers RPC_UNKNOWN;
//! * it is a client holding the RPC but no request to send: it does not answer.

use core::fmt;

use super::{read_u32, Result, WireError};

pub(super) const BODY_LEN: usize = 12;

pub(crate) mod field {
    use core::ops::Range;
    pub(crate) const OFFSET: Range<usize> = 0..4;
    pub(crate) const LENGTH: Range<usize> = 4..8;
    pub(crate) const PRIORITY: usize = 8;
    pub(crate) const RESERVED: Range<usize> = 9..12;
}

/// A view of a RESEND body.
#[derive(Debug, Clone)]
pub struct ResendPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ResendPacket<T> {
    /// Wraps a body buffer without checking its length (see the no-panic contract).
    pub const fn new_unchecked(buffer: T) -> Self {
        ResendPacket { buffer }
    }
    /// Wraps a body buffer after checking it holds the 12-byte RESEND body.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }
    /// Checks that the buffer holds at least the 12-byte body (trailing bytes are
    /// rejected by [`PacketRepr::parse`](super::PacketRepr::parse)).
    pub fn check_len(&self) -> Result<()> {
        let actual = self.buffer.as_ref().len();
        if actual < BODY_LEN {
            return Err(WireError::Truncated { needed: BODY_LEN, actual });
        }
        Ok(())
    }
    /// Offset: first wire-image byte asked for (body 0-3).
    pub fn offset(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::OFFSET])
    }
    /// Length: number of wire-image bytes asked for from Offset (body 4-7).
    pub fn length(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::LENGTH])
    }
    /// Priority for the retransmitted and implicitly granted bytes (body 8).
    pub fn priority(&self) -> u8 {
        self.buffer.as_ref()[field::PRIORITY]
    }
    /// Whether reserved bytes 9-11 are all zero, as a valid packet requires.
    pub fn reserved_is_zero(&self) -> bool {
        self.buffer.as_ref()[field::RESERVED].iter().all(|&b| b == 0)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ResendPacket<T> {
    /// Writes the Offset field.
    pub fn set_offset(&mut self, v: u32) {
        self.buffer.as_mut()[field::OFFSET].copy_from_slice(&v.to_be_bytes());
    }
    /// Writes the Length field.
    pub fn set_length(&mut self, v: u32) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&v.to_be_bytes());
    }
    /// Writes the Priority byte.
    pub fn set_priority(&mut self, v: u8) {
        self.buffer.as_mut()[field::PRIORITY] = v;
    }
    /// Zeroes reserved bytes 9-11.
    pub fn clear_reserved(&mut self) {
        self.buffer.as_mut()[field::RESERVED].fill(0);
    }
}

/// A parsed RESEND body. `offset + length` never exceeds `u32::MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResendRepr {
    /// First wire-image byte asked for; a client probe uses 0 (PROTOCOL.md 4.3).
    pub offset: u32,
    /// Bytes asked for, never 0. The sender treats `offset + length` as a grant and
    /// retransmits the part of the range it has sent before.
    pub length: u32,
    /// Priority for the requested bytes (and the implied grant), 0 lowest.
    pub priority: u8,
}

impl ResendRepr {
    /// Parses a RESEND body, rejecting non-zero reserved bytes, a zero length and a
    /// range that overflows 32 bits. Never panics.
    pub fn parse<T: AsRef<[u8]>>(packet: &ResendPacket<T>) -> Result<ResendRepr> {
        packet.check_len()?;
        if !packet.reserved_is_zero() {
            return Err(WireError::ReservedNotZero);
        }
        let (offset, length) = (packet.offset(), packet.length());
        if offset.checked_add(length).is_none() || length == 0 {
            return Err(WireError::InvalidField { field: "resend length", value: length.into() });
        }
        Ok(ResendRepr { offset, length, priority: packet.priority() })
    }
    /// Bytes needed to emit the body (always 12).
    pub const fn buffer_len(&self) -> usize {
        BODY_LEN
    }
    /// Writes the body with zeroed reserved bytes; panics if the buffer is shorter
    /// than 12 bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut ResendPacket<T>) {
        packet.set_offset(self.offset);
        packet.set_length(self.length);
        packet.set_priority(self.priority);
        packet.clear_reserved();
    }
}

impl fmt::Display for ResendRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "off={} len={} prio={}", self.offset, self.length, self.priority)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: [u8; BODY_LEN] =
        [0x00, 0x00, 0x2c, 0xe8, 0x00, 0x00, 0x05, 0xa0, 0x02, 0x00, 0x00, 0x00];

    #[test]
    fn parses_and_emits_fixture_bytes() {
        let repr = ResendRepr { offset: 11_496, length: 1440, priority: 2 };
        assert_eq!(ResendRepr::parse(&ResendPacket::new_checked(&FIXTURE[..]).unwrap()), Ok(repr));
        let mut buf = [0xffu8; BODY_LEN];
        repr.emit(&mut ResendPacket::new_unchecked(&mut buf[..]));
        assert_eq!(buf, FIXTURE);
    }

    #[test]
    fn rejects_overflowing_or_empty_ranges() {
        let mut bytes = FIXTURE;
        bytes[field::OFFSET].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(ResendRepr::parse(&ResendPacket::new_checked(&bytes[..]).unwrap()).is_err());
        let mut bytes = FIXTURE;
        bytes[field::LENGTH].copy_from_slice(&0u32.to_be_bytes());
        assert!(ResendRepr::parse(&ResendPacket::new_checked(&bytes[..]).unwrap()).is_err());
    }

    #[test]
    fn rejects_short_bodies_and_reserved_bits() {
        for len in 0..BODY_LEN {
            assert!(ResendPacket::new_checked(&FIXTURE[..len]).is_err());
        }
        let mut bytes = FIXTURE;
        bytes[10] = 9;
        assert_eq!(
            ResendRepr::parse(&ResendPacket::new_checked(&bytes[..]).unwrap()),
            Err(WireError::ReservedNotZero)
        );
    }
}
