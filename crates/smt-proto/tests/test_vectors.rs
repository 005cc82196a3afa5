//! Checks `docs/test-vectors/records.json` against `RecordKey`, and that the file is
//! exactly what the generator (`examples/gen_test_vectors.rs`) prints.

#[path = "support/vectors.rs"]
mod vectors;

use std::collections::HashMap;
use std::path::PathBuf;

use smt_proto::record::{record_sequence, CipherSuite, RecordError, RecordKey};
use smt_proto::wire::MessageId;
use vectors::{Vector, VectorFile};

const REGENERATE: &str =
    "cargo run -p smt-proto --example gen_test_vectors > docs/test-vectors/records.json";

fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(vectors::VECTORS_FILE)
}

fn committed_text() -> String {
    let path = vectors_path();
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("cannot read {}: {e}; generate it with `{REGENERATE}`", path.display())
    })
}

fn committed() -> VectorFile {
    serde_json::from_str(&committed_text()).expect("records.json is valid vector JSON")
}

fn unhex(field: &str, text: &str) -> Vec<u8> {
    assert_eq!(text, text.to_lowercase(), "{field} is not lowercase hex");
    hex::decode(text).unwrap_or_else(|e| panic!("{field} is not hex: {e}"))
}

fn describe(v: &Vector) -> String {
    format!("{} message {} record {}", v.cipher_suite, v.message_id, v.record_index)
}

fn key_of(v: &Vector) -> RecordKey {
    let suite = CipherSuite::from_name(&v.cipher_suite)
        .unwrap_or_else(|| panic!("unknown cipher suite {}", v.cipher_suite));
    RecordKey::new(suite, &unhex("key", &v.key), &unhex("iv", &v.iv))
        .unwrap_or_else(|e| panic!("{}: {e}", describe(v)))
}

fn sequence_of(v: &Vector) -> u64 {
    let id = MessageId::new(v.message_id)
        .unwrap_or_else(|| panic!("{}: message ID exceeds 48 bits", describe(v)));
    record_sequence(id, v.record_index)
}

#[test]
fn every_vector_seals_to_its_record() {
    for v in committed().vectors {
        let key = key_of(&v);
        let sealed = key
            .seal_record(
                sequence_of(&v),
                &unhex("plaintext", &v.plaintext),
                v.content_type,
                v.padding_len,
            )
            .unwrap_or_else(|e| panic!("{}: {e}", describe(&v)));
        assert!(sealed == unhex("record", &v.record), "{}: sealed record differs", describe(&v));
    }
}

#[test]
fn every_vector_opens_to_its_content() {
    for v in committed().vectors {
        let key = key_of(&v);
        let plaintext = unhex("plaintext", &v.plaintext);
        let mut record = unhex("record", &v.record);
        let body_len = u16::try_from(record.len() - 5).expect("record fits a TLS length");
        let len = body_len.to_be_bytes();
        assert_eq!(record[..5], [0x17, 0x03, 0x03, len[0], len[1]], "{}: header", describe(&v));
        let opened = key
            .open_in_place(sequence_of(&v), &mut record)
            .unwrap_or_else(|e| panic!("{}: {e}", describe(&v)));
        assert!(opened.content == plaintext, "{}: content differs", describe(&v));
        assert_eq!(opened.content_type, v.content_type, "{}: content type", describe(&v));
        assert_eq!(opened.padding_len, v.padding_len, "{}: padding length", describe(&v));
    }
}

#[test]
fn every_vector_fails_to_open_under_a_neighbouring_sequence_number_or_when_modified() {
    for v in committed().vectors {
        let key = key_of(&v);
        let seq = sequence_of(&v);
        let record = unhex("record", &v.record);
        // record_index + 1 and message_id + 1. At the top of their ranges (record 65535,
        // message 2^48 - 1) these wrap around in the 64-bit sequence space, which still
        // gives a sequence number different from the right one.
        for (what, wrong) in [
            ("record_index + 1", seq.wrapping_add(1)),
            ("message_id + 1", seq.wrapping_add(1 << 16)),
        ] {
            let mut copy = record.clone();
            assert_eq!(
                key.open_in_place(wrong, &mut copy).unwrap_err(),
                RecordError::AuthenticationFailed,
                "{}: opened with {what}",
                describe(&v)
            );
        }
        // A modified ciphertext or tag must fail too: flip one bit of the first byte
        // after the header and one of the last byte of the tag.
        for at in [5, record.len() - 1] {
            let mut copy = record.clone();
            copy[at] ^= 0x01;
            assert_eq!(
                key.open_in_place(seq, &mut copy).unwrap_err(),
                RecordError::AuthenticationFailed,
                "{}: opened with byte {at} modified",
                describe(&v)
            );
        }
    }
}

#[test]
fn the_vectors_cover_the_edge_cases() {
    let file = committed();
    let mut per_suite: HashMap<&str, usize> = HashMap::new();
    for v in &file.vectors {
        *per_suite.entry(v.cipher_suite.as_str()).or_default() += 1;
    }
    for suite in CipherSuite::ALL {
        let n = per_suite.get(suite.name()).copied().unwrap_or(0);
        assert!(n >= 4, "{suite} has only {n} vectors");
    }
    let has = |what: &str, pred: &dyn Fn(&Vector) -> bool| {
        assert!(file.vectors.iter().any(pred), "no vector with {what}");
    };
    has("message_id > 2^32", &|v| v.message_id > 1 << 32);
    has("message_id = 2^48 - 1", &|v| v.message_id == (1 << 48) - 1);
    has("record_index > 0", &|v| v.record_index > 0);
    has("record_index = 65535", &|v| v.record_index == 65535);
    has("empty plaintext", &|v| v.plaintext.is_empty());
    has("a 16384-byte plaintext", &|v| v.plaintext.len() == 2 * 16384);
    has("padding", &|v| v.padding_len > 0);
}

#[test]
fn hkdf_expand_label_matches_rfc8448() {
    // RFC 8448 section 3 (simple 1-RTT handshake, TLS_AES_128_GCM_SHA256): the server
    // handshake traffic secret and the write key and IV derived from it.
    let secret =
        hex::decode("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38").unwrap();
    let suite = CipherSuite::Aes128GcmSha256;
    let key = vectors::hkdf_expand_label(suite, &secret, b"key", b"", 16);
    let iv = vectors::hkdf_expand_label(suite, &secret, b"iv", b"", 12);
    assert_eq!(hex::encode(key), "3fce516009c21727d0f2e4e86ee403bc");
    assert_eq!(hex::encode(iv), "5d313eb2671276ee13000b30");
}

#[test]
fn regenerating_reproduces_the_committed_file_byte_for_byte() {
    let generated = vectors::generate_json();
    // Not assert_eq!: the file is ~200 KB and a full diff would drown the message.
    assert!(
        generated == committed_text(),
        "{} is out of date with the generator; regenerate it with `{REGENERATE}`",
        vectors::VECTORS_FILE
    );
}

#[test]
fn key_update_derivation_matches_an_independent_hkdf_expand_label() {
    // The library's TrafficSecret against the test-support HKDF-Expand-Label (written
    // separately for the vectors): key, IV and the "traffic upd" successor agree.
    for suite in CipherSuite::ALL {
        let len = if suite == CipherSuite::Aes256GcmSha384 { 48 } else { 32 };
        let secret: Vec<u8> = (0..len as u8).collect();
        let ours = smt_proto::record::TrafficSecret::new(suite, &secret).unwrap();
        let (key, iv) = ours.key_and_iv();
        assert_eq!(key, vectors::hkdf_expand_label(suite, &secret, b"key", b"", suite.key_len()));
        assert_eq!(iv, vectors::hkdf_expand_label(suite, &secret, b"iv", b"", 12));
        let next = vectors::hkdf_expand_label(suite, &secret, b"traffic upd", b"", len);
        let (next_key, next_iv) = ours.next().key_and_iv();
        assert_eq!(
            next_key,
            vectors::hkdf_expand_label(suite, &next, b"key", b"", suite.key_len())
        );
        assert_eq!(next_iv, vectors::hkdf_expand_label(suite, &next, b"iv", b"", 12));
    }
}
