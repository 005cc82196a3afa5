//! Generation of the record test vectors in `docs/test-vectors/records.json`.
//!
//! Shared by `examples/gen_test_vectors.rs` (which prints the file) and
//! `tests/test_vectors.rs` (which checks the committed file is exactly what this code
//! produces), so the file cannot drift from the code.
//!
//! How the inputs are chosen, all deterministic:
//!
//! * Traffic secret, one per cipher suite: `Hash("SMT record test vectors " || name)`,
//!   where `Hash` is the suite's hash (SHA-256 for 0x1301 and 0x1303, SHA-384 for
//!   0x1302) and `name` the suite's IANA name in ASCII, e.g. `TLS_AES_128_GCM_SHA256`.
//! * Key and IV, as TLS 1.3 derives them from a traffic secret (RFC 8446 7.3):
//!   `key = HKDF-Expand-Label(secret, "key", "", key_len)` and
//!   `iv = HKDF-Expand-Label(secret, "iv", "", 12)`, with the suite's hash.
//! * Content byte `i` of every vector is `i mod 251`; the content type is 23
//!   (application_data).
//! * Each suite gets the same [`SHAPES`] (message ID, record index, content length,
//!   padding length), sealed with `RecordKey::seal_record` at sequence number
//!   `message_id << 16 | record_index`.

// Each includer (the example, the test) uses only part of this module.
#![allow(dead_code)]

use aws_lc_rs::{digest, hkdf};
use serde::{Deserialize, Serialize};
use smt_proto::record::{record_sequence, CipherSuite, RecordKey, APPLICATION_DATA};
use smt_proto::wire::MessageId;

/// Path of the vector file relative to the repository root.
pub const VECTORS_FILE: &str = "docs/test-vectors/records.json";

/// Prefix of the string hashed into each suite's traffic secret.
pub const SECRET_PREFIX: &str = "SMT record test vectors ";

/// Largest message ID, `2^48 - 1`.
const MAX_ID: u64 = (1 << 48) - 1;

/// (message ID, record index, content length, padding length) of each vector, the
/// same for every suite. Between them: sequence number 0 (the nonce is the IV), IDs
/// above 2^32 up to 2^48 - 1, record indices up to 65535 (so sequence number
/// 2^64 - 1), empty content with and without padding, and a full 16384-byte record.
pub const SHAPES: [(u64, u16, usize, usize); 6] = [
    (0, 0, 1, 0),
    (1, 1, 37, 3),
    ((1 << 32) + 1, 2, 1000, 0),
    (0xa5a5_5a5a_c3c3, 0x1234, 0, 0),
    ((1 << 40) + 7, 256, 0, 64),
    (MAX_ID, 65535, 16384, 0),
];

/// One record test vector, in the JSON file's field order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vector {
    pub cipher_suite: String,
    pub key: String,
    pub iv: String,
    pub message_id: u64,
    pub record_index: u16,
    pub plaintext: String,
    pub content_type: u8,
    pub padding_len: usize,
    pub record: String,
}

/// The whole JSON file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VectorFile {
    pub vectors: Vec<Vector>,
}

/// HKDF-Expand-Label from RFC 8446 7.1, with the hash of `suite`.
pub fn hkdf_expand_label(
    suite: CipherSuite,
    secret: &[u8],
    label: &[u8],
    context: &[u8],
    len: usize,
) -> Vec<u8> {
    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    const TLS13_PREFIX: &[u8] = b"tls13 ";
    let out_len = u16::try_from(len).expect("HKDF-Expand-Label length fits in u16").to_be_bytes();
    let label_len = [u8::try_from(TLS13_PREFIX.len() + label.len()).expect("label too long")];
    let context_len = [u8::try_from(context.len()).expect("context too long")];
    // struct HkdfLabel { uint16 length; opaque label<7..255>; opaque context<0..255>; }
    let info: [&[u8]; 6] = [&out_len, &label_len, TLS13_PREFIX, label, &context_len, context];
    let prk = hkdf::Prk::new_less_safe(hkdf_algorithm(suite), secret);
    let mut out = vec![0u8; len];
    prk.expand(&info, Len(len)).and_then(|okm| okm.fill(&mut out)).expect("HKDF-Expand");
    out
}

fn hkdf_algorithm(suite: CipherSuite) -> hkdf::Algorithm {
    match suite {
        CipherSuite::Aes256GcmSha384 => hkdf::HKDF_SHA384,
        _ => hkdf::HKDF_SHA256,
    }
}

fn digest_algorithm(suite: CipherSuite) -> &'static digest::Algorithm {
    match suite {
        CipherSuite::Aes256GcmSha384 => &digest::SHA384,
        _ => &digest::SHA256,
    }
}

/// The fixed traffic secret the vectors of `suite` derive their key and IV from.
pub fn traffic_secret(suite: CipherSuite) -> Vec<u8> {
    let input = format!("{SECRET_PREFIX}{}", suite.name());
    digest::digest(digest_algorithm(suite), input.as_bytes()).as_ref().to_vec()
}

/// The traffic key and IV of `suite`'s vectors.
pub fn key_and_iv(suite: CipherSuite) -> (Vec<u8>, Vec<u8>) {
    let secret = traffic_secret(suite);
    let key = hkdf_expand_label(suite, &secret, b"key", b"", suite.key_len());
    let iv = hkdf_expand_label(suite, &secret, b"iv", b"", suite.iv_len());
    (key, iv)
}

/// The content of a vector with `len` content bytes.
pub fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Builds every vector.
pub fn generate() -> VectorFile {
    let mut vectors = Vec::new();
    for suite in CipherSuite::ALL {
        let (key_bytes, iv) = key_and_iv(suite);
        let key = RecordKey::new(suite, &key_bytes, &iv).expect("derived key has the right length");
        for (message_id, record_index, content_len, padding_len) in SHAPES {
            let id = MessageId::new(message_id).expect("shape has a 48-bit message ID");
            let plaintext = content(content_len);
            let record = key
                .seal_record(
                    record_sequence(id, record_index),
                    &plaintext,
                    APPLICATION_DATA,
                    padding_len,
                )
                .expect("shape fits in a record");
            vectors.push(Vector {
                cipher_suite: suite.name().to_owned(),
                key: hex::encode(&key_bytes),
                iv: hex::encode(&iv),
                message_id,
                record_index,
                plaintext: hex::encode(&plaintext),
                content_type: APPLICATION_DATA,
                padding_len,
                record: hex::encode(&record),
            });
        }
    }
    VectorFile { vectors }
}

/// The exact text of `docs/test-vectors/records.json`: pretty-printed JSON and a
/// final newline.
pub fn generate_json() -> String {
    let mut text = serde_json::to_string_pretty(&generate()).expect("vectors serialize");
    text.push('\n');
    text
}
