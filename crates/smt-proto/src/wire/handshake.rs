//! HANDSHAKE: a chunk of one direction's TLS 1.3 handshake byte stream.
//!
//! Body after the common header (12 bytes, then `length` TLS bytes, then a retry
//! token of `token length` bytes, then padding):
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +---------------------------------------------------------------+
//! |                      Stream Offset (32)                       |
//! +---------------------------------------------------------------+
//! |                     Acknowledged (32)                         |
//! +-------------------------------+-------------------------------+
//! |          Length (16)          |       Token Length (16)       |
//! +-------------------------------+-------------------------------+
//! |                  TLS bytes (Length) ...                       |
//! +---------------------------------------------------------------+
//! |                  Retry token (Token Length) ...               |
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
//! * Token Length and retry token: the token a server's RETRY gave the client
//!   (PROTOCOL.md 4.11, 8.4), echoed in the client's packets from stream offset 0;
//!   0 and absent otherwise.
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
    pub(crate) const TOKEN_LENGTH: Range<usize> = 10..12;
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
    /// Checks the fixed part and that the `length` TLS bytes and the token are present.
    pub fn check_len(&self) -> Result<()> {
        let actual = self.buffer.as_ref().len();
        if actual < FIXED_BODY_LEN {
            return Err(WireError::Truncated { needed: FIXED_BODY_LEN, actual });
        }
        let needed = FIXED_BODY_LEN + usize::from(self.length()) + usize::from(self.token_length());
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
    /// Token Length: bytes of retry token after the TLS bytes (body 10-11).
    pub fn token_length(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::TOKEN_LENGTH])
    }
    /// Bytes of padding after the TLS bytes and the token.
    pub fn padding_len(&self) -> usize {
        self.buffer.as_ref().len()
            - FIXED_BODY_LEN
            - usize::from(self.length())
            - usize::from(self.token_length())
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> HandshakePacket<&'a T> {
    /// The TLS bytes (without padding), borrowed for the buffer's lifetime.
    pub fn data(&self) -> &'a [u8] {
        let len = usize::from(self.length());
        &self.buffer.as_ref()[field::DATA][..len]
    }
    /// The retry token (empty if none), borrowed for the buffer's lifetime.
    pub fn token(&self) -> &'a [u8] {
        let start = usize::from(self.length());
        let len = usize::from(self.token_length());
        &self.buffer.as_ref()[field::DATA][start..start + len]
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
    /// Writes the Token Length field.
    pub fn set_token_length(&mut self, v: u16) {
        self.buffer.as_mut()[field::TOKEN_LENGTH].copy_from_slice(&v.to_be_bytes());
    }
    /// Everything after the fixed body, writable: the TLS bytes, the token, then padding.
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
    /// The retry token echoed by a client (PROTOCOL.md 8.4); empty if none.
    pub token: &'a [u8],
    /// Zero bytes appended after the data when emitting; the count seen when parsing.
    pub padding_len: usize,
}

impl<'a> HandshakeRepr<'a> {
    /// Parses a HANDSHAKE body, rejecting a chunk that ends beyond 2^32 - 1. Never
    /// panics.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &HandshakePacket<&'a T>,
    ) -> Result<HandshakeRepr<'a>> {
        packet.check_len()?;
        let end = u64::from(packet.stream_offset()) + u64::from(packet.length());
        if end > u64::from(u32::MAX) {
            return Err(WireError::InvalidField { field: "stream offset + length", value: end });
        }
        Ok(HandshakeRepr {
            stream_offset: packet.stream_offset(),
            acknowledged: packet.acknowledged(),
            data: packet.data(),
            token: packet.token(),
            padding_len: packet.padding_len(),
        })
    }

    /// Bytes needed to emit the body: 12 plus the data, token and padding lengths.
    pub const fn buffer_len(&self) -> usize {
        FIXED_BODY_LEN + self.data.len() + self.token.len() + self.padding_len
    }

    /// Writes the body. `data` and `token` must each be at most `u16::MAX` bytes long.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut HandshakePacket<T>) {
        // Emitting a chunk or token the length fields cannot describe is a caller bug
        // (the engine cuts chunks to the packet payload size and only echoes tokens of
        // at most MAX_RETRY_TOKEN_LEN bytes), never a reaction to input.
        let len = u16::try_from(self.data.len()).expect("handshake chunk longer than 65535 bytes");
        let token_len =
            u16::try_from(self.token.len()).expect("retry token longer than 65535 bytes");
        packet.set_stream_offset(self.stream_offset);
        packet.set_acknowledged(self.acknowledged);
        packet.set_length(len);
        packet.set_token_length(token_len);
        let out = packet.data_mut();
        let (data, rest) = out.split_at_mut(self.data.len());
        data.copy_from_slice(self.data);
        let (token, rest) = rest.split_at_mut(self.token.len());
        token.copy_from_slice(self.token);
        rest[..self.padding_len].fill(0);
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
        )?;
        if !self.token.is_empty() {
            write!(f, " token={}", self.token.len())?;
        }
        Ok(())
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
            token: &[],
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

    const FIXTURE_WITH_TOKEN: [u8; 21] = [
        0x00, 0x00, 0x00, 0x00, // stream offset 0
        0x00, 0x00, 0x00, 0x00, // acknowledged 0
        0x00, 0x04, 0x00, 0x03, // length 4, token length 3
        0x16, 0x03, 0x01, 0x00, // TLS bytes
        0xa1, 0xb2, 0xc3, // the retry token
        0x00, 0x00, // padding
    ];

    #[test]
    fn parses_and_emits_a_retry_token_between_data_and_padding() {
        let repr = HandshakeRepr {
            stream_offset: 0,
            acknowledged: 0,
            data: &[0x16, 0x03, 0x01, 0x00],
            token: &[0xa1, 0xb2, 0xc3],
            padding_len: 2,
        };
        let packet = HandshakePacket::new_checked(&FIXTURE_WITH_TOKEN[..]).unwrap();
        assert_eq!(HandshakeRepr::parse(&packet), Ok(repr));
        let mut buf = vec![0xffu8; repr.buffer_len()];
        repr.emit(&mut HandshakePacket::new_unchecked(&mut buf[..]));
        assert_eq!(buf, FIXTURE_WITH_TOKEN);
        assert_eq!(repr.to_string(), "stream_off=0 bytes=4 acked=0 pad=2 token=3");
    }

    #[test]
    fn rejects_a_token_length_beyond_the_buffer() {
        assert!(matches!(
            HandshakePacket::new_checked(&FIXTURE_WITH_TOKEN[..18]),
            Err(WireError::Truncated { needed: 19, actual: 18 })
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
