//! `SSLKEYLOGFILE`: both sides log their TLS secrets in NSS key log format, and the
//! log alone decrypts captured SMT traffic.
//!
//! This file holds a single test because it sets a process-wide environment variable;
//! cargo runs each test file in its own process.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use aws_lc_rs::hkdf;
use smt::CipherSuite;
use smt_proto::record::{RecordKey, PROLOGUE_LEN};
use support::{within, Direction, Relay};

const STEP: Duration = Duration::from_secs(5);
/// SMT common header (24 B) plus DATA body (16 B).
const DATA_HEADER_LEN: usize = 40;
const TYPE_DATA: u8 = 0x10;

/// A client configuration that offers only `suite`.
fn client_config_for(
    trusted: &support::Identity,
    suite: rustls::SupportedCipherSuite,
) -> std::sync::Arc<rustls::ClientConfig> {
    let provider = rustls::crypto::CryptoProvider {
        cipher_suites: vec![suite],
        ..rustls::crypto::aws_lc_rs::default_provider()
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.cert.clone()).unwrap();
    std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// TLS 1.3 HKDF-Expand-Label(secret, label, "", len) (RFC 8446 section 7.1).
fn expand_label(alg: hkdf::Algorithm, secret: &[u8], label: &str, len: usize) -> Vec<u8> {
    let full = format!("tls13 {label}");
    let length = (len as u16).to_be_bytes();
    let info: [&[u8]; 4] = [&length, &[full.len() as u8], full.as_bytes(), &[0u8]];
    let prk = hkdf::Prk::new_less_safe(alg, secret);
    let okm = prk.expand(&info, Len(len)).expect("expand");
    let mut out = vec![0u8; len];
    okm.fill(&mut out).expect("fill");
    out
}

/// The record key TLS 1.3 derives from a traffic secret (RFC 8446 section 7.3).
fn traffic_key(suite: CipherSuite, secret: &[u8]) -> RecordKey {
    let alg = match suite {
        CipherSuite::Aes256GcmSha384 => hkdf::HKDF_SHA384,
        _ => hkdf::HKDF_SHA256,
    };
    let key = expand_label(alg, secret, "key", suite.key_len());
    let iv = expand_label(alg, secret, "iv", 12);
    RecordKey::new(suite, &key, &iv).expect("record key")
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length: {s}");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

fn is_lower_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The distinct single-packet messages among captured datagrams, as (message ID,
/// TLS record bytes); a retransmission repeats the same record and counts once.
fn single_packet_messages(datagrams: &[Vec<u8>]) -> Vec<(u64, Vec<u8>)> {
    let mut messages: Vec<(u64, Vec<u8>)> = datagrams
        .iter()
        .filter(|d| d.len() > DATA_HEADER_LEN + 5 && d[5] == TYPE_DATA)
        .filter(|d| {
            let message_len = u32::from_be_bytes(d[24..28].try_into().unwrap()) as usize;
            let offset = u32::from_be_bytes(d[28..32].try_into().unwrap());
            offset == 0 && message_len == d.len() - DATA_HEADER_LEN
        })
        .map(|d| {
            let id = u64::from_be_bytes(d[16..24].try_into().unwrap());
            let record = d[DATA_HEADER_LEN..].to_vec();
            assert_eq!(&record[..3], &[0x17, 0x03, 0x03], "a TLS 1.3 application_data record");
            (id, record)
        })
        .collect();
    messages.sort();
    messages.dedup();
    messages
}

/// Opens `record` (record 0 of message `id`) with the key derived from `secret`, and
/// returns the payload after the prologue, or `None` if it does not authenticate.
fn open_with(suite: CipherSuite, secret: &[u8], id: u64, record: &[u8]) -> Option<Vec<u8>> {
    let key = traffic_key(suite, secret);
    let mut bytes = record.to_vec();
    let opened = key.open_in_place(id << 16, &mut bytes).ok()?;
    assert_eq!(opened.content_type, 23, "application_data");
    let content = opened.content;
    assert!(content.len() >= PROLOGUE_LEN);
    // The prologue: payload length (u32), record size (u16), reserved (u16).
    let payload_len = u32::from_be_bytes(content[..4].try_into().unwrap()) as usize;
    assert_eq!(payload_len, content.len() - PROLOGUE_LEN);
    assert_eq!(&content[6..8], &[0, 0]);
    Some(content[PROLOGUE_LEN..].to_vec())
}

#[tokio::test]
async fn sslkeylogfile_records_both_sides_secrets_and_decrypts_captured_traffic() {
    let path = std::env::temp_dir().join(format!(
        "smt-keylog-{}-{}.txt",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    ));
    // Set before any endpoint (and so any rustls KeyLogFile) exists. This test is alone
    // in its process, so no other thread reads the environment meanwhile.
    std::env::set_var("SSLKEYLOGFILE", &path);

    let id = support::identity(&["localhost"]);
    let server = support::loopback_server(support::server_config(&id));
    support::spawn_echo(server.clone());

    use rustls::crypto::aws_lc_rs::cipher_suite as cs;
    let suites = [
        (CipherSuite::Aes128GcmSha256, cs::TLS13_AES_128_GCM_SHA256),
        (CipherSuite::Aes256GcmSha384, cs::TLS13_AES_256_GCM_SHA384),
        (CipherSuite::Chacha20Poly1305Sha256, cs::TLS13_CHACHA20_POLY1305_SHA256),
    ];
    let mut captures = Vec::new();
    for (suite, rustls_suite) in suites {
        let relay = Relay::start(server.local_addr()).await;
        let client = support::loopback_client(client_config_for(&id, rustls_suite));
        let session = within(STEP, "connect", client.connect(relay.addr, "localhost"))
            .await
            .expect("connect through the relay");
        let request = format!("key log probe over {}", suite.name()).into_bytes();
        let response = within(STEP, "call", session.call(request.clone())).await.expect("call");
        assert_eq!(response, request);
        captures.push((
            suite,
            request,
            relay.captured(Direction::ToServer),
            relay.captured(Direction::ToClient),
        ));
        client.close().await;
    }

    // Both sides log every secret, in NSS key log format.
    let log = std::fs::read_to_string(&path).expect("key log file written");
    let _ = std::fs::remove_file(&path);
    let mut secrets: HashMap<&str, HashMap<String, Vec<String>>> = HashMap::new();
    for line in log.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 3, "malformed key log line: {line:?}");
        let (label, random, secret) = (fields[0], fields[1], fields[2]);
        assert_eq!(random.len(), 64, "client random of 32 bytes: {line:?}");
        assert!(is_lower_hex(random) && is_lower_hex(secret), "hex fields: {line:?}");
        assert!(secret.len() == 64 || secret.len() == 96, "SHA-256/384 secret: {line:?}");
        secrets.entry(label).or_default().entry(random.to_owned()).or_default().push(secret.into());
    }
    for label in [
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
    ] {
        let by_random = secrets.get(label).unwrap_or_else(|| panic!("no {label} lines in {log}"));
        assert_eq!(by_random.len(), suites.len(), "{label}: one client random per connection");
        for (random, logged) in by_random {
            assert_eq!(logged.len(), 2, "{label} {random}: logged by client and by server");
            assert_eq!(logged[0], logged[1], "{label} {random}: both sides agree");
        }
    }

    // The log alone decrypts captured requests (CLIENT_TRAFFIC_SECRET_0) and
    // responses (SERVER_TRAFFIC_SECRET_0) of every suite.
    for (suite, request, to_server, to_client) in &captures {
        let requests = single_packet_messages(to_server);
        assert_eq!(requests.len(), 1, "{suite:?}: one single-packet request captured");
        let (id, record) = &requests[0];
        let opened: Vec<(&String, Vec<u8>)> = secrets["CLIENT_TRAFFIC_SECRET_0"]
            .iter()
            .filter_map(|(random, s)| {
                open_with(*suite, &unhex(&s[0]), *id, record).map(|p| (random, p))
            })
            .collect();
        assert_eq!(opened.len(), 1, "{suite:?}: exactly one logged secret opens the request");
        let (random, plaintext) = &opened[0];
        assert_eq!(plaintext, request, "{suite:?}: decrypted request");

        let responses = single_packet_messages(to_client);
        assert_eq!(responses.len(), 1, "{suite:?}: one single-packet response captured");
        let (response_id, record) = &responses[0];
        assert_eq!(response_id, id, "a response carries its request's message ID");
        let server_secret = unhex(&secrets["SERVER_TRAFFIC_SECRET_0"][*random][0]);
        let plaintext = open_with(*suite, &server_secret, *id, record)
            .expect("SERVER_TRAFFIC_SECRET_0 of the same connection opens the response");
        assert_eq!(&plaintext, request, "{suite:?}: decrypted response (echo)");
    }
}
