//! Native IP mode: SMT packets directly inside IPv4/IPv6 with their own protocol
//! number, through raw sockets. This is the only module of the workspace that uses
//! `unsafe`, for `sendmmsg`, which neither std nor socket2 exposes; every block
//! states why it is sound.
//!
//! What the kernel does and does not do here: it builds the IP header and routes, but
//! it has no segmentation offload (GSO/TSO) or receive coalescing (GRO) for an unknown
//! protocol, so every datagram is a separate trip through the IP stack. `sendmmsg`
//! at least sends a whole batch with one system call. Every raw socket of the protocol
//! receives a copy of every packet addressed to the host; endpoints tell theirs apart
//! by the destination port in the SMT header.
#![allow(unsafe_code)]

use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::{Received, RECV_BUF};

/// Most datagrams one `sendmmsg` call carries.
pub(crate) const MAX_BATCH: usize = 64;
/// Datagrams received per call of `recv`.
const RECV_BATCH: usize = 32;

pub(crate) struct RawIpSocket {
    fd: AsyncFd<Socket>,
    pub local_addr: SocketAddr,
    ipv4: bool,
}

impl RawIpSocket {
    /// Opens a raw socket for `protocol` bound to `addr`'s IP. The port of `addr` is
    /// the SMT port (0 picks a random one). Needs CAP_NET_RAW.
    pub(crate) fn bind(addr: SocketAddr, protocol: u8) -> io::Result<RawIpSocket> {
        let domain = Domain::for_address(addr);
        let socket = Socket::new(domain, Type::RAW, Some(Protocol::from(i32::from(protocol))))?;
        socket.set_nonblocking(true)?;
        socket.bind(&SocketAddr::new(addr.ip(), 0).into())?;
        let _ = socket.set_recv_buffer_size(8 << 20);
        let _ = socket.set_send_buffer_size(8 << 20);
        let port =
            if addr.port() == 0 { rand::random::<u16>() % 16384 + 49152 } else { addr.port() };
        let local_addr = SocketAddr::new(addr.ip(), port);
        // SAFETY: `socket` is an open socket that the AsyncFd takes ownership of; its
        // descriptor stays open and unchanged until the AsyncFd (and the socket in it)
        // is dropped, as `register` requires.
        let fd = unsafe { AsyncFd::register(socket) }.map_err(|e| e.into_parts().1)?;
        Ok(RawIpSocket { fd, local_addr, ipv4: addr.is_ipv4() })
    }

    pub(crate) async fn readable(&self) -> io::Result<()> {
        self.fd.readable().await.map(|_| ())
    }

    pub(crate) async fn writable(&self) -> io::Result<()> {
        self.fd.writable().await.map(|_| ())
    }

    /// Sends the segments of `contents` with `sendmmsg`; returns the bytes sent.
    pub(crate) fn send(
        &self,
        destination: SocketAddr,
        segment_size: Option<usize>,
        contents: &[u8],
    ) -> io::Result<usize> {
        // Raw sockets take no port: the SMT header carries it. IPv6 raw sockets
        // reject a non-zero port that differs from the protocol, so use zero.
        let address = SockAddr::from(SocketAddr::new(destination.ip(), 0));
        let segment = segment_size.unwrap_or(contents.len()).max(1);
        let mut sent = 0;
        for batch in contents.chunks(segment * MAX_BATCH) {
            let n = self
                .fd
                .try_io(Interest::WRITABLE, |socket| send_batch(socket, &address, batch, segment));
            match n {
                Ok(bytes) => {
                    sent += bytes;
                    if bytes < batch.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && sent > 0 => break,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(e),
                // Like UDP: other send errors lose the datagrams; the protocol recovers.
                Err(e) => {
                    tracing::debug!(error = %e, %destination, "raw send failed");
                    sent += batch.len();
                }
            }
        }
        Ok(sent)
    }

    pub(crate) fn recv(
        &self,
        storage: &mut [u8],
        out: &mut Vec<Received>,
        direct: bool,
    ) -> io::Result<()> {
        for (i, chunk) in storage.chunks_mut(RECV_BUF).take(RECV_BATCH).enumerate() {
            let mut recv = |socket: &Socket| {
                // SAFETY: `u8` and `MaybeUninit<u8>` have the same layout, and
                // `recv_from` only writes initialised bytes into the buffer, so the
                // slice stays fully initialised as `&mut [u8]` requires.
                let buf = unsafe { &mut *(chunk as *mut [u8] as *mut [MaybeUninit<u8>]) };
                socket.recv_from(buf)
            };
            let received = if direct {
                recv(self.fd.get_ref())
            } else {
                self.fd.try_io(Interest::READABLE, |socket| recv(socket))
            };
            let (len, from) = match received {
                Ok(r) => r,
                // `i` datagrams were received before this one.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && i > 0 => break,
                Err(e) => return Err(e),
            };
            let Some(from) = from.as_socket() else { continue };
            let base = i * RECV_BUF;
            // IPv4 raw sockets deliver the IP header too; IPv6 ones do not.
            let skip = if self.ipv4 {
                match chunk.first() {
                    Some(b) if len >= usize::from(b & 0x0f) * 4 => usize::from(b & 0x0f) * 4,
                    _ => continue,
                }
            } else {
                0
            };
            let payload = base + skip..base + len;
            // The SMT header's first two bytes are the sender's SMT port.
            if payload.len() < 2 {
                continue;
            }
            let port = u16::from_be_bytes([chunk[skip], chunk[skip + 1]]);
            let from = SocketAddr::new(canonical(from.ip()), port);
            out.push(Received { from, range: payload, local: None });
        }
        Ok(())
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// One `sendmmsg` call for the segments of `batch` (at most [`MAX_BATCH`]).
fn send_batch(
    socket: &Socket,
    address: &SockAddr,
    batch: &[u8],
    segment: usize,
) -> io::Result<usize> {
    let mut iovecs: Vec<libc::iovec> = batch
        .chunks(segment)
        .map(|c| libc::iovec { iov_base: c.as_ptr() as *mut libc::c_void, iov_len: c.len() })
        .collect();
    let mut headers: Vec<libc::mmsghdr> = iovecs
        .iter_mut()
        .map(|iov| {
            // SAFETY: mmsghdr is a plain C struct for which all-zero bytes are a valid
            // value (null pointers, zero lengths and flags).
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_name = address.as_ptr() as *mut libc::c_void;
            h.msg_hdr.msg_namelen = address.len();
            h.msg_hdr.msg_iov = iov as *mut libc::iovec;
            h.msg_hdr.msg_iovlen = 1;
            h
        })
        .collect();
    // SAFETY: `headers` holds `headers.len()` initialised mmsghdr values whose
    // pointers (address, iovecs and the bytes of `batch` they point into) all live
    // until this function returns; the kernel only reads them (and writes msg_len).
    let n = unsafe {
        libc::sendmmsg(socket.as_raw_fd(), headers.as_mut_ptr(), headers.len() as libc::c_uint, 0)
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let sent: usize = headers[..n as usize].iter().map(|h| h.msg_len as usize).sum();
    Ok(sent)
}
