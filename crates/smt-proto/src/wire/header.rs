//! The 24-byte common header that starts every SMT packet.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-------------------------------+-------------------------------+
//! |          Source Port          |       Destination Port        |
//! +---------------+---------------+---------------+---------------+
//! |    Version    |     Type      |     Flags     |  Reserved (0) |
//! +---------------+---------------+---------------+---------------+
//! |                                                               |
//! +                       Session ID (64)                         +
//! |                                                               |
//! +-------------------------------+-------------------------------+
//! |   Bundle Length (16) or 0     |                               |
//! +-------------------------------+                               +
//! |                       Message ID (48)                         |
//! +---------------------------------------------------------------+
//! ```
//!
//! A datagram may carry several packets back to back (a *bundle*): every packet but
//! the last sets the BUNDLED flag and gives its own length (header included) in
//! Bundle Length; the last packet, like a packet alone, clears the flag, has zero
//! there, and runs to the end of the datagram. [`split_bundle`](super::split_bundle)
//! cuts a datagram into its packets; parsing a packet strips the flag.
//!
//! All integers are big-endian. Ports make the header usable directly over IP (native
//! IP mode, PROTOCOL.md sections 2 and 3), where they are the only ports there are and
//! a receiver drops a packet whose destination port is not its own. In UDP mode a
//! sender writes its own UDP port as the source port and the UDP port it sends to as
//! the destination port, but there the header ports are informational: receivers
//! neither drop nor demultiplex on them, since the UDP socket has already chosen the
//! endpoint and NAT, a port mapping or a load balancer may have rewritten the UDP ports
//! on the way.
//!
//! The session ID is chosen at random by the session's initiator (client) and names the
//! session together with the peer's address and the `FROM_INITIATOR` flag. The message
//! ID is 48 bits because it forms the upper bits of the TLS record sequence number.

use core::fmt;

use super::{read_u16, read_u64, MessageId, PacketType, Result, WireError, VERSION};

/// Length of the common header in bytes.
pub const HEADER_LEN: usize = 24;

/// Byte ranges of the common header's fields.
pub(crate) mod field {
    use core::ops::Range;
    pub(crate) const SRC_PORT: Range<usize> = 0..2;
    pub(crate) const DST_PORT: Range<usize> = 2..4;
    pub(crate) const VERSION: usize = 4;
    pub(crate) const TYPE: usize = 5;
    pub(crate) const FLAGS: usize = 6;
    pub(crate) const RESERVED: usize = 7;
    pub(crate) const SESSION_ID: Range<usize> = 8..16;
    /// The full 8 bytes; the upper two must be zero unless BUNDLED is set.
    pub(crate) const MESSAGE_ID: Range<usize> = 16..24;
    /// With BUNDLED set: this packet's length in bytes, header included.
    pub(crate) const BUNDLE_LEN: Range<usize> = 16..18;
}

/// Header flag bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(u8);

impl Flags {
    /// The packet repeats bytes sent before (answer to RESEND or a timeout).
    pub const RETRANSMIT: Flags = Flags(0x01);
    /// The sender is the session's initiator (client); clear when sent by the server.
    pub const FROM_INITIATOR: Flags = Flags(0x02);
    /// Which of the two current traffic keys protects the records (key update).
    pub const KEY_PHASE: Flags = Flags(0x04);
    /// Another packet follows this one in the same datagram; Bundle Length gives
    /// this packet's length. Only on the wire: parsing strips it from the `Repr`.
    pub const BUNDLED: Flags = Flags(0x08);
    /// All bits this version defines.
    pub const ALL: Flags = Flags(0x0f);

    /// No flags.
    pub const fn empty() -> Flags {
        Flags(0)
    }
    /// Decodes a flags byte, rejecting undefined bits.
    pub fn from_bits(bits: u8) -> Result<Flags> {
        if bits & !Self::ALL.0 != 0 {
            return Err(WireError::ReservedFlags(bits & !Self::ALL.0));
        }
        Ok(Flags(bits))
    }
    /// The raw byte.
    pub const fn bits(self) -> u8 {
        self.0
    }
    /// Whether all bits of `other` are set.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
    /// Sets or clears the bits of `other`.
    pub fn set(&mut self, other: Flags, on: bool) {
        if on {
            self.0 |= other.0
        } else {
            self.0 &= !other.0
        }
    }
    /// `self` with the bits of `other` also set.
    pub const fn with(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
}

impl fmt::Display for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (flag, name) in [
            (Flags::RETRANSMIT, "RTX"),
            (Flags::FROM_INITIATOR, "INIT"),
            (Flags::KEY_PHASE, "KP"),
            (Flags::BUNDLED, "BND"),
        ] {
            if self.contains(flag) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("-")?;
        }
        Ok(())
    }
}

/// A read/write view of the common header at the start of `buffer`.
#[derive(Debug, Clone)]
pub struct Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Header<T> {
    /// Wraps a buffer without checking its length (see the module's no-panic contract).
    pub const fn new_unchecked(buffer: T) -> Header<T> {
        Header { buffer }
    }

    /// Wraps a buffer after checking it holds a whole common header.
    pub fn new_checked(buffer: T) -> Result<Header<T>> {
        let header = Self::new_unchecked(buffer);
        header.check_len()?;
        Ok(header)
    }

    /// Checks that the buffer holds a whole common header.
    pub fn check_len(&self) -> Result<()> {
        let actual = self.buffer.as_ref().len();
        if actual < HEADER_LEN {
            return Err(WireError::Truncated { needed: HEADER_LEN, actual });
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The sender's port (bytes 0-1).
    pub fn src_port(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::SRC_PORT])
    }
    /// The receiver's port as the sender addresses it (bytes 2-3). In native IP mode a
    /// receiver drops packets not addressed to its own port; in UDP mode it ignores
    /// the field (PROTOCOL.md sections 2 and 3).
    pub fn dst_port(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::DST_PORT])
    }
    /// The protocol version byte (byte 4); only [`VERSION`] is accepted.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }
    /// The raw packet type byte (byte 5), not yet checked against [`PacketType`].
    pub fn packet_type_byte(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }
    /// The raw flags byte (byte 6), possibly with reserved bits set; see [`Flags`].
    pub fn flags_byte(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }
    /// The reserved byte (byte 7); a valid packet has 0 here.
    pub fn reserved(&self) -> u8 {
        self.buffer.as_ref()[field::RESERVED]
    }
    /// The 64-bit session ID chosen by the client (bytes 8-15).
    pub fn session_id(&self) -> u64 {
        read_u64(&self.buffer.as_ref()[field::SESSION_ID])
    }
    /// The raw 64-bit message ID field (valid values are below 2^48; with BUNDLED
    /// set, its upper 16 bits are the Bundle Length instead).
    pub fn message_id_field(&self) -> u64 {
        read_u64(&self.buffer.as_ref()[field::MESSAGE_ID])
    }
    /// The Bundle Length (bytes 16-17): this packet's length if BUNDLED is set.
    pub fn bundle_len(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::BUNDLE_LEN])
    }
    /// The bytes after the common header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Header<T> {
    /// Writes the source port.
    pub fn set_src_port(&mut self, value: u16) {
        self.buffer.as_mut()[field::SRC_PORT].copy_from_slice(&value.to_be_bytes());
    }
    /// Writes the destination port.
    pub fn set_dst_port(&mut self, value: u16) {
        self.buffer.as_mut()[field::DST_PORT].copy_from_slice(&value.to_be_bytes());
    }
    /// Writes the version byte.
    pub fn set_version(&mut self, value: u8) {
        self.buffer.as_mut()[field::VERSION] = value;
    }
    /// Writes the packet type byte.
    pub fn set_packet_type(&mut self, value: PacketType) {
        self.buffer.as_mut()[field::TYPE] = value as u8;
    }
    /// Writes the flags byte.
    pub fn set_flags(&mut self, value: Flags) {
        self.buffer.as_mut()[field::FLAGS] = value.bits();
    }
    /// Writes the reserved byte (0 in every valid packet).
    pub fn set_reserved(&mut self, value: u8) {
        self.buffer.as_mut()[field::RESERVED] = value;
    }
    /// Writes the session ID.
    pub fn set_session_id(&mut self, value: u64) {
        self.buffer.as_mut()[field::SESSION_ID].copy_from_slice(&value.to_be_bytes());
    }
    /// Writes the 8-byte message ID field (its upper 16 bits, the Bundle Length,
    /// become zero).
    pub fn set_message_id(&mut self, value: MessageId) {
        self.buffer.as_mut()[field::MESSAGE_ID].copy_from_slice(&value.get().to_be_bytes());
    }
    /// Writes the Bundle Length (only meaningful with BUNDLED set).
    pub fn set_bundle_len(&mut self, value: u16) {
        self.buffer.as_mut()[field::BUNDLE_LEN].copy_from_slice(&value.to_be_bytes());
    }
    /// The bytes after the common header, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// The parsed common header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HeaderRepr {
    /// The sender's port. In UDP mode the sender writes its UDP source port here, but
    /// the field is informational: the peer's address comes from the UDP socket.
    pub src_port: u16,
    /// The receiver's port as the sender addresses it. In native IP mode a packet for
    /// another port is dropped; in UDP mode the field is informational and not
    /// checked (PROTOCOL.md sections 2 and 3).
    pub dst_port: u16,
    /// Which body follows the header (PROTOCOL.md section 4).
    pub packet_type: PacketType,
    /// RETRANSMIT, FROM_INITIATOR and KEY_PHASE bits (section 3); never BUNDLED,
    /// which belongs to the datagram's framing, not to the packet.
    pub flags: Flags,
    /// Names the session together with the peer's address and the local role.
    pub session_id: u64,
    /// Zero for packets that concern no message (HANDSHAKE, SESSION_UNKNOWN, CLOSE, ACK).
    pub message_id: MessageId,
}

impl HeaderRepr {
    /// Parses and validates a checked header view.
    pub fn parse<T: AsRef<[u8]>>(header: &Header<T>) -> Result<HeaderRepr> {
        header.check_len()?;
        if header.version() != VERSION {
            return Err(WireError::UnsupportedVersion(header.version()));
        }
        let packet_type = PacketType::from_u8(header.packet_type_byte())?;
        let mut flags = Flags::from_bits(header.flags_byte())?;
        if header.reserved() != 0 {
            return Err(WireError::ReservedNotZero);
        }
        let mut id_field = header.message_id_field();
        if flags.contains(Flags::BUNDLED) {
            // The upper 16 bits are the Bundle Length, checked by `split_bundle`.
            id_field &= MessageId::MAX.get();
            flags.set(Flags::BUNDLED, false);
        }
        let message_id = MessageId::new(id_field).ok_or(WireError::MessageIdTooLarge)?;
        Ok(HeaderRepr {
            src_port: header.src_port(),
            dst_port: header.dst_port(),
            packet_type,
            flags,
            session_id: header.session_id(),
            message_id,
        })
    }

    /// Bytes needed to emit the header.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into the first [`HEADER_LEN`] bytes of `header`'s buffer.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, header: &mut Header<T>) {
        header.set_src_port(self.src_port);
        header.set_dst_port(self.dst_port);
        header.set_version(VERSION);
        header.set_packet_type(self.packet_type);
        let mut flags = self.flags;
        // Bundling is marked afterwards, on the bytes (`mark_bundled`).
        flags.set(Flags::BUNDLED, false);
        header.set_flags(flags);
        header.set_reserved(0);
        header.set_session_id(self.session_id);
        header.set_message_id(self.message_id);
    }
}

impl fmt::Display for HeaderRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SMT {} {}->{} session={:#018x} msg={} flags={}",
            self.packet_type,
            self.src_port,
            self.dst_port,
            self.session_id,
            self.message_id,
            self.flags
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GRANT header from port 4000 to 5000, session 0x0102030405060708, message
    /// 0x0000_0a0b_0c0d_0e0f, flags FROM_INITIATOR|KEY_PHASE.
    const FIXTURE: [u8; HEADER_LEN] = [
        0x0f, 0xa0, 0x13, 0x88, // ports 4000, 5000
        0x01, 0x11, 0x06, 0x00, // version 1, GRANT, flags 0x06, reserved
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, // session id
        0x00, 0x00, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, // message id
    ];

    fn fixture_repr() -> HeaderRepr {
        HeaderRepr {
            src_port: 4000,
            dst_port: 5000,
            packet_type: PacketType::Grant,
            flags: Flags::FROM_INITIATOR.with(Flags::KEY_PHASE),
            session_id: 0x0102_0304_0506_0708,
            message_id: MessageId::new(0x0a0b_0c0d_0e0f).unwrap(),
        }
    }

    #[test]
    fn parses_fixture_bytes() {
        let header = Header::new_checked(&FIXTURE[..]).unwrap();
        assert_eq!(HeaderRepr::parse(&header).unwrap(), fixture_repr());
    }

    #[test]
    fn emits_fixture_bytes() {
        let mut buf = [0xffu8; HEADER_LEN];
        fixture_repr().emit(&mut Header::new_unchecked(&mut buf[..]));
        assert_eq!(buf, FIXTURE);
    }

    #[test]
    fn rejects_short_buffers() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                Header::new_checked(&FIXTURE[..len]).unwrap_err(),
                WireError::Truncated { needed: HEADER_LEN, actual: len }
            );
        }
    }

    #[test]
    fn rejects_wrong_version_unknown_type_flags_and_reserved() {
        let check = |index: usize, value: u8, expected: WireError| {
            let mut bytes = FIXTURE;
            bytes[index] = value;
            let header = Header::new_checked(&bytes[..]).unwrap();
            assert_eq!(HeaderRepr::parse(&header), Err(expected));
        };
        check(field::VERSION, 2, WireError::UnsupportedVersion(2));
        check(field::TYPE, 0x15, WireError::UnknownType(0x15));
        check(field::FLAGS, 0x86, WireError::ReservedFlags(0x80));
        check(field::FLAGS, 0x16, WireError::ReservedFlags(0x10));
        check(field::RESERVED, 1, WireError::ReservedNotZero);
        check(field::MESSAGE_ID.start, 1, WireError::MessageIdTooLarge);
        check(field::MESSAGE_ID.start + 1, 1, WireError::MessageIdTooLarge);
    }

    #[test]
    fn bundled_header_carries_its_length_above_the_message_id() {
        let mut bytes = FIXTURE;
        bytes[field::FLAGS] = 0x0e; // FROM_INITIATOR | KEY_PHASE | BUNDLED
        bytes[16] = 0x01;
        bytes[17] = 0x2c; // bundle length 300
        let header = Header::new_checked(&bytes[..]).unwrap();
        assert_eq!(header.bundle_len(), 300);
        // The flag is framing: the Repr is the same as the lone packet's.
        assert_eq!(HeaderRepr::parse(&header).unwrap(), fixture_repr());
        // Emitting never writes BUNDLED, whatever the Repr says.
        let mut repr = fixture_repr();
        repr.flags.set(Flags::BUNDLED, true);
        let mut out = [0u8; HEADER_LEN];
        repr.emit(&mut Header::new_unchecked(&mut out[..]));
        assert_eq!(out, FIXTURE);
    }

    #[test]
    fn display_names_fields() {
        assert_eq!(
            fixture_repr().to_string(),
            "SMT GRANT 4000->5000 session=0x0102030405060708 msg=11042563100175 flags=INIT|KP"
        );
    }
}
