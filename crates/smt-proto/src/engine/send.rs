//! The transmit path: control packets, then DATA of the message with the fewest
//! bytes left (sender SRPT) in GSO batches, then acknowledgements. A datagram that
//! is not a GSO batch takes further packets for the same peer while they fit (a
//! bundle, PROTOCOL.md 3.1): small messages, their GRANTs and ACKs then share
//! datagrams instead of costing one each.

use std::net::SocketAddr;
use std::time::Instant;

use super::endpoint::{Endpoint, Transmit};
use super::rpc_table::RpcKey;
use super::session::Side;
use crate::wire::{
    mark_bundled, AckRepr, Body, DataRepr, Flags, MessageId, PacketRepr, PacketType,
    MAX_ACKS_PER_PACKET,
};

/// Bytes of a DATA packet before its payload (common header + DATA body).
pub const DATA_HEADER_LEN: usize = crate::wire::HEADER_LEN + 16;

/// Most bytes in one transmit batch (the payload limit of a UDP GSO send).
const GSO_MAX_BYTES: usize = 65_000;

/// Byte 5 of a packet: its type.
const TYPE_BYTE: usize = 5;

impl Endpoint {
    /// Writes the next batch of datagrams into `buf` (cleared first). Control packets
    /// go first, then DATA of the message with the fewest remaining bytes, then
    /// acknowledgements; a single datagram is filled up with more packets for the
    /// same destination, in the same order.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        buf.clear();
        self.open_received_here(now);
        self.rpcs.release_queued(now, self.core.config.max_unscheduled_in_flight);
        if std::mem::take(&mut self.core.grants_due) {
            self.schedule_grants(now);
        }
        let first = self.transmit_one(now, buf)?;
        let handshake = buf.get(TYPE_BYTE) == Some(&(PacketType::Handshake as u8));
        if first.segment_size.is_none() && !handshake {
            self.fill_bundle(now, first.destination, buf);
        }
        self.core.stats.bytes_sent += buf.len() as u64;
        Some(Transmit { size: buf.len(), ..first })
    }

    /// The next batch as the queues give it (one packet, or a GSO batch of DATA).
    fn transmit_one(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        if let Some((destination, bytes)) = self.core.control.pop_front() {
            buf.extend_from_slice(&bytes);
            self.core.stats.datagrams_sent += 1;
            return Some(Transmit { destination, size: buf.len(), segment_size: None });
        }
        // Data before acknowledgements: a request must not wait behind the ACK that
        // travels with it.
        if let Some(transmit) = self.transmit_data(now, buf) {
            return Some(transmit);
        }
        let destination = self.emit_ack(buf, None)?;
        self.core.stats.datagrams_sent += 1;
        Some(Transmit { destination, size: buf.len(), segment_size: None })
    }

    /// Appends packets for `destination` to the datagram in `buf` while they fit.
    fn fill_bundle(&mut self, now: Instant, destination: SocketAddr, buf: &mut Vec<u8>) {
        let payload = self.core.path_payloads.get(&destination.ip()).copied();
        let limit = DATA_HEADER_LEN + payload.unwrap_or(self.core.config.max_packet_payload);
        let mut last = 0;
        loop {
            let start = buf.len();
            let room = limit.saturating_sub(start);
            let appended = self.bundle_control(destination, room, buf)
                || self.bundle_data(now, destination, room, buf)
                || self.emit_ack_within(destination, room, buf);
            if !appended {
                return;
            }
            mark_bundled(&mut buf[last..start]);
            self.core.stats.packets_bundled += 1;
            last = start;
        }
    }

    /// The front control packet, if it is for `destination`, fits, and may share a
    /// datagram (HANDSHAKE packets never do).
    fn bundle_control(&mut self, destination: SocketAddr, room: usize, buf: &mut Vec<u8>) -> bool {
        let fits = self.core.control.front().is_some_and(|(to, bytes)| {
            *to == destination
                && bytes.len() <= room
                && bytes.get(TYPE_BYTE) != Some(&(PacketType::Handshake as u8))
        });
        if !fits {
            return false;
        }
        let Some((_, bytes)) = self.core.control.pop_front() else { return false };
        buf.extend_from_slice(&bytes);
        true
    }

    /// One DATA packet of the message next in line, if it is for `destination` and
    /// its whole next packet fits (a message's packets are not cut smaller to fill
    /// a bundle).
    fn bundle_data(
        &mut self,
        now: Instant,
        destination: SocketAddr,
        room: usize,
        buf: &mut Vec<u8>,
    ) -> bool {
        let Some(key) = self.rpcs.first_ready() else { return false };
        let Some(session) = self.sessions.get(&key.0) else { return false };
        if session.peer != destination {
            return false;
        }
        let max_payload = session.path.max_payload();
        let fits = self
            .rpcs
            .get(key)
            .and_then(|rpc| rpc.outgoing())
            .and_then(|out| out.peek_packet_len(max_payload))
            .is_some_and(|len| DATA_HEADER_LEN + len <= room);
        fits && self.emit_data(now, key, buf, 1).is_some_and(|(count, _)| count == 1)
    }

    /// An ACK for `destination`, if one is due and fits.
    fn emit_ack_within(&mut self, destination: SocketAddr, room: usize, buf: &mut Vec<u8>) -> bool {
        // An ACK of n IDs is a header, a count and 8 bytes per ID.
        if room < crate::wire::HEADER_LEN + 4 + 8 {
            return false;
        }
        self.emit_ack(buf, Some((destination, room))).is_some()
    }

    /// Appends an ACK for a session whose acknowledgements are due: any such session,
    /// or (when bundling) one whose peer is the given destination, with as many IDs
    /// as fit the given room. Returns the ACK's destination.
    fn emit_ack(
        &mut self,
        buf: &mut Vec<u8>,
        within: Option<(SocketAddr, usize)>,
    ) -> Option<SocketAddr> {
        loop {
            let h = match within {
                None => *self.core.acks_due.first()?,
                Some((to, _)) => *self
                    .core
                    .acks_due
                    .iter()
                    .find(|h| self.sessions.get(h).is_some_and(|s| s.peer == to))?,
            };
            self.core.acks_due.remove(&h);
            // Sessions that ended, or that have nothing left to acknowledge, are
            // dropped from the due set on the way.
            let Some(session) = self.sessions.get_mut(&h) else { continue };
            let Side::Client(client) = &mut session.side else { continue };
            if client.pending_acks.is_empty() {
                continue;
            }
            let fit = within.map_or(MAX_ACKS_PER_PACKET, |(_, room)| {
                room.saturating_sub(crate::wire::HEADER_LEN + 4) / 8
            });
            let n = client.pending_acks.len().min(MAX_ACKS_PER_PACKET).min(fit);
            if n < client.pending_acks.len() || n == 0 {
                self.core.acks_due.insert(h);
            }
            if n == 0 {
                return None;
            }
            let ids: Vec<MessageId> = client.pending_acks.drain(..n).collect();
            // n <= MAX_ACKS_PER_PACKET, so AckRepr::new succeeds.
            let ack = AckRepr::new(&ids)?;
            let packet = PacketRepr {
                header: self.core.header(session, PacketType::Ack, MessageId::default()),
                body: Body::Ack(ack),
            };
            let start = buf.len();
            buf.resize(start + packet.buffer_len(), 0);
            packet.emit(&mut buf[start..]);
            return Some(session.peer);
        }
    }

    fn transmit_data(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        let max_segments = self.core.config.max_segments;
        loop {
            let key = self.rpcs.first_ready()?;
            let Some(session) = self.sessions.get(&key.0) else {
                // Ending a session removes its RPCs, so this cannot happen; should it,
                // dropping the orphan keeps the loop finite.
                self.rpcs.remove(key);
                continue;
            };
            let peer = session.peer;
            let Some((count, segment)) = self.emit_data(now, key, buf, max_segments) else {
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

    /// Appends up to `max_segments` equal-size DATA packets of `key`'s outgoing
    /// message (the last may be shorter): `(count, segment size)`, or `None` if the
    /// RPC has no outgoing message.
    fn emit_data(
        &mut self,
        now: Instant,
        key: RpcKey,
        buf: &mut Vec<u8>,
        max_segments: usize,
    ) -> Option<(usize, Option<usize>)> {
        let session = self.sessions.get(&key.0)?;
        let mut header = self.core.header(session, PacketType::Data, key.1);
        let max_payload = session.path.max_payload();
        // A GSO batch is one UDP datagram of at most 64 KiB before segmentation.
        let max_segments = max_segments.min(GSO_MAX_BYTES / (DATA_HEADER_LEN + max_payload)).max(1);
        // One allocation for the whole batch, not a doubling per segment.
        buf.reserve(max_segments * (DATA_HEADER_LEN + max_payload));
        self.rpcs
            .update(key, |rpc| {
                let out = rpc.outgoing_mut()?;
                let mut segment: Option<usize> = None;
                let mut count = 0;
                let mut any_retransmitted = false;
                while count < max_segments {
                    let Some(len) = out.peek_packet_len(max_payload) else { break };
                    let size = DATA_HEADER_LEN + len;
                    if segment.is_some_and(|s| size > s) {
                        break;
                    }
                    let Some((range, retransmit)) = out.next_packet(max_payload) else { break };
                    header.flags.set(Flags::RETRANSMIT, retransmit);
                    self.core.stats.data_retransmitted += u64::from(retransmit);
                    any_retransmitted |= retransmit;
                    header.flags.set(Flags::KEY_PHASE, out.phase());
                    let data = DataRepr {
                        message_length: out.len(),
                        offset: range.start,
                        unscheduled: out.unscheduled(),
                        record_size: out.layout().record_size(),
                        priority: out.priority(),
                        payload: out.bytes(range),
                    };
                    PacketRepr { header, body: Body::Data(data) }.append_to(buf);
                    count += 1;
                    match segment {
                        None => segment = Some(size),
                        // A shorter datagram may only be the last of a GSO batch.
                        Some(s) if size < s => break,
                        Some(_) => {}
                    }
                }
                let whole = out.remaining() == 0;
                rpc.request_sent(now, whole, any_retransmitted);
                Some((count, segment))
            })
            .flatten()
    }
}
