//! `sendmmsg`: several datagrams (each possibly a UDP GSO batch) to any destinations
//! in one system call, which neither std, socket2 nor quinn-udp offers. One of the
//! two places of the workspace that use `unsafe` (the other is `raw_ip.rs`); every
//! block says why it is sound.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::RawFd;

use socket2::SockAddr;

/// Most messages one call carries (the kernel's limit is 1024; a receive batch on
/// the other side takes 32-64 at a time anyway).
pub(crate) const MAX_MESSAGES: usize = 64;

/// One message: `data` to `address`, cut by the kernel into datagrams of `segment`
/// bytes (UDP GSO) if set, sent from local address `source` if set (a socket bound
/// to the unspecified address on a host with several addresses must answer from
/// the one the peer sent to).
pub(crate) struct Message<'a> {
    pub address: &'a SockAddr,
    pub data: &'a [u8],
    pub segment: Option<u16>,
    pub source: Option<std::net::IpAddr>,
}

/// `SOL_UDP` / `UDP_SEGMENT` (linux/udp.h): the GSO segment size of one send.
const SOL_UDP: libc::c_int = 17;
const UDP_SEGMENT: libc::c_int = 103;

/// Room for the control messages of one datagram, in `u64`s (keeps them aligned):
/// a `u16` segment size (24 bytes with its header) and an `in6_pktinfo` (40).
const CMSG_WORDS: usize = 8;

/// Sends the first [`MAX_MESSAGES`] of `messages` with one `sendmmsg`; returns how
/// many the kernel took (all of them, a prefix, or an error if it took none).
pub(crate) fn sendmmsg(fd: RawFd, messages: &[Message<'_>]) -> io::Result<usize> {
    let n = messages.len().min(MAX_MESSAGES);
    if n == 0 {
        return Ok(0);
    }
    // SAFETY: iovec, mmsghdr and their fields are plain C data for which all-zero
    // bytes are valid values (null pointers, zero lengths and flags).
    let mut iovecs: [libc::iovec; MAX_MESSAGES] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut headers: [libc::mmsghdr; MAX_MESSAGES] = unsafe { std::mem::zeroed() };
    let mut control = [[0u64; CMSG_WORDS]; MAX_MESSAGES];
    for (i, m) in messages[..n].iter().enumerate() {
        iovecs[i] =
            libc::iovec { iov_base: m.data.as_ptr() as *mut libc::c_void, iov_len: m.data.len() };
        let h = &mut headers[i].msg_hdr;
        h.msg_name = m.address.as_ptr() as *mut libc::c_void;
        h.msg_namelen = m.address.len();
        h.msg_iov = &mut iovecs[i] as *mut libc::iovec;
        h.msg_iovlen = 1;
        if m.segment.is_none() && m.source.is_none() {
            continue;
        }
        h.msg_control = control[i].as_mut_ptr() as *mut libc::c_void;
        h.msg_controllen = (CMSG_WORDS * 8) as _;
        let mut used = 0usize;
        // SAFETY: `h` has a zeroed, aligned control buffer of CMSG_WORDS * 8 = 64
        // bytes, and at most two control messages are written into it: a u16 (space
        // 24) and an in_pktinfo or in6_pktinfo (space 32 or 40), 64 bytes at most.
        // CMSG_FIRSTHDR / CMSG_NXTHDR return pointers inside that buffer while
        // msg_controllen covers it (it is set to the full buffer while writing and
        // trimmed to what was written afterwards), and the writes are unaligned-safe.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(h);
            if let Some(segment) = m.segment {
                (*cmsg).cmsg_level = SOL_UDP;
                (*cmsg).cmsg_type = UDP_SEGMENT;
                (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut u16, segment);
                used += libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) as usize;
                cmsg = libc::CMSG_NXTHDR(h, cmsg);
            }
            match m.source {
                Some(std::net::IpAddr::V4(ip)) if !cmsg.is_null() => {
                    let info = libc::in_pktinfo {
                        ipi_ifindex: 0,
                        ipi_spec_dst: libc::in_addr { s_addr: u32::from_ne_bytes(ip.octets()) },
                        ipi_addr: libc::in_addr { s_addr: 0 },
                    };
                    let len = std::mem::size_of::<libc::in_pktinfo>() as u32;
                    (*cmsg).cmsg_level = libc::IPPROTO_IP;
                    (*cmsg).cmsg_type = libc::IP_PKTINFO;
                    (*cmsg).cmsg_len = libc::CMSG_LEN(len) as _;
                    std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut libc::in_pktinfo, info);
                    used += libc::CMSG_SPACE(len) as usize;
                }
                Some(std::net::IpAddr::V6(ip)) if !cmsg.is_null() => {
                    let info = libc::in6_pktinfo {
                        ipi6_addr: libc::in6_addr { s6_addr: ip.octets() },
                        ipi6_ifindex: 0,
                    };
                    let len = std::mem::size_of::<libc::in6_pktinfo>() as u32;
                    (*cmsg).cmsg_level = libc::IPPROTO_IPV6;
                    (*cmsg).cmsg_type = libc::IPV6_PKTINFO;
                    (*cmsg).cmsg_len = libc::CMSG_LEN(len) as _;
                    std::ptr::write_unaligned(
                        libc::CMSG_DATA(cmsg) as *mut libc::in6_pktinfo,
                        info,
                    );
                    used += libc::CMSG_SPACE(len) as usize;
                }
                _ => {}
            }
        }
        h.msg_controllen = used as _;
        if used == 0 {
            h.msg_control = std::ptr::null_mut();
        }
    }
    // SAFETY: the first `n` headers are initialised and every pointer in them (the
    // addresses, the iovecs, the data and the control buffers) refers to memory that
    // lives until this function returns; the kernel reads them and writes msg_len.
    let sent = unsafe { libc::sendmmsg(fd, headers.as_mut_ptr(), n as libc::c_uint, 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sent as usize)
}

/// The MTU of the route to `peer`, as the kernel knows it (`IP_MTU` / `IPV6_MTU` on
/// a UDP socket connected to it; connecting a UDP socket sends nothing). Loopback
/// reports 65 536, an Ethernet or veth link its configured MTU.
pub(crate) fn route_mtu(peer: std::net::SocketAddr) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let domain = socket2::Domain::for_address(peer);
    let probe = socket2::Socket::new(domain, socket2::Type::DGRAM, None)?;
    probe.connect(&peer.into())?;
    let (level, name) = match peer {
        std::net::SocketAddr::V4(_) => (libc::IPPROTO_IP, libc::IP_MTU),
        std::net::SocketAddr::V6(_) => (libc::IPPROTO_IPV6, libc::IPV6_MTU),
    };
    let mut mtu: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the descriptor is open (owned by `probe`, alive for the call), and the
    // kernel writes at most `len` bytes (one c_int) into `mtu`, which it points to.
    let rc = unsafe {
        libc::getsockopt(
            probe.as_raw_fd(),
            level,
            name,
            &mut mtu as *mut libc::c_int as *mut libc::c_void,
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    usize::try_from(mtu).map_err(|_| io::Error::other("negative MTU"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_route_reports_the_loopback_mtu() {
        let mtu = route_mtu("127.0.0.1:9".parse().unwrap()).unwrap();
        // The loopback device's MTU is 65536 by default; some kernels report
        // 65535 through IP_MTU. Either is far above any Ethernet path.
        assert!((65_000..=65_536).contains(&mtu), "loopback MTU {mtu}");
    }
}
