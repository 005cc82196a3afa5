//! The plaintext start of the TLS handshake: the ClientHello's random (which names
//! the session in the key log) and the ServerHello's cipher suite.
//!
//! Each direction's handshake stream is the byte stream TLS would write to TCP
//! (PROTOCOL.md 8.1), carried in HANDSHAKE chunks that may arrive in any order or
//! more than once. Only its first bytes are needed, so only those are reassembled.

/// Bytes of each stream kept: the ServerHello's cipher suite lies at most at
/// 5 (record header) + 4 (handshake header) + 2 (version) + 32 (random) + 1 + 32
/// (session ID) + 2 = 78 bytes.
pub const KEPT: usize = 128;

/// The first [`KEPT`] bytes of one direction's handshake stream.
#[derive(Debug, Clone)]
pub struct StreamStart {
    bytes: [u8; KEPT],
    have: [bool; KEPT],
}

impl Default for StreamStart {
    fn default() -> Self {
        StreamStart { bytes: [0; KEPT], have: [false; KEPT] }
    }
}

impl StreamStart {
    /// Adds a chunk found at `offset` in the stream; bytes already held stay.
    pub fn add(&mut self, offset: u32, data: &[u8]) {
        let Ok(offset) = usize::try_from(offset) else { return };
        for (i, &byte) in data.iter().enumerate() {
            let Some(at) = offset.checked_add(i).filter(|&at| at < KEPT) else { break };
            if !self.have[at] {
                self.bytes[at] = byte;
                self.have[at] = true;
            }
        }
    }

    /// The bytes held contiguously from the stream's start.
    pub fn contiguous(&self) -> &[u8] {
        let len = self.have.iter().position(|&h| !h).unwrap_or(KEPT);
        &self.bytes[..len]
    }
}

const CONTENT_HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;
const SERVER_HELLO: u8 = 2;
/// Record header (5) + handshake header (4) + legacy_version (2).
const RANDOM_AT: usize = 11;

/// The client random of the ClientHello that starts `stream`.
pub fn client_random(stream: &[u8]) -> Option<[u8; 32]> {
    hello(stream, CLIENT_HELLO)?;
    stream.get(RANDOM_AT..RANDOM_AT + 32)?.try_into().ok()
}

/// The cipher suite code point chosen by the ServerHello that starts `stream`.
pub fn server_cipher_suite(stream: &[u8]) -> Option<u16> {
    hello(stream, SERVER_HELLO)?;
    let session_id_len = usize::from(*stream.get(RANDOM_AT + 32)?);
    if session_id_len > 32 {
        return None;
    }
    let at = RANDOM_AT + 33 + session_id_len;
    let suite = stream.get(at..at + 2)?;
    Some(u16::from_be_bytes([suite[0], suite[1]]))
}

/// Checks that `stream` starts with a handshake record holding a message of type
/// `kind`.
fn hello(stream: &[u8], kind: u8) -> Option<()> {
    let head = stream.get(..6)?;
    (head[0] == CONTENT_HANDSHAKE && head[1] == 3 && head[5] == kind).then_some(())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// The start of a ServerHello record: session ID of 32 bytes, suite 0x1302.
    fn server_hello_start() -> Vec<u8> {
        let mut s = vec![22, 3, 3, 0, 122, 2, 0, 0, 118, 3, 3];
        s.extend_from_slice(&[0x5a; 32]);
        s.push(32);
        s.extend_from_slice(&[0x77; 32]);
        s.extend_from_slice(&[0x13, 0x02, 0]);
        s
    }

    #[test]
    fn hello_fields_are_found_at_their_fixed_positions() {
        let mut client = vec![22, 3, 1, 2, 0, 1, 0, 1, 252, 3, 3];
        client.extend_from_slice(&[0xc1; 32]);
        client.push(0);
        assert_eq!(client_random(&client), Some([0xc1; 32]));
        assert_eq!(server_cipher_suite(&client), None, "a ClientHello has no chosen suite");
        assert_eq!(client_random(&client[..42]), None, "random cut short");

        let server = server_hello_start();
        assert_eq!(server_cipher_suite(&server), Some(0x1302));
        assert_eq!(client_random(&server), None);
        assert_eq!(server_cipher_suite(&server[..77]), None);
        let mut bad = server.clone();
        bad[43] = 33;
        assert_eq!(server_cipher_suite(&bad), None, "session ID longer than 32 bytes");
        assert_eq!(server_cipher_suite(&[]), None);
        assert_eq!(client_random(&[23, 3, 3, 0, 1, 1]), None, "not a handshake record");
    }

    #[test]
    fn chunks_in_any_order_and_repeated_reassemble_the_stream_start() {
        let server = server_hello_start();
        let mut start = StreamStart::default();
        start.add(40, &server[40..]);
        assert_eq!(start.contiguous(), b"");
        start.add(0, &server[..20]);
        assert_eq!(start.contiguous(), &server[..20]);
        // A repeat with different bytes does not overwrite (first copy wins).
        start.add(10, &[0xee; 5]);
        start.add(20, &server[20..45]);
        assert_eq!(start.contiguous(), &server[..]);
        assert_eq!(server_cipher_suite(start.contiguous()), Some(0x1302));
        // Chunks far beyond the kept prefix, and at the largest offsets, are ignored.
        start.add(u32::MAX, &[1, 2, 3]);
        start.add(1000, &[1; 2000]);
        assert_eq!(start.contiguous(), &server[..]);
    }

    #[derive(Debug, Default)]
    struct Randoms(Mutex<Vec<Vec<u8>>>);

    impl rustls::KeyLog for Randoms {
        fn log(&self, _label: &str, client_random: &[u8], _secret: &[u8]) {
            self.0.lock().unwrap().push(client_random.to_vec());
        }
        fn will_log(&self, _label: &str) -> bool {
            true
        }
    }

    /// A real rustls handshake in memory: the random found in the ClientHello is
    /// the one rustls puts in its key log, and the suite is the negotiated one.
    #[test]
    fn real_rustls_hellos_give_the_key_log_random_and_the_negotiated_suite() {
        use rustls::crypto::aws_lc_rs;
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert = rustls::pki_types::CertificateDer::from(made.cert.der().to_vec());
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(
            rustls::pki_types::PrivatePkcs8KeyDer::from(made.key_pair.serialize_der()),
        );
        let provider = Arc::new(rustls::crypto::CryptoProvider {
            cipher_suites: vec![aws_lc_rs::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256],
            ..aws_lc_rs::default_provider()
        });
        let server_config = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).unwrap();
        let mut client_config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let randoms = Arc::new(Randoms::default());
        client_config.key_log = randoms.clone();
        let mut client =
            rustls::ClientConnection::new(Arc::new(client_config), "localhost".try_into().unwrap())
                .unwrap();
        let mut server = rustls::ServerConnection::new(Arc::new(server_config)).unwrap();

        let mut client_stream = Vec::new();
        client.write_tls(&mut client_stream).unwrap();
        server.read_tls(&mut &client_stream[..]).unwrap();
        server.process_new_packets().unwrap();
        let mut server_stream = Vec::new();
        server.write_tls(&mut server_stream).unwrap();
        client.read_tls(&mut &server_stream[..]).unwrap();
        client.process_new_packets().unwrap();

        let logged = randoms.0.lock().unwrap();
        assert!(!logged.is_empty(), "the client logged its handshake secrets");
        assert_eq!(client_random(&client_stream).map(|r| r.to_vec()).as_ref(), Some(&logged[0]));
        assert_eq!(server_cipher_suite(&server_stream), Some(0x1303));
    }
}
