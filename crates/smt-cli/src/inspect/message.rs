//! One message of a session, put back together from its DATA packets and opened
//! record by record as each record's bytes are complete, as a receiver does
//! (PROTOCOL.md 7.3): bytes already held are not overwritten, and a record that
//! fails to open is forgotten so that a later copy can be tried.
//!
//! Memory follows the capture: only bytes of records not yet opened are held, as
//! the chunks that brought them (a forged header announcing a huge message costs
//! nothing until bytes arrive).

use std::collections::BTreeMap;

use smt_proto::record::{open_record_slice, MessageError, MessageLayout, RecordError};
use smt_proto::record::{PROLOGUE_LEN, RECORD_HEADER_LEN};
use smt_proto::wire::MessageId;

use super::keys::DirectionKeys;
use super::ranges::RangeSet;

/// Plaintext bytes kept from the start of each payload, for the report.
pub const HEAD_LEN: usize = 16;

/// Requests go from client to server, responses back (PROTOCOL.md 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    Request,
    Response,
}

/// Why a record did not open, with the count of copies that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub error: MessageError,
    pub copies: u32,
}

impl Failure {
    /// A short description: "authentication FAILED" for a bad tag, which is what a
    /// modified or forged record (or the wrong key) looks like.
    pub fn describe(&self) -> String {
        match self.error {
            MessageError::Record { error: RecordError::AuthenticationFailed, .. } => {
                "authentication FAILED".to_owned()
            }
            MessageError::Record { error: RecordError::MalformedHeader, .. } => {
                "malformed TLS record header".to_owned()
            }
            MessageError::PrologueMismatch { payload_len, record_size } => format!(
                "prologue mismatch: the authenticated prologue says {payload_len} bytes in \
                 {record_size}-byte records, so the plaintext header was forged"
            ),
            other => other.to_string(),
        }
    }
}

/// The bytes of a record that has not opened yet.
#[derive(Debug, Default)]
struct PendingRecord {
    held: RangeSet,
    /// (wire offset, bytes), disjoint.
    chunks: Vec<(u64, Vec<u8>)>,
}

/// One message (one direction of one RPC) as seen in the capture.
#[derive(Debug)]
pub struct MessageState {
    pub direction: Direction,
    pub id: MessageId,
    pub layout: MessageLayout,
    pub key_phase: bool,
    /// Frame number of the first DATA packet.
    pub first_frame: u64,
    pub data_packets: u64,
    /// DATA packets carrying bytes that had already been seen.
    pub duplicate_packets: u64,
    /// DATA packets with the RETRANSMIT flag.
    pub flagged_retransmits: u64,
    seen: RangeSet,
    pending: BTreeMap<usize, PendingRecord>,
    opened: RangeSet,
    failures: BTreeMap<usize, Failure>,
    /// The key generation the message opened with (set by the first record that opens).
    pub generation: Option<usize>,
    head: [u8; HEAD_LEN],
    head_have: [bool; HEAD_LEN],
}

impl MessageState {
    pub fn new(
        direction: Direction,
        id: MessageId,
        layout: MessageLayout,
        key_phase: bool,
        first_frame: u64,
    ) -> MessageState {
        MessageState {
            direction,
            id,
            layout,
            key_phase,
            first_frame,
            data_packets: 0,
            duplicate_packets: 0,
            flagged_retransmits: 0,
            seen: RangeSet::default(),
            pending: BTreeMap::new(),
            opened: RangeSet::default(),
            failures: BTreeMap::new(),
            generation: None,
            head: [0; HEAD_LEN],
            head_have: [false; HEAD_LEN],
        }
    }

    /// Takes the payload of one DATA packet at wire offset `offset`. With `keep`
    /// false only the byte ranges are noted (no keys: nothing to decrypt).
    pub fn add(&mut self, offset: u32, payload: &[u8], retransmit_flag: bool, keep: bool) {
        self.data_packets += 1;
        self.flagged_retransmits += u64::from(retransmit_flag);
        let start = u64::from(offset);
        let end = start + payload.len() as u64;
        // The parser guarantees offset + len <= message length, but check anyway:
        // nothing here may index out of the layout.
        let wire_len = u64::from(self.layout.wire_len());
        if payload.is_empty() || end > wire_len {
            return;
        }
        if self.seen.insert(start, end) {
            self.duplicate_packets += 1;
        }
        if !keep {
            return;
        }
        let first = self.layout.record_containing(offset as usize);
        let last = self.layout.record_containing((end - 1) as usize);
        for index in first..=last {
            if self.opened.covers(index as u64, index as u64 + 1) {
                continue;
            }
            let range = self.layout.record_range(index);
            let (r_start, r_end) = (range.start as u64, range.end as u64);
            let (from, to) = (start.max(r_start), end.min(r_end));
            let record = self.pending.entry(index).or_default();
            for (gap_start, gap_end) in record.held.gaps(from, to) {
                let bytes = payload.get((gap_start - start) as usize..(gap_end - start) as usize);
                if let Some(bytes) = bytes {
                    record.chunks.push((gap_start, bytes.to_vec()));
                    record.held.insert(gap_start, gap_end);
                }
            }
        }
    }

    /// Whether every byte of the wire image has been seen.
    pub fn complete(&self) -> bool {
        self.seen.covers(0, u64::from(self.layout.wire_len()))
    }

    /// Records opened successfully.
    pub fn records_opened(&self) -> u64 {
        self.opened.len()
    }

    /// Records that failed to open and never opened from a later copy.
    pub fn failed_records(&self) -> impl Iterator<Item = (usize, &Failure)> {
        self.failures
            .iter()
            .filter(|(&index, _)| !self.opened.covers(index as u64, index as u64 + 1))
            .map(|(&index, failure)| (index, failure))
    }

    /// Copies of records that failed although a later copy opened.
    pub fn recovered_failures(&self) -> u32 {
        self.failures
            .iter()
            .filter(|(&index, _)| self.opened.covers(index as u64, index as u64 + 1))
            .map(|(_, f)| f.copies)
            .sum()
    }

    /// The first plaintext payload bytes (up to [`HEAD_LEN`]) decrypted so far.
    pub fn head(&self) -> &[u8] {
        let wanted = self.layout.payload_len().min(HEAD_LEN);
        let have = self.head_have[..wanted].iter().position(|&h| !h).unwrap_or(wanted);
        &self.head[..have]
    }

    fn record_is_complete(&self, index: usize, record: &PendingRecord) -> bool {
        let range = self.layout.record_range(index);
        record.held.covers(range.start as u64, range.end as u64)
    }

    /// The bytes of pending record `index`, if all are present.
    fn assemble(&self, index: usize) -> Option<Vec<u8>> {
        let record = self.pending.get(&index)?;
        if !self.record_is_complete(index, record) {
            return None;
        }
        let range = self.layout.record_range(index);
        let mut bytes = vec![0u8; range.len()];
        for (at, chunk) in &record.chunks {
            let from = usize::try_from(*at).ok()?.checked_sub(range.start)?;
            bytes.get_mut(from..from + chunk.len())?.copy_from_slice(chunk);
        }
        Some(bytes)
    }

    /// Whether some complete record of this message opens with `keys`, without
    /// changing any state: used to find the cipher suite when the ServerHello is not
    /// in the capture.
    pub fn opens_with(&self, keys: &mut DirectionKeys) -> bool {
        let Some(index) = self
            .pending
            .iter()
            .find(|(&index, record)| self.record_is_complete(index, record))
            .map(|(&index, _)| index)
        else {
            return false;
        };
        let Some(bytes) = self.assemble(index) else { return false };
        keys.candidates(self.key_phase).into_iter().any(|generation| {
            let mut copy = bytes.clone();
            keys.key(generation).is_some_and(|key| {
                open_record_slice(key, self.id, &self.layout, index, &mut copy).is_ok()
            })
        })
    }

    /// Opens every record whose bytes are complete.
    pub fn open_complete(&mut self, keys: &mut DirectionKeys) {
        let complete: Vec<usize> = self
            .pending
            .iter()
            .filter(|(&index, record)| self.record_is_complete(index, record))
            .map(|(&index, _)| index)
            .collect();
        for index in complete {
            let Some(bytes) = self.assemble(index) else { continue };
            // Forget the bytes whatever happens: opened, they are plaintext now;
            // failed, a later copy may bring good ones (as a receiver does).
            self.pending.remove(&index);
            self.open_record(keys, index, bytes);
        }
    }

    fn open_record(&mut self, keys: &mut DirectionKeys, index: usize, bytes: Vec<u8>) {
        let generations = match self.generation {
            Some(generation) => vec![generation],
            None => keys.candidates(self.key_phase),
        };
        let mut first_error = None;
        for generation in generations {
            let Some(key) = keys.key(generation) else { continue };
            let mut record = bytes.clone();
            match open_record_slice(key, self.id, &self.layout, index, &mut record) {
                Ok(()) => {
                    self.generation = Some(generation);
                    keys.confirm(generation);
                    self.opened.insert(index as u64, index as u64 + 1);
                    self.keep_head(index, &record);
                    return;
                }
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        let error = first_error
            .unwrap_or(MessageError::Record { index, error: RecordError::AuthenticationFailed });
        let failure = self.failures.entry(index).or_insert(Failure { error, copies: 0 });
        failure.error = error;
        failure.copies += 1;
    }

    /// Copies the payload bytes of opened record `index` that fall in the head.
    fn keep_head(&mut self, index: usize, record: &[u8]) {
        let payload = self.layout.payload_range(index);
        if payload.start >= HEAD_LEN {
            return;
        }
        let skip = if index == 0 { PROLOGUE_LEN } else { 0 };
        let content_start = RECORD_HEADER_LEN + skip;
        for (i, at) in (payload.start..payload.end.min(HEAD_LEN)).enumerate() {
            if let (Some(&byte), Some(slot)) =
                (record.get(content_start + i), self.head.get_mut(at))
            {
                *slot = byte;
                self.head_have[at] = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use smt_proto::record::{seal_message, CipherSuite, TrafficSecret};

    use super::*;

    const SECRET: [u8; 32] = [5; 32];

    fn keys() -> DirectionKeys {
        DirectionKeys::new(CipherSuite::Aes128GcmSha256, &SECRET).unwrap()
    }

    fn sealed(payload: &[u8], record_size: usize) -> (MessageLayout, Vec<u8>) {
        let key = TrafficSecret::new(CipherSuite::Aes128GcmSha256, &SECRET).unwrap().record_key();
        let wire = seal_message(&key, MessageId::new(3).unwrap(), payload, record_size).unwrap();
        (MessageLayout::for_payload(payload.len(), record_size).unwrap(), wire)
    }

    fn message(layout: MessageLayout) -> MessageState {
        MessageState::new(Direction::Request, MessageId::new(3).unwrap(), layout, false, 1)
    }

    #[test]
    fn packets_in_any_order_open_every_record_and_keep_the_first_bytes() {
        let payload: Vec<u8> = (0..100u8).collect();
        // Record size 8: record 0 holds only the prologue, the head spans records 1-2.
        let (layout, wire) = sealed(&payload, 8);
        let mut m = message(layout);
        let mut keys = keys();
        let cuts = [0, 50, 120, 200, wire.len()];
        for pair in cuts.windows(2).rev() {
            m.add(pair[0] as u32, &wire[pair[0]..pair[1]], false, true);
            m.open_complete(&mut keys);
        }
        assert!(m.complete());
        assert_eq!(m.records_opened(), layout.record_count() as u64);
        assert_eq!(m.failed_records().count(), 0);
        assert_eq!(m.head(), &payload[..HEAD_LEN]);
        assert_eq!((m.data_packets, m.duplicate_packets), (4, 0));
        assert_eq!(m.generation, Some(0));
    }

    #[test]
    fn a_modified_record_fails_and_a_later_good_copy_recovers_it() {
        let (layout, wire) = sealed(&[7u8; 40_000], 16384);
        let mut m = message(layout);
        let mut keys = keys();
        let mut bad = wire.clone();
        bad[16406 + 100] ^= 1; // inside record 1's ciphertext
        m.add(0, &bad, false, true);
        m.open_complete(&mut keys);
        assert_eq!(m.records_opened(), 2);
        let failed: Vec<(usize, String)> =
            m.failed_records().map(|(i, f)| (i, f.describe())).collect();
        assert_eq!(failed, vec![(1, "authentication FAILED".to_owned())]);
        assert!(m.complete(), "all bytes were seen, though not all opened");

        // The retransmission brings the genuine bytes of record 1.
        m.add(16000, &wire[16000..33000], true, true);
        m.open_complete(&mut keys);
        assert_eq!(m.records_opened(), 3);
        assert_eq!(m.failed_records().count(), 0);
        assert_eq!(m.recovered_failures(), 1);
        assert_eq!((m.duplicate_packets, m.flagged_retransmits), (1, 1));
    }

    #[test]
    fn without_keys_only_ranges_are_counted_and_no_bytes_kept() {
        let (layout, wire) = sealed(&[1u8; 1000], 16384);
        let mut m = message(layout);
        m.add(0, &wire[..500], false, false);
        m.add(400, &wire[400..], false, false);
        assert!(m.complete());
        assert_eq!(m.duplicate_packets, 1);
        assert!(m.pending.is_empty());
        assert_eq!(m.head(), b"");
    }

    #[test]
    fn a_packet_beyond_the_layout_is_ignored() {
        let (layout, wire) = sealed(&[1u8; 10], 16384);
        let mut m = message(layout);
        m.add(u32::MAX, &wire, false, true);
        m.add(0, &[], false, true);
        assert!(!m.complete());
        assert!(m.pending.is_empty());
    }

    #[test]
    fn a_message_sealed_after_a_key_update_opens_with_the_next_generation() {
        let next = TrafficSecret::new(CipherSuite::Aes128GcmSha256, &SECRET).unwrap().next();
        let id = MessageId::new(3).unwrap();
        let wire = seal_message(&next.record_key(), id, b"updated", 16384).unwrap();
        let layout = MessageLayout::for_payload(7, 16384).unwrap();
        let mut m = MessageState::new(Direction::Response, id, layout, true, 1);
        let mut keys = keys();
        m.add(0, &wire, false, true);
        m.open_complete(&mut keys);
        assert_eq!(m.generation, Some(1));
        assert_eq!(m.head(), b"updated");
        assert_eq!(keys.candidates(true), vec![1]);
    }
}
