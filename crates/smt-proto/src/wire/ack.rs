//! ACK: the client tells the server which responses it has received in full, so the
//! server can free them (Homa's ACK). Sent on its own or in answer to NEED_ACK.
//!
//! Body after the common header (4 bytes, then `count` 8-byte message IDs):
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-------------------------------+-------------------------------+
//! |           Count (16)          |         Reserved (0)          |
//! +-------------------------------+-------------------------------+
//! |        Reserved (0)           |                               |
//! +-------------------------------+     Message ID 1 (48)         +
//! |                                                               |
//! +---------------------------------------------------------------+
//! |                             ...                               |
//! ```
//!
//! `count` is at most [`MAX_ACKS_PER_PACKET`]. The header's own message ID is zero.
//! An ACK frees server state only; it can never cause a delivery, so a forged ACK at
//! worst makes the server forget a response the client still wanted, which the client
//! then sees as a failed RPC (the same power an on-path attacker has by dropping).

use core::fmt;

use super::{read_u16, read_u64, MessageId, Result, WireError};

pub(super) const FIXED_BODY_LEN: usize = 4;
/// Most message IDs one ACK packet may carry.
pub const MAX_ACKS_PER_PACKET: usize = 32;
const ID_LEN: usize = 8;

pub(crate) mod field {
    use core::ops::{Range, RangeFrom};
    pub(crate) const COUNT: Range<usize> = 0..2;
    pub(crate) const RESERVED: Range<usize> = 2..4;
    pub(crate) const IDS: RangeFrom<usize> = 4..;
}

/// A view of an ACK body.
#[derive(Debug, Clone)]
pub struct AckPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> AckPacket<T> {
    /// Wraps a body buffer without checking its length (see the no-panic contract).
    pub const fn new_unchecked(buffer: T) -> Self {
        AckPacket { buffer }
    }
    /// Wraps a body buffer after checking it holds the fixed part and the `count`
    /// IDs it announces.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }
    /// Checks the fixed part and that all `count` IDs are present.
    pub fn check_len(&self) -> Result<()> {
        let actual = self.buffer.as_ref().len();
        if actual < FIXED_BODY_LEN {
            return Err(WireError::Truncated { needed: FIXED_BODY_LEN, actual });
        }
        let needed = FIXED_BODY_LEN + usize::from(self.count()) * ID_LEN;
        if actual < needed {
            return Err(WireError::Truncated { needed, actual });
        }
        Ok(())
    }
    /// Count: how many 8-byte message IDs follow (body 0-1); valid packets have at
    /// most [`MAX_ACKS_PER_PACKET`].
    pub fn count(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::COUNT])
    }
    /// The reserved field (body 2-3); a valid packet has 0 here.
    pub fn reserved(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::RESERVED])
    }
    /// The raw 64-bit ID field at `index` (< count).
    pub fn id_field(&self, index: usize) -> u64 {
        let start = field::IDS.start + index * ID_LEN;
        read_u64(&self.buffer.as_ref()[start..start + ID_LEN])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> AckPacket<T> {
    /// Writes the Count field.
    pub fn set_count(&mut self, v: u16) {
        self.buffer.as_mut()[field::COUNT].copy_from_slice(&v.to_be_bytes());
    }
    /// Writes the reserved field (0 in every valid packet).
    pub fn set_reserved(&mut self, v: u16) {
        self.buffer.as_mut()[field::RESERVED].copy_from_slice(&v.to_be_bytes());
    }
    /// Writes the 8-byte ID field at `index` (upper 16 bits zero); panics if the
    /// buffer has no room for it.
    pub fn set_id(&mut self, index: usize, id: MessageId) {
        let start = field::IDS.start + index * ID_LEN;
        self.buffer.as_mut()[start..start + ID_LEN].copy_from_slice(&id.get().to_be_bytes());
    }
}

/// A parsed ACK body: up to [`MAX_ACKS_PER_PACKET`] message IDs, without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckRepr {
    ids: [MessageId; MAX_ACKS_PER_PACKET],
    len: u8,
}

impl AckRepr {
    /// Builds an ACK from at most [`MAX_ACKS_PER_PACKET`] IDs; returns `None` if more.
    pub fn new(ids: &[MessageId]) -> Option<AckRepr> {
        if ids.len() > MAX_ACKS_PER_PACKET {
            return None;
        }
        let mut repr = AckRepr { ids: [MessageId::default(); MAX_ACKS_PER_PACKET], len: 0 };
        repr.ids[..ids.len()].copy_from_slice(ids);
        repr.len = ids.len() as u8;
        Some(repr)
    }

    /// The acknowledged message IDs.
    pub fn ids(&self) -> &[MessageId] {
        &self.ids[..usize::from(self.len)]
    }

    /// Parses an ACK body, rejecting a non-zero reserved field, more than
    /// [`MAX_ACKS_PER_PACKET`] IDs and IDs above 48 bits. Never panics.
    pub fn parse<T: AsRef<[u8]>>(packet: &AckPacket<T>) -> Result<AckRepr> {
        packet.check_len()?;
        if packet.reserved() != 0 {
            return Err(WireError::ReservedNotZero);
        }
        let count = usize::from(packet.count());
        if count > MAX_ACKS_PER_PACKET {
            return Err(WireError::InvalidField { field: "ack count", value: count as u64 });
        }
        let mut repr = AckRepr { ids: [MessageId::default(); MAX_ACKS_PER_PACKET], len: 0 };
        for index in 0..count {
            repr.ids[index] =
                MessageId::new(packet.id_field(index)).ok_or(WireError::MessageIdTooLarge)?;
        }
        repr.len = count as u8;
        Ok(repr)
    }

    /// Bytes needed to emit the body: 4 plus 8 per ID.
    pub fn buffer_len(&self) -> usize {
        FIXED_BODY_LEN + usize::from(self.len) * ID_LEN
    }

    /// Writes the count, a zero reserved field and the IDs; panics if the buffer is
    /// shorter than [`buffer_len`](Self::buffer_len).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut AckPacket<T>) {
        packet.set_count(u16::from(self.len));
        packet.set_reserved(0);
        for (index, id) in self.ids().iter().enumerate() {
            packet.set_id(index, *id);
        }
    }
}

impl fmt::Display for AckRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("acks=[")?;
        for (i, id) in self.ids().iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{id}")?;
        }
        f.write_str("]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: [u8; 20] = [
        0x00, 0x02, 0x00, 0x00, // count 2
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, // id 7
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, // id 2^32
    ];

    fn ids() -> [MessageId; 2] {
        [MessageId::new(7).unwrap(), MessageId::new(1 << 32).unwrap()]
    }

    #[test]
    fn parses_and_emits_fixture_bytes() {
        let repr = AckRepr::new(&ids()).unwrap();
        assert_eq!(AckRepr::parse(&AckPacket::new_checked(&FIXTURE[..]).unwrap()), Ok(repr));
        let mut buf = vec![0xffu8; repr.buffer_len()];
        repr.emit(&mut AckPacket::new_unchecked(&mut buf[..]));
        assert_eq!(buf, FIXTURE);
    }

    #[test]
    fn rejects_count_beyond_buffer_or_limit() {
        assert!(matches!(
            AckPacket::new_checked(&FIXTURE[..19]),
            Err(WireError::Truncated { needed: 20, actual: 19 })
        ));
        let mut big = vec![0u8; FIXED_BODY_LEN + 33 * ID_LEN];
        big[..2].copy_from_slice(&33u16.to_be_bytes());
        assert!(AckRepr::parse(&AckPacket::new_checked(&big[..]).unwrap()).is_err());
        let mut huge = FIXTURE;
        huge[..2].copy_from_slice(&u16::MAX.to_be_bytes());
        assert!(AckPacket::new_checked(&huge[..]).is_err());
    }

    #[test]
    fn rejects_ids_above_48_bits() {
        let mut bytes = FIXTURE;
        bytes[4] = 1;
        assert_eq!(
            AckRepr::parse(&AckPacket::new_checked(&bytes[..]).unwrap()),
            Err(WireError::MessageIdTooLarge)
        );
    }

    #[test]
    fn new_refuses_too_many_ids() {
        assert!(AckRepr::new(&[MessageId::default(); MAX_ACKS_PER_PACKET + 1]).is_none());
    }
}
