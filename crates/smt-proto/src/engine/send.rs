//! The transmit path: SRPT choice of the next message, GSO batches, GRANT scheduling.

use std::time::Instant;

use super::endpoint::{snap_in, snap_out, Endpoint, Transmit};
use crate::wire::{
    AckRepr, Body, DataRepr, GrantRepr, MessageId, PacketRepr, PacketType, MAX_ACKS_PER_PACKET,
};

/// Bytes of a DATA packet before its payload (common header + DATA body).
pub const DATA_HEADER_LEN: usize = crate::wire::HEADER_LEN + 16;

/// Most bytes in one transmit batch (the payload limit of a UDP GSO send).
const GSO_MAX_BYTES: usize = 65_000;

impl Endpoint {
    /// Writes the next batch of datagrams into `buf` (cleared first). Control packets
    /// go first, then DATA of the message with the fewest remaining bytes, then
    /// acknowledgements.
    pub fn poll_transmit(&mut self, _now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        buf.clear();
        if let Some((destination, bytes)) = self.core.control.pop_front() {
            buf.extend_from_slice(&bytes);
            self.core.stats.datagrams_sent += 1;
            return Some(Transmit { destination, size: buf.len(), segment_size: None });
        }
        // Data before acknowledgements: a request must not wait behind the ACK that
        // travels with it.
        if let Some(transmit) = self.transmit_data(buf) {
            return Some(transmit);
        }
        self.transmit_ack(buf)
    }

    fn transmit_ack(&mut self, buf: &mut Vec<u8>) -> Option<Transmit> {
        while let Some(h) = self.core.acks_due.pop_first() {
            let Some(session) = self.sessions.get_mut(&h) else { continue };
            if session.pending_acks.is_empty() {
                continue;
            }
            let n = session.pending_acks.len().min(MAX_ACKS_PER_PACKET);
            let ids: Vec<MessageId> = session.pending_acks.drain(..n).collect();
            if !session.pending_acks.is_empty() {
                self.core.acks_due.insert(h);
            }
            // n <= MAX_ACKS_PER_PACKET, so AckRepr::new succeeds.
            let Some(ack) = AckRepr::new(&ids) else { continue };
            let packet = PacketRepr {
                header: self.core.header(session, PacketType::Ack, MessageId::default()),
                body: Body::Ack(ack),
            };
            buf.resize(packet.buffer_len(), 0);
            packet.emit(buf);
            self.core.stats.datagrams_sent += 1;
            return Some(Transmit {
                destination: session.peer,
                size: buf.len(),
                segment_size: None,
            });
        }
        None
    }

    fn transmit_data(&mut self, buf: &mut Vec<u8>) -> Option<Transmit> {
        let max_segments = self.core.config.max_segments;
        loop {
            let key @ (_, h, id) = *self.core.ready.first()?;
            let Some(session) = self.sessions.get_mut(&h) else {
                // Bookkeeping keeps the set consistent; a stale key is dropped safely.
                self.core.ready.remove(&key);
                continue;
            };
            let mut header = self.core.header(session, PacketType::Data, id);
            let peer = session.peer;
            let max_payload = session.max_payload;
            // A GSO batch is one UDP datagram of at most 64 KiB before segmentation.
            let max_segments =
                max_segments.min(GSO_MAX_BYTES / (DATA_HEADER_LEN + max_payload)).max(1);
            let Some(out) = session.rpcs.get_mut(&id).and_then(|r| r.out.as_mut()) else {
                self.core.ready.remove(&key);
                continue;
            };
            let before = snap_out(Some(out));
            let mut segment: Option<usize> = None;
            let mut count = 0;
            while count < max_segments {
                let Some(len) = out.peek_packet_len(max_payload) else { break };
                let size = DATA_HEADER_LEN + len;
                if segment.is_some_and(|s| size > s) {
                    break;
                }
                let Some((range, retransmit)) = out.next_packet(max_payload) else { break };
                header.flags.set(crate::wire::Flags::RETRANSMIT, retransmit);
                header.flags.set(crate::wire::Flags::KEY_PHASE, out.phase);
                let data = DataRepr {
                    message_length: out.len(),
                    offset: range.start,
                    unscheduled: out.unscheduled,
                    record_size: out.layout.record_size(),
                    priority: out.priority,
                    payload: &out.wire[range.start as usize..range.end as usize],
                };
                let packet = PacketRepr { header, body: Body::Data(data) };
                let start = buf.len();
                buf.resize(start + size, 0);
                packet.emit(&mut buf[start..]);
                count += 1;
                match segment {
                    None => segment = Some(size),
                    // A shorter datagram may only be the last of a GSO batch.
                    Some(s) if size < s => break,
                    Some(_) => {}
                }
            }
            let after = snap_out(Some(out));
            self.core.track_out(h, id, before, after);
            if count == 0 {
                continue;
            }
            self.core.stats.datagrams_sent += count as u64;
            return Some(Transmit {
                destination: peer,
                size: buf.len(),
                segment_size: if count > 1 { segment } else { None },
            });
        }
    }

    /// Grants scheduled bytes: SRPT over all incoming messages of the endpoint, at
    /// most `max_overcommit` at once, never more than `max_incoming` outstanding.
    pub(crate) fn schedule_grants(&mut self) {
        let c = &self.core.config;
        let (overcommit, max_incoming) = (c.max_overcommit, u64::from(c.max_incoming));
        let mut top = std::mem::take(&mut self.grant_scratch);
        top.clear();
        top.extend(self.core.grantable.iter().take(overcommit).copied());
        for (rank, &(_, h, id)) in top.iter().enumerate() {
            if self.core.granted_unreceived >= max_incoming {
                break;
            }
            let Some(session) = self.sessions.get_mut(&h) else { continue };
            let window = session.grant_window;
            // Grants go out in steps of an eighth of the window (at least a packet),
            // not after every packet.
            let step = (window / 8).max(session.max_payload as u32);
            let Some(inc) = session.rpcs.get_mut(&id).and_then(|r| r.inc.as_mut()) else {
                continue;
            };
            let target = inc.len().min(inc.bytes_received.saturating_add(window));
            if target <= inc.granted {
                continue;
            }
            let budget = max_incoming - self.core.granted_unreceived;
            let new = u64::from(target).min(u64::from(inc.granted) + budget) as u32;
            let before = snap_in(Some(inc));
            inc.granted = new;
            let after = snap_in(Some(inc));
            let send = new == inc.len()
                || new - inc.grant_sent >= step
                || inc.bytes_received.saturating_add(step) >= inc.grant_sent;
            let priority = (overcommit - rank).min(255) as u8;
            if send {
                inc.grant_sent = new;
            }
            self.core.track_in(h, id, before, after);
            if send {
                let session = &self.sessions[&h];
                self.core.send_control(
                    session,
                    id,
                    Body::Grant(GrantRepr { offset: new, priority }),
                );
                self.core.stats.grants_sent += 1;
            }
        }
        self.grant_scratch = top;
    }
}
