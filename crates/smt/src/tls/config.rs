//! rustls configurations for SMT: TLS 1.3 only, an explicit aws-lc-rs provider.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::{aws_lc_rs, CryptoProvider, SupportedKxGroup};
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use super::pem::{load_certs, Identity};

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A file is not valid PEM.
    #[error("{}: invalid PEM: {reason}", file.display())]
    Pem {
        /// The file.
        file: PathBuf,
        /// The parser's reason.
        reason: String,
    },
    /// A certificate file holds no `CERTIFICATE` block.
    #[error("{}: no PEM CERTIFICATE block found", .0.display())]
    NoCertificate(PathBuf),
    /// A key file holds no private key block.
    #[error("{}: no PEM PRIVATE KEY block found", .0.display())]
    NoPrivateKey(PathBuf),
    /// A CA certificate cannot serve as a trust anchor.
    #[error("certificate {index} of the trust roots is not a usable trust anchor: {source}")]
    TrustAnchor {
        /// Its position among the roots, from 1.
        index: usize,
        /// rustls's reason.
        source: rustls::Error,
    },
    /// The certificate chain and private key do not work together (wrong key,
    /// unsupported key type, ...).
    #[error("the certificate and private key are unusable together: {0}")]
    Identity(rustls::Error),
    /// The client-certificate verifier could not be built.
    #[error("cannot build the client certificate verifier: {0}")]
    ClientVerifier(String),
    /// The provider does not support TLS 1.3 (only possible with a custom provider).
    #[error("the crypto provider cannot do TLS 1.3: {0}")]
    Provider(rustls::Error),
}

/// The key-exchange groups a configuration offers, in order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum KxPreference {
    /// X25519MLKEM768 (hybrid post-quantum, draft-ietf-tls-ecdhe-mlkem) first, then
    /// X25519, P-256 and P-384. A client sends key shares for X25519MLKEM768 and
    /// X25519, so a server without post-quantum support still completes in one round
    /// trip. The ClientHello grows by about 1.2 KB and spans two datagrams.
    #[default]
    PostQuantum,
    /// X25519, P-256 and P-384 only: the smallest ClientHello (one datagram).
    Classical,
}

impl KxPreference {
    fn groups(self) -> Vec<&'static dyn SupportedKxGroup> {
        use aws_lc_rs::kx_group::{SECP256R1, SECP384R1, X25519, X25519MLKEM768};
        match self {
            KxPreference::PostQuantum => vec![X25519MLKEM768, X25519, SECP256R1, SECP384R1],
            KxPreference::Classical => vec![X25519, SECP256R1, SECP384R1],
        }
    }
}

/// The aws-lc-rs provider with its TLS 1.3 cipher suites and post-quantum key
/// exchange preferred ([`KxPreference::PostQuantum`]).
pub fn provider() -> Arc<CryptoProvider> {
    provider_with_kx_groups(KxPreference::PostQuantum)
}

/// The aws-lc-rs provider with the key-exchange groups of `preference`.
pub fn provider_with_kx_groups(preference: KxPreference) -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider { kx_groups: preference.groups(), ..aws_lc_rs::default_provider() })
}

/// A server configuration presenting `identity`. With `client_ca`, clients must
/// present a certificate that chains to one of those certificates (mutual TLS).
pub fn server_config(
    provider: Arc<CryptoProvider>,
    identity: Identity,
    client_ca: Option<&[CertificateDer<'static>]>,
) -> Result<Arc<ServerConfig>, ConfigError> {
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(ConfigError::Provider)?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(root_store(ca)?), provider)
                    .build()
                    .map_err(|e| ConfigError::ClientVerifier(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config =
        builder.with_single_cert(identity.certs, identity.key).map_err(ConfigError::Identity)?;
    Ok(Arc::new(config))
}

/// A client configuration trusting the certificates in `roots` (CA certificates, or
/// a server's self-signed certificate), optionally presenting `identity`.
pub fn client_config(
    provider: Arc<CryptoProvider>,
    roots: &[CertificateDer<'static>],
    identity: Option<Identity>,
) -> Result<Arc<ClientConfig>, ConfigError> {
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(ConfigError::Provider)?
        .with_root_certificates(root_store(roots)?);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(id) => {
            builder.with_client_auth_cert(id.certs, id.key).map_err(ConfigError::Identity)?
        }
    };
    Ok(Arc::new(config))
}

/// [`server_config`] from PEM files with the default [`provider`]: the chain in
/// `cert_file` (leaf first), its key in `key_file`, and optionally the CA
/// certificates that client certificates must chain to.
pub fn server_config_from_pem(
    cert_file: impl AsRef<Path>,
    key_file: impl AsRef<Path>,
    client_ca_file: Option<impl AsRef<Path>>,
) -> Result<Arc<ServerConfig>, ConfigError> {
    let identity = Identity::from_pem_files(cert_file, key_file)?;
    let client_ca = client_ca_file.map(load_certs).transpose()?;
    server_config(provider(), identity, client_ca.as_deref())
}

/// [`client_config`] from PEM files with the default [`provider`]: the trusted
/// certificates in `ca_file`, and optionally a client identity
/// `(cert_file, key_file)` for mutual TLS.
pub fn client_config_from_pem(
    ca_file: impl AsRef<Path>,
    identity: Option<(&Path, &Path)>,
) -> Result<Arc<ClientConfig>, ConfigError> {
    let roots = load_certs(ca_file)?;
    let identity = identity.map(|(cert, key)| Identity::from_pem_files(cert, key)).transpose()?;
    client_config(provider(), &roots, identity)
}

fn root_store(certs: &[CertificateDer<'static>]) -> Result<RootCertStore, ConfigError> {
    let mut roots = RootCertStore::empty();
    for (i, cert) in certs.iter().enumerate() {
        roots
            .add(cert.clone())
            .map_err(|source| ConfigError::TrustAnchor { index: i + 1, source })?;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_provider_prefers_the_post_quantum_hybrid_group() {
        let names: Vec<_> = provider().kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(names[0], rustls::NamedGroup::X25519MLKEM768, "{names:?}");
        assert!(names.contains(&rustls::NamedGroup::X25519), "{names:?}");
        let classical = provider_with_kx_groups(KxPreference::Classical);
        assert!(classical.kx_groups.iter().all(|g| g.name() != rustls::NamedGroup::X25519MLKEM768));
    }

    #[test]
    fn configs_build_without_a_process_wide_default_provider() {
        // With no default installed, `ClientConfig::builder()` has to guess from the
        // crate features and panics when two providers are compiled in; the helpers
        // never ask for the default.
        assert!(CryptoProvider::get_default().is_none());
        let made = rcgen::generate_simple_self_signed(vec!["x".to_owned()]).expect("rcgen");
        let cert = CertificateDer::from(made.cert.der().to_vec());
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(
            rustls::pki_types::PrivatePkcs8KeyDer::from(made.key_pair.serialize_der()),
        );
        let identity = Identity { certs: vec![cert.clone()], key };
        server_config(provider(), identity.clone(), Some(std::slice::from_ref(&cert)))
            .expect("server config");
        client_config(provider(), &[cert], Some(identity)).expect("client config");
    }

    #[test]
    fn a_key_that_does_not_match_the_certificate_is_refused() {
        let a = rcgen::generate_simple_self_signed(vec!["a".to_owned()]).expect("rcgen");
        let b = rcgen::generate_simple_self_signed(vec!["b".to_owned()]).expect("rcgen");
        let identity = Identity {
            certs: vec![CertificateDer::from(a.cert.der().to_vec())],
            key: rustls::pki_types::PrivateKeyDer::Pkcs8(
                rustls::pki_types::PrivatePkcs8KeyDer::from(b.key_pair.serialize_der()),
            ),
        };
        let err = server_config(provider(), identity, None).unwrap_err();
        assert!(matches!(err, ConfigError::Identity(_)), "{err:?}");
    }
}
