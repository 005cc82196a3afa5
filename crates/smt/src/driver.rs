//! The I/O driver: one task per endpoint that owns the socket's receive side, runs
//! the engine's timers, and turns engine events into completed futures.
//!
//! The engine sits behind a mutex shared with the API. An API call (a `call`, a
//! `respond`) locks it, updates the engine and sends the resulting datagrams itself,
//! from the caller's task, so a request leaves without waking any other thread. The
//! driver wakes only for received datagrams and timers. With `busy_poll`, it never
//! sleeps: it polls the socket and yields, trading a core for wake-up latency.

use std::collections::HashMap;
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

/// A request delivered by the engine, waiting for the application.
pub(crate) type RawRequest = (SessionHandle, MessageId, Bytes);

pub(crate) struct Shared {
    pub state: Mutex<State>,
    pub socket: Socket,
    pub wake: Notify,
    pub local_addr: SocketAddr,
    pub busy_poll: bool,
}

pub(crate) struct State {
    pub engine: Engine,
    pub calls: HashMap<(SessionHandle, MessageId), oneshot::Sender<Result<Bytes>>>,
    pub connects: HashMap<SessionHandle, oneshot::Sender<Result<()>>>,
    /// `None` after shutdown, which ends every `accept`.
    pub requests: Option<mpsc::UnboundedSender<RawRequest>>,
    /// Why recently closed sessions ended, for clear errors on later calls.
    pub closed: HashMap<SessionHandle, smt_proto::engine::RpcError>,
    /// The deadline the driver is sleeping until.
    pub armed: Option<Instant>,
    /// A batch the socket refused with WouldBlock, sent when it is writable again.
    pending: Option<(SocketAddr, Option<usize>, Vec<u8>)>,
    buf: Vec<u8>,
    pub shutdown: bool,
}

impl State {
    pub fn new(engine: Engine, requests: mpsc::UnboundedSender<RawRequest>) -> State {
        State {
            engine,
            calls: HashMap::new(),
            connects: HashMap::new(),
            requests: Some(requests),
            closed: HashMap::new(),
            armed: None,
            pending: None,
            buf: Vec::with_capacity(RECV_BUF),
            shutdown: false,
        }
    }

    /// Sends everything the engine has queued, then delivers its events.
    pub fn drive(&mut self, shared: &Shared) {
        self.flush(shared);
        self.dispatch();
    }

    fn flush(&mut self, shared: &Shared) {
        if let Some((destination, segment_size, bytes)) = self.pending.take() {
            let sent = send(shared, destination, segment_size, &bytes);
            if sent < bytes.len() {
                self.pending = Some((destination, segment_size, bytes[sent..].to_vec()));
                return;
            }
        }
        let now = Instant::now();
        let mut buf = std::mem::take(&mut self.buf);
        while let Some(t) = self.engine.poll_transmit(now, &mut buf) {
            let sent = send(shared, t.destination, t.segment_size, &buf[..t.size]);
            if sent < t.size {
                self.pending = Some((t.destination, t.segment_size, buf[sent..t.size].to_vec()));
                break;
            }
        }
        self.buf = buf;
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
                        let _ = tx.send(Err(reason.clone().into()));
                    }
                    if self.closed.len() >= 4096 {
                        self.closed.clear();
                    }
                    self.closed.insert(session, reason);
                }
                _ => {}
            }
        }
    }

    /// Tells the driver to re-arm its timer if the engine now needs it earlier.
    pub fn nudge(&mut self, shared: &Shared) {
        let wanted = self.engine.poll_timeout();
        let earlier = match (wanted, self.armed) {
            (Some(w), Some(a)) => w < a,
            (Some(_), None) => true,
            _ => false,
        };
        if earlier || self.pending.is_some() {
            shared.wake.notify_one();
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
    pub fn lock(&self) -> MutexGuard<'_, State> {
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
                    let mut state = shared.lock();
                    for datagram in &received {
                        state.engine.handle_datagram(
                            now,
                            datagram.from,
                            &storage[datagram.range.clone()],
                        );
                    }
                    state.drive(&shared);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // ICMP errors (e.g. a peer's port closed) surface here; they are
                // not fatal to the endpoint.
                Err(e) => trace!(error = %e, "recv error"),
            }
        }
        let (deadline, pending, done) = {
            let mut state = shared.lock();
            state.engine.handle_timeout(Instant::now());
            state.drive(&shared);
            let deadline = state.engine.poll_timeout();
            state.armed = deadline;
            let idle = !state.engine.has_transmit() && state.pending.is_none();
            (deadline, state.pending.is_some(), state.shutdown && idle)
        };
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
