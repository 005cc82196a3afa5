//! Attacks on the record/message layer, performed for real, each asserting that the
//! receiver rejects the forged wire image.
//!
//! The attacker controls every byte on the wire, including the plaintext DATA header
//! fields (message length, record size) from which the receiver computes the layout.
//! What the attacker does not have is the traffic key of either direction. Some tests
//! go further and give the "attacker" the genuine key, to show that the structural
//! checks (content type, content length, authenticated prologue) hold on their own.

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngCore, SeedableRng};
use smt_proto::record::{
    compact_payload, open_message, open_message_record, record_sequence, seal_message, CipherSuite,
    MessageError, MessageLayout, RecordError, RecordKey, APPLICATION_DATA, MAX_PLAINTEXT_LEN,
    PROLOGUE_LEN, RECORD_HEADER_LEN, RECORD_OVERHEAD,
};
use smt_proto::wire::{DataPacket, DataRepr, MessageId};

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

/// A key derived deterministically from `seed` (key bytes and IV both depend on it).
fn key(suite: CipherSuite, seed: u8) -> RecordKey {
    let key: Vec<u8> =
        (0..suite.key_len()).map(|i| seed.wrapping_mul(31).wrapping_add(i as u8)).collect();
    let iv: Vec<u8> = (0..12).map(|i| seed ^ 0xa5 ^ (i as u8).wrapping_mul(7)).collect();
    RecordKey::new(suite, &key, &iv).unwrap()
}

/// The client-to-server key of the test session.
fn c2s(suite: CipherSuite) -> RecordKey {
    key(suite, 1)
}

/// The server-to-client key of the test session (the other direction).
fn s2c(suite: CipherSuite) -> RecordKey {
    key(suite, 2)
}

fn id(value: u64) -> MessageId {
    MessageId::new(value).unwrap()
}

/// A payload of `len` bytes that is not all one value, so misplaced bytes show.
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    StdRng::seed_from_u64(seed).fill_bytes(&mut bytes);
    bytes
}

fn layout_of(wire: &[u8], record_size: u16) -> MessageLayout {
    MessageLayout::from_wire(wire.len() as u32, record_size).unwrap()
}

/// Opens `wire` and asserts the receiver rejected it, returning the error.
fn must_reject(
    key: &RecordKey,
    message_id: MessageId,
    wire: Vec<u8>,
    record_size: u16,
    what: &str,
) -> MessageError {
    match open_message(key, message_id, wire, record_size) {
        Ok(payload) => panic!("{what}: forged wire image accepted ({} bytes)", payload.len()),
        Err(error) => error,
    }
}

/// Record sizes worth trying as forged header values for small messages: every small
/// size plus a few large ones (all sizes above the content length give the same
/// single-record layout).
fn candidate_record_sizes() -> impl Iterator<Item = u16> {
    (1u16..=300).chain([511, 512, 1000, 4096, 16383, 16384])
}

/// The error every record of a message with one modified byte at `pos` must produce.
fn expected_flip_error(layout: &MessageLayout, pos: usize) -> MessageError {
    let index = layout.record_containing(pos);
    let within = pos - layout.record_range(index).start;
    let error = if within < RECORD_HEADER_LEN {
        RecordError::MalformedHeader
    } else {
        RecordError::AuthenticationFailed
    };
    MessageError::Record { index, error }
}

// ---------------------------------------------------------------------------------
// Modifying bytes
// ---------------------------------------------------------------------------------

#[test]
fn flipping_any_byte_of_a_small_multi_record_message_is_detected() {
    let data = payload(100, 1);
    let record_size = 32u16;
    for suite in CipherSuite::ALL {
        let k = c2s(suite);
        let mid = id(77);
        let wire = seal_message(&k, mid, &data, record_size.into()).unwrap();
        let layout = layout_of(&wire, record_size);
        assert_eq!(layout.record_count(), 4);
        assert_eq!(open_message(&k, mid, wire.clone(), record_size).unwrap(), data);
        for pos in 0..wire.len() {
            for mask in [0x01u8, 0x80] {
                let mut forged = wire.clone();
                forged[pos] ^= mask;
                let what = format!("{suite}: byte {pos} ^ {mask:#04x}");
                let error = must_reject(&k, mid, forged, record_size, &what);
                assert_eq!(error, expected_flip_error(&layout, pos), "{what}");
            }
        }
    }
}

#[test]
fn flipping_sampled_bytes_of_full_size_records_is_detected() {
    let record_size = MAX_PLAINTEXT_LEN as u16;
    let data = payload(2 * MAX_PLAINTEXT_LEN + 5000, 2);
    for suite in CipherSuite::ALL {
        let k = c2s(suite);
        let mid = id(0x1234_5678);
        let wire = seal_message(&k, mid, &data, record_size.into()).unwrap();
        let layout = layout_of(&wire, record_size);
        assert_eq!(layout.record_count(), 3);
        let len = wire.len();
        let mut positions: Vec<usize> = (0..len).step_by(97).collect();
        positions.extend(0..30);
        positions.extend(len - 30..len);
        // Both sides of every record boundary.
        for index in 1..layout.record_count() {
            let start = layout.record_range(index).start;
            positions.extend(start - 20..start + 20);
        }
        positions.sort_unstable();
        positions.dedup();
        for pos in positions {
            for mask in [0x01u8, 0x80] {
                let mut forged = wire.clone();
                forged[pos] ^= mask;
                let what = format!("{suite}: byte {pos} ^ {mask:#04x}");
                let error = must_reject(&k, mid, forged, record_size, &what);
                assert_eq!(error, expected_flip_error(&layout, pos), "{what}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Moving and replaying records
// ---------------------------------------------------------------------------------

#[test]
fn swapping_two_equal_size_records_fails_authentication() {
    let data = payload(100, 3);
    for suite in CipherSuite::ALL {
        let k = c2s(suite);
        let mid = id(9);
        let wire = seal_message(&k, mid, &data, 32).unwrap();
        let layout = layout_of(&wire, 32);
        let (r1, r2) = (layout.record_range(1), layout.record_range(2));
        assert_eq!(r1.len(), r2.len());
        let mut forged = wire.clone();
        forged[r1.clone()].copy_from_slice(&wire[r2.clone()]);
        forged[r2].copy_from_slice(&wire[r1]);
        assert_eq!(
            must_reject(&k, mid, forged, 32, suite.name()),
            MessageError::Record { index: 1, error: RecordError::AuthenticationFailed }
        );
    }
}

#[test]
fn moving_record_zero_to_a_later_index_fails_authentication() {
    // Record 0 and record 1 have the same size (record 0's content includes the
    // prologue), so record 0 can be copied over record 1 without changing the layout.
    let data = payload(100, 4);
    let k = c2s(CipherSuite::Aes128GcmSha256);
    let mid = id(10);
    let wire = seal_message(&k, mid, &data, 32).unwrap();
    let layout = layout_of(&wire, 32);
    let mut forged = wire.clone();
    forged[layout.record_range(1)].copy_from_slice(&wire[layout.record_range(0)]);
    assert_eq!(
        must_reject(&k, mid, forged, 32, "record 0 at index 1"),
        MessageError::Record { index: 1, error: RecordError::AuthenticationFailed }
    );
}

#[test]
fn record_spliced_from_another_message_at_the_same_index_is_rejected() {
    let data_a = payload(100, 5);
    let data_b = payload(100, 6);
    for suite in CipherSuite::ALL {
        let k = c2s(suite);
        let (id_a, id_b) = (id(1000), id(1001));
        let wire_a = seal_message(&k, id_a, &data_a, 32).unwrap();
        let wire_b = seal_message(&k, id_b, &data_b, 32).unwrap();
        let layout = layout_of(&wire_b, 32);
        assert_eq!(layout, layout_of(&wire_a, 32));
        for index in 0..layout.record_count() {
            let range = layout.record_range(index);
            let mut forged = wire_b.clone();
            forged[range.clone()].copy_from_slice(&wire_a[range]);
            assert_eq!(
                must_reject(&k, id_b, forged, 32, &format!("{suite}: record {index} of A in B")),
                MessageError::Record { index, error: RecordError::AuthenticationFailed }
            );
        }
    }
}

#[test]
fn whole_message_replayed_under_another_message_id_is_rejected() {
    let data = payload(100, 7);
    for suite in CipherSuite::ALL {
        let k = c2s(suite);
        let wire = seal_message(&k, id(1000), &data, 32).unwrap();
        for other in [0, 999, 1001, 1000 | 1 << 47, MessageId::MAX.get()] {
            assert_eq!(
                must_reject(&k, id(other), wire.clone(), 32, &format!("{suite}: as {other}")),
                MessageError::Record { index: 0, error: RecordError::AuthenticationFailed }
            );
        }
    }
}

#[test]
fn records_sealed_under_the_other_direction_key_are_rejected() {
    let data = payload(100, 8);
    for suite in CipherSuite::ALL {
        let (ours, theirs) = (c2s(suite), s2c(suite));
        let mid = id(42);
        // A whole message reflected back at its sender.
        let reflected = seal_message(&ours, mid, &data, 32).unwrap();
        assert_eq!(
            must_reject(&theirs, mid, reflected.clone(), 32, suite.name()),
            MessageError::Record { index: 0, error: RecordError::AuthenticationFailed }
        );
        // One record of the other direction's message with the same ID and layout.
        let genuine = seal_message(&theirs, mid, &data, 32).unwrap();
        let layout = layout_of(&genuine, 32);
        for index in 0..layout.record_count() {
            let range = layout.record_range(index);
            let mut forged = genuine.clone();
            forged[range.clone()].copy_from_slice(&reflected[range]);
            assert_eq!(
                must_reject(&theirs, mid, forged, 32, &format!("{suite}: record {index}")),
                MessageError::Record { index, error: RecordError::AuthenticationFailed }
            );
        }
    }
}

#[test]
fn same_key_with_a_different_iv_or_same_iv_with_a_different_key_is_rejected() {
    let data = payload(50, 9);
    for suite in CipherSuite::ALL {
        let key_bytes = vec![0x11u8; suite.key_len()];
        let sender = RecordKey::new(suite, &key_bytes, &[0x22; 12]).unwrap();
        let other_iv = RecordKey::new(suite, &key_bytes, &[0x23; 12]).unwrap();
        let other_key = RecordKey::new(suite, &vec![0x12u8; suite.key_len()], &[0x22; 12]).unwrap();
        let wire = seal_message(&sender, id(5), &data, 16).unwrap();
        for receiver in [&other_iv, &other_key] {
            assert_eq!(
                must_reject(receiver, id(5), wire.clone(), 16, suite.name()),
                MessageError::Record { index: 0, error: RecordError::AuthenticationFailed }
            );
        }
    }
}

#[test]
fn wrong_message_id_fails_authentication() {
    let data = payload(300, 10);
    for suite in CipherSuite::ALL {
        let k = c2s(suite);
        for genuine in [0u64, 1, 0xffff, 0x1_0000, 0x7fff_ffff_ffff, MessageId::MAX.get() - 1] {
            let wire = seal_message(&k, id(genuine), &data, 64).unwrap();
            assert_eq!(open_message(&k, id(genuine), wire.clone(), 64).unwrap(), data);
            let plus_one = id(genuine + 1);
            let high_bit = id(genuine ^ 1 << 47);
            let low_bit = id(genuine ^ 1);
            for wrong in [plus_one, high_bit, low_bit] {
                assert_eq!(
                    must_reject(&k, wrong, wire.clone(), 64, &format!("{genuine} as {wrong}")),
                    MessageError::Record { index: 0, error: RecordError::AuthenticationFailed }
                );
            }
        }
    }
}

#[test]
fn message_ids_differing_only_in_high_bits_fail_authentication() {
    let data = payload(40, 11);
    let k = c2s(CipherSuite::Chacha20Poly1305Sha256);
    for bit in 16..48 {
        let (a, b) = (id(0x5), id(0x5 | 1 << bit));
        let wire = seal_message(&k, a, &data, 16).unwrap();
        assert_eq!(
            must_reject(&k, b, wire, 16, &format!("bit {bit}")),
            MessageError::Record { index: 0, error: RecordError::AuthenticationFailed }
        );
    }
}

// ---------------------------------------------------------------------------------
// Forging the plaintext header: message length and record size
// ---------------------------------------------------------------------------------

#[test]
fn forged_shorter_message_length_is_a_prologue_mismatch() {
    // 120 payload + 8 prologue = 128 content bytes: 4 full 32-byte records.
    let data = payload(120, 12);
    for suite in CipherSuite::ALL {
        let k = c2s(suite);
        let mid = id(3);
        let wire = seal_message(&k, mid, &data, 32).unwrap();
        let layout = layout_of(&wire, 32);
        assert_eq!(layout.record_count(), 4);
        for keep in 1..=3 {
            let truncated_len = layout.record_range(keep - 1).end;
            // The receiver computes a perfectly valid layout from the forged length.
            let forged_layout = MessageLayout::from_wire(truncated_len as u32, 32)
                .expect("a truncation at a record boundary looks like a valid message");
            assert_eq!(forged_layout.record_count(), keep);
            assert_eq!(forged_layout.payload_len(), keep * 32 - PROLOGUE_LEN);
            assert_eq!(
                must_reject(&k, mid, wire[..truncated_len].to_vec(), 32, &format!("{keep}")),
                MessageError::PrologueMismatch { payload_len: 120, record_size: 32 }
            );
        }
    }
}

#[test]
fn forged_shorter_length_of_a_message_with_a_partial_last_record_is_rejected() {
    // 100 payload: records of 32, 32, 32, 12 content bytes.
    let data = payload(100, 13);
    let k = c2s(CipherSuite::Aes128GcmSha256);
    let mid = id(3);
    let wire = seal_message(&k, mid, &data, 32).unwrap();
    let layout = layout_of(&wire, 32);
    for keep in 1..=3 {
        let end = layout.record_range(keep - 1).end;
        assert!(MessageLayout::from_wire(end as u32, 32).is_some());
        assert_eq!(
            must_reject(&k, mid, wire[..end].to_vec(), 32, &format!("{keep}")),
            MessageError::PrologueMismatch { payload_len: 100, record_size: 32 }
        );
    }
}

#[test]
fn every_truncation_with_any_plausible_record_size_is_rejected() {
    let data = payload(100, 14);
    for suite in CipherSuite::ALL {
        let k = c2s(suite);
        let mid = id(4);
        let wire = seal_message(&k, mid, &data, 32).unwrap();
        let mut tried = 0;
        for len in 0..wire.len() {
            for record_size in candidate_record_sizes() {
                if MessageLayout::from_wire(len as u32, record_size).is_none() {
                    // open_message must refuse to even try.
                    assert_eq!(
                        open_message(&k, mid, wire[..len].to_vec(), record_size),
                        Err(MessageError::InvalidLayout { wire_len: len as u32, record_size })
                    );
                    continue;
                }
                tried += 1;
                must_reject(
                    &k,
                    mid,
                    wire[..len].to_vec(),
                    record_size,
                    &format!("{suite}: {len} bytes, record size {record_size}"),
                );
            }
        }
        assert!(tried > 100, "only {tried} plausible forged layouts");
    }
}

#[test]
fn truncated_single_record_message_is_rejected() {
    for suite in CipherSuite::ALL {
        let k = c2s(suite);
        let mid = id(6);
        for payload_len in [0usize, 1, 20, 100] {
            let data = payload(payload_len, 15);
            let wire = seal_message(&k, mid, &data, 16384).unwrap();
            assert_eq!(layout_of(&wire, 16384).record_count(), 1);
            for cut in 1..=wire.len() {
                let len = wire.len() - cut;
                let mut forged = wire[..len].to_vec();
                let what = format!("{suite}: {payload_len} bytes cut by {cut}");
                if MessageLayout::from_wire(len as u32, 16384).is_none() {
                    assert!(matches!(
                        open_message(&k, mid, forged, 16384),
                        Err(MessageError::InvalidLayout { .. })
                    ));
                    continue;
                }
                // The TLS header still states the old length: malformed.
                assert_eq!(
                    must_reject(&k, mid, forged.clone(), 16384, &what),
                    MessageError::Record { index: 0, error: RecordError::MalformedHeader },
                );
                // Fix the TLS header up too: the header is authenticated data.
                let body = (len - RECORD_HEADER_LEN) as u16;
                forged[3..5].copy_from_slice(&body.to_be_bytes());
                assert_eq!(
                    must_reject(&k, mid, forged, 16384, &what),
                    MessageError::Record { index: 0, error: RecordError::AuthenticationFailed },
                );
            }
        }
    }
}

#[test]
fn forged_longer_message_length_with_an_appended_record_is_rejected() {
    // 120 payload + 8 = 128 content bytes: exactly 4 full records, so an appended
    // 5th record gives a layout that looks valid.
    let data = payload(120, 16);
    for suite in CipherSuite::ALL {
        let k = c2s(suite);
        let mid = id(8);
        let wire = seal_message(&k, mid, &data, 32).unwrap();
        let attacker = key(suite, 0xee);
        let extra_sequence = record_sequence(mid, 4);
        let appended = [
            // Sealed by the attacker under its own key.
            attacker.seal_record(extra_sequence, &[0xaa; 32], APPLICATION_DATA, 0).unwrap(),
            // Garbage of the right shape.
            {
                let mut g = vec![0x5cu8; 32 + RECORD_OVERHEAD];
                g[..5].copy_from_slice(&[23, 3, 3, 0, 49]);
                g
            },
            // Record 4 of another message under the genuine key.
            {
                let other = seal_message(&k, id(9), &payload(152, 17), 32).unwrap();
                let layout = layout_of(&other, 32);
                other[layout.record_range(4)].to_vec()
            },
            // Even a record sealed under the genuine key at the right sequence number
            // (which an attacker cannot produce) does not extend the message: the
            // prologue states the true length.
            k.seal_record(extra_sequence, &[0xaa; 32], APPLICATION_DATA, 0).unwrap(),
        ];
        for (n, extra) in appended.iter().enumerate() {
            let mut forged = wire.clone();
            forged.extend_from_slice(extra);
            let forged_layout = MessageLayout::from_wire(forged.len() as u32, 32)
                .expect("the extended message looks valid");
            assert_eq!(forged_layout.record_count(), 5);
            assert_eq!(forged_layout.payload_len(), 152);
            assert_eq!(
                must_reject(&k, mid, forged, 32, &format!("{suite}: extra record {n}")),
                MessageError::PrologueMismatch { payload_len: 120, record_size: 32 }
            );
        }
    }
}

#[test]
fn forged_longer_message_length_with_appended_bytes_is_rejected() {
    let data = payload(100, 18);
    let k = c2s(CipherSuite::Aes256GcmSha384);
    let mid = id(11);
    let wire = seal_message(&k, mid, &data, 32).unwrap();
    let mut tried = 0;
    for extra in 1..=200usize {
        let mut forged = wire.clone();
        forged.extend((0..extra).map(|i| i as u8));
        for record_size in candidate_record_sizes() {
            if MessageLayout::from_wire(forged.len() as u32, record_size).is_none() {
                continue;
            }
            tried += 1;
            must_reject(
                &k,
                mid,
                forged.clone(),
                record_size,
                &format!("{extra} extra bytes, record size {record_size}"),
            );
        }
    }
    assert!(tried > 100, "only {tried} plausible forged layouts");
}

#[test]
fn forged_record_size_is_rejected() {
    for (payload_len, record_size) in [(100usize, 32u16), (120, 32), (1000, 100), (40000, 16384)] {
        let data = payload(payload_len, 19);
        for suite in CipherSuite::ALL {
            let k = c2s(suite);
            let mid = id(12);
            let wire = seal_message(&k, mid, &data, record_size.into()).unwrap();
            let mut forged_sizes = 0;
            for forged_size in 1..=MAX_PLAINTEXT_LEN as u16 {
                if forged_size == record_size
                    || MessageLayout::from_wire(wire.len() as u32, forged_size).is_none()
                {
                    continue;
                }
                forged_sizes += 1;
                must_reject(
                    &k,
                    mid,
                    wire.clone(),
                    forged_size,
                    &format!("{suite}: {payload_len} bytes, size {record_size} as {forged_size}"),
                );
            }
            assert!(
                forged_sizes > 0,
                "no valid forged record size for {payload_len}/{record_size}"
            );
        }
    }
}

#[test]
fn forged_record_size_that_keeps_record_zero_intact_is_a_prologue_mismatch() {
    // A single-record message of 20 content bytes opens as the same single record for
    // every record size >= 20, so record 0 authenticates and only the prologue tells.
    let data = payload(12, 20);
    let k = c2s(CipherSuite::Aes128GcmSha256);
    let mid = id(13);
    let wire = seal_message(&k, mid, &data, 16384).unwrap();
    for forged_size in [20u16, 21, 100, 16383] {
        assert_eq!(layout_of(&wire, forged_size).record_count(), 1);
        assert_eq!(
            must_reject(&k, mid, wire.clone(), forged_size, &format!("{forged_size}")),
            MessageError::PrologueMismatch { payload_len: 12, record_size: 16384 }
        );
    }
}

#[test]
fn forged_data_packet_header_fields_are_detected() {
    // End to end through the DATA packet format: the attacker rewrites the plaintext
    // message length / record size (and trims or pads the carried bytes to match).
    let data = payload(120, 21);
    let k = c2s(CipherSuite::Aes128GcmSha256);
    let mid = id(14);
    let wire = seal_message(&k, mid, &data, 32).unwrap();
    let packet_for = |wire: &[u8], record_size: u16| {
        let repr = DataRepr {
            message_length: wire.len() as u32,
            offset: 0,
            unscheduled: wire.len() as u32,
            record_size,
            priority: 0,
            payload: wire,
        };
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut DataPacket::new_unchecked(&mut buf[..]));
        buf
    };
    let receive = |buf: &[u8]| {
        let packet = DataPacket::new_checked(buf).unwrap();
        let repr = DataRepr::parse(&packet).unwrap();
        assert_eq!(repr.payload.len(), repr.message_length as usize);
        open_message(&k, mid, repr.payload.to_vec(), repr.record_size)
    };
    assert_eq!(receive(&packet_for(&wire, 32)).unwrap(), data);
    let mut longer = wire.clone();
    longer.extend_from_slice(&wire[54..108]);
    for (forged, record_size) in [
        (wire[..108].to_vec(), 32u16),
        (wire[..162].to_vec(), 32),
        (longer, 32),
        (wire.clone(), 64),
        (wire.clone(), 16384),
    ] {
        let layout_ok = MessageLayout::from_wire(forged.len() as u32, record_size).is_some();
        let result = receive(&packet_for(&forged, record_size));
        assert!(result.is_err(), "{} bytes / {record_size}: accepted", forged.len());
        if layout_ok {
            assert!(!matches!(result, Err(MessageError::InvalidLayout { .. })));
        }
    }
}

// ---------------------------------------------------------------------------------
// Records with valid authentication but the wrong shape (requires the genuine key)
// ---------------------------------------------------------------------------------

#[test]
fn padded_record_inside_a_message_is_a_content_length_error() {
    let data = payload(100, 22);
    for suite in CipherSuite::ALL {
        let k = c2s(suite);
        let mid = id(15);
        let wire = seal_message(&k, mid, &data, 32).unwrap();
        let layout = layout_of(&wire, 32);
        let opened = open_message(&k, mid, wire.clone(), 32).unwrap();
        assert_eq!(opened, data);
        for index in 0..layout.record_count() {
            let range = layout.record_range(index);
            let content_len = layout.content_len(index);
            // The genuine content of this record, from a fresh open.
            let mut plain = wire.clone();
            open_message_record(&k, mid, &layout, index, &mut plain).unwrap();
            let content = plain[range.start + RECORD_HEADER_LEN..][..content_len].to_vec();
            for padding in 1..=content_len {
                let shortened = &content[..content_len - padding];
                let sequence = record_sequence(mid, index as u16);
                let record = k.seal_record(sequence, shortened, APPLICATION_DATA, padding).unwrap();
                assert_eq!(record.len(), range.len(), "same size on the wire");
                let mut forged = wire.clone();
                forged[range.clone()].copy_from_slice(&record);
                assert_eq!(
                    must_reject(&k, mid, forged, 32, &format!("{suite}: {index}/{padding}")),
                    MessageError::ContentLength {
                        index,
                        expected: content_len,
                        actual: content_len - padding
                    }
                );
            }
        }
    }
}

#[test]
fn record_with_a_non_application_content_type_is_rejected() {
    let data = payload(100, 23);
    for suite in CipherSuite::ALL {
        let k = c2s(suite);
        let mid = id(16);
        let wire = seal_message(&k, mid, &data, 32).unwrap();
        let layout = layout_of(&wire, 32);
        for index in 0..layout.record_count() {
            let range = layout.record_range(index);
            let content_len = layout.content_len(index);
            let mut plain = wire.clone();
            open_message_record(&k, mid, &layout, index, &mut plain).unwrap();
            let content = plain[range.start + RECORD_HEADER_LEN..][..content_len].to_vec();
            for content_type in [22u8, 20, 21, 24, 0xff] {
                let sequence = record_sequence(mid, index as u16);
                let record = k.seal_record(sequence, &content, content_type, 0).unwrap();
                let mut forged = wire.clone();
                forged[range.clone()].copy_from_slice(&record);
                assert_eq!(
                    must_reject(&k, mid, forged, 32, &format!("{suite}: {index}/{content_type}")),
                    MessageError::UnexpectedContentType { index, content_type }
                );
            }
        }
    }
}

#[test]
fn handshake_record_in_a_message_is_an_unexpected_content_type() {
    let data = payload(100, 24);
    let k = c2s(CipherSuite::Aes128GcmSha256);
    let mid = id(17);
    let wire = seal_message(&k, mid, &data, 32).unwrap();
    let layout = layout_of(&wire, 32);
    let range = layout.record_range(2);
    let record = k.seal_record(record_sequence(mid, 2), &[0x01; 32], 22, 0).unwrap();
    let mut forged = wire;
    forged[range].copy_from_slice(&record);
    assert_eq!(
        must_reject(&k, mid, forged, 32, "handshake record"),
        MessageError::UnexpectedContentType { index: 2, content_type: 22 }
    );
}

#[test]
fn record_zero_with_a_forged_prologue_is_a_prologue_mismatch() {
    // Only the key holder could do this, but the check must still be exact.
    let data = payload(100, 25);
    let k = c2s(CipherSuite::Aes128GcmSha256);
    let mid = id(18);
    let wire = seal_message(&k, mid, &data, 32).unwrap();
    let layout = layout_of(&wire, 32);
    for (byte, value) in [(0usize, 1u8), (3, 99), (4, 1), (5, 33), (6, 1), (7, 1)] {
        let mut content = vec![0u8; 32];
        content[..8].copy_from_slice(&[0, 0, 0, 100, 0, 32, 0, 0]);
        content[byte] = value;
        let record = k.seal_record(record_sequence(mid, 0), &content, APPLICATION_DATA, 0).unwrap();
        let mut forged = wire.clone();
        forged[layout.record_range(0)].copy_from_slice(&record);
        let error = must_reject(&k, mid, forged, 32, &format!("prologue byte {byte}"));
        assert!(matches!(error, MessageError::PrologueMismatch { .. }), "{error:?}");
    }
}

// ---------------------------------------------------------------------------------
// open_message_record robustness
// ---------------------------------------------------------------------------------

#[test]
fn open_message_record_with_an_out_of_range_index_is_an_error() {
    // Layouts of 4 records: 120 payload bytes (4 full 32-byte records) and 100 (last
    // record 12 bytes). Buffers: the message itself, and a longer one whose bytes
    // after the layout hold a genuine record 4 (of a 5-record message with the same
    // ID), which an out-of-range index must not open either.
    let k = c2s(CipherSuite::Aes128GcmSha256);
    let mid = id(19);
    let longer = seal_message(&k, mid, &payload(152, 26), 32).unwrap();
    assert_eq!(layout_of(&longer, 32).record_count(), 5);
    let indices = [4usize, 5, 100, 0xffff, 0x1_0000, 0x1_0001, 1 << 63, usize::MAX / 2, usize::MAX];
    for payload_len in [120, 100] {
        let wire = seal_message(&k, mid, &payload(payload_len, 26), 32).unwrap();
        let layout = layout_of(&wire, 32);
        assert_eq!(layout.record_count(), 4);
        for (name, buffer) in [("exact", &wire), ("longer", &longer)] {
            for index in indices {
                let mut buf = buffer.clone();
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    open_message_record(&k, mid, &layout, index, &mut buf)
                }));
                let what = format!("{payload_len}-byte layout, {name} buffer, index {index}");
                match result {
                    Ok(Err(_)) => {}
                    Ok(Ok(())) => panic!("{what}: out-of-range record opened"),
                    Err(_) => panic!("{what}: open_message_record panicked"),
                }
            }
        }
    }
}

#[test]
fn open_message_record_with_a_too_short_wire_buffer_is_an_error() {
    let data = payload(100, 27);
    let k = c2s(CipherSuite::Aes128GcmSha256);
    let mid = id(20);
    let wire = seal_message(&k, mid, &data, 32).unwrap();
    let layout = layout_of(&wire, 32);
    for len in 0..wire.len() {
        for index in 0..layout.record_count() {
            let mut buf = wire[..len].to_vec();
            let result = open_message_record(&k, mid, &layout, index, &mut buf);
            // Only the exact wire image is accepted: a shorter buffer is refused
            // before any record is touched, even if the record's bytes are present.
            assert_eq!(
                result,
                Err(MessageError::InvalidLayout { wire_len: layout.wire_len(), record_size: 32 }),
                "{len} bytes, record {index}"
            );
        }
    }
}

#[test]
fn open_message_record_with_a_foreign_layout_never_panics() {
    // A layout that does not belong to the buffer (e.g. from a forged header) must
    // give errors, never panics, for every record index it describes. Record 0 can
    // never open under a foreign layout: its header length or prologue differs.
    let data = payload(100, 28);
    let k = c2s(CipherSuite::Aes128GcmSha256);
    let mid = id(21);
    let wire = seal_message(&k, mid, &data, 32).unwrap();
    let genuine = layout_of(&wire, 32);
    // Record sizes below the prologue length describe no message at all.
    for (payload_len, record_size) in [(0usize, 1usize), (50, 7), (1000, 3), (200_000, 4)] {
        assert_eq!(MessageLayout::for_payload(payload_len, record_size), None);
    }
    for (payload_len, record_size) in
        [(56usize, 32usize), (200, 32), (5, 16384), (2000, 8), (90, 33)]
    {
        let layout = MessageLayout::for_payload(payload_len, record_size).unwrap();
        assert_ne!(layout, genuine);
        for index in 0..layout.record_count() {
            let mut buf = wire.clone();
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                open_message_record(&k, mid, &layout, index, &mut buf)
            }));
            let what = format!("layout {payload_len}/{record_size}, record {index}");
            let result = result.unwrap_or_else(|_| panic!("{what}: panicked"));
            if index == 0 {
                assert!(result.is_err(), "{what}: opened");
            }
        }
    }
}

#[test]
fn record_sizes_below_the_prologue_length_seal_and_open_or_are_refused() {
    // The DATA header accepts any record size in 1..=16384. A record size smaller
    // than the 8-byte prologue must either work or be refused with an error.
    let k = c2s(CipherSuite::Aes128GcmSha256);
    let mid = id(22);
    for record_size in 1..=PROLOGUE_LEN + 1 {
        for len in [0usize, 1, 7, 8, 9, 100] {
            let data = payload(len, 29);
            let what = format!("{len} bytes in {record_size}-byte records");
            let sealed = std::panic::catch_unwind(|| seal_message(&k, mid, &data, record_size))
                .unwrap_or_else(|_| panic!("{what}: seal_message panicked"));
            match sealed {
                Ok(wire) => {
                    let opened = open_message(&k, mid, wire, record_size as u16);
                    assert_eq!(opened.as_deref(), Ok(&data[..]), "{what}");
                }
                Err(error) => {
                    assert!(matches!(error, MessageError::TooLarge { .. }), "{what}: {error:?}")
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------

fn any_suite() -> impl Strategy<Value = CipherSuite> {
    proptest::sample::select(CipherSuite::ALL.to_vec())
}

fn any_record_size() -> impl Strategy<Value = usize> {
    // Small sizes give many records; large ones are the common case.
    prop_oneof![1usize..=64, 1usize..=MAX_PLAINTEXT_LEN]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn open_inverts_seal(
        len in 0usize..200_000,
        seed in any::<u64>(),
        record_size in any_record_size(),
        message_id in 0u64..1 << 48,
        suite in any_suite(),
    ) {
        let data = payload(len, seed);
        let k = c2s(suite);
        let mid = id(message_id);
        let Some(layout) = MessageLayout::for_payload(len, record_size) else {
            prop_assert!(
                matches!(
                    seal_message(&k, mid, &data, record_size),
                    Err(MessageError::TooLarge { .. })
                ),
                "seal must refuse what has no layout"
            );
            return Ok(());
        };
        let wire = seal_message(&k, mid, &data, record_size).unwrap();
        prop_assert_eq!(wire.len(), layout.wire_len() as usize);
        prop_assert_eq!(
            MessageLayout::from_wire(layout.wire_len(), record_size as u16),
            Some(layout)
        );
        let opened = open_message(&k, mid, wire, record_size as u16).unwrap();
        prop_assert_eq!(opened, data);
    }

    #[test]
    fn records_open_in_any_order(
        len in 0usize..200_000,
        seed in any::<u64>(),
        record_size in any_record_size(),
        message_id in 0u64..1 << 48,
        suite in any_suite(),
    ) {
        let Some(layout) = MessageLayout::for_payload(len, record_size) else {
            return Ok(());
        };
        let data = payload(len, seed);
        let k = c2s(suite);
        let mid = id(message_id);
        let mut wire = seal_message(&k, mid, &data, record_size).unwrap();
        let mut order: Vec<usize> = (0..layout.record_count()).collect();
        order.shuffle(&mut StdRng::seed_from_u64(seed.rotate_left(17)));
        for &index in &order {
            prop_assert_eq!(open_message_record(&k, mid, &layout, index, &mut wire), Ok(()));
        }
        prop_assert_eq!(compact_payload(&layout, wire), data);
    }

    #[test]
    fn random_single_byte_corruption_is_detected(
        len in 0usize..5_000,
        seed in any::<u64>(),
        record_size in 1usize..=256,
        suite in any_suite(),
        position in any::<proptest::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let Some(layout) = MessageLayout::for_payload(len, record_size) else {
            return Ok(());
        };
        let k = c2s(suite);
        let mid = id(seed >> 16);
        let mut wire = seal_message(&k, mid, &payload(len, seed), record_size).unwrap();
        let pos = position.index(wire.len());
        wire[pos] ^= mask;
        prop_assert_eq!(
            open_message(&k, mid, wire, record_size as u16),
            Err(expected_flip_error(&layout, pos))
        );
    }
}
