//! The I/O driver: one task per endpoint that owns the socket's receive side, runs
//! the engine's timers, and turns engine events into completed futures.
//!
//! The engine sits behind a mutex shared with the API. Whoever changes the engine
//! (an API call such as `call` or `respond`, or the driver after receiving) collects
//! the datagrams it queued into an [`Outbox`] while holding the lock and sends them
//! after releasing it, so system calls never run under the lock and a request leaves
//! from the caller's task without waking any other thread. The driver wakes only for
//! received datagrams, timers, and a socket that became writable after refusing a
//! batch. With `busy_poll`, it never sleeps: it polls the socket and yields, trading
//! a core for wake-up latency.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use smt_proto::engine::{Endpoint as Engine, Event, SessionHandle};
use smt_proto::wire::MessageId;
use tokio::sync::{mpsc, oneshot, Notify};
use tracing::{debug, trace};

use crate::error::Result;
use crate::socket::{OutBatch, Received, Socket, RECV_BUF};

/// Datagram buffers (of RECV_BUF bytes each) the driver receives into, over
/// several receive calls of at most [`RECV_SLOTS_PER_CALL`].
const RECV_SLOTS: usize = 64;
/// Buffers one receive call fills at most (quinn-udp's batch).
const RECV_SLOTS_PER_CALL: usize = quinn_udp::BATCH_SIZE;
/// Received datagrams up to this size are handled before larger ones of the same
/// batch (a 1 KiB request or response with its headers, and every control packet).
const SMALL_DATAGRAM: usize = 1500;

/// Datagram buffers a busy-polling receive uses.
const BUSY_RECV_SLOTS: usize = 4;
/// Receive batches handled before timers get a turn.
const MAX_BATCHES_PER_ROUND: usize = 16;

/// A request delivered by the engine, waiting for the application. The engine
/// charges its bytes against its memory limits until the application answers or
/// drops it, so the queue of these is bounded by those limits.
pub(crate) type RawRequest = (SessionHandle, MessageId, Bytes);

pub(crate) struct Shared {
    pub state: Mutex<State>,
    /// The receive buffers: the driver's, and in busy-poll mode also a waiting
    /// caller's, whoever gets them first (taken before `state`, never while holding it).
    pub receiver: Mutex<Receiver>,
    pub socket: Socket,
    pub wake: Notify,
    pub local_addr: SocketAddr,
    pub busy_poll: bool,
    /// Seals and opens the records of large messages.
    pub crypto: crate::CryptoPool,
    /// Someone left datagrams for a later flush and woke the driver to do it.
    pub flush_requested: AtomicBool,

    /// Notified (all waiters) when the endpoint shuts down.
    pub closed: Notify,
    /// Woken by the driver when a receive batch suggests more is arriving, so the
    /// helper tasks ([`run_receive_helper`]) take the next batches meanwhile.
    pub receive_helpers: Notify,
    /// How many helper tasks there are (0: the driver receives alone).
    pub receive_helper_count: usize,
    /// Receive batches the helpers handled (see `Metrics::helper_batches`).
    pub helper_batches: AtomicU64,
    /// This value itself, for the tasks the inline handler hands requests to.
    pub me: std::sync::Weak<Shared>,
    /// Call latency and service time (recorded without the state lock).
    pub histograms: crate::metrics::Histograms,
}

/// One batch of datagrams for one destination (GSO segments if `segment_size`).
struct Batch {
    destination: SocketAddr,
    segment_size: Option<usize>,
    /// The local address to send from: the one the peer sent to, on a socket bound
    /// to the unspecified address (a multi-homed server must answer from it).
    source: Option<IpAddr>,
    bytes: Vec<u8>,
}

/// Datagrams taken from the engine under the lock, to be sent after releasing it.
/// The driver keeps one across rounds, so its batch buffers are reused rather than
/// allocated (and page-faulted in) for every batch.
#[derive(Default)]
#[must_use = "an outbox holds datagrams that must be sent"]
pub(crate) struct Outbox {
    batches: Vec<Batch>,
    spare: Vec<Vec<u8>>,
    /// Requests for the inline handler (`Endpoint::serve`), to run after sending.
    pub(crate) requests: Vec<RawRequest>,
    /// Futures completed (and requests queued for `accept`) while filling this.
    completed: usize,
}

/// Bytes of datagrams taken from the engine per lock hold when flushing.
const FLUSH_CHUNK: usize = 64 * 1024;
/// Batch buffers an API-calling thread keeps for its next call.
const SPARE_BUFFERS: usize = 4;

/// Completions in one round below this are sent one call at a time (deferring pays
/// only when there is something to share datagrams with). Measured on loopback
/// (`smt-bench probe`, 2 vCPUs): 16 left most rounds of 16 calls in flight below the
/// threshold, one `sendmsg` per call (1 KiB x 16: 96k RPC/s); 4 pairs calls up from
/// rounds of 4 (123-136k RPC/s, 64 B x 8: 87k -> 106k, 64 B x 64 unchanged); 2 pairs
/// nothing (a burst of 2 or 3 sends its first call at once) and measured no better.
const MIN_BURST: usize = 4;

/// The futures the driver's last round completed on this thread, whose tasks are
/// still to call.
#[derive(Debug, Clone, Copy, Default)]
struct Burst {
    left: usize,
    size: usize,
    deferred: usize,
}

thread_local! {
    static BURST: std::cell::Cell<Burst> = const { std::cell::Cell::new(Burst { left: 0, size: 0, deferred: 0 }) };
    /// Batch buffers of API calls on this thread, reused from one call to the next.
    static SPARE: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Outbox {
    /// Sends every batch. What the socket refuses (its buffer is full) goes back to
    /// the state, and the driver sends it once the socket is writable again.
    fn send_all(&mut self, shared: &Shared) {
        let mut done = 0;
        while done < self.batches.len() {
            let views: Vec<OutBatch<'_>> = self.batches[done..]
                .iter()
                .map(|b| OutBatch {
                    destination: b.destination,
                    segment_size: b.segment_size,
                    contents: &b.bytes,
                    source: b.source,
                })
                .collect();
            let Some(result) = shared.socket.send_many(&views) else {
                self.send_one_by_one(shared);
                return;
            };
            match result {
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let mut state = shared.lock();
                    state.pending.extend(self.batches.drain(done..));
                    drop(state);
                    shared.wake.notify_one();
                    break;
                }
                // Other errors lose the datagrams; the protocol recovers.
                Err(e) => {
                    trace!(error = %e, "send failed");
                    done += 1;
                }
            }
        }
        self.recycle();
    }

    /// Sends batch by batch (native IP, where a batch may leave partly).
    fn send_one_by_one(&mut self, shared: &Shared) {
        let mut batches = self.batches.drain(..);
        while let Some(batch) = batches.next() {
            let sent =
                send(shared, batch.destination, batch.segment_size, &batch.bytes, batch.source);
            if sent < batch.bytes.len() {
                let rest = Batch { bytes: batch.bytes[sent..].to_vec(), ..batch };
                let mut state = shared.lock();
                state.pending.push_back(rest);
                state.pending.extend(batches);
                drop(state);
                shared.wake.notify_one();
                return;
            }
            let mut bytes = batch.bytes;
            bytes.clear();
            self.spare.push(bytes);
        }
    }

    /// Keeps the buffers of sent batches for the next round.
    fn recycle(&mut self) {
        for batch in self.batches.drain(..) {
            let mut bytes = batch.bytes;
            bytes.clear();
            self.spare.push(bytes);
        }
    }
}

pub(crate) struct State {
    pub engine: Engine,
    pub calls: HashMap<(SessionHandle, MessageId), oneshot::Sender<Result<Bytes>>>,
    pub connects: HashMap<SessionHandle, oneshot::Sender<Result<()>>>,
    /// `None` after shutdown, which ends every `accept`.
    pub requests: Option<mpsc::UnboundedSender<RawRequest>>,
    /// The inline request handler, while `Endpoint::serve` runs.
    pub handler: Option<crate::serve::Handler>,
    /// The deadline the driver is sleeping until.
    pub armed: Option<Instant>,
    /// Batches the socket refused with WouldBlock, sent when it is writable again.
    pending: VecDeque<Batch>,
    pub shutdown: bool,
    /// Whether the socket is UDP (for the header overhead in path MTUs).
    over_udp: bool,
    /// For a socket bound to the unspecified address: the local address each peer
    /// last sent to, which replies to it leave from. Bounded by
    /// [`MAX_LOCAL_ADDRESSES`]: past it the map starts again (a peer whose entry was
    /// dropped gets the kernel's choice until its next datagram).
    local_ips: HashMap<SocketAddr, IpAddr>,
    /// Whether to fill `local_ips` (the socket is bound to the unspecified address).
    track_local_ips: bool,
}

/// Most peers whose local address a wildcard-bound endpoint remembers.
const MAX_LOCAL_ADDRESSES: usize = 65_536;

impl State {
    /// Remembers, for each sender, which local address it sent to.
    fn learn_local_ips(&mut self, received: &[Received]) {
        for d in received {
            let Some(local) = d.local else { continue };
            if self.local_ips.get(&d.from) != Some(&local) {
                if self.local_ips.len() >= MAX_LOCAL_ADDRESSES {
                    self.local_ips.clear();
                }
                self.local_ips.insert(d.from, local);
            }
        }
    }

    /// Replies leave from the address each peer sent to (for a socket bound to the
    /// unspecified address on a host with several addresses).
    pub(crate) fn track_local_addresses(&mut self) {
        self.track_local_ips = true;
    }

    pub(crate) fn new(
        engine: Engine,
        requests: mpsc::UnboundedSender<RawRequest>,
        over_udp: bool,
    ) -> State {
        State {
            engine,
            calls: HashMap::new(),
            connects: HashMap::new(),
            requests: Some(requests),
            handler: None,
            armed: None,
            pending: VecDeque::new(),
            shutdown: false,
            over_udp,
            local_ips: HashMap::new(),
            track_local_ips: false,
        }
    }

    /// Tells the engine the path MTU towards `peer`, unless it knows it already.
    /// (A few system calls on a throw-away socket, once per peer address.)
    pub(crate) fn learn_path(&mut self, peer: SocketAddr) {
        if self.engine.knows_path(peer.ip()) {
            return;
        }
        match crate::socket::max_datagram(peer, self.over_udp) {
            Some(max_datagram) => {
                debug!(%peer, max_datagram, "path MTU");
                self.engine.set_path_mtu(peer.ip(), max_datagram);
            }
            None => debug!(%peer, "path MTU unknown: default packet size"),
        }
    }

    /// Takes up to about `budget` bytes of datagrams the engine queued, and turns its
    /// events into completions. True if the engine has more to send.
    fn drive_into(&mut self, outbox: &mut Outbox, budget: usize, now: Instant) -> bool {
        let mut taken = 0;
        while taken < budget {
            let mut buf = outbox.spare.pop().unwrap_or_default();
            let Some(t) = self.engine.poll_transmit(now, &mut buf) else {
                outbox.spare.push(buf);
                break;
            };
            buf.truncate(t.size);
            taken += t.size;
            let source = self.local_ips.get(&t.destination).copied();
            outbox.batches.push(Batch {
                destination: t.destination,
                segment_size: t.segment_size,
                source,
                bytes: buf,
            });
        }
        // The tasks these events wake run on this thread (tokio schedules woken tasks
        // on the waking worker), after the driver yields.
        let events = self.engine.pending_events();
        if events >= MIN_BURST {
            BURST.with(|b| b.set(Burst { left: events, size: events, deferred: 0 }));
        }
        self.dispatch(outbox);
        self.engine.has_transmit()
    }

    /// Hands the engine's events to the futures and the request queue. (Done under
    /// the lock: a woken task then runs on this thread once it releases the lock.)
    fn dispatch(&mut self, outbox: &mut Outbox) {
        while let Some(event) = self.engine.poll_event() {
            match event {
                Event::Request { session, id, payload } if self.handler.is_some() => {
                    outbox.requests.push((session, id, payload));
                }
                Event::Request { session, id, payload } => {
                    outbox.completed += 1;
                    let delivered = match &self.requests {
                        Some(tx) => tx.send((session, id, payload)).is_ok(),
                        None => false,
                    };
                    if !delivered {
                        // Nobody accepts requests on this endpoint.
                        self.engine.abandon_request(session, id);
                    }
                }
                Event::Response { session, id, payload } => {
                    if let Some(tx) = self.calls.remove(&(session, id)) {
                        outbox.completed += 1;
                        let _ = tx.send(Ok(payload));
                    }
                }
                Event::RpcFailed { session, id, error } => {
                    if let Some(tx) = self.calls.remove(&(session, id)) {
                        outbox.completed += 1;
                        let _ = tx.send(Err(error.into()));
                    }
                }
                Event::SessionEstablished { session } => {
                    if let Some((peer, _, _)) = self.engine.session_info(session) {
                        self.learn_path(peer);
                    }
                    if let Some(tx) = self.connects.remove(&session) {
                        let _ = tx.send(Ok(()));
                    }
                }
                Event::SessionClosed { session, reason } => {
                    debug!(?session, %reason, "session closed");
                    if let Some(tx) = self.connects.remove(&session) {
                        let _ = tx.send(Err(reason.into()));
                    }
                }
                _ => {}
            }
        }
    }

    /// Tells the driver to re-arm its timer if the engine now needs it earlier.
    pub(crate) fn nudge(&mut self, shared: &Shared) {
        let wanted = self.engine.poll_timeout();
        let earlier = match (wanted, self.armed) {
            (Some(w), Some(a)) => w < a,
            (Some(_), None) => true,
            _ => false,
        };
        if earlier {
            shared.wake.notify_one();
        }
    }

    /// Sends the batches the socket refused earlier, while it accepts them. Called
    /// by the driver only, with the lock held: it is the rare slow path.
    fn flush_pending(&mut self, shared: &Shared) {
        while let Some(batch) = self.pending.pop_front() {
            let sent =
                send(shared, batch.destination, batch.segment_size, &batch.bytes, batch.source);
            if sent < batch.bytes.len() {
                self.pending.push_front(Batch { bytes: batch.bytes[sent..].to_vec(), ..batch });
                return;
            }
        }
    }
}

/// Sends a batch; returns how many of its bytes left (a prefix of whole segments).
fn send(
    shared: &Shared,
    destination: SocketAddr,
    segment_size: Option<usize>,
    contents: &[u8],
    source: Option<IpAddr>,
) -> usize {
    match shared.socket.send(destination, segment_size, contents, source) {
        Ok(sent) => sent,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
        // Other errors lose the datagrams; the protocol recovers.
        Err(e) => {
            trace!(error = %e, %destination, "send failed");
            contents.len()
        }
    }
}

impl Shared {
    /// Sends what the engine queued and completes what its events finished, in
    /// chunks: each chunk is taken under the lock and sent after releasing it, so no
    /// system call runs under the lock and the first datagrams leave while the
    /// engine prepares the next ones. Batch buffers are reused per thread.
    pub(crate) fn flush<'a>(&'a self, state: MutexGuard<'a, State>) {
        let mut outbox = Outbox::default();
        SPARE.with(|spare| std::mem::swap(&mut outbox.spare, &mut spare.borrow_mut()));
        self.flush_with(state, &mut outbox, Instant::now());
        outbox.spare.truncate(SPARE_BUFFERS);
        SPARE.with(|spare| std::mem::swap(&mut outbox.spare, &mut spare.borrow_mut()));
        self.answer_inline(&mut outbox);
    }

    /// After an API call (`call`, `respond`) changed the engine: sends now, unless
    /// the call comes from one of several tasks that the driver's last round woke on
    /// this thread and more of them are still to run here: then the datagrams wait,
    /// and leave together with those of half the burst (fewer datagrams and system
    /// calls, yet the first half is on its way, and being answered, while the second
    /// is still being prepared). Should the rest of the burst never come, the driver
    /// (woken once for this) sends them.
    pub(crate) fn flush_soon<'a>(&'a self, state: MutexGuard<'a, State>) {
        if self.busy_poll {
            // Busy-polling: latency first, nothing waits.
            self.flush(state);
            return;
        }
        let defer = BURST.with(|b| {
            let mut burst = b.get();
            if burst.left == 0 {
                return false;
            }
            burst.left -= 1;
            burst.deferred += 1;
            let defer = burst.left > 0 && burst.deferred < burst.size / 2;
            if !defer {
                burst.deferred = 0;
            }
            b.set(burst);
            defer
        });
        if defer {
            drop(state);
            if !self.flush_requested.swap(true, Ordering::AcqRel) {
                self.wake.notify_one();
            }
            return;
        }
        self.flush(state);
    }

    /// [`flush`](Self::flush) with the caller's outbox (the driver keeps one).
    pub(crate) fn flush_with<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        outbox: &mut Outbox,
        now: Instant,
    ) {
        outbox.completed = 0;
        loop {
            let more = state.drive_into(outbox, FLUSH_CHUNK, now);
            drop(state);
            outbox.send_all(self);
            if !more {
                break;
            }
            state = self.lock();
        }
    }

    /// The receive buffers (see [`Shared::receiver`]).
    pub(crate) fn lock_receiver(&self) -> MutexGuard<'_, Receiver> {
        self.receiver.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock is a bug; the state is still consistent
        // enough to shut down, so recover the guard rather than propagate poison.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Buffers for receiving and for what a receive round sends.
pub(crate) struct Receiver {
    storage: Vec<u8>,
    received: Vec<Received>,
    outbox: Outbox,
    /// Whether a batch this receiver takes may wake the receive helpers (the
    /// driver's does; a helper's own does not, or it would keep waking itself).
    wakes_helpers: bool,
}

impl Receiver {
    pub(crate) fn new() -> Receiver {
        Receiver {
            storage: vec![0u8; RECV_SLOTS * RECV_BUF],
            received: Vec::with_capacity(RECV_SLOTS * 4),
            outbox: Outbox::default(),
            wakes_helpers: true,
        }
    }

    fn for_helper() -> Receiver {
        Receiver { wakes_helpers: false, ..Receiver::new() }
    }
}

/// A receive batch of at least this many datagrams wakes a receive helper: the
/// peers are sending faster than one at a time, so the next batch is probably
/// arriving while this one is handled. A lone datagram (a ping-pong) does not,
/// which keeps an idle helper from costing the latency path a wake-up.
const HELPER_WAKE_DATAGRAMS: usize = 2;

/// What one receive call brought.
pub(crate) struct Round {
    /// Futures completed (tasks woken) by it.
    pub completed: usize,
    /// Whether the receive batch was full (more may be waiting).
    pub full: bool,
    /// Datagrams it received (each segment of a GRO batch counted).
    pub datagrams: usize,
}

impl Shared {
    /// Receives one batch, handles it, answers what the inline handler answers at
    /// once, and sends what that produced. `None` if nothing was waiting.
    pub(crate) fn receive_once(&self, rx: &mut Receiver, now: Instant) -> Option<Round> {
        rx.received.clear();
        // Busy polling receives a few datagrams per call: the call is repeated at
        // once anyway, and a short one notices an arrival sooner.
        let slots = if self.busy_poll { BUSY_RECV_SLOTS } else { RECV_SLOTS };
        // Drain the socket (up to `slots` buffers, in calls of at most a system
        // call's batch): a short message queued behind bulk data in the kernel then
        // waits only for that data to be copied out, not for it to be processed,
        // since small datagrams are handled first below.
        let mut used = 0;
        let mut full = false;
        while used < slots {
            let before = rx.received.len();
            let storage = &mut rx.storage[used * RECV_BUF..slots * RECV_BUF];
            match self.socket.recv(storage, &mut rx.received, self.busy_poll) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // ICMP errors (e.g. a peer's port closed) surface here; they are not
                // fatal to the endpoint.
                Err(e) => {
                    trace!(error = %e, "recv error");
                    if rx.received.is_empty() {
                        return Some(Round { completed: 0, full: true, datagrams: 0 });
                    }
                    break;
                }
            }
            let base = used * RECV_BUF;
            let mut end = 0;
            for d in &mut rx.received[before..] {
                d.range = d.range.start + base..d.range.end + base;
                end = end.max(d.range.end);
            }
            let taken = end.saturating_sub(base).div_ceil(RECV_BUF);
            let asked = (slots - used).min(RECV_SLOTS_PER_CALL);
            used += taken.max(1);
            if taken < asked {
                break; // the socket had less than a full batch: it is empty now
            }
            full = used >= slots;
        }
        if rx.received.is_empty() {
            return None;
        }
        if rx.wakes_helpers
            && self.receive_helper_count > 0
            && rx.received.len() >= HELPER_WAKE_DATAGRAMS
        {
            self.receive_helpers.notify_one();
        }
        let mut state = self.lock();
        // With receive helpers another task may have stamped the engine with a later
        // time while this one waited for the lock; time must not go back for it
        // (round-trip samples would read zero).
        let now = if self.receive_helper_count > 0 { Instant::now() } else { now };
        if state.track_local_ips {
            state.learn_local_ips(&rx.received);
        }
        // Small datagrams first (requests and responses that fit one packet, grants,
        // acknowledgements): CPU-level SRPT within the batch. If they completed
        // anything, it goes out before the bulk data is even copied.
        let small = |d: &&Received| d.range.len() <= SMALL_DATAGRAM;
        for datagram in rx.received.iter().filter(small) {
            state.engine.handle_datagram(now, datagram.from, &rx.storage[datagram.range.clone()]);
        }
        let mut completed = 0;
        if state.engine.pending_events() > 0 && rx.received.iter().any(|d| !small(&d)) {
            self.flush_with(state, &mut rx.outbox, now);
            completed += rx.outbox.completed;
            self.answer_inline(&mut rx.outbox);
            state = self.lock();
        }
        for datagram in rx.received.iter().filter(|d| !small(d)) {
            state.engine.handle_datagram(now, datagram.from, &rx.storage[datagram.range.clone()]);
        }
        // Records the batch completed are opened outside the lock, after what is
        // ready already went out: grants, and messages that arrived whole (small
        // ones) reach their tasks before the bulk crypto of large ones.
        let mut opening = state.engine.take_records_to_open();
        self.flush_with(state, &mut rx.outbox, now);
        completed += rx.outbox.completed;
        // Requests already delivered are answered before the bulk crypto too.
        self.answer_inline(&mut rx.outbox);
        if !opening.is_empty() {
            self.crypto.open(&mut opening);
            let mut state = self.lock();
            let now = Instant::now();
            state.engine.finish_opening(now, opening);
            self.flush_with(state, &mut rx.outbox, now);
            completed += rx.outbox.completed;
            self.answer_inline(&mut rx.outbox);
        }
        if !rx.wakes_helpers {
            // A helper's batch may have armed a timer (a RESEND, a grant) earlier than
            // the one the driver sleeps on.
            self.lock().nudge(self);
        }
        Some(Round { completed, full, datagrams: rx.received.len() })
    }

    /// Runs the inline handler (`Endpoint::serve`) on the requests a flush delivered.
    fn answer_inline(&self, outbox: &mut Outbox) {
        while !outbox.requests.is_empty() {
            crate::serve::run_inline(self, outbox);
        }
    }

    /// Runs due timers, sends what others left; `(deadline, pending, done)`.
    fn timers(&self, rx: &mut Receiver, now: Instant) -> (Option<Instant>, bool, bool) {
        let mut state = self.lock();
        state.flush_pending(self);
        state.engine.handle_timeout(now);
        let deadline = state.engine.poll_timeout();
        state.armed = deadline;
        let pending = !state.pending.is_empty();
        let idle = !state.engine.has_transmit() && !pending;
        let done = state.shutdown && idle;
        self.flush_with(state, &mut rx.outbox, now);
        // The flush may have taken requests a receive helper's batch delivered (events
        // go to whoever flushes first): answer them now, not after the driver's next
        // receive batch.
        self.answer_inline(&mut rx.outbox);
        (deadline, pending, done)
    }
}

/// A receive helper task (see [`crate::EndpointBuilder::receive_helpers`]): when the
/// driver wakes it, it takes receive batches from the socket as the driver does,
/// handling them, answering what the inline handler answers and sending what they
/// produce, until the socket is empty; then it waits to be woken again. Timers stay
/// with the driver. Batches of one socket are then handled on two threads at once:
/// the engine's lock serialises only the protocol steps, while record crypto, the
/// inline handler and the system calls of the two run in parallel. Ends when the
/// endpoint closes.
pub(crate) async fn run_receive_helper(shared: Arc<Shared>) {
    let closed = shared.closed.notified();
    tokio::pin!(closed);
    // Registered now, so a close before the first wait is not missed.
    closed.as_mut().enable();
    let mut rx = Receiver::for_helper();
    loop {
        // Disengaged: sleep until the driver sees traffic worth helping with.
        tokio::select! {
            _ = shared.receive_helpers.notified() => {}
            _ = &mut closed => return,
        }
        // Engaged: wait on the socket like the driver, until wake-ups keep finding
        // it drained or holding single datagrams (the driver alone keeps up again;
        // racing it for each datagram of a ping-pong would only add wake-ups).
        let mut idle_wakes = 0;
        // (Shutdown needs no check here: it notifies `closed`, enabled above.)
        while idle_wakes < HELPER_IDLE_WAKES {
            let mut datagrams = 0;
            for _ in 0..MAX_BATCHES_PER_ROUND {
                let Some(round) = shared.receive_once(&mut rx, Instant::now()) else { break };
                shared.helper_batches.fetch_add(1, Ordering::Relaxed);
                datagrams += round.datagrams;
                if round.completed > 0 && !round.full {
                    tokio::task::yield_now().await;
                }
            }
            idle_wakes = if datagrams >= HELPER_WAKE_DATAGRAMS { 0 } else { idle_wakes + 1 };
            tokio::select! {
                r = shared.socket.readable() => { if r.is_err() { return; } }
                _ = &mut closed => return,
            }
        }
    }
}

/// Wake-ups in a row that find fewer than [`HELPER_WAKE_DATAGRAMS`] datagrams after
/// which an engaged receive helper goes back to sleeping until the driver wakes it.
const HELPER_IDLE_WAKES: u32 = 16;

/// Idle spins of a busy-polling driver between yields to the runtime.
const BUSY_SPINS_PER_YIELD: u32 = 256;

/// The driver task. Ends after shutdown once nothing remains to send.
pub(crate) async fn run(shared: Arc<Shared>) {
    if shared.busy_poll {
        return run_busy(shared).await;
    }
    loop {
        // Receive what is available; answer what the inline handler can answer at
        // once, all of it in one send.
        for _ in 0..MAX_BATCHES_PER_ROUND {
            let round = {
                let mut rx = shared.lock_receiver();
                shared.receive_once(&mut rx, Instant::now())
            };
            let Some(round) = round else { break };
            // Futures were completed and the socket is probably drained: let their
            // tasks run (and send their next calls) before this task looks at the
            // socket and the timers again.
            if round.completed > 0 && !round.full {
                tokio::task::yield_now().await;
            }
        }
        // Timers, and whatever others left to send.
        let (deadline, pending, done) = {
            let mut rx = shared.lock_receiver();
            shared.timers(&mut rx, Instant::now())
        };
        if done {
            debug!("driver finished");
            return;
        }
        let sleep = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = shared.socket.readable() => { if r.is_err() { return; } }
            _ = sleep => {}
            _ = shared.wake.notified() => {
                if shared.flush_requested.swap(false, Ordering::AcqRel) {
                    // Let the other tasks woken by the last round add their calls;
                    // the next pass sends everything they left.
                    tokio::task::yield_now().await;
                    BURST.with(|b| b.set(Burst::default()));
                }
            }
            r = shared.socket.writable(), if pending => { if r.is_err() { return; } }
        }
    }
}

/// The busy-polling driver: spins on the socket without sleeping, reading the clock
/// once per turn, and yields to the runtime only when it woke other tasks or after
/// [`BUSY_SPINS_PER_YIELD`] turns without traffic (so that other tasks and the
/// runtime's own timers still run).
async fn run_busy(shared: Arc<Shared>) {
    let mut idle: u32 = 0;
    let mut deadline: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let round = {
            let mut rx = shared.lock_receiver();
            let round = shared.receive_once(&mut rx, now);
            // Timers only when due, or now and then (a call may have armed an
            // earlier one without telling anyone).
            if deadline.is_none_or(|d| now >= d) || idle % BUSY_SPINS_PER_YIELD == 0 {
                let (next, _, done) = shared.timers(&mut rx, now);
                if done {
                    debug!("driver finished");
                    return;
                }
                deadline = next;
            }
            round
        };
        match round {
            Some(round) if round.completed > 0 => {
                idle = 0;
                tokio::task::yield_now().await;
            }
            Some(_) => idle = 0,
            None => {
                idle = idle.wrapping_add(1);
                if idle % BUSY_SPINS_PER_YIELD == 0 {
                    tokio::task::yield_now().await;
                } else {
                    std::hint::spin_loop();
                }
            }
        }
    }
}
