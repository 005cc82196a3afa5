//! The public endpoint: a UDP socket, its driver task, and the sessions on it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rand::Rng;
use smt_proto::engine::{Config, Endpoint as Engine, Role, SessionParams, Stats};
use tokio::sync::{mpsc, oneshot, Mutex as AsyncMutex, Notify};
use tracing::{debug, info_span, Instrument};

use crate::crypto_pool::CryptoPool;
use crate::driver::{self, RawRequest, Shared, State};
use crate::error::{Error, Result};
use crate::keys::SessionKeys;
use crate::session::{IncomingRequest, Session};
use crate::socket::{RawIpSocket, Socket, Transport, UdpIo};
use crate::tls::{self, RustlsAcceptor};

/// An SMT endpoint: one UDP socket carrying any number of sessions, as a client
/// (with [`connect`](Endpoint::connect)), a server (with [`accept`](Endpoint::accept)),
/// or both. Cheap to clone; the endpoint shuts down when the last clone (and every
/// [`Session`] and [`IncomingRequest`] made from it) is dropped, or on
/// [`close`](Endpoint::close).
///
/// ```no_run
/// # async fn demo(server_config: std::sync::Arc<rustls::ServerConfig>) -> Result<(), smt::Error> {
/// let server = smt::Endpoint::server("127.0.0.1:4433".parse().unwrap(), server_config)?;
/// while let Some(request) = server.accept().await {
///     let echo = request.payload().clone();
///     request.respond(echo)?;
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Endpoint {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub shared: Arc<Shared>,
    requests: AsyncMutex<mpsc::UnboundedReceiver<RawRequest>>,
    client_config: Option<Arc<rustls::ClientConfig>>,
    driver: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.engine.close_all(Instant::now());
        state.shutdown = true;
        state.requests = None;
        state.handler = None;
        self.shared.flush(state);
        self.shared.wake.notify_one();
        self.shared.closed.notify_waiters();
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("local_addr", &self.inner.shared.local_addr).finish()
    }
}

/// Configures and creates an [`Endpoint`].
#[derive(Debug, Clone)]
pub struct EndpointBuilder {
    bind: SocketAddr,
    server: Option<Arc<rustls::ServerConfig>>,
    client: Option<Arc<rustls::ClientConfig>>,
    transport: Config,
    busy_poll: bool,
    network: Transport,
    crypto_threads: Option<usize>,
    receive_helpers: Option<usize>,
}

impl EndpointBuilder {
    /// Carry SMT over UDP (default) or directly over IP ([`Transport::native_ip`]).
    pub fn network(mut self, network: Transport) -> Self {
        self.network = network;
        self
    }
    /// The local address to bind (port 0 picks a free port).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }
    /// Accept sessions using this rustls server configuration (certificates, and
    /// client-certificate verification for mutual TLS).
    pub fn server_config(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.server = Some(config);
        self
    }
    /// Connect to servers using this rustls client configuration (trusted roots, and
    /// a client certificate for mutual TLS).
    pub fn client_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.client = Some(config);
        self
    }
    /// Transport parameters (grants, timeouts, limits); see [`Config`].
    pub fn transport_config(mut self, config: Config) -> Self {
        self.transport = config;
        self
    }
    /// INSECURE, for benchmarks only (feature `insecure-null-cipher`): after the TLS
    /// handshake, carry the session's messages in TLS 1.3 record framing without
    /// encryption or authentication, to measure what encryption costs. Both ends must
    /// enable it. Never use it for real traffic.
    #[cfg(feature = "insecure-null-cipher")]
    pub fn insecure_null_cipher(mut self, enabled: bool) -> Self {
        self.transport.insecure_null_cipher = enabled;
        self
    }

    /// Poll the socket continuously instead of sleeping: lower latency, one core busy.
    pub fn busy_poll(mut self, enabled: bool) -> Self {
        self.busy_poll = enabled;
        self
    }

    /// Threads that seal and open the records of large messages (at least 64 KiB of
    /// records at once) in parallel; smaller work, and everything with 0 or 1, runs
    /// on the calling or I/O thread. Default: one per CPU the process may run on
    /// (none when it is pinned to one CPU). See [`CryptoPool`].
    pub fn crypto_threads(mut self, threads: usize) -> Self {
        self.crypto_threads = Some(threads);
        self
    }

    /// Tasks that help the driver receive and handle datagrams while they arrive
    /// faster than one at a time. A helper sleeps until the driver takes a receive
    /// batch of two or more datagrams; then it receives from the socket too, so two
    /// batches are handled at once on two threads (record crypto, the
    /// [`Endpoint::serve`] handler and the system calls run in parallel; protocol
    /// steps still take turns under the engine's lock), and it goes back to sleep
    /// after 16 wake-ups that found at most one datagram, so one call at a time wakes
    /// it only after the odd two-datagram batch, and briefly. With helpers, records are opened as they complete rather than on
    /// [`crypto_threads`](Self::crypto_threads). Ignored with
    /// [`busy_poll`](Self::busy_poll).
    ///
    /// Default: 1 for an endpoint without a server configuration on tokio's
    /// multi-thread runtime, otherwise 0. Measured on a 2-vCPU machine where client
    /// and server share the CPUs (docs/PERFORMANCE.md, "Receive helpers"): a client
    /// helper raised YCSB throughput by 10-45 % and lowered p99; a server helper
    /// there raised 1 KB throughput too but left 1-2 % of 4 KB calls answered 3-5 ms
    /// late: its threads, now sleeping and woken often, waited up to 4.7 ms for a
    /// CPU the client's threads held, with requests in hand. A server with CPUs to
    /// itself may still gain from one: measure.
    pub fn receive_helpers(mut self, helpers: usize) -> Self {
        self.receive_helpers = Some(helpers);
        self
    }

    /// Binds the socket and starts the driver. Must be called inside a tokio runtime.
    pub fn build(self) -> Result<Endpoint> {
        let socket = match self.network {
            Transport::Udp => Socket::Udp(UdpIo::bind(self.bind)?),
            Transport::NativeIp { protocol } => {
                Socket::Ip(RawIpSocket::bind(self.bind, protocol).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::PermissionDenied {
                        Error::NeedsCapNetRaw
                    } else {
                        Error::Io(e)
                    }
                })?)
            }
        };
        let local_addr = socket.local_addr();
        let crypto = match self.crypto_threads {
            Some(threads) => CryptoPool::new(threads)?,
            None => CryptoPool::per_cpu()?,
        };
        let mut transport = self.transport;
        transport.max_segments = transport.max_segments.min(socket.max_segments()).max(1);
        let mut engine =
            Engine::new(transport, local_addr.port()).map_err(|e| Error::Config(e.to_string()))?;
        // Over UDP the socket demultiplexes and NAT may rewrite ports; over native IP
        // the header ports are all there is.
        engine.set_port_check(!socket.is_udp());
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let helpers = match (self.busy_poll, self.receive_helpers) {
            (true, _) => 0,
            (false, Some(helpers)) => helpers,
            // A server sharing its CPUs with other busy threads does better without
            // (see `receive_helpers`).
            (false, None) => usize::from(multi_thread && self.server.is_none()),
        };
        // With crypto threads, records are opened by them after each receive batch;
        // alone, at once as they complete (their bytes still in the cache). Receive
        // helpers also open at once: a message whose records are out being opened
        // drops the DATA that arrives for it meanwhile, which another receiving task
        // would deliver all the time (measured: 1 MiB x 4 in flight fell from 7 to
        // 2 Gbit/s, every packet retransmitted).
        engine.set_defer_opening(crypto.threads() > 1 && helpers == 0);
        if let Some(server) = &self.server {
            engine.set_acceptor(Box::new(RustlsAcceptor::new(tls::adapt_server_config(server))));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let over_udp = socket.is_udp();
        let mut state = State::new(engine, tx, over_udp);
        if over_udp && local_addr.ip().is_unspecified() {
            state.track_local_addresses();
        }
        let shared = Arc::new_cyclic(|me| Shared {
            state: std::sync::Mutex::new(state),
            receiver: std::sync::Mutex::new(driver::Receiver::new()),
            socket,
            wake: Notify::new(),
            local_addr,
            busy_poll: self.busy_poll,
            crypto,
            flush_requested: Default::default(),
            closed: Notify::new(),
            receive_helpers: Notify::new(),
            receive_helper_count: helpers,
            helper_batches: Default::default(),
            me: me.clone(),
            histograms: Default::default(),
        });
        let span = info_span!("smt_endpoint", %local_addr);
        let driver = tokio::spawn(driver::run(shared.clone()).instrument(span.clone()));
        for _ in 0..helpers {
            tokio::spawn(driver::run_receive_helper(shared.clone()).instrument(span.clone()));
        }
        Ok(Endpoint {
            inner: Arc::new(Inner {
                shared,
                requests: AsyncMutex::new(rx),
                client_config: self.client.map(|c| tls::adapt_client_config(&c)),
                driver: std::sync::Mutex::new(Some(driver)),
            }),
        })
    }
}

impl Endpoint {
    /// A builder bound to `[::]:0` with default transport parameters.
    pub fn builder() -> EndpointBuilder {
        EndpointBuilder {
            bind: SocketAddr::from(([0u16; 8], 0)),
            server: None,
            client: None,
            transport: Config::default(),
            busy_poll: false,
            network: Transport::Udp,
            crypto_threads: None,
            receive_helpers: None,
        }
    }

    /// A server endpoint on `addr` with default transport parameters.
    pub fn server(addr: SocketAddr, config: Arc<rustls::ServerConfig>) -> Result<Endpoint> {
        Endpoint::builder().bind(addr).server_config(config).build()
    }

    /// A client endpoint on `addr` (use port 0) with default transport parameters.
    pub fn client(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> Result<Endpoint> {
        Endpoint::builder().bind(addr).client_config(config).build()
    }

    /// The socket's local address.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.shared.local_addr
    }

    /// Performs a TLS 1.3 handshake with the server at `addr`, which must present a
    /// certificate valid for `server_name`, and returns the established session.
    pub async fn connect(&self, addr: SocketAddr, server_name: &str) -> Result<Session> {
        let config = self.inner.client_config.clone().ok_or(Error::NoClientConfig)?;
        let tls = tls::client_session(config, server_name)?;
        let session_id: u64 = rand::thread_rng().gen();
        let (tx, rx) = oneshot::channel();
        let shared = &self.inner.shared;
        let handle = {
            let mut state = shared.lock();
            if state.shutdown {
                return Err(Error::EndpointClosed);
            }
            state.learn_path(addr);
            let handle = state.engine.connect(Instant::now(), addr, session_id, Box::new(tls));
            state.connects.insert(handle, tx);
            state.nudge(shared);
            shared.flush(state);
            handle
        };
        debug!(%addr, server_name, session_id, "connecting");
        rx.await.map_err(|_| Error::EndpointClosed)??;
        Ok(Session::owned(self.clone(), handle, addr))
    }

    /// Installs a session whose keys were negotiated elsewhere (the kTLS model: the
    /// application ran its own TLS 1.3 handshake and hands SMT the traffic keys). Both
    /// sides must install matching keys and the same session ID.
    pub fn install_session(&self, keys: SessionKeys) -> Result<Session> {
        let peer = keys.peer;
        let params: SessionParams = keys.into_params()?;
        let shared = &self.inner.shared;
        let mut state = shared.lock();
        state.learn_path(peer);
        let handle = state
            .engine
            .install_session(Instant::now(), params)
            .map_err(|e| Error::Config(e.to_string()))?;
        Ok(Session::new(self.clone(), handle, peer))
    }

    /// The next request from any session, or `None` once the endpoint is closed.
    /// Answer it with [`IncomingRequest::respond`].
    pub async fn accept(&self) -> Option<IncomingRequest> {
        let (session, id, payload) = self.inner.requests.lock().await.recv().await?;
        let peer = {
            let state = self.inner.shared.lock();
            state.engine.session_info(session).map(|(peer, _, _)| peer)
        };
        let peer = peer.unwrap_or(self.inner.shared.local_addr);
        Some(IncomingRequest::new(self.clone(), session, id, payload, peer))
    }

    /// Counters of the protocol engine (requests delivered, replays rejected, ...).
    pub fn stats(&self) -> Stats {
        self.inner.shared.lock().engine.stats().clone()
    }

    /// Everything an operator watches, in one snapshot: the counters, gauges of what
    /// the endpoint holds, calls in flight, and the latency histograms (see
    /// [`metrics`](crate::metrics) for what they measure).
    pub fn metrics(&self) -> crate::Metrics {
        let shared = &self.inner.shared;
        let (stats, memory, calls_in_flight) = {
            let state = shared.lock();
            (state.engine.stats().clone(), state.engine.memory_usage(), state.calls.len())
        };
        crate::Metrics {
            stats,
            memory,
            calls_in_flight,
            call_latency: shared.histograms.call_latency.snapshot(),
            service_time: shared.histograms.service_time.snapshot(),
            helper_batches: shared.helper_batches.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Number of established sessions.
    pub fn session_count(&self) -> usize {
        self.inner.shared.lock().engine.session_count()
    }

    /// Closes every session (peers are told), fails outstanding calls with
    /// [`Error::SessionClosed`], and stops the driver once the goodbyes are sent.
    pub async fn close(&self) {
        {
            let shared = &self.inner.shared;
            let mut state = shared.lock();
            state.engine.close_all(Instant::now());
            state.shutdown = true;
            // Dropping the sender ends every pending and future `accept`.
            state.requests = None;
            state.handler = None;
            // Tells the peers, and fails the calls of the closed sessions.
            shared.flush(state);
            let mut state = shared.lock();
            for (_, tx) in state.calls.drain() {
                let _ = tx.send(Err(Error::SessionClosed));
            }
            for (_, tx) in state.connects.drain() {
                let _ = tx.send(Err(Error::EndpointClosed));
            }
        }
        self.inner.shared.wake.notify_one();
        self.inner.shared.closed.notify_waiters();
        let driver = self.inner.driver.lock().ok().and_then(|mut d| d.take());
        if let Some(driver) = driver {
            let _ = driver.await;
        }
    }

    /// What the endpoint holds in memory right now: sessions, RPCs, message bytes.
    pub fn memory_usage(&self) -> crate::MemoryUsage {
        self.inner.shared.lock().engine.memory_usage()
    }

    pub(crate) fn role_of(&self, session: smt_proto::engine::SessionHandle) -> Option<Role> {
        self.inner.shared.lock().engine.session_info(session).map(|(_, role, _)| role)
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.inner.shared
    }
}
