//! Real Redis clients against smt-kv: redis-cli (arguments, commands on stdin, TLS),
//! redis-benchmark and the `redis` crate, on the TCP and TLS listeners, with the
//! SMT listener serving the same store.

mod support;

use std::process::Command;
use std::time::Duration;

use support::{run, run_with_input, tool, Cert};

const LIMIT: Duration = Duration::from_secs(60);

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_works_on_the_tcp_listener_with_arguments_and_commands_on_stdin() {
    let cert = Cert::new();
    let server = support::server(&cert).await;
    let port = server.tcp_addr().unwrap().port().to_string();
    let cli = tool("redis-cli");
    let p = port.clone();
    let (ok, out, err) = blocking(move || {
        run(Command::new(cli).args(["-p", &p, "SET", "greeting", "hello"]), LIMIT)
    })
    .await;
    assert!(ok && out.trim() == "OK", "{out} {err}");
    let script = "GET greeting\nINCR visits\nINCRBY visits 9\nHSET user:1 name ada lang rust\nHGET user:1 lang\nEXPIRE greeting 100\nTTL greeting\nGET missing\nNOSUCH x\n";
    let p = port.clone();
    let (ok, out, err) =
        blocking(move || run_with_input(Command::new(cli).args(["-p", &p]), script, LIMIT)).await;
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        // (redis-cli prints an empty line after an error reply, for Redis too.)
        vec![
            "hello",
            "1",
            "10",
            "2",
            "rust",
            "1",
            "100",
            "",
            "ERR unknown command 'NOSUCH', with args beginning with: 'x' ",
            ""
        ],
        "{out}"
    );
    // redis-cli --scan walks SCAN cursors to the end.
    let p = port.clone();
    let (ok, out, _) = blocking(move || {
        run(Command::new(cli).args(["-p", &p, "--scan", "--pattern", "*i*"]), LIMIT)
    })
    .await;
    let mut keys: Vec<&str> = out.lines().collect();
    keys.sort();
    assert!(ok && keys == ["greeting", "visits"], "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_works_over_tls_on_the_tls_listener_and_sees_the_tcp_listeners_writes() {
    let cert = Cert::new();
    let server = support::server(&cert).await;
    let mut tcp = support::RespConnection::connect(server.tcp_addr().unwrap()).await;
    assert_eq!(tcp.reply(&["SET", "shared", "across listeners"]).await, smt_kv::Reply::OK);
    let port = server.tls_addr().unwrap().port().to_string();
    let cacert = cert.cert().display().to_string();
    let cli = tool("redis-cli");
    let (ok, out, err) = blocking(move || {
        run(
            Command::new(cli).args([
                "--tls",
                "--cacert",
                &cacert,
                "--sni",
                "localhost",
                "-p",
                &port,
                "GET",
                "shared",
            ]),
            LIMIT,
        )
    })
    .await;
    assert!(ok && out.trim() == "across listeners", "{out} {err}");
    // And the SMT listener reads the same store.
    let kv = smt_kv::Client::connect(server.smt_addr().unwrap(), "localhost", cert.client_tls())
        .await
        .unwrap();
    assert_eq!(kv.get("shared").await.unwrap().as_deref(), Some(&b"across listeners"[..]));
    let info = tcp.reply(&["INFO"]).await;
    let info = String::from_utf8(info.as_bytes().unwrap().to_vec()).unwrap();
    for line in [
        "tcp_commands_processed:2",
        "tls_commands_processed:1",
        "smt_commands_processed:1",
        "connected_clients_smt:1",
    ] {
        assert!(info.contains(line), "INFO lacks {line}: {info}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_benchmark_set_get_incr_mset_and_ping_run_without_errors() {
    let cert = Cert::new();
    let server = support::server(&cert).await;
    let port = server.tcp_addr().unwrap().port().to_string();
    let bench = tool("redis-benchmark");
    let (ok, out, err) = blocking(move || {
        run(
            Command::new(bench).args([
                "-p",
                &port,
                "-t",
                "set,get,incr,mset,ping",
                "-n",
                "2000",
                "-c",
                "8",
                "-q",
            ]),
            LIMIT,
        )
    })
    .await;
    assert!(ok, "{out} {err}");
    assert!(!out.contains("Error") && !err.contains("Error"), "{out} {err}");
    assert!(!err.contains("Could not fetch server CONFIG"), "{err}");
    for test in ["SET", "GET", "INCR", "MSET (10 keys)", "PING_INLINE", "PING_MBULK"] {
        let line = out.lines().rev().find(|l| l.trim_start().starts_with(&format!("{test}:")));
        let line = line.unwrap_or_else(|| panic!("no result for {test}: {out}"));
        assert!(line.contains("requests per second"), "{line}");
    }
    let mut tcp = support::RespConnection::connect(server.tcp_addr().unwrap()).await;
    // 2000 INCRs of one counter.
    assert_eq!(tcp.reply(&["GET", "counter:__rand_int__"]).await, smt_kv::Reply::bulk("2000"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_crate_works_on_the_tcp_listener() {
    let cert = Cert::new();
    let server = support::server(&cert).await;
    let url = format!("redis://{}/", server.tcp_addr().unwrap());
    blocking(move || {
        use redis::Commands;
        let client = redis::Client::open(url).unwrap();
        let mut con = client.get_connection().unwrap();
        let _: () = con.set("k", 42).unwrap();
        let v: i64 = con.incr("k", 8).unwrap();
        assert_eq!(v, 50);
        let _: () = con.hset_multiple("h", &[("a", "1"), ("b", "2")]).unwrap();
        let mut all: Vec<(String, String)> = con.hgetall("h").unwrap();
        all.sort();
        assert_eq!(all, vec![("a".into(), "1".into()), ("b".into(), "2".into())]);
        let missing: Option<String> = con.get("missing").unwrap();
        assert_eq!(missing, None);
        let err = con.hget::<_, _, String>("k", "a").unwrap_err();
        assert_eq!(err.code(), Some("WRONGTYPE"));
        // Pipelining: many commands, one round trip.
        let (a, b): (i64, i64) = redis::pipe().incr("p", 1).incr("p", 1).query(&mut con).unwrap();
        assert_eq!((a, b), (1, 2));
    })
    .await;
}
