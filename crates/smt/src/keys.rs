//! The kTLS-style path: install traffic keys from a handshake run elsewhere.

use std::net::SocketAddr;

use smt_proto::engine::{Role, SessionParams};
use smt_proto::record::{CipherSuite, RecordKey, TrafficSecret};

use crate::error::{Error, Result};

/// One direction's TLS 1.3 traffic key and IV, as a TLS library exports them, and
/// optionally the traffic secret they came from (needed for key updates).
#[derive(Clone, PartialEq, Eq)]
pub struct TrafficKey {
    /// The negotiated TLS 1.3 cipher suite.
    pub suite: CipherSuite,
    /// The traffic key (16 or 32 bytes, as the suite needs).
    pub key: Vec<u8>,
    /// The 12-byte IV (RFC 8446 5.3).
    pub iv: Vec<u8>,
    /// The application traffic secret; with it (on both directions) the session can
    /// update its keys before their usage limit, without it the session must be
    /// re-established at the limit.
    pub secret: Option<Vec<u8>>,
}

impl std::fmt::Debug for TrafficKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrafficKey").field("suite", &self.suite).finish_non_exhaustive()
    }
}

impl TrafficKey {
    /// Takes rustls's extracted secrets (`dangerous_extract_secrets`) for one direction.
    pub fn from_rustls(secrets: rustls::ConnectionTrafficSecrets) -> Result<TrafficKey> {
        let (suite, key, iv) = smt_proto::rustls::traffic_key_parts(&secrets)
            .ok_or_else(|| Error::InvalidKeys("cipher suite not supported by SMT".into()))?;
        Ok(TrafficKey { suite, key: key.to_vec(), iv: iv.to_vec(), secret: None })
    }

    /// Derives key and IV from an application traffic secret (RFC 8446 7.3), as
    /// exported by a TLS library's key log (`CLIENT_TRAFFIC_SECRET_0` /
    /// `SERVER_TRAFFIC_SECRET_0`). Sessions built from secrets can update keys.
    pub fn from_secret(suite: CipherSuite, secret: &[u8]) -> Result<TrafficKey> {
        let derived =
            TrafficSecret::new(suite, secret).map_err(|e| Error::InvalidKeys(e.to_string()))?;
        let (key, iv) = derived.key_and_iv();
        Ok(TrafficKey { suite, key, iv, secret: Some(secret.to_vec()) })
    }

    fn traffic_secret(&self) -> Result<Option<TrafficSecret>> {
        self.secret
            .as_deref()
            .map(|s| {
                TrafficSecret::new(self.suite, s).map_err(|e| Error::InvalidKeys(e.to_string()))
            })
            .transpose()
    }

    pub(crate) fn record_key(&self) -> Result<RecordKey> {
        RecordKey::new(self.suite, &self.key, &self.iv)
            .map_err(|e| Error::InvalidKeys(e.to_string()))
    }
}

/// Everything needed to install a session without the in-band handshake, like the
/// `setsockopt(fd, TLS_TX/TLS_RX, ...)` calls of kTLS.
#[derive(Debug, Clone)]
pub struct SessionKeys {
    /// The peer's SMT address.
    pub peer: SocketAddr,
    /// Agreed by both sides (e.g. derived from the handshake); must be the same on both.
    pub session_id: u64,
    /// Whether this side sends requests (`Client`) or answers them (`Server`).
    pub role: Role,
    /// Protects what this side sends.
    pub tx: TrafficKey,
    /// Opens what the peer sends.
    pub rx: TrafficKey,
}

impl SessionKeys {
    pub(crate) fn into_params(self) -> Result<SessionParams> {
        if self.tx.key == self.rx.key && self.tx.iv == self.rx.iv {
            // Same key both ways would let requests and responses with the same ID
            // share a nonce.
            return Err(Error::InvalidKeys("tx and rx keys must differ".into()));
        }
        Ok(SessionParams {
            peer: self.peer,
            session_id: self.session_id,
            role: self.role,
            tx: self.tx.record_key()?,
            rx: self.rx.record_key()?,
            tx_secret: self.tx.traffic_secret()?,
            rx_secret: self.rx.traffic_secret()?,
        })
    }
}
