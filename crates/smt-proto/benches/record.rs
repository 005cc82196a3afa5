//! Record layer micro-benchmark: `RecordKey` against the bare AEAD it wraps.
//!
//! For each content size, four measurements per cipher suite:
//!
//! * `raw_aead_seal`: `LessSafeKey::seal_in_place_separate_tag` over `content + 1`
//!   bytes (content plus inner content type) with a fresh nonce and the 5-byte record
//!   header as AAD. This is the floor: the AEAD work every TLS 1.3 record needs.
//! * `record_seal`: `RecordKey::seal_in_place` on a whole record buffer with the
//!   content already in place (writes header, content type and tag, then seals).
//! * `raw_aead_open` / `record_open`: open a pre-sealed record. Opening decrypts in
//!   place, so both copy the sealed record into a work buffer first; `copy_only`
//!   measures that copy alone so it can be subtracted.
//!
//! Both sides of each pair derive the nonce from a sequence number the same way
//! (IV XOR sequence), so the difference is exactly what the record layer adds.
//! The raw seal buffer starts at a fresh allocation while a record's content sits 5
//! bytes in; a variant of `raw_aead_seal` at the same 5-byte offset measured the
//! same, so alignment is not part of the difference.
//!
//! Run with `cargo bench -p smt-proto --bench record`.

use std::hint::black_box;
use std::time::Duration;

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, NONCE_LEN};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use smt_proto::record::{CipherSuite, RecordKey, APPLICATION_DATA, RECORD_HEADER_LEN};

const IV: [u8; NONCE_LEN] = [0x5a; NONCE_LEN];
/// The record header of a record with `body_len` bytes after the header.
fn record_header(body_len: usize) -> [u8; RECORD_HEADER_LEN] {
    let len = (body_len as u16).to_be_bytes();
    [23, 3, 3, len[0], len[1]]
}

/// The TLS 1.3 per-record nonce, computed the way `RecordKey::nonce` does.
fn nonce(sequence: u64) -> Nonce {
    let mut nonce = IV;
    for (n, s) in nonce[NONCE_LEN - 8..].iter_mut().zip(sequence.to_be_bytes()) {
        *n ^= s;
    }
    Nonce::assume_unique_for_key(nonce)
}

fn algorithm(suite: CipherSuite) -> &'static aead::Algorithm {
    match suite {
        CipherSuite::Aes128GcmSha256 => &aead::AES_128_GCM,
        CipherSuite::Aes256GcmSha384 => &aead::AES_256_GCM,
        _ => &aead::CHACHA20_POLY1305,
    }
}

fn short_name(suite: CipherSuite) -> &'static str {
    match suite {
        CipherSuite::Aes128GcmSha256 => "aes128gcm",
        CipherSuite::Aes256GcmSha384 => "aes256gcm",
        _ => "chacha20poly1305",
    }
}

fn bench_suite(c: &mut Criterion, suite: CipherSuite, sizes: &[usize]) {
    let key_bytes: Vec<u8> = (0..suite.key_len() as u8).map(|b| b.wrapping_mul(37)).collect();
    let raw = LessSafeKey::new(UnboundKey::new(algorithm(suite), &key_bytes).unwrap());
    let record_key = RecordKey::new(suite, &key_bytes, &IV).unwrap();

    let mut group = c.benchmark_group(format!("record/{}", short_name(suite)));
    for &size in sizes {
        group.throughput(Throughput::Bytes(size as u64));
        let record_len = RecordKey::record_len(size, 0);
        let header = record_header(record_len - RECORD_HEADER_LEN);

        group.bench_function(BenchmarkId::new("raw_aead_seal", size), |b| {
            let mut buf = vec![0xabu8; size + 1];
            let mut sequence = 0u64;
            b.iter(|| {
                sequence = sequence.wrapping_add(1);
                let tag = raw
                    .seal_in_place_separate_tag(
                        nonce(black_box(sequence)),
                        Aad::from(black_box(header)),
                        &mut buf,
                    )
                    .unwrap();
                black_box(tag.as_ref());
            });
            black_box(&buf);
        });

        group.bench_function(BenchmarkId::new("record_seal", size), |b| {
            let mut record = vec![0xabu8; record_len];
            let mut sequence = 0u64;
            b.iter(|| {
                sequence = sequence.wrapping_add(1);
                record_key
                    .seal_in_place(black_box(sequence), &mut record, size, APPLICATION_DATA, 0)
                    .unwrap();
            });
            black_box(&record);
        });

        let sequence = 0x0000_1234_5678_0001u64;
        let content = vec![0xabu8; size];
        let sealed = record_key.seal_record(sequence, &content, APPLICATION_DATA, 0).unwrap();
        assert_eq!(sealed.len(), record_len);
        assert_eq!(sealed[..RECORD_HEADER_LEN], header);

        group.bench_function(BenchmarkId::new("copy_only", size), |b| {
            let mut work = vec![0u8; record_len];
            b.iter(|| {
                work.copy_from_slice(black_box(&sealed));
                black_box(&mut work);
            });
        });

        group.bench_function(BenchmarkId::new("raw_aead_open", size), |b| {
            let mut work = vec![0u8; record_len];
            b.iter(|| {
                work.copy_from_slice(black_box(&sealed));
                let plaintext = raw
                    .open_in_place(
                        nonce(black_box(sequence)),
                        Aad::from(black_box(header)),
                        &mut work[RECORD_HEADER_LEN..],
                    )
                    .unwrap();
                black_box(plaintext);
            });
        });

        group.bench_function(BenchmarkId::new("record_open", size), |b| {
            let mut work = vec![0u8; record_len];
            b.iter(|| {
                work.copy_from_slice(black_box(&sealed));
                let opened = record_key.open_in_place(black_box(sequence), &mut work).unwrap();
                black_box(opened);
            });
        });
    }
    group.finish();
}

fn record(c: &mut Criterion) {
    bench_suite(c, CipherSuite::Aes128GcmSha256, &[64, 1400, 16384]);
    bench_suite(c, CipherSuite::Aes256GcmSha384, &[16384]);
    bench_suite(c, CipherSuite::Chacha20Poly1305Sha256, &[16384]);
}

criterion_group! {
    name = benches;
    // 6 (suite, size) points x 5 benchmarks x ~2.5 s each: under 1m30s in total.
    // Plots are skipped to save time; the estimates land in target/criterion.
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1800))
        .sample_size(50)
        .without_plots();
    targets = record
}
criterion_main!(benches);
