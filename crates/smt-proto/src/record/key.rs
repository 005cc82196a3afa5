//! One direction's record protection key: seal and open single records in place.

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, NONCE_LEN};

use super::{
    RecordError, LEGACY_RECORD_VERSION, MAX_CIPHERTEXT_LEN, MAX_PLAINTEXT_LEN, OUTER_CONTENT_TYPE,
    RECORD_HEADER_LEN, TAG_LEN,
};

/// The TLS 1.3 cipher suites SMT supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CipherSuite {
    /// TLS_AES_128_GCM_SHA256 (0x1301), the default.
    Aes128GcmSha256,
    /// TLS_AES_256_GCM_SHA384 (0x1302).
    Aes256GcmSha384,
    /// TLS_CHACHA20_POLY1305_SHA256 (0x1303).
    Chacha20Poly1305Sha256,
    /// INSECURE, benchmarks only: records are framed like TLS 1.3 records but neither
    /// encrypted nor authenticated (the "tag" is 16 zero bytes). Exists only with the
    /// `insecure-null-cipher` feature, is never negotiated by a handshake, and is not
    /// in [`CipherSuite::ALL`] or [`CipherSuite::from_name`].
    #[cfg(feature = "insecure-null-cipher")]
    NullInsecure,
}

impl CipherSuite {
    /// All supported suites.
    pub const ALL: [CipherSuite; 3] = [
        CipherSuite::Aes128GcmSha256,
        CipherSuite::Aes256GcmSha384,
        CipherSuite::Chacha20Poly1305Sha256,
    ];

    /// The IANA name, e.g. `TLS_AES_128_GCM_SHA256`.
    pub const fn name(self) -> &'static str {
        match self {
            CipherSuite::Aes128GcmSha256 => "TLS_AES_128_GCM_SHA256",
            CipherSuite::Aes256GcmSha384 => "TLS_AES_256_GCM_SHA384",
            CipherSuite::Chacha20Poly1305Sha256 => "TLS_CHACHA20_POLY1305_SHA256",
            #[cfg(feature = "insecure-null-cipher")]
            CipherSuite::NullInsecure => "INSECURE_NULL_CIPHER",
        }
    }

    /// Looks a suite up by its IANA name.
    pub fn from_name(name: &str) -> Option<CipherSuite> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The IANA code point.
    pub const fn code(self) -> u16 {
        match self {
            CipherSuite::Aes128GcmSha256 => 0x1301,
            CipherSuite::Aes256GcmSha384 => 0x1302,
            CipherSuite::Chacha20Poly1305Sha256 => 0x1303,
            #[cfg(feature = "insecure-null-cipher")]
            CipherSuite::NullInsecure => 0xff00,
        }
    }

    /// Length of the traffic key in bytes.
    pub const fn key_len(self) -> usize {
        match self {
            CipherSuite::Aes128GcmSha256 => 16,
            CipherSuite::Aes256GcmSha384 | CipherSuite::Chacha20Poly1305Sha256 => 32,
            #[cfg(feature = "insecure-null-cipher")]
            CipherSuite::NullInsecure => 16,
        }
    }

    /// Length of the IV in bytes (12 for every TLS 1.3 AEAD).
    pub const fn iv_len(self) -> usize {
        NONCE_LEN
    }

    /// Records one key may protect before it must be updated (RFC 8446 5.5 and the
    /// QUIC analysis in RFC 9001 6.6: 2^24.5 full-size records for AES-GCM).
    pub const fn confidentiality_limit(self) -> u64 {
        match self {
            CipherSuite::Aes128GcmSha256 | CipherSuite::Aes256GcmSha384 => 23_726_566,
            // ChaCha20-Poly1305's limit exceeds the 64-bit sequence space in practice.
            CipherSuite::Chacha20Poly1305Sha256 => u64::MAX,
            #[cfg(feature = "insecure-null-cipher")]
            CipherSuite::NullInsecure => u64::MAX,
        }
    }

    fn algorithm(self) -> Option<&'static aead::Algorithm> {
        match self {
            CipherSuite::Aes128GcmSha256 => Some(&aead::AES_128_GCM),
            CipherSuite::Aes256GcmSha384 => Some(&aead::AES_256_GCM),
            CipherSuite::Chacha20Poly1305Sha256 => Some(&aead::CHACHA20_POLY1305),
            #[cfg(feature = "insecure-null-cipher")]
            CipherSuite::NullInsecure => None,
        }
    }
}

impl core::fmt::Display for CipherSuite {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why key material was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The traffic key's length does not match the suite's AEAD (16 or 32 bytes).
    #[error("{suite} needs a {expected}-byte key, got {actual} bytes")]
    KeyLength {
        /// The suite the key was meant for.
        suite: CipherSuite,
        /// Key length the suite's AEAD requires, in bytes.
        expected: usize,
        /// Length of the key that was supplied, in bytes.
        actual: usize,
    },
    /// The IV is not 12 bytes long; the value is the length supplied.
    #[error("TLS 1.3 IVs are 12 bytes, got {0} bytes")]
    IvLength(usize),
    /// A traffic secret's length does not match the suite's hash (32 or 48 bytes).
    #[error("{suite} traffic secrets are {expected} bytes, got {actual} bytes")]
    SecretLength {
        /// The suite the secret was meant for.
        suite: CipherSuite,
        /// Secret length the suite's hash output requires, in bytes.
        expected: usize,
        /// Length of the secret that was supplied, in bytes.
        actual: usize,
    },
}

/// A record opened in place.
#[derive(Debug, PartialEq, Eq)]
pub struct OpenedRecord<'a> {
    /// The inner content type (23 for application data).
    pub content_type: u8,
    /// The content, with content type and padding removed.
    pub content: &'a [u8],
    /// How many zero padding bytes followed the content type.
    pub padding_len: usize,
}

/// The traffic key and IV of one direction of a session.
///
/// Sealing and opening take `&self`, so one key can serve many threads at once; the
/// sequence number is an argument because it comes from the message, not a counter.
pub struct RecordKey {
    suite: CipherSuite,
    /// `None` only for the insecure null cipher.
    key: Option<LessSafeKey>,
    iv: [u8; NONCE_LEN],
}

impl core::fmt::Debug for RecordKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never print key material.
        f.debug_struct("RecordKey").field("suite", &self.suite).finish_non_exhaustive()
    }
}

impl RecordKey {
    /// Builds a key from raw traffic key and IV bytes, as TLS 1.3's key schedule
    /// derives them (RFC 8446 7.3).
    pub fn new(suite: CipherSuite, key: &[u8], iv: &[u8]) -> Result<RecordKey, KeyError> {
        if key.len() != suite.key_len() {
            return Err(KeyError::KeyLength {
                suite,
                expected: suite.key_len(),
                actual: key.len(),
            });
        }
        let iv: [u8; NONCE_LEN] = iv.try_into().map_err(|_| KeyError::IvLength(iv.len()))?;
        let key =
            match suite.algorithm() {
                Some(algorithm) => {
                    let unbound = UnboundKey::new(algorithm, key).map_err(|_| {
                        KeyError::KeyLength { suite, expected: suite.key_len(), actual: key.len() }
                    })?;
                    Some(LessSafeKey::new(unbound))
                }
                None => None,
            };
        Ok(RecordKey { suite, key, iv })
    }

    /// The key's cipher suite.
    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    /// The per-record nonce: the IV XORed with the sequence number, left-padded to 12
    /// bytes (RFC 8446 5.3).
    pub fn nonce(&self, sequence: u64) -> [u8; NONCE_LEN] {
        let mut nonce = self.iv;
        for (n, s) in nonce[NONCE_LEN - 8..].iter_mut().zip(sequence.to_be_bytes()) {
            *n ^= s;
        }
        nonce
    }

    /// Total record length for `content_len` content bytes and `padding_len` padding.
    pub const fn record_len(content_len: usize, padding_len: usize) -> usize {
        RECORD_HEADER_LEN + content_len + 1 + padding_len + TAG_LEN
    }

    /// Seals a record in place.
    ///
    /// `record` must be exactly `record_len(content_len, padding_len)` bytes with the
    /// content already at `record[5..5 + content_len]`; the header, content type,
    /// padding and tag are written here. This shape lets a sender lay out a whole
    /// message once and encrypt each record where it will be transmitted from.
    pub fn seal_in_place(
        &self,
        sequence: u64,
        record: &mut [u8],
        content_len: usize,
        content_type: u8,
        padding_len: usize,
    ) -> Result<(), RecordError> {
        if content_len + padding_len > MAX_PLAINTEXT_LEN {
            return Err(RecordError::TooLong(content_len + padding_len));
        }
        assert_eq!(
            record.len(),
            Self::record_len(content_len, padding_len),
            "record buffer does not match content and padding lengths"
        );
        let body_len = record.len() - RECORD_HEADER_LEN;
        // body_len <= 2^14 + 1 + 16, fits in u16.
        let header = record_header(body_len as u16);
        record[..RECORD_HEADER_LEN].copy_from_slice(&header);
        let inner_end = RECORD_HEADER_LEN + content_len + 1 + padding_len;
        record[RECORD_HEADER_LEN + content_len] = content_type;
        record[RECORD_HEADER_LEN + content_len + 1..inner_end].fill(0);
        let Some(key) = self.key.as_ref() else {
            // Insecure null cipher: plaintext with an all-zero "tag".
            record[inner_end..].fill(0);
            return Ok(());
        };
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(self.nonce(sequence)),
                Aad::from(header),
                &mut record[RECORD_HEADER_LEN..inner_end],
            )
            // aws-lc-rs only fails to seal when the input exceeds the AEAD's maximum
            // (gigabytes), which the length check above rules out.
            .map_err(|_| RecordError::TooLong(content_len))?;
        record[inner_end..].copy_from_slice(tag.as_ref());
        Ok(())
    }

    /// Seals `content` (no padding) into `record`, which must be exactly
    /// `record_len(content.len(), 0)` bytes: header, ciphertext, content type and tag
    /// are all written here, and the content is read where it lies. The same bytes
    /// as [`RecordKey::seal_in_place`] with one pass over the content instead of a
    /// copy followed by an in-place encryption.
    pub fn seal_from(
        &self,
        sequence: u64,
        content: &[u8],
        content_type: u8,
        record: &mut [u8],
    ) -> Result<(), RecordError> {
        if content.len() > MAX_PLAINTEXT_LEN {
            return Err(RecordError::TooLong(content.len()));
        }
        assert_eq!(
            record.len(),
            Self::record_len(content.len(), 0),
            "record buffer does not match the content length"
        );
        let body_len = record.len() - RECORD_HEADER_LEN;
        // body_len <= 2^14 + 1 + 16, fits in u16.
        let header = record_header(body_len as u16);
        let (head, body) = record.split_at_mut(RECORD_HEADER_LEN);
        head.copy_from_slice(&header);
        let (ciphertext, type_and_tag) = body.split_at_mut(content.len());
        let Some(key) = self.key.as_ref() else {
            // Insecure null cipher: plaintext with an all-zero "tag".
            ciphertext.copy_from_slice(content);
            type_and_tag[0] = content_type;
            type_and_tag[1..].fill(0);
            return Ok(());
        };
        key.seal_out_of_place_scatter(
            Nonce::assume_unique_for_key(self.nonce(sequence)),
            Aad::from(header),
            content,
            ciphertext,
            &[content_type],
            type_and_tag,
        )
        // aws-lc-rs fails only on mismatched lengths (ruled out by the assertion) or
        // inputs beyond the AEAD's maximum (ruled out by the length check).
        .map_err(|_| RecordError::TooLong(content.len()))
    }

    /// Seals `content` into a new record.
    pub fn seal_record(
        &self,
        sequence: u64,
        content: &[u8],
        content_type: u8,
        padding_len: usize,
    ) -> Result<Vec<u8>, RecordError> {
        if content.len() + padding_len > MAX_PLAINTEXT_LEN {
            return Err(RecordError::TooLong(content.len() + padding_len));
        }
        let mut record = vec![0u8; Self::record_len(content.len(), padding_len)];
        record[RECORD_HEADER_LEN..RECORD_HEADER_LEN + content.len()].copy_from_slice(content);
        self.seal_in_place(sequence, &mut record, content.len(), content_type, padding_len)?;
        Ok(record)
    }

    /// Opens a whole record (header, ciphertext, tag) in place.
    ///
    /// Never panics, whatever `record` holds: the header is checked against the
    /// record's actual length before anything else.
    pub fn open_in_place<'a>(
        &self,
        sequence: u64,
        record: &'a mut [u8],
    ) -> Result<OpenedRecord<'a>, RecordError> {
        if record.len() < RECORD_HEADER_LEN + 1 + TAG_LEN
            || record.len() > RECORD_HEADER_LEN + MAX_CIPHERTEXT_LEN
        {
            return Err(RecordError::MalformedHeader);
        }
        let body_len = record.len() - RECORD_HEADER_LEN;
        let mut header = [0u8; RECORD_HEADER_LEN];
        header.copy_from_slice(&record[..RECORD_HEADER_LEN]);
        if header != record_header(body_len as u16) {
            return Err(RecordError::MalformedHeader);
        }
        let inner = match self.key.as_ref() {
            Some(key) => key
                .open_in_place(
                    Nonce::assume_unique_for_key(self.nonce(sequence)),
                    Aad::from(header),
                    &mut record[RECORD_HEADER_LEN..],
                )
                .map_err(|_| RecordError::AuthenticationFailed)?,
            None => {
                // Insecure null cipher: only the framing is checked.
                let (inner, tag) = record[RECORD_HEADER_LEN..].split_at_mut(body_len - TAG_LEN);
                if tag.iter().any(|&b| b != 0) {
                    return Err(RecordError::AuthenticationFailed);
                }
                inner
            }
        };
        let type_at = inner.iter().rposition(|&b| b != 0).ok_or(RecordError::MissingContentType)?;
        let padding_len = inner.len() - type_at - 1;
        let content_type = inner[type_at];
        Ok(OpenedRecord { content_type, content: &inner[..type_at], padding_len })
    }
}

impl RecordKey {
    /// Opens a whole record (header, ciphertext, tag) into `out`, leaving `record`
    /// as it was: `out` must be exactly as long as the record's inner plaintext
    /// (`record.len() - 5 - 16`: content, content type and padding), and receives it.
    /// The same checks as [`RecordKey::open_in_place`]; on failure `out` holds
    /// unspecified bytes. Never panics, whatever `record` holds; a mismatched `out`
    /// is an error.
    pub fn open_into<'a>(
        &self,
        sequence: u64,
        record: &[u8],
        out: &'a mut [u8],
    ) -> Result<OpenedRecord<'a>, RecordError> {
        if record.len() < RECORD_HEADER_LEN + 1 + TAG_LEN
            || record.len() > RECORD_HEADER_LEN + MAX_CIPHERTEXT_LEN
            || out.len() != record.len() - RECORD_HEADER_LEN - TAG_LEN
        {
            return Err(RecordError::MalformedHeader);
        }
        let body_len = record.len() - RECORD_HEADER_LEN;
        let (header, body) = record.split_at(RECORD_HEADER_LEN);
        if header != record_header(body_len as u16) {
            return Err(RecordError::MalformedHeader);
        }
        let (ciphertext, tag) = body.split_at(body_len - TAG_LEN);
        match self.key.as_ref() {
            Some(key) => key
                .open_separate_gather(
                    Nonce::assume_unique_for_key(self.nonce(sequence)),
                    Aad::from(header),
                    ciphertext,
                    tag,
                    out,
                )
                .map_err(|_| RecordError::AuthenticationFailed)?,
            None => {
                // Insecure null cipher: only the framing is checked.
                if tag.iter().any(|&b| b != 0) {
                    return Err(RecordError::AuthenticationFailed);
                }
                out.copy_from_slice(ciphertext);
            }
        }
        let type_at = out.iter().rposition(|&b| b != 0).ok_or(RecordError::MissingContentType)?;
        let padding_len = out.len() - type_at - 1;
        let content_type = out[type_at];
        Ok(OpenedRecord { content_type, content: &out[..type_at], padding_len })
    }
}

fn record_header(body_len: u16) -> [u8; RECORD_HEADER_LEN] {
    let len = body_len.to_be_bytes();
    [OUTER_CONTENT_TYPE, LEGACY_RECORD_VERSION[0], LEGACY_RECORD_VERSION[1], len[0], len[1]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{record_sequence, APPLICATION_DATA};
    use crate::wire::MessageId;

    fn key(suite: CipherSuite) -> RecordKey {
        RecordKey::new(suite, &vec![7u8; suite.key_len()], &[9u8; 12]).unwrap()
    }

    #[test]
    fn rejects_wrong_key_and_iv_lengths() {
        assert!(matches!(
            RecordKey::new(CipherSuite::Aes128GcmSha256, &[0; 32], &[0; 12]),
            Err(KeyError::KeyLength { expected: 16, actual: 32, .. })
        ));
        assert_eq!(
            RecordKey::new(CipherSuite::Aes256GcmSha384, &[0; 32], &[0; 8]).unwrap_err(),
            KeyError::IvLength(8)
        );
    }

    #[test]
    fn nonce_is_iv_xor_left_padded_sequence() {
        let k = RecordKey::new(CipherSuite::Aes128GcmSha256, &[0; 16], &[0xff; 12]).unwrap();
        assert_eq!(
            k.nonce(0x0102_0304_0506_0708),
            [0xff, 0xff, 0xff, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa, 0xf9, 0xf8, 0xf7]
        );
    }

    #[test]
    fn sealed_record_has_tls13_header_and_opens() {
        for suite in CipherSuite::ALL {
            let k = key(suite);
            let seq = record_sequence(MessageId::new(5).unwrap(), 2);
            let mut record = k.seal_record(seq, b"hello", APPLICATION_DATA, 3).unwrap();
            assert_eq!(record.len(), 5 + 5 + 1 + 3 + 16);
            assert_eq!(&record[..5], &[23, 3, 3, 0, 25]);
            let opened = k.open_in_place(seq, &mut record).unwrap();
            assert_eq!(opened.content, b"hello");
            assert_eq!(opened.content_type, APPLICATION_DATA);
            assert_eq!(opened.padding_len, 3);
        }
    }

    #[test]
    fn open_rejects_wrong_sequence_number() {
        let k = key(CipherSuite::Aes128GcmSha256);
        let mut record = k.seal_record(1, b"x", APPLICATION_DATA, 0).unwrap();
        assert_eq!(k.open_in_place(2, &mut record).unwrap_err(), RecordError::AuthenticationFailed);
    }

    #[test]
    fn open_rejects_malformed_headers_without_panicking() {
        let k = key(CipherSuite::Aes128GcmSha256);
        let good = k.seal_record(1, b"abc", APPLICATION_DATA, 0).unwrap();
        for len in 0..good.len() {
            let mut short = good[..len].to_vec();
            assert!(k.open_in_place(1, &mut short).is_err());
        }
        let mut wrong_type = good.clone();
        wrong_type[0] = 22;
        assert_eq!(k.open_in_place(1, &mut wrong_type).unwrap_err(), RecordError::MalformedHeader);
        let mut wrong_len = good.clone();
        wrong_len[4] ^= 1;
        assert_eq!(k.open_in_place(1, &mut wrong_len).unwrap_err(), RecordError::MalformedHeader);
    }

    #[test]
    fn all_zero_inner_plaintext_is_rejected() {
        let k = key(CipherSuite::Aes128GcmSha256);
        // Content type 0 and no content: the inner plaintext is a single zero byte.
        let mut record = k.seal_record(1, b"", 0, 4).unwrap();
        assert_eq!(k.open_in_place(1, &mut record).unwrap_err(), RecordError::MissingContentType);
    }

    #[test]
    fn refuses_to_seal_more_than_16k() {
        let k = key(CipherSuite::Aes128GcmSha256);
        assert_eq!(
            k.seal_record(0, &vec![0; MAX_PLAINTEXT_LEN + 1], APPLICATION_DATA, 0).unwrap_err(),
            RecordError::TooLong(MAX_PLAINTEXT_LEN + 1)
        );
        assert!(k.seal_record(0, &vec![0; MAX_PLAINTEXT_LEN], APPLICATION_DATA, 0).is_ok());
    }

    #[cfg(feature = "insecure-null-cipher")]
    #[test]
    fn null_cipher_frames_records_without_encrypting() {
        let k = RecordKey::new(CipherSuite::NullInsecure, &[0; 16], &[0; 12]).unwrap();
        let mut record = k.seal_record(5, b"plain", APPLICATION_DATA, 0).unwrap();
        assert_eq!(&record[5..10], b"plain");
        assert_eq!(k.open_in_place(5, &mut record).unwrap().content, b"plain");
        assert!(!CipherSuite::ALL.contains(&CipherSuite::NullInsecure));
        assert_eq!(CipherSuite::from_name("INSECURE_NULL_CIPHER"), None);
    }

    #[test]
    fn sealing_from_the_content_writes_the_same_record_as_sealing_in_place() {
        for suite in CipherSuite::ALL {
            let k = key(suite);
            for len in [0usize, 1, 15, 16, 17, 1000, MAX_PLAINTEXT_LEN] {
                let content: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
                let in_place = k.seal_record(42, &content, APPLICATION_DATA, 0).unwrap();
                let mut from = vec![0xaa; RecordKey::record_len(len, 0)];
                k.seal_from(42, &content, APPLICATION_DATA, &mut from).unwrap();
                assert_eq!(from, in_place, "{suite:?} {len}");
                let opened = k.open_in_place(42, &mut from).unwrap();
                assert_eq!(opened.content, &content[..]);
            }
            let mut big = vec![0; RecordKey::record_len(MAX_PLAINTEXT_LEN + 1, 0)];
            let content = vec![0; MAX_PLAINTEXT_LEN + 1];
            assert!(k.seal_from(1, &content, APPLICATION_DATA, &mut big).is_err());
        }
    }

    #[test]
    fn debug_output_hides_key_material() {
        let text = format!("{:?}", key(CipherSuite::Aes128GcmSha256));
        assert!(!text.contains('7') && !text.contains('9'), "{text}");
    }
}
