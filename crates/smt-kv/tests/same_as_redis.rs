//! The same commands against a real redis-server (Debian's, started here) and
//! smt-kv: the replies must be byte for byte the same RESP, errors included, except
//! where an order is unspecified (HGETALL, KEYS: compared as sets). smt-kv has one
//! database, so SELECT of another index is an error there (not compared).

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{free_port, tool, Cert, RespConnection};

/// A redis-server on a free port without persistence, killed on drop.
struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    fn start() -> RedisServer {
        let port = free_port();
        let child = Command::new(tool("redis-server"))
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        RedisServer { child, port }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn connect_when_up(port: u16) -> RespConnection {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            drop(stream);
            return RespConnection::connect(format!("127.0.0.1:{port}").parse().unwrap()).await;
        }
        assert!(Instant::now() < deadline, "redis-server did not come up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Commands whose replies are compared exactly.
const EXACT: &[&str] = &[
    "PING",
    "PING hello",
    "ECHO x",
    "GET nokey",
    "SET k v",
    "GET k",
    "SET k w NX",
    "SET k w XX",
    "GET k",
    "SET n 10",
    "INCR n",
    "INCRBY n -20",
    "DECR n",
    "DECRBY n 5",
    "INCR k",
    "SET big 9223372036854775807",
    "INCR big",
    "SET k v EX 0",
    "SET k v EX abc",
    "SET k v NX XX",
    "SET k v BOGUS",
    "MSET a 1 b 2",
    "MGET a b nokey",
    "MSET a",
    "EXISTS a b nokey",
    "DEL a nokey",
    "EXISTS a",
    "HSET h f1 v1 f2 v2",
    "HSET h f1 x",
    "HGET h f1",
    "HGET h nofield",
    "HMGET h f1 f2 f3",
    "HLEN h",
    "HEXISTS h f2",
    "HDEL h f2 nofield",
    "HGET k f",
    "HSET k f v",
    "GET h",
    "HSET h f",
    "TYPE h",
    "TYPE k",
    "TYPE nokey",
    "EXPIRE k 100",
    "TTL k",
    "PERSIST k",
    "TTL k",
    "TTL nokey",
    "EXPIRE nokey 10",
    "PEXPIRE k -1",
    "GET k",
    "SELECT 0",
    "SELECT 99999",
    "GET",
    "SET onlykey",
    "NOSUCHCOMMAND a b",
    "CLIENT SETNAME tester",
    "CLIENT GETNAME",
    "DBSIZE",
    "HDEL h f1",
    "EXISTS h",
];

/// Commands whose array replies are compared as sets.
const UNORDERED: &[&str] = &["HGETALL h2", "KEYS *", "KEYS x*"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smt_kv_answers_like_redis_server() {
    let redis = RedisServer::start();
    let mut real = connect_when_up(redis.port).await;
    let cert = Cert::new();
    let server = support::server(&cert).await;
    let mut ours = RespConnection::connect(server.tcp_addr().unwrap()).await;
    let version = real.reply(&["INFO", "server"]).await;
    let version = String::from_utf8_lossy(version.as_bytes().unwrap()).into_owned();
    let version =
        version.lines().find(|l| l.starts_with("redis_version:")).unwrap_or("?").to_owned();
    let mut differences = Vec::new();
    for line in EXACT {
        let args: Vec<&str> = line.split(' ').collect();
        let (theirs, mine) = (real.raw(&args).await, ours.raw(&args).await);
        if theirs != mine {
            differences.push(format!("{line}: redis {theirs:?}, smt-kv {mine:?}"));
        }
    }
    for setup in ["HSET h2 a 1 b 2 c 3", "SET x1 1", "SET x2 2"] {
        let args: Vec<&str> = setup.split(' ').collect();
        real.raw(&args).await;
        ours.raw(&args).await;
    }
    for line in UNORDERED {
        let args: Vec<&str> = line.split(' ').collect();
        let as_set = |r: smt_kv::Reply| match r {
            smt_kv::Reply::Array(items) => {
                let mut v: Vec<Vec<u8>> =
                    items.iter().map(|i| i.as_bytes().unwrap().to_vec()).collect();
                v.sort();
                v
            }
            other => panic!("{line}: not an array: {other:?}"),
        };
        let (theirs, mine) = (as_set(real.reply(&args).await), as_set(ours.reply(&args).await));
        if theirs != mine {
            differences.push(format!("{line}: redis {theirs:?}, smt-kv {mine:?}"));
        }
    }
    assert!(differences.is_empty(), "against {version}:\n{}", differences.join("\n"));
}
