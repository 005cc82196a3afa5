//! The three listeners over one store: plain TCP and TLS over TCP (RESP streams,
//! pipelined), and SMT (one RESP command per request message, one reply per
//! response message; many calls in flight are SMT's pipelining).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tracing::{debug, info};

use crate::command::{After, Connection, Listener, Shared};
use crate::reply::Reply;
use crate::request::{next_command, single_command};

/// How often expired keys are swept, and how many per shard at most each time.
const SWEEP_EVERY: Duration = Duration::from_millis(100);
const SWEEP_BUDGET: usize = 200;
/// Most SMT peers whose connection state (RESP version, name) is kept.
const MAX_SMT_PEERS: usize = 65_536;

/// Where to listen and with which certificate.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    pub tcp: Option<SocketAddr>,
    pub tls: Option<SocketAddr>,
    pub smt: Option<SocketAddr>,
    /// Certificate and key for the TLS and SMT listeners (TLS 1.3, as SMT requires).
    pub tls_config: Option<Arc<rustls::ServerConfig>>,
    /// Store shards; 0 picks four per CPU.
    pub shards: usize,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    #[error("no listener: give at least one of --tcp, --tls, --smt")]
    NoListener,
    #[error("the TLS and SMT listeners need a certificate and key (--cert, --key)")]
    NoCertificate,
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot start the SMT listener on {addr}: {source}")]
    Smt { addr: SocketAddr, source: smt::Error },
}

/// A running server.
pub struct Server {
    pub shared: Arc<Shared>,
    tcp_addr: Option<SocketAddr>,
    tls_addr: Option<SocketAddr>,
    smt_addr: Option<SocketAddr>,
    tasks: tokio::task::JoinSet<()>,
    smt_endpoint: Option<smt::Endpoint>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("tcp", &self.tcp_addr)
            .field("tls", &self.tls_addr)
            .field("smt", &self.smt_addr)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds the listeners and starts serving. Must run inside a tokio runtime.
    pub async fn start(options: ServerOptions) -> Result<Server, ServerError> {
        if options.tcp.is_none() && options.tls.is_none() && options.smt.is_none() {
            return Err(ServerError::NoListener);
        }
        if (options.tls.is_some() || options.smt.is_some()) && options.tls_config.is_none() {
            return Err(ServerError::NoCertificate);
        }
        let shards = match options.shards {
            0 => 4 * std::thread::available_parallelism().map_or(2, usize::from),
            n => n,
        };
        let shared = Shared::new(shards);
        let mut tasks = tokio::task::JoinSet::new();
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { addr, source })
        };
        let mut server = Server {
            shared: shared.clone(),
            tcp_addr: None,
            tls_addr: None,
            smt_addr: None,
            tasks: tokio::task::JoinSet::new(),
            smt_endpoint: None,
        };
        if let Some(addr) = options.tcp {
            let listener = bind(addr).await?;
            server.tcp_addr = listener.local_addr().ok();
            tasks.spawn(accept_tcp(listener, shared.clone(), None));
        }
        if let (Some(addr), Some(config)) = (options.tls, options.tls_config.clone()) {
            let listener = bind(addr).await?;
            server.tls_addr = listener.local_addr().ok();
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            tasks.spawn(accept_tcp(listener, shared.clone(), Some(acceptor)));
        }
        if let (Some(addr), Some(config)) = (options.smt, options.tls_config) {
            let endpoint = smt::Endpoint::builder()
                .bind(addr)
                .server_config(config)
                .build()
                .map_err(|source| ServerError::Smt { addr, source })?;
            server.smt_addr = Some(endpoint.local_addr());
            let _ = shared.smt_sessions.set(endpoint.clone());
            tasks.spawn(serve_smt(endpoint.clone(), shared.clone()));
            server.smt_endpoint = Some(endpoint);
        }
        tasks.spawn(sweep(shared.clone()));
        server.tasks = tasks;
        info!(tcp = ?server.tcp_addr, tls = ?server.tls_addr, smt = ?server.smt_addr, shards, "smt-kv serving");
        Ok(server)
    }

    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }
    pub fn smt_addr(&self) -> Option<SocketAddr> {
        self.smt_addr
    }

    /// Serves until a listener fails (they do not, short of the process ending).
    pub async fn run(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }

    /// Stops every listener.
    pub async fn shutdown(mut self) {
        self.tasks.abort_all();
        if let Some(endpoint) = self.smt_endpoint.take() {
            endpoint.close().await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

async fn accept_tcp(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait, then accept again.
                debug!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        match tls.clone() {
            None => {
                tokio::spawn(serve_stream(stream, shared.connect(Listener::Tcp), peer));
            }
            Some(acceptor) => {
                tokio::spawn(async move {
                    match acceptor.accept(stream).await {
                        Ok(stream) => {
                            serve_stream(stream, shared.connect(Listener::Tls), peer).await
                        }
                        Err(error) => debug!(%peer, %error, "TLS handshake failed"),
                    }
                });
            }
        }
    }
}

/// One RESP connection: reads what arrived, runs every complete command in it,
/// writes all their replies at once (so pipelined commands cost one write).
async fn serve_stream<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    mut conn: Connection,
    peer: SocketAddr,
) {
    let mut input = BytesMut::with_capacity(16 * 1024);
    let mut output = BytesMut::with_capacity(16 * 1024);
    loop {
        match stream.read_buf(&mut input).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut close = false;
        loop {
            match next_command(&mut input) {
                Ok(Some(args)) => {
                    let (reply, after) = conn.execute(&args);
                    reply.encode(conn.protocol, &mut output);
                    if after == After::Close {
                        close = true;
                        break;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    debug!(%peer, %error, "closing a connection after a protocol error");
                    Reply::err(error).encode(conn.protocol, &mut output);
                    close = true;
                    break;
                }
            }
        }
        if !output.is_empty() && stream.write_all(&output).await.is_err() {
            return;
        }
        output.clear();
        if close {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

/// The SMT listener: each request message is one command, answered on the
/// endpoint's I/O task as it arrives (no hand-off to another task).
async fn serve_smt(endpoint: smt::Endpoint, shared: Arc<Shared>) {
    let peers: Arc<Mutex<HashMap<SocketAddr, Connection>>> = Arc::default();
    let result = endpoint
        .serve(move |request: smt::Request| {
            let reply = answer_smt(&shared, &peers, request.peer_addr(), request.payload());
            std::future::ready(reply)
        })
        .await;
    if let Err(error) = result {
        debug!(%error, "SMT listener ended");
    }
}

/// Runs the command in one SMT request message. Connection state (RESP version,
/// client name) is kept per client address, since SMT requests do not name their
/// session to the handler.
fn answer_smt(
    shared: &Arc<Shared>,
    peers: &Mutex<HashMap<SocketAddr, Connection>>,
    peer: SocketAddr,
    payload: &Bytes,
) -> Bytes {
    // The map is locked only to copy the client's settings (and to store what a
    // command changed), so that commands of one client address, which SMT delivers
    // in parallel (every session of a client endpoint shares its address), can run
    // on several threads at once (a server with receive helpers, or handlers moved
    // to tasks). A panic in a command leaves the map consistent: a poisoned lock is
    // usable.
    let lock = || peers.lock().unwrap_or_else(|p| p.into_inner());
    let mut conn = {
        let mut peers = lock();
        if !peers.contains_key(&peer) && peers.len() >= MAX_SMT_PEERS {
            peers.clear(); // forget old clients' settings rather than grow without bound
        }
        peers.entry(peer).or_insert_with(|| shared.connect(Listener::Smt)).for_command()
    };
    let original = conn.for_command();
    let mut out = BytesMut::new();
    match single_command(payload) {
        Ok(args) => {
            let (reply, _after) = conn.execute(&args);
            reply.encode(conn.protocol, &mut out);
        }
        Err(error) => Reply::err(error).encode(conn.protocol, &mut out),
    }
    if !conn.same_settings(&original) {
        // Only what this command changed (HELLO, CLIENT SETNAME), not what it copied.
        if let Some(kept) = lock().get_mut(&peer) {
            kept.adopt_settings(&conn);
        }
    }
    out.freeze()
}

async fn sweep(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tick.tick().await;
        shared.store.sweep(Instant::now(), SWEEP_BUDGET);
    }
}

/// Sessions the SMT listener holds, for INFO (set once the listener starts).
pub(crate) type SmtSessions = OnceLock<smt::Endpoint>;
