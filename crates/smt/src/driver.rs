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
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use smt_proto::engine::{Endpoint as Engine, Event, SessionHandle};
use smt_proto::wire::MessageId;
use tokio::sync::{mpsc, oneshot, Notify};
use tracing::{debug, trace};

use crate::error::Result;
use crate::socket::{Received, Socket, RECV_BUF};

/// Datagram buffers (of RECV_BUF bytes each) the driver receives into.
const RECV_SLOTS: usize = 32;
/// Receive batches handled before timers get a turn.
const MAX_BATCHES_PER_ROUND: usize = 16;

/// A request delivered by the engine, waiting for the application. The engine
/// charges its bytes against its memory limits until the application answers or
/// drops it, so the queue of these is bounded by those limits.
pub(crate) type RawRequest = (SessionHandle, MessageId, Bytes);

pub(crate) struct Shared {
    pub state: Mutex<State>,
    pub socket: Socket,
    pub wake: Notify,
    pub local_addr: SocketAddr,
    pub busy_poll: bool,
}

/// One batch of datagrams for one destination (GSO segments if `segment_size`).
struct Batch {
    destination: SocketAddr,
    segment_size: Option<usize>,
    bytes: Vec<u8>,
}

/// Datagrams taken from the engine under the lock, to be sent after releasing it.
#[must_use = "an outbox holds datagrams that must be sent"]
pub(crate) struct Outbox(Vec<Batch>);

impl Outbox {
    /// Sends every batch. What the socket refuses (its buffer is full) goes back to
    /// the state, and the driver sends it once the socket is writable again.
    pub(crate) fn send(self, shared: &Shared) {
        let mut batches = self.0.into_iter();
        while let Some(batch) = batches.next() {
            let sent = send(shared, batch.destination, batch.segment_size, &batch.bytes);
            if sent < batch.bytes.len() {
                let rest = Batch { bytes: batch.bytes[sent..].to_vec(), ..batch };
                let mut state = shared.lock();
                state.pending.push_back(rest);
                state.pending.extend(batches);
                drop(state);
                shared.wake.notify_one();
                return;
            }
        }
    }
}

pub(crate) struct State {
    pub engine: Engine,
    pub calls: HashMap<(SessionHandle, MessageId), oneshot::Sender<Result<Bytes>>>,
    pub connects: HashMap<SessionHandle, oneshot::Sender<Result<()>>>,
    /// `None` after shutdown, which ends every `accept`.
    pub requests: Option<mpsc::UnboundedSender<RawRequest>>,
    /// The deadline the driver is sleeping until.
    pub armed: Option<Instant>,
    /// Batches the socket refused with WouldBlock, sent when it is writable again.
    pending: VecDeque<Batch>,
    pub shutdown: bool,
}

impl State {
    pub(crate) fn new(engine: Engine, requests: mpsc::UnboundedSender<RawRequest>) -> State {
        State {
            engine,
            calls: HashMap::new(),
            connects: HashMap::new(),
            requests: Some(requests),
            armed: None,
            pending: VecDeque::new(),
            shutdown: false,
        }
    }

    /// Takes everything the engine queued for sending and delivers its events. Send
    /// the returned outbox after releasing the lock.
    pub(crate) fn drive(&mut self) -> Outbox {
        let now = Instant::now();
        let mut batches = Vec::new();
        let mut buf = Vec::new();
        while let Some(t) = self.engine.poll_transmit(now, &mut buf) {
            buf.truncate(t.size);
            batches.push(Batch {
                destination: t.destination,
                segment_size: t.segment_size,
                bytes: std::mem::take(&mut buf),
            });
        }
        self.dispatch();
        Outbox(batches)
    }

    fn dispatch(&mut self) {
        while let Some(event) = self.engine.poll_event() {
            match event {
                Event::Request { session, id, payload } => {
                    let delivered = match &self.requests {
                        Some(tx) => tx.send((session, id, Bytes::from(payload))).is_ok(),
                        None => false,
                    };
                    if !delivered {
                        // Nobody accepts requests on this endpoint.
                        self.engine.abandon_request(session, id);
                    }
                }
                Event::Response { session, id, payload } => {
                    if let Some(tx) = self.calls.remove(&(session, id)) {
                        let _ = tx.send(Ok(Bytes::from(payload)));
                    }
                }
                Event::RpcFailed { session, id, error } => {
                    if let Some(tx) = self.calls.remove(&(session, id)) {
                        let _ = tx.send(Err(error.into()));
                    }
                }
                Event::SessionEstablished { session } => {
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
            let sent = send(shared, batch.destination, batch.segment_size, &batch.bytes);
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
) -> usize {
    match shared.socket.send(destination, segment_size, contents) {
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
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock is a bug; the state is still consistent
        // enough to shut down, so recover the guard rather than propagate poison.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The driver task. Ends after shutdown once nothing remains to send.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut storage = vec![0u8; RECV_SLOTS * RECV_BUF];
    let mut received: Vec<Received> = Vec::with_capacity(RECV_SLOTS * 4);
    loop {
        // Receive what is available, outside the lock.
        for _ in 0..MAX_BATCHES_PER_ROUND {
            received.clear();
            match shared.socket.recv(&mut storage, &mut received) {
                Ok(()) => {
                    let now = Instant::now();
                    let outbox = {
                        let mut state = shared.lock();
                        for datagram in &received {
                            state.engine.handle_datagram(
                                now,
                                datagram.from,
                                &storage[datagram.range.clone()],
                            );
                        }
                        state.drive()
                    };
                    outbox.send(&shared);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // ICMP errors (e.g. a peer's port closed) surface here; they are
                // not fatal to the endpoint.
                Err(e) => trace!(error = %e, "recv error"),
            }
        }
        let (outbox, deadline, pending, done) = {
            let mut state = shared.lock();
            state.flush_pending(&shared);
            state.engine.handle_timeout(Instant::now());
            let outbox = state.drive();
            let deadline = state.engine.poll_timeout();
            state.armed = deadline;
            let pending = !state.pending.is_empty();
            let idle = !state.engine.has_transmit() && !pending && outbox.0.is_empty();
            (outbox, deadline, pending, state.shutdown && idle)
        };
        outbox.send(&shared);
        if done {
            debug!("driver finished");
            return;
        }
        if shared.busy_poll {
            tokio::task::yield_now().await;
            continue;
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
            _ = shared.wake.notified() => {}
            r = shared.socket.writable(), if pending => { if r.is_err() { return; } }
        }
    }
}
