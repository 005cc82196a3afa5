//! TLS 1.3 traffic secrets: deriving a record key from a secret (RFC 8446 7.3) and the
//! next secret of a key update (RFC 8446 7.2).

use aws_lc_rs::hkdf;

use super::{CipherSuite, KeyError, RecordKey};

/// An application traffic secret of one direction of a session. It derives that
/// direction's record key and, for a key update, the next secret.
#[derive(Clone)]
pub struct TrafficSecret {
    suite: CipherSuite,
    secret: Vec<u8>,
}

impl core::fmt::Debug for TrafficSecret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never print key material.
        f.debug_struct("TrafficSecret").field("suite", &self.suite).finish_non_exhaustive()
    }
}

impl TrafficSecret {
    /// Wraps a secret, which must be as long as the suite's hash (32 or 48 bytes).
    pub fn new(suite: CipherSuite, secret: &[u8]) -> Result<TrafficSecret, KeyError> {
        if secret.len() != hash_len(suite) {
            return Err(KeyError::SecretLength {
                suite,
                expected: hash_len(suite),
                actual: secret.len(),
            });
        }
        Ok(TrafficSecret { suite, secret: secret.to_vec() })
    }

    /// The secret's cipher suite.
    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    /// The record key and IV this secret derives:
    /// `HKDF-Expand-Label(secret, "key" / "iv", "", length)`.
    pub fn record_key(&self) -> RecordKey {
        let (key, iv) = self.key_and_iv();
        // Lengths come from the suite itself, so RecordKey::new accepts them.
        RecordKey::new(self.suite, &key, &iv).expect("derived lengths match the suite")
    }

    /// The raw traffic key and IV this secret derives.
    pub fn key_and_iv(&self) -> (Vec<u8>, Vec<u8>) {
        let key = expand_label(self.suite, &self.secret, b"key", self.suite.key_len());
        let iv = expand_label(self.suite, &self.secret, b"iv", self.suite.iv_len());
        (key, iv)
    }

    /// The secret after a key update:
    /// `HKDF-Expand-Label(secret, "traffic upd", "", Hash.length)`.
    pub fn next(&self) -> TrafficSecret {
        let secret = expand_label(self.suite, &self.secret, b"traffic upd", hash_len(self.suite));
        TrafficSecret { suite: self.suite, secret }
    }
}

fn hash_len(suite: CipherSuite) -> usize {
    match suite {
        CipherSuite::Aes256GcmSha384 => 48,
        _ => 32,
    }
}

fn algorithm(suite: CipherSuite) -> hkdf::Algorithm {
    match suite {
        CipherSuite::Aes256GcmSha384 => hkdf::HKDF_SHA384,
        _ => hkdf::HKDF_SHA256,
    }
}

/// HKDF-Expand-Label with an empty context (RFC 8446 7.1).
fn expand_label(suite: CipherSuite, secret: &[u8], label: &[u8], len: usize) -> Vec<u8> {
    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    // struct { uint16 length; opaque label<7..255> = "tls13 " + label; opaque context<0..255>; }
    let out_len = (len as u16).to_be_bytes();
    let label_len = [(6 + label.len()) as u8];
    let info: [&[u8]; 5] = [&out_len, &label_len, b"tls13 ", label, &[0u8]];
    let prk = hkdf::Prk::new_less_safe(algorithm(suite), secret);
    let mut out = vec![0u8; len];
    // Lengths here are at most 48 bytes, far below HKDF's 255 * HashLen limit, so
    // expand and fill cannot fail.
    prk.expand(&info, Len(len))
        .and_then(|okm| okm.fill(&mut out))
        .expect("HKDF output length is valid");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{record_sequence, APPLICATION_DATA};
    use crate::wire::MessageId;

    /// RFC 8448 section 3: the server handshake traffic secret of the simple 1-RTT
    /// handshake and the write key and IV derived from it.
    #[test]
    fn derives_rfc8448_key_and_iv() {
        let secret = [
            0xb6, 0x7b, 0x7d, 0x69, 0x0c, 0xc1, 0x6c, 0x4e, 0x75, 0xe5, 0x42, 0x13, 0xcb, 0x2d,
            0x37, 0xb4, 0xe9, 0xc9, 0x12, 0xbc, 0xde, 0xd9, 0x10, 0x5d, 0x42, 0xbe, 0xfd, 0x59,
            0xd3, 0x91, 0xad, 0x38,
        ];
        let suite = CipherSuite::Aes128GcmSha256;
        assert_eq!(
            expand_label(suite, &secret, b"key", 16),
            [
                0x3f, 0xce, 0x51, 0x60, 0x09, 0xc2, 0x17, 0x27, 0xd0, 0xf2, 0xe4, 0xe8, 0x6e, 0xe4,
                0x03, 0xbc
            ]
        );
        assert_eq!(
            expand_label(suite, &secret, b"iv", 12),
            [0x5d, 0x31, 0x3e, 0xb2, 0x67, 0x12, 0x76, 0xee, 0x13, 0x00, 0x0b, 0x30]
        );
    }

    #[test]
    fn key_updates_give_new_keys_that_both_sides_derive_alike() {
        for suite in CipherSuite::ALL {
            let secret = TrafficSecret::new(suite, &vec![9u8; hash_len(suite)]).unwrap();
            let seq = record_sequence(MessageId::new(1).unwrap(), 0);
            let sealed = secret.record_key().seal_record(seq, b"x", APPLICATION_DATA, 0).unwrap();
            let next = secret.next();
            let mut with_next = sealed.clone();
            assert!(next.record_key().open_in_place(seq, &mut with_next).is_err());
            let sealed_next =
                next.record_key().seal_record(seq, b"x", APPLICATION_DATA, 0).unwrap();
            assert_ne!(sealed, sealed_next);
            let mut copy = sealed_next.clone();
            assert!(secret.next().record_key().open_in_place(seq, &mut copy).is_ok());
        }
    }

    #[test]
    fn rejects_secrets_of_the_wrong_length() {
        assert!(TrafficSecret::new(CipherSuite::Aes256GcmSha384, &[0; 32]).is_err());
        assert!(TrafficSecret::new(CipherSuite::Aes128GcmSha256, &[0; 32]).is_ok());
    }
}
