//! One benchmark client's connection: RESP over TCP or TLS over TCP (to smt-kv or
//! redis-server), or an SMT session (to smt-kv). One command at a time.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::reply::Reply;
use crate::request::encode_command;
use crate::Client;

/// How a benchmark client reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Smt,
    TlsTcp,
    Tcp,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Smt => "smt",
            Transport::TlsTcp => "tls-tcp",
            Transport::Tcp => "tcp",
        }
    }
}

/// A RESP stream.
pub struct Stream<S> {
    io: S,
    input: BytesMut,
    output: BytesMut,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream<S> {
    fn new(io: S) -> Stream<S> {
        Stream { io, input: BytesMut::with_capacity(16 * 1024), output: BytesMut::new() }
    }

    async fn command<A: AsRef<[u8]>>(&mut self, args: &[A]) -> anyhow::Result<Reply> {
        self.output.clear();
        encode_command(args, &mut self.output);
        self.io.write_all(&self.output).await?;
        loop {
            if !self.input.is_empty() {
                let bytes = Bytes::copy_from_slice(&self.input);
                if let Some((reply, used)) = Reply::decode(2, &bytes)? {
                    let _ = self.input.split_to(used);
                    return Ok(reply);
                }
            }
            if self.io.read_buf(&mut self.input).await? == 0 {
                anyhow::bail!("the server closed the connection");
            }
        }
    }
}

/// A connection of any transport.
pub enum Conn {
    Tcp(Stream<tokio::net::TcpStream>),
    Tls(Box<Stream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>>),
    Smt(Client),
}

impl Conn {
    pub async fn open(
        transport: Transport,
        addr: SocketAddr,
        tls: Arc<rustls::ClientConfig>,
    ) -> anyhow::Result<Conn> {
        Ok(match transport {
            Transport::Tcp => {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                Conn::Tcp(Stream::new(tcp))
            }
            Transport::TlsTcp => {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                let name = rustls::pki_types::ServerName::try_from("localhost")?;
                let tls = tokio_rustls::TlsConnector::from(tls).connect(name, tcp).await?;
                Conn::Tls(Box::new(Stream::new(tls)))
            }
            Transport::Smt => Conn::Smt(Client::connect(addr, "localhost", tls).await?),
        })
    }

    pub async fn command<A: AsRef<[u8]>>(&mut self, args: &[A]) -> anyhow::Result<Reply> {
        match self {
            Conn::Tcp(s) => s.command(args).await,
            Conn::Tls(s) => s.command(args).await,
            Conn::Smt(c) => Ok(c.command(args).await?),
        }
    }
}
