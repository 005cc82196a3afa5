//! HANDSHAKE: a chunk of one direction's TLS 1.3 handshake byte stream.
//!
//! Body after the common header (12 bytes, then `length` TLS bytes, then padding):
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +---------------------------------------------------------------+
//! |                      Stream Offset (32)                       |
//! +---------------------------------------------------------------+
//! |                     Acknowledged (32)                         |
//! +-------------------------------+-------------------------------+
//! |          Length (16)          |         Reserved (0)          |
//! +-------------------------------+-------------------------------+
//! |                  TLS bytes (Length) ...                       |
//! +---------------------------------------------------------------+
//! |                  Padding (any value, ignored) ...             |
//! ```
//!
//! * Stream Offset: position of the TLS bytes in the sender's handshake stream (the
//!   TLS records rustls writes: ClientHello, ServerHello, encrypted handshake records).
//! * Acknowledged: how many bytes of the *peer's* stream the sender has received
//!   contiguously from offset 0; the peer stops retransmitting those.
//! * Length: how many TLS bytes follow; the rest of the datagram is padding. Every
//!   HANDSHAKE datagram a client sends until its own TLS handshake has completed (the
//!   ClientHello, every retransmission, every pure acknowledgement) is padded so that
//!   the SMT packet is at least 1200 bytes; the client's last flight, produced as its
//!   handshake completes, and anything it sends after that are not padded. A server
//!   may then answer with a bounded multiple of what it received without becoming an
//!   amplifier (PROTOCOL.md 8.4).
//!
//! The header's message ID is zero; the session ID names the session being set up.

use core::fmt;

use super::{read_u16, read_u32, Result, WireError};

pub(super) const FIXED_BODY_LEN: usize = 12;

pub(crate) mod field {
    use core::ops::{Range, RangeFrom};
    pub(crate) const STREAM_OFFSET: Range<usize> = 0..4;
    pub(crate) const ACKNOWLEDGED: Range<usize> = 4..8;
    pub(crate) const LENGTH: Range<usize> = 8..10;
    pub(crate) const RESERVED: Range<usize> = 10..12;
    pub(crate) const DATA: RangeFrom<usize> = 12..;
}

/// A view of a HANDSHAKE body.
#[derive(Debug, Clone)]
pub struct HandshakePacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> HandshakePacket<T> {
    /// Wraps a body buffer without checking its length (see the no-panic contract).
    pub const fn new_unchecked(buffer: T) -> Self {
        HandshakePacket { buffer }
    }
    /// Wraps a body buffer after checking it holds the fixed body and the `length`
    /// TLS bytes it announces.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }
    /// Checks the fixed part and that `length` TLS bytes are present.
    pub fn check_len(&self) -> Result<()> {
        let actual = self.buffer.as_ref().len();
        if actual < FIXED_BODY_LEN {
            return Err(WireError::Truncated { needed: FIXED_BODY_LEN, actual });
        }
        let needed = FIXED_BODY_LEN + usize::from(self.length());
        if actual < needed {
            return Err(WireError::Truncated { needed, actual });
        }
        Ok(())
    }
    /// Stream Offset: position of the TLS bytes in the sender's stream (body 0-3).
    pub fn stream_offset(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::STREAM_OFFSET])
    }
    /// Acknowledged: bytes of the peer's stream received contiguously (body 4-7).
    pub fn acknowledged(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::ACKNOWLEDGED])
    }
    /// Length: TLS bytes that follow the fixed body, 0 for a pure ack (body 8-9).
    pub fn length(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::LENGTH])
    }
    /// The reserved field (body 10-11); a valid packet has 0 here.
    pub fn reserved(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::RESERVED])
    }
    /// Bytes of padding after the TLS bytes.
    pub fn padding_len(&self) -> usize {
        self.buffer.as_ref().len() - FIXED_BODY_LEN - usize::from(self.length())
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> HandshakePacket<&'a T> {
    /// The TLS bytes (without padding), borrowed for the buffer's lifetime.
    pub fn data(&self) -> &'a [u8] {
        let len = usize::from(self.length());
        &self.buffer.as_ref()[field::DATA][..len]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> HandshakePacket<T> {
    /// Writes the Stream Offset field.
    pub fn set_stream_offset(&mut self, v: u32) {
        self.buffer.as_mut()[field::STREAM_OFFSET].copy_from_slice(&v.to_be_bytes());
    }
    /// Writes the Acknowledged field.
    pub fn set_acknowledged(&mut self, v: u32) {
        self.buffer.as_mut()[field::ACKNOWLEDGED].copy_from_slice(&v.to_be_bytes());
    }
    /// Writes the Length field.
    pub fn set_length(&mut self, v: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&v.to_be_bytes());
    }
    /// Writes the reserved field (0 in every valid packet).
    pub fn set_reserved(&mut self, v: u16) {
        self.buffer.as_mut()[field::RESERVED].copy_from_slice(&v.to_be_bytes());
    }
    /// Everything after the fixed body, writable: the TLS bytes, then padding.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA]
    }
}

/// A parsed HANDSHAKE body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeRepr<'a> {
    /// Position of `data` in the sender's handshake stream; `stream_offset +
    /// data.len()` never exceeds `u32::MAX` (PROTOCOL.md 4.8).
    pub stream_offset: u32,
    /// How many bytes of the peer's stream the sender has received contiguously
    /// from offset 0; the peer need not retransmit those.
    pub acknowledged: u32,
    /// The TLS bytes carried, without padding; empty for a pure acknowledgement.
    pub data: &'a [u8],
    /// Zero bytes appended after the data when emitting; the count seen when parsing.
    pub padding_len: usize,
}

impl<'a> HandshakeRepr<'a> {
    /// Parses a HANDSHAKE body, rejecting a non-zero reserved field and a chunk that
    /// ends beyond 2^32 - 1. Never panics.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &HandshakePacket<&'a T>,
    ) -> Result<HandshakeRepr<'a>> {
        packet.check_len()?;
        if packet.reserved() != 0 {
            return Err(WireError::ReservedNotZero);
        }
        let end = u64::from(packet.stream_offset()) + u64::from(packet.length());
        if end > u64::from(u32::MAX) {
            return Err(WireError::InvalidField { field: "stream offset + length", value: end });
        }
        Ok(HandshakeRepr {
            stream_offset: packet.stream_offset(),
            acknowledged: packet.acknowledged(),
            data: packet.data(),
            padding_len: packet.padding_len(),
        })
    }

    /// Bytes needed to emit the body: 12 plus the data and padding lengths.
    pub const fn buffer_len(&self) -> usize {
        FIXED_BODY_LEN + self.data.len() + self.padding_len
    }

    /// Writes the body. `data` must be at most `u16::MAX` bytes long.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut HandshakePacket<T>) {
        // Emitting a chunk the length field cannot describe is a caller bug (the
        // engine cuts chunks to the packet payload size), never a reaction to input.
        let len = u16::try_from(self.data.len()).expect("handshake chunk longer than 65535 bytes");
        packet.set_stream_offset(self.stream_offset);
        packet.set_acknowledged(self.acknowledged);
        packet.set_length(len);
        packet.set_reserved(0);
        let out = packet.data_mut();
        out[..self.data.len()].copy_from_slice(self.data);
        out[self.data.len()..self.data.len() + self.padding_len].fill(0);
    }
}

impl fmt::Display for HandshakeRepr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stream_off={} bytes={} acked={} pad={}",
            self.stream_offset,
            self.data.len(),
            self.acknowledged,
            self.padding_len
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: [u8; 18] = [
        0x00, 0x00, 0x00, 0x00, // stream offset 0
        0x00, 0x00, 0x01, 0x2c, // acknowledged 300
        0x00, 0x04, 0x00, 0x00, // length 4
        0x16, 0x03, 0x01, 0x00, // TLS bytes (start of a ClientHello record)
        0x00, 0x00, // padding
    ];

    #[test]
    fn parses_and_emits_fixture_bytes() {
        let repr = HandshakeRepr {
            stream_offset: 0,
            acknowledged: 300,
            data: &[0x16, 0x03, 0x01, 0x00],
            padding_len: 2,
        };
        let packet = HandshakePacket::new_checked(&FIXTURE[..]).unwrap();
        assert_eq!(HandshakeRepr::parse(&packet), Ok(repr));
        let mut buf = vec![0xffu8; repr.buffer_len()];
        repr.emit(&mut HandshakePacket::new_unchecked(&mut buf[..]));
        assert_eq!(buf, FIXTURE);
    }

    #[test]
    fn rejects_length_beyond_buffer() {
        assert!(matches!(
            HandshakePacket::new_checked(&FIXTURE[..15]),
            Err(WireError::Truncated { needed: 16, actual: 15 })
        ));
    }

    #[test]
    fn rejects_stream_offset_overflow() {
        let mut bytes = FIXTURE;
        bytes[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        let packet = HandshakePacket::new_checked(&bytes[..]).unwrap();
        assert!(HandshakeRepr::parse(&packet).is_err());
    }
}
