//! The bulk floors: a minimal echo of large messages over UDP with GSO on send and
//! GRO on receive and no reliability (`raw-udp-gso`), and the same echo with every
//! 16 KiB record sealed and opened with AES-128-GCM (`raw-udp-gso-aead`: the client
//! seals the request, the server opens it and seals the response, the client opens
//! that). What any UDP transport, and any UDP transport that encrypts, could reach
//! on this machine: SMT's throughput is stated against both.
//!
//! Every datagram carries a 16-byte header (message ID u64, offset u32, message
//! length u32, little-endian) and a slice of the message's wire image. Datagrams are
//! 64 000 bytes towards loopback (its MTU is 64 KiB) and 1472 bytes elsewhere (MTU
//! 1500), sent in GSO batches of at most 65 000 bytes. A message that stops making
//! progress for 200 ms counts as lost and is sent again under a new ID (the run
//! reports losses; a floor with many would be meaningless).

use std::collections::HashMap;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, NONCE_LEN};
use quinn_udp::{RecvMeta, Transmit, UdpSocketState, BATCH_SIZE};

use crate::bench::RunStats;

const HEADER: usize = 16;
/// Plaintext bytes per record (as SMT's default).
const RECORD: usize = 16 * 1024;
const TAG: usize = 16;
/// Most bytes of one GSO send.
const BATCH_BYTES: usize = 65_000;
/// Bytes per receive buffer (one GRO super-datagram at most).
const RECV_BUF: usize = 64 * 1024;
const SOCKET_BUFFER: usize = 8 << 20;
const STALL: Duration = Duration::from_millis(200);

/// The AEAD keys of the two directions (a floor needs no handshake).
struct Keys {
    request: LessSafeKey,
    response: LessSafeKey,
}

impl Keys {
    fn new() -> Keys {
        let key =
            |b: u8| LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &[b; 16]).expect("16-byte key"));
        Keys { request: key(1), response: key(2) }
    }
}

fn nonce(message: u64, record: usize) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[..8].copy_from_slice(&message.to_le_bytes());
    n[8..].copy_from_slice(&(record as u32).to_le_bytes());
    Nonce::assume_unique_for_key(n)
}

/// Wire length of a `len`-byte payload: as is, or with a tag per record.
#[cfg(test)]
fn wire_len(len: usize, aead: bool) -> usize {
    if aead {
        len + len.div_ceil(RECORD) * TAG
    } else {
        len
    }
}

/// Writes the wire image of `payload` into `wire` (sealing each record if `key`).
fn seal(key: Option<&LessSafeKey>, message: u64, payload: &[u8], wire: &mut Vec<u8>) {
    wire.clear();
    let Some(key) = key else {
        wire.extend_from_slice(payload);
        return;
    };
    for (i, chunk) in payload.chunks(RECORD).enumerate() {
        let start = wire.len();
        wire.extend_from_slice(chunk);
        let tag = key
            .seal_in_place_separate_tag(nonce(message, i), Aad::empty(), &mut wire[start..])
            .expect("sealing cannot fail for these lengths");
        wire.extend_from_slice(tag.as_ref());
    }
}

/// Opens every record of `wire` in place; false if one fails.
fn open(key: &LessSafeKey, message: u64, wire: &mut [u8]) -> bool {
    wire.chunks_mut(RECORD + TAG)
        .enumerate()
        .all(|(i, record)| key.open_in_place(nonce(message, i), Aad::empty(), record).is_ok())
}

fn segment_size(peer: SocketAddr) -> usize {
    if peer.ip().is_loopback() {
        64_000
    } else {
        1472
    }
}

struct Socket {
    socket: UdpSocket,
    state: UdpSocketState,
    buf: Vec<u8>,
}

impl Socket {
    fn bind(addr: SocketAddr) -> Result<Socket> {
        let socket = UdpSocket::bind(addr)?;
        let state = UdpSocketState::new((&socket).into())?;
        let _ = state.set_recv_buffer_size((&socket).into(), SOCKET_BUFFER);
        let _ = state.set_send_buffer_size((&socket).into(), SOCKET_BUFFER);
        socket.set_read_timeout(Some(Duration::from_millis(10)))?;
        Ok(Socket { socket, state, buf: Vec::with_capacity(BATCH_BYTES) })
    }

    /// Sends `wire` as message `id` to `to` in GSO batches.
    fn send(&mut self, to: SocketAddr, id: u64, wire: &[u8]) -> io::Result<()> {
        let seg = segment_size(to).min(self.state.max_gso_segments().max(1) * 64_000);
        let data = seg - HEADER;
        let per_batch = (BATCH_BYTES / seg).clamp(1, self.state.max_gso_segments().max(1));
        let mut offset = 0;
        while offset < wire.len() {
            self.buf.clear();
            for _ in 0..per_batch {
                if offset >= wire.len() {
                    break;
                }
                let end = (offset + data).min(wire.len());
                self.buf.extend_from_slice(&id.to_le_bytes());
                self.buf.extend_from_slice(&(offset as u32).to_le_bytes());
                self.buf.extend_from_slice(&(wire.len() as u32).to_le_bytes());
                self.buf.extend_from_slice(&wire[offset..end]);
                offset = end;
            }
            let transmit = Transmit {
                destination: to,
                ecn: None,
                contents: &self.buf,
                segment_size: (self.buf.len() > seg).then_some(seg),
                src_ip: None,
            };
            self.state.send((&self.socket).into(), &transmit)?;
        }
        Ok(())
    }

    /// Receives what arrives (or times out) and hands each datagram to `f`.
    fn recv(&mut self, storage: &mut [u8], mut f: impl FnMut(SocketAddr, &[u8])) -> io::Result<()> {
        let mut metas = [RecvMeta::default(); BATCH_SIZE];
        let n = {
            let mut slices: Vec<IoSliceMut<'_>> =
                storage.chunks_mut(RECV_BUF).take(BATCH_SIZE).map(IoSliceMut::new).collect();
            match self.state.recv((&self.socket).into(), &mut slices, &mut metas) {
                Ok(n) => n,
                Err(e)
                    if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) =>
                {
                    0
                }
                Err(e) => return Err(e),
            }
        };
        for (i, meta) in metas[..n].iter().enumerate() {
            let base = i * RECV_BUF;
            let stride = meta.stride.max(1);
            let mut offset = 0;
            while offset < meta.len {
                let end = (offset + stride).min(meta.len);
                f(meta.addr, &storage[base + offset..base + end]);
                offset = end;
            }
        }
        Ok(())
    }
}

/// A datagram's header: (message ID, offset, message length) and its data.
fn parse(datagram: &[u8]) -> Option<(u64, usize, usize, &[u8])> {
    if datagram.len() < HEADER {
        return None;
    }
    let id = u64::from_le_bytes(datagram[..8].try_into().ok()?);
    let offset = u32::from_le_bytes(datagram[8..12].try_into().ok()?) as usize;
    let len = u32::from_le_bytes(datagram[12..16].try_into().ok()?) as usize;
    let data = &datagram[HEADER..];
    (offset + data.len() <= len).then_some((id, offset, len, data))
}

/// A message being received.
struct Assembly {
    wire: Vec<u8>,
    received: usize,
    last: Instant,
}

impl Assembly {
    fn new(len: usize) -> Assembly {
        Assembly { wire: vec![0; len], received: 0, last: Instant::now() }
    }

    /// Stores the data (no duplicate detection: the floor has no retransmissions).
    fn absorb(&mut self, offset: usize, data: &[u8]) -> bool {
        self.wire[offset..offset + data.len()].copy_from_slice(data);
        self.received += data.len();
        self.last = Instant::now();
        self.received >= self.wire.len()
    }
}

/// The echo server: answers each complete message with the same payload.
pub fn serve(listen: SocketAddr, aead: bool) -> Result<()> {
    let mut socket = Socket::bind(listen)?;
    crate::serve::announce(socket.socket.local_addr()?)?;
    let keys = Keys::new();
    let mut storage = vec![0u8; RECV_BUF * BATCH_SIZE];
    let mut partial: HashMap<(SocketAddr, u64), Assembly> = HashMap::new();
    let mut complete: Vec<(SocketAddr, u64, Vec<u8>)> = Vec::new();
    let mut out = Vec::new();
    let mut plain = Vec::new();
    loop {
        socket.recv(&mut storage, |from, datagram| {
            let Some((id, offset, len, data)) = parse(datagram) else { return };
            let assembly = partial.entry((from, id)).or_insert_with(|| Assembly::new(len));
            if assembly.wire.len() == len && assembly.absorb(offset, data) {
                if let Some(a) = partial.remove(&(from, id)) {
                    complete.push((from, id, a.wire));
                }
            }
        })?;
        for (to, id, mut wire) in complete.drain(..) {
            let wire = if aead {
                if !open(&keys.request, id, &mut wire) {
                    continue;
                }
                plain.clear();
                for record in wire.chunks(RECORD + TAG) {
                    plain.extend_from_slice(&record[..record.len() - TAG]);
                }
                seal(Some(&keys.response), id, &plain, &mut out);
                &out
            } else {
                &wire
            };
            socket.send(to, id, wire)?;
        }
        partial.retain(|_, a| a.last.elapsed() < STALL);
    }
}

/// The client: keeps `in_flight` messages of `size` bytes echoing for `warmup` +
/// `window`; records latency and completions like the other closed loops.
pub fn closed_loop(
    server: SocketAddr,
    local: IpAddr,
    aead: bool,
    size: usize,
    in_flight: usize,
    warmup: Duration,
    window: Duration,
) -> Result<RunStats> {
    let mut socket = Socket::bind(SocketAddr::new(local, 0))?;
    let keys = Keys::new();
    let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let mut storage = vec![0u8; RECV_BUF * BATCH_SIZE];
    let mut wire = Vec::new();
    let mut next_id = 1u64;
    // In flight: message ID -> (sent at, assembly of the echo).
    let mut flight: HashMap<u64, (Instant, Option<Assembly>)> = HashMap::new();
    let start = Instant::now();
    let (from, end) = (start + warmup, start + warmup + window);
    let mut out = RunStats { window, ..RunStats::default() };
    let mut lost = 0u64;
    let mut send = |socket: &mut Socket, flight: &mut HashMap<u64, (Instant, Option<Assembly>)>| {
        let id = next_id;
        next_id += 1;
        seal(aead.then_some(&keys.request), id, &payload, &mut wire);
        flight.insert(id, (Instant::now(), None));
        socket.send(server, id, &wire)
    };
    for _ in 0..in_flight {
        send(&mut socket, &mut flight)?;
    }
    while Instant::now() < end {
        let mut done: Vec<(u64, Vec<u8>)> = Vec::new();
        socket.recv(&mut storage, |_, datagram| {
            let Some((id, offset, len, data)) = parse(datagram) else { return };
            let Some((_, assembly)) = flight.get_mut(&id) else { return };
            let a = assembly.get_or_insert_with(|| Assembly::new(len));
            if a.wire.len() == len && a.absorb(offset, data) {
                if let Some(a) = assembly.take() {
                    done.push((id, a.wire));
                }
            }
        })?;
        let now = Instant::now();
        for (id, mut echo) in done {
            let Some((sent, _)) = flight.remove(&id) else { continue };
            if aead && !open(&keys.response, id, &mut echo) {
                bail!("the echo of message {id} failed to open");
            }
            if sent >= from && now <= end {
                out.latency.record(now - sent);
                out.completed += 1;
            }
            send(&mut socket, &mut flight)?;
        }
        // Messages that stopped moving are lost: send new ones instead.
        let stalled: Vec<u64> = flight
            .iter()
            .filter(|(_, (sent, a))| a.as_ref().map_or(*sent, |a| a.last).elapsed() > STALL)
            .map(|(&id, _)| id)
            .collect();
        for id in stalled {
            flight.remove(&id);
            lost += 1;
            send(&mut socket, &mut flight)?;
        }
    }
    if lost > out.completed / 20 + 2 {
        bail!("{lost} of {} messages lost: no floor to speak of", out.completed + lost);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_records_open_to_the_payload_and_tampering_is_caught() {
        let keys = Keys::new();
        let payload: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
        let mut wire = Vec::new();
        seal(Some(&keys.request), 7, &payload, &mut wire);
        assert_eq!(wire.len(), wire_len(payload.len(), true));
        let mut copy = wire.clone();
        assert!(open(&keys.request, 7, &mut copy));
        let plain: Vec<u8> =
            copy.chunks(RECORD + TAG).flat_map(|r| r[..r.len() - TAG].to_vec()).collect();
        assert_eq!(plain, payload);
        wire[100] ^= 1;
        assert!(!open(&keys.request, 7, &mut wire));
    }

    #[test]
    fn datagram_headers_round_trip_and_lie_checked() {
        let mut d = Vec::new();
        d.extend_from_slice(&5u64.to_le_bytes());
        d.extend_from_slice(&10u32.to_le_bytes());
        d.extend_from_slice(&13u32.to_le_bytes());
        d.extend_from_slice(b"abc");
        assert_eq!(parse(&d), Some((5, 10, 13, &b"abc"[..])));
        d[12] = 12; // claims a shorter message than offset + data
        assert_eq!(parse(&d), None);
    }
}
