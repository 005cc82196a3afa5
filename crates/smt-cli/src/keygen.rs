//! `smt keygen`: a self-signed certificate and its key, as PEM files.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{CertificateParams, CertifiedKey, DistinguishedName, DnType, KeyPair};

#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Directory for cert.pem and key.pem (created if missing; existing files are replaced).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The certificate's subject alternative name: a DNS name, or an IP address.
    #[arg(long, value_name = "NAME")]
    pub name: String,
}

pub fn run(args: &KeygenArgs) -> Result<()> {
    let generated = self_signed(&args.name)?;
    fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create directory {}", args.out.display()))?;
    let cert_file = args.out.join("cert.pem");
    let key_file = args.out.join("key.pem");
    write_file(&cert_file, generated.cert.pem().as_bytes(), 0o644)?;
    write_file(&key_file, generated.key_pair.serialize_pem().as_bytes(), 0o600)?;
    say!("{}", cert_file.display());
    say!("{}", key_file.display());
    Ok(())
}

/// A self-signed ECDSA P-256 certificate for `name` (an IP SAN if `name` is an IP
/// address, a DNS SAN otherwise), usable both as a server and as a client certificate.
pub fn self_signed(name: &str) -> Result<CertifiedKey> {
    // The name clients will check (`smt call --server-name`), so it must be one.
    rustls::pki_types::ServerName::try_from(name)
        .map_err(|_| anyhow::anyhow!("invalid name {name:?}: not a DNS name or IP address"))?;
    let mut params = CertificateParams::new(vec![name.to_owned()])
        .with_context(|| format!("invalid name {name:?}: not a DNS name or IP address"))?;
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, name);
    params.distinguished_name = subject;
    let key_pair = KeyPair::generate().context("cannot generate a key pair")?;
    let cert = params.self_signed(&key_pair).context("cannot sign the certificate")?;
    Ok(CertifiedKey { cert, key_pair })
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let write = || -> std::io::Result<()> {
        let mut file =
            fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(path)?;
        // `mode` only applies to new files; tighten an existing one too.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()
    };
    write().with_context(|| format!("cannot write {}", path.display()))
}
