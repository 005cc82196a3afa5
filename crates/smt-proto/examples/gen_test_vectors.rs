//! Prints the TLS 1.3 record test vectors as JSON.
//!
//! ```text
//! cargo run -p smt-proto --example gen_test_vectors > docs/test-vectors/records.json
//! ```
//!
//! The output is deterministic. Each cipher suite's key and IV are derived the way
//! TLS 1.3 derives traffic keys (RFC 8446 7.3), from a fixed traffic secret:
//!
//! ```text
//! secret = Hash("SMT record test vectors " || suite name)   e.g. "... TLS_AES_128_GCM_SHA256"
//! key    = HKDF-Expand-Label(secret, "key", "", key_len)
//! iv     = HKDF-Expand-Label(secret, "iv",  "", 12)
//! ```
//!
//! with `Hash` and HKDF over SHA-256 for TLS_AES_128_GCM_SHA256 and
//! TLS_CHACHA20_POLY1305_SHA256 and SHA-384 for TLS_AES_256_GCM_SHA384. Content byte
//! `i` is `i mod 251`. Every vector is one record sealed with `RecordKey::seal_record`
//! at sequence number `message_id << 16 | record_index`. The generation logic lives in
//! `tests/support/vectors.rs`, which `tests/test_vectors.rs` also uses to check that
//! the committed file matches it byte for byte.

#[path = "../tests/support/vectors.rs"]
mod vectors;

use std::io::Write;

fn main() -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(vectors::generate_json().as_bytes())?;
    stdout.flush()
}
