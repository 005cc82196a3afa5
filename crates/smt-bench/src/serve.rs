//! `smt-bench serve`: one transport's echo server, run as its own process (on
//! loopback, or in another network namespace for the veth link). It prints
//! `LISTENING <addr>` on stdout once ready and exits when its stdin closes, so a
//! crashed harness never leaves a (possibly busy-polling) server behind.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use socket2::SockRef;

use crate::frame;
use crate::tls;
use crate::transport::Kind;

/// Socket buffer size asked for on the raw UDP sockets.
pub const UDP_BUFFER: usize = 4 << 20;
/// A server never outlives this, even if its parent forgot it.
const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);

pub fn run(kind: Kind, listen: SocketAddr, cert_dir: &Path) -> Result<()> {
    watch_parent();
    match kind.server_kind() {
        Kind::RawUdp | Kind::RawUdpBusy => raw_udp(listen, kind.busy_poll()),
        Kind::TcpBusy => tcp_busy(listen),
        Kind::RawUdpGso => crate::bulk_floor::serve(listen, false),
        Kind::RawUdpGsoAead => crate::bulk_floor::serve(listen, true),
        k => {
            let runtime = crate::runtime_for(kind)?;
            runtime.block_on(serve_async(k, listen, cert_dir))
        }
    }
}

/// Exits when stdin reaches end of file (the parent died or closed it), or after
/// [`MAX_LIFETIME`].
fn watch_parent() {
    std::thread::spawn(|| {
        let mut sink = [0u8; 64];
        let mut stdin = io::stdin();
        while let Ok(n) = stdin.read(&mut sink) {
            if n == 0 {
                break;
            }
        }
        std::process::exit(0);
    });
    std::thread::spawn(|| {
        std::thread::sleep(MAX_LIFETIME);
        std::process::exit(0);
    });
}

pub fn announce(addr: SocketAddr) -> Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "LISTENING {addr}")?;
    out.flush()?;
    Ok(())
}

fn raw_udp(listen: SocketAddr, busy: bool) -> Result<()> {
    let socket = UdpSocket::bind(listen).with_context(|| format!("bind {listen}"))?;
    let _ = SockRef::from(&socket).set_recv_buffer_size(UDP_BUFFER);
    let _ = SockRef::from(&socket).set_send_buffer_size(UDP_BUFFER);
    socket.set_nonblocking(busy)?;
    announce(socket.local_addr()?)?;
    let mut buf = vec![0u8; 65_536];
    loop {
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                let _ = socket.send_to(&buf[..n], from);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(_) => {}
        }
    }
}

/// The busy TCP floor's server: one connection at a time, spinning on a
/// non-blocking socket, echoing length-prefixed frames.
fn tcp_busy(listen: SocketAddr) -> Result<()> {
    let listener = std::net::TcpListener::bind(listen).with_context(|| format!("bind {listen}"))?;
    announce(listener.local_addr()?)?;
    loop {
        let (stream, _) = listener.accept()?;
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        let _ = echo_spinning(stream);
    }
}

fn echo_spinning(mut stream: std::net::TcpStream) -> io::Result<()> {
    use std::io::{Read, Write};
    let mut inbuf: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => inbuf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::hint::spin_loop();
                continue;
            }
            Err(e) => return Err(e),
        }
        // Echo every complete frame (header and payload unchanged).
        loop {
            if inbuf.len() < frame::HEADER {
                break;
            }
            let header: [u8; frame::HEADER] = inbuf[..frame::HEADER].try_into().expect("header");
            let (len, _) = frame::decode(&header)?;
            if inbuf.len() < frame::HEADER + len {
                break;
            }
            let whole: Vec<u8> = inbuf.drain(..frame::HEADER + len).collect();
            let mut sent = 0;
            while sent < whole.len() {
                match stream.write(&whole[sent..]) {
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::hint::spin_loop(),
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

async fn serve_async(kind: Kind, listen: SocketAddr, cert_dir: &Path) -> Result<()> {
    match kind {
        Kind::Tcp => {
            let listener = tokio::net::TcpListener::bind(listen).await?;
            announce(listener.local_addr()?)?;
            loop {
                let (stream, _) = listener.accept().await?;
                stream.set_nodelay(true)?;
                tokio::spawn(frame::echo(stream));
            }
        }
        Kind::TlsTcp => {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(cert_dir)?);
            let listener = tokio::net::TcpListener::bind(listen).await?;
            announce(listener.local_addr()?)?;
            loop {
                let (stream, _) = listener.accept().await?;
                stream.set_nodelay(true)?;
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(stream).await {
                        let _ = frame::echo(tls).await;
                    }
                });
            }
        }
        Kind::Quic => {
            let endpoint = tls::quic_endpoint(listen, Some(tls::quic_server_config(cert_dir)?))?;
            announce(endpoint.local_addr()?)?;
            while let Some(incoming) = endpoint.accept().await {
                tokio::spawn(async move {
                    let Ok(conn) = incoming.await else { return };
                    while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                        tokio::spawn(async move {
                            let Ok(body) = recv.read_to_end(frame::MAX_PAYLOAD).await else {
                                return;
                            };
                            if send.write_chunk(body.into()).await.is_ok() {
                                let _ = send.finish();
                            }
                        });
                    }
                });
            }
            Ok(())
        }
        Kind::Smt | Kind::SmtBusy | Kind::SmtIp | Kind::SmtPlain => {
            let network =
                if kind == Kind::SmtIp { smt::Transport::native_ip() } else { smt::Transport::Udp };
            let endpoint = smt::Endpoint::builder()
                .bind(listen)
                .server_config(tls::server_config(cert_dir)?)
                .busy_poll(kind.busy_poll())
                .insecure_null_cipher(kind == Kind::SmtPlain)
                .transport_config(tls::smt_transport_config())
                .network(network)
                .build()?;
            announce(endpoint.local_addr())?;
            // Echo where the request arrives (the library seals large responses on a
            // task of their own).
            endpoint.serve(|request| async move { request.into_payload() }).await?;
            Ok(())
        }
        k => anyhow::bail!("no async server for {k}"),
    }
}
