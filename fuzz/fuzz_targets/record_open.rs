//! Record opening and message layout recovery on arbitrary bytes.
//!
//! Input layout (missing bytes read as zero):
//!
//! ```text
//! [0..8)   record sequence number, big-endian u64
//! [8]      selector: bits 0-1 pick the cipher suite, bit 2 the mode
//! mode 0 (open arbitrary bytes):
//!   [9..)  the record handed to RecordKey::open_in_place
//! mode 1 (seal, maybe tamper, open):
//!   [9]    inner content type
//!   [10..12) padding length, big-endian u16
//!   [12]   tamper value (0 = no tampering)
//!   [13..15) tamper position, big-endian u16 (modulo the record length)
//!   [15..) content
//! ```
//!
//! `MessageLayout::from_wire` additionally gets the u32 at [0..4) and the u16 at
//! [4..6) as wire length and record size.
//!
//! Oracles: nothing panics; arbitrary bytes never authenticate (with overwhelming
//! probability); a sealed record opens to what was sealed; a tampered record is
//! rejected; a recovered layout is consistent with itself.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use smt_proto::record::{
    CipherSuite, MessageLayout, RecordError, RecordKey, MAX_PLAINTEXT_LEN, RECORD_HEADER_LEN,
    RECORD_OVERHEAD, TAG_LEN,
};

fn keys() -> &'static [RecordKey; 3] {
    static KEYS: OnceLock<[RecordKey; 3]> = OnceLock::new();
    KEYS.get_or_init(|| {
        CipherSuite::ALL.map(|suite| {
            let key: Vec<u8> = (0..suite.key_len() as u8).collect();
            RecordKey::new(suite, &key, &[0xa5; 12]).expect("fixed key is valid")
        })
    })
}

/// Reads `N` bytes at `at`, zero-filled past the end of the input.
fn bytes_at<const N: usize>(data: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = data.get(at + i).copied().unwrap_or(0);
    }
    out
}

fn check_layout(wire_len: u32, record_size: u16) {
    let Some(layout) = MessageLayout::from_wire(wire_len, record_size) else {
        return;
    };
    assert_eq!(layout.wire_len(), wire_len);
    assert_eq!(layout.record_size(), record_size);
    assert_eq!(
        MessageLayout::for_payload(layout.payload_len(), usize::from(record_size)),
        Some(layout)
    );
    let count = layout.record_count();
    assert!(count >= 1);
    let last = count - 1;
    assert_eq!(layout.record_range(0).start, 0);
    assert_eq!(layout.record_range(last).end, wire_len as usize);
    assert_eq!(layout.payload_range(last).end, layout.payload_len());
    assert!(layout.content_len(last) >= 1 && layout.content_len(last) <= usize::from(record_size));
    assert_eq!(layout.record_containing(wire_len as usize - 1), last);
    assert_eq!(layout.record_containing(layout.record_range(last).start), last);
    if count > 1 {
        assert_eq!(layout.content_len(0), usize::from(record_size));
        assert_eq!(layout.record_range(0).len(), usize::from(record_size) + RECORD_OVERHEAD);
        assert_eq!(layout.record_range(1).start, layout.record_range(0).end);
    }
}

fuzz_target!(|data: &[u8]| {
    let sequence = u64::from_be_bytes(bytes_at(data, 0));
    check_layout(u32::from_be_bytes(bytes_at(data, 0)), u16::from_be_bytes(bytes_at(data, 4)));

    let [selector] = bytes_at(data, 8);
    let key = &keys()[usize::from(selector & 3) % 3];

    if selector & 4 == 0 {
        let mut record = data.get(9..).unwrap_or_default().to_vec();
        let len = record.len();
        if let Ok(opened) = key.open_in_place(sequence, &mut record) {
            // Only reachable by forging a tag: report it loudly.
            assert_eq!(
                RECORD_HEADER_LEN + opened.content.len() + 1 + opened.padding_len + TAG_LEN,
                len
            );
            panic!("arbitrary bytes authenticated: {opened:?}");
        }
        return;
    }

    let [content_type] = bytes_at(data, 9);
    let padding_len = usize::from(u16::from_be_bytes(bytes_at(data, 10)));
    let [tamper] = bytes_at(data, 12);
    let tamper_at = usize::from(u16::from_be_bytes(bytes_at(data, 13)));
    let content = data.get(15..).unwrap_or_default();

    let sealed = key.seal_record(sequence, content, content_type, padding_len);
    let mut record = match sealed {
        Ok(record) => record,
        Err(err) => {
            assert!(content.len() + padding_len > MAX_PLAINTEXT_LEN, "seal failed: {err}");
            assert_eq!(err, RecordError::TooLong(content.len() + padding_len));
            return;
        }
    };
    assert!(content.len() + padding_len <= MAX_PLAINTEXT_LEN);
    assert_eq!(record.len(), RecordKey::record_len(content.len(), padding_len));

    if tamper != 0 {
        let at = tamper_at % record.len();
        record[at] ^= tamper;
        let err = key.open_in_place(sequence, &mut record).expect_err("tampered record opened");
        if at < RECORD_HEADER_LEN {
            assert_eq!(err, RecordError::MalformedHeader);
        } else {
            assert_eq!(err, RecordError::AuthenticationFailed);
        }
        return;
    }

    // Opening under another sequence number must fail.
    let mut copy = record.clone();
    assert_eq!(
        key.open_in_place(sequence ^ 1, &mut copy).unwrap_err(),
        RecordError::AuthenticationFailed
    );

    match key.open_in_place(sequence, &mut record) {
        Ok(opened) if content_type != 0 => {
            assert_eq!(opened.content, content);
            assert_eq!(opened.content_type, content_type);
            assert_eq!(opened.padding_len, padding_len);
        }
        Ok(opened) => {
            // Content type 0 is indistinguishable from padding: the last non-zero
            // content byte becomes the content type. Still a prefix of the content.
            assert!(content.starts_with(opened.content));
            assert_ne!(opened.content_type, 0);
        }
        Err(err) => {
            assert_eq!(content_type, 0, "sealed record failed to open: {err}");
            assert!(content.iter().all(|&b| b == 0));
            assert_eq!(err, RecordError::MissingContentType);
        }
    }
});
