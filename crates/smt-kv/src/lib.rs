//! smt-kv: an in-memory key-value store that speaks RESP (the Redis protocol) on
//! three listeners sharing one store: plain TCP, TLS over TCP (tokio-rustls) and
//! SMT (one RESP command per request message, one reply per response message).
//! Redis clients (`redis-cli`, `redis-benchmark`, client libraries) work on the TCP
//! and TLS listeners; [`Client`] talks to the SMT listener.
//!
//! Layout, in the direction a command flows: [`request`] (commands off the wire),
//! [`command`] (running them), [`store`] (the sharded key space), [`reply`] (RESP2 or
//! RESP3 replies); [`server`] runs the listeners, [`client`] is the SMT client;
//! [`ycsb`] is the YCSB benchmark driver (`smt-kv ycsb`).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let tls = smt::tls::client_config_from_pem("cert.pem", None)?;
//! let kv = smt_kv::Client::connect("127.0.0.1:7379".parse()?, "localhost", tls).await?;
//! kv.set("greeting", "hello").await?;
//! assert_eq!(kv.get("greeting").await?.as_deref(), Some(&b"hello"[..]));
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

pub mod client;
pub mod command;
mod glob;
pub mod reply;
pub mod request;
pub mod server;
pub mod store;
pub mod ycsb;

pub use client::{Client, ClientError};
pub use reply::Reply;
pub use server::{Server, ServerError, ServerOptions};
