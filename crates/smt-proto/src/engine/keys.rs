//! A session's traffic keys and their TLS 1.3 key updates, one type per direction.
//!
//! SMT's messages arrive in any order, so a key update cannot be a point in a byte
//! stream as in TLS over TCP. Instead every message carries the KEY_PHASE bit of the
//! key that sealed it (PROTOCOL.md 8.7):
//!
//! * [`TxKeys`] counts the records sealed under the current key and moves to the next
//!   generation once `update_after` records were sealed, but only after the peer
//!   provably received a message of the current generation (so the peer is never two
//!   generations behind and one bit tells old from current).
//! * [`RxKeys`] opens each message with the key its phase bit names: the current key,
//!   or around an update the previous key (kept for a grace period) or the next key
//!   (derived when first needed). A message that opens with the next key proves the
//!   peer updated, and the receiver follows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::event::CallError;
use crate::record::{RecordKey, TrafficSecret};

/// The key (and its phase bit and generation) a message is sealed with.
#[derive(Debug, Clone)]
pub(crate) struct SealingKey {
    pub key: Arc<RecordKey>,
    pub phase: bool,
    pub generation: u64,
}

/// What this endpoint sends with: the current key, its usage, and the update state.
#[derive(Debug)]
pub(crate) struct TxKeys {
    key: Arc<RecordKey>,
    /// The secret behind `key`; without it the key cannot be updated.
    secret: Option<TrafficSecret>,
    /// KEY_PHASE bit of messages sealed with `key`.
    phase: bool,
    /// How many updates happened before `key`.
    generation: u64,
    /// Records sealed (or promised to messages being sealed) under `key`.
    records: u64,
    /// Highest generation the peer provably received (it answered or acknowledged a
    /// message sealed with it).
    confirmed: u64,
}

/// Whether [`TxKeys::charge`] updated the key on the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Charged {
    SameKey,
    Updated,
}

impl TxKeys {
    pub(crate) fn new(key: RecordKey, secret: Option<TrafficSecret>) -> TxKeys {
        TxKeys { key: Arc::new(key), secret, phase: false, generation: 0, records: 0, confirmed: 0 }
    }

    /// The key in use, for reading its suite.
    pub(crate) fn current(&self) -> &RecordKey {
        &self.key
    }

    /// Reserves `records` records of the current key for one message, updating the
    /// key first when `update_after` records were sealed with it and the peer has
    /// confirmed the previous update. Refuses if the message would pass `limit`.
    pub(crate) fn charge(
        &mut self,
        records: u64,
        limit: u64,
        update_after: u64,
    ) -> Result<(SealingKey, Charged), CallError> {
        let mut charged = Charged::SameKey;
        let due = self.records.saturating_add(records) > update_after.min(limit);
        if due && self.confirmed == self.generation {
            if let Some(secret) = self.secret.take() {
                let next = secret.next();
                self.key = Arc::new(next.record_key());
                self.secret = Some(next);
                self.phase = !self.phase;
                self.generation += 1;
                self.records = 0;
                charged = Charged::Updated;
            }
        }
        if self.records.saturating_add(records) > limit {
            return Err(CallError::KeyExhausted(limit));
        }
        self.records += records;
        let key =
            SealingKey { key: self.key.clone(), phase: self.phase, generation: self.generation };
        Ok((key, charged))
    }

    /// The peer received a message sealed with `generation`.
    pub(crate) fn confirm(&mut self, generation: u64) {
        self.confirmed = self.confirmed.max(generation);
    }
}

/// One key that may open a peer's message, and whether it is the peer's next key.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub key: Arc<RecordKey>,
    pub is_next: bool,
}

/// The keys a message with a given phase bit may be sealed with, most likely first.
#[derive(Debug, Clone)]
pub(crate) struct Candidates {
    first: Candidate,
    second: Option<Candidate>,
}

impl Candidates {
    fn one(key: Arc<RecordKey>) -> Candidates {
        Candidates { first: Candidate { key, is_next: false }, second: None }
    }

    /// Whether exactly one key is possible and it is not the next key (the common
    /// case: records open in place without trial decryption).
    pub(crate) fn only(&self) -> Option<&Arc<RecordKey>> {
        (self.second.is_none() && !self.first.is_next).then_some(&self.first.key)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Candidate> {
        core::iter::once(&self.first).chain(self.second.as_ref())
    }

    /// Narrows the candidates to the one that opened a record.
    pub(crate) fn keep(&mut self, index: usize) {
        if index == 1 {
            if let Some(second) = self.second.take() {
                self.first = second;
            }
        }
        self.second = None;
    }

    #[cfg(test)]
    pub(crate) fn first(&self) -> &Candidate {
        &self.first
    }
}

/// What this endpoint opens the peer's messages with.
#[derive(Debug)]
pub(crate) struct RxKeys {
    key: Arc<RecordKey>,
    secret: Option<TrafficSecret>,
    /// KEY_PHASE bit of the peer's current key.
    phase: bool,
    /// The peer's previous key and until when it is kept, for its messages sealed
    /// before its update and still arriving.
    previous: Option<(Arc<RecordKey>, Instant)>,
    /// The peer's next key, derived when first needed.
    next: Option<Arc<RecordKey>>,
}

impl RxKeys {
    pub(crate) fn new(key: RecordKey, secret: Option<TrafficSecret>) -> RxKeys {
        RxKeys { key: Arc::new(key), secret, phase: false, previous: None, next: None }
    }

    /// The peer's current key.
    pub(crate) fn current(&self) -> &RecordKey {
        &self.key
    }

    /// Keys to try for a peer message whose KEY_PHASE bit is `phase`: the current key
    /// for the current phase; otherwise the previous key (if still kept) and the next
    /// one (if the secret is known). `None` if no key can open it.
    pub(crate) fn candidates(&mut self, phase: bool, now: Instant) -> Option<Candidates> {
        if phase == self.phase {
            return Some(Candidates::one(self.key.clone()));
        }
        let previous = self
            .previous
            .as_ref()
            .filter(|(_, until)| now < *until)
            .map(|(key, _)| Candidate { key: key.clone(), is_next: false });
        let next = match (&self.secret, &mut self.next) {
            (Some(_), Some(next)) => Some(next.clone()),
            (Some(secret), slot @ None) => {
                Some(slot.insert(Arc::new(secret.next().record_key())).clone())
            }
            (None, _) => None,
        }
        .map(|key| Candidate { key, is_next: true });
        match (previous, next) {
            (Some(first), second) => Some(Candidates { first, second }),
            (None, Some(first)) => Some(Candidates { first, second: None }),
            (None, None) => None,
        }
    }

    /// A record of the peer opened with `key`, found among the next-key candidates:
    /// if it is still our next key, the peer updated, so follow it, keeping the
    /// current key for `grace`. True if the keys advanced.
    pub(crate) fn advance_if_next(
        &mut self,
        key: &Arc<RecordKey>,
        now: Instant,
        grace: Duration,
    ) -> bool {
        if !self.next.as_ref().is_some_and(|next| Arc::ptr_eq(next, key)) {
            return false;
        }
        let (Some(secret), Some(next)) = (self.secret.take(), self.next.take()) else {
            return false;
        };
        let previous = std::mem::replace(&mut self.key, next);
        self.previous = Some((previous, now + grace));
        self.secret = Some(secret.next());
        self.phase = !self.phase;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::CipherSuite;

    fn secret(byte: u8) -> TrafficSecret {
        TrafficSecret::new(CipherSuite::Aes128GcmSha256, &[byte; 32]).unwrap()
    }

    #[test]
    fn sender_updates_only_after_the_previous_update_is_confirmed() {
        let s = secret(1);
        let mut tx = TxKeys::new(s.record_key(), Some(s));
        let (k, c) = tx.charge(5, 100, 5).unwrap();
        assert_eq!((k.generation, k.phase, c), (0, false, Charged::SameKey));
        let (k, c) = tx.charge(1, 100, 5).unwrap();
        assert_eq!((k.generation, k.phase, c), (1, true, Charged::Updated));
        // Generation 1 is not confirmed yet: no second update however many records.
        let (k, _) = tx.charge(50, 100, 5).unwrap();
        assert_eq!(k.generation, 1);
        tx.confirm(1);
        let (k, c) = tx.charge(1, 100, 5).unwrap();
        assert_eq!((k.generation, k.phase, c), (2, false, Charged::Updated));
    }

    #[test]
    fn sender_without_secret_refuses_past_the_limit() {
        let mut tx = TxKeys::new(secret(2).record_key(), None);
        tx.charge(10, 10, 5).unwrap();
        assert_eq!(tx.charge(1, 10, 5).unwrap_err(), CallError::KeyExhausted(10));
    }

    #[test]
    fn receiver_follows_the_next_key_and_keeps_the_previous_for_the_grace_period() {
        let s = secret(3);
        let mut rx = RxKeys::new(s.record_key(), Some(s));
        let now = Instant::now();
        let current = rx.candidates(false, now).unwrap();
        assert!(current.only().is_some());
        let other = rx.candidates(true, now).unwrap();
        assert!(other.only().is_none());
        let next = other.first().clone();
        assert!(next.is_next);
        assert!(rx.advance_if_next(&next.key, now, Duration::from_secs(1)));
        // The old phase now names the previous key (and the next-next key).
        let old = rx.candidates(false, now).unwrap();
        assert!(!old.first().is_next);
        assert_eq!(old.iter().count(), 2);
        // After the grace period only the next-next key remains for that phase.
        let late = rx.candidates(false, now + Duration::from_secs(2)).unwrap();
        assert!(late.first().is_next);
        assert_eq!(late.iter().count(), 1);
    }

    #[test]
    fn receiver_without_secret_has_no_key_for_the_other_phase() {
        let mut rx = RxKeys::new(secret(4).record_key(), None);
        assert!(rx.candidates(true, Instant::now()).is_none());
    }
}
