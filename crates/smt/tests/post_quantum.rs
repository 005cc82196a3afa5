//! The configurations from `smt::tls` send a post-quantum hybrid key share: the
//! ClientHello they produce is parsed here byte by byte (not through rustls).

use rustls::pki_types::{CertificateDer, ServerName};

/// Key-share groups offered in a TLS 1.3 ClientHello record, in order.
fn key_share_groups(record: &[u8]) -> Vec<u16> {
    let u16_at = |b: &[u8], i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
    // Record header (5), handshake header (4), legacy_version (2), random (32).
    assert_eq!(record[0], 22, "a handshake record");
    assert_eq!(record[5], 1, "a ClientHello");
    let mut i = 5 + 4 + 2 + 32;
    i += 1 + record[i] as usize; // legacy_session_id
    i += 2 + u16_at(record, i) as usize; // cipher_suites
    i += 1 + record[i] as usize; // legacy_compression_methods
    let end = i + 2 + u16_at(record, i) as usize;
    i += 2;
    while i < end {
        let (kind, len) = (u16_at(record, i), u16_at(record, i + 2) as usize);
        if kind == 51 {
            // key_share: client_shares<2..>, each group (2), key_exchange<2..>.
            let mut j = i + 6;
            let mut groups = Vec::new();
            while j < i + 4 + len {
                groups.push(u16_at(record, j));
                j += 4 + u16_at(record, j + 2) as usize;
            }
            return groups;
        }
        i += 4 + len;
    }
    panic!("no key_share extension");
}

fn client_hello(config: std::sync::Arc<rustls::ClientConfig>) -> Vec<u8> {
    let name = ServerName::try_from("server.test").expect("name");
    let mut conn = rustls::ClientConnection::new(config, name).expect("client connection");
    let mut out = Vec::new();
    conn.write_tls(&mut out).expect("ClientHello");
    out
}

fn trusted_cert() -> CertificateDer<'static> {
    let made = rcgen::generate_simple_self_signed(vec!["server.test".to_owned()]).expect("rcgen");
    CertificateDer::from(made.cert.der().to_vec())
}

const X25519MLKEM768: u16 = 0x11ec;
const X25519: u16 = 0x001d;

#[test]
fn default_client_config_sends_x25519mlkem768_and_x25519_key_shares() {
    let config = smt::tls::client_config(smt::tls::provider(), &[trusted_cert()], None)
        .expect("client config");
    let hello = client_hello(config);
    assert_eq!(key_share_groups(&hello), vec![X25519MLKEM768, X25519]);
    // 1184-byte ML-KEM key + 32-byte X25519 key in the hybrid share alone.
    assert!(hello.len() > 1300, "ClientHello of {} bytes", hello.len());
}

#[test]
fn classical_client_config_sends_only_an_x25519_key_share() {
    let provider = smt::tls::provider_with_kx_groups(smt::tls::KxPreference::Classical);
    let config = smt::tls::client_config(provider, &[trusted_cert()], None).expect("config");
    let hello = client_hello(config);
    assert_eq!(key_share_groups(&hello), vec![X25519]);
    assert!(hello.len() < 1200, "ClientHello of {} bytes", hello.len());
}
