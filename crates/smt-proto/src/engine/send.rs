//! The transmit path: control packets, then DATA of the message with the fewest
//! bytes left (sender SRPT) in GSO batches, then acknowledgements.

use std::time::Instant;

use super::endpoint::{Endpoint, Transmit};
use super::session::Side;
use crate::wire::{
    AckRepr, Body, DataRepr, Flags, MessageId, PacketRepr, PacketType, MAX_ACKS_PER_PACKET,
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
            let Side::Client(client) = &mut session.side else { continue };
            if client.pending_acks.is_empty() {
                continue;
            }
            let n = client.pending_acks.len().min(MAX_ACKS_PER_PACKET);
            let ids: Vec<MessageId> = client.pending_acks.drain(..n).collect();
            if !client.pending_acks.is_empty() {
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
            let key @ (h, id) = self.rpcs.first_ready()?;
            let Some(session) = self.sessions.get(&h) else {
                // Ending a session removes its RPCs, so this cannot happen; should it,
                // dropping the orphan keeps the loop finite.
                self.rpcs.remove(key);
                continue;
            };
            let mut header = self.core.header(session, PacketType::Data, id);
            let peer = session.peer;
            let max_payload = session.path.max_payload;
            // A GSO batch is one UDP datagram of at most 64 KiB before segmentation.
            let max_segments =
                max_segments.min(GSO_MAX_BYTES / (DATA_HEADER_LEN + max_payload)).max(1);
            // One allocation for the whole batch, not a doubling per segment.
            buf.reserve(max_segments * (DATA_HEADER_LEN + max_payload));
            let batch = self.rpcs.update(key, |rpc| {
                let out = rpc.outgoing_mut()?;
                let mut segment: Option<usize> = None;
                let mut count = 0;
                while count < max_segments {
                    let Some(len) = out.peek_packet_len(max_payload) else { break };
                    let size = DATA_HEADER_LEN + len;
                    if segment.is_some_and(|s| size > s) {
                        break;
                    }
                    let Some((range, retransmit)) = out.next_packet(max_payload) else { break };
                    header.flags.set(Flags::RETRANSMIT, retransmit);
                    header.flags.set(Flags::KEY_PHASE, out.phase());
                    let data = DataRepr {
                        message_length: out.len(),
                        offset: range.start,
                        unscheduled: out.unscheduled(),
                        record_size: out.layout().record_size(),
                        priority: out.priority(),
                        payload: out.bytes(range),
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
                Some((count, segment))
            });
            let Some(Some((count, segment))) = batch else {
                // In the ready set without an outgoing message: the footprint says
                // otherwise, so this cannot happen; dropping the RPC ends the loop.
                self.rpcs.remove(key);
                continue;
            };
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
}
