//! The sockets an endpoint can run on: UDP (default; GSO/GRO through quinn-udp) or
//! native IP (raw sockets with SMT's own protocol number, needs CAP_NET_RAW).

mod raw_ip;
mod sys;
mod udp;

use std::io;
use std::net::SocketAddr;
use std::ops::Range;

pub(crate) use raw_ip::RawIpSocket;
pub(crate) use udp::UdpIo;

/// Bytes reserved per received datagram (or per GRO batch on UDP).
pub(crate) const RECV_BUF: usize = 64 * 1024;

/// The largest SMT datagram the route to `peer` carries: its MTU minus the IP header
/// and, `over_udp`, the UDP header. `None` if the kernel cannot tell.
pub(crate) fn max_datagram(peer: SocketAddr, over_udp: bool) -> Option<usize> {
    let mtu = sys::route_mtu(peer).ok()?;
    let ip_header = if peer.ip().to_canonical().is_ipv4() { 20 } else { 40 };
    let udp_header = if over_udp { 8 } else { 0 };
    mtu.checked_sub(ip_header + udp_header)
}

/// Which network layer carries SMT packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Transport {
    /// SMT over UDP. Works unprivileged; the kernel segments and coalesces batches.
    #[default]
    Udp,
    /// SMT directly over IP with this protocol number (253 is the RFC 3692
    /// experimental default). Needs CAP_NET_RAW.
    NativeIp {
        /// The IP protocol number both sides use.
        protocol: u8,
    },
}

impl Transport {
    /// Native IP with the default protocol number 253.
    pub const fn native_ip() -> Transport {
        Transport::NativeIp { protocol: smt_proto::wire::DEFAULT_IP_PROTOCOL }
    }
}

/// One received datagram: where it came from and where its bytes are in the buffer.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub from: SocketAddr,
    pub range: Range<usize>,
    /// The local address it was sent to, where the socket reports it (UDP).
    pub local: Option<std::net::IpAddr>,
}

/// One batch to send: datagrams of `segment_size` bytes (the last may be shorter)
/// for one destination, or one datagram.
pub(crate) struct OutBatch<'a> {
    pub destination: SocketAddr,
    pub segment_size: Option<usize>,
    pub contents: &'a [u8],
    /// The local address to send from (UDP; `None`: the kernel's choice).
    pub source: Option<std::net::IpAddr>,
}

pub(crate) enum Socket {
    Udp(UdpIo),
    Ip(RawIpSocket),
}

impl Socket {
    pub(crate) fn local_addr(&self) -> SocketAddr {
        match self {
            Socket::Udp(s) => s.local_addr,
            Socket::Ip(s) => s.local_addr,
        }
    }

    /// Whether packets travel in UDP datagrams (not native IP).
    pub(crate) fn is_udp(&self) -> bool {
        matches!(self, Socket::Udp(_))
    }

    /// Most datagrams one `send` may carry as equal-size segments.
    pub(crate) fn max_segments(&self) -> usize {
        match self {
            Socket::Udp(s) => s.max_segments(),
            Socket::Ip(_) => raw_ip::MAX_BATCH,
        }
    }

    /// Sends `contents` (several datagrams of `segment_size` bytes if set). Returns
    /// how many bytes went out: all, or for native IP possibly a prefix of whole
    /// segments. `WouldBlock` if nothing could be sent.
    pub(crate) fn send(
        &self,
        destination: SocketAddr,
        segment_size: Option<usize>,
        contents: &[u8],
        source: Option<std::net::IpAddr>,
    ) -> io::Result<usize> {
        match self {
            Socket::Udp(s) => {
                s.send(destination, segment_size, contents, source).map(|()| contents.len())
            }
            Socket::Ip(s) => s.send(destination, segment_size, contents),
        }
    }

    /// Sends several batches with one system call per up to 64 of them (UDP only:
    /// `None` for native IP, whose batches go one `send` each); returns how many left
    /// whole (a prefix). `WouldBlock` if none could be sent.
    pub(crate) fn send_many(&self, batches: &[OutBatch<'_>]) -> Option<io::Result<usize>> {
        match self {
            Socket::Udp(s) => Some(s.send_many(batches)),
            Socket::Ip(_) => None,
        }
    }

    /// Receives what is available into `storage` (chunks of [`RECV_BUF`]),
    /// appending one entry per datagram to `out`. `WouldBlock` if nothing arrived.
    ///
    /// `direct`: ask the kernel even if the runtime has not seen the socket become
    /// readable (busy polling, which never lets the runtime's epoll look).
    pub(crate) fn recv(
        &self,
        storage: &mut [u8],
        out: &mut Vec<Received>,
        direct: bool,
    ) -> io::Result<()> {
        match self {
            Socket::Udp(s) => s.recv(storage, out, direct),
            Socket::Ip(s) => s.recv(storage, out, direct),
        }
    }

    pub(crate) async fn readable(&self) -> io::Result<()> {
        match self {
            Socket::Udp(s) => s.socket.readable().await,
            Socket::Ip(s) => s.readable().await,
        }
    }

    pub(crate) async fn writable(&self) -> io::Result<()> {
        match self {
            Socket::Udp(s) => s.socket.writable().await,
            Socket::Ip(s) => s.writable().await,
        }
    }
}
