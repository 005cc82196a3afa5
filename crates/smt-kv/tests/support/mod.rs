//! Shared set-up: a certificate, an smt-kv server on all three listeners, a minimal
//! RESP client over TCP, and the Redis tools.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use smt_kv::{Reply, Server, ServerOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A self-signed certificate for "localhost" in a temporary directory.
pub struct Cert {
    pub dir: tempfile::TempDir,
}

impl Cert {
    pub fn new() -> Cert {
        let dir = tempfile::tempdir().expect("temp dir");
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
        std::fs::write(dir.path().join("cert.pem"), certified.cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), certified.key_pair.serialize_pem()).unwrap();
        Cert { dir }
    }
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }
    pub fn key(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }
    pub fn client_tls(&self) -> std::sync::Arc<rustls::ClientConfig> {
        smt::tls::client_config_from_pem(self.cert(), None).expect("client TLS config")
    }
}

/// An smt-kv server on 127.0.0.1 with all three listeners on free ports.
pub async fn server(cert: &Cert) -> Server {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let tls_config = smt::tls::server_config_from_pem(cert.cert(), cert.key(), None::<&Path>)
        .expect("server TLS");
    Server::start(ServerOptions {
        tcp: Some(any),
        tls: Some(any),
        smt: Some(any),
        tls_config: Some(tls_config),
        shards: 4,
    })
    .await
    .expect("server starts")
}

/// A RESP client over plain TCP that sends one command and reads one reply.
pub struct RespConnection {
    stream: tokio::net::TcpStream,
    buffer: BytesMut,
}

impl RespConnection {
    pub async fn connect(addr: SocketAddr) -> RespConnection {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        RespConnection { stream, buffer: BytesMut::new() }
    }

    /// The raw RESP bytes of the reply to `args`.
    pub async fn raw(&mut self, args: &[&str]) -> Bytes {
        let mut out = BytesMut::new();
        smt_kv::request::encode_command(args, &mut out);
        self.stream.write_all(&out).await.expect("write");
        loop {
            let bytes = Bytes::copy_from_slice(&self.buffer);
            if let Some((_, used)) = Reply::decode(2, &bytes).expect("valid RESP") {
                let _ = self.buffer.split_to(used);
                return bytes.slice(..used);
            }
            let read = tokio::time::timeout(
                Duration::from_secs(10),
                self.stream.read_buf(&mut self.buffer),
            )
            .await
            .expect("reply within 10 s")
            .expect("read");
            assert!(read > 0, "connection closed before the reply to {args:?}");
        }
    }

    pub async fn reply(&mut self, args: &[&str]) -> Reply {
        let bytes = self.raw(args).await;
        Reply::decode(2, &bytes).unwrap().unwrap().0
    }
}

/// The path of a Redis tool, or a failure naming the package that provides it.
pub fn tool(name: &str) -> &'static str {
    let path: &'static str = match name {
        "redis-cli" => "/usr/bin/redis-cli",
        "redis-benchmark" => "/usr/bin/redis-benchmark",
        "redis-server" => "/usr/bin/redis-server",
        other => panic!("unknown tool {other}"),
    };
    assert!(
        Path::new(path).exists(),
        "{name} is missing: run `bash scripts/install-test-deps.sh` (Debian packages redis-tools, redis-server)"
    );
    path
}

/// Runs a command to completion with a time limit; returns (status ok, stdout, stderr).
pub fn run(command: &mut Command, limit: Duration) -> (bool, String, String) {
    wait(spawn_piped(command), limit, None)
}

/// Like [`run`], feeding `input` on stdin.
pub fn run_with_input(
    command: &mut Command,
    input: &str,
    limit: Duration,
) -> (bool, String, String) {
    wait(spawn_piped(command), limit, Some(input))
}

fn spawn_piped(command: &mut Command) -> std::process::Child {
    command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn")
}

fn wait(
    mut child: std::process::Child,
    limit: Duration,
    input: Option<&str>,
) -> (bool, String, String) {
    use std::io::Write;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(input.as_bytes()).expect("stdin");
    } else {
        drop(child.stdin.take());
    }
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let output = child.wait_with_output().expect("output");
            return (
                status.success(),
                String::from_utf8_lossy(&output.stdout).into_owned(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
            );
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!(
                "timed out after {limit:?}; stdout: {} stderr: {}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A free TCP port on 127.0.0.1 (for servers that need a port number up front).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
