//! Certificates and private keys from PEM files, with errors that name the file.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::ConfigError;

/// A certificate chain and its private key: what a server (or a client doing mutual
/// TLS) presents.
#[derive(Debug)]
pub struct Identity {
    /// The chain, leaf first.
    pub certs: Vec<CertificateDer<'static>>,
    /// The leaf certificate's private key.
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    /// Reads the chain from `cert_file` (leaf first) and the key from `key_file`.
    pub fn from_pem_files(
        cert_file: impl AsRef<Path>,
        key_file: impl AsRef<Path>,
    ) -> Result<Identity, ConfigError> {
        Ok(Identity { certs: load_certs(cert_file)?, key: load_key(key_file)? })
    }
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity { certs: self.certs.clone(), key: self.key.clone_key() }
    }
}

/// Every `CERTIFICATE` block of a PEM file; a file without one is an error.
pub fn load_certs(file: impl AsRef<Path>) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let file = file.as_ref();
    check_readable(file)?;
    let certs = CertificateDer::pem_file_iter(file)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| ConfigError::Pem { file: file.to_owned(), reason: e.to_string() })?;
    if certs.is_empty() {
        return Err(ConfigError::NoCertificate(file.to_owned()));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) of a PEM file.
pub fn load_key(file: impl AsRef<Path>) -> Result<PrivateKeyDer<'static>, ConfigError> {
    let file = file.as_ref();
    check_readable(file)?;
    PrivateKeyDer::from_pem_file(file).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => ConfigError::NoPrivateKey(file.to_owned()),
        e => ConfigError::Pem { file: file.to_owned(), reason: e.to_string() },
    })
}

/// Turns "file missing" into an error naming the file (the PEM parser's I/O error
/// alone does not).
fn check_readable(file: &Path) -> Result<(), ConfigError> {
    std::fs::metadata(file)
        .map(drop)
        .map_err(|source| ConfigError::Read { file: file.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write fixture");
        path
    }

    #[test]
    fn a_missing_file_is_named_in_the_error() {
        let err = load_certs("/nonexistent/smt/cert.pem").unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
        assert!(err.to_string().contains("/nonexistent/smt/cert.pem"), "{err}");
    }

    #[test]
    fn a_file_without_certificate_blocks_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(dir.path(), "empty.pem", "not a pem file\n");
        let err = load_certs(&path).unwrap_err();
        assert!(matches!(err, ConfigError::NoCertificate(_)), "{err:?}");
    }

    #[test]
    fn a_certificate_file_given_as_key_says_no_private_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let made = rcgen::generate_simple_self_signed(vec!["x".to_owned()]).expect("rcgen");
        let cert = write(dir.path(), "cert.pem", &made.cert.pem());
        let err = load_key(&cert).unwrap_err();
        assert!(matches!(err, ConfigError::NoPrivateKey(_)), "{err:?}");
        let key = write(dir.path(), "key.pem", &made.key_pair.serialize_pem());
        let identity = Identity::from_pem_files(&cert, &key).expect("identity loads");
        assert_eq!(identity.certs.len(), 1);
    }
}
