//! One malicious client against a real server on loopback (the simulator versions
//! are in `crates/smt-sim/tests/isolation.rs`): it forges DATA on its own, genuinely
//! established session, claiming huge messages and touching them, while a victim
//! client keeps calling. The victim's calls must all succeed, and the server's
//! memory must stay within the documented bound (PROTOCOL.md 9.1.1).

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use smt_proto::wire::{Body, DataRepr, Flags, HeaderRepr, MessageId, PacketRepr, PacketType};
use support::{loopback_client, loopback_server, pattern, within};

const STEP: Duration = Duration::from_secs(10);

/// The tests of this file run one at a time: they measure latency and the process's
/// resident memory, which a test running beside them would distort.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The attacker's path to the server: forwards its client's datagrams (so that it
/// can establish a session and learn its ID) until `cut`; from then on the client is
/// silent (it would answer RPC_UNKNOWN for the forged IDs) and the test sends
/// forged datagrams from the same address.
struct AttackerPath {
    addr: std::net::SocketAddr,
    back: Arc<tokio::net::UdpSocket>,
    session_id: Arc<std::sync::Mutex<Option<u64>>>,
    cut: Arc<AtomicBool>,
    /// Drops the client's DATA past 64 KiB (its large requests stall after their
    /// first records).
    stall: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for AttackerPath {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl AttackerPath {
    async fn start(server: std::net::SocketAddr) -> AttackerPath {
        let front = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let back = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = front.local_addr().unwrap();
        let back_port = back.local_addr().unwrap().port();
        let session_id = Arc::new(std::sync::Mutex::new(None));
        let cut = Arc::new(AtomicBool::new(false));
        let stall = Arc::new(AtomicBool::new(false));
        let (b, id, c, st) = (back.clone(), session_id.clone(), cut.clone(), stall.clone());
        let task = tokio::spawn(async move {
            let mut client = None;
            let (mut up, mut down) = (vec![0u8; 65536], vec![0u8; 65536]);
            loop {
                tokio::select! {
                    r = front.recv_from(&mut up) => {
                        let Ok((n, from)) = r else { continue };
                        client = Some(from);
                        if c.load(Ordering::SeqCst) || n < 4 {
                            continue;
                        }
                        let datagram = &mut up[..n];
                        if let Ok(p) = PacketRepr::parse(datagram) {
                            if p.header.packet_type == PacketType::Data {
                                *id.lock().unwrap() = Some(p.header.session_id);
                            }
                            let far = matches!(p.body, Body::Data(ref d) if d.offset >= 64 * 1024);
                            if far && st.load(Ordering::SeqCst) {
                                continue;
                            }
                        }
                        datagram[0..2].copy_from_slice(&back_port.to_be_bytes());
                        datagram[2..4].copy_from_slice(&server.port().to_be_bytes());
                        let _ = b.send_to(datagram, server).await;
                    }
                    r = b.recv_from(&mut down) => {
                        let Ok((n, _)) = r else { continue };
                        let Some(client) = client else { continue };
                        if c.load(Ordering::SeqCst) || n < 4 {
                            continue;
                        }
                        let datagram = &mut down[..n];
                        datagram[0..2].copy_from_slice(&addr.port().to_be_bytes());
                        datagram[2..4].copy_from_slice(&client.port().to_be_bytes());
                        let _ = front.send_to(datagram, client).await;
                    }
                }
            }
        });
        AttackerPath { addr, back, session_id, cut, stall, task }
    }
}

/// Resident memory of this process (server, clients and test together), in bytes.
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// A server on loopback, an attacker client connected through an [`AttackerPath`],
/// and a victim client connected directly (the endpoints are kept alive with it).
struct Scene {
    server: smt::Endpoint,
    path: AttackerPath,
    attacker_session: smt::Session,
    victim_session: smt::Session,
    _clients: [smt::Endpoint; 2],
}

async fn scene() -> Scene {
    let id = support::identity(&["localhost"]);
    let server = loopback_server(support::server_config(&id));
    support::spawn_echo(server.clone());
    let path = AttackerPath::start(server.local_addr()).await;
    let attacker = loopback_client(support::client_config(&id));
    let attacker_session =
        within(STEP, "attacker connect", attacker.connect(path.addr, "localhost")).await.unwrap();
    let victim = loopback_client(support::client_config(&id));
    let connect = victim.connect(server.local_addr(), "localhost");
    let victim_session = within(STEP, "victim connect", connect).await.unwrap();
    Scene { server, path, attacker_session, victim_session, _clients: [attacker, victim] }
}

/// Latencies of `rounds` rounds of victim calls of 64 B to 200 KB, each checked.
async fn victim_rounds(session: &smt::Session, rounds: u64, seed: u64) -> Vec<Duration> {
    let mut latencies = Vec::new();
    for round in 0..rounds {
        for size in [64usize, 4096, 40_000, 200_000] {
            let request = pattern(size, seed + round);
            let started = Instant::now();
            let response = within(STEP, "victim call", session.call(request.clone())).await;
            assert_eq!(response.expect("victim call").as_ref(), &request[..]);
            latencies.push(started.elapsed());
        }
    }
    latencies
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_stalling_its_own_large_requests_slows_only_itself_on_real_sockets() {
    let _serial = SERIAL.lock().await;
    let Scene { path, attacker_session, victim_session, .. } = &scene().await;
    let quiet = p99(victim_rounds(victim_session, 20, 0).await);
    // 12 requests of 1 MiB whose bytes past 64 KiB never arrive (they authenticate,
    // take grants, and stall), made again as they time out.
    path.stall.store(true, Ordering::SeqCst);
    let mut stalled = tokio::task::JoinSet::new();
    for i in 0..12u64 {
        let (session, request) = (attacker_session.clone(), pattern(1 << 20, 500 + i));
        stalled.spawn(async move { session.call(request).await });
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let loud = p99(victim_rounds(victim_session, 40, 100).await);
    println!("victim p99 {loud:?} beside 12 stalled 1 MiB requests, {quiet:?} undisturbed");
    stalled.abort_all();
    // Before the defences the victim's calls above 40 KB waited for the stalled
    // requests' timeouts (2 s). Loopback on a shared 2-vCPU machine is noisy: the
    // bound is generous, but far below that.
    assert!(loud <= quiet * 10 + Duration::from_millis(100), "victim p99 {loud:?} vs {quiet:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_huge_messages_on_a_clients_own_session_leave_other_clients_served() {
    let _serial = SERIAL.lock().await;
    let Scene { server, path, attacker_session, victim_session, .. } = &scene().await;
    within(STEP, "attacker call", attacker_session.call(b"hello".to_vec())).await.unwrap();
    let session_id = path.session_id.lock().unwrap().expect("the attacker's session ID");
    path.cut.store(true, Ordering::SeqCst);
    // Warm up (allocator, buffer pool), then measure undisturbed latency.
    let quiet = p99(victim_rounds(victim_session, 20, 0).await);
    let rss_before = rss();
    // The attack: 2000 messages claiming 128 MiB each, touched at random offsets
    // (half inside the unscheduled prefix, which keeps them alive), every 20 ms,
    // while the victim calls.
    const BOGUS: u64 = 2000;
    const CLAIM: u32 = 128 << 20;
    let (back, server_addr) = (path.back.clone(), server.local_addr());
    let stop = Arc::new(AtomicBool::new(false));
    let stop_attack = stop.clone();
    let attack = tokio::spawn(async move {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let junk = [0x17u8; 64];
        while !stop_attack.load(Ordering::SeqCst) {
            for id in 1_000..1_000 + BOGUS {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let end = if id % 2 == 0 { CLAIM } else { 40_000 };
                let offset = (x % u64::from(end - 64)) as u32;
                let packet = PacketRepr {
                    header: HeaderRepr {
                        src_port: back.local_addr().unwrap().port(),
                        dst_port: server_addr.port(),
                        packet_type: PacketType::Data,
                        flags: Flags::FROM_INITIATOR,
                        session_id,
                        message_id: MessageId::new(id).unwrap(),
                    },
                    body: Body::Data(DataRepr {
                        message_length: CLAIM,
                        offset,
                        unscheduled: CLAIM,
                        record_size: 16384,
                        priority: 0,
                        payload: &junk,
                    }),
                };
                let _ = back.send_to(&packet.to_vec(), server_addr).await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let mut attacked = Vec::new();
    let mut peak_incoming = 0;
    let mut peak_rss = 0;
    for round in 0..40u64 {
        attacked.extend(victim_rounds(victim_session, 1, 100 + round).await);
        peak_incoming = peak_incoming.max(server.memory_usage().incoming_bytes);
        peak_rss = peak_rss.max(rss());
    }
    stop.store(true, Ordering::SeqCst);
    attack.await.unwrap();
    let loud = p99(attacked);
    let stats = server.stats();
    println!(
        "victim p99 {loud:?} under attack, {quiet:?} undisturbed; server incoming peak {peak_incoming} B; \
         RSS {rss_before} -> peak {peak_rss} B; {} forged packets beyond the grant",
        stats.beyond_grant
    );
    // Each forged message holds at most its 40 000-byte unscheduled prefix and a
    // byte per claimed record: 2000 x 48 KB, whatever it claims.
    let per_message = 40_000 + (CLAIM as usize).div_ceil(16 * 1024) + 64;
    assert!(peak_incoming <= BOGUS as usize * per_message, "{peak_incoming} B held");
    assert!(stats.beyond_grant > 0, "no forged packet landed beyond the grant");
    // RSS: the charged bytes plus allocator and buffer-pool slack (32 MiB pool).
    let growth = peak_rss.saturating_sub(rss_before);
    assert!(growth <= BOGUS as usize * per_message + (64 << 20), "RSS grew {growth} B");
    // Loopback on a shared 2-vCPU machine is noisy: a generous bound that a starved
    // victim (timeouts of 2 s, or calls queued behind the forged messages) misses.
    assert!(loud <= quiet * 10 + Duration::from_millis(50), "victim p99 {loud:?} vs {quiet:?}");
}

/// Time for `calls` sequential echo calls of 1 MiB on `session`, each checked.
async fn bulk_calls(session: &smt::Session, calls: u64, seed: u64) -> Duration {
    let started = Instant::now();
    for i in 0..calls {
        let request = pattern(1 << 20, seed + i);
        let response = within(STEP, "victim bulk call", session.call(request.clone())).await;
        assert_eq!(response.expect("victim bulk call").as_ref(), &request[..]);
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_byte_data_under_fresh_ids_at_1000_per_second_leaves_bulk_throughput_standing() {
    // The red team: 1-byte DATA packets, each under a fresh message ID, at 1000 a
    // second on the attacker's own session cut the server's throughput by 88 %. Each
    // one claims a 1 MiB message the server must reassemble; none ever authenticates.
    let _serial = SERIAL.lock().await;
    let Scene { server, path, attacker_session, victim_session, .. } = &scene().await;
    within(STEP, "attacker call", attacker_session.call(b"hello".to_vec())).await.unwrap();
    let session_id = path.session_id.lock().unwrap().expect("the attacker's session ID");
    path.cut.store(true, Ordering::SeqCst);
    bulk_calls(victim_session, 3, 0).await; // warm up
    let quiet = bulk_calls(victim_session, 20, 10).await;
    let (back, server_addr) = (path.back.clone(), server.local_addr());
    let stop = Arc::new(AtomicBool::new(false));
    let stop_attack = stop.clone();
    let resends_before = server.stats().resends_sent;
    let attack = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        let mut id = 1_000_000u64;
        while !stop_attack.load(Ordering::SeqCst) {
            tick.tick().await;
            id += 1;
            let packet = PacketRepr {
                header: HeaderRepr {
                    src_port: back.local_addr().unwrap().port(),
                    dst_port: server_addr.port(),
                    packet_type: PacketType::Data,
                    flags: Flags::FROM_INITIATOR,
                    session_id,
                    message_id: MessageId::new(id).unwrap(),
                },
                body: Body::Data(DataRepr {
                    message_length: 1 << 20,
                    offset: 0,
                    unscheduled: 40_000,
                    record_size: 16384,
                    priority: 0,
                    payload: &[0x17],
                }),
            };
            let _ = back.send_to(&packet.to_vec(), server_addr).await;
        }
        id - 1_000_000
    });
    // Forged messages live up to rpc_timeout (2 s) each: let 2000 of them build up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let loud = bulk_calls(victim_session, 20, 100).await;
    stop.store(true, Ordering::SeqCst);
    let forged = attack.await.unwrap();
    let resends = server.stats().resends_sent - resends_before;
    println!(
        "20 x 1 MiB: {quiet:?} undisturbed, {loud:?} beside {forged} fresh-ID 1-byte packets \
         ({resends} RESENDs from the server meanwhile)"
    );
    // Noisy 2-vCPU machine: the bound is loose, but an 88 % cut (8x the time) misses it.
    assert!(loud <= quiet * 2 + Duration::from_millis(200), "{loud:?} vs {quiet:?}");
    // Each forged message asks for its record 0 a few times, backing off (about nine
    // times in its 2 s life), not once every 3 ms (before: 410 422 RESENDs for 2617
    // forged packets, and the victim's calls took 3.1x as long).
    assert!(resends <= forged * 12 + 100, "{resends} RESENDs for {forged} forged packets");
}
