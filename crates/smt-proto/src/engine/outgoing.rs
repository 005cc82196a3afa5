//! The sender's side of one message: its sealed wire image and what may be sent next.

use core::ops::Range;
use std::time::{Duration, Instant};

use super::buffers::Buffer;
use super::ranges::RangeSet;
use crate::record::MessageLayout;

/// A message being sent. The sealed wire image is kept until the peer has it, so
/// every retransmission is byte-identical ciphertext (same record, same sequence
/// number, same plaintext): a nonce is never reused with different data.
#[derive(Debug)]
pub(crate) struct OutgoingMessage {
    layout: MessageLayout,
    wire: Buffer,
    /// Bytes the receiver may receive without a grant, as announced in DATA headers.
    unscheduled: u32,
    /// The sender may transmit `[0, granted)`.
    granted: u32,
    /// First byte never transmitted.
    next_offset: u32,
    /// Ranges below `next_offset` the receiver asked for again.
    resend: RangeSet,
    /// Ranges queued again on request since `resent_since`: each byte is sent again
    /// at most once per resend interval, so repeated (or forged) RESENDs cannot
    /// multiply the traffic a message causes.
    recently_resent: RangeSet,
    resent_since: Option<Instant>,
    /// Priority from the latest GRANT or RESEND, echoed in DATA headers.
    priority: u8,
    /// Whether the next packets repeat bytes sent before (restart after RPC_UNKNOWN).
    restarted_below: u32,
    /// KEY_PHASE bit of the key that sealed the message, carried by its DATA packets.
    phase: bool,
}

impl OutgoingMessage {
    pub(crate) fn new(layout: MessageLayout, wire: Buffer, unscheduled_bytes: u32) -> Self {
        let len = layout.wire_len();
        let unscheduled = unscheduled_bytes.min(len);
        OutgoingMessage {
            layout,
            wire,
            unscheduled,
            granted: unscheduled,
            next_offset: 0,
            resend: RangeSet::default(),
            recently_resent: RangeSet::default(),
            resent_since: None,
            priority: 0,
            restarted_below: 0,
            phase: false,
        }
    }

    pub(crate) fn len(&self) -> u32 {
        self.layout.wire_len()
    }

    /// Bytes of the sealed image held for retransmission.
    pub(crate) fn wire_len(&self) -> usize {
        self.wire.len()
    }

    /// The sealed bytes of `range` (a range returned by `next_packet`).
    pub(crate) fn bytes(&self, range: Range<u32>) -> &[u8] {
        &self.wire[range.start as usize..range.end as usize]
    }

    pub(crate) fn layout(&self) -> &MessageLayout {
        &self.layout
    }

    pub(crate) fn unscheduled(&self) -> u32 {
        self.unscheduled
    }

    pub(crate) fn granted(&self) -> u32 {
        self.granted
    }

    pub(crate) fn priority(&self) -> u8 {
        self.priority
    }

    /// KEY_PHASE bit for the message's DATA packets.
    pub(crate) fn phase(&self) -> bool {
        self.phase
    }

    pub(crate) fn set_phase(&mut self, phase: bool) {
        self.phase = phase;
    }

    /// Bytes never sent: the sender's SRPT key.
    pub(crate) fn remaining(&self) -> u32 {
        self.len() - self.next_offset
    }

    /// `Some(remaining)` while there is something to transmit now.
    pub(crate) fn ready_key(&self) -> Option<u32> {
        (!self.resend.is_empty() || self.next_offset < self.granted).then(|| self.remaining())
    }

    /// Raises the grant (grants only grow).
    pub(crate) fn grant(&mut self, offset: u32, priority: u8) {
        let offset = offset.min(self.len());
        if offset > self.granted {
            self.granted = offset;
        }
        self.priority = priority;
    }

    /// Queues `range` for retransmission: only bytes already sent (others need no
    /// queueing), and only those not already queued again within the last
    /// `interval` (a receiver asks again only after its own resend interval).
    pub(crate) fn request_resend(&mut self, range: Range<u32>, now: Instant, interval: Duration) {
        let end = range.end.min(self.next_offset);
        if range.start >= end {
            return;
        }
        let fresh_window =
            self.resent_since.is_none_or(|since| now.saturating_duration_since(since) >= interval);
        if fresh_window {
            self.recently_resent = RangeSet::default();
            self.resent_since = Some(now);
        }
        let resend = &mut self.resend;
        self.recently_resent.for_each_missing(range.start..end, |part| {
            resend.insert(part);
        });
        self.recently_resent.insert(range.start..end);
    }

    /// Starts over from byte 0 (the receiver lost all state for the message).
    pub(crate) fn restart(&mut self) {
        self.restarted_below = self.restarted_below.max(self.next_offset);
        self.next_offset = 0;
        self.granted = self.unscheduled;
        self.resend = RangeSet::default();
        self.recently_resent = RangeSet::default();
        self.resent_since = None;
    }

    /// The next range to put in a DATA packet, and whether it is a retransmission.
    pub(crate) fn next_packet(&mut self, max_payload: usize) -> Option<(Range<u32>, bool)> {
        let max = max_payload as u32;
        if let Some(range) = self.resend.pop_front(max) {
            return Some((range, true));
        }
        if self.next_offset < self.granted {
            let start = self.next_offset;
            let end = self.granted.min(start.saturating_add(max));
            self.next_offset = end;
            return Some((start..end, start < self.restarted_below));
        }
        None
    }

    /// Bytes of the next packet without taking it (to group equal sizes for GSO).
    pub(crate) fn peek_packet_len(&self, max_payload: usize) -> Option<usize> {
        let max = max_payload as u32;
        if let Some(r) = self.resend.first() {
            return Some((r.end - r.start).min(max.max(1)) as usize);
        }
        (self.next_offset < self.granted).then(|| {
            (self.granted.min(self.next_offset.saturating_add(max)) - self.next_offset) as usize
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(payload: usize) -> OutgoingMessage {
        let layout = MessageLayout::for_payload(payload, 16384).unwrap();
        let wire = Buffer::from_vec(vec![0; layout.wire_len() as usize]);
        OutgoingMessage::new(layout, wire, 3000)
    }

    #[test]
    fn sends_unscheduled_then_waits_for_grants() {
        let mut m = message(10_000);
        assert_eq!(m.next_packet(1400), Some((0..1400, false)));
        assert_eq!(m.next_packet(1400), Some((1400..2800, false)));
        assert_eq!(m.next_packet(1400), Some((2800..3000, false)));
        assert_eq!(m.next_packet(1400), None);
        assert_eq!(m.ready_key(), None);
        m.grant(5000, 1);
        assert_eq!(m.ready_key(), Some(m.len() - 3000));
        assert_eq!(m.next_packet(1400), Some((3000..4400, false)));
    }

    #[test]
    fn resend_goes_first_and_is_flagged() {
        let mut m = message(10_000);
        while m.next_packet(1400).is_some() {}
        let now = Instant::now();
        m.request_resend(100..200, now, INTERVAL);
        m.request_resend(9000..9100, now, INTERVAL); // never sent: nothing to queue
        assert_eq!(m.next_packet(1400), Some((100..200, true)));
        assert_eq!(m.next_packet(1400), None);
    }

    const INTERVAL: Duration = Duration::from_millis(3);

    #[test]
    fn repeated_resends_within_one_interval_queue_each_byte_once() {
        let mut m = message(10_000);
        m.grant(u32::MAX, 0);
        while m.next_packet(1400).is_some() {}
        let now = Instant::now();
        // A forger repeating RESEND(0, everything) at line rate...
        for i in 0..1000 {
            m.request_resend(0..u32::MAX, now + Duration::from_micros(i), INTERVAL);
        }
        let mut resent = 0;
        while let Some((range, _)) = m.next_packet(1400) {
            resent += range.end - range.start;
        }
        // ...draws the message once per interval, not once per RESEND.
        assert_eq!(resent, m.len());
        m.request_resend(100..200, now + INTERVAL / 2, INTERVAL);
        assert_eq!(m.next_packet(1400), None, "asked again too soon");
        m.request_resend(100..200, now + INTERVAL, INTERVAL);
        assert_eq!(m.next_packet(1400), Some((100..200, true)), "a later ask is honoured");
    }

    #[test]
    fn restart_resends_from_zero_as_retransmission() {
        let mut m = message(100);
        let (first, rtx) = m.next_packet(1400).unwrap();
        assert!(!rtx);
        m.restart();
        assert_eq!(m.next_packet(1400), Some((first, true)));
    }

    #[test]
    fn peek_matches_next() {
        let mut m = message(10_000);
        m.grant(u32::MAX, 0);
        m.next_packet(1000);
        m.request_resend(10..20, Instant::now(), INTERVAL);
        for _ in 0..20 {
            let peek = m.peek_packet_len(1400);
            let next = m.next_packet(1400).map(|(r, _)| (r.end - r.start) as usize);
            assert_eq!(peek, next);
        }
    }
}
