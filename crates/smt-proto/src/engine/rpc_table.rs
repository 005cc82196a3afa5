//! Every RPC of an endpoint, with the indices and counters derived from them.
//!
//! The table owns the RPCs and is the only place that hands out `&mut Rpc`
//! ([`RpcTable::update`]). Before and after each change it takes the RPC's
//! *footprint* (its SRPT keys, granted-but-unreceived bytes, memory charges, and
//! timer deadline) and applies the difference to the indices: the sender's `ready`
//! set, the client's `queued` requests, the receiver's `grantable` set, the byte and message counters (endpoint-wide
//! and per session) and the timer queue. So the indices are right by construction:
//! a new kind of mutation cannot forget to update them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use super::event::SessionHandle;
use super::rpc::Rpc;
use crate::wire::MessageId;

/// Names an RPC: its session and message ID.
pub(crate) type RpcKey = (SessionHandle, MessageId);

/// SRPT order: fewest remaining bytes first, ties by session and ID.
type QueueKey = (u32, SessionHandle, MessageId);

/// Memory limits on what peers can make this endpoint hold.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub messages_per_session: usize,
    pub bytes_per_session: usize,
    pub bytes_total: usize,
}

/// What one session's RPCs hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SessionUsage {
    pub rpcs: usize,
    /// Incomplete incoming messages.
    pub incoming_messages: usize,
    /// Charges of incomplete incoming messages and of delivered, unanswered requests.
    pub incoming_bytes: usize,
    /// Unscheduled request bytes sent and not yet answered (the session's window).
    pub unscheduled_in_flight: usize,
    /// Client requests waiting for the window.
    pub queued_requests: usize,
}

/// Endpoint-wide totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub rpcs: usize,
    pub incoming_messages: usize,
    /// Charges of incomplete incoming messages.
    pub incoming_bytes: usize,
    /// Charges of delivered requests the application has not answered.
    pub queued_bytes: usize,
    pub outgoing_bytes: usize,
    pub granted_unreceived: u64,
}

/// The parts of an RPC the indices depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Footprint {
    ready: Option<u32>,
    /// A queued request: the unscheduled bytes it will put in flight.
    queued_request: Option<usize>,
    in_flight: usize,
    grant: Option<u32>,
    outstanding: u32,
    incoming: Option<usize>,
    queued: usize,
    outgoing: usize,
    deadline: Option<Instant>,
}

fn footprint(rpc: &Rpc) -> Footprint {
    let inc = rpc.incoming();
    let out = rpc.outgoing();
    Footprint {
        ready: rpc.ready_key(),
        queued_request: rpc.queued().then(|| out.map_or(0, |m| m.unscheduled() as usize)),
        in_flight: rpc.unscheduled_in_flight(),
        grant: inc.and_then(|m| m.grant_key()),
        outstanding: inc.map_or(0, |m| m.outstanding()),
        incoming: inc.map(|m| m.charge()),
        queued: rpc.queued_charge(),
        outgoing: out.map_or(0, |m| m.wire_len()),
        deadline: rpc.deadline(),
    }
}

/// An RPC with what the indices hold for it: its footprint as last indexed, and the
/// deadline its timer is armed at (never later than the footprint's deadline).
#[derive(Debug)]
struct Entry {
    rpc: Rpc,
    indexed: Footprint,
    armed: Option<Instant>,
}

/// Entries in a slab, found through an ordered index of small values: the index
/// (ordered, for a session's RPCs in ID order) moves 24-byte items when it
/// rebalances, not whole RPCs.
#[derive(Debug, Default)]
struct Store {
    index: BTreeMap<RpcKey, usize>,
    slots: Vec<Option<Entry>>,
    free: Vec<usize>,
}

impl Store {
    /// Adds an entry; `None` (dropping it) if the key is taken.
    fn insert(&mut self, key: RpcKey, entry: Entry) -> Option<&mut Entry> {
        let std::collections::btree_map::Entry::Vacant(vacant) = self.index.entry(key) else {
            return None;
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(entry);
                slot
            }
            None => {
                self.slots.push(Some(entry));
                self.slots.len() - 1
            }
        };
        vacant.insert(slot);
        self.slots[slot].as_mut()
    }

    fn remove(&mut self, key: &RpcKey) -> Option<Entry> {
        let slot = self.index.remove(key)?;
        let entry = self.slots.get_mut(slot)?.take();
        if self.index.is_empty() {
            // Nothing left: give the memory of a past burst back.
            self.slots = Vec::new();
            self.free = Vec::new();
        } else {
            self.free.push(slot);
        }
        entry
    }

    fn get(&self, key: &RpcKey) -> Option<&Entry> {
        self.slots.get(*self.index.get(key)?)?.as_ref()
    }

    fn get_mut(&mut self, key: &RpcKey) -> Option<&mut Entry> {
        let slot = *self.index.get(key)?;
        self.slots.get_mut(slot)?.as_mut()
    }

    fn contains_key(&self, key: &RpcKey) -> bool {
        self.index.contains_key(key)
    }

    /// Keys of one session's RPCs, in ID order.
    fn session_keys(&self, session: SessionHandle) -> impl Iterator<Item = RpcKey> + '_ {
        self.index
            .range((session, MessageId::default())..=(session, MessageId::MAX))
            .map(|(k, _)| *k)
    }
}

#[derive(Debug)]
pub(crate) struct RpcTable {
    rpcs: Store,
    /// Outgoing messages with bytes to send now (sender SRPT).
    ready: BTreeSet<QueueKey>,
    /// Client requests waiting for their session's window, in call order.
    queued: BTreeSet<RpcKey>,
    /// Sessions with queued requests whose window may have room now.
    releasable: BTreeSet<SessionHandle>,
    /// Incoming messages not fully granted (receiver SRPT).
    grantable: BTreeSet<QueueKey>,
    /// Armed RPC timers by deadline.
    timers: BTreeSet<(Instant, RpcKey)>,
    /// Usage per session with RPCs (kept while the session lives, so a ping-pong
    /// does not create and drop an entry per RPC).
    sessions: BTreeMap<SessionHandle, SessionUsage>,
    totals: Totals,
    limits: Limits,
    /// Sessions whose incoming messages or queued requests hold memory.
    sessions_holding: usize,
}

impl RpcTable {
    pub(crate) fn new(limits: Limits) -> RpcTable {
        RpcTable {
            rpcs: Store::default(),
            ready: BTreeSet::new(),
            queued: BTreeSet::new(),
            releasable: BTreeSet::new(),
            grantable: BTreeSet::new(),
            timers: BTreeSet::new(),
            sessions: BTreeMap::new(),
            totals: Totals::default(),
            limits,
            sessions_holding: 0,
        }
    }

    fn footprint(&self, rpc: &Rpc) -> Footprint {
        footprint(rpc)
    }

    /// Applies the change from `old` to `new` to the SRPT sets and the counters.
    fn reindex(&mut self, key: RpcKey, old: Option<&Footprint>, new: Option<&Footprint>) {
        let (h, id) = key;
        let (old_ready, new_ready) = (old.and_then(|f| f.ready), new.and_then(|f| f.ready));
        if old_ready != new_ready {
            if let Some(k) = old_ready {
                self.ready.remove(&(k, h, id));
            }
            if let Some(k) = new_ready {
                self.ready.insert((k, h, id));
            }
        }
        let (was_queued, is_queued) = (
            old.is_some_and(|f| f.queued_request.is_some()),
            new.is_some_and(|f| f.queued_request.is_some()),
        );
        if was_queued != is_queued {
            match is_queued {
                true => self.queued.insert(key),
                false => self.queued.remove(&key),
            };
        }
        let in_flight = |f: Option<&Footprint>| f.map_or(0, |f| f.in_flight);
        let (old_flight, new_flight) = (in_flight(old), in_flight(new));
        let (old_grant, new_grant) = (old.and_then(|f| f.grant), new.and_then(|f| f.grant));
        if old_grant != new_grant {
            if let Some(k) = old_grant {
                self.grantable.remove(&(k, h, id));
            }
            if let Some(k) = new_grant {
                self.grantable.insert((k, h, id));
            }
        }
        let outstanding = |f: Option<&Footprint>| u64::from(f.map_or(0, |f| f.outstanding));
        let incoming = |f: Option<&Footprint>| f.and_then(|f| f.incoming);
        let queued = |f: Option<&Footprint>| f.map_or(0, |f| f.queued);
        let outgoing = |f: Option<&Footprint>| f.map_or(0, |f| f.outgoing);
        let count = |x: Option<usize>| usize::from(x.is_some());
        let (old_in, new_in) = (incoming(old), incoming(new));
        let (old_rpc, new_rpc) = (usize::from(old.is_some()), usize::from(new.is_some()));
        let t = &mut self.totals;
        t.granted_unreceived = t.granted_unreceived - outstanding(old) + outstanding(new);
        t.rpcs = t.rpcs - old_rpc + new_rpc;
        t.incoming_messages = t.incoming_messages - count(old_in) + count(new_in);
        t.incoming_bytes = t.incoming_bytes - old_in.unwrap_or(0) + new_in.unwrap_or(0);
        t.queued_bytes = t.queued_bytes - queued(old) + queued(new);
        t.outgoing_bytes = t.outgoing_bytes - outgoing(old) + outgoing(new);
        let per_session = old_rpc != new_rpc
            || old_in != new_in
            || queued(old) != queued(new)
            || old_flight != new_flight
            || was_queued != is_queued;
        if per_session {
            let s = self.sessions.entry(h).or_default();
            s.queued_requests =
                s.queued_requests - usize::from(was_queued) + usize::from(is_queued);
            s.unscheduled_in_flight = s.unscheduled_in_flight - old_flight + new_flight;
            s.rpcs = s.rpcs - old_rpc + new_rpc;
            s.incoming_messages = s.incoming_messages - count(old_in) + count(new_in);
            let held_before = s.incoming_bytes > 0;
            s.incoming_bytes = s.incoming_bytes - old_in.unwrap_or(0) - queued(old)
                + new_in.unwrap_or(0)
                + queued(new);
            let held_after = s.incoming_bytes > 0;
            self.sessions_holding =
                self.sessions_holding - usize::from(held_before) + usize::from(held_after);
        }
        // The window may have room for a queued request: a new one was queued, or
        // requests in flight were answered (or ended).
        if (is_queued && !was_queued) || new_flight < old_flight {
            self.releasable.insert(h);
        }
    }

    /// Makes the timer of `key` fire no later than `deadline`. A later deadline, or
    /// none, needs no re-arming: the armed timer fires, the owner looks, and the
    /// real deadline (if any) is armed then; an RPC that needs no timer costs at
    /// most that one look.
    fn retime(
        timers: &mut BTreeSet<(Instant, RpcKey)>,
        key: RpcKey,
        armed: &mut Option<Instant>,
        deadline: Option<Instant>,
    ) {
        let Some(at) = deadline else { return };
        match *armed {
            Some(current) if current <= at => {}
            current => {
                if let Some(current) = current {
                    timers.remove(&(current, key));
                }
                timers.insert((at, key));
                *armed = Some(at);
            }
        }
    }

    /// Disarms the timer of a removed RPC.
    fn disarm(timers: &mut BTreeSet<(Instant, RpcKey)>, key: RpcKey, armed: Option<Instant>) {
        if let Some(current) = armed {
            timers.remove(&(current, key));
        }
    }

    /// Adds an RPC. Returns false (and drops it) if the key is taken.
    pub(crate) fn insert(&mut self, key: RpcKey, rpc: Rpc) -> bool {
        let indexed = self.footprint(&rpc);
        let Some(entry) = self.rpcs.insert(key, Entry { rpc, indexed, armed: None }) else {
            return false;
        };
        Self::retime(&mut self.timers, key, &mut entry.armed, indexed.deadline);
        self.reindex(key, None, Some(&indexed));
        true
    }

    /// Removes an RPC and everything it holds.
    pub(crate) fn remove(&mut self, key: RpcKey) -> Option<Rpc> {
        let entry = self.rpcs.remove(&key)?;
        Self::disarm(&mut self.timers, key, entry.armed);
        self.reindex(key, Some(&entry.indexed), None);
        Some(entry.rpc)
    }

    /// Changes an RPC through `f`, then re-keys every index it appears in.
    pub(crate) fn update<R>(&mut self, key: RpcKey, f: impl FnOnce(&mut Rpc) -> R) -> Option<R> {
        let entry = self.rpcs.get_mut(&key)?;
        let result = f(&mut entry.rpc);
        let after = footprint(&entry.rpc);
        if after != entry.indexed {
            let before = std::mem::replace(&mut entry.indexed, after);
            Self::retime(&mut self.timers, key, &mut entry.armed, after.deadline);
            self.reindex(key, Some(&before), Some(&after));
        }
        Some(result)
    }

    pub(crate) fn get(&self, key: RpcKey) -> Option<&Rpc> {
        self.rpcs.get(&key).map(|e| &e.rpc)
    }

    pub(crate) fn contains(&self, key: RpcKey) -> bool {
        self.rpcs.contains_key(&key)
    }

    /// IDs of a session's RPCs, in order.
    pub(crate) fn ids(&self, session: SessionHandle) -> Vec<MessageId> {
        self.rpcs.session_keys(session).map(|(_, id)| id).collect()
    }

    /// The session's lowest outstanding ID.
    pub(crate) fn oldest(&self, session: SessionHandle) -> Option<MessageId> {
        self.rpcs.session_keys(session).next().map(|(_, id)| id)
    }

    /// Removes every RPC of a session, in ID order.
    pub(crate) fn remove_session(&mut self, session: SessionHandle) -> Vec<(MessageId, Rpc)> {
        let ids = self.ids(session);
        let rpcs = ids
            .into_iter()
            .filter_map(|id| self.remove((session, id)).map(|rpc| (id, rpc)))
            .collect();
        if let Some(s) = self.sessions.remove(&session) {
            // (Its RPCs are gone, so it holds nothing; kept exact all the same.)
            self.sessions_holding -= usize::from(s.incoming_bytes > 0);
        }
        rpcs
    }

    /// Whether a new incoming message charged `charge` bytes fits the limits.
    pub(crate) fn admits(&self, session: SessionHandle, charge: usize) -> bool {
        let s = self.sessions.get(&session).copied().unwrap_or_default();
        s.incoming_messages < self.limits.messages_per_session && charge <= self.room(session)
    }

    /// Bytes a session may still be charged (for a new message, or a grant that
    /// raises a message's charge): what is left of its own budget and of the
    /// endpoint's; and, once the endpoint is more than half full, of the session's
    /// fair share (the total divided among the sessions holding memory, itself
    /// included): under contention no session can take what the others need.
    pub(crate) fn room(&self, session: SessionHandle) -> usize {
        let s = self.sessions.get(&session).copied().unwrap_or_default();
        let l = &self.limits;
        let total = self.totals.incoming_bytes + self.totals.queued_bytes;
        let mut room = l
            .bytes_per_session
            .saturating_sub(s.incoming_bytes)
            .min(l.bytes_total.saturating_sub(total));
        if total > l.bytes_total / 2 {
            let holders = self.sessions_holding + usize::from(s.incoming_bytes == 0);
            let share = l.bytes_total / holders.max(1);
            room = room.min(share.saturating_sub(s.incoming_bytes));
        }
        room
    }

    /// The outgoing message with the fewest bytes left among those ready to send.
    pub(crate) fn first_ready(&self) -> Option<RpcKey> {
        self.ready.first().map(|&(_, h, id)| (h, id))
    }

    /// Whether any outgoing message has bytes to send now, or a queued request may.
    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.is_empty() || !self.releasable.is_empty()
    }

    /// Whether a new request of `session` that puts `unscheduled` bytes in flight may
    /// go out now: nothing is queued before it, and the session's window has room
    /// for it (or is empty: a request larger than the window goes out alone).
    pub(crate) fn window_admits(
        &self,
        session: SessionHandle,
        unscheduled: usize,
        window: usize,
    ) -> bool {
        let in_flight = self.session_usage(session).unscheduled_in_flight;
        self.first_queued(session).is_none()
            && (in_flight == 0 || in_flight + unscheduled <= window)
    }

    fn first_queued(&self, session: SessionHandle) -> Option<RpcKey> {
        let range = (session, MessageId::default())..=(session, MessageId::MAX);
        self.queued.range(range).next().copied()
    }

    /// Sends queued requests, in call order, while their sessions' windows have
    /// room: they become ready to transmit.
    pub(crate) fn release_queued(&mut self, now: Instant, window: usize) {
        while let Some(session) = self.releasable.pop_first() {
            while let Some(key) = self.first_queued(session) {
                let Some(entry) = self.rpcs.get(&key) else { break };
                let unscheduled = entry.indexed.queued_request.unwrap_or(0);
                let in_flight = self.session_usage(session).unscheduled_in_flight;
                if in_flight > 0 && in_flight + unscheduled > window {
                    break;
                }
                // Re-inserting re-indexes it from scratch (queued -> ready, in flight).
                let Some(rpc) = self.remove(key) else { break };
                // Its answer now waits only for those of the RPCs already out.
                let usage = self.session_usage(session);
                let ahead = usage.rpcs.saturating_sub(usage.queued_requests);
                self.insert(key, rpc.released(now, u32::try_from(ahead).unwrap_or(u32::MAX)));
            }
        }
        // Releasing only adds bytes in flight, so it marks no session releasable.
        debug_assert!(self.releasable.is_empty());
    }

    /// Removes every queued request of a session (they fail with it).
    pub(crate) fn remove_queued(&mut self, session: SessionHandle) -> Vec<MessageId> {
        let mut ids = Vec::new();
        while let Some(key) = self.first_queued(session) {
            self.remove(key);
            ids.push(key.1);
        }
        ids
    }

    /// Whether any incoming message still needs grants.
    pub(crate) fn has_grantable(&self) -> bool {
        !self.grantable.is_empty()
    }

    /// Incoming messages that still need grants, fewest bytes left first.
    pub(crate) fn grantable(&self) -> impl Iterator<Item = RpcKey> + '_ {
        self.grantable.iter().map(|&(_, h, id)| (h, id))
    }

    /// The earliest RPC timer.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.timers.first().map(|&(at, _)| at)
    }

    /// An RPC whose timer is due (disarmed: looking at it re-arms it if needed).
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<RpcKey> {
        let &(at, key) = self.timers.first()?;
        if at > now {
            return None;
        }
        self.timers.pop_first();
        if let Some(entry) = self.rpcs.get_mut(&key) {
            entry.armed = None;
        }
        Some(key)
    }

    /// Re-arms an RPC's timer from its state (after it fired).
    pub(crate) fn rearm(&mut self, key: RpcKey) {
        let Some(entry) = self.rpcs.get_mut(&key) else { return };
        let deadline = entry.rpc.deadline();
        entry.indexed.deadline = deadline;
        // `pop_due` disarmed it.
        entry.armed = None;
        Self::retime(&mut self.timers, key, &mut entry.armed, deadline);
    }

    /// Number of armed RPC timers.
    pub(crate) fn armed_timers(&self) -> usize {
        self.timers.len()
    }

    pub(crate) fn totals(&self) -> Totals {
        self.totals
    }

    /// What a session's RPCs hold.
    pub(crate) fn session_usage(&self, session: SessionHandle) -> SessionUsage {
        self.sessions.get(&session).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::engine::buffers::{Buffer, BufferPool};
    use crate::engine::incoming::IncomingMessage;
    use crate::engine::keys::RxKeys;
    use crate::engine::outgoing::OutgoingMessage;
    use crate::engine::rpc::{RpcState, Timeouts};
    use crate::record::{seal_message, CipherSuite, MessageLayout, RecordKey};
    use crate::wire::DataRepr;

    fn key() -> RecordKey {
        RecordKey::new(CipherSuite::Aes128GcmSha256, &[1; 16], &[2; 12]).unwrap()
    }

    fn table() -> RpcTable {
        let limits =
            Limits { messages_per_session: 2, bytes_per_session: 1 << 20, bytes_total: 1 << 30 };
        RpcTable::new(limits)
    }

    const TIMEOUTS: Timeouts = Timeouts {
        resend_after: Duration::from_millis(3),
        rpc_timeout: Duration::from_secs(2),
        answer_after: Duration::from_millis(3),
    };

    fn outgoing(len: usize) -> OutgoingMessage {
        let layout = MessageLayout::for_payload(len, 16384).unwrap();
        OutgoingMessage::new(layout, Buffer::from_vec(vec![0; layout.wire_len() as usize]), 1000)
    }

    fn incoming(id: MessageId, len: usize) -> IncomingMessage {
        let wire = seal_message(&key(), id, &vec![0; len], 16384).unwrap();
        let layout = MessageLayout::for_payload(len, 16384).unwrap();
        let data = DataRepr {
            message_length: layout.wire_len(),
            offset: 0,
            unscheduled: 1000,
            record_size: 16384,
            priority: 0,
            payload: &wire[..wire.len().min(100)],
        };
        let mut rx = RxKeys::new(key(), None);
        let keys = rx.candidates(false, Instant::now()).unwrap();
        IncomingMessage::new(&data, false, keys, &BufferPool::new(0)).unwrap()
    }

    #[test]
    fn indices_follow_every_change_and_empty_out_on_removal() {
        let now = Instant::now();
        let mut t = table();
        let (h, a, b) = (SessionHandle(1), MessageId::new(1).unwrap(), MessageId::new(2).unwrap());
        assert!(t.insert((h, a), Rpc::client(now, TIMEOUTS, outgoing(50_000), 0, 0, false)));
        assert!(t.insert((h, b), Rpc::client(now, TIMEOUTS, outgoing(100), 0, 0, false)));
        assert!(
            !t.insert((h, b), Rpc::client(now, TIMEOUTS, outgoing(100), 0, 0, false)),
            "key taken"
        );
        // SRPT: the shorter message is sent first.
        assert_eq!(t.first_ready(), Some((h, b)));
        // Sending all of b's unscheduled bytes takes it out of the ready set.
        t.update((h, b), |rpc| while rpc.outgoing_mut().unwrap().next_packet(1400).is_some() {});
        assert_eq!(t.first_ready(), Some((h, a)));
        assert_eq!(t.totals().rpcs, 2);
        assert!(t.totals().outgoing_bytes > 50_000);
        t.remove((h, a));
        t.remove((h, b));
        assert_eq!(t.totals(), Totals::default());
        assert_eq!(t.first_ready(), None);
        assert_eq!(t.armed_timers(), 0);
        assert_eq!(t.session_usage(h), SessionUsage::default());
    }

    #[test]
    fn incoming_messages_are_charged_and_admission_follows_the_limits() {
        let now = Instant::now();
        let mut t = table();
        let h = SessionHandle(7);
        let ids: Vec<_> = (1..=3).map(|i| MessageId::new(i).unwrap()).collect();
        let inc = incoming(ids[0], 200_000);
        let charge = inc.charge();
        assert!(t.admits(h, charge));
        t.insert((h, ids[0]), Rpc::server(now, TIMEOUTS, inc));
        t.insert((h, ids[1]), Rpc::server(now, TIMEOUTS, incoming(ids[1], 10)));
        assert_eq!(t.session_usage(h).incoming_messages, 2);
        assert!(!t.admits(h, 10), "two incomplete messages per session at most");
        assert!(t.totals().incoming_bytes >= charge);
        // Granting scheduled bytes shows up as granted-but-unreceived.
        assert_eq!(t.grantable().collect::<Vec<_>>(), vec![(h, ids[0])]);
        t.update((h, ids[0]), |rpc| rpc.incoming_mut().unwrap().set_granted(5000));
        assert_eq!(t.totals().granted_unreceived, 4000);
        t.remove((h, ids[0]));
        assert_eq!(t.totals().granted_unreceived, 0);
        assert_eq!(t.session_usage(h).incoming_messages, 1);
    }

    #[test]
    fn once_the_endpoint_is_half_full_each_session_is_held_to_its_fair_share() {
        let now = Instant::now();
        let limits =
            Limits { messages_per_session: 100, bytes_per_session: 1 << 20, bytes_total: 1 << 20 };
        let mut t = RpcTable::new(limits);
        let (greedy, other) = (SessionHandle(1), SessionHandle(2));
        let id = |i| MessageId::new(i).unwrap();
        // Alone, a session may fill the endpoint.
        t.insert((greedy, id(1)), Rpc::delivered(now, TIMEOUTS, 700_000));
        assert!(t.admits(greedy, 100_000), "no one else holds memory");
        // Another session now holds some: beyond half full, each gets half at most.
        t.insert((other, id(1)), Rpc::delivered(now, TIMEOUTS, 10_000));
        assert!(!t.admits(greedy, 10_000), "the greedy session is past its share");
        assert!(t.admits(other, 100_000), "the other is far below its share");
        assert_eq!(t.room(greedy), 0);
        // When the greedy session's request is answered, it may take more again.
        t.remove((greedy, id(1)));
        assert!(t.admits(greedy, 100_000));
        t.remove((other, id(1)));
        assert_eq!(t.sessions_holding, 0);
    }

    /// Adds a client call as `Endpoint::finish` does: queued unless the window admits it.
    fn call(t: &mut RpcTable, key: RpcKey, len: usize, window: usize, now: Instant) -> bool {
        let out = outgoing(len);
        let queued = !t.window_admits(key.0, out.unscheduled() as usize, window);
        t.insert(key, Rpc::client(now, TIMEOUTS, out, 0, 0, queued));
        queued
    }

    #[test]
    fn calls_beyond_the_unscheduled_window_wait_and_go_out_in_call_order_as_answers_come() {
        let now = Instant::now();
        let mut t = table();
        let h = SessionHandle(3);
        let id = |i| MessageId::new(i).unwrap();
        // Each request puts 1000 unscheduled bytes in flight; the window holds 2.
        let window = 2000;
        let queued: Vec<bool> =
            (1..=5).map(|i| call(&mut t, (h, id(i)), 5000, window, now)).collect();
        assert_eq!(queued, [false, false, true, true, true]);
        assert_eq!(t.session_usage(h).unscheduled_in_flight, 2000);
        t.release_queued(now, window);
        let ready = |t: &RpcTable| t.ready.iter().map(|&(_, _, id)| id.get()).collect::<Vec<_>>();
        assert_eq!(ready(&t), [1, 2], "the window is full: nothing released");
        // Queued requests have no timer: the server does not know of them.
        assert_eq!(t.armed_timers(), 2);
        // The server answers call 2 (BUSY): one more may go, the oldest queued.
        t.update((h, id(2)), |rpc| {
            if let RpcState::Client(c) = &mut rpc.state {
                c.heard_back = true;
            }
        });
        assert!(t.has_ready());
        t.release_queued(now, window);
        assert_eq!(ready(&t), [1, 2, 3]);
        assert_eq!(t.armed_timers(), 3);
        // Call 1 completes and call 3 ends: 4 and 5 go out together.
        t.remove((h, id(1)));
        t.remove((h, id(3)));
        t.release_queued(now, window);
        assert_eq!(ready(&t), [2, 4, 5]);
        assert_eq!(t.session_usage(h).unscheduled_in_flight, 2000);
        // A new call queues behind nothing but still waits for room.
        assert!(call(&mut t, (h, id(6)), 5000, window, now));
        assert_eq!(t.remove_queued(h), vec![id(6)]);
        assert!(t.queued.is_empty());
        assert_eq!(ready(&t), [2, 4, 5], "removing queued calls leaves the others alone");
    }

    #[test]
    fn a_call_larger_than_the_window_goes_out_alone() {
        let now = Instant::now();
        let mut t = table();
        let h = SessionHandle(4);
        let id = |i| MessageId::new(i).unwrap();
        assert!(!call(&mut t, (h, id(1)), 5000, 500, now), "nothing in flight: it may go");
        assert!(call(&mut t, (h, id(2)), 5000, 500, now), "the next waits");
        t.remove((h, id(1)));
        t.release_queued(now, 500);
        assert_eq!(t.first_ready(), Some((h, id(2))));
    }
}
