//! RETRY: a server under a handshake flood asks the client to prove its address.
//!
//! Body after the common header: the token, and nothing else.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +---------------------------------------------------------------+
//! |                  Retry token (1 to 255 bytes) ...             |
//! +---------------------------------------------------------------+
//! ```
//!
//! * Retry token: opaque to the client. It is the server's proof, to itself, that a
//!   ClientHello came from this address for this session ID a short time ago; the
//!   client echoes it in the HANDSHAKE packets it sends from stream offset 0
//!   (PROTOCOL.md 4.11, 8.4). The server keeps no state for a RETRY it sent.
//!
//! The header's message ID is zero, FROM_INITIATOR is clear, and the session ID is
//! that of the ClientHello answered. A RETRY is never longer than the datagram it
//! answers (at least 1200 bytes), so it cannot amplify a spoofed one.

use core::fmt;

use super::{Result, WireError};

/// Longest retry token a RETRY may carry (and a client echoes).
pub const MAX_RETRY_TOKEN_LEN: usize = 255;

/// A view of a RETRY body: all of it is the token.
#[derive(Debug, Clone)]
pub struct RetryPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> RetryPacket<T> {
    /// Wraps a body buffer without checking it (see the no-panic contract).
    pub const fn new_unchecked(buffer: T) -> Self {
        RetryPacket { buffer }
    }
    /// Wraps a body buffer after checking it holds a token of a valid length.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }
    /// Checks that the token is 1 to [`MAX_RETRY_TOKEN_LEN`] bytes long.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len == 0 {
            return Err(WireError::Truncated { needed: 1, actual: 0 });
        }
        if len > MAX_RETRY_TOKEN_LEN {
            return Err(WireError::InvalidField { field: "retry token length", value: len as u64 });
        }
        Ok(())
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> RetryPacket<&'a T> {
    /// The token, borrowed for the buffer's lifetime.
    pub fn token(&self) -> &'a [u8] {
        self.buffer.as_ref()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> RetryPacket<T> {
    /// The token bytes, writable.
    pub fn token_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }
}

/// A parsed RETRY body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryRepr<'a> {
    /// The token to echo, 1 to [`MAX_RETRY_TOKEN_LEN`] bytes.
    pub token: &'a [u8],
}

impl<'a> RetryRepr<'a> {
    /// Parses a RETRY body. Never panics.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &RetryPacket<&'a T>) -> Result<RetryRepr<'a>> {
        packet.check_len()?;
        Ok(RetryRepr { token: packet.token() })
    }

    /// Bytes needed to emit the body: the token's length.
    pub const fn buffer_len(&self) -> usize {
        self.token.len()
    }

    /// Writes the body into a buffer of exactly [`buffer_len`](Self::buffer_len) bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut RetryPacket<T>) {
        packet.token_mut().copy_from_slice(self.token);
    }
}

impl fmt::Display for RetryRepr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "token={}", self.token.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: [u8; 4] = [0xde, 0xad, 0xbe, 0xef];

    #[test]
    fn parses_and_emits_fixture_bytes() {
        let repr = RetryRepr { token: &FIXTURE };
        let packet = RetryPacket::new_checked(&FIXTURE[..]).unwrap();
        assert_eq!(RetryRepr::parse(&packet), Ok(repr));
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut RetryPacket::new_unchecked(&mut buf[..]));
        assert_eq!(buf, FIXTURE);
        assert_eq!(repr.to_string(), "token=4");
    }

    #[test]
    fn rejects_an_empty_token() {
        assert!(matches!(
            RetryPacket::new_checked(&[][..]),
            Err(WireError::Truncated { needed: 1, actual: 0 })
        ));
    }

    #[test]
    fn rejects_a_token_longer_than_the_maximum() {
        let long = [0u8; MAX_RETRY_TOKEN_LEN + 1];
        assert!(matches!(RetryPacket::new_checked(&long[..]), Err(WireError::InvalidField { .. })));
        assert!(RetryPacket::new_checked(&long[..MAX_RETRY_TOKEN_LEN]).is_ok());
    }
}
