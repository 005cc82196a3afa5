//! [`Client`]: commands to an smt-kv server over one SMT session, many in flight at
//! once (each command is its own RPC, so a slow one holds up no other).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::reply::{DecodeError, Reply};
use crate::request::encode_command;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The transport failed (connection, timeout, session closed).
    #[error(transparent)]
    Transport(#[from] smt::Error),
    /// The server's reply is not RESP.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The server answered with an error reply (`ERR ...`, `WRONGTYPE ...`).
    #[error("server error: {0}")]
    Server(String),
    /// The reply has another shape than the command's (e.g. not a bulk string).
    #[error("unexpected reply: {0:?}")]
    Unexpected(Reply),
}

/// A client of the SMT listener. Cheap to clone; clones share the session, and
/// commands issued concurrently from any of them travel in parallel.
#[derive(Clone)]
pub struct Client {
    session: smt::Session,
    // Keeps the client's endpoint (its socket and driver) alive with the session.
    endpoint: smt::Endpoint,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("server", &self.session.peer_addr()).finish()
    }
}

impl Client {
    /// Connects to the SMT listener at `server`, checking its certificate for
    /// `server_name` with `tls` (see `smt::tls::client_config_from_pem`).
    pub async fn connect(
        server: SocketAddr,
        server_name: &str,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<Client, ClientError> {
        let bind: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0".parse().expect("a valid address") // literal: cannot fail
        } else {
            "[::]:0".parse().expect("a valid address")
        };
        let endpoint = smt::Endpoint::client(bind, tls)?;
        let session = endpoint.connect(server, server_name).await?;
        Ok(Client { session, endpoint })
    }

    /// A client on a session the caller already holds (its endpoint must outlive it).
    pub fn from_session(session: smt::Session, endpoint: smt::Endpoint) -> Client {
        Client { session, endpoint }
    }

    /// The transport counters of this client's endpoint (RESENDs, retransmissions...).
    pub fn transport_stats(&self) -> smt::Stats {
        self.endpoint.stats()
    }

    /// Sends one command (name first) and returns the server's reply as it is,
    /// error replies included.
    pub async fn command<A: AsRef<[u8]>>(&self, args: &[A]) -> Result<Reply, ClientError> {
        let mut request = BytesMut::new();
        encode_command(args, &mut request);
        let response = self.session.call(request.freeze()).await?;
        let bytes = response;
        // RESP2 unless this client (its address) asked for RESP3 with HELLO 3: a
        // reply that is not RESP2 is read as RESP3.
        let decoded = Reply::decode(2, &bytes).or_else(|_| Reply::decode(3, &bytes))?;
        match decoded {
            Some((reply, used)) if used == bytes.len() => Ok(reply),
            Some(_) => Err(DecodeError("bytes after the reply".into()).into()),
            None => Err(DecodeError("incomplete reply".into()).into()),
        }
    }

    /// Like [`command`](Self::command), with an error reply as `Err`.
    async fn ok<A: AsRef<[u8]>>(&self, args: &[A]) -> Result<Reply, ClientError> {
        match self.command(args).await? {
            Reply::Error(e) => Err(ClientError::Server(e)),
            reply => Ok(reply),
        }
    }

    /// PING.
    pub async fn ping(&self) -> Result<(), ClientError> {
        expect_status(self.ok(&["PING"]).await?, "PONG")
    }

    /// GET: the value, `None` if the key holds nothing.
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>, ClientError> {
        optional_bulk(self.ok(&[b"GET".as_slice(), key.as_ref()]).await?)
    }

    /// SET.
    pub async fn set(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<(), ClientError> {
        expect_status(self.ok(&[b"SET".as_slice(), key.as_ref(), value.as_ref()]).await?, "OK")
    }

    /// DEL: how many of the keys existed.
    pub async fn del<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<i64, ClientError> {
        let mut args: Vec<&[u8]> = vec![b"DEL"];
        args.extend(keys.iter().map(AsRef::as_ref));
        integer(self.ok(&args).await?)
    }

    /// INCRBY: the new value.
    pub async fn incr_by(&self, key: impl AsRef<[u8]>, by: i64) -> Result<i64, ClientError> {
        let by = by.to_string();
        integer(self.ok(&[b"INCRBY".as_slice(), key.as_ref(), by.as_bytes()]).await?)
    }

    /// MGET: each key's value or `None`.
    pub async fn mget<K: AsRef<[u8]>>(
        &self,
        keys: &[K],
    ) -> Result<Vec<Option<Bytes>>, ClientError> {
        let mut args: Vec<&[u8]> = vec![b"MGET"];
        args.extend(keys.iter().map(AsRef::as_ref));
        match self.ok(&args).await? {
            Reply::Array(items) => items.into_iter().map(optional_bulk).collect(),
            other => Err(ClientError::Unexpected(other)),
        }
    }

    /// HSET with several field/value pairs: how many fields were new.
    pub async fn hset<F: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        key: impl AsRef<[u8]>,
        fields: &[(F, V)],
    ) -> Result<i64, ClientError> {
        let mut args: Vec<&[u8]> = vec![b"HSET", key.as_ref()];
        for (f, v) in fields {
            args.push(f.as_ref());
            args.push(v.as_ref());
        }
        integer(self.ok(&args).await?)
    }

    /// HGET: the field's value, `None` if absent.
    pub async fn hget(
        &self,
        key: impl AsRef<[u8]>,
        field: impl AsRef<[u8]>,
    ) -> Result<Option<Bytes>, ClientError> {
        optional_bulk(self.ok(&[b"HGET".as_slice(), key.as_ref(), field.as_ref()]).await?)
    }

    /// HMGET: each field's value or `None`.
    pub async fn hmget<F: AsRef<[u8]>>(
        &self,
        key: impl AsRef<[u8]>,
        fields: &[F],
    ) -> Result<Vec<Option<Bytes>>, ClientError> {
        let mut args: Vec<&[u8]> = vec![b"HMGET", key.as_ref()];
        args.extend(fields.iter().map(AsRef::as_ref));
        match self.ok(&args).await? {
            Reply::Array(items) => items.into_iter().map(optional_bulk).collect(),
            other => Err(ClientError::Unexpected(other)),
        }
    }

    /// HGETALL: every field and value (empty if the key holds nothing).
    pub async fn hgetall(&self, key: impl AsRef<[u8]>) -> Result<Vec<(Bytes, Bytes)>, ClientError> {
        let pairs = match self.ok(&[b"HGETALL".as_slice(), key.as_ref()]).await? {
            Reply::Array(flat) if flat.len() % 2 == 0 => {
                flat.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect::<Vec<_>>()
            }
            Reply::Map(pairs) => pairs,
            other => return Err(ClientError::Unexpected(other)),
        };
        pairs
            .into_iter()
            .map(|(f, v)| match (f, v) {
                (Reply::Bulk(f), Reply::Bulk(v)) => Ok((f, v)),
                (f, _) => Err(ClientError::Unexpected(f)),
            })
            .collect()
    }
}

fn expect_status(reply: Reply, status: &str) -> Result<(), ClientError> {
    match reply {
        Reply::Simple(s) if s == status => Ok(()),
        other => Err(ClientError::Unexpected(other)),
    }
}

fn optional_bulk(reply: Reply) -> Result<Option<Bytes>, ClientError> {
    match reply {
        Reply::Bulk(b) => Ok(Some(b)),
        Reply::Null => Ok(None),
        other => Err(ClientError::Unexpected(other)),
    }
}

fn integer(reply: Reply) -> Result<i64, ClientError> {
    match reply {
        Reply::Integer(i) => Ok(i),
        other => Err(ClientError::Unexpected(other)),
    }
}
