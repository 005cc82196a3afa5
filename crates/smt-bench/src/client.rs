//! Clients of every transport, and the server processes they talk to.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use socket2::SockRef;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinHandle;

use crate::frame;
use crate::serve::UDP_BUFFER;
use crate::tls;
use crate::transport::Kind;

/// A server process of one transport.
pub struct ServerProc {
    child: tokio::process::Child,
    pub addr: SocketAddr,
}

impl ServerProc {
    /// Starts `smt-bench serve` for `kind` on `ip` (port chosen by the server),
    /// inside network namespace `netns` if given, pinned to CPU [`SERVER_CPU`] (with
    /// `taskset`) unless pinning is off.
    pub async fn start(
        kind: Kind,
        ip: IpAddr,
        netns: Option<&str>,
        cert_dir: &Path,
    ) -> Result<ServerProc> {
        let exe = std::env::current_exe().context("cannot find the smt-bench binary")?;
        let listen = SocketAddr::new(ip, 0).to_string();
        let args: Vec<String> = vec![
            "serve".into(),
            "--transport".into(),
            kind.server_kind().name().into(),
            "--listen".into(),
            listen,
            "--cert-dir".into(),
            cert_dir.display().to_string(),
        ];
        let mut argv: Vec<std::ffi::OsString> = Vec::new();
        if let Some(ns) = netns {
            argv.extend(["ip", "netns", "exec", ns].map(Into::into));
        }
        if (kind.busy_poll() || PIN.load(Ordering::Relaxed)) && taskset_available() {
            argv.extend(["taskset".into(), "-c".into(), SERVER_CPU.to_string().into()]);
        }
        argv.push(exe.into());
        argv.extend(args.into_iter().map(Into::into));
        let mut cmd = tokio::process::Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        cmd.kill_on_drop(true);
        let mut child = cmd.spawn().with_context(|| format!("cannot start the {kind} server"))?;
        let stdout = child.stdout.take().expect("piped");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .map_err(|_| anyhow!("the {kind} server did not start within 10 s"))??
            .ok_or_else(|| anyhow!("the {kind} server exited before listening"))?;
        let addr = line
            .strip_prefix("LISTENING ")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| anyhow!("unexpected line from the {kind} server: {line:?}"))?;
        Ok(ServerProc { child, addr })
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

/// Whether every server is pinned to [`SERVER_CPU`] (and the harness to
/// [`CLIENT_CPU`]); busy-polling servers are pinned regardless.
pub static PIN: AtomicBool = AtomicBool::new(true);

/// Whether the `taskset` command (util-linux) can be run; without it servers run
/// unpinned.
fn taskset_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        let ok = std::process::Command::new("taskset")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("taskset not found: servers run unpinned");
        }
        ok
    })
}

/// Pins the calling thread (and the threads it creates afterwards) to the client's
/// CPU, if pinning is on.
pub fn pin_client_thread() {
    if PIN.load(Ordering::Relaxed)
        && !core_affinity::set_for_current(core_affinity::CoreId { id: CLIENT_CPU })
    {
        eprintln!("cannot pin to CPU {CLIENT_CPU}; running unpinned");
    }
}

/// CPUs busy-polling clients and servers are pinned to: a spinning client and a
/// spinning server must not share one of the two vCPUs.
pub const CLIENT_CPU: usize = 0;
pub const SERVER_CPU: usize = 1;

/// A blocking UDP ping-pong client.
pub struct RawUdp {
    socket: UdpSocket,
    busy: bool,
    buf: Vec<u8>,
}

impl RawUdp {
    pub fn connect(server: SocketAddr, local: IpAddr, busy: bool) -> Result<RawUdp> {
        let socket = UdpSocket::bind(SocketAddr::new(local, 0))?;
        let _ = SockRef::from(&socket).set_recv_buffer_size(UDP_BUFFER);
        let _ = SockRef::from(&socket).set_send_buffer_size(UDP_BUFFER);
        socket.connect(server)?;
        if busy {
            socket.set_nonblocking(true)?;
        } else {
            socket.set_read_timeout(Some(Duration::from_secs(1)))?;
        }
        Ok(RawUdp { socket, busy, buf: vec![0u8; 65_536] })
    }

    /// Sends `request` and waits for the echo; returns its length. A lost datagram
    /// is an error (blocking mode times out after 1 s, busy mode after 1 s too).
    pub fn call(&mut self, request: &[u8]) -> Result<usize> {
        self.socket.send(request)?;
        let started = std::time::Instant::now();
        loop {
            match self.socket.recv(&mut self.buf) {
                Ok(n) => return Ok(n),
                Err(e) if self.busy && e.kind() == io::ErrorKind::WouldBlock => {
                    if started.elapsed() > Duration::from_secs(1) {
                        bail!("raw UDP echo lost");
                    }
                    std::hint::spin_loop();
                }
                Err(e) => return Err(anyhow!("raw UDP echo lost or failed: {e}")),
            }
        }
    }
}

/// A spinning TCP ping-pong client: length-prefixed frames on a non-blocking std
/// socket, Nagle off.
pub struct RawTcp {
    stream: std::net::TcpStream,
    buf: Vec<u8>,
}

impl RawTcp {
    pub fn connect(server: SocketAddr, local: IpAddr) -> Result<RawTcp> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(server),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        socket.bind(&SocketAddr::new(local, 0).into())?;
        socket.connect(&server.into())?;
        let stream: std::net::TcpStream = socket.into();
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        Ok(RawTcp { stream, buf: Vec::new() })
    }

    /// Sends `request` and spins until the echo is back; returns its length.
    pub fn call(&mut self, request: &[u8]) -> Result<usize> {
        let started = std::time::Instant::now();
        let mut frame = crate::frame::encode(request.len(), 0).to_vec();
        frame.extend_from_slice(request);
        spin_io(
            started,
            |s: &mut Self| {
                use std::io::Write;
                let n = (&s.stream).write(&frame)?;
                frame.drain(..n);
                Ok(frame.is_empty())
            },
            self,
        )?;
        let mut header = [0u8; crate::frame::HEADER];
        let mut got = 0;
        spin_io(
            started,
            |s: &mut Self| {
                use std::io::Read;
                let n = (&s.stream).read(&mut header[got..])?;
                if n == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
                }
                got += n;
                Ok(got == header.len())
            },
            self,
        )?;
        let (len, _) = crate::frame::decode(&header)?;
        self.buf.resize(len, 0);
        let mut got = 0;
        spin_io(
            started,
            |s: &mut Self| {
                use std::io::Read;
                if got == len {
                    return Ok(true);
                }
                let n = (&s.stream).read(&mut s.buf[got..len])?;
                if n == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
                }
                got += n;
                Ok(got == len)
            },
            self,
        )?;
        Ok(len)
    }
}

/// Repeats `step` (which returns whether it is done) while it would block, for at
/// most a second since `started`.
fn spin_io<T>(
    started: std::time::Instant,
    mut step: impl FnMut(&mut T) -> io::Result<bool>,
    on: &mut T,
) -> Result<()> {
    loop {
        match step(on) {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if started.elapsed() > Duration::from_secs(1) {
                    bail!("busy TCP echo stalled");
                }
                std::hint::spin_loop();
            }
            Err(e) => return Err(anyhow!("busy TCP echo failed: {e}")),
        }
    }
}

/// A floor client: one RPC at a time from a thread of its own.
pub enum Floor {
    Udp(RawUdp),
    Tcp(RawTcp),
}

impl Floor {
    pub fn connect(kind: Kind, server: SocketAddr, local: IpAddr) -> Result<Floor> {
        Ok(match kind {
            Kind::TcpBusy => Floor::Tcp(RawTcp::connect(server, local)?),
            k => Floor::Udp(RawUdp::connect(server, local, k.busy_poll())?),
        })
    }

    pub fn call(&mut self, request: &[u8]) -> Result<usize> {
        match self {
            Floor::Udp(u) => u.call(request),
            Floor::Tcp(t) => t.call(request),
        }
    }
}

/// Many RPCs in flight over one length-prefixed stream (TCP or TLS): a writer task
/// batches queued requests into few writes, a reader task hands each response to
/// its caller by id.
pub struct Mux {
    next_id: AtomicU64,
    pending: Arc<Mutex<HashMap<u64, oneshot::Sender<Vec<u8>>>>>,
    tx: mpsc::UnboundedSender<(u64, Bytes)>,
    tasks: [JoinHandle<()>; 2],
}

impl Drop for Mux {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Mux {
    pub fn new<S: AsyncRead + AsyncWrite + Send + 'static>(stream: S) -> Mux {
        let (read_half, write_half) = tokio::io::split(stream);
        let pending: Arc<Mutex<HashMap<u64, oneshot::Sender<Vec<u8>>>>> = Arc::default();
        let (tx, mut rx) = mpsc::unbounded_channel::<(u64, Bytes)>();
        let writer = tokio::spawn(async move {
            let mut w = BufWriter::with_capacity(frame::BUF, write_half);
            while let Some((id, payload)) = rx.recv().await {
                let mut next = Some((id, payload));
                while let Some((id, payload)) = next {
                    if w.write_all(&frame::encode(payload.len(), id)).await.is_err()
                        || w.write_all(&payload).await.is_err()
                    {
                        return;
                    }
                    next = rx.try_recv().ok();
                }
                if w.flush().await.is_err() {
                    return;
                }
            }
        });
        let reader_pending = pending.clone();
        let reader = tokio::spawn(async move {
            let mut r = BufReader::with_capacity(frame::BUF, read_half);
            loop {
                let mut payload = Vec::new();
                match frame::read_frame(&mut r, &mut payload).await {
                    Ok(Some(id)) => {
                        let waiter = reader_pending.lock().expect("not poisoned").remove(&id);
                        if let Some(waiter) = waiter {
                            let _ = waiter.send(payload);
                        }
                    }
                    _ => break,
                }
            }
            // Fail every waiting call.
            reader_pending.lock().expect("not poisoned").clear();
        });
        Mux { next_id: AtomicU64::new(0), pending, tx, tasks: [writer, reader] }
    }

    pub async fn call(&self, request: Bytes) -> Result<Bytes> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().expect("not poisoned").insert(id, tx);
        self.tx.send((id, request)).map_err(|_| anyhow!("connection writer ended"))?;
        let response = rx.await.map_err(|_| anyhow!("connection closed"))?;
        Ok(Bytes::from(response))
    }
}

/// A pool of connections used like an HTTP/1.1 client pool: each RPC checks out an
/// idle connection, so RPCs never share a connection at the same time.
pub struct Pool {
    idle: Mutex<Vec<Arc<Mux>>>,
    permits: Semaphore,
}

impl Pool {
    pub async fn call(&self, request: Bytes) -> Result<Bytes> {
        let _permit = self.permits.acquire().await?;
        let conn = self.idle.lock().expect("not poisoned").pop().expect("a permit means idle");
        let result = conn.call(request).await;
        self.idle.lock().expect("not poisoned").push(conn);
        result
    }
}

/// A connected asynchronous client; clones share the connection.
#[derive(Clone)]
pub enum Client {
    Mux(Arc<Mux>),
    Pool(Arc<Pool>),
    Quic(quinn::Connection),
    Smt(smt::Session),
}

impl Client {
    pub async fn call(&self, request: Bytes) -> Result<Bytes> {
        match self {
            Client::Mux(m) => m.call(request).await,
            Client::Pool(p) => p.call(request).await,
            Client::Quic(conn) => {
                let (mut send, mut recv) = conn.open_bi().await?;
                send.write_chunk(request).await?;
                send.finish()?;
                Ok(Bytes::from(recv.read_to_end(frame::MAX_PAYLOAD).await?))
            }
            Client::Smt(s) => Ok(s.call(request).await?),
        }
    }
}

/// What a connection needs kept alive (and closed at the end).
pub enum Holder {
    None,
    Quic(quinn::Endpoint),
    Smt(smt::Endpoint),
}

impl Holder {
    pub async fn close(self) {
        match self {
            Holder::None => {}
            Holder::Quic(e) => {
                e.close(0u32.into(), b"done");
                let _ = tokio::time::timeout(Duration::from_secs(2), e.wait_idle()).await;
            }
            Holder::Smt(e) => {
                let _ = tokio::time::timeout(Duration::from_secs(2), e.close()).await;
            }
        }
    }
}

/// Connects an asynchronous client of `kind` (not raw UDP) to `server` from local
/// address `local`. `pool` is the pool size for [`Kind::TlsTcpPool`].
pub async fn connect(
    kind: Kind,
    server: SocketAddr,
    local: IpAddr,
    cert_dir: &Path,
    pool: usize,
) -> Result<(Client, Holder)> {
    match kind {
        Kind::Tcp => {
            let s = tcp_connect(server, local).await?;
            Ok((Client::Mux(Arc::new(Mux::new(s))), Holder::None))
        }
        Kind::TlsTcp => {
            let s = tls_connect(server, local, cert_dir).await?;
            Ok((Client::Mux(Arc::new(Mux::new(s))), Holder::None))
        }
        Kind::TlsTcpPool => {
            let mut conns = Vec::new();
            for _ in 0..pool.max(1) {
                conns.push(Arc::new(Mux::new(tls_connect(server, local, cert_dir).await?)));
            }
            let permits = Semaphore::new(conns.len());
            Ok((Client::Pool(Arc::new(Pool { idle: Mutex::new(conns), permits })), Holder::None))
        }
        Kind::Quic => {
            let mut endpoint = tls::quic_endpoint(SocketAddr::new(local, 0), None)?;
            endpoint.set_default_client_config(tls::quic_client_config(cert_dir)?);
            let conn = endpoint.connect(server, tls::SERVER_NAME)?.await?;
            Ok((Client::Quic(conn), Holder::Quic(endpoint)))
        }
        Kind::Smt | Kind::SmtBusy | Kind::SmtIp | Kind::SmtPlain => {
            let network =
                if kind == Kind::SmtIp { smt::Transport::native_ip() } else { smt::Transport::Udp };
            let endpoint = smt::Endpoint::builder()
                .bind(SocketAddr::new(local, 0))
                .client_config(tls::client_config(cert_dir)?)
                .busy_poll(kind.busy_poll())
                .insecure_null_cipher(kind == Kind::SmtPlain)
                .transport_config(tls::smt_transport_config())
                .network(network)
                .build()?;
            let session = endpoint.connect(server, tls::SERVER_NAME).await?;
            Ok((Client::Smt(session), Holder::Smt(endpoint)))
        }
        Kind::RawUdp | Kind::RawUdpBusy | Kind::TcpBusy | Kind::RawUdpGso | Kind::RawUdpGsoAead => {
            bail!("{kind} has no asynchronous client")
        }
    }
}

async fn tcp_connect(server: SocketAddr, local: IpAddr) -> Result<tokio::net::TcpStream> {
    let socket = match server {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(local, 0))?;
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

async fn tls_connect(
    server: SocketAddr,
    local: IpAddr,
    cert_dir: &Path,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let connector = tokio_rustls::TlsConnector::from(tls::client_config(cert_dir)?);
    let name = rustls::pki_types::ServerName::try_from(tls::SERVER_NAME)?;
    let stream = tcp_connect(server, local).await?;
    Ok(connector.connect(name, stream).await?)
}
