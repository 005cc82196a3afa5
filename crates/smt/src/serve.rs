//! Answering requests where they arrive: [`Endpoint::serve`].
//!
//! With a handler installed, the driver runs it on each request as soon as the
//! request is delivered, on the driver's own task: the handler's future is polled
//! once right there, and if it is ready (a handler that does not wait for anything)
//! the response is sealed and, together with every other response of the same
//! receive batch, sent in one system call. No other task or thread is involved.
//! A handler that does wait is moved to a task of its own and answers from there.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use smt_proto::engine::SessionHandle;
use smt_proto::wire::MessageId;

use crate::driver::{Outbox, Shared};
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::session::{respond_on, SEAL_INLINE_MAX};

type ResponseFuture = Pin<Box<dyn Future<Output = Bytes> + Send>>;

/// The handler `serve` installed, type-erased.
pub(crate) type Handler = Arc<dyn Fn(Request) -> ResponseFuture + Send + Sync>;

/// A request handed to a [`serve`](Endpoint::serve) handler; the handler's output is
/// its response.
pub struct Request {
    shared: Arc<Shared>,
    session: SessionHandle,
    payload: Bytes,
    peer: SocketAddr,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("peer", &self.peer)
            .field("len", &self.payload.len())
            .finish_non_exhaustive()
    }
}

impl Request {
    /// A view of `incoming` for a handler (the payload is shared, not copied).
    #[cfg(feature = "tower")]
    pub(crate) fn new(shared: &Shared, incoming: &crate::IncomingRequest) -> Request {
        let (session, payload, peer) = incoming.parts();
        // `shared.me` points at `shared` itself, which is alive: we borrow it.
        let shared = shared.me.upgrade().expect("a borrowed Shared is alive");
        Request { shared, session, payload, peer }
    }

    /// The request's bytes.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The request's bytes, taken.
    pub fn into_payload(self) -> Bytes {
        self.payload
    }

    /// The client's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The client's certificate chain (DER), if it presented one (mutual TLS).
    pub fn peer_certificates(&self) -> Option<Vec<Vec<u8>>> {
        let state = self.shared.lock();
        state.engine.peer_certificates(self.session).map(<[Vec<u8>]>::to_vec)
    }
}

impl Endpoint {
    /// Answers every request with `handler`'s output until the endpoint closes.
    ///
    /// The handler runs on the endpoint's I/O task the moment a request arrives, so
    /// a handler that answers without waiting costs no thread hand-off at all: the
    /// fastest way to serve (keep such handlers short, as they delay the endpoint's
    /// other work while they run). A handler that awaits something continues on a
    /// task of its own. While `serve` runs (until the endpoint closes, or the future
    /// is dropped), [`accept`](Endpoint::accept) receives nothing; a second `serve`
    /// on the same endpoint fails.
    ///
    /// ```no_run
    /// # async fn demo(server: smt::Endpoint) -> Result<(), smt::Error> {
    /// // An echo server.
    /// server.serve(|request| async move { request.into_payload() }).await
    /// # }
    /// ```
    pub async fn serve<F, Fut, R>(&self, handler: F) -> Result<()>
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: Into<Bytes>,
    {
        let handler: Handler = Arc::new(move |request| {
            let response = handler(request);
            Box::pin(async move { response.await.into() })
        });
        let shared = self.shared();
        let closed = shared.closed.notified();
        tokio::pin!(closed);
        closed.as_mut().enable();
        {
            let mut state = shared.lock();
            if state.shutdown {
                return Err(Error::EndpointClosed);
            }
            if state.handler.is_some() {
                return Err(Error::Config("serve is already running on this endpoint".into()));
            }
            state.handler = Some(handler);
        }
        // Requests go back to `accept` when this future ends or is dropped.
        let _uninstall = Uninstall(shared);
        closed.await;
        Ok(())
    }
}

/// Removes the handler `serve` installed.
struct Uninstall<'a>(&'a Shared);

impl Drop for Uninstall<'_> {
    fn drop(&mut self) {
        self.0.lock().handler = None;
    }
}

/// Runs the handler on the requests the last flush delivered, then sends every
/// response that was ready at once with one flush.
pub(crate) fn run_inline(shared: &Shared, outbox: &mut Outbox) {
    let requests = std::mem::take(&mut outbox.requests);
    let Some(me) = shared.me.upgrade() else { return };
    let (handler, peers) = {
        let mut state = shared.lock();
        let Some(handler) = state.handler.clone() else {
            // `serve` ended meanwhile: nobody will answer these.
            for (session, id, _) in requests {
                state.engine.abandon_request(session, id);
            }
            return;
        };
        let peers: Vec<SocketAddr> = requests
            .iter()
            .map(|(session, _, _)| {
                state.engine.session_info(*session).map_or(shared.local_addr, |(peer, _, _)| peer)
            })
            .collect();
        (handler, peers)
    };
    let mut ready: Vec<(SessionHandle, MessageId, Bytes)> = Vec::with_capacity(requests.len());
    let mut cx = Context::from_waker(Waker::noop());
    for ((session, id, payload), peer) in requests.into_iter().zip(peers) {
        let request = Request { shared: me.clone(), session, payload, peer };
        let started = Instant::now();
        let mut response = handler(request);
        match response.as_mut().poll(&mut cx) {
            Poll::Ready(bytes) if bytes.len() <= SEAL_INLINE_MAX => {
                shared.histograms.service_time.record(started.elapsed());
                ready.push((session, id, bytes))
            }
            // Large responses are sealed off the I/O task.
            Poll::Ready(bytes) => {
                shared.histograms.service_time.record(started.elapsed());
                let shared = me.clone();
                tokio::spawn(async move { answer(&shared, session, id, bytes) });
            }
            // The handler waits for something: it continues on a task of its own,
            // whose first poll registers the right waker.
            Poll::Pending => {
                let shared = me.clone();
                tokio::spawn(async move {
                    let bytes = response.await;
                    shared.histograms.service_time.record(started.elapsed());
                    answer(&shared, session, id, bytes);
                });
            }
        }
    }
    if ready.is_empty() {
        return;
    }
    let mut state = shared.lock();
    let now = Instant::now();
    for (session, id, bytes) in ready {
        if let Err(error) = state.engine.respond(now, session, id, &bytes) {
            tracing::debug!(%error, "response not sent");
            state.engine.abandon_request(session, id);
        }
    }
    shared.flush_with(state, outbox, now);
}

/// Answers from a task: the response, or, if that fails, gives the request up.
fn answer(shared: &Shared, session: SessionHandle, id: MessageId, bytes: Bytes) {
    if let Err(error) = respond_on(shared, session, id, bytes) {
        tracing::debug!(%error, "response not sent");
        shared.lock().engine.abandon_request(session, id);
    }
}
