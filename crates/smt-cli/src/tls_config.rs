//! rustls configurations for SMT: the aws-lc-rs provider, TLS 1.3 only.

use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::pem_files::Identity;

/// The aws-lc-rs provider with its default cipher suites and key-exchange groups.
pub fn default_provider() -> Arc<CryptoProvider> {
    Arc::new(aws_lc_rs::default_provider())
}

/// The aws-lc-rs provider restricted to one TLS 1.3 cipher suite and one key-exchange
/// group, so that what a handshake negotiates is known without asking rustls.
pub fn pinned_provider() -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        cipher_suites: vec![aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256],
        kx_groups: vec![aws_lc_rs::kx_group::X25519],
        ..aws_lc_rs::default_provider()
    })
}

/// The names of what [`pinned_provider`] allows (IANA names), for display.
pub const PINNED_SUITE: &str = "TLS_AES_128_GCM_SHA256";
pub const PINNED_KX_GROUP: &str = "X25519";

/// A server presenting `identity`; with `client_ca`, clients must present a
/// certificate that chains to one of those certificates (mutual TLS).
pub fn server(
    provider: Arc<CryptoProvider>,
    identity: Identity,
    client_ca: Option<&[CertificateDer<'static>]>,
) -> Result<Arc<ServerConfig>> {
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3 is not supported by the crypto provider")?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let roots = root_store(ca).context("client CA")?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .context("cannot build the client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(identity.certs, identity.key)
        .context("the certificate and private key are unusable together")?;
    Ok(Arc::new(config))
}

/// A client trusting the certificates in `roots`, optionally presenting `identity`.
pub fn client(
    provider: Arc<CryptoProvider>,
    roots: &[CertificateDer<'static>],
    identity: Option<Identity>,
) -> Result<Arc<ClientConfig>> {
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3 is not supported by the crypto provider")?
        .with_root_certificates(root_store(roots).context("CA")?);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(id) => builder
            .with_client_auth_cert(id.certs, id.key)
            .context("the client certificate and private key are unusable together")?,
    };
    Ok(Arc::new(config))
}

fn root_store(certs: &[CertificateDer<'static>]) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for (i, cert) in certs.iter().enumerate() {
        roots
            .add(cert.clone())
            .with_context(|| format!("certificate {} is not a usable trust anchor", i + 1))?;
    }
    Ok(roots)
}
