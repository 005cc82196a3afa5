//! One certificate and one crypto configuration for every encrypting transport:
//! aws-lc-rs, TLS 1.3 only, TLS_AES_128_GCM_SHA256 only, X25519, a self-signed ECDSA
//! P-256 certificate for "localhost".

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// The name in the certificate; clients verify it.
pub const SERVER_NAME: &str = "localhost";
pub const CIPHER_SUITE: &str = "TLS_AES_128_GCM_SHA256";
pub const KX_GROUP: &str = "X25519";
pub const CERT_TYPE: &str = "self-signed ECDSA P-256 (rcgen)";

/// aws-lc-rs restricted to one cipher suite and one key-exchange group.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        cipher_suites: vec![aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256],
        kx_groups: vec![aws_lc_rs::kx_group::X25519],
        ..aws_lc_rs::default_provider()
    })
}

/// Generates the certificate and key and writes them as `cert.pem` and `key.pem`
/// into `dir`, where server processes read them.
pub fn generate(dir: &Path) -> Result<()> {
    let generated = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_owned()])
        .context("cannot generate a certificate")?;
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("cert.pem"), generated.cert.pem())?;
    std::fs::write(dir.join("key.pem"), generated.key_pair.serialize_pem())?;
    Ok(())
}

fn cert(dir: &Path) -> Result<CertificateDer<'static>> {
    let file = dir.join("cert.pem");
    CertificateDer::from_pem_file(&file).with_context(|| format!("reading {}", file.display()))
}

/// A TLS 1.3 server configuration presenting the certificate in `dir`.
pub fn server_config(dir: &Path) -> Result<Arc<ServerConfig>> {
    let file = dir.join("key.pem");
    let key = PrivateKeyDer::from_pem_file(&file)
        .with_context(|| format!("reading {}", file.display()))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![cert(dir)?], key)?;
    Ok(Arc::new(config))
}

/// A TLS 1.3 client configuration trusting exactly the certificate in `dir`.
pub fn client_config(dir: &Path) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    roots.add(cert(dir)?)?;
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// quinn's transport configuration: the defaults, except larger send and stream
/// windows so that 16 x 1 MiB in flight is not limited by flow control (the defaults
/// are a 10 MB send window and 1.25 MB per stream, sized for 100 ms WAN paths).
pub fn quic_transport() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.send_window(QUIC_SEND_WINDOW);
    t.stream_receive_window(quinn::VarInt::from_u32(QUIC_STREAM_WINDOW));
    Arc::new(t)
}

pub const QUIC_SEND_WINDOW: u64 = 32 << 20;
pub const QUIC_STREAM_WINDOW: u32 = 2 << 20;

/// Socket buffer size asked for on QUIC's UDP sockets: what SMT asks for on its own.
pub const QUIC_SOCKET_BUFFER: usize = 8 << 20;

/// A UDP socket for quinn with SMT's socket buffer sizes.
pub fn quic_socket(addr: std::net::SocketAddr) -> Result<std::net::UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    let _ = socket.set_recv_buffer_size(QUIC_SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(QUIC_SOCKET_BUFFER);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// A quinn endpoint on [`quic_socket`].
pub fn quic_endpoint(
    addr: std::net::SocketAddr,
    server: Option<quinn::ServerConfig>,
) -> Result<quinn::Endpoint> {
    let runtime = quinn::default_runtime().context("no async runtime for quinn")?;
    Ok(quinn::Endpoint::new(quinn::EndpointConfig::default(), server, quic_socket(addr)?, runtime)?)
}

pub fn quic_server_config(dir: &Path) -> Result<quinn::ServerConfig> {
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(server_config(dir)?)
        .context("rustls server config unusable for QUIC")?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(quic_transport());
    Ok(config)
}

pub fn quic_client_config(dir: &Path) -> Result<quinn::ClientConfig> {
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(client_config(dir)?)
        .context("rustls client config unusable for QUIC")?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(quic_transport());
    Ok(config)
}

/// SMT's transport configuration: the library default. For diagnostics only (the
/// profiling notes), `SMT_BENCH_GRANT_WINDOW`, `SMT_BENCH_MAX_GRANT_WINDOW`,
/// `SMT_BENCH_UNSCHEDULED`, `SMT_BENCH_MAX_INCOMING`, `SMT_BENCH_LARGEST_PACKET`
/// (bytes) and `SMT_BENCH_LINK_BANDWIDTH` (bytes per second) override those fields; the
/// benchmark runs never set them.
pub fn smt_transport_config() -> smt::TransportConfig {
    let mut c = smt::TransportConfig::default();
    let get = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let get32 = |name: &str| get(name).and_then(|v| u32::try_from(v).ok());
    if let Some(v) = get32("SMT_BENCH_GRANT_WINDOW") {
        c.grant_window = v;
    }
    if let Some(v) = get32("SMT_BENCH_MAX_GRANT_WINDOW") {
        c.max_grant_window = v;
    }
    if let Some(v) = get32("SMT_BENCH_UNSCHEDULED") {
        c.unscheduled_bytes = v;
    }
    if let Some(v) = get32("SMT_BENCH_MAX_INCOMING") {
        c.max_incoming = v;
    }
    if let Some(v) = get("SMT_BENCH_LINK_BANDWIDTH") {
        c.link_bandwidth = v;
    }
    if let Some(v) = get("SMT_BENCH_LARGEST_PACKET").and_then(|v| usize::try_from(v).ok()) {
        c.largest_packet_payload = v;
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_build_from_generated_files() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path()).unwrap();
        server_config(dir.path()).unwrap();
        client_config(dir.path()).unwrap();
        quic_server_config(dir.path()).unwrap();
        quic_client_config(dir.path()).unwrap();
        let p = provider();
        assert_eq!(p.cipher_suites.len(), 1);
        let suite = format!("{:?}", p.cipher_suites[0].suite());
        assert_eq!(suite.replace("TLS13_", "TLS_"), CIPHER_SUITE);
    }
}
