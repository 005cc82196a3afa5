//! The interface between the engine and a TLS 1.3 implementation, and its errors.
//!
//! The engine carries the handshake's bytes (reliably, over HANDSHAKE packets) and
//! installs the resulting traffic keys; the TLS library does the cryptography of the
//! handshake. With the `rustls` feature, [`crate::rustls`] implements these traits
//! with rustls; tests may use any implementation.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::record::{RecordKey, TrafficSecret};

/// One side of one TLS 1.3 handshake.
pub trait TlsSession: Send {
    /// Feeds bytes of the peer's handshake stream, in order, without gaps.
    fn read_handshake(&mut self, bytes: &[u8]) -> Result<(), TlsError>;
    /// Appends bytes the peer must receive (the TLS records the library wants sent).
    fn write_handshake(&mut self, out: &mut Vec<u8>);
    /// Whether the handshake is still in progress.
    fn is_handshaking(&self) -> bool;
    /// The negotiated traffic keys: `(tx, rx)` for this side. Called once, after the
    /// handshake completed and every byte from `write_handshake` was taken.
    fn traffic_keys(&mut self) -> Result<(RecordKey, RecordKey), TlsError>;
    /// The peer's certificate chain (DER), if it presented one.
    fn peer_certificates(&self) -> Option<Vec<Vec<u8>>>;
    /// The application traffic secrets `(tx, rx)` behind the traffic keys, which
    /// let the session update its keys. Called before `traffic_keys`. Without them the
    /// session works but cannot update keys (and refuses to seal past the usage limit).
    fn traffic_secrets(&mut self) -> Option<(TrafficSecret, TrafficSecret)> {
        None
    }
}

/// Creates the server side of new handshakes.
pub trait TlsAcceptor: Send {
    /// A fresh server-side session for a client at `peer`.
    fn start(&self, peer: std::net::SocketAddr) -> Box<dyn TlsSession>;
}

/// A TLS alert description (RFC 8446 section 6.2), as sent or received when a
/// handshake fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Alert {
    /// `close_notify` (0).
    CloseNotify,
    /// `unexpected_message` (10).
    UnexpectedMessage,
    /// `bad_record_mac` (20).
    BadRecordMac,
    /// `record_overflow` (22).
    RecordOverflow,
    /// `handshake_failure` (40).
    HandshakeFailure,
    /// `bad_certificate` (42).
    BadCertificate,
    /// `unsupported_certificate` (43).
    UnsupportedCertificate,
    /// `certificate_revoked` (44).
    CertificateRevoked,
    /// `certificate_expired` (45).
    CertificateExpired,
    /// `certificate_unknown` (46).
    CertificateUnknown,
    /// `illegal_parameter` (47).
    IllegalParameter,
    /// `unknown_ca` (48).
    UnknownCa,
    /// `access_denied` (49).
    AccessDenied,
    /// `decode_error` (50).
    DecodeError,
    /// `decrypt_error` (51).
    DecryptError,
    /// `protocol_version` (70).
    ProtocolVersion,
    /// `insufficient_security` (71).
    InsufficientSecurity,
    /// `internal_error` (80).
    InternalError,
    /// `inappropriate_fallback` (86).
    InappropriateFallback,
    /// `user_canceled` (90).
    UserCanceled,
    /// `missing_extension` (109).
    MissingExtension,
    /// `unsupported_extension` (110).
    UnsupportedExtension,
    /// `unrecognized_name` (112).
    UnrecognizedName,
    /// `bad_certificate_status_response` (113).
    BadCertificateStatusResponse,
    /// `unknown_psk_identity` (115).
    UnknownPskIdentity,
    /// `certificate_required` (116).
    CertificateRequired,
    /// `no_application_protocol` (120).
    NoApplicationProtocol,
    /// A description this list does not name.
    Other(u8),
}

const ALERTS: [(Alert, u8, &str); 27] = [
    (Alert::CloseNotify, 0, "close_notify"),
    (Alert::UnexpectedMessage, 10, "unexpected_message"),
    (Alert::BadRecordMac, 20, "bad_record_mac"),
    (Alert::RecordOverflow, 22, "record_overflow"),
    (Alert::HandshakeFailure, 40, "handshake_failure"),
    (Alert::BadCertificate, 42, "bad_certificate"),
    (Alert::UnsupportedCertificate, 43, "unsupported_certificate"),
    (Alert::CertificateRevoked, 44, "certificate_revoked"),
    (Alert::CertificateExpired, 45, "certificate_expired"),
    (Alert::CertificateUnknown, 46, "certificate_unknown"),
    (Alert::IllegalParameter, 47, "illegal_parameter"),
    (Alert::UnknownCa, 48, "unknown_ca"),
    (Alert::AccessDenied, 49, "access_denied"),
    (Alert::DecodeError, 50, "decode_error"),
    (Alert::DecryptError, 51, "decrypt_error"),
    (Alert::ProtocolVersion, 70, "protocol_version"),
    (Alert::InsufficientSecurity, 71, "insufficient_security"),
    (Alert::InternalError, 80, "internal_error"),
    (Alert::InappropriateFallback, 86, "inappropriate_fallback"),
    (Alert::UserCanceled, 90, "user_canceled"),
    (Alert::MissingExtension, 109, "missing_extension"),
    (Alert::UnsupportedExtension, 110, "unsupported_extension"),
    (Alert::UnrecognizedName, 112, "unrecognized_name"),
    (Alert::BadCertificateStatusResponse, 113, "bad_certificate_status_response"),
    (Alert::UnknownPskIdentity, 115, "unknown_psk_identity"),
    (Alert::CertificateRequired, 116, "certificate_required"),
    (Alert::NoApplicationProtocol, 120, "no_application_protocol"),
];

impl Alert {
    /// The alert with description byte `code`.
    pub fn from_u8(code: u8) -> Alert {
        ALERTS.iter().find(|(_, c, _)| *c == code).map_or(Alert::Other(code), |(a, _, _)| *a)
    }

    /// The description byte.
    pub fn to_u8(self) -> u8 {
        match self {
            Alert::Other(code) => code,
            known => ALERTS.iter().find(|(a, _, _)| *a == known).map_or(0, |(_, c, _)| *c),
        }
    }
}

impl fmt::Display for Alert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match ALERTS.iter().find(|(a, _, _)| a == self) {
            Some((_, _, name)) => f.write_str(name),
            None => write!(f, "TLS alert {}", self.to_u8()),
        }
    }
}

/// The TLS library's own error, kept whole for callers that want its details.
/// Compares equal to another by its message.
#[derive(Clone)]
pub struct TlsLibraryError(Arc<dyn std::error::Error + Send + Sync>);

impl TlsLibraryError {
    /// Wraps the library's error.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> TlsLibraryError {
        TlsLibraryError(Arc::new(error))
    }

    /// A library error known only by its message.
    pub fn message(text: impl Into<String>) -> TlsLibraryError {
        #[derive(Debug)]
        struct Message(String);
        impl fmt::Display for Message {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl std::error::Error for Message {}
        TlsLibraryError(Arc::new(Message(text.into())))
    }

    /// The error as the library reported it (downcast it to the library's type).
    pub fn get(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl fmt::Debug for TlsLibraryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for TlsLibraryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for TlsLibraryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for TlsLibraryError {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl Eq for TlsLibraryError {}

/// Why a TLS handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The peer rejected the handshake and said why with this alert.
    #[error("the peer rejected the handshake: {0} alert")]
    AlertReceived(Alert),
    /// This side's TLS library refused the peer's handshake (an untrusted or
    /// mismatched certificate, say); `alert` is what the peer was told.
    #[error("{source}")]
    Refused {
        /// The alert sent to the peer, if known.
        alert: Option<Alert>,
        /// The TLS library's error.
        #[source]
        source: TlsLibraryError,
    },
    /// The peer aborted the handshake after this side completed it, with a record
    /// this side could not read.
    #[error("the peer aborted the handshake after this side completed it")]
    PeerAborted,
    /// The handshake did not complete in time.
    #[error("handshake timed out after {0:?}")]
    TimedOut(Duration),
    /// Nothing at all came back from the peer's address within the handshake
    /// timeout: no server there, or the path drops the packets (a firewall, a port
    /// mapping that does not pass SMT's port).
    #[error(
        "no reply from {peer} within {timeout:?}: is a server listening there, and does \
         the path pass UDP port {}?",
        peer.port()
    )]
    NoReply {
        /// Where the handshake was sent.
        peer: std::net::SocketAddr,
        /// How long the client waited.
        timeout: Duration,
    },
    /// The server refused the new session: it holds `max_sessions` sessions and none
    /// has been idle long enough to close for this one.
    #[error(
        "the server refused the session: it is at its session limit (max_sessions) and \
         has no idle session to free; retry later"
    )]
    ServerFull,
    /// The peers negotiated a TLS version other than 1.3.
    #[error("SMT requires TLS 1.3, negotiated {0}")]
    NotTls13(String),
    /// A handshake stream exceeded the engine's bound.
    #[error("handshake stream longer than {0} bytes")]
    StreamTooLong(usize),
    /// The TLS library consumed no bytes of the stream.
    #[error("the handshake stream ended")]
    StreamEnded,
    /// The TLS library protected so many records with the application key that
    /// SMT's sequence numbers could collide with them.
    #[error("TLS used too many application records before SMT took over")]
    TooManyRecords,
    /// The handshake completed but its traffic keys could not be obtained.
    #[error("no usable traffic keys: {0}")]
    Keys(TlsLibraryError),
    /// The session could not be installed after the handshake.
    #[error("the session could not be installed: {0}")]
    Install(super::InstallError),
}

impl TlsError {
    /// A refusal by this side's TLS library, known only by its message.
    pub fn refused(alert: Option<Alert>, message: impl Into<String>) -> TlsError {
        TlsError::Refused { alert, source: TlsLibraryError::message(message) }
    }

    /// The alert that ended the handshake, whichever side sent it.
    pub fn alert(&self) -> Option<Alert> {
        match self {
            TlsError::AlertReceived(alert) => Some(*alert),
            TlsError::Refused { alert, .. } => *alert,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_round_trip_through_their_codes_and_print_their_rfc_names() {
        for code in 0..=255u8 {
            assert_eq!(Alert::from_u8(code).to_u8(), code);
        }
        assert_eq!(Alert::from_u8(42), Alert::BadCertificate);
        assert_eq!(Alert::BadCertificate.to_string(), "bad_certificate");
        assert_eq!(Alert::from_u8(200).to_string(), "TLS alert 200");
    }

    #[test]
    fn errors_name_their_alert_and_keep_the_library_message() {
        let e =
            TlsError::refused(Some(Alert::UnknownCa), "invalid peer certificate: UnknownIssuer");
        assert_eq!(e.alert(), Some(Alert::UnknownCa));
        assert_eq!(e.to_string(), "invalid peer certificate: UnknownIssuer");
        assert!(std::error::Error::source(&e).is_some());
        assert_eq!(
            TlsError::AlertReceived(Alert::CertificateRequired).alert(),
            Some(Alert::CertificateRequired)
        );
        assert_eq!(
            TlsError::AlertReceived(Alert::CertificateRequired).to_string(),
            "the peer rejected the handshake: certificate_required alert"
        );
    }
}
