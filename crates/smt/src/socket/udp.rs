//! UDP through quinn-udp: GSO for sends of several equal-size datagrams, GRO and
//! recvmmsg-style batches for receives.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};

use quinn_udp::{RecvMeta, Transmit, UdpSocketState, BATCH_SIZE};
use tokio::io::Interest;
use tokio::net::UdpSocket;

use super::sys::{self, Message};
use super::{OutBatch, Received, RECV_BUF};

/// Socket buffer size requested from the kernel (capped by `net.core.rmem_max`).
const SOCKET_BUFFER: usize = 8 << 20;

pub(crate) struct UdpIo {
    pub socket: UdpSocket,
    state: UdpSocketState,
    pub local_addr: SocketAddr,
}

impl UdpIo {
    /// Binds a UDP socket (dual-stack when `addr` is IPv6). Needs a tokio runtime.
    pub(crate) fn bind(addr: SocketAddr) -> io::Result<UdpIo> {
        let domain = socket2::Domain::for_address(addr);
        let socket =
            socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
        if addr.is_ipv6() {
            socket.set_only_v6(false).ok();
        }
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        let std_socket: std::net::UdpSocket = socket.into();
        let state = UdpSocketState::new((&std_socket).into())?;
        // Larger buffers absorb bursts of granted data; failures only cost drops.
        let _ = state.set_recv_buffer_size((&std_socket).into(), SOCKET_BUFFER);
        let _ = state.set_send_buffer_size((&std_socket).into(), SOCKET_BUFFER);
        let socket = UdpSocket::from_std(std_socket)?;
        let local_addr = socket.local_addr()?;
        Ok(UdpIo { socket, state, local_addr })
    }

    pub(crate) fn max_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    pub(crate) fn send(
        &self,
        destination: SocketAddr,
        segment_size: Option<usize>,
        contents: &[u8],
        source: Option<IpAddr>,
    ) -> io::Result<()> {
        let transmit = Transmit { destination, ecn: None, contents, segment_size, src_ip: source };
        // quinn-udp logs and swallows errors other than WouldBlock: datagrams may be
        // lost, and the protocol recovers.
        self.socket.try_io(Interest::WRITABLE, || self.state.send((&self.socket).into(), &transmit))
    }

    /// Sends several batches (to any destinations) with one `sendmmsg` per
    /// [`sys::MAX_MESSAGES`]; returns how many batches left. `WouldBlock` if none
    /// could be sent. A batch the kernel refuses for another reason is lost (and
    /// counted as sent), as with `send`: the protocol recovers.
    pub(crate) fn send_many(&self, batches: &[OutBatch<'_>]) -> io::Result<usize> {
        if let [one] = batches {
            return self
                .send(one.destination, one.segment_size, one.contents, one.source)
                .map(|()| 1);
        }
        let dual_stack = self.local_addr.is_ipv6();
        let addresses: Vec<socket2::SockAddr> = batches
            .iter()
            .map(|b| {
                let to = match b.destination {
                    // A dual-stack socket reaches IPv4 peers by their mapped address.
                    SocketAddr::V4(v4) if dual_stack => {
                        SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port())
                    }
                    other => other,
                };
                socket2::SockAddr::from(to)
            })
            .collect();
        let messages: Vec<Message<'_>> = batches
            .iter()
            .zip(&addresses)
            .map(|(b, address)| Message {
                address,
                data: b.contents,
                // A segment size only matters when the batch holds more than one.
                segment: b
                    .segment_size
                    .filter(|&s| s < b.contents.len())
                    .and_then(|s| u16::try_from(s).ok()),
                source: b.source,
            })
            .collect();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.socket);
        let mut done = 0;
        while done < messages.len() {
            match self.socket.try_io(Interest::WRITABLE, || sys::sendmmsg(fd, &messages[done..])) {
                Ok(n) => done += n.max(1),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return if done == 0 { Err(e) } else { Ok(done) };
                }
                Err(e) => {
                    tracing::trace!(error = %e, destination = %batches[done].destination, "send failed");
                    done += 1;
                }
            }
        }
        Ok(done)
    }

    pub(crate) fn recv(
        &self,
        storage: &mut [u8],
        out: &mut Vec<Received>,
        direct: bool,
    ) -> io::Result<()> {
        let mut metas = [RecvMeta::default(); BATCH_SIZE];
        let slots = (storage.len() / RECV_BUF).min(BATCH_SIZE);
        let n = {
            // On the stack: no allocation per receive.
            let mut chunks = storage.chunks_mut(RECV_BUF);
            let mut slices: [IoSliceMut<'_>; BATCH_SIZE] =
                std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or(&mut [])));
            let slices = &mut slices[..slots];
            let mut recv = || self.state.recv((&self.socket).into(), slices, &mut metas);
            if direct {
                // Busy polling asks the kernel, not the runtime's readiness, which
                // only the runtime's own epoll updates.
                recv()?
            } else {
                self.socket.try_io(Interest::READABLE, recv)?
            }
        };
        for (i, meta) in metas[..n].iter().enumerate() {
            let base = i * RECV_BUF;
            let stride = meta.stride.max(1);
            let mut offset = 0;
            while offset < meta.len {
                let end = (offset + stride).min(meta.len);
                out.push(Received {
                    from: meta.addr,
                    range: base + offset..base + end,
                    local: meta.dst_ip.map(unmapped),
                });
                offset = end;
            }
        }
        Ok(())
    }
}

/// An IPv4 address a dual-stack socket reports as IPv4-mapped IPv6, as IPv4.
fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}
