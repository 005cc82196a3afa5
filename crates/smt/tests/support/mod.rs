//! Certificates and TLS configurations for tests.
#![allow(dead_code)]

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// A self-signed certificate and its key.
pub struct Identity {
    pub cert: CertificateDer<'static>,
    pub key: PrivatePkcs8KeyDer<'static>,
}

pub fn identity(names: &[&str]) -> Identity {
    let ck =
        rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("rcgen");
    Identity {
        cert: ck.cert.der().clone(),
        key: PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

pub fn server_config(id: &Identity) -> Arc<ServerConfig> {
    Arc::new(
        ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![id.cert.clone()], PrivateKeyDer::Pkcs8(id.key.clone_key()))
            .unwrap(),
    )
}

/// A server that requires client certificates signed by (= equal to) `client_ca`.
pub fn mtls_server_config(id: &Identity, client_ca: &Identity) -> Arc<ServerConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(client_ca.cert.clone()).unwrap();
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .unwrap();
    Arc::new(
        ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![id.cert.clone()], PrivateKeyDer::Pkcs8(id.key.clone_key()))
            .unwrap(),
    )
}

pub fn client_config(trusted: &Identity) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(trusted.cert.clone()).unwrap();
    Arc::new(
        ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

pub fn mtls_client_config(trusted: &Identity, me: &Identity) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(trusted.cert.clone()).unwrap();
    Arc::new(
        ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(vec![me.cert.clone()], PrivateKeyDer::Pkcs8(me.key.clone_key()))
            .unwrap(),
    )
}

/// Runs an echo server on `endpoint` until it closes.
pub fn spawn_echo(endpoint: smt::Endpoint) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(request) = endpoint.accept().await {
            let body = request.payload().clone();
            let _ = request.respond(body);
        }
    })
}

/// Awaits `future`, panicking with `what` if it takes longer than `limit`.
pub async fn within<F: std::future::Future>(
    limit: std::time::Duration,
    what: &str,
    future: F,
) -> F::Output {
    match tokio::time::timeout(limit, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what}: no outcome within {limit:?} (hang)"),
    }
}

/// `len` deterministic pseudo-random bytes (SplitMix64 seeded by `seed`).
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A server endpoint on 127.0.0.1 with an ephemeral port.
pub fn loopback_server(config: Arc<ServerConfig>) -> smt::Endpoint {
    smt::Endpoint::server("127.0.0.1:0".parse().unwrap(), config).expect("bind server")
}

/// A client endpoint on 127.0.0.1 with an ephemeral port.
pub fn loopback_client(config: Arc<ClientConfig>) -> smt::Endpoint {
    smt::Endpoint::client("127.0.0.1:0".parse().unwrap(), config).expect("bind client")
}

/// Which way a datagram crossed a [`Relay`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    ToServer,
    ToClient,
}

/// Datagrams a [`Relay`] saw, in arrival order.
pub type Captured = Vec<(Direction, Vec<u8>)>;

/// A UDP relay on loopback between one client and a server: the client sends to
/// `addr`, the relay forwards to the target from its own socket and back. The SMT
/// header repeats the UDP ports (PROTOCOL.md section 2), so the relay rewrites them
/// like a port-translating middlebox would have to. Every datagram is recorded (as
/// received, before the port rewrite) unless recording is off; `blocked` drops
/// everything in both directions.
pub struct Relay {
    pub addr: std::net::SocketAddr,
    pub captured: Arc<std::sync::Mutex<Captured>>,
    pub target: Arc<std::sync::Mutex<std::net::SocketAddr>>,
    pub blocked: Arc<std::sync::atomic::AtomicBool>,
    pub record: Arc<std::sync::atomic::AtomicBool>,
    /// Set by [`Relay::rebind`]; the relay clears it when it has moved.
    rebind: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Relay {
    pub async fn start(target: std::net::SocketAddr) -> Relay {
        use std::sync::atomic::{AtomicBool, Ordering};
        let front = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("relay front");
        let mut back = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("relay back");
        let addr = front.local_addr().unwrap();
        let mut back_port = back.local_addr().unwrap().port();
        let captured = Arc::new(std::sync::Mutex::new(Vec::new()));
        let target = Arc::new(std::sync::Mutex::new(target));
        let blocked = Arc::new(AtomicBool::new(false));
        let record = Arc::new(AtomicBool::new(true));
        let rebind = Arc::new(AtomicBool::new(false));
        let (c, t, b, r) = (captured.clone(), target.clone(), blocked.clone(), record.clone());
        let rb = rebind.clone();
        let task = tokio::spawn(async move {
            let mut client: Option<std::net::SocketAddr> = None;
            let mut from_client = vec![0u8; 65536];
            let mut from_server = vec![0u8; 65536];
            loop {
                tokio::select! {
                    r1 = front.recv_from(&mut from_client) => {
                        let Ok((n, from)) = r1 else { continue };
                        client = Some(from);
                        let datagram = &mut from_client[..n];
                        if r.load(Ordering::SeqCst) {
                            c.lock().unwrap().push((Direction::ToServer, datagram.to_vec()));
                        }
                        if b.load(Ordering::SeqCst) || n < 4 {
                            continue;
                        }
                        if rb.swap(false, Ordering::SeqCst) {
                            // A NAT losing its mapping: a new source port, and the
                            // old one closed (replies to it are lost).
                            back = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("relay back");
                            back_port = back.local_addr().unwrap().port();
                        }
                        let to = *t.lock().unwrap();
                        datagram[0..2].copy_from_slice(&back_port.to_be_bytes());
                        datagram[2..4].copy_from_slice(&to.port().to_be_bytes());
                        let _ = back.send_to(datagram, to).await;
                    }
                    r2 = back.recv_from(&mut from_server) => {
                        let Ok((n, _)) = r2 else { continue };
                        let datagram = &mut from_server[..n];
                        if r.load(Ordering::SeqCst) {
                            c.lock().unwrap().push((Direction::ToClient, datagram.to_vec()));
                        }
                        let Some(client) = client else { continue };
                        if b.load(Ordering::SeqCst) || n < 4 {
                            continue;
                        }
                        datagram[0..2].copy_from_slice(&addr.port().to_be_bytes());
                        datagram[2..4].copy_from_slice(&client.port().to_be_bytes());
                        let _ = front.send_to(datagram, client).await;
                    }
                }
            }
        });
        Relay { addr, captured, target, blocked, record, rebind, task }
    }

    /// Stops (`true`) or resumes forwarding in both directions.
    pub fn set_blocked(&self, blocked: bool) {
        self.blocked.store(blocked, std::sync::atomic::Ordering::SeqCst);
    }

    /// Makes the relay forward the client's next datagrams from a new source port
    /// (closing the old one), as a NAT whose mapping expired does.
    pub fn rebind(&self) {
        self.rebind.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Forwards the client's datagrams to `target` from now on.
    pub fn set_target(&self, target: std::net::SocketAddr) {
        *self.target.lock().unwrap() = target;
    }

    /// The datagrams recorded so far in `direction`.
    pub fn captured(&self, direction: Direction) -> Vec<Vec<u8>> {
        self.captured
            .lock()
            .unwrap()
            .iter()
            .filter(|(d, _)| *d == direction)
            .map(|(_, bytes)| bytes.clone())
            .collect()
    }
}

/// Polls `condition` every 10 ms, panicking with `what` if it is not true within `limit`.
pub async fn eventually(
    limit: std::time::Duration,
    what: &str,
    mut condition: impl FnMut() -> bool,
) {
    let start = std::time::Instant::now();
    while !condition() {
        assert!(start.elapsed() < limit, "{what}: still false after {limit:?}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Like [`identity`], but with its own subject name `common_name`. (Every
/// [`identity`] has the same subject, "rcgen self signed cert", so a client trusting
/// one of them sees another as signed by its trust anchor with a bad signature rather
/// than as issued by an unknown CA.)
pub fn identity_named(names: &[&str], common_name: &str) -> Identity {
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("rcgen params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
    let key_pair = rcgen::KeyPair::generate().expect("rcgen key");
    let cert = params.self_signed(&key_pair).expect("rcgen self-signed");
    Identity { cert: cert.der().clone(), key: PrivatePkcs8KeyDer::from(key_pair.serialize_der()) }
}
