//! Executing commands against the [`Store`]: names, arguments and errors as Redis
//! has them, for the commands listed in [`COMMANDS`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::glob::glob_match;
use crate::reply::Reply;
use crate::store::{Entry, Store, Value};

/// Every command this server knows, in the order `COMMAND` lists them.
pub const COMMANDS: &[&str] = &[
    "ping", "echo", "get", "set", "del", "exists", "mget", "mset", "incr", "incrby", "decr",
    "decrby", "expire", "pexpire", "ttl", "pttl", "persist", "type", "hset", "hmset", "hget",
    "hmget", "hgetall", "hdel", "hlen", "hexists", "scan", "keys", "dbsize", "flushall", "flushdb",
    "info", "client", "command", "hello", "quit", "select", "config",
];

/// Where a connection came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Tcp,
    Tls,
    Smt,
}

impl Listener {
    pub const ALL: [Listener; 3] = [Listener::Tcp, Listener::Tls, Listener::Smt];

    pub fn name(self) -> &'static str {
        match self {
            Listener::Tcp => "tcp",
            Listener::Tls => "tls",
            Listener::Smt => "smt",
        }
    }
}

/// Counters of one listener, for INFO.
#[derive(Debug, Default)]
pub struct ListenerCounters {
    pub connections_received: AtomicU64,
    pub connected_clients: AtomicU64,
    pub commands_processed: AtomicU64,
}

/// What all connections share: the store, the counters, client IDs.
#[derive(Debug)]
pub struct Shared {
    pub store: Store,
    pub started: Instant,
    next_client_id: AtomicU64,
    counters: [ListenerCounters; 3],
    /// The SMT listener's endpoint, whose live sessions are its connected clients.
    pub smt_sessions: crate::server::SmtSessions,
}

impl Shared {
    pub fn new(shards: usize) -> Arc<Shared> {
        Arc::new(Shared {
            store: Store::new(shards),
            started: Instant::now(),
            next_client_id: AtomicU64::new(1),
            counters: Default::default(),
            smt_sessions: Default::default(),
        })
    }

    pub fn counters(&self, listener: Listener) -> &ListenerCounters {
        &self.counters[listener as usize]
    }

    /// A new connection's state (and its counting).
    pub fn connect(self: &Arc<Shared>, listener: Listener) -> Connection {
        let counters = self.counters(listener);
        counters.connections_received.fetch_add(1, Ordering::Relaxed);
        counters.connected_clients.fetch_add(1, Ordering::Relaxed);
        Connection {
            shared: self.clone(),
            listener,
            id: self.next_client_id.fetch_add(1, Ordering::Relaxed),
            name: None,
            protocol: 2,
            counted: true,
        }
    }
}

/// One client connection (for SMT: one client session).
#[derive(Debug)]
pub struct Connection {
    shared: Arc<Shared>,
    listener: Listener,
    id: u64,
    name: Option<Bytes>,
    /// RESP version of replies: 2, or 3 after `HELLO 3`.
    pub protocol: u8,
    /// Whether this value is the client's entry in `connected_clients` (a
    /// [`for_command`](Self::for_command) copy is not).
    counted: bool,
}

impl Drop for Connection {
    fn drop(&mut self) {
        if self.counted {
            self.shared.counters(self.listener).connected_clients.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// What the connection does after a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    Continue,
    /// QUIT: close once the reply is out.
    Close,
}

impl Connection {
    /// A copy of this client's settings (ID, name, RESP version) to run one command
    /// with, so that commands of one client can run at once on several threads;
    /// [`adopt_settings`](Self::adopt_settings) keeps what the command changed.
    pub fn for_command(&self) -> Connection {
        Connection {
            shared: self.shared.clone(),
            listener: self.listener,
            id: self.id,
            name: self.name.clone(),
            protocol: self.protocol,
            counted: false,
        }
    }

    /// Whether `other` has the same name and RESP version.
    pub fn same_settings(&self, other: &Connection) -> bool {
        self.name == other.name && self.protocol == other.protocol
    }

    /// Takes the name and RESP version a command set on `copy`.
    pub fn adopt_settings(&mut self, copy: &Connection) {
        self.name = copy.name.clone();
        self.protocol = copy.protocol;
    }

    /// Runs one command (`args[0]` is its name) and returns the reply.
    pub fn execute(&mut self, args: &[Bytes]) -> (Reply, After) {
        self.shared.counters(self.listener).commands_processed.fetch_add(1, Ordering::Relaxed);
        let Some(name) = args.first() else {
            return (Reply::err("empty command"), After::Continue);
        };
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        let now = Instant::now();
        let store = &self.shared.store;
        let a = &args[1..];
        let reply = match name.as_str() {
            "ping" => match a {
                [] => Reply::Simple("PONG"),
                [msg] => Reply::Bulk(msg.clone()),
                _ => Reply::wrong_arity("ping"),
            },
            "echo" => match a {
                [msg] => Reply::Bulk(msg.clone()),
                _ => Reply::wrong_arity("echo"),
            },
            "get" => match a {
                [key] => match store.lock(key).get(key, now) {
                    None => Reply::Null,
                    Some(Entry { value: Value::Str(v), .. }) => Reply::Bulk(v.clone()),
                    Some(_) => Reply::wrong_type(),
                },
                _ => Reply::wrong_arity("get"),
            },
            "set" => set(store, a, now),
            "del" => arity_min(&name, a, 1, || {
                Reply::Integer(a.iter().filter(|k| store.lock(k).remove(k, now)).count() as i64)
            }),
            "exists" => arity_min(&name, a, 1, || {
                Reply::Integer(
                    a.iter().filter(|k| store.lock(k).get(k, now).is_some()).count() as i64
                )
            }),
            "mget" => arity_min(&name, a, 1, || {
                Reply::Array(
                    a.iter()
                        .map(|k| match store.lock(k).get(k, now) {
                            Some(Entry { value: Value::Str(v), .. }) => Reply::Bulk(v.clone()),
                            _ => Reply::Null,
                        })
                        .collect(),
                )
            }),
            "mset" => mset(store, a),
            "incr" | "decr" => match a {
                [key] => incr_by(store, key, if name == "incr" { 1 } else { -1 }, now),
                _ => Reply::wrong_arity(&name),
            },
            "incrby" | "decrby" => match a {
                [key, by] => match parse_i64(by) {
                    Some(by) if name == "incrby" => incr_by(store, key, by, now),
                    Some(by) => match by.checked_neg() {
                        Some(by) => incr_by(store, key, by, now),
                        None => Reply::err("decrement would overflow"),
                    },
                    None => not_an_integer(),
                },
                _ => Reply::wrong_arity(&name),
            },
            "expire" | "pexpire" => match a {
                [key, amount] => match parse_i64(amount) {
                    Some(n) => {
                        let ms = if name == "expire" { n.saturating_mul(1000) } else { n };
                        expire(store, key, ms, now)
                    }
                    None => not_an_integer(),
                },
                _ => Reply::wrong_arity(&name),
            },
            "ttl" | "pttl" => match a {
                [key] => ttl(store, key, name == "pttl", now),
                _ => Reply::wrong_arity(&name),
            },
            "persist" => match a {
                [key] => match store.lock(key).get(key, now) {
                    Some(entry) if entry.expires.is_some() => {
                        entry.expires = None;
                        Reply::Integer(1)
                    }
                    _ => Reply::Integer(0),
                },
                _ => Reply::wrong_arity("persist"),
            },
            "type" => match a {
                [key] => Reply::Simple(match store.lock(key).get(key, now) {
                    None => "none",
                    Some(Entry { value: Value::Str(_), .. }) => "string",
                    Some(Entry { value: Value::Hash(_), .. }) => "hash",
                }),
                _ => Reply::wrong_arity("type"),
            },
            "hset" | "hmset" => hset(store, &name, a, now),
            "hget" => match a {
                [key, field] => {
                    with_hash(store, key, now, |h| match h.and_then(|h| h.get(field)) {
                        Some(v) => Reply::Bulk(v.clone()),
                        None => Reply::Null,
                    })
                }
                _ => Reply::wrong_arity("hget"),
            },
            "hmget" => match a {
                [key, fields @ ..] if !fields.is_empty() => with_hash(store, key, now, |h| {
                    Reply::Array(
                        fields
                            .iter()
                            .map(|f| {
                                h.and_then(|h| h.get(f))
                                    .map_or(Reply::Null, |v| Reply::Bulk(v.clone()))
                            })
                            .collect(),
                    )
                }),
                _ => Reply::wrong_arity("hmget"),
            },
            "hgetall" => match a {
                [key] => with_hash(store, key, now, |h| {
                    Reply::Map(
                        h.into_iter()
                            .flatten()
                            .map(|(f, v)| (Reply::Bulk(f.clone()), Reply::Bulk(v.clone())))
                            .collect(),
                    )
                }),
                _ => Reply::wrong_arity("hgetall"),
            },
            "hdel" => match a {
                [key, fields @ ..] if !fields.is_empty() => hdel(store, key, fields, now),
                _ => Reply::wrong_arity("hdel"),
            },
            "hlen" => match a {
                [key] => {
                    with_hash(store, key, now, |h| Reply::Integer(h.map_or(0, |h| h.len() as i64)))
                }
                _ => Reply::wrong_arity("hlen"),
            },
            "hexists" => match a {
                [key, field] => with_hash(store, key, now, |h| {
                    Reply::Integer(i64::from(h.is_some_and(|h| h.contains_key(field))))
                }),
                _ => Reply::wrong_arity("hexists"),
            },
            "scan" => scan(store, a, now),
            "keys" => match a {
                [pattern] => keys(store, pattern, now),
                _ => Reply::wrong_arity("keys"),
            },
            "dbsize" => match a {
                [] => Reply::Integer(store.len(now) as i64),
                _ => Reply::wrong_arity("dbsize"),
            },
            "flushall" | "flushdb" => match a {
                [] => {
                    store.clear();
                    Reply::OK
                }
                [mode]
                    if mode.eq_ignore_ascii_case(b"sync")
                        || mode.eq_ignore_ascii_case(b"async") =>
                {
                    store.clear();
                    Reply::OK
                }
                [_] => Reply::Error("ERR syntax error".into()),
                _ => Reply::wrong_arity(&name),
            },
            "select" => match a {
                [db] if &db[..] == b"0" => Reply::OK,
                [db] if parse_i64(db).is_some() => Reply::err("DB index is out of range"),
                [_] => Reply::err("value is not an integer or out of range"),
                _ => Reply::wrong_arity("select"),
            },
            "info" => Reply::Bulk(Bytes::from(self.info(now))),
            "client" => self.client(a),
            "command" => command(a),
            "config" => match a {
                // Tools ask for settings at start (redis-benchmark: "save",
                // "appendonly"); there are none to report.
                [sub, patterns @ ..]
                    if sub.eq_ignore_ascii_case(b"get") && !patterns.is_empty() =>
                {
                    config_get(patterns)
                }
                [sub, ..] => Reply::err(format_args!(
                    "unknown subcommand '{}'. Try CONFIG HELP.",
                    String::from_utf8_lossy(sub)
                )),
                [] => Reply::wrong_arity("config"),
            },
            "hello" => self.hello(a),
            "quit" => return (Reply::OK, After::Close),
            _ => Reply::err(format_args!(
                "unknown command '{}', with args beginning with: {}",
                String::from_utf8_lossy(&args[0]),
                a.iter()
                    .take(3)
                    .map(|x| format!("'{}' ", String::from_utf8_lossy(x)))
                    .collect::<String>()
            )),
        };
        (reply, After::Continue)
    }

    fn client(&mut self, a: &[Bytes]) -> Reply {
        let Some(sub) = a.first() else { return Reply::wrong_arity("client") };
        match (sub.to_ascii_lowercase().as_slice(), &a[1..]) {
            (b"setname", [name]) => {
                if name.iter().any(|b| *b <= b' ' || *b > b'~') {
                    return Reply::err(
                        "Client names cannot contain spaces, newlines or special characters.",
                    );
                }
                self.name = (!name.is_empty()).then(|| name.clone());
                Reply::OK
            }
            (b"getname", []) => self.name.clone().map_or(Reply::Null, Reply::Bulk),
            (b"id", []) => Reply::Integer(self.id as i64),
            // redis-cli and client libraries announce themselves; nothing to keep.
            (b"setinfo", [_, _]) => Reply::OK,
            (b"setname" | b"getname" | b"id" | b"setinfo", _) => Reply::err(format_args!(
                "wrong number of arguments for 'client|{}' command",
                String::from_utf8_lossy(sub).to_ascii_lowercase()
            )),
            _ => Reply::err(format_args!(
                "unknown subcommand '{}'. Try CLIENT HELP.",
                String::from_utf8_lossy(sub)
            )),
        }
    }

    fn hello(&mut self, a: &[Bytes]) -> Reply {
        let mut rest = a;
        if let [version, more @ ..] = a {
            match parse_i64(version) {
                Some(v @ 2..=3) => self.protocol = v as u8,
                Some(_) => return Reply::Error("NOPROTO unsupported protocol version".into()),
                None => return Reply::err("Protocol version is not an integer or out of range"),
            }
            rest = more;
        }
        while let [option, more @ ..] = rest {
            match (option.to_ascii_lowercase().as_slice(), more) {
                (b"setname", [name, tail @ ..]) => {
                    self.name = Some(name.clone());
                    rest = tail;
                }
                (b"auth", [_, _, ..]) => {
                    return Reply::Error("WRONGPASS this server has no users or passwords".into())
                }
                _ => return Reply::Error("ERR syntax error".into()),
            }
        }
        let s = |x: &'static str| Reply::bulk(x);
        Reply::Map(vec![
            (s("server"), s("smt-kv")),
            (s("version"), s(env!("CARGO_PKG_VERSION"))),
            (s("proto"), Reply::Integer(i64::from(self.protocol))),
            (s("id"), Reply::Integer(self.id as i64)),
            (s("mode"), s("standalone")),
            (s("role"), s("master")),
            (s("modules"), Reply::Array(Vec::new())),
        ])
    }

    fn info(&self, now: Instant) -> String {
        let shared = &self.shared;
        let mut out = String::new();
        out.push_str("# Server\r\n");
        out.push_str(&format!(
            "redis_version:7.0.0\r\nsmt_kv_version:{}\r\n",
            env!("CARGO_PKG_VERSION")
        ));
        out.push_str(&format!(
            "uptime_in_seconds:{}\r\n",
            now.duration_since(shared.started).as_secs()
        ));
        out.push_str(&format!("shards:{}\r\n\r\n# Clients\r\n", shared.store.shard_count()));
        let sum = |f: fn(&ListenerCounters) -> &AtomicU64| -> u64 {
            Listener::ALL.iter().map(|l| f(shared.counters(*l)).load(Ordering::Relaxed)).sum()
        };
        // An SMT client is connected while its session lives (requests do not say
        // when a client leaves); TCP and TLS clients while their connection is open.
        let connected = |l: Listener| match (l, shared.smt_sessions.get()) {
            (Listener::Smt, Some(endpoint)) => endpoint.session_count() as u64,
            _ => shared.counters(l).connected_clients.load(Ordering::Relaxed),
        };
        let total: u64 = Listener::ALL.iter().map(|l| connected(*l)).sum();
        out.push_str(&format!("connected_clients:{total}\r\n"));
        for l in Listener::ALL {
            out.push_str(&format!("connected_clients_{}:{}\r\n", l.name(), connected(l)));
        }
        out.push_str("\r\n# Stats\r\n");
        out.push_str(&format!(
            "total_connections_received:{}\r\n",
            sum(|c| &c.connections_received)
        ));
        out.push_str(&format!("total_commands_processed:{}\r\n", sum(|c| &c.commands_processed)));
        for l in Listener::ALL {
            let c = shared.counters(l);
            out.push_str(&format!(
                "{name}_connections_received:{}\r\n{name}_commands_processed:{}\r\n",
                c.connections_received.load(Ordering::Relaxed),
                c.commands_processed.load(Ordering::Relaxed),
                name = l.name()
            ));
        }
        out.push_str(&format!("\r\n# Keyspace\r\ndb0:keys={}\r\n", shared.store.len(now)));
        out
    }
}

fn arity_min(name: &str, a: &[Bytes], min: usize, run: impl FnOnce() -> Reply) -> Reply {
    if a.len() < min {
        Reply::wrong_arity(name)
    } else {
        run()
    }
}

fn parse_i64(b: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(b).ok()?;
    // Redis accepts no leading '+' or spaces.
    if s.starts_with('+') || s.trim() != s {
        return None;
    }
    s.parse().ok()
}

fn not_an_integer() -> Reply {
    Reply::err("value is not an integer or out of range")
}

fn set(store: &Store, a: &[Bytes], now: Instant) -> Reply {
    let [key, value, options @ ..] = a else { return Reply::wrong_arity("set") };
    let (mut expires, mut nx, mut xx) = (None, false, false);
    let mut i = 0;
    while i < options.len() {
        let option = options[i].to_ascii_lowercase();
        match option.as_slice() {
            b"nx" => nx = true,
            b"xx" => xx = true,
            b"ex" | b"px" => {
                let Some(n) = options.get(i + 1).and_then(|n| parse_i64(n)) else {
                    return if options.get(i + 1).is_none() {
                        Reply::Error("ERR syntax error".into())
                    } else {
                        not_an_integer()
                    };
                };
                if n <= 0 || expires.is_some() {
                    return if expires.is_some() {
                        Reply::Error("ERR syntax error".into())
                    } else {
                        Reply::err("invalid expire time in 'set' command")
                    };
                }
                let ms = if option == b"ex" { n.saturating_mul(1000) } else { n };
                expires = Some(now + Duration::from_millis(ms as u64));
                i += 1;
            }
            _ => return Reply::Error("ERR syntax error".into()),
        }
        i += 1;
    }
    if nx && xx {
        return Reply::Error("ERR syntax error".into());
    }
    let mut shard = store.lock(key);
    let exists = shard.get(key, now).is_some();
    if (nx && exists) || (xx && !exists) {
        return Reply::Null;
    }
    shard.insert(key.clone(), Entry { value: Value::Str(value.clone()), expires });
    Reply::OK
}

fn mset(store: &Store, a: &[Bytes]) -> Reply {
    if a.is_empty() || a.len() % 2 != 0 {
        return Reply::wrong_arity("mset");
    }
    // Atomic as Redis's: every shard involved is locked (in index order, so two
    // MSETs cannot deadlock) before any key changes.
    let mut shards: Vec<usize> = a.chunks(2).map(|kv| store.shard_of(&kv[0])).collect();
    shards.sort_unstable();
    shards.dedup();
    let mut guards: HashMap<usize, _> = shards.iter().map(|&i| (i, store.lock_shard(i))).collect();
    for kv in a.chunks(2) {
        if let Some(shard) = guards.get_mut(&store.shard_of(&kv[0])) {
            shard.insert(kv[0].clone(), Entry::new(Value::Str(kv[1].clone())));
        }
    }
    Reply::OK
}

fn incr_by(store: &Store, key: &Bytes, by: i64, now: Instant) -> Reply {
    let mut shard = store.lock(key);
    let (current, expires) = match shard.get(key, now) {
        None => (0, None),
        Some(Entry { value: Value::Str(v), expires }) => match parse_i64(v) {
            Some(n) => (n, *expires),
            None => return not_an_integer(),
        },
        Some(_) => return Reply::wrong_type(),
    };
    let Some(next) = current.checked_add(by) else {
        return Reply::err("increment or decrement would overflow");
    };
    shard.insert(key.clone(), Entry { value: Value::Str(Bytes::from(next.to_string())), expires });
    Reply::Integer(next)
}

fn expire(store: &Store, key: &Bytes, ms: i64, now: Instant) -> Reply {
    let mut shard = store.lock(key);
    if shard.get(key, now).is_none() {
        return Reply::Integer(0);
    }
    if ms <= 0 {
        shard.remove(key, now);
        return Reply::Integer(1);
    }
    if let Some(entry) = shard.get(key, now) {
        entry.expires = Some(now + Duration::from_millis(ms as u64));
    }
    Reply::Integer(1)
}

fn ttl(store: &Store, key: &Bytes, millis: bool, now: Instant) -> Reply {
    match store.lock(key).get(key, now) {
        None => Reply::Integer(-2),
        Some(Entry { expires: None, .. }) => Reply::Integer(-1),
        Some(Entry { expires: Some(at), .. }) => {
            let left = at.saturating_duration_since(now);
            // Redis rounds TTL to the nearest second.
            Reply::Integer(if millis {
                left.as_millis() as i64
            } else {
                (left.as_millis() as i64 + 500) / 1000
            })
        }
    }
}

/// Runs `f` on the hash at `key` (`None` if there is none); a key holding a string
/// is a WRONGTYPE error.
fn with_hash(
    store: &Store,
    key: &Bytes,
    now: Instant,
    f: impl FnOnce(Option<&HashMap<Bytes, Bytes>>) -> Reply,
) -> Reply {
    match store.lock(key).get(key, now) {
        None => f(None),
        Some(Entry { value: Value::Hash(h), .. }) => f(Some(h)),
        Some(_) => Reply::wrong_type(),
    }
}

fn hset(store: &Store, name: &str, a: &[Bytes], now: Instant) -> Reply {
    let [key, pairs @ ..] = a else { return Reply::wrong_arity(name) };
    if pairs.is_empty() || pairs.len() % 2 != 0 {
        return Reply::wrong_arity(name);
    }
    let mut shard = store.lock(key);
    if shard.get(key, now).is_none() {
        shard.insert(key.clone(), Entry::new(Value::Hash(HashMap::new())));
    }
    let Some(Entry { value: Value::Hash(h), .. }) = shard.get(key, now) else {
        return Reply::wrong_type();
    };
    let mut added = 0;
    for fv in pairs.chunks(2) {
        if h.insert(fv[0].clone(), fv[1].clone()).is_none() {
            added += 1;
        }
    }
    if name == "hmset" {
        Reply::OK
    } else {
        Reply::Integer(added)
    }
}

fn hdel(store: &Store, key: &Bytes, fields: &[Bytes], now: Instant) -> Reply {
    let mut shard = store.lock(key);
    let (removed, empty) = match shard.get(key, now) {
        None => return Reply::Integer(0),
        Some(Entry { value: Value::Hash(h), .. }) => {
            let removed = fields.iter().filter(|f| h.remove(*f).is_some()).count();
            (removed, h.is_empty())
        }
        Some(_) => return Reply::wrong_type(),
    };
    if empty {
        shard.remove(key, now);
    }
    Reply::Integer(removed as i64)
}

fn scan(store: &Store, a: &[Bytes], now: Instant) -> Reply {
    let [cursor, options @ ..] = a else { return Reply::wrong_arity("scan") };
    let Some(cursor) = std::str::from_utf8(cursor).ok().and_then(|c| c.parse::<u64>().ok()) else {
        return Reply::err("invalid cursor");
    };
    let (mut count, mut pattern, mut kind) = (10usize, None, None);
    let mut i = 0;
    while i < options.len() {
        let value = options.get(i + 1);
        match (options[i].to_ascii_lowercase().as_slice(), value) {
            (b"count", Some(v)) => match parse_i64(v) {
                Some(n) if n >= 1 => count = n as usize,
                Some(_) => return Reply::Error("ERR syntax error".into()),
                None => return not_an_integer(),
            },
            (b"match", Some(p)) => pattern = Some(p.clone()),
            (b"type", Some(t)) => kind = Some(t.to_ascii_lowercase()),
            _ => return Reply::Error("ERR syntax error".into()),
        }
        i += 2;
    }
    let (next, keys) = store.scan(cursor, count, now);
    let keys = keys
        .into_iter()
        .filter(|k| pattern.as_ref().is_none_or(|p| glob_match(p, k)))
        .filter(|k| {
            kind.as_ref().is_none_or(|t| {
                let held = match store.lock(k).get(k, now) {
                    Some(Entry { value: Value::Str(_), .. }) => &b"string"[..],
                    Some(Entry { value: Value::Hash(_), .. }) => b"hash",
                    None => b"none",
                };
                held == t.as_slice()
            })
        })
        .map(Reply::Bulk)
        .collect();
    Reply::Array(vec![Reply::bulk(next.to_string()), Reply::Array(keys)])
}

fn keys(store: &Store, pattern: &[u8], now: Instant) -> Reply {
    let (mut cursor, mut found) = (0, Vec::new());
    loop {
        let (next, keys) = store.scan(cursor, 1024, now);
        found.extend(keys.into_iter().filter(|k| glob_match(pattern, k)).map(Reply::Bulk));
        if next == 0 {
            return Reply::Array(found);
        }
        cursor = next;
    }
}

/// The settings CONFIG GET reports, as a Redis without persistence has them.
const SETTINGS: &[(&str, &str)] =
    &[("save", ""), ("appendonly", "no"), ("databases", "1"), ("maxmemory", "0")];

fn config_get(patterns: &[Bytes]) -> Reply {
    Reply::Map(
        SETTINGS
            .iter()
            .filter(|(name, _)| {
                patterns.iter().any(|p| glob_match(&p.to_ascii_lowercase(), name.as_bytes()))
            })
            .map(|(name, value)| (Reply::bulk(*name), Reply::bulk(*value)))
            .collect(),
    )
}

fn command(a: &[Bytes]) -> Reply {
    match a.first().map(|s| s.to_ascii_lowercase()) {
        None => {
            Reply::Array(COMMANDS.iter().map(|c| Reply::Array(vec![Reply::bulk(*c)])).collect())
        }
        Some(sub) if sub == b"count" => Reply::Integer(COMMANDS.len() as i64),
        // redis-cli asks for command docs at start to show hints; it works without.
        Some(sub) if sub == b"docs" || sub == b"info" => Reply::Map(Vec::new()),
        Some(sub) => Reply::err(format_args!(
            "unknown subcommand '{}'. Try COMMAND HELP.",
            String::from_utf8_lossy(&sub)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(conn: &mut Connection, line: &str) -> Reply {
        let args: Vec<Bytes> = line.split(' ').map(|w| Bytes::from(w.to_owned())).collect();
        conn.execute(&args).0
    }

    fn bulk(s: &str) -> Reply {
        Reply::bulk(s.to_owned())
    }

    #[test]
    fn a_command_copy_keeps_the_client_id_changes_nothing_until_adopted_and_is_not_counted() {
        let shared = Shared::new(2);
        let mut kept = shared.connect(Listener::Smt);
        let connected = || shared.counters(Listener::Smt).connected_clients.load(Ordering::Relaxed);
        assert_eq!(connected(), 1);
        let mut copy = kept.for_command();
        let original = kept.for_command();
        assert_eq!(run(&mut copy, "CLIENT ID"), Reply::Integer(kept.id as i64));
        assert_eq!(run(&mut copy, "CLIENT SETNAME worker"), Reply::OK);
        assert!(matches!(run(&mut copy, "HELLO 3"), Reply::Map(_)), "HELLO 3 answers with a map");
        assert!(!copy.same_settings(&original), "the copy changed");
        assert_eq!(run(&mut kept, "CLIENT GETNAME"), Reply::Null, "the kept one did not");
        kept.adopt_settings(&copy);
        assert_eq!(run(&mut kept, "CLIENT GETNAME"), bulk("worker"));
        assert_eq!(kept.protocol, 3);
        drop((copy, original));
        assert_eq!(connected(), 1, "copies are not connected clients");
        drop(kept);
        assert_eq!(connected(), 0);
    }

    #[test]
    fn strings_set_get_with_nx_xx_and_errors_as_redis() {
        let shared = Shared::new(4);
        let mut c = shared.connect(Listener::Tcp);
        assert_eq!(run(&mut c, "GET k"), Reply::Null);
        assert_eq!(run(&mut c, "SET k v"), Reply::OK);
        assert_eq!(run(&mut c, "GET k"), bulk("v"));
        assert_eq!(run(&mut c, "SET k w NX"), Reply::Null);
        assert_eq!(run(&mut c, "SET j w XX"), Reply::Null);
        assert_eq!(run(&mut c, "SET k w XX"), Reply::OK);
        assert_eq!(run(&mut c, "GET k"), bulk("w"));
        assert_eq!(run(&mut c, "SET k v NX XX"), Reply::Error("ERR syntax error".into()));
        assert_eq!(run(&mut c, "SET k v EX 0"), Reply::err("invalid expire time in 'set' command"));
        assert_eq!(
            run(&mut c, "SET k v EX x"),
            Reply::err("value is not an integer or out of range")
        );
        assert_eq!(run(&mut c, "GET"), Reply::err("wrong number of arguments for 'get' command"));
        assert_eq!(run(&mut c, "DEL k j"), Reply::Integer(1));
        assert_eq!(run(&mut c, "EXISTS k"), Reply::Integer(0));
        assert!(
            matches!(run(&mut c, "NOSUCH a"), Reply::Error(e) if e.starts_with("ERR unknown command 'NOSUCH'"))
        );
    }

    #[test]
    fn counters_and_multi_key_commands() {
        let shared = Shared::new(4);
        let mut c = shared.connect(Listener::Smt);
        assert_eq!(run(&mut c, "INCR n"), Reply::Integer(1));
        assert_eq!(run(&mut c, "INCRBY n 41"), Reply::Integer(42));
        assert_eq!(run(&mut c, "DECRBY n 2"), Reply::Integer(40));
        assert_eq!(run(&mut c, "SET s abc"), Reply::OK);
        assert_eq!(run(&mut c, "INCR s"), Reply::err("value is not an integer or out of range"));
        assert_eq!(run(&mut c, "SET big 9223372036854775807"), Reply::OK);
        assert_eq!(run(&mut c, "INCR big"), Reply::err("increment or decrement would overflow"));
        assert_eq!(run(&mut c, "MSET a 1 b 2 c 3"), Reply::OK);
        assert_eq!(
            run(&mut c, "MGET a b x c"),
            Reply::Array(vec![bulk("1"), bulk("2"), Reply::Null, bulk("3")])
        );
        assert_eq!(
            run(&mut c, "MSET a"),
            Reply::err("wrong number of arguments for 'mset' command")
        );
        assert_eq!(run(&mut c, "DBSIZE"), Reply::Integer(6));
        assert_eq!(run(&mut c, "FLUSHALL"), Reply::OK);
        assert_eq!(run(&mut c, "DBSIZE"), Reply::Integer(0));
    }

    #[test]
    fn hashes_as_ycsb_uses_them_and_wrong_types_are_refused() {
        let shared = Shared::new(4);
        let mut c = shared.connect(Listener::Tcp);
        assert_eq!(run(&mut c, "HSET user1 f0 a f1 b"), Reply::Integer(2));
        assert_eq!(run(&mut c, "HSET user1 f1 c"), Reply::Integer(0));
        assert_eq!(run(&mut c, "HMSET user1 f2 d"), Reply::OK);
        assert_eq!(run(&mut c, "HGET user1 f1"), bulk("c"));
        assert_eq!(run(&mut c, "HMGET user1 f0 nope"), Reply::Array(vec![bulk("a"), Reply::Null]));
        let Reply::Map(mut all) = run(&mut c, "HGETALL user1") else { panic!("HGETALL is a map") };
        all.sort_by_key(|(k, _)| k.as_bytes().map(<[u8]>::to_vec));
        assert_eq!(
            all,
            vec![(bulk("f0"), bulk("a")), (bulk("f1"), bulk("c")), (bulk("f2"), bulk("d"))]
        );
        assert_eq!(run(&mut c, "HLEN user1"), Reply::Integer(3));
        assert_eq!(run(&mut c, "HDEL user1 f0 f1 f2 f3"), Reply::Integer(3));
        assert_eq!(run(&mut c, "EXISTS user1"), Reply::Integer(0), "an emptied hash is deleted");
        assert_eq!(run(&mut c, "SET s v"), Reply::OK);
        assert_eq!(run(&mut c, "HGET s f"), Reply::wrong_type());
        assert_eq!(run(&mut c, "HSET s f v"), Reply::wrong_type());
        assert_eq!(
            run(&mut c, "HSET h f"),
            Reply::err("wrong number of arguments for 'hset' command")
        );
        assert_eq!(run(&mut c, "TYPE s"), Reply::Simple("string"));
    }

    #[test]
    fn expiry_by_set_ex_px_and_expire_shows_in_ttl_and_removes_keys() {
        let shared = Shared::new(2);
        let mut c = shared.connect(Listener::Tcp);
        assert_eq!(run(&mut c, "SET k v EX 100"), Reply::OK);
        assert_eq!(run(&mut c, "TTL k"), Reply::Integer(100));
        assert_eq!(run(&mut c, "TTL nope"), Reply::Integer(-2));
        assert_eq!(run(&mut c, "SET p v"), Reply::OK);
        assert_eq!(run(&mut c, "TTL p"), Reply::Integer(-1));
        assert_eq!(run(&mut c, "PEXPIRE p 30"), Reply::Integer(1));
        assert!(matches!(run(&mut c, "PTTL p"), Reply::Integer(ms) if ms > 0 && ms <= 30));
        assert_eq!(run(&mut c, "SET q v PX 20"), Reply::OK);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(run(&mut c, "GET p"), Reply::Null);
        assert_eq!(run(&mut c, "EXISTS q"), Reply::Integer(0));
        assert_eq!(run(&mut c, "EXPIRE k -1"), Reply::Integer(1));
        assert_eq!(run(&mut c, "GET k"), Reply::Null, "a non-positive EXPIRE deletes");
        assert_eq!(run(&mut c, "PERSIST nope"), Reply::Integer(0));
    }

    #[test]
    fn connection_commands_hello_client_and_info_per_listener() {
        let shared = Shared::new(2);
        let mut tcp = shared.connect(Listener::Tcp);
        let mut smt = shared.connect(Listener::Smt);
        assert_eq!(run(&mut tcp, "PING"), Reply::Simple("PONG"));
        assert_eq!(run(&mut tcp, "ECHO hi"), bulk("hi"));
        assert_eq!(run(&mut tcp, "CLIENT SETNAME worker"), Reply::OK);
        assert_eq!(run(&mut tcp, "CLIENT GETNAME"), bulk("worker"));
        assert!(matches!(run(&mut smt, "CLIENT ID"), Reply::Integer(2)));
        let Reply::Map(hello) = run(&mut smt, "HELLO 3") else { panic!("HELLO is a map") };
        assert!(hello.contains(&(bulk("proto"), Reply::Integer(3))));
        assert_eq!(smt.protocol, 3);
        assert_eq!(
            run(&mut smt, "HELLO 4"),
            Reply::Error("NOPROTO unsupported protocol version".into())
        );
        let Reply::Bulk(info) = run(&mut tcp, "INFO") else { panic!("INFO is a bulk string") };
        let info = String::from_utf8(info.to_vec()).unwrap();
        assert!(info.contains("connected_clients:2\r\n"), "{info}");
        assert!(info.contains("tcp_commands_processed:5\r\n"), "{info}");
        assert!(info.contains("smt_commands_processed:3\r\n"), "{info}");
        drop(smt);
        assert!(
            matches!(run(&mut tcp, "INFO"), Reply::Bulk(i) if i.windows(22).any(|w| w == b"connected_clients_smt:"))
        );
        assert_eq!(tcp.execute(&[Bytes::from("QUIT")]).1, After::Close);
    }

    #[test]
    fn scan_and_keys_walk_the_key_space_with_match_and_type() {
        let shared = Shared::new(4);
        let mut c = shared.connect(Listener::Tcp);
        for i in 0..50 {
            run(&mut c, &format!("SET key:{i} v"));
            run(&mut c, &format!("HSET hash:{i} f v"));
        }
        let (mut cursor, mut seen) = (String::from("0"), Vec::new());
        loop {
            let Reply::Array(parts) = run(&mut c, &format!("SCAN {cursor} MATCH key:* COUNT 7"))
            else {
                panic!("SCAN replies with an array")
            };
            let [Reply::Bulk(next), Reply::Array(keys)] = &parts[..] else { panic!("{parts:?}") };
            seen.extend(keys.iter().cloned());
            cursor = String::from_utf8(next.to_vec()).unwrap();
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(seen.len(), 50);
        let Reply::Array(hashes) = run(&mut c, "KEYS hash:1*") else { panic!() };
        assert_eq!(hashes.len(), 11); // hash:1 and hash:10..19
        let Reply::Array(parts) = run(&mut c, "SCAN 0 TYPE hash COUNT 1000") else { panic!() };
        assert!(matches!(&parts[1], Reply::Array(k) if k.len() == 50));
        assert_eq!(run(&mut c, "SCAN x"), Reply::err("invalid cursor"));
    }
}
