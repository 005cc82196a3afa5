//! Wire formats: typed zero-copy views over SMT packets.
//!
//! Every SMT packet starts with the 24-byte [common header](Header), followed by a
//! body whose layout depends on the packet type (see the sibling modules). The
//! layout is the same whether the packet travels inside a UDP datagram or directly
//! inside an IP packet with SMT's own protocol number, which is why the header
//! carries source and destination ports of its own. `docs/PROTOCOL.md` is the
//! normative description; these modules are its executable form.
//!
//! # The no-panic contract
//!
//! Every view in this module follows the same rules, in the manner of smoltcp:
//!
//! * `new_unchecked(buffer)` wraps a buffer without looking at it. Accessors on an
//!   unchecked view may panic if the buffer is too short, so unchecked views are only
//!   for buffers this crate sized itself (when emitting).
//! * `new_checked(buffer)` validates that the buffer is long enough for every fixed
//!   field *and* for every variable-length field the header announces. After it
//!   returns `Ok`, no accessor of that view panics, whatever the bytes are.
//! * `Repr::parse` only ever takes a checked view and never panics: every byte of a
//!   received packet is treated as attacker-controlled, and every inconsistency is
//!   reported as a [`WireError`].
//! * `Repr::emit` writes into a buffer of at least `Repr::buffer_len()` bytes and may
//!   panic if given less; that is a bug in the caller, never a reaction to peer input.
//!
//! Fuzz targets in `fuzz/` exercise `PacketRepr::parse` with arbitrary bytes.

mod ack;
mod data;
mod grant;
mod handshake;
mod header;
mod packet;
mod resend;
mod retry;

pub use ack::{AckPacket, AckRepr, MAX_ACKS_PER_PACKET};
pub use data::{DataPacket, DataRepr};
pub use grant::{GrantPacket, GrantRepr};
pub use handshake::{HandshakePacket, HandshakeRepr};
pub use header::{Flags, Header, HeaderRepr, HEADER_LEN};
pub use packet::{mark_bundled, split_bundle, Body, PacketRepr};
pub use resend::{ResendPacket, ResendRepr};
pub use retry::{RetryPacket, RetryRepr, MAX_RETRY_TOKEN_LEN};

use core::fmt;

/// The protocol version this implementation speaks, carried in every header.
pub const VERSION: u8 = 1;

/// Default IP protocol number for native mode (RFC 3692 experimental range).
pub const DEFAULT_IP_PROTOCOL: u8 = 253;

/// Why a received packet was rejected by a parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The buffer ends before a field the packet type requires.
    #[error("packet truncated: needs {needed} bytes, has {actual}")]
    Truncated {
        /// Bytes the view needs, counted from the start of the buffer it was given
        /// (the datagram for the header, the body for a body view).
        needed: usize,
        /// Bytes the buffer actually holds.
        actual: usize,
    },
    /// The version byte is not one this implementation speaks.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    /// The type byte names no known packet type.
    #[error("unknown packet type {0:#04x}")]
    UnknownType(u8),
    /// A flag bit this version does not define is set.
    #[error("reserved flag bits set: {0:#04x}")]
    ReservedFlags(u8),
    /// A field that must be zero is not.
    #[error("reserved field is not zero")]
    ReservedNotZero,
    /// The upper 16 bits of a message id field are not zero.
    #[error("message id exceeds 48 bits")]
    MessageIdTooLarge,
    /// A field's value is outside the range this version allows.
    #[error("invalid {field}: {value}")]
    InvalidField {
        /// Human-readable name of the offending field (or sum of fields).
        field: &'static str,
        /// The value found, widened to 64 bits.
        value: u64,
    },
}

/// Short result alias for parsers.
pub type Result<T> = core::result::Result<T, WireError>;

/// A 48-bit message identifier, unique per session and direction.
///
/// The record sequence number of record `i` of message `m` is `m << 16 | i`,
/// which is why identifiers are limited to 48 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MessageId(u64);

impl MessageId {
    /// Identifier 0, which no message has (request IDs start at 1): session-level
    /// packets (CLOSE, SESSION_UNKNOWN, keep-alives) carry it.
    pub const ZERO: MessageId = MessageId(0);

    /// Largest representable identifier, `2^48 - 1`.
    pub const MAX: MessageId = MessageId((1 << 48) - 1);

    /// Wraps `value` if it fits in 48 bits.
    pub const fn new(value: u64) -> Option<MessageId> {
        if value <= Self::MAX.0 {
            Some(MessageId(value))
        } else {
            None
        }
    }

    /// The identifier as an integer (always `< 2^48`).
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The next identifier, or `None` once the 48-bit space is exhausted.
    pub const fn next(self) -> Option<MessageId> {
        MessageId::new(self.0 + 1)
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Packet types. Values 0x10-0x18 follow Homa/Linux's numbering for the
/// packets with the same meaning; 0x20 and up are SMT's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum PacketType {
    /// A contiguous range of a message's wire image (encrypted records).
    Data = 0x10,
    /// Receiver permission to send a message's bytes up to an offset.
    Grant = 0x11,
    /// Receiver request to send a byte range of a message again.
    Resend = 0x12,
    /// "I hold no state for this message": the sender restarts or gives up.
    RpcUnknown = 0x13,
    /// "I know the message but have nothing to send yet": keeps the peer patient.
    Busy = 0x14,
    /// Server asks the client whether it has received a response.
    NeedAck = 0x17,
    /// Client tells the server which responses it has received.
    Ack = 0x18,
    /// A chunk of the in-band TLS 1.3 handshake byte stream.
    Handshake = 0x20,
    /// "I hold no state for this session": the session's peer restarted or closed it.
    SessionUnknown = 0x21,
    /// The sender closes the session; the receiver fails outstanding RPCs and frees it.
    Close = 0x22,
    /// A server under a handshake flood asks the client to echo a token (address validation).
    Retry = 0x23,
}

impl PacketType {
    /// Decodes a type byte.
    pub fn from_u8(value: u8) -> Result<PacketType> {
        Ok(match value {
            0x10 => PacketType::Data,
            0x11 => PacketType::Grant,
            0x12 => PacketType::Resend,
            0x13 => PacketType::RpcUnknown,
            0x14 => PacketType::Busy,
            0x17 => PacketType::NeedAck,
            0x18 => PacketType::Ack,
            0x20 => PacketType::Handshake,
            0x21 => PacketType::SessionUnknown,
            0x22 => PacketType::Close,
            0x23 => PacketType::Retry,
            other => return Err(WireError::UnknownType(other)),
        })
    }

    /// Length of the type's fixed body (after the common header), in bytes.
    pub const fn fixed_body_len(self) -> usize {
        match self {
            PacketType::Data => data::BODY_LEN,
            PacketType::Grant => grant::BODY_LEN,
            PacketType::Resend => resend::BODY_LEN,
            PacketType::Ack => ack::FIXED_BODY_LEN,
            PacketType::Handshake => handshake::FIXED_BODY_LEN,
            PacketType::RpcUnknown
            | PacketType::Busy
            | PacketType::NeedAck
            | PacketType::SessionUnknown
            | PacketType::Close
            | PacketType::Retry => 0,
        }
    }
}

impl fmt::Display for PacketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PacketType::Data => "DATA",
            PacketType::Grant => "GRANT",
            PacketType::Resend => "RESEND",
            PacketType::RpcUnknown => "RPC_UNKNOWN",
            PacketType::Busy => "BUSY",
            PacketType::NeedAck => "NEED_ACK",
            PacketType::Ack => "ACK",
            PacketType::Handshake => "HANDSHAKE",
            PacketType::SessionUnknown => "SESSION_UNKNOWN",
            PacketType::Close => "CLOSE",
            PacketType::Retry => "RETRY",
        })
    }
}

pub(crate) fn read_u16(bytes: &[u8]) -> u16 {
    u16::from_be_bytes([bytes[0], bytes[1]])
}

pub(crate) fn read_u32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

pub(crate) fn read_u64(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(&bytes[..8]);
    u64::from_be_bytes(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_id_rejects_values_above_48_bits() {
        assert_eq!(MessageId::new(1 << 48), None);
        assert_eq!(MessageId::new((1 << 48) - 1), Some(MessageId::MAX));
        assert_eq!(MessageId::MAX.next(), None);
    }

    #[test]
    fn every_defined_type_byte_round_trips() {
        for byte in 0u8..=255 {
            if let Ok(t) = PacketType::from_u8(byte) {
                assert_eq!(t as u8, byte);
            }
        }
        assert_eq!(PacketType::from_u8(0x15), Err(WireError::UnknownType(0x15)));
    }
}
