//! Loading certificates and private keys from PEM files, with errors that name the file.

use std::path::Path;

use anyhow::{bail, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate chain and its private key: what a server (or an mTLS client) presents.
pub struct Identity {
    pub certs: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    /// Reads the chain from `cert_file` (leaf first) and the key from `key_file`.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Identity> {
        Ok(Identity { certs: load_certs(cert_file)?, key: load_key(key_file)? })
    }
}

/// Every `CERTIFICATE` block of a PEM file; at least one is required.
pub fn load_certs(file: &Path) -> Result<Vec<CertificateDer<'static>>> {
    check_readable(file)?;
    let certs = CertificateDer::pem_file_iter(file)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .with_context(|| format!("cannot read certificates from {}", file.display()))?;
    if certs.is_empty() {
        bail!("{}: no PEM CERTIFICATE block found", file.display());
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) of a PEM file.
pub fn load_key(file: &Path) -> Result<PrivateKeyDer<'static>> {
    check_readable(file)?;
    PrivateKeyDer::from_pem_file(file).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            anyhow::anyhow!("{}: no PEM PRIVATE KEY block found", file.display())
        }
        e => anyhow::anyhow!("cannot read private key from {}: {e}", file.display()),
    })
}

/// Turns "file missing" into a message naming the file (the PEM parser's I/O error
/// alone does not).
fn check_readable(file: &Path) -> Result<()> {
    std::fs::metadata(file).map(drop).with_context(|| format!("cannot open {}", file.display()))
}
