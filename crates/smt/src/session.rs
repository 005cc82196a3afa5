//! Sessions (client side: make calls) and incoming requests (server side: respond).

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use smt_proto::engine::{CallError, SessionHandle};
use smt_proto::wire::MessageId;
use tokio::sync::oneshot;

use crate::driver::{Shared, State};
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};

/// Messages up to this size are sealed while holding the engine lock; larger ones
/// are sealed outside it, on the calling task's core, so that big messages neither
/// block the driver nor each other (each message has its own sequence space).
pub(crate) const SEAL_INLINE_MAX: usize = 64 * 1024;

/// An established SMT session with one peer. Clone it freely; many calls may be in
/// flight at once and complete in any order, without head-of-line blocking.
///
/// ```no_run
/// # async fn demo(endpoint: smt::Endpoint) -> Result<(), smt::Error> {
/// let session = endpoint.connect("127.0.0.1:4433".parse().unwrap(), "localhost").await?;
/// let (a, b) = tokio::join!(session.call("first"), session.call(vec![0u8; 1 << 20]));
/// assert_eq!(a?, "first");
/// assert_eq!(b?.len(), 1 << 20);
/// # Ok(()) }
/// ```
///
/// A session opened with [`Endpoint::connect`] is closed (and the peer told) when
/// the last clone of its `Session` is dropped; one from
/// [`Endpoint::install_session`] or [`IncomingRequest::session`] lives until
/// [`close`](Session::close)d or the endpoint closes.
#[derive(Clone)]
pub struct Session {
    endpoint: Endpoint,
    handle: SessionHandle,
    peer: SocketAddr,
    /// Shared by the clones of a connected session; the last one closes it.
    _owner: Option<std::sync::Arc<CloseOnLastDrop>>,
}

/// Closes a connected session when the last handle to it goes.
struct CloseOnLastDrop {
    endpoint: Endpoint,
    handle: SessionHandle,
}

impl Drop for CloseOnLastDrop {
    fn drop(&mut self) {
        let shared = self.endpoint.shared();
        let mut state = shared.lock();
        if state.shutdown || state.engine.session_info(self.handle).is_none() {
            return; // already ended
        }
        state.engine.close_session(Instant::now(), self.handle);
        shared.flush(state);
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("peer", &self.peer).field("handle", &self.handle.0).finish()
    }
}

/// The error for a refused engine operation: after shutdown, "no such session"
/// means the endpoint is closed.
fn call_error(state: &State, e: CallError) -> Error {
    match e {
        CallError::UnknownSession if state.shutdown => Error::EndpointClosed,
        e => e.into(),
    }
}

impl Session {
    pub(crate) fn new(endpoint: Endpoint, handle: SessionHandle, peer: SocketAddr) -> Session {
        Session { endpoint, handle, peer, _owner: None }
    }

    /// A handle whose last clone closes the session (for `Endpoint::connect`).
    pub(crate) fn owned(endpoint: Endpoint, handle: SessionHandle, peer: SocketAddr) -> Session {
        let owner = CloseOnLastDrop { endpoint: endpoint.clone(), handle };
        Session { endpoint, handle, peer, _owner: Some(std::sync::Arc::new(owner)) }
    }

    /// Sends `request` and waits for the response. Fails with a precise [`Error`]:
    /// [`Error::Timeout`] if the server stays silent, [`Error::PeerReset`] if it
    /// restarted, [`Error::MessageTooLarge`], [`Error::SessionClosed`], ...
    pub async fn call(&self, request: impl Into<Bytes>) -> Result<Bytes> {
        let started = Instant::now();
        let request = request.into();
        let shared = self.endpoint.shared();
        let (tx, rx) = oneshot::channel();
        let id = if request.len() <= SEAL_INLINE_MAX {
            let mut state = shared.lock();
            let id = state
                .engine
                .call(Instant::now(), self.handle, &request)
                .map_err(|e| call_error(&state, e))?;
            state.calls.insert((self.handle, id), tx);
            state.nudge(shared);
            shared.flush_soon(state);
            id
        } else {
            let prepared = {
                let mut state = shared.lock();
                state
                    .engine
                    .begin_call(self.handle, request.len())
                    .map_err(|e| call_error(&state, e))?
            };
            let wire = shared.crypto.seal(&prepared, &request)?;
            let mut state = shared.lock();
            let id = prepared.id;
            state
                .engine
                .finish(Instant::now(), prepared, wire)
                .map_err(|e| call_error(&state, e))?;
            state.calls.insert((self.handle, id), tx);
            state.nudge(shared);
            shared.flush_soon(state);
            id
        };
        // Dropping this future before it completes abandons the RPC.
        let mut guard = CancelOnDrop { shared, session: self.handle, id, armed: true };
        let result = if shared.busy_poll {
            BusyWait { shared, rx }.await
        } else {
            rx.await.map_err(|_| Error::EndpointClosed)?
        };
        guard.armed = false;
        if result.is_ok() {
            shared.histograms.call_latency.record(started.elapsed());
        }
        result
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The peer's certificate chain (DER), if it presented one in the handshake.
    pub fn peer_certificates(&self) -> Option<Vec<Vec<u8>>> {
        let state = self.endpoint.shared().lock();
        state.engine.peer_certificates(self.handle).map(<[Vec<u8>]>::to_vec)
    }

    /// What the session has learnt about its path: the DATA packet size the path
    /// MTU allows, the measured grant round trip and the window and timeouts derived
    /// from it. `None` once the session has ended.
    pub fn path(&self) -> Option<crate::PathInfo> {
        let state = self.endpoint.shared().lock();
        state.engine.path_info(self.handle)
    }

    /// Whether the session has ended (closed by either side, or failed).
    #[cfg_attr(not(feature = "tower"), allow(dead_code))]
    pub(crate) fn has_ended(&self) -> bool {
        self.endpoint.shared().lock().engine.session_info(self.handle).is_none()
    }

    /// Whether this side initiated the session.
    pub fn is_client(&self) -> bool {
        self.endpoint.role_of(self.handle) == Some(smt_proto::engine::Role::Client)
    }

    /// Closes the session: the peer is told, outstanding calls fail with
    /// [`Error::SessionClosed`].
    pub fn close(&self) {
        let shared = self.endpoint.shared();
        let mut state = shared.lock();
        state.engine.close_session(Instant::now(), self.handle);
        shared.flush(state);
    }
}

/// A request received by a server, to be answered with [`respond`](Self::respond).
/// Dropping it unanswered frees its state; the client's call then fails by timeout.
pub struct IncomingRequest {
    endpoint: Endpoint,
    session: SessionHandle,
    id: MessageId,
    payload: Bytes,
    peer: SocketAddr,
    answered: bool,
    /// When the application got it (the start of the service time).
    received: Instant,
}

impl std::fmt::Debug for IncomingRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingRequest")
            .field("peer", &self.peer)
            .field("id", &self.id.get())
            .field("len", &self.payload.len())
            .finish()
    }
}

impl IncomingRequest {
    pub(crate) fn new(
        endpoint: Endpoint,
        session: SessionHandle,
        id: MessageId,
        payload: Bytes,
        peer: SocketAddr,
    ) -> Self {
        IncomingRequest {
            endpoint,
            session,
            id,
            payload,
            peer,
            answered: false,
            received: Instant::now(),
        }
    }

    /// The request's bytes.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The client's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Session, payload and peer, for building a [`Request`](crate::Request) view.
    #[cfg_attr(not(feature = "tower"), allow(dead_code))]
    pub(crate) fn parts(&self) -> (SessionHandle, Bytes, SocketAddr) {
        (self.session, self.payload.clone(), self.peer)
    }

    /// The session the request came on (e.g. to read the client's certificate).
    pub fn session(&self) -> Session {
        Session::new(self.endpoint.clone(), self.session, self.peer)
    }

    /// Sends the response. Fails if the session ended meanwhile.
    pub fn respond(mut self, response: impl Into<Bytes>) -> Result<()> {
        let shared = self.endpoint.shared();
        shared.histograms.service_time.record(self.received.elapsed());
        respond_on(shared, self.session, self.id, response.into())?;
        // Only now: if responding failed, dropping `self` abandons the request so the
        // client is not left waiting on a server that will never answer.
        self.answered = true;
        Ok(())
    }
}

/// Answers request `id` of `session` with `response`: small responses are sealed
/// under the lock, larger ones outside it (on the calling task's core).
pub(crate) fn respond_on(
    shared: &Shared,
    session: SessionHandle,
    id: MessageId,
    response: Bytes,
) -> Result<()> {
    if response.len() <= SEAL_INLINE_MAX {
        let mut state = shared.lock();
        state
            .engine
            .respond(Instant::now(), session, id, &response)
            .map_err(|e| call_error(&state, e))?;
        state.nudge(shared);
        shared.flush_soon(state);
    } else {
        let prepared = {
            let mut state = shared.lock();
            state
                .engine
                .begin_response(Instant::now(), session, id, response.len())
                .map_err(|e| call_error(&state, e))?
        };
        let wire = shared.crypto.seal(&prepared, &response)?;
        let mut state = shared.lock();
        state.engine.finish(Instant::now(), prepared, wire).map_err(|e| call_error(&state, e))?;
        state.nudge(shared);
        shared.flush_soon(state);
    }
    Ok(())
}

impl Drop for IncomingRequest {
    fn drop(&mut self) {
        if !self.answered {
            let mut state = self.endpoint.shared().lock();
            state.engine.abandon_request(self.session, self.id);
        }
    }
}

/// Abandons a call whose future was dropped before it completed: the engine frees
/// the RPC and tells the server (see `Endpoint::cancel_call` in smt-proto).
struct CancelOnDrop<'a> {
    shared: &'a Shared,
    session: SessionHandle,
    id: MessageId,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut state = self.shared.lock();
        if state.calls.remove(&(self.session, self.id)).is_some()
            && state.engine.cancel_call(self.session, self.id)
        {
            self.shared.flush_soon(state);
        }
    }
}

/// How many times a busy-polling call looks at the socket before letting other
/// tasks run.
const BUSY_SPINS: u32 = 1 << 14;

/// Waits for a call's response in busy-poll mode by polling the socket itself:
/// whoever holds the receive buffers (this call, another one, or the driver)
/// handles what arrives, so the response completes the call on this thread with no
/// hand-off, no system call but the receive, and no runtime in between.
struct BusyWait<'a> {
    shared: &'a Shared,
    rx: oneshot::Receiver<Result<Bytes>>,
}

impl std::future::Future for BusyWait<'_> {
    type Output = Result<Bytes>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<Bytes>> {
        use std::task::Poll;
        use tokio::sync::oneshot::error::TryRecvError;
        for _ in 0..BUSY_SPINS {
            match self.rx.try_recv() {
                Ok(result) => return Poll::Ready(result),
                Err(TryRecvError::Closed) => return Poll::Ready(Err(Error::EndpointClosed)),
                Err(TryRecvError::Empty) => {}
            }
            let shared = self.shared;
            if let Ok(mut receiver) = shared.receiver.try_lock() {
                shared.receive_once(&mut receiver, Instant::now());
            } else {
                std::hint::spin_loop();
            }
        }
        // Let other tasks (and the driver's timers) run, then spin again.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
