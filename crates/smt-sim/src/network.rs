//! The simulated network: hosts joined by a switch, virtual time, seeded faults.
//!
//! This is test support: its methods panic on misuse (an invalid engine
//! configuration, a session installed twice, a call the engine refuses) instead of
//! returning errors, so that a broken test fails loudly at the line that broke it.
//!
//! Each host has an uplink and a downlink of `bandwidth_bps`; a packet is serialised
//! on the sender's uplink, crosses half the propagation delay to the switch, queues for
//! the receiver's downlink (where incast congestion builds up), is serialised again
//! and crosses the other half. Loss, duplication and reordering (extra random delay)
//! are drawn per packet from one ChaCha8 stream seeded by the test, and the engine is
//! deterministic, so a seed fixes the whole run.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use smt_proto::engine::{Config, Endpoint, Event, Role, SessionHandle, SessionParams};
use smt_proto::record::{CipherSuite, TrafficSecret};
use smt_proto::wire::MessageId;

/// Properties of every link.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// One-way propagation delay between two hosts.
    pub delay: Duration,
    /// Bandwidth of each host's uplink and downlink.
    pub bandwidth_bps: u64,
    /// Probability that a packet is lost.
    pub loss: f64,
    /// Probability that a packet is delivered twice.
    pub duplicate: f64,
    /// Probability that a packet is delayed by up to `reorder_jitter` extra.
    pub reorder: f64,
    /// Largest extra delay of a reordered packet; each one draws uniformly from
    /// zero up to this.
    pub reorder_jitter: Duration,
}

impl Default for LinkConfig {
    /// 10 us one way, 25 Gbps, no faults.
    fn default() -> Self {
        LinkConfig {
            delay: Duration::from_micros(10),
            bandwidth_bps: 25_000_000_000,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_jitter: Duration::from_micros(50),
        }
    }
}

/// Index of a host in the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostId(pub usize);

/// What happened to one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fate {
    /// Scheduled for delivery to the destination host (the first copy).
    Delivered,
    /// Dropped by random loss or by the drop filter; never arrives.
    Lost,
    /// The extra copy of a packet the network delivers twice.
    Duplicated,
}

/// One line of the packet trace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TraceEvent {
    /// Virtual time since the network was created: when a lost datagram left its
    /// sender, when a delivered one reached the switch (its arrival depends on the
    /// downlink queue it meets there).
    pub at: Duration,
    /// Address of the sending host.
    pub from: SocketAddr,
    /// Destination address of the datagram.
    pub to: SocketAddr,
    /// Datagram length in bytes.
    pub len: usize,
    /// Whether it was delivered, lost or duplicated.
    pub fate: Fate,
}

/// A received datagram, kept when capture is on (for replay attacks).
#[derive(Debug, Clone)]
pub struct Captured {
    /// The host that received it.
    pub to: HostId,
    /// The source address the receiving endpoint saw.
    pub from: SocketAddr,
    /// The whole datagram, as delivered.
    pub bytes: Vec<u8>,
}

/// One datagram a host handed to the network, kept when
/// [`Network::record_sends`] is on (including datagrams to addresses no host has).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Virtual time at which the host sent it.
    pub at: Duration,
    /// The sending host.
    pub from: HostId,
    /// The destination address the host's endpoint chose.
    pub to: SocketAddr,
    /// The whole datagram (one GSO segment counts as one datagram).
    pub bytes: Vec<u8>,
    /// False if no host has the destination address: the datagram went nowhere.
    pub routable: bool,
    /// Whether the drop filter discarded it.
    pub filtered: bool,
}

/// Decides, per datagram `(sender, destination, bytes)`, whether to drop it.
type DropFilter = Box<dyn FnMut(HostId, SocketAddr, &[u8]) -> bool>;

type Responder = Box<dyn FnMut(&[u8]) -> Vec<u8>>;

struct Host {
    addr: SocketAddr,
    endpoint: Endpoint,
    uplink_free: Duration,
    downlink_free: Duration,
    events: Vec<(Duration, Event)>,
    responder: Option<Responder>,
    max_granted_unreceived: u64,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: Duration,
    seq: u64,
    to: usize,
    from: SocketAddr,
    bytes: Vec<u8>,
    /// `Some(extra delay)` while the datagram is on its way to the switch, where it
    /// queues for the receiver's downlink in the order datagrams get there (a
    /// datagram sent later from an idle host can overtake one still stuck behind a
    /// busy uplink); `None` once it is on its way to the host.
    to_switch: Option<Duration>,
}

/// Counters over the whole run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Datagrams hosts handed to the network (injected ones are not counted).
    pub sent: u64,
    /// Datagrams dropped by random loss or by the drop filter.
    pub lost: u64,
    /// Datagrams the network delivered twice.
    pub duplicated: u64,
    /// Datagrams handed to an endpoint, duplicates and injected ones included.
    pub delivered: u64,
    /// Datagrams sent to an address no host has; they are not counted as lost.
    pub unroutable: u64,
}

/// The simulated network. See the module documentation.
pub struct Network {
    base: Instant,
    now: Duration,
    hosts: Vec<Host>,
    by_addr: HashMap<SocketAddr, usize>,
    queue: BinaryHeap<Reverse<InFlight>>,
    rng: ChaCha8Rng,
    link: LinkConfig,
    seq: u64,
    trace_hash: u64,
    trace: Option<Vec<TraceEvent>>,
    capture: Option<Vec<Captured>>,
    buf: Vec<u8>,
    /// Packet counters since the network was created.
    pub stats: NetStats,
    sends: Option<Vec<Sent>>,
    drop_filter: Option<DropFilter>,
}

impl Network {
    /// An empty network whose randomness all comes from `seed`.
    pub fn new(seed: u64, link: LinkConfig) -> Network {
        Network {
            base: Instant::now(),
            now: Duration::ZERO,
            hosts: Vec::new(),
            by_addr: HashMap::new(),
            queue: BinaryHeap::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            link,
            seq: 0,
            trace_hash: 0xcbf2_9ce4_8422_2325,
            trace: None,
            capture: None,
            buf: Vec::with_capacity(64 * 1024),
            stats: NetStats::default(),
            sends: None,
            drop_filter: None,
        }
    }

    /// Changes link properties from now on (e.g. to stop losses).
    pub fn set_link(&mut self, link: LinkConfig) {
        self.link = link;
    }

    /// Keeps every trace line in memory (the hash is always kept).
    pub fn record_trace(&mut self) {
        self.trace = Some(Vec::new());
    }

    /// Keeps a copy of every delivered datagram.
    pub fn capture(&mut self) {
        self.capture = Some(Vec::new());
    }

    /// Keeps a copy of every datagram any host sends from now on, routable or not
    /// (e.g. to count the bytes a server directs at a spoofed address).
    pub fn record_sends(&mut self) {
        self.sends = Some(Vec::new());
    }

    /// The datagrams sent since [`record_sends`](Self::record_sends).
    pub fn sends(&self) -> &[Sent] {
        self.sends.as_deref().unwrap_or(&[])
    }

    /// Drops (as if lost) every datagram for which `f(sender, destination, bytes)`
    /// returns true, until [`clear_drop_filter`](Self::clear_drop_filter). Dropping
    /// draws no randomness, so the filter changes a run only where it drops.
    pub fn set_drop_filter(&mut self, f: impl FnMut(HostId, SocketAddr, &[u8]) -> bool + 'static) {
        self.drop_filter = Some(Box::new(f));
    }

    /// Removes the drop filter.
    pub fn clear_drop_filter(&mut self) {
        self.drop_filter = None;
    }

    /// Drains the host's transmit and event queues (answering requests if it has a
    /// responder). Call after commanding its endpoint directly through
    /// [`endpoint`](Self::endpoint).
    pub fn pump_host(&mut self, host: HostId) {
        self.pump(host.0);
    }

    /// Takes the captured datagrams.
    pub fn take_captured(&mut self) -> Vec<Captured> {
        self.capture.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// The recorded trace (empty unless [`record_trace`](Self::record_trace)).
    pub fn trace(&self) -> &[TraceEvent] {
        self.trace.as_deref().unwrap_or(&[])
    }

    /// FNV-1a hash of every trace line so far: equal seeds give equal hashes.
    pub fn trace_hash(&self) -> u64 {
        self.trace_hash
    }

    /// Adds a host running an endpoint with `config`.
    pub fn add_host(&mut self, config: Config) -> HostId {
        let n = self.hosts.len();
        let ip = IpAddr::V4(Ipv4Addr::new(127, 10, (n >> 8) as u8, (n & 0xff) as u8));
        let addr = SocketAddr::new(ip, 4433);
        // Hosts are labelled with loopback addresses (no real traffic ever leaves the
        // simulator); no path MTU is reported, so packets keep `max_packet_payload`.
        let endpoint = Endpoint::new(config, addr.port()).expect("valid config");
        self.by_addr.insert(addr, n);
        self.hosts.push(Host {
            addr,
            endpoint,
            uplink_free: Duration::ZERO,
            downlink_free: Duration::ZERO,
            events: Vec::new(),
            responder: None,
            max_granted_unreceived: 0,
        });
        HostId(n)
    }

    /// The host's address.
    pub fn addr(&self, host: HostId) -> SocketAddr {
        self.hosts[host.0].addr
    }

    /// Moves the host to a new address, as a NAT that lost its mapping does: its
    /// datagrams come from `to` from now on, datagrams to `to` reach it, and those
    /// to the old address go nowhere. The host's endpoint is not told.
    pub fn rebind(&mut self, host: HostId, to: SocketAddr) {
        let old = self.hosts[host.0].addr;
        self.by_addr.remove(&old);
        self.by_addr.insert(to, host.0);
        self.hosts[host.0].addr = to;
    }

    /// The host's endpoint, for direct inspection or commands.
    pub fn endpoint(&mut self, host: HostId) -> &mut Endpoint {
        &mut self.hosts[host.0].endpoint
    }

    /// The host's endpoint, read-only.
    pub fn endpoint_ref(&self, host: HostId) -> &Endpoint {
        &self.hosts[host.0].endpoint
    }

    /// The current virtual time as an `Instant`.
    pub fn now(&self) -> Instant {
        self.base + self.now
    }

    /// Virtual time elapsed since creation.
    pub fn elapsed(&self) -> Duration {
        self.now
    }

    /// Highest granted-but-unreceived byte count the host ever had.
    pub fn max_granted_unreceived(&self, host: HostId) -> u64 {
        self.hosts[host.0].max_granted_unreceived
    }

    /// Installs a session between two hosts with fresh random keys (as a completed
    /// handshake would), returning (client handle, server handle).
    pub fn connect(
        &mut self,
        client: HostId,
        server: HostId,
        suite: CipherSuite,
    ) -> (SessionHandle, SessionHandle) {
        let session_id: u64 = self.rng.gen();
        let now = self.now();
        // Random traffic secrets (as a handshake would produce), so that sessions can
        // also exercise key updates.
        let secret_len = if suite == CipherSuite::Aes256GcmSha384 { 48 } else { 32 };
        let mut secret = || {
            let mut bytes = vec![0u8; secret_len];
            self.rng.fill(&mut bytes[..]);
            TrafficSecret::new(suite, &bytes).expect("secret length matches the suite")
        };
        let (c2s, s2c) = (secret(), secret());
        let (caddr, saddr) = (self.addr(client), self.addr(server));
        let c = self.hosts[client.0]
            .endpoint
            .install_session(
                now,
                SessionParams {
                    peer: saddr,
                    session_id,
                    role: Role::Client,
                    tx: c2s.record_key(),
                    rx: s2c.record_key(),
                    tx_secret: Some(c2s.clone()),
                    rx_secret: Some(s2c.clone()),
                },
            )
            .expect("fresh session");
        let s = self.hosts[server.0]
            .endpoint
            .install_session(
                now,
                SessionParams {
                    peer: caddr,
                    session_id,
                    role: Role::Server,
                    tx: s2c.record_key(),
                    rx: c2s.record_key(),
                    tx_secret: Some(s2c),
                    rx_secret: Some(c2s),
                },
            )
            .expect("fresh session");
        (c, s)
    }

    /// Makes the host answer every request with `f(request)` at once.
    pub fn set_responder(&mut self, host: HostId, f: impl FnMut(&[u8]) -> Vec<u8> + 'static) {
        self.hosts[host.0].responder = Some(Box::new(f));
    }

    /// Makes the host an echo server.
    pub fn set_echo(&mut self, host: HostId) {
        self.set_responder(host, |req| req.to_vec());
    }

    /// Starts an RPC from `host` on `session`.
    pub fn call(&mut self, host: HostId, session: SessionHandle, request: &[u8]) -> MessageId {
        let now = self.now();
        let id = self.hosts[host.0].endpoint.call(now, session, request).expect("call accepted");
        self.pump(host.0);
        id
    }

    /// Delivers `bytes` to `to` as if sent by `from`, at the current time.
    pub fn inject(&mut self, to: HostId, from: SocketAddr, bytes: Vec<u8>) {
        self.seq += 1;
        self.queue.push(Reverse(InFlight {
            at: self.now,
            seq: self.seq,
            to: to.0,
            from,
            bytes,
            to_switch: None,
        }));
    }

    /// Takes the events the host's application has seen, with their times.
    pub fn take_events(&mut self, host: HostId) -> Vec<(Duration, Event)> {
        std::mem::take(&mut self.hosts[host.0].events)
    }

    /// Events seen so far, without taking them.
    pub fn events(&self, host: HostId) -> &[(Duration, Event)] {
        &self.hosts[host.0].events
    }

    /// Processes the next packet arrival or timer. False when nothing is pending.
    pub fn step(&mut self) -> bool {
        let next_packet = self.queue.peek().map(|Reverse(p)| p.at);
        let next_timer = self
            .hosts
            .iter()
            .enumerate()
            .filter_map(|(i, h)| {
                h.endpoint.poll_timeout().map(|t| (t.saturating_duration_since(self.base), i))
            })
            .min();
        let deliver = match (next_packet, next_timer) {
            (None, None) => return false,
            (Some(p), Some((t, _))) => p <= t,
            (Some(_), None) => true,
            (None, Some(_)) => false,
        };
        if deliver {
            let Some(Reverse(packet)) = self.queue.pop() else { return false };
            self.now = self.now.max(packet.at);
            if let Some(extra) = packet.to_switch {
                self.through_switch(packet, extra);
                return true;
            }
            let now = self.now();
            self.stats.delivered += 1;
            if let Some(c) = self.capture.as_mut() {
                c.push(Captured {
                    to: HostId(packet.to),
                    from: packet.from,
                    bytes: packet.bytes.clone(),
                });
            }
            let host = &mut self.hosts[packet.to];
            host.endpoint.handle_datagram(now, packet.from, &packet.bytes);
            host.max_granted_unreceived =
                host.max_granted_unreceived.max(host.endpoint.granted_unreceived());
            self.pump(packet.to);
        } else if let Some((t, i)) = next_timer {
            self.now = self.now.max(t);
            let now = self.now();
            self.hosts[i].endpoint.handle_timeout(now);
            self.pump(i);
        }
        true
    }

    /// Steps until `done` holds (true) or virtual time passes `limit` / nothing is
    /// pending (false).
    pub fn run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&mut Network) -> bool,
    ) -> bool {
        loop {
            if done(self) {
                return true;
            }
            if self.now > limit || !self.step() {
                return done(self);
            }
        }
    }

    /// Virtual time of the next packet arrival or timer, if any.
    pub fn next_due(&self) -> Option<Duration> {
        let next_packet = self.queue.peek().map(|Reverse(p)| p.at);
        let next_timer = self
            .hosts
            .iter()
            .filter_map(|h| {
                h.endpoint.poll_timeout().map(|t| t.saturating_duration_since(self.base))
            })
            .min();
        match (next_packet, next_timer) {
            (Some(p), Some(t)) => Some(p.min(t)),
            (p, t) => p.or(t),
        }
    }

    /// Processes every packet arrival and timer due at or before `until` (virtual
    /// time since creation), then moves the clock to `until`: unlike
    /// [`run_until`](Self::run_until), never steps past it.
    pub fn advance_to(&mut self, until: Duration) {
        while self.next_due().is_some_and(|t| t <= until) {
            if !self.step() {
                break;
            }
        }
        self.now = self.now.max(until);
    }

    /// Steps until nothing is pending or virtual time passes `limit`.
    pub fn run_idle(&mut self, limit: Duration) {
        while self.now <= limit && self.step() {}
    }

    /// Drains the host's transmit and event queues, answering requests if it has a
    /// responder, until both are empty.
    fn pump(&mut self, i: usize) {
        loop {
            let mut progressed = false;
            let now = self.now();
            let mut buf = std::mem::take(&mut self.buf);
            let mut out = Vec::new();
            take_datagrams(&mut self.hosts[i].endpoint, now, &mut buf, &mut out);
            progressed |= !out.is_empty();
            for (destination, datagram) in out {
                self.send(i, destination, datagram);
            }
            self.buf = buf;
            while let Some(event) = self.hosts[i].endpoint.poll_event() {
                progressed = true;
                if let Event::Request { session, id, payload } = &event {
                    if let Some(responder) = self.hosts[i].responder.as_mut() {
                        let response = responder(payload);
                        // Like the `smt` crate: a request that cannot be answered (the
                        // response is too large, the key is spent) is abandoned, so the
                        // client's RPC ends by timeout instead of waiting forever.
                        let endpoint = &mut self.hosts[i].endpoint;
                        if endpoint.respond(now, *session, *id, &response).is_err() {
                            endpoint.abandon_request(*session, *id);
                        }
                    }
                }
                self.hosts[i].events.push((self.now, event));
            }
            if !progressed {
                break;
            }
        }
    }

    fn send(&mut self, from: usize, to_addr: SocketAddr, bytes: Vec<u8>) {
        self.stats.sent += 1;
        let from_addr = self.hosts[from].addr;
        let filtered = match self.drop_filter.as_mut() {
            Some(f) => f(HostId(from), to_addr, &bytes),
            None => false,
        };
        if let Some(sends) = self.sends.as_mut() {
            sends.push(Sent {
                at: self.now,
                from: HostId(from),
                to: to_addr,
                bytes: bytes.clone(),
                routable: self.by_addr.contains_key(&to_addr),
                filtered,
            });
        }
        let Some(&to) = self.by_addr.get(&to_addr) else {
            self.stats.unroutable += 1;
            return;
        };
        let len = bytes.len();
        let tx =
            Duration::from_nanos((len as u64 * 8 * 1_000_000_000) / self.link.bandwidth_bps.max(1));
        let depart = self.now.max(self.hosts[from].uplink_free) + tx;
        self.hosts[from].uplink_free = depart;
        if filtered || (self.link.loss > 0.0 && self.rng.gen_bool(self.link.loss)) {
            self.stats.lost += 1;
            self.record(from_addr, to_addr, len, Fate::Lost, depart);
            return;
        }
        let copies = if self.link.duplicate > 0.0 && self.rng.gen_bool(self.link.duplicate) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for copy in 0..copies {
            let at_switch = depart + self.link.delay / 2;
            let mut extra = Duration::ZERO;
            if self.link.reorder > 0.0 && self.rng.gen_bool(self.link.reorder) {
                let jitter = self.link.reorder_jitter.as_nanos() as u64;
                extra = Duration::from_nanos(self.rng.gen_range(0..=jitter));
            }
            let fate = if copy == 0 { Fate::Delivered } else { Fate::Duplicated };
            self.record(from_addr, to_addr, len, fate, at_switch);
            self.seq += 1;
            self.queue.push(Reverse(InFlight {
                at: at_switch,
                seq: self.seq,
                to,
                from: from_addr,
                bytes: bytes.clone(),
                to_switch: Some(extra),
            }));
        }
    }

    /// A datagram reached the switch: it takes the receiver's downlink after what got
    /// there before it, then travels the rest of the way.
    fn through_switch(&mut self, packet: InFlight, extra: Duration) {
        let len = packet.bytes.len();
        let tx =
            Duration::from_nanos((len as u64 * 8 * 1_000_000_000) / self.link.bandwidth_bps.max(1));
        let start = packet.at.max(self.hosts[packet.to].downlink_free);
        let done = start + tx;
        self.hosts[packet.to].downlink_free = done;
        self.seq += 1;
        self.queue.push(Reverse(InFlight {
            at: done + self.link.delay / 2 + extra,
            seq: self.seq,
            to_switch: None,
            ..packet
        }));
    }

    fn record(&mut self, from: SocketAddr, to: SocketAddr, len: usize, fate: Fate, at: Duration) {
        let line = TraceEvent { at, from, to, len, fate };
        let text = format!("{:?}", line);
        for b in text.bytes() {
            self.trace_hash ^= u64::from(b);
            self.trace_hash = self.trace_hash.wrapping_mul(0x0100_0000_01b3);
        }
        if let Some(t) = self.trace.as_mut() {
            t.push(line);
        }
    }
}

/// Appends every datagram `endpoint` has to send now to `out` as (destination,
/// bytes), GSO batches cut into their segments; `buf` is the transmit buffer.
/// (Tests and in-process benchmarks that move datagrams by hand use it too.)
pub fn take_datagrams(
    endpoint: &mut Endpoint,
    now: Instant,
    buf: &mut Vec<u8>,
    out: &mut Vec<(SocketAddr, Vec<u8>)>,
) {
    while let Some(t) = endpoint.poll_transmit(now, buf) {
        let segment = t.segment_size.unwrap_or(t.size);
        out.extend(buf[..t.size].chunks(segment).map(|c| (t.destination, c.to_vec())));
    }
}
