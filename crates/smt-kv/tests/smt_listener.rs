//! The SMT listener: `smt_kv::Client` with many commands in flight on one session,
//! RESP3 after HELLO, bad requests answered with errors, and `smt-kv cli`.

mod support;

use std::process::Command;
use std::time::Duration;

use smt_kv::{Client, Reply};
use support::Cert;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_commands_in_flight_on_one_session_each_get_their_own_reply() {
    let cert = Cert::new();
    let server = support::server(&cert).await;
    let kv =
        Client::connect(server.smt_addr().unwrap(), "localhost", cert.client_tls()).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000u32 {
        let kv = kv.clone();
        tasks.spawn(async move {
            let key = format!("user{i}");
            let fields: Vec<(String, String)> =
                (0..10).map(|f| (format!("field{f}"), format!("{i}-{f}"))).collect();
            assert_eq!(kv.hset(&key, &fields).await.unwrap(), 10);
            let mut all = kv.hgetall(&key).await.unwrap();
            all.sort();
            let mut expected: Vec<_> =
                fields.iter().map(|(f, v)| (f.clone().into(), v.clone().into())).collect();
            expected.sort();
            assert_eq!(all, expected, "record {key}");
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a command task failed");
    }
    assert_eq!(kv.command(&["DBSIZE"]).await.unwrap(), Reply::Integer(1000));
    // Errors come back as replies, and the session goes on.
    assert!(
        matches!(kv.command(&["HGET", "user1"]).await.unwrap(), Reply::Error(e) if e.contains("wrong number"))
    );
    kv.set("plain", "v").await.unwrap();
    assert!(
        matches!(kv.hget("plain", "f").await, Err(smt_kv::ClientError::Server(e)) if e.starts_with("WRONGTYPE"))
    );
    kv.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_message_that_is_not_exactly_one_command_gets_an_error_reply() {
    let cert = Cert::new();
    let server = support::server(&cert).await;
    let endpoint =
        smt::Endpoint::client("127.0.0.1:0".parse().unwrap(), cert.client_tls()).unwrap();
    let session = endpoint.connect(server.smt_addr().unwrap(), "localhost").await.unwrap();
    for bad in
        [&b"*2\r\n$3\r\nGET\r\n"[..], b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n", b"*x\r\n", b""]
    {
        let reply = session.call(bad.to_vec()).await.unwrap();
        assert!(reply.starts_with(b"-ERR Protocol error"), "{:?} -> {:?}", bad, reply);
    }
    // An inline command is one command too.
    assert_eq!(&session.call(b"PING\r\n".to_vec()).await.unwrap()[..], b"+PONG\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_3_switches_the_peer_to_resp3_replies() {
    let cert = Cert::new();
    let server = support::server(&cert).await;
    let endpoint =
        smt::Endpoint::client("127.0.0.1:0".parse().unwrap(), cert.client_tls()).unwrap();
    let session = endpoint.connect(server.smt_addr().unwrap(), "localhost").await.unwrap();
    let mut cmd = bytes::BytesMut::new();
    smt_kv::request::encode_command(&["HELLO", "3"], &mut cmd);
    let hello = session.call(cmd.freeze()).await.unwrap();
    assert!(hello.starts_with(b"%"), "HELLO 3 answers with a RESP3 map: {hello:?}");
    assert_eq!(&session.call(b"GET nothing\r\n".to_vec()).await.unwrap()[..], b"_\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smt_kv_cli_sends_one_command_and_prints_the_reply_like_redis_cli() {
    let cert = Cert::new();
    let server = support::server(&cert).await;
    let addr = server.smt_addr().unwrap().to_string();
    let ca = cert.cert().display().to_string();
    let cli = env!("CARGO_BIN_EXE_smt-kv");
    let run = |args: Vec<String>| {
        let (addr, ca) = (addr.clone(), ca.clone());
        tokio::task::spawn_blocking(move || {
            let mut command = Command::new(cli);
            command.args(["cli", "--connect", &addr, "--ca", &ca]).args(&args);
            support::run(&mut command, Duration::from_secs(30))
        })
    };
    let words = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
    let (ok, out, err) = run(words("SET k v")).await.unwrap();
    assert!(ok && out == "OK\n", "{out} {err}");
    let (ok, out, _) = run(words("MGET k nothing")).await.unwrap();
    assert!(ok && out == "1) \"v\"\n2) (nil)\n", "{out}");
    let (ok, out, _) = run(words("INCR k")).await.unwrap();
    assert!(!ok && out == "(error) ERR value is not an integer or out of range\n", "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_reads_resp3_replies_after_hello_3_and_the_cli_prints_them() {
    let cert = Cert::new();
    let server = support::server(&cert).await;
    let client =
        Client::connect(server.smt_addr().unwrap(), "localhost", cert.client_tls()).await.unwrap();
    let hello = client.command(&["HELLO", "3"]).await.unwrap();
    assert!(matches!(hello, Reply::Map(_)), "{hello:?}");
    assert_eq!(client.command(&["GET", "nothing"]).await.unwrap(), Reply::Null);
    // The one-shot CLI is a new client: its HELLO 3 reply must print too.
    let cli = env!("CARGO_BIN_EXE_smt-kv");
    let (addr, ca) = (server.smt_addr().unwrap().to_string(), cert.cert().display().to_string());
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        let mut command = Command::new(cli);
        command.args(["cli", "--connect", &addr, "--ca", &ca, "HELLO", "3"]);
        support::run(&mut command, Duration::from_secs(30))
    })
    .await
    .unwrap();
    assert!(ok && out.contains("proto") && out.contains('3'), "{out} {err}");
}
