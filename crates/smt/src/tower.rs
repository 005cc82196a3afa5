//! [tower](https://docs.rs/tower) integration (feature `tower`): a [`Session`] is a
//! `Service<Bytes>`, so the tower middleware (timeouts, retries, concurrency limits,
//! load balancing) composes over SMT calls; and [`Endpoint::serve_service`] answers
//! requests with a `Service<Request>` under a concurrency limit.
//!
//! A session is always ready while it lives: calls need no reservation, SMT's own
//! flow control works per message. Once the session has ended, `poll_ready` returns
//! the error, which is how a balancer learns to drop it.
//!
//! ```no_run
//! # async fn demo(sessions: Vec<smt::Session>) -> Result<(), tower::BoxError> {
//! use std::time::Duration;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! // Power-of-two-choices over sessions to several servers, by pending calls.
//! let loaded = sessions.into_iter().map(|s| {
//!     tower::load::PendingRequests::new(s, tower::load::CompleteOnResponse::default())
//! });
//! let balanced = tower::balance::p2c::Balance::new(tower::discover::ServiceList::new(loaded));
//! let client = ServiceBuilder::new()
//!     .concurrency_limit(64)
//!     .timeout(Duration::from_secs(1))
//!     .service(balanced);
//! let reply = client.oneshot(bytes::Bytes::from_static(b"ping")).await?;
//! # let _ = reply;
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tower::{Service, ServiceExt};

use crate::error::{Error, Result};
use crate::serve::Request;
use crate::{Endpoint, Session};

/// The future of a call made through [`Service::call`] on a [`Session`].
pub type CallFuture = Pin<Box<dyn Future<Output = Result<Bytes>> + Send + 'static>>;

impl Service<Bytes> for Session {
    type Response = Bytes;
    type Error = Error;
    type Future = CallFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        if self.has_ended() {
            return Poll::Ready(Err(Error::SessionClosed));
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Bytes) -> CallFuture {
        let session = self.clone();
        Box::pin(async move { session.call(request).await })
    }
}

impl Endpoint {
    /// Answers every request with `service` until the endpoint closes, with at most
    /// `max_in_flight` requests being served at once (more wait in SMT's receive
    /// queue, whose memory limits then push back on clients). Each request is served
    /// on a task of its own, after `poll_ready`. A request whose service call fails
    /// is dropped unanswered (SMT has no error response: the client's call fails by
    /// its timeout), and the error is logged at debug level; answer with an
    /// application-level error message instead where clients must learn the reason.
    ///
    /// While this runs, [`accept`](Endpoint::accept) receives nothing.
    pub async fn serve_service<S>(&self, service: S, max_in_flight: usize) -> Result<()>
    where
        S: Service<Request> + Clone + Send + 'static,
        S::Response: Into<Bytes>,
        S::Error: Into<tower::BoxError>,
        S::Future: Send + 'static,
    {
        if max_in_flight == 0 {
            return Err(Error::Config("serve_service needs max_in_flight of at least 1".into()));
        }
        let limit = Arc::new(tokio::sync::Semaphore::new(max_in_flight));
        let mut service = service;
        loop {
            let permit = match limit.clone().acquire_owned().await {
                Ok(permit) => permit,
                Err(_) => return Ok(()), // the semaphore is never closed
            };
            let Some(incoming) = self.accept().await else { return Ok(()) };
            let ready = match service.ready().await {
                Ok(ready) => ready,
                Err(error) => {
                    let error: tower::BoxError = error.into();
                    tracing::debug!(%error, "service not ready: request dropped");
                    continue;
                }
            };
            let request = Request::new(self.shared(), &incoming);
            let response = ready.call(request);
            tokio::spawn(async move {
                match response.await {
                    Ok(bytes) => {
                        if let Err(error) = incoming.respond(bytes) {
                            tracing::debug!(%error, "response not sent");
                        }
                    }
                    Err(error) => {
                        let error: tower::BoxError = error.into();
                        tracing::debug!(%error, "service failed: request dropped");
                    }
                }
                drop(permit);
            });
        }
    }
}
