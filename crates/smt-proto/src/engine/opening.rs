//! Record opening off the packet path, so that it can run on other threads.
//!
//! When a DATA packet completes a record of a multi-packet message whose key is
//! known, the record is not opened there: the message is queued. The I/O layer then
//! takes every queued record at once ([`Endpoint::take_records_to_open`]): an
//! [`OpenBatch`] that owns the messages' wire buffers, so the engine (and its lock)
//! is free while the records are opened. The batch splits into [`OpenPart`]s of a
//! few records each, which any thread may open: records are independent because
//! each has its own sequence number (message ID, record index). The batch goes back
//! through [`Endpoint::finish_opening`], which applies the results exactly as if
//! each record had been opened when its last byte arrived: authentication failures
//! drop the record's bytes for retransmission, a forged prologue discards the
//! message, and complete messages are delivered, shortest first.
//!
//! If the I/O layer does nothing, the next [`Endpoint::poll_transmit`] opens the
//! queued records itself, so the engine behaves the same for every caller.

use std::sync::Arc;
use std::time::Instant;

use super::buffers::Buffer;
use super::endpoint::Endpoint;
use super::incoming::open_into_contents;
use super::incoming::Absorbed;
use super::rpc_table::RpcKey;
use super::session::Side;
use super::{client, server};
use crate::record::{MessageError, MessageLayout, RecordKey};
use crate::wire::MessageId;

/// Records per [`OpenPart`] of [`OpenBatch::parts`]: 4 x 16 KiB is about 7 us of
/// AES-GCM here, small enough to balance across threads, large enough that handing
/// a part over costs little and that few records end a part (a part's last record
/// goes through a scratch buffer when the next record is in another part).
const RECORDS_PER_PART: usize = 4;

/// The queued records of one message, taken out of the engine with its buffer.
#[derive(Debug)]
pub(crate) struct TakenRecords {
    pub key: RpcKey,
    pub id: MessageId,
    pub cipher: Arc<RecordKey>,
    pub layout: MessageLayout,
    pub wire: Buffer,
    /// Where the records open to (see `IncomingMessage`).
    pub contents: Buffer,
    /// Record indices, ascending.
    pub records: Vec<usize>,
    /// Per entry of `records`: whether the record after it was open already.
    pub next_opened: Vec<bool>,
    /// One result per entry of `records`, filled in by the parts.
    pub results: Vec<Result<(), MessageError>>,
}

/// Records taken out of the engine to be opened, possibly on other threads. Give it
/// back to [`Endpoint::finish_opening`]; a batch that is dropped instead loses its
/// messages (their RPCs then time out), it does not corrupt anything.
#[derive(Debug, Default)]
pub struct OpenBatch {
    messages: Vec<TakenRecords>,
}

impl OpenBatch {
    /// Whether there is nothing to open.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Sealed bytes to open (to decide whether other threads are worth it).
    pub fn bytes(&self) -> usize {
        self.messages
            .iter()
            .flat_map(|m| m.records.iter().map(|&i| m.layout.record_range(i).len()))
            .sum()
    }

    /// Splits the batch into parts of a few records each, to be opened in any order
    /// on any threads ([`OpenPart::open`]). Shorter messages come first.
    pub fn parts(&mut self) -> Vec<OpenPart<'_>> {
        self.parts_of(RECORDS_PER_PART)
    }

    /// Parts of runs of at most `max_records` consecutive records.
    fn parts_of(&mut self, max_records: usize) -> Vec<OpenPart<'_>> {
        let mut parts = Vec::new();
        for message in &mut self.messages {
            let TakenRecords {
                id,
                cipher,
                layout,
                wire,
                contents,
                records,
                next_opened,
                results,
                ..
            } = message;
            let wire: &[u8] = wire;
            let mut contents_rest: &mut [u8] = contents;
            let mut results_rest: &mut [Result<(), MessageError>] = results;
            let mut consumed = 0;
            let mut i = 0;
            while i < records.len() {
                // A run of consecutive record indices, at most max_records long.
                let mut n = 1;
                while i + n < records.len() && n < max_records && records[i + n] == records[i] + n {
                    n += 1;
                }
                let first = records[i];
                let last = first + n - 1;
                // The last record's content type byte may land on the next record's
                // first byte only if nothing else writes there: that record is not
                // open and not in another part.
                let next_in_batch = records.get(i + n) == Some(&(last + 1));
                let spills = !next_opened[i + n - 1] && !next_in_batch;
                let start = layout.content_range(first).start;
                let end = layout.content_range(last).end + usize::from(spills);
                let (_, rest) = std::mem::take(&mut contents_rest).split_at_mut(start - consumed);
                let (part_contents, rest) = rest.split_at_mut(end - start);
                contents_rest = rest;
                consumed = end;
                let (part_results, rest) = std::mem::take(&mut results_rest).split_at_mut(n);
                results_rest = rest;
                parts.push(OpenPart {
                    cipher,
                    id: *id,
                    layout,
                    first,
                    wire,
                    contents: part_contents,
                    spills,
                    results: part_results,
                });
                i += n;
            }
        }
        parts
    }

    /// Opens every part on this thread (each run of consecutive records as one part).
    pub fn open_here(&mut self) {
        for mut part in self.parts_of(usize::MAX) {
            part.open();
        }
    }
}

/// A run of consecutive records of one message, opened by [`open`] from the
/// message's received bytes into its contents buffer. `Send`: parts of one batch may
/// be opened on different threads at once.
///
/// [`open`]: OpenPart::open
#[derive(Debug)]
pub struct OpenPart<'a> {
    cipher: &'a RecordKey,
    id: MessageId,
    layout: &'a MessageLayout,
    first: usize,
    /// The message's whole wire buffer (read only).
    wire: &'a [u8],
    /// The records' part of the contents buffer, plus the byte after it if `spills`.
    contents: &'a mut [u8],
    spills: bool,
    results: &'a mut [Result<(), MessageError>],
}

impl OpenPart<'_> {
    /// Opens the part's records (authenticating and decrypting them), in ascending
    /// order: each record's content type byte lands on the next one's first byte,
    /// which the next record then overwrites.
    pub fn open(&mut self) {
        let base = self.layout.content_range(self.first).start;
        let count = self.results.len();
        for (n, result) in self.results.iter_mut().enumerate() {
            let index = self.first + n;
            let scratch = n + 1 == count && !self.spills;
            *result = match self.wire.get(self.layout.record_range(index)) {
                Some(record) => open_into_contents(
                    self.cipher,
                    self.id,
                    self.layout,
                    index,
                    record,
                    &mut self.contents[..],
                    base,
                    scratch,
                ),
                None => Err(MessageError::InvalidLayout {
                    wire_len: self.layout.wire_len(),
                    record_size: self.layout.record_size(),
                }),
            };
        }
    }

    /// Sealed bytes in this part.
    pub fn len(&self) -> usize {
        let last = self.first + self.results.len().saturating_sub(1);
        self.layout.record_range(last).end - self.layout.record_range(self.first).start
    }

    /// Whether the part holds no bytes (never, for a part of a batch).
    pub fn is_empty(&self) -> bool {
        self.results.is_empty()
    }
}

impl Endpoint {
    /// Takes the records that received packets completed and that were not opened
    /// yet, with their buffers, shortest message first. Open them
    /// ([`OpenBatch::parts`], on any threads) and give the batch back to
    /// [`finish_opening`](Self::finish_opening). The engine may be used meanwhile;
    /// packets for a message whose records are out are dropped (and asked for again
    /// if needed), so take and finish within one receive round.
    pub fn take_records_to_open(&mut self) -> OpenBatch {
        let mut queue = std::mem::take(&mut self.core.open_queue);
        let length = |rpcs: &super::rpc_table::RpcTable, key: RpcKey| {
            rpcs.get(key).and_then(|rpc| rpc.incoming()).map_or(0, |m| m.len())
        };
        queue.sort_by_key(|&key| (length(&self.rpcs, key), key));
        queue.dedup();
        let mut batch = OpenBatch { messages: Vec::with_capacity(queue.len()) };
        for &key in &queue {
            let taken = self.rpcs.update(key, |rpc| rpc.incoming_mut()?.take_records(key));
            if let Some(Some(taken)) = taken {
                batch.messages.push(taken);
            }
        }
        queue.clear();
        self.core.open_queue = queue;
        batch
    }

    /// Applies an opened batch: delivers the messages it completed, drops the bytes
    /// of records that failed to authenticate (they are asked for again) and
    /// discards messages whose prologue proves their header forged.
    pub fn finish_opening(&mut self, now: Instant, batch: OpenBatch) {
        for taken in batch.messages {
            let key = taken.key;
            let outcome = self.rpcs.update(key, |rpc| {
                let outcome = rpc.incoming_mut()?.restore_records(taken)?;
                if rpc.incoming().is_some_and(|m| m.authenticated()) {
                    rpc.drop_answered_request();
                }
                Some(outcome)
            });
            // The RPC went away (or started another message) while its records were
            // out: the batch's buffer is simply dropped.
            let Some(Some((outcome, rejected))) = outcome else { continue };
            self.core.stats.auth_failures += rejected;
            let (sessions, mut cx) = self.context();
            let Some(session) = sessions.get_mut(&key.0) else { continue };
            match outcome {
                Absorbed::Forged => cx.core.stats.auth_failures += 1,
                Absorbed::Complete => {}
                _ => continue,
            }
            match &session.side {
                Side::Server(_) => server::on_opened(&mut cx, session, key, outcome),
                Side::Client(_) => client::on_opened(&mut cx, session, key, now, outcome),
            }
        }
        self.core.grants_due = true;
    }

    /// Whether received records wait to be opened.
    pub fn has_records_to_open(&self) -> bool {
        !self.core.open_queue.is_empty()
    }

    /// Opens waiting records on this thread (what `poll_transmit` does if the I/O
    /// layer did not).
    pub(crate) fn open_received_here(&mut self, now: Instant) {
        if self.core.open_queue.is_empty() {
            return;
        }
        let mut batch = self.take_records_to_open();
        batch.open_here();
        self.finish_opening(now, batch);
    }
}

/// Opens one message's taken records on this thread (for tests of the parts).
#[cfg(test)]
pub(crate) fn open_taken_here(taken: TakenRecords) -> TakenRecords {
    let mut batch = OpenBatch::of(taken);
    batch.open_here();
    batch.into_only()
}

#[cfg(test)]
impl OpenBatch {
    /// A batch of one message's taken records.
    pub(crate) fn of(taken: TakenRecords) -> OpenBatch {
        OpenBatch { messages: vec![taken] }
    }

    /// The one message of a batch made by `of`.
    pub(crate) fn into_only(mut self) -> TakenRecords {
        self.messages.pop().expect("the batch holds the message it was given")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn parts_can_move_to_other_threads() {
        assert_send::<OpenPart<'static>>();
        assert_send::<OpenBatch>();
    }
}
