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
//! Offset: the sender may transmit wire-image bytes `[0, offset)`. Grants only grow;
//! a smaller offset than one already received is ignored. Priority: the priority the
//! sender should use for the granted bytes (0 lowest).

use core::fmt;

use super::{read_u32, Result, WireError};

pub const BODY_LEN: usize = 8;

pub(crate) mod field {
    use core::ops::Range;
    pub const OFFSET: Range<usize> = 0..4;
    pub const PRIORITY: usize = 4;
    pub const RESERVED: Range<usize> = 5..8;
}

/// A view of a GRANT body.
#[derive(Debug, Clone)]
pub struct GrantPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> GrantPacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        GrantPacket { buffer }
    }
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }
    pub fn check_len(&self) -> Result<()> {
        let actual = self.buffer.as_ref().len();
        if actual < BODY_LEN {
            return Err(WireError::Truncated { needed: BODY_LEN, actual });
        }
        Ok(())
    }
    pub fn offset(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::OFFSET])
    }
    pub fn priority(&self) -> u8 {
        self.buffer.as_ref()[field::PRIORITY]
    }
    pub fn reserved_is_zero(&self) -> bool {
        self.buffer.as_ref()[field::RESERVED].iter().all(|&b| b == 0)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> GrantPacket<T> {
    pub fn set_offset(&mut self, v: u32) {
        self.buffer.as_mut()[field::OFFSET].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_priority(&mut self, v: u8) {
        self.buffer.as_mut()[field::PRIORITY] = v;
    }
    pub fn clear_reserved(&mut self) {
        self.buffer.as_mut()[field::RESERVED].fill(0);
    }
}

/// A parsed GRANT body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GrantRepr {
    pub offset: u32,
    pub priority: u8,
}

impl GrantRepr {
    pub fn parse<T: AsRef<[u8]>>(packet: &GrantPacket<T>) -> Result<GrantRepr> {
        packet.check_len()?;
        if !packet.reserved_is_zero() {
            return Err(WireError::ReservedNotZero);
        }
        Ok(GrantRepr { offset: packet.offset(), priority: packet.priority() })
    }
    pub const fn buffer_len(&self) -> usize {
        BODY_LEN
    }
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
