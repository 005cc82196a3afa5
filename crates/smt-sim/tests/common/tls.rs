//! Real TLS 1.3 (rustls through `smt_proto::rustls`) for simulator scenarios:
//! throwaway identities, configs, and connecting a host to another.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use smt_proto::engine::SessionHandle;
use smt_proto::rustls::{client_config, server_config, RustlsAcceptor, RustlsSession};
use smt_sim::{HostId, Network};

pub struct Identity {
    pub cert: CertificateDer<'static>,
    pub key: PrivatePkcs8KeyDer<'static>,
}

/// A self-signed certificate for `name`, issued by a CA called `ca` (distinct names
/// keep verifiers from mistaking one test CA for another).
pub fn identity_by(name: &str, ca: &str) -> Identity {
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).expect("params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, ca);
    let key_pair = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key_pair).expect("self-signed");
    Identity { cert: cert.der().clone(), key: PrivatePkcs8KeyDer::from(key_pair.serialize_der()) }
}

pub fn identity(name: &str) -> Identity {
    identity_by(name, name)
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

pub fn roots(trusted: &Identity) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.cert.clone()).expect("root");
    roots
}

pub fn server_tls(id: &Identity, client_ca: Option<&Identity>) -> RustlsAcceptor {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3");
    let builder = match client_ca {
        Some(ca) => builder.with_client_cert_verifier(
            rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots(ca)),
                provider(),
            )
            .build()
            .expect("verifier"),
        ),
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(vec![id.cert.clone()], PrivateKeyDer::Pkcs8(id.key.clone_key()))
        .expect("server cert");
    RustlsAcceptor::new(server_config(&config))
}

pub fn client_tls(trusted: &Identity, me: Option<&Identity>) -> Arc<rustls::ClientConfig> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots(trusted));
    let config = match me {
        Some(me) => builder
            .with_client_auth_cert(vec![me.cert.clone()], PrivateKeyDer::Pkcs8(me.key.clone_key()))
            .expect("client cert"),
        None => builder.with_no_client_auth(),
    };
    client_config(&config)
}

/// The session ID `connect` gives every handshake (hosts differ by address).
pub const SESSION_ID: u64 = 0x5157_0001;

/// Starts an in-band handshake from `client` to `server`; the client's handle.
pub fn connect(
    net: &mut Network,
    client: HostId,
    server: HostId,
    config: Arc<rustls::ClientConfig>,
) -> SessionHandle {
    let tls = RustlsSession::client(config, "server.test").expect("client session");
    let (now, peer) = (net.now(), net.addr(server));
    let handle = net.endpoint(client).connect(now, peer, SESSION_ID, Box::new(tls));
    net.pump_host(client);
    handle
}
