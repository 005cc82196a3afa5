//! TLS 1.3 record protection with per-message sequence number spaces.
//!
//! A message is a sequence of standard TLS 1.3 records (RFC 8446 section 5). What SMT
//! changes is only where the 64-bit record sequence number comes from: record `i` of
//! message `m` uses `seq = m << 16 | i`, so every message has its own sequence space
//! and messages can be sealed and opened independently, in any order and on any core,
//! while the 48-bit message ID (never reused within a session and direction) keeps
//! every nonce unique.
//!
//! * [`RecordKey`] seals and opens single records in place.
//! * [`MessageLayout`] maps a message to records and records to wire-image offsets.
//! * [`seal_message`] / [`open_message`] do a whole message at once.

mod key;
mod key_schedule;
mod layout;
mod message;

pub use key::{CipherSuite, KeyError, OpenedRecord, RecordKey};
pub use key_schedule::TrafficSecret;
pub use layout::{MessageLayout, MIN_RECORD_SIZE, PROLOGUE_LEN, RECORD_OVERHEAD};
pub use message::{
    compact_in_place, compact_payload, open_message, open_message_record, open_record_into,
    open_record_slice, seal_message, seal_message_into, seal_records_into, verify_prologue,
    MessageError,
};

use crate::wire::MessageId;

/// Length of the TLS record header: type (1), legacy version (2), length (2).
pub const RECORD_HEADER_LEN: usize = 5;
/// Length of the AEAD tag for all supported cipher suites.
pub const TAG_LEN: usize = 16;
/// Most content bytes a record may carry (RFC 8446: 2^14).
pub const MAX_PLAINTEXT_LEN: usize = 1 << 14;
/// Most bytes after the record header (RFC 8446: 2^14 + 256).
pub const MAX_CIPHERTEXT_LEN: usize = (1 << 14) + 256;
/// The outer content type of every TLS 1.3 protected record.
pub const OUTER_CONTENT_TYPE: u8 = 23;
/// The inner content type SMT messages use (application_data).
pub const APPLICATION_DATA: u8 = 23;
/// The legacy record version every TLS 1.3 protected record carries.
pub const LEGACY_RECORD_VERSION: [u8; 2] = [0x03, 0x03];
/// Most records one message may have (the record index is 16 bits).
pub const MAX_RECORDS_PER_MESSAGE: usize = 1 << 16;

/// The TLS record sequence number of record `record_index` of message `message_id`.
pub const fn record_sequence(message_id: MessageId, record_index: u16) -> u64 {
    (message_id.get() << 16) | record_index as u64
}

/// Why a single record failed to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The 5-byte header is not `23 3 3 len` with `len` matching the record's bytes.
    #[error("malformed TLS record header")]
    MalformedHeader,
    /// Authentication failed: wrong key, wrong sequence number, or modified bytes.
    #[error("record authentication failed")]
    AuthenticationFailed,
    /// The decrypted inner plaintext is all zeros: no content type (RFC 8446 5.4).
    #[error("record has no content type")]
    MissingContentType,
    /// The caller asked to seal more than a record may carry.
    #[error("record content of {0} bytes exceeds the TLS 1.3 limit")]
    TooLong(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_number_places_message_id_above_record_index() {
        let id = MessageId::new(0x0000_1234_5678_9abc).unwrap();
        assert_eq!(record_sequence(id, 0), 0x1234_5678_9abc_0000);
        assert_eq!(record_sequence(id, 0xffff), 0x1234_5678_9abc_ffff);
        assert_eq!(record_sequence(MessageId::MAX, 0xffff), u64::MAX);
    }
}
