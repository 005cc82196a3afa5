//! rustls behind the engine's handshake interface.
//!
//! The user's `ClientConfig` / `ServerConfig` are used as given, with three changes
//! SMT needs: secret extraction is enabled (the traffic keys leave rustls once the
//! handshake is done), session tickets are disabled on the server (SMT sessions are
//! long-lived and resumption would need tickets sent under the application key), and
//! if `SSLKEYLOGFILE` is set, secrets are logged there in NSS key log format.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rustls::pki_types::ServerName;
use rustls::{ClientConnection, ConnectionTrafficSecrets, ProtocolVersion, ServerConnection};
use smt_proto::engine::{TlsAcceptor, TlsFailure, TlsSession};
use smt_proto::record::{CipherSuite, RecordKey, TrafficSecret};

use crate::error::Error;

/// Adapts a user's client configuration for SMT.
pub(crate) fn client_config(user: &rustls::ClientConfig) -> Arc<rustls::ClientConfig> {
    let mut config = user.clone();
    config.enable_secret_extraction = true;
    config.enable_early_data = false;
    if std::env::var_os("SSLKEYLOGFILE").is_some() {
        config.key_log = Arc::new(rustls::KeyLogFile::new());
    }
    Arc::new(config)
}

/// Adapts a user's server configuration for SMT.
pub(crate) fn server_config(user: &rustls::ServerConfig) -> Arc<rustls::ServerConfig> {
    let mut config = user.clone();
    config.enable_secret_extraction = true;
    config.send_tls13_tickets = 0;
    config.max_early_data_size = 0;
    if std::env::var_os("SSLKEYLOGFILE").is_some() {
        config.key_log = Arc::new(rustls::KeyLogFile::new());
    }
    Arc::new(config)
}

/// Captures one connection's application traffic secrets (SMT derives key updates
/// from them) and passes every secret on to the configured key log (SSLKEYLOGFILE).
#[derive(Debug)]
struct SecretCapture {
    forward: Arc<dyn rustls::KeyLog>,
    secrets: Mutex<CapturedSecrets>,
}

/// The client's and the server's application traffic secret 0, once logged.
type CapturedSecrets = (Option<Vec<u8>>, Option<Vec<u8>>);

impl SecretCapture {
    fn new(forward: Arc<dyn rustls::KeyLog>) -> Arc<SecretCapture> {
        Arc::new(SecretCapture { forward, secrets: Mutex::new((None, None)) })
    }
}

impl rustls::KeyLog for SecretCapture {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        if let Ok(mut secrets) = self.secrets.lock() {
            match label {
                "CLIENT_TRAFFIC_SECRET_0" => secrets.0 = Some(secret.to_vec()),
                "SERVER_TRAFFIC_SECRET_0" => secrets.1 = Some(secret.to_vec()),
                _ => {}
            }
        }
        if self.forward.will_log(label) {
            self.forward.log(label, client_random, secret);
        }
    }

    fn will_log(&self, _label: &str) -> bool {
        true
    }
}

enum Conn {
    Client(ClientConnection),
    Server(ServerConnection),
}

/// One rustls handshake, client or server side.
pub(crate) struct RustlsSession {
    conn: Option<Conn>,
    peer_certs: Option<Vec<Vec<u8>>>,
    capture: Arc<SecretCapture>,
}

impl RustlsSession {
    pub fn client(config: Arc<rustls::ClientConfig>, server_name: &str) -> Result<Self, Error> {
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| Error::InvalidServerName(server_name.to_owned()))?;
        // Each connection gets its own copy of the configuration whose key log
        // captures this connection's secrets.
        let capture = SecretCapture::new(config.key_log.clone());
        let mut config = (*config).clone();
        config.key_log = capture.clone();
        let conn = ClientConnection::new(Arc::new(config), name)
            .map_err(|e| Error::Config(e.to_string()))?;
        Ok(RustlsSession { conn: Some(Conn::Client(conn)), peer_certs: None, capture })
    }
}

macro_rules! with_conn {
    ($self:expr, $c:ident => $body:expr, $none:expr) => {
        match $self.conn.as_mut() {
            Some(Conn::Client($c)) => $body,
            Some(Conn::Server($c)) => $body,
            None => $none,
        }
    };
}

macro_rules! with_conn_ref {
    ($self:expr, $c:ident => $body:expr, $none:expr) => {
        match $self.conn.as_ref() {
            Some(Conn::Client($c)) => $body,
            Some(Conn::Server($c)) => $body,
            None => $none,
        }
    };
}

impl TlsSession for RustlsSession {
    fn read_handshake(&mut self, mut bytes: &[u8]) -> Result<(), TlsFailure> {
        while !bytes.is_empty() {
            let read: Result<usize, std::io::Error> =
                with_conn!(self, c => c.read_tls(&mut bytes), Ok(0));
            match read {
                Ok(0) => return Err(TlsFailure("handshake stream ended".into())),
                Ok(_) => {}
                Err(e) => return Err(TlsFailure(e.to_string())),
            }
            let processed: Result<(), rustls::Error> =
                with_conn!(self, c => c.process_new_packets().map(|_| ()), Ok(()));
            processed.map_err(|e| TlsFailure(e.to_string()))?;
        }
        Ok(())
    }

    fn write_handshake(&mut self, out: &mut Vec<u8>) {
        loop {
            let wants: bool = with_conn_ref!(self, c => c.wants_write(), false);
            if !wants {
                break;
            }
            // Writing into a Vec cannot fail.
            let written: std::io::Result<usize> = with_conn!(self, c => c.write_tls(out), Ok(0));
            if !matches!(written, Ok(n) if n > 0) {
                break;
            }
        }
    }

    fn is_handshaking(&self) -> bool {
        with_conn_ref!(self, c => c.is_handshaking(), false)
    }

    fn traffic_keys(&mut self) -> Result<(RecordKey, RecordKey), TlsFailure> {
        if self.peer_certs.is_none() {
            self.peer_certs = self.peer_certificates();
        }
        let version: Option<ProtocolVersion> =
            with_conn_ref!(self, c => c.protocol_version(), None);
        if version != Some(ProtocolVersion::TLSv1_3) {
            return Err(TlsFailure(format!("SMT requires TLS 1.3, negotiated {version:?}")));
        }
        let secrets = match self.conn.take() {
            Some(Conn::Client(c)) => c.dangerous_extract_secrets(),
            Some(Conn::Server(c)) => c.dangerous_extract_secrets(),
            None => return Err(TlsFailure("traffic keys already taken".into())),
        }
        .map_err(|e| TlsFailure(e.to_string()))?;
        // rustls may have protected a few records (e.g. alerts) with the application
        // key; SMT's sequence numbers start at 2^16 (message ID 1, record 0), so as
        // long as rustls used fewer than 2^16 records no nonce can repeat.
        if secrets.tx.0 >= 1 << 16 || secrets.rx.0 >= 1 << 16 {
            return Err(TlsFailure("TLS used too many application records".into()));
        }
        Ok((record_key(secrets.tx.1)?, record_key(secrets.rx.1)?))
    }

    fn traffic_secrets(&mut self) -> Option<(TrafficSecret, TrafficSecret)> {
        let suite = match self.conn.as_ref()? {
            Conn::Client(c) => c.negotiated_cipher_suite()?,
            Conn::Server(c) => c.negotiated_cipher_suite()?,
        };
        let suite = match suite.suite() {
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256 => CipherSuite::Aes128GcmSha256,
            rustls::CipherSuite::TLS13_AES_256_GCM_SHA384 => CipherSuite::Aes256GcmSha384,
            rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => {
                CipherSuite::Chacha20Poly1305Sha256
            }
            _ => return None,
        };
        let is_client = matches!(self.conn, Some(Conn::Client(_)));
        let secrets = self.capture.secrets.lock().ok()?;
        let (client, server) = (secrets.0.as_deref()?, secrets.1.as_deref()?);
        let (tx, rx) = if is_client { (client, server) } else { (server, client) };
        Some((TrafficSecret::new(suite, tx).ok()?, TrafficSecret::new(suite, rx).ok()?))
    }

    fn peer_certificates(&self) -> Option<Vec<Vec<u8>>> {
        if self.peer_certs.is_some() {
            return self.peer_certs.clone();
        }
        let certs: Option<Vec<Vec<u8>>> = with_conn_ref!(
            self,
            c => c.peer_certificates().map(|cs| cs.iter().map(|c| c.as_ref().to_vec()).collect()),
            None
        );
        certs
    }
}

/// Converts rustls's extracted traffic secrets into an SMT record key.
fn record_key(secrets: ConnectionTrafficSecrets) -> Result<RecordKey, TlsFailure> {
    crate::keys::TrafficKey::from_rustls(secrets)
        .and_then(|key| key.record_key())
        .map_err(|e| TlsFailure(e.to_string()))
}

/// Creates server-side rustls sessions for incoming handshakes.
pub(crate) struct RustlsAcceptor {
    pub config: Arc<rustls::ServerConfig>,
}

impl TlsAcceptor for RustlsAcceptor {
    fn start(&self, _peer: SocketAddr) -> Box<dyn TlsSession> {
        // Each handshake gets its own copy of the configuration whose key log
        // captures this connection's secrets.
        let capture = SecretCapture::new(self.config.key_log.clone());
        let mut config = (*self.config).clone();
        config.key_log = capture.clone();
        match ServerConnection::new(Arc::new(config)) {
            Ok(conn) => Box::new(RustlsSession {
                conn: Some(Conn::Server(conn)),
                peer_certs: None,
                capture,
            }),
            // A config rustls refuses fails every handshake with its reason.
            Err(e) => Box::new(FailedSession(e.to_string())),
        }
    }
}

struct FailedSession(String);

impl TlsSession for FailedSession {
    fn read_handshake(&mut self, _: &[u8]) -> Result<(), TlsFailure> {
        Err(TlsFailure(self.0.clone()))
    }
    fn write_handshake(&mut self, _: &mut Vec<u8>) {}
    fn is_handshaking(&self) -> bool {
        true
    }
    fn traffic_keys(&mut self) -> Result<(RecordKey, RecordKey), TlsFailure> {
        Err(TlsFailure(self.0.clone()))
    }
    fn peer_certificates(&self) -> Option<Vec<Vec<u8>>> {
        None
    }
}
