//! The receiver's side of one message: reassembly, record opening and grant state.

use core::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::keys::Candidates;
use super::ranges::RangeSet;
use bytes::Bytes;

use super::buffers::{Buffer, BufferPool};
use super::opening::TakenRecords;
use super::rpc_table::RpcKey;
use crate::record::{open_record_into, MessageError, MessageLayout, RecordKey, PROLOGUE_LEN};
use crate::wire::{DataRepr, MessageId};

/// What absorbing one DATA packet did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Absorbed {
    /// New bytes stored; the message is not complete yet.
    Progress,
    /// Every record is now open: the payload can be taken.
    Complete,
    /// The packet carried no new bytes (duplicate or retransmission).
    Duplicate,
    /// The packet's length or record size disagrees with the message's.
    Inconsistent,
    /// A record failed authentication; its bytes were discarded for retransmission.
    RecordRejected,
    /// Record 0's authenticated prologue contradicts the plaintext header: the state
    /// was built from forged fields and must be discarded.
    Forged,
    /// Records are complete and wait to be opened (see `opening`): queue the message.
    Queued,
    /// The message's records are out being opened: the packet was dropped.
    Busy,
    /// The packet holds only bytes beyond the grant (dropped).
    BeyondGrant,
}

/// A message being received. Its wire buffer (from the endpoint's pool for large
/// messages) has the full wire length from the start, but only bytes below the
/// grant are ever written (the rest is dropped): a fresh buffer's untouched pages
/// cost no memory, so what admission control charges is the granted prefix, not
/// the length a (possibly forged) header claims. Bytes of it are read only where
/// they were received, and only to open records.
///
/// Records are opened out of place, into a second buffer of the message's contents
/// (prologue and payload, plus one byte: see [`ContentsBuffer`]) taken when the
/// first record opens, so the payload is in place when the last one does: no
/// compaction pass. Its bytes are read only as content of opened records.
#[derive(Debug)]
pub(crate) struct IncomingMessage {
    layout: MessageLayout,
    wire: Buffer,
    contents: ContentsBuffer,
    /// Content bytes of opened records (charged like received wire bytes).
    content_opened: usize,
    received: RangeSet,
    opened: Vec<bool>,
    records_open: usize,
    bytes_received: u32,
    /// Most bytes ever held at once; bytes dropped after a failed record and received
    /// again do not raise it.
    high_water: u32,
    unscheduled: u32,
    /// The sender may send `[0, granted)`.
    granted: u32,
    /// The last grant offset actually sent in a GRANT packet.
    grant_sent: u32,
    /// A grant round trip being timed: when a GRANT raised the grant past this
    /// offset, which the sender could not send beyond before it.
    rtt_probe: Option<(u32, Instant)>,
    /// Whether record 0 (with the prologue) authenticated.
    authenticated: bool,
    /// KEY_PHASE bit of the message's packets.
    phase: bool,
    /// Keys that may open the message (the peer's current key, or its previous and
    /// next ones around a key update). Narrowed to one as soon as a record opens.
    keys: Candidates,
    /// A record opened with the peer's next key: the session should advance.
    opened_with_next: Option<Arc<RecordKey>>,
    /// Complete records waiting to be opened, ascending.
    queued: Vec<usize>,
    /// The wire buffer and queued records are out being opened.
    taken: bool,
    /// Complete records are queued for opening elsewhere instead of opened at once.
    defer: bool,
    /// The sender went silent with granted bytes missing (the receiver's silence
    /// timer fired): its grant no longer counts against the endpoint's budget and it
    /// gets no more until new bytes arrive, so a sender that never sends what it was
    /// granted holds no one else's share.
    stalled: bool,
    /// When its first packet arrived (see `Rpc::expiry`).
    began: Option<Instant>,
    /// Times the receiver prodded the sender (RESEND or GRANT after a silence)
    /// before record 0 authenticated: each doubles the next silence (see
    /// `unproven_backoff`).
    unproven_prods: u32,
}

/// Opens a message that arrived whole in one DATA packet, without any reassembly
/// state: its payload, and the peer's next key if that is what opened it. `None` if
/// the packet does not hold the whole message or any record fails to open with every
/// candidate key; the caller then takes the ordinary path, which deals with failures
/// (and so behaves exactly as if this shortcut did not exist).
pub(crate) fn open_whole(
    id: MessageId,
    data: &DataRepr<'_>,
    keys: &Candidates,
) -> Option<(Bytes, Option<Arc<RecordKey>>)> {
    if data.offset != 0 || data.payload.len() != data.message_length as usize {
        return None;
    }
    let layout = MessageLayout::from_wire(data.message_length, data.record_size)?;
    // The contents (prologue, payload) and the spare byte the last record's content
    // type lands on; each record's lands on the next record's first byte, which
    // opening that record (in ascending order) then overwrites.
    let mut contents = vec![0u8; contents_len(&layout) + 1];
    for candidate in keys.iter() {
        let opened = (0..layout.record_count()).all(|index| {
            let range = layout.content_range(index);
            match (
                data.payload.get(layout.record_range(index)),
                contents.get_mut(range.start..range.end + 1),
            ) {
                (Some(record), Some(out)) => {
                    open_record_into(&candidate.key, id, &layout, index, record, out).is_ok()
                }
                _ => false,
            }
        });
        if opened {
            let next = candidate.is_next.then(|| candidate.key.clone());
            contents.truncate(contents_len(&layout));
            return Some((Bytes::from(contents).slice(PROLOGUE_LEN..), next));
        }
    }
    None
}

impl IncomingMessage {
    /// State for a message announced by `data`, or `None` if its fields describe no
    /// valid message.
    pub(crate) fn new(
        data: &DataRepr<'_>,
        phase: bool,
        keys: Candidates,
        buffers: &BufferPool,
    ) -> Option<IncomingMessage> {
        let layout = MessageLayout::from_wire(data.message_length, data.record_size)?;
        let unscheduled = data.unscheduled.min(layout.wire_len());
        Some(IncomingMessage {
            layout,
            wire: buffers.take(layout.wire_len() as usize),
            contents: ContentsBuffer { pool: buffers.clone(), buffer: None },
            content_opened: 0,
            received: RangeSet::default(),
            opened: vec![false; layout.record_count()],
            records_open: 0,
            bytes_received: 0,
            high_water: 0,
            unscheduled,
            granted: unscheduled,
            grant_sent: unscheduled,
            rtt_probe: None,
            authenticated: false,
            phase,
            keys,
            opened_with_next: None,
            queued: Vec::new(),
            taken: false,
            defer: false,
            stalled: false,
            began: None,
            unproven_prods: 0,
        })
    }

    /// Notes when the message's first packet arrived.
    pub(crate) fn began_at(mut self, now: Instant) -> IncomingMessage {
        self.began = Some(now);
        self
    }

    pub(crate) fn began(&self) -> Option<Instant> {
        self.began
    }

    /// Accepts at most `limit` bytes before a grant, whatever the sender announced
    /// (the announcement is unauthenticated).
    pub(crate) fn limit_unscheduled(mut self, limit: u32) -> IncomingMessage {
        self.unscheduled = self.unscheduled.min(limit);
        self.granted = self.unscheduled;
        self.grant_sent = self.unscheduled;
        self
    }

    /// Leaves complete records for `take_records` instead of opening them in
    /// `absorb` (see `opening`).
    pub(crate) fn defer_opening(mut self) -> IncomingMessage {
        self.defer = true;
        self
    }

    pub(crate) fn len(&self) -> u32 {
        self.layout.wire_len()
    }

    pub(crate) fn layout(&self) -> &MessageLayout {
        &self.layout
    }

    /// Wire bytes held (received and not dropped).
    pub(crate) fn bytes_received(&self) -> u32 {
        self.bytes_received
    }

    /// Most wire bytes ever held: rises only with genuinely new bytes.
    pub(crate) fn high_water(&self) -> u32 {
        self.high_water
    }

    pub(crate) fn granted(&self) -> u32 {
        self.granted
    }

    /// Raises the grant to `offset` (never lowers it, never past the message).
    pub(crate) fn set_granted(&mut self, offset: u32) {
        self.granted = self.granted.max(offset.min(self.len()));
    }

    /// The grant offset last announced to the sender.
    pub(crate) fn grant_sent(&self) -> u32 {
        self.grant_sent
    }

    /// The current grant was announced in a GRANT packet.
    pub(crate) fn mark_grant_sent(&mut self) {
        self.grant_sent = self.granted;
    }

    /// A GRANT beyond the last announced offset leaves now: unless one is being
    /// timed already, time how long until the first byte past that offset arrives.
    pub(crate) fn watch_round_trip(&mut self, now: Instant) {
        if self.rtt_probe.is_none() && self.granted > self.grant_sent {
            self.rtt_probe = Some((self.grant_sent, now));
        }
    }

    /// Stops timing (the bytes are being asked for again: a retransmission would
    /// measure the loss, not the path).
    pub(crate) fn forget_round_trip(&mut self) {
        self.rtt_probe = None;
    }

    /// The receiver prodded the sender after a silence: counted while the message
    /// has not proven itself genuine.
    pub(crate) fn note_prod(&mut self) {
        if !self.authenticated {
            self.unproven_prods = self.unproven_prods.saturating_add(1);
        }
    }

    /// Doublings of the receiver's silence before it prods again: one per prod that
    /// did not make record 0 authenticate. A genuine message authenticates within
    /// its unscheduled bytes, a round trip or two; forged DATA never does, and without
    /// the backoff each forged message would draw a RESEND every resend interval for
    /// as long as it lives (thousands of them, thousands of RESENDs per interval).
    pub(crate) fn unproven_backoff(&self) -> u32 {
        if self.authenticated {
            0
        } else {
            self.unproven_prods
        }
    }

    /// The round trip, if `data` is the first packet past the watched offset.
    pub(crate) fn round_trip(&mut self, data: &DataRepr<'_>, now: Instant) -> Option<Duration> {
        let (offset, sent) = self.rtt_probe?;
        if data.offset as usize + data.payload.len() <= offset as usize {
            return None;
        }
        self.rtt_probe = None;
        Some(now.saturating_duration_since(sent))
    }

    /// Whether record 0 opened: the message is genuine.
    pub(crate) fn records_open(&self) -> usize {
        self.records_open
    }

    pub(crate) fn authenticated(&self) -> bool {
        self.authenticated
    }

    /// The peer's next key, if a record opened with it (taken once).
    pub(crate) fn take_opened_with_next(&mut self) -> Option<Arc<RecordKey>> {
        self.opened_with_next.take()
    }

    /// Bytes charged against memory limits: the granted prefix of the wire buffer
    /// (the only part ever written), the contents of opened records (the only part
    /// of the contents buffer ever written) and the per-record state.
    pub(crate) fn charge(&self) -> usize {
        self.granted as usize + self.content_opened + self.opened.len() + 64
    }

    /// The most bytes this message may be granted now: all of it once record 0
    /// authenticated (the message is genuine), until then only up to the end of
    /// record 0. Forged DATA thus never earns grants, nor memory beyond its first
    /// record.
    pub(crate) fn grantable_limit(&self) -> u32 {
        if self.authenticated {
            self.len()
        } else {
            self.layout.record_range(0).end as u32
        }
    }

    /// `Some(remaining)` while bytes remain to be granted now: the receiver's SRPT
    /// key. None while the sender is stalled.
    pub(crate) fn grant_key(&self) -> Option<u32> {
        (!self.stalled && self.granted < self.grantable_limit())
            .then(|| self.len() - self.bytes_received)
    }

    /// The sender left granted bytes missing for a silence: see `stalled`.
    pub(crate) fn mark_stalled(&mut self) {
        if self.outstanding_granted() > 0 {
            self.stalled = true;
        }
    }

    /// Scheduled (granted beyond unscheduled) bytes not yet received, counted
    /// against the endpoint's grant budget: none while the sender is stalled.
    pub(crate) fn outstanding(&self) -> u32 {
        if self.stalled {
            return 0;
        }
        self.outstanding_granted()
    }

    fn outstanding_granted(&self) -> u32 {
        let scheduled = self.unscheduled..self.granted.max(self.unscheduled);
        let expected = scheduled.end - scheduled.start;
        expected - self.received.covered_within(scheduled)
    }

    /// Missing ranges below the grant, at most `max` of them.
    pub(crate) fn gaps(&self, max: usize) -> Vec<Range<u32>> {
        self.received.gaps(self.granted, max)
    }

    /// Stores the packet's new bytes and opens the records they complete, or, for a
    /// message that defers opening and whose key is known, queues them (`Queued`:
    /// see `opening`). Around a key update (more than one possible key) records are
    /// always opened at once.
    ///
    /// `open_now` opens completed records here even for a message that defers
    /// opening: the caller must know at once whether this packet's bytes
    /// authenticated (a packet from a new peer address, see `migration`).
    pub(crate) fn absorb(
        &mut self,
        id: MessageId,
        data: &DataRepr<'_>,
        phase: bool,
        open_now: bool,
    ) -> Absorbed {
        if self.taken {
            return Absorbed::Busy;
        }
        if data.message_length != self.len()
            || data.record_size != self.layout.record_size()
            || phase != self.phase
        {
            return Absorbed::Inconsistent;
        }
        // DataRepr::parse guarantees offset + payload length <= message length. Bytes
        // beyond the grant were never asked for: dropped, so that no packet can make
        // the receiver touch memory it did not grant.
        let end = (data.offset + data.payload.len() as u32).min(self.granted);
        if data.offset >= end {
            return Absorbed::BeyondGrant;
        }
        let range = data.offset..end;
        let first = self.layout.record_containing(range.start as usize);
        let last = self.layout.record_containing(range.end as usize - 1);
        let mut outcome = Absorbed::Progress;
        let mut new_bytes = 0;
        // Records that lie whole within this packet and of which nothing is held yet
        // are opened straight from the packet (unless opening is deferred): their
        // bytes are never copied into the wire buffer. They count as held from here
        // on (and are dropped again if they fail to open).
        let mut from_packet = Vec::new();
        if !self.defer || open_now {
            for index in first..=last {
                let record = self.layout.record_range(index);
                let record = record.start as u32..record.end as u32;
                if record.start >= range.start
                    && record.end <= range.end
                    && self.received.covered_within(record.clone()) == 0
                {
                    new_bytes += self.received.insert(record);
                    from_packet.push(index);
                }
            }
        }
        // Copy only the bytes not held yet: bytes of opened records must not be
        // overwritten by (possibly forged) ciphertext, nor count twice.
        let (wire, payload) = (&mut self.wire, data.payload);
        self.received.for_each_missing(range.clone(), |part| {
            let src = (part.start - range.start) as usize..(part.end - range.start) as usize;
            wire[part.start as usize..part.end as usize].copy_from_slice(&payload[src]);
            new_bytes += part.end - part.start;
        });
        if new_bytes == 0 {
            return Absorbed::Duplicate;
        }
        self.bytes_received += new_bytes;
        self.stalled = false;
        self.received.insert(range.clone());
        self.high_water = self.high_water.max(self.bytes_received);
        // Ascending, so that each record's content type byte lands on a record that
        // opens after it (see `open_into_contents`).
        for index in first..=last {
            if self.opened[index] {
                continue;
            }
            let record = self.layout.record_range(index);
            let record = record.start as u32..record.end as u32;
            let packet_bytes = if from_packet.contains(&index) {
                let bytes =
                    (record.start - data.offset) as usize..(record.end - data.offset) as usize;
                data.payload.get(bytes)
            } else {
                if !self.received.contains(record.clone()) {
                    continue;
                }
                if self.defer && !open_now && self.keys.only().is_some() {
                    // Records complete in index order, mostly: keep the queue sorted.
                    if let Err(at) = self.queued.binary_search(&index) {
                        self.queued.insert(at, index);
                    }
                    outcome = Absorbed::Queued;
                    continue;
                }
                None
            };
            match self.open_record(id, index, packet_bytes) {
                Ok(()) => self.mark_opened(index),
                Err(MessageError::PrologueMismatch { .. }) => return Absorbed::Forged,
                Err(_) => {
                    // Drop the record's bytes; the receiver asks for them again.
                    self.bytes_received -= record.end - record.start;
                    self.received.remove(record);
                    outcome = Absorbed::RecordRejected;
                }
            }
        }
        if self.records_open == self.layout.record_count() {
            return Absorbed::Complete;
        }
        outcome
    }

    /// Takes the queued records out with the wire buffer, to be opened elsewhere.
    pub(crate) fn take_records(&mut self, key: RpcKey) -> Option<TakenRecords> {
        if self.taken || self.queued.is_empty() {
            return None;
        }
        let cipher = self.keys.only()?.clone();
        self.taken = true;
        let records = std::mem::take(&mut self.queued);
        let next_opened = records.iter().map(|&index| self.next_opened(index)).collect();
        let contents = self.contents.get(&self.layout);
        Some(TakenRecords {
            key,
            id: key.1,
            cipher,
            layout: self.layout,
            wire: std::mem::replace(&mut self.wire, Buffer::empty()),
            contents: std::mem::replace(contents, Buffer::empty()),
            results: vec![Ok(()); records.len()],
            next_opened,
            records,
        })
    }

    /// Puts taken records back, opened (or not): their outcome and how many records
    /// failed to authenticate. `None` if these records are not this message's.
    pub(crate) fn restore_records(&mut self, taken: TakenRecords) -> Option<(Absorbed, u64)> {
        if !self.taken
            || taken.layout != self.layout
            || taken.wire.len() != self.len() as usize
            || taken.contents.len() != contents_len(&self.layout) + 1
        {
            return None;
        }
        self.taken = false;
        self.wire = taken.wire;
        self.contents.buffer = Some(taken.contents);
        let mut outcome = Absorbed::Progress;
        let mut rejected = 0;
        for (&index, result) in taken.records.iter().zip(taken.results) {
            match result {
                Ok(()) => self.mark_opened(index),
                Err(MessageError::PrologueMismatch { .. }) => return Some((Absorbed::Forged, 0)),
                Err(_) => {
                    let record = self.layout.record_range(index);
                    let record = record.start as u32..record.end as u32;
                    self.bytes_received -= record.end - record.start;
                    self.received.remove(record);
                    rejected += 1;
                    outcome = Absorbed::RecordRejected;
                }
            }
        }
        if self.records_open == self.layout.record_count() {
            outcome = Absorbed::Complete;
        }
        Some((outcome, rejected))
    }

    /// Whether the record after `index` is open already (so that opening `index`
    /// must not let its content type byte land on that record's first byte).
    fn next_opened(&self, index: usize) -> bool {
        self.opened.get(index + 1).copied().unwrap_or(false)
    }

    fn mark_opened(&mut self, index: usize) {
        self.opened[index] = true;
        self.records_open += 1;
        self.content_opened += self.layout.content_len(index);
        if index == 0 {
            self.authenticated = true;
        }
    }

    /// Opens record `index` into the contents buffer with the message's key, or,
    /// while more than one key is possible, with each in turn, keeping the one that
    /// works (out of place: a failed attempt leaves the received bytes as they were).
    /// The record's bytes are `from_packet`, or else those in the wire buffer.
    fn open_record(
        &mut self,
        id: MessageId,
        index: usize,
        from_packet: Option<&[u8]>,
    ) -> Result<(), MessageError> {
        let layout = self.layout;
        let invalid = MessageError::InvalidLayout {
            wire_len: layout.wire_len(),
            record_size: layout.record_size(),
        };
        let next_opened = self.next_opened(index);
        let record = match from_packet {
            Some(bytes) => bytes,
            None => self.wire.get(layout.record_range(index)).ok_or(invalid)?,
        };
        let contents = self.contents.get(&layout);
        let mut last = None;
        let mut opened = None;
        for (i, candidate) in self.keys.iter().enumerate() {
            let key = &candidate.key;
            match open_into_contents(key, id, &layout, index, record, contents, 0, next_opened) {
                Ok(()) => {
                    opened = Some((i, candidate.is_next.then(|| candidate.key.clone())));
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some((i, next)) = opened else {
            return Err(last.unwrap_or(invalid));
        };
        // With one known key (the common case) there is nothing to narrow down.
        if self.keys.only().is_none() {
            self.opened_with_next = next;
            self.keys.keep(i);
        }
        Ok(())
    }

    /// The payload of a complete message (its storage returns to the pool when the
    /// application drops it).
    pub(crate) fn into_payload(mut self) -> Bytes {
        debug_assert_eq!(self.records_open, self.layout.record_count());
        let layout = self.layout;
        let contents = std::mem::replace(self.contents.get(&layout), Buffer::empty());
        let mut contents = contents;
        contents.truncate(contents_len(&layout));
        contents.into_bytes().slice(PROLOGUE_LEN..)
    }
}

/// Bytes of a message's contents: the prologue, then the payload.
fn contents_len(layout: &MessageLayout) -> usize {
    layout.payload_len() + PROLOGUE_LEN
}

/// Where an incoming message's records are opened to: the contents (prologue and
/// payload) and one spare byte, for the last record's content type. Taken from the
/// pool when the first record opens, so a message that never authenticates a
/// record never holds one.
#[derive(Debug)]
struct ContentsBuffer {
    pool: BufferPool,
    buffer: Option<Buffer>,
}

impl ContentsBuffer {
    fn get(&mut self, layout: &MessageLayout) -> &mut Buffer {
        let pool = &self.pool;
        self.buffer.get_or_insert_with(|| pool.take(contents_len(layout) + 1))
    }
}

/// Opens record `index` (its wire bytes `record`) into its place in the contents
/// buffer, of which `contents` is the part starting at offset `base`. Its content
/// type byte lands on the next record's first byte, harmless unless something else
/// writes there (that record is open already, or is being opened elsewhere): then
/// pass `scratch`, and the record goes through a scratch buffer and only its
/// content is copied in. Wrong ranges are errors, never panics.
#[allow(clippy::too_many_arguments)]
pub(crate) fn open_into_contents(
    key: &RecordKey,
    id: MessageId,
    layout: &MessageLayout,
    index: usize,
    record: &[u8],
    contents: &mut [u8],
    base: usize,
    scratch: bool,
) -> Result<(), MessageError> {
    let range = layout.content_range(index);
    let invalid = MessageError::InvalidLayout {
        wire_len: layout.wire_len(),
        record_size: layout.record_size(),
    };
    let start = range.start.checked_sub(base).ok_or(invalid)?;
    let end = start + range.len();
    if scratch {
        let mut buffer = vec![0u8; range.len() + 1];
        open_record_into(key, id, layout, index, record, &mut buffer)?;
        let out = contents.get_mut(start..end).ok_or(invalid)?;
        out.copy_from_slice(&buffer[..range.len()]);
        return Ok(());
    }
    let out = contents.get_mut(start..end + 1).ok_or(invalid)?;
    open_record_into(key, id, layout, index, record, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{seal_message, CipherSuite};

    fn key() -> RecordKey {
        RecordKey::new(CipherSuite::Aes128GcmSha256, &[1; 16], &[2; 12]).unwrap()
    }

    fn keys() -> Candidates {
        let mut rx = crate::engine::keys::RxKeys::new(key(), None);
        rx.candidates(false, std::time::Instant::now()).unwrap()
    }

    fn packets(wire: &[u8], layout: &MessageLayout, size: usize) -> Vec<(u32, Vec<u8>)> {
        let _ = layout;
        wire.chunks(size).enumerate().map(|(i, c)| ((i * size) as u32, c.to_vec())).collect()
    }

    fn data<'a>(layout: &MessageLayout, offset: u32, payload: &'a [u8]) -> DataRepr<'a> {
        DataRepr {
            message_length: layout.wire_len(),
            offset,
            unscheduled: layout.wire_len(),
            record_size: layout.record_size(),
            priority: 0,
            payload,
        }
    }

    fn opening(msg: IncomingMessage, defer: bool) -> IncomingMessage {
        if defer {
            msg.defer_opening()
        } else {
            msg
        }
    }

    /// `absorb`, then what the engine does with queued records: open them (here, as
    /// another thread would) and put them back.
    fn absorb_and_open(msg: &mut IncomingMessage, id: MessageId, data: &DataRepr<'_>) -> Absorbed {
        let outcome = msg.absorb(id, data, false, false);
        if outcome != Absorbed::Queued {
            return outcome;
        }
        let key = (crate::engine::SessionHandle(1), id);
        let taken = msg.take_records(key).expect("queued records");
        // While the records are out, packets for the message are refused.
        assert_eq!(msg.absorb(id, data, false, false), Absorbed::Busy);
        let opened = crate::engine::opening::open_taken_here(taken);
        msg.restore_records(opened).expect("the message's own records").0
    }

    #[test]
    fn bytes_beyond_the_grant_are_dropped_and_only_the_granted_prefix_and_opened_contents_are_charged(
    ) {
        let id = MessageId::new(5).unwrap();
        let payload = vec![7u8; 200_000];
        let wire = seal_message(&key(), id, &payload, 16384).unwrap();
        let layout = MessageLayout::for_payload(payload.len(), 16384).unwrap();
        // The header claims the whole message may come unscheduled; we accept 40 000.
        let first = data(&layout, 0, &wire[..1400]);
        let mut msg = IncomingMessage::new(&first, false, keys(), &BufferPool::new(0))
            .unwrap()
            .limit_unscheduled(40_000);
        assert_eq!(msg.granted(), 40_000);
        assert_eq!(msg.charge(), 40_000 + layout.record_count() + 64);
        assert!(msg.charge() < layout.wire_len() as usize / 4);
        let far = data(&layout, 100_000, &wire[100_000..101_400]);
        assert_eq!(msg.absorb(id, &far, false, false), Absorbed::BeyondGrant);
        // A packet straddling the grant keeps only the part below it.
        let straddling = data(&layout, 39_000, &wire[39_000..40_400]);
        assert_eq!(msg.absorb(id, &straddling, false, false), Absorbed::Progress);
        assert_eq!(msg.bytes_received(), 1000);
        // Until record 0 opens, grants stop at its end.
        assert_eq!(msg.grantable_limit(), layout.record_range(0).end as u32);
        assert_eq!(msg.grant_key(), None, "40 000 granted is past record 0 already");
        for offset in (0..40_000).step_by(1400) {
            let end = (offset + 1400).min(40_000);
            msg.absorb(id, &data(&layout, offset as u32, &wire[offset..end]), false, false);
        }
        assert!(msg.authenticated());
        assert_eq!(msg.grantable_limit(), layout.wire_len());
        assert!(msg.grant_key().is_some());
        msg.set_granted(100_000);
        // Records 0 and 1 are open: their contents are charged too.
        assert_eq!(msg.charge(), 100_000 + 2 * 16_384 + layout.record_count() + 64);
        // A sender that leaves granted bytes missing for a silence is stalled: its
        // grant stops counting, and it gets no more until new bytes come.
        assert_eq!(msg.outstanding(), 60_000);
        msg.mark_stalled();
        assert_eq!((msg.outstanding(), msg.grant_key()), (0, None));
        msg.absorb(id, &data(&layout, 40_000, &wire[40_000..41_400]), false, false);
        assert_eq!(msg.outstanding(), 60_000 - 1400);
        assert!(msg.grant_key().is_some());
    }

    #[test]
    fn reassembles_packets_of_any_size_in_reverse_order_with_duplicates() {
        let id = MessageId::new(77).unwrap();
        let payload: Vec<u8> = (0..50_000u32).map(|i| i as u8).collect();
        let wire = seal_message(&key(), id, &payload, 4096).unwrap();
        let layout = MessageLayout::for_payload(payload.len(), 4096).unwrap();
        // 1400-byte packets hold no whole record; 20 000-byte ones hold whole records
        // (opened straight from the packet unless opening is deferred) and pieces.
        for (size, defer) in [(1400, false), (1400, true), (20_000, false), (20_000, true)] {
            let pkts = packets(&wire, &layout, size);
            let first = data(&layout, 0, &pkts[0].1);
            let mut msg = opening(
                IncomingMessage::new(&first, false, keys(), &BufferPool::new(1 << 20)).unwrap(),
                defer,
            );
            msg.set_granted(layout.wire_len());
            let mut last = Absorbed::Progress;
            for (offset, bytes) in pkts.iter().rev() {
                last = absorb_and_open(&mut msg, id, &data(&layout, *offset, bytes));
                // A duplicate of every packet changes nothing, even after records opened.
                let again = msg.absorb(id, &data(&layout, *offset, bytes), false, false);
                assert_eq!(again, Absorbed::Duplicate);
            }
            assert_eq!(last, Absorbed::Complete);
            assert_eq!(msg.into_payload(), payload);
        }
    }

    #[test]
    fn records_opened_in_parts_in_any_order_leave_the_exact_payload() {
        let id = MessageId::new(78).unwrap();
        let payload: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 253) as u8).collect();
        let wire = seal_message(&key(), id, &payload, 4096).unwrap();
        let layout = MessageLayout::for_payload(payload.len(), 4096).unwrap();
        let pkts = packets(&wire, &layout, 1400);
        let first = data(&layout, 0, &pkts[0].1);
        let mut msg = IncomingMessage::new(&first, false, keys(), &BufferPool::new(8 << 20))
            .unwrap()
            .defer_opening();
        msg.set_granted(layout.wire_len());
        let key = (crate::engine::SessionHandle(1), id);
        // The second half first, then the first half: the last record of the first
        // half is followed by an opened record; within each half, parts of four
        // records are adjacent. Parts are opened last to first, as threads may.
        let (early, late) = pkts.split_at(pkts.len() / 2);
        let mut outcome = Absorbed::Progress;
        for half in [late, early] {
            for (offset, bytes) in half {
                msg.absorb(id, &data(&layout, *offset, bytes), false, false);
            }
            let mut batch = super::super::opening::OpenBatch::of(msg.take_records(key).unwrap());
            let mut parts = batch.parts();
            assert!(parts.len() > 3, "several parts: {}", parts.len());
            for part in parts.iter_mut().rev() {
                part.open();
            }
            drop(parts);
            outcome = msg.restore_records(batch.into_only()).unwrap().0;
        }
        assert_eq!(outcome, Absorbed::Complete);
        assert!(msg.into_payload() == payload, "payload differs");
    }

    #[test]
    fn corrupted_record_is_dropped_and_can_be_received_again() {
        let id = MessageId::new(3).unwrap();
        let payload = vec![9u8; 3000];
        let wire = seal_message(&key(), id, &payload, 1000).unwrap();
        let layout = MessageLayout::for_payload(payload.len(), 1000).unwrap();
        for defer in [false, true] {
            let first = data(&layout, 0, &wire[..10]);
            let mut msg = opening(
                IncomingMessage::new(&first, false, keys(), &BufferPool::new(1 << 20)).unwrap(),
                defer,
            );
            let mut bad = wire.clone();
            bad[1100] ^= 1; // inside record 1
            let outcome = absorb_and_open(&mut msg, id, &data(&layout, 0, &bad));
            assert_eq!(outcome, Absorbed::RecordRejected);
            assert!(!msg.gaps(10).is_empty());
            let outcome = absorb_and_open(&mut msg, id, &data(&layout, 0, &wire));
            assert_eq!(outcome, Absorbed::Complete);
            assert_eq!(msg.into_payload(), payload);
        }
    }

    #[test]
    fn forged_length_is_detected_by_the_prologue() {
        let id = MessageId::new(3).unwrap();
        let payload = vec![5u8; 3000];
        let wire = seal_message(&key(), id, &payload, 1000).unwrap();
        let layout = MessageLayout::for_payload(payload.len(), 1000).unwrap();
        // The attacker claims the message ends after two records.
        let forged = MessageLayout::from_wire(layout.record_range(1).end as u32, 1000).unwrap();
        let cut = &wire[..forged.wire_len() as usize];
        for defer in [false, true] {
            let first = data(&forged, 0, cut);
            let mut msg = opening(
                IncomingMessage::new(&first, false, keys(), &BufferPool::new(1 << 20)).unwrap(),
                defer,
            );
            assert_eq!(absorb_and_open(&mut msg, id, &data(&forged, 0, cut)), Absorbed::Forged);
        }
    }

    #[test]
    fn grant_accounting_counts_only_scheduled_bytes() {
        let id = MessageId::new(1).unwrap();
        let payload = vec![0u8; 20_000];
        let wire = seal_message(&key(), id, &payload, 16384).unwrap();
        let layout = MessageLayout::for_payload(payload.len(), 16384).unwrap();
        let mut first = data(&layout, 0, &wire[..1000]);
        first.unscheduled = 5000;
        let mut msg =
            IncomingMessage::new(&first, false, keys(), &BufferPool::new(1 << 20)).unwrap();
        assert_eq!(msg.outstanding(), 0);
        msg.set_granted(9000);
        assert_eq!(msg.outstanding(), 4000);
        let mut pkt = data(&layout, 5000, &wire[5000..6000]);
        pkt.unscheduled = 5000;
        msg.absorb(id, &pkt, false, false);
        assert_eq!(msg.outstanding(), 3000);
        assert_eq!(msg.grant_key(), Some(layout.wire_len() - 1000));
    }
}
