//! GRANT: the receiver allows the sender to transmit a message up to an offset.
//!
//! Body after the common header (8 bytes):
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +---------------------------------------------------------------+
//! |                         Offset (32)                           |
//! +---------------+-----------------------------------------------+
//! |   Priority    |                 Reserved (0)                  |
//! +---------------+-----------------------------------------------+
//! ```
//!
//! Offset: the sender may transmit wire-image bytes `[0, offset)`. Grants only grow:
//! the sender ignores an offset at or below what it already may send, but still takes
//! the new priority (PROTOCOL.md 4.2). Priority: the priority the sender should use
//! for the granted bytes (0 lowest).

use core::fmt;

use super::{read_u32, Result, WireError};

pub(super) const BODY_LEN: usize = 8;

pub(crate) mod field {
    use core::ops::Range;
    pub(crate) const OFFSET: Range<usize> = 0..4;
    pub(crate) const PRIORITY: usize = 4;
    pub(crate) const RESERVED: Range<usize> = 5..8;
}

/// A view of a GRANT body.
#[derive(Debug, Clone)]
pub struct GrantPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> GrantPacket<T> {
    /// Wraps a body buffer without checking its length (see the no-panic contract).
    pub const fn new_unchecked(buffer: T) -> Self {
        GrantPacket { buffer }
    }
    /// Wraps a body buffer after checking it holds the 8-byte GRANT body.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }
    /// Checks that the buffer holds at least the 8-byte body (trailing bytes are
    /// rejected by [`PacketRepr::parse`](super::PacketRepr::parse)).
    pub fn check_len(&self) -> Result<()> {
        let actual = self.buffer.as_ref().len();
        if actual < BODY_LEN {
            return Err(WireError::Truncated { needed: BODY_LEN, actual });
        }
        Ok(())
    }
    /// Offset: the sender may transmit wire-image bytes `[0, offset)` (body 0-3).
    pub fn offset(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::OFFSET])
    }
    /// Priority for the granted bytes, 0 lowest (body 4).
    pub fn priority(&self) -> u8 {
        self.buffer.as_ref()[field::PRIORITY]
    }
    /// Whether reserved bytes 5-7 are all zero, as a valid packet requires.
    pub fn reserved_is_zero(&self) -> bool {
        self.buffer.as_ref()[field::RESERVED].iter().all(|&b| b == 0)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> GrantPacket<T> {
    /// Writes the Offset field.
    pub fn set_offset(&mut self, v: u32) {
        self.buffer.as_mut()[field::OFFSET].copy_from_slice(&v.to_be_bytes());
    }
    /// Writes the Priority byte.
    pub fn set_priority(&mut self, v: u8) {
        self.buffer.as_mut()[field::PRIORITY] = v;
    }
    /// Zeroes reserved bytes 5-7.
    pub fn clear_reserved(&mut self) {
        self.buffer.as_mut()[field::RESERVED].fill(0);
    }
}

/// A parsed GRANT body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GrantRepr {
    /// The sender may transmit wire-image bytes `[0, offset)`. Any value is valid on
    /// the wire: the sender clips it to the message length and ignores values at or
    /// below what it may already send, still taking the new priority (PROTOCOL.md
    /// 4.2).
    pub offset: u32,
    /// Priority for the granted bytes, 0 lowest; the sender echoes it in DATA.
    pub priority: u8,
}

impl GrantRepr {
    /// Parses a GRANT body, rejecting non-zero reserved bytes. Never panics.
    pub fn parse<T: AsRef<[u8]>>(packet: &GrantPacket<T>) -> Result<GrantRepr> {
        packet.check_len()?;
        if !packet.reserved_is_zero() {
            return Err(WireError::ReservedNotZero);
        }
        Ok(GrantRepr { offset: packet.offset(), priority: packet.priority() })
    }
    /// Bytes needed to emit the body (always 8).
    pub const fn buffer_len(&self) -> usize {
        BODY_LEN
    }
    /// Writes the body with zeroed reserved bytes; panics if the buffer is shorter
    /// than 8 bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut GrantPacket<T>) {
        packet.set_offset(self.offset);
        packet.set_priority(self.priority);
        packet.clear_reserved();
    }
}

impl fmt::Display for GrantRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "granted={} prio={}", self.offset, self.priority)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: [u8; BODY_LEN] = [0x00, 0x01, 0x86, 0xa0, 0x07, 0x00, 0x00, 0x00];

    #[test]
    fn parses_and_emits_fixture_bytes() {
        let repr = GrantRepr { offset: 100_000, priority: 7 };
        assert_eq!(GrantRepr::parse(&GrantPacket::new_checked(&FIXTURE[..]).unwrap()), Ok(repr));
        let mut buf = [0xffu8; BODY_LEN];
        repr.emit(&mut GrantPacket::new_unchecked(&mut buf[..]));
        assert_eq!(buf, FIXTURE);
    }

    #[test]
    fn rejects_short_bodies_and_reserved_bits() {
        for len in 0..BODY_LEN {
            assert!(GrantPacket::new_checked(&FIXTURE[..len]).is_err());
        }
        let mut bytes = FIXTURE;
        bytes[7] = 1;
        assert_eq!(
            GrantRepr::parse(&GrantPacket::new_checked(&bytes[..]).unwrap()),
            Err(WireError::ReservedNotZero)
        );
    }
}
