//! One RPC's state, as an explicit state machine per side.
//!
//! A client RPC is [`ClientPhase::Queued`] while its session's unscheduled window is
//! full, [`ClientPhase::Requesting`] while its request goes out and nothing came back,
//! then [`ClientPhase::Receiving`] while the response arrives; it ends when the
//! response completes. A server RPC is [`ServerPhase::Receiving`] its request,
//! [`ServerPhase::InService`] once the request was delivered, [`ServerPhase::Sealing`]
//! while the application seals a large response outside the engine, then
//! [`ServerPhase::Responding`] until the client acknowledges the response.
//!
//! The messages inside (incoming and outgoing) feed the endpoint's scheduler indices;
//! only [`RpcTable`](super::rpc_table::RpcTable) hands out `&mut Rpc`, and it re-keys
//! those indices after every change, so nothing here updates a counter by hand.

use std::time::{Duration, Instant};

use super::event::Role;
use super::incoming::IncomingMessage;
use super::outgoing::OutgoingMessage;

/// How long an RPC may be silent before its peer is prodded, and how long it may go
/// without progress before it fails (the session's path sets both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeouts {
    pub resend_after: Duration,
    pub rpc_timeout: Duration,
    /// How long a client waits for a response, once its request is sent, before
    /// asking for it: the time its session expects the answers due before it to
    /// take (`Session::answer_after`), at least `resend_after`. Under heavy load
    /// answers take long without anything being lost, and asking sooner only draws
    /// retransmissions of responses already on their way.
    pub answer_after: Duration,
}

/// When the peer was last heard from and when the RPC last made progress.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Liveness {
    /// Last time the peer sent anything about this RPC (drives RESEND timing).
    pub last_heard: Instant,
    /// Last time the RPC made progress: new bytes beyond the most ever received, a
    /// larger grant, or BUSY for a delivered request. Only progress keeps an RPC
    /// alive, so peers that keep talking without getting anywhere (wrong keys, a
    /// request that was already run) still end in a timeout.
    pub last_progress: Instant,
    /// Last time we prodded the peer (RESEND, NEED_ACK, repeated GRANT).
    pub last_prod: Instant,
    /// The timeouts in force (refreshed as the session measures its path).
    pub timeouts: Timeouts,
}

impl Liveness {
    pub(crate) fn new(now: Instant, timeouts: Timeouts) -> Liveness {
        Liveness { last_heard: now, last_progress: now, last_prod: now, timeouts }
    }

    /// Everything happened just now (a message was queued or restarted).
    pub(crate) fn reset(&mut self, now: Instant) {
        *self = Liveness::new(now, self.timeouts);
    }
}

/// A client's RPC: its request, then the response arriving.
#[derive(Debug)]
pub(crate) enum ClientPhase {
    /// Nothing of the request was sent: the session already has as many unscheduled
    /// request bytes in flight as it may (`Config::max_unscheduled_in_flight`). It
    /// goes out, in call order, as earlier requests are answered. No timer runs: the
    /// server does not know of it, so there is nothing to ask and no silence to time.
    Queued { request: OutgoingMessage },
    /// The request is being sent, or was sent and nothing came back yet.
    Requesting { request: OutgoingMessage },
    /// Response bytes are arriving. The request is kept (for RPC_UNKNOWN restarts)
    /// until the response's first record authenticates, which proves the server had
    /// the whole request; a forged response packet cannot make it go earlier.
    Receiving { request: Option<OutgoingMessage>, response: Box<IncomingMessage> },
}

#[derive(Debug)]
pub(crate) struct ClientRpc {
    pub phase: ClientPhase,
    /// How often the request was restarted after RPC_UNKNOWN, and when last.
    /// Restarts back off exponentially so a server that keeps refusing the request
    /// (too large, out of memory) is not flooded until the RPC times out.
    pub restarts: u32,
    pub last_restart: Instant,
    /// When the call was made: a response that arrives before any restart gives the
    /// session a sample of its answer pace.
    pub called_at: Instant,
    /// When the last byte of the request first went out (the answer is awaited
    /// from then on).
    pub request_sent: Option<Instant>,
    /// Whether a loss recovery touched this RPC: the client asked the server about
    /// it (for its response, or parts of it) or sent part of its request again. Its
    /// answer time then says nothing about one answer's wait (Karn).
    pub recovered: bool,
    /// When the first packet of the response began the `Receiving` phase (a sample
    /// of the answer pace once the response authenticates).
    pub answer_began: Option<Instant>,
    /// How many RPCs of the session were already waiting for their responses when
    /// this call was made: its answer is expected about that many answers later.
    pub ahead: u32,
    /// Key generation the request was sealed with.
    pub tx_generation: u64,
    /// The largest response length over `max_message_len` that DATA announced. The
    /// length is not authenticated before the first record opens, so such packets are
    /// only dropped (one flipped bit must not fail the RPC); if the RPC then times
    /// out, this is the likelier reason and is reported instead of the timeout.
    pub oversized_response: Option<usize>,
    /// Whether the server told us it has the request's unscheduled bytes (BUSY or a
    /// GRANT): from then on they no longer count against the session's window.
    pub heard_back: bool,
}

/// Most doublings of the restart backoff: with `resend_after` of 3 ms, a request the
/// server keeps refusing is retried about every 100 ms, not ever more rarely (a full
/// server that frees memory should see the retry soon).
const MAX_BACKOFF_DOUBLINGS: u32 = 5;
/// Most doublings of the silence before an unauthenticated incoming message is
/// prodded again (768 ms with the defaults): a genuine message authenticates long
/// before, and a forged one, which lives `rpc_timeout` (2 s), then draws about nine
/// RESENDs in its life instead of one every 96 ms.
const MAX_UNPROVEN_DOUBLINGS: u32 = 8;

impl ClientRpc {
    /// How long after a restart the next one may happen (and the response be asked
    /// for): doubling with each restart, from `resend_after`, at most 32 times it.
    pub(crate) fn restart_backoff(&self, resend_after: Duration) -> Duration {
        resend_after * 2u32.pow(self.restarts.min(MAX_BACKOFF_DOUBLINGS))
    }
}

/// A server's RPC: the request arriving, the application working, the response.
#[derive(Debug)]
pub(crate) enum ServerPhase {
    Receiving {
        request: IncomingMessage,
    },
    /// The request was delivered; the application owes a response. `charge` bytes
    /// of the request's payload count against the memory limits until it answers,
    /// so requests queued for the application are bounded like incomplete ones.
    InService {
        charge: usize,
    },
    /// The application began a response (`begin_response`) and is sealing it.
    Sealing,
    /// The response is being sent, or was sent and awaits the client's ACK.
    Responding {
        response: OutgoingMessage,
    },
}

#[derive(Debug)]
pub(crate) struct ServerRpc {
    pub phase: ServerPhase,
    /// Key generation the response was sealed with.
    pub tx_generation: u64,
}

#[derive(Debug)]
pub(crate) enum RpcState {
    Client(ClientRpc),
    Server(ServerRpc),
}

/// One RPC of one session.
#[derive(Debug)]
pub(crate) struct Rpc {
    pub live: Liveness,
    pub state: RpcState,
}

/// What the RPC's timer should do when it fires (see [`Rpc::deadline`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prod {
    /// Receiving: RESEND the gaps below the grant, or repeat the GRANT.
    Incoming,
    /// Client whose request went out entirely: ask for the response.
    AskForResponse,
    /// Server whose response went out entirely: ask whether it arrived.
    NeedAck,
}

impl Rpc {
    /// A client RPC whose request is ready to go.
    /// `queued`: it waits for the session's unscheduled window (see
    /// [`ClientPhase::Queued`]).
    pub(crate) fn client(
        now: Instant,
        timeouts: Timeouts,
        request: OutgoingMessage,
        tx_generation: u64,
        ahead: u32,
        queued: bool,
    ) -> Rpc {
        let phase = match queued {
            true => ClientPhase::Queued { request },
            false => ClientPhase::Requesting { request },
        };
        Rpc {
            live: Liveness::new(now, timeouts),
            state: RpcState::Client(ClientRpc {
                phase,
                restarts: 0,
                last_restart: now,
                called_at: now,
                request_sent: None,
                recovered: false,
                answer_began: None,
                ahead,
                tx_generation,
                oversized_response: None,
                heard_back: false,
            }),
        }
    }

    /// A server RPC whose request begins to arrive.
    pub(crate) fn server(now: Instant, timeouts: Timeouts, request: IncomingMessage) -> Rpc {
        Rpc {
            live: Liveness::new(now, timeouts),
            state: RpcState::Server(ServerRpc {
                phase: ServerPhase::Receiving { request },
                tx_generation: 0,
            }),
        }
    }

    /// A server RPC whose request arrived whole and was delivered at once.
    pub(crate) fn delivered(now: Instant, timeouts: Timeouts, charge: usize) -> Rpc {
        Rpc {
            live: Liveness::new(now, timeouts),
            state: RpcState::Server(ServerRpc {
                phase: ServerPhase::InService { charge },
                tx_generation: 0,
            }),
        }
    }

    /// A client RPC's oversized response announcement, if any (see [`ClientRpc`]).
    pub(crate) fn oversized_response(&self) -> Option<usize> {
        match &self.state {
            RpcState::Client(c) => c.oversized_response,
            RpcState::Server(_) => None,
        }
    }

    pub(crate) fn role(&self) -> Role {
        match self.state {
            RpcState::Client(_) => Role::Client,
            RpcState::Server(_) => Role::Server,
        }
    }

    /// The message being received, if any.
    pub(crate) fn incoming(&self) -> Option<&IncomingMessage> {
        match &self.state {
            RpcState::Client(ClientRpc {
                phase: ClientPhase::Receiving { response, .. }, ..
            }) => Some(response),
            RpcState::Server(ServerRpc { phase: ServerPhase::Receiving { request }, .. }) => {
                Some(request)
            }
            _ => None,
        }
    }

    pub(crate) fn incoming_mut(&mut self) -> Option<&mut IncomingMessage> {
        match &mut self.state {
            RpcState::Client(ClientRpc {
                phase: ClientPhase::Receiving { response, .. }, ..
            }) => Some(response),
            RpcState::Server(ServerRpc { phase: ServerPhase::Receiving { request }, .. }) => {
                Some(request)
            }
            _ => None,
        }
    }

    /// The message being sent (and kept for retransmission), if any.
    pub(crate) fn outgoing(&self) -> Option<&OutgoingMessage> {
        match &self.state {
            RpcState::Client(ClientRpc { phase, .. }) => match phase {
                ClientPhase::Queued { request } | ClientPhase::Requesting { request } => {
                    Some(request)
                }
                ClientPhase::Receiving { request, .. } => request.as_ref(),
            },
            RpcState::Server(ServerRpc { phase: ServerPhase::Responding { response }, .. }) => {
                Some(response)
            }
            RpcState::Server(_) => None,
        }
    }

    pub(crate) fn outgoing_mut(&mut self) -> Option<&mut OutgoingMessage> {
        match &mut self.state {
            RpcState::Client(ClientRpc { phase, .. }) => match phase {
                ClientPhase::Queued { request } | ClientPhase::Requesting { request } => {
                    Some(request)
                }
                ClientPhase::Receiving { request, .. } => request.as_mut(),
            },
            RpcState::Server(ServerRpc { phase: ServerPhase::Responding { response }, .. }) => {
                Some(response)
            }
            RpcState::Server(_) => None,
        }
    }

    /// Whether this is a client request waiting for its session's window.
    pub(crate) fn queued(&self) -> bool {
        matches!(&self.state, RpcState::Client(ClientRpc { phase: ClientPhase::Queued { .. }, .. }))
    }

    /// `Some(remaining bytes)` while the RPC has bytes to transmit now (the sender's
    /// SRPT key); a queued request has none yet.
    pub(crate) fn ready_key(&self) -> Option<u32> {
        if self.queued() {
            return None;
        }
        self.outgoing().and_then(OutgoingMessage::ready_key)
    }

    /// Unscheduled request bytes this RPC has in flight: sent (or being sent) with
    /// no word back from the server yet. What the session's window counts.
    pub(crate) fn unscheduled_in_flight(&self) -> usize {
        match &self.state {
            RpcState::Client(ClientRpc {
                phase: ClientPhase::Requesting { request },
                heard_back: false,
                ..
            }) => request.unscheduled() as usize,
            _ => 0,
        }
    }

    /// Queued -> Requesting: the session's window has room for the request. Its
    /// silence and progress clocks start now (the wait was the session's, not the
    /// server's), and its answer is due after those of the `ahead` RPCs already out.
    pub(crate) fn released(mut self, now: Instant, ahead: u32) -> Rpc {
        if let RpcState::Client(client) = self.state {
            let phase = match client.phase {
                ClientPhase::Queued { request } => ClientPhase::Requesting { request },
                other => other,
            };
            self.state = RpcState::Client(ClientRpc { phase, ahead, ..client });
        }
        self.live.reset(now);
        self
    }

    /// DATA of the request went out: `retransmitted` if any of it was sent before,
    /// `whole` if the last byte has now been sent (the first time counts).
    pub(crate) fn request_sent(&mut self, now: Instant, whole: bool, retransmitted: bool) {
        if let RpcState::Client(client) = &mut self.state {
            client.recovered |= retransmitted;
            if whole {
                client.request_sent.get_or_insert(now);
            }
        }
    }

    /// A client whose response authenticated no longer needs its request: the
    /// server provably had all of it. (Not earlier: a forged response packet must
    /// not make the client unable to resend its request.)
    pub(crate) fn drop_answered_request(&mut self) {
        if let RpcState::Client(ClientRpc {
            phase: ClientPhase::Receiving { request, response },
            ..
        }) = &mut self.state
        {
            if response.authenticated() {
                *request = None;
            }
        }
    }

    /// Bytes of a delivered request held for the application (see `InService`).
    pub(crate) fn queued_charge(&self) -> usize {
        match self.state {
            RpcState::Server(ServerRpc { phase: ServerPhase::InService { charge }, .. }) => charge,
            _ => 0,
        }
    }

    /// Whether the application owes this RPC a response (it never times out then:
    /// its fate is the application's to decide).
    pub(crate) fn in_service(&self) -> bool {
        matches!(
            self.state,
            RpcState::Server(ServerRpc { phase: ServerPhase::InService { .. }, .. })
        )
    }

    /// What the timer would prod the peer with, if anything.
    pub(crate) fn prod(&self) -> Option<Prod> {
        if self.queued() {
            return None;
        }
        if self.incoming().is_some() {
            return Some(Prod::Incoming);
        }
        let out = self.outgoing()?;
        if out.ready_key().is_some() {
            return None; // still sending: the peer hears from us anyway
        }
        Some(match self.role() {
            Role::Client => Prod::AskForResponse,
            Role::Server => Prod::NeedAck,
        })
    }

    /// When the RPC's timer must next look at it: the progress timeout, or the end
    /// of the current silence (after which, if there is anything to prod the peer
    /// with, it is prodded). `None`: no timer needed (the application owes the
    /// response, or a queued request waits for its session's window). Looking at
    /// the end of every silence, even while there is nothing to prod with yet, keeps
    /// the deadline stable across an RPC's life, so it is armed about once instead
    /// of at every change of phase.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        if self.in_service() || self.queued() {
            return None;
        }
        let silence = self.live.last_heard.max(self.live.last_prod) + self.silence();
        Some(silence.min(self.expiry()))
    }

    /// When the RPC fails for lack of progress: `rpc_timeout` after its last
    /// progress, and, while the message it receives has not authenticated its first
    /// record, no later than `rpc_timeout` after its first packet. A genuine message
    /// authenticates within a few round trips; one that trickles in a new byte now
    /// and then without ever authenticating is forged, and must not hold its memory
    /// for as long as the trickle lasts.
    pub(crate) fn expiry(&self) -> Instant {
        let rpc_timeout = self.live.timeouts.rpc_timeout;
        let by_progress = self.live.last_progress + rpc_timeout;
        match self.incoming() {
            Some(inc) if !inc.authenticated() => match inc.began() {
                Some(began) => by_progress.min(began + rpc_timeout),
                None => by_progress,
            },
            _ => by_progress,
        }
    }

    /// For a client RPC, how many RPCs of its session were waiting when it was made.
    pub(crate) fn ahead(&self) -> Option<u32> {
        match &self.state {
            RpcState::Client(c) => Some(c.ahead),
            RpcState::Server(_) => None,
        }
    }

    /// How long the peer must be silent before this RPC prods it: `resend_after`,
    /// except for a server waiting for an ACK (below) and a client waiting for a
    /// response: it waits as long as its session expects its answer to take
    /// (`Timeouts::answer_after`), and once its request was restarted more than once
    /// (the server keeps refusing it, or loss is heavy) it asks no sooner than its
    /// restart backoff allows (asking sooner would only draw RPC_UNKNOWN replies it
    /// ignores during the backoff). One restart is what a lost request costs;
    /// backing off from the first would slow plain loss recovery.
    pub(crate) fn silence(&self) -> Duration {
        let resend_after = self.live.timeouts.resend_after;
        match &self.state {
            RpcState::Client(c) if matches!(c.phase, ClientPhase::Requesting { .. }) => {
                let answer_after = self.live.timeouts.answer_after.max(resend_after);
                if c.restarts >= 2 {
                    answer_after.max(c.restart_backoff(resend_after))
                } else {
                    answer_after
                }
            }
            // A response that went out whole waits for its ACK: each NEED_ACK that
            // drew no answer doubles the wait for the next (up to the restart cap).
            // The client asks for a response it misses on its own timer, so this
            // only decides how soon the server learns an ACK was lost; without the
            // backoff, thousands of responses whose ACKs queue behind requests on a
            // slow path would each draw a NEED_ACK every resend interval.
            RpcState::Server(_) if self.prod() == Some(Prod::NeedAck) => {
                let unanswered =
                    self.live.last_prod.saturating_duration_since(self.live.last_heard);
                unanswered.clamp(resend_after, resend_after * 2u32.pow(MAX_BACKOFF_DOUBLINGS))
            }
            // A message still to prove itself genuine: each prod that did not make
            // it authenticate doubles the wait for the next (see `unproven_backoff`).
            _ => match self.incoming() {
                Some(inc) => {
                    resend_after * 2u32.pow(inc.unproven_backoff().min(MAX_UNPROVEN_DOUBLINGS))
                }
                None => resend_after,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::buffers::Buffer;
    use crate::record::MessageLayout;

    fn request(len: usize) -> OutgoingMessage {
        let layout = MessageLayout::for_payload(len, 16384).unwrap();
        OutgoingMessage::new(layout, Buffer::from_vec(vec![0; layout.wire_len() as usize]), 1 << 20)
    }

    #[test]
    fn client_rpc_prods_only_once_its_request_is_sent() {
        let now = Instant::now();
        let resend = Duration::from_millis(3);
        let timeouts = Timeouts {
            resend_after: resend,
            rpc_timeout: Duration::from_secs(2),
            answer_after: resend,
        };
        let mut rpc = Rpc::client(now, timeouts, request(100), 0, 0, false);
        assert_eq!(rpc.prod(), None, "still sending");
        // The timer looks at the end of the silence either way.
        assert_eq!(rpc.deadline(), Some(now + resend));
        while rpc.outgoing_mut().unwrap().next_packet(1400).is_some() {}
        assert_eq!(rpc.prod(), Some(Prod::AskForResponse));
        assert_eq!(rpc.deadline(), Some(now + resend));
        // Hearing from the server pushes the deadline out.
        rpc.live.last_heard = now + resend;
        assert_eq!(rpc.deadline(), Some(now + 2 * resend));
        // Without progress, the RPC timeout comes first eventually.
        rpc.live.last_heard = now + Duration::from_secs(3);
        assert_eq!(rpc.deadline(), Some(now + Duration::from_secs(2)));
    }

    #[test]
    fn server_rpc_in_service_has_no_timer() {
        let now = Instant::now();
        let rpc = Rpc {
            live: Liveness::new(
                now,
                Timeouts {
                    resend_after: Duration::from_millis(3),
                    rpc_timeout: Duration::from_secs(2),
                    answer_after: Duration::from_millis(3),
                },
            ),
            state: RpcState::Server(ServerRpc {
                phase: ServerPhase::InService { charge: 10 },
                tx_generation: 0,
            }),
        };
        assert!(rpc.in_service());
        assert_eq!(rpc.deadline(), None);
        assert_eq!(rpc.queued_charge(), 10);
    }
}
