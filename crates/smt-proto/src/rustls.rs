//! rustls behind the engine's handshake interface (feature `rustls`).
//!
//! [`RustlsSession`] and [`RustlsAcceptor`] implement [`TlsSession`] and
//! [`TlsAcceptor`], so the engine (and anything driving it: the `smt` crate, the
//! simulator) runs real TLS 1.3 handshakes. The user's `ClientConfig` / `ServerConfig`
//! are used as given after [`client_config`] / [`server_config`], which make the
//! changes SMT needs: secret extraction is enabled (the traffic keys leave rustls once
//! the handshake is done), early data is off, session tickets are disabled on the
//! server (SMT sessions are long-lived and resumption would need tickets sent under
//! the application key), and if `SSLKEYLOGFILE` is set, secrets are logged there in
//! NSS key log format.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use ::rustls::pki_types::ServerName;
use ::rustls::{
    AlertDescription, ClientConnection, ConnectionTrafficSecrets, ProtocolVersion, ServerConnection,
};

use crate::engine::{Alert, TlsAcceptor, TlsError, TlsLibraryError, TlsSession};
use crate::record::{CipherSuite, RecordKey, TrafficSecret};

/// Adapts a user's client configuration for SMT (see the module documentation).
pub fn client_config(user: &::rustls::ClientConfig) -> Arc<::rustls::ClientConfig> {
    let mut config = user.clone();
    config.enable_secret_extraction = true;
    config.enable_early_data = false;
    if std::env::var_os("SSLKEYLOGFILE").is_some() {
        config.key_log = Arc::new(::rustls::KeyLogFile::new());
    }
    Arc::new(config)
}

/// Adapts a user's server configuration for SMT (see the module documentation).
pub fn server_config(user: &::rustls::ServerConfig) -> Arc<::rustls::ServerConfig> {
    let mut config = user.clone();
    config.enable_secret_extraction = true;
    config.send_tls13_tickets = 0;
    config.max_early_data_size = 0;
    if std::env::var_os("SSLKEYLOGFILE").is_some() {
        config.key_log = Arc::new(::rustls::KeyLogFile::new());
    }
    Arc::new(config)
}

/// The cipher suite, key and IV of rustls's extracted secrets for one direction, or
/// `None` for a suite SMT does not support.
pub fn traffic_key_parts(
    secrets: &ConnectionTrafficSecrets,
) -> Option<(CipherSuite, &[u8], &[u8])> {
    Some(match secrets {
        ConnectionTrafficSecrets::Aes128Gcm { key, iv } => {
            (CipherSuite::Aes128GcmSha256, key.as_ref(), iv.as_ref())
        }
        ConnectionTrafficSecrets::Aes256Gcm { key, iv } => {
            (CipherSuite::Aes256GcmSha384, key.as_ref(), iv.as_ref())
        }
        ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
            (CipherSuite::Chacha20Poly1305Sha256, key.as_ref(), iv.as_ref())
        }
        _ => return None,
    })
}

/// The record key of rustls's extracted secrets for one direction.
fn record_key(secrets: &ConnectionTrafficSecrets) -> Result<RecordKey, TlsError> {
    let (suite, key, iv) = traffic_key_parts(secrets).ok_or_else(|| {
        TlsError::Keys(TlsLibraryError::message("cipher suite not supported by SMT"))
    })?;
    RecordKey::new(suite, key, iv).map_err(|e| TlsError::Keys(TlsLibraryError::new(e)))
}

/// The alert rustls sends (or received) for `error`, and the error kept whole.
pub fn tls_error(error: ::rustls::Error) -> TlsError {
    use ::rustls::Error as E;
    let alert = |a: AlertDescription| Some(Alert::from_u8(u8::from(a)));
    let sent = match &error {
        E::AlertReceived(received) => {
            return TlsError::AlertReceived(Alert::from_u8(u8::from(*received)))
        }
        E::InvalidCertificate(e) => alert(AlertDescription::from(e.clone())),
        E::InvalidMessage(e) => alert(AlertDescription::from(*e)),
        E::NoCertificatesPresented => alert(AlertDescription::CertificateRequired),
        E::DecryptError => alert(AlertDescription::DecryptError),
        E::PeerIncompatible(_) => alert(AlertDescription::HandshakeFailure),
        E::PeerMisbehaved(_) => alert(AlertDescription::IllegalParameter),
        E::NoApplicationProtocol => alert(AlertDescription::NoApplicationProtocol),
        E::InappropriateMessage { .. } | E::InappropriateHandshakeMessage { .. } => {
            alert(AlertDescription::UnexpectedMessage)
        }
        _ => None,
    };
    TlsError::Refused { alert: sent, source: TlsLibraryError::new(error) }
}

/// Captures one connection's application traffic secrets (SMT derives key updates
/// from them) and passes every secret on to the configured key log (SSLKEYLOGFILE).
#[derive(Debug)]
struct SecretCapture {
    forward: Arc<dyn ::rustls::KeyLog>,
    secrets: Mutex<CapturedSecrets>,
}

/// The client's and the server's application traffic secret 0, once logged.
type CapturedSecrets = (Option<Vec<u8>>, Option<Vec<u8>>);

impl SecretCapture {
    fn new(forward: Arc<dyn ::rustls::KeyLog>) -> Arc<SecretCapture> {
        Arc::new(SecretCapture { forward, secrets: Mutex::new((None, None)) })
    }
}

impl ::rustls::KeyLog for SecretCapture {
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
pub struct RustlsSession {
    conn: Option<Conn>,
    peer_certs: Option<Vec<Vec<u8>>>,
    capture: Arc<SecretCapture>,
}

impl core::fmt::Debug for RustlsSession {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RustlsSession").finish_non_exhaustive()
    }
}

/// Why a client handshake could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientStartError {
    /// The server name is not a valid DNS name or IP address.
    #[error("invalid server name {0:?}")]
    InvalidServerName(String),
    /// rustls refused the configuration.
    #[error("{0}")]
    Config(TlsLibraryError),
}

impl RustlsSession {
    /// The client side of a handshake with `server_name`, with a configuration
    /// prepared by [`client_config`].
    pub fn client(
        config: Arc<::rustls::ClientConfig>,
        server_name: &str,
    ) -> Result<Self, ClientStartError> {
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| ClientStartError::InvalidServerName(server_name.to_owned()))?;
        // Each connection gets its own copy of the configuration whose key log
        // captures this connection's secrets.
        let capture = SecretCapture::new(config.key_log.clone());
        let mut config = (*config).clone();
        config.key_log = capture.clone();
        let conn = ClientConnection::new(Arc::new(config), name)
            .map_err(|e| ClientStartError::Config(TlsLibraryError::new(e)))?;
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
    fn read_handshake(&mut self, mut bytes: &[u8]) -> Result<(), TlsError> {
        while !bytes.is_empty() {
            let read: Result<usize, std::io::Error> =
                with_conn!(self, c => c.read_tls(&mut bytes), Ok(0));
            match read {
                Ok(0) => return Err(TlsError::StreamEnded),
                Ok(_) => {}
                Err(e) => {
                    return Err(TlsError::Refused { alert: None, source: TlsLibraryError::new(e) })
                }
            }
            let processed: Result<(), ::rustls::Error> =
                with_conn!(self, c => c.process_new_packets().map(|_| ()), Ok(()));
            processed.map_err(tls_error)?;
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

    fn traffic_keys(&mut self) -> Result<(RecordKey, RecordKey), TlsError> {
        if self.peer_certs.is_none() {
            self.peer_certs = self.peer_certificates();
        }
        let version: Option<ProtocolVersion> =
            with_conn_ref!(self, c => c.protocol_version(), None);
        if version != Some(ProtocolVersion::TLSv1_3) {
            return Err(TlsError::NotTls13(format!("{version:?}")));
        }
        let secrets = match self.conn.take() {
            Some(Conn::Client(c)) => c.dangerous_extract_secrets(),
            Some(Conn::Server(c)) => c.dangerous_extract_secrets(),
            None => {
                return Err(TlsError::Keys(TlsLibraryError::message("traffic keys already taken")))
            }
        }
        .map_err(|e| TlsError::Keys(TlsLibraryError::new(e)))?;
        // rustls may have protected a few records (e.g. alerts) with the application
        // key; SMT's sequence numbers start at 2^16 (message ID 1, record 0), so as
        // long as rustls used fewer than 2^16 records no nonce can repeat.
        if secrets.tx.0 >= 1 << 16 || secrets.rx.0 >= 1 << 16 {
            return Err(TlsError::TooManyRecords);
        }
        Ok((record_key(&secrets.tx.1)?, record_key(&secrets.rx.1)?))
    }

    fn traffic_secrets(&mut self) -> Option<(TrafficSecret, TrafficSecret)> {
        let suite = match self.conn.as_ref()? {
            Conn::Client(c) => c.negotiated_cipher_suite()?,
            Conn::Server(c) => c.negotiated_cipher_suite()?,
        };
        let suite = match suite.suite() {
            ::rustls::CipherSuite::TLS13_AES_128_GCM_SHA256 => CipherSuite::Aes128GcmSha256,
            ::rustls::CipherSuite::TLS13_AES_256_GCM_SHA384 => CipherSuite::Aes256GcmSha384,
            ::rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => {
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

/// Creates server-side rustls sessions for incoming handshakes.
#[derive(Debug)]
pub struct RustlsAcceptor {
    config: Arc<::rustls::ServerConfig>,
}

impl RustlsAcceptor {
    /// An acceptor for a configuration prepared by [`server_config`].
    pub fn new(config: Arc<::rustls::ServerConfig>) -> RustlsAcceptor {
        RustlsAcceptor { config }
    }
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
            Err(e) => Box::new(FailedSession(tls_error(e))),
        }
    }
}

struct FailedSession(TlsError);

impl TlsSession for FailedSession {
    fn read_handshake(&mut self, _: &[u8]) -> Result<(), TlsError> {
        Err(self.0.clone())
    }
    fn write_handshake(&mut self, _: &mut Vec<u8>) {}
    fn is_handshaking(&self) -> bool {
        true
    }
    fn traffic_keys(&mut self) -> Result<(RecordKey, RecordKey), TlsError> {
        Err(self.0.clone())
    }
    fn peer_certificates(&self) -> Option<Vec<Vec<u8>>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_errors_carry_the_alert_rustls_sends() {
        let e = tls_error(::rustls::Error::InvalidCertificate(
            ::rustls::CertificateError::UnknownIssuer,
        ));
        assert_eq!(e.alert(), Some(Alert::UnknownCa));
        assert!(e.to_string().contains("UnknownIssuer"), "{e}");
        let TlsError::Refused { source, .. } = &e else { panic!("{e:?}") };
        assert!(source.get().downcast_ref::<::rustls::Error>().is_some());
        let e = tls_error(::rustls::Error::AlertReceived(AlertDescription::CertificateRequired));
        assert_eq!(e, TlsError::AlertReceived(Alert::CertificateRequired));
    }
}
