//! The transports compared, by name.

use std::fmt;

use clap::ValueEnum;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum)]
pub enum Kind {
    /// Blocking std UDP ping-pong, one datagram each way: the floor.
    RawUdp,
    /// Like raw-udp but both sides spin on non-blocking receives.
    RawUdpBusy,
    /// The bulk floor: 1 MiB echo over UDP with GSO and GRO, no reliability.
    RawUdpGso,
    /// raw-udp-gso that also seals and opens every 16 KiB with AES-128-GCM.
    RawUdpGsoAead,
    /// tokio TcpStream, Nagle off, length-prefixed messages, one connection.
    Tcp,
    /// Like tcp, but both sides spin on non-blocking std sockets (the busy TCP floor).
    TcpBusy,
    /// tokio-rustls over TCP, Nagle off, length-prefixed, one connection.
    TlsTcp,
    /// tokio-rustls over a pool of TCP connections, one RPC per connection at a time.
    TlsTcpPool,
    /// quinn 0.11, one bidirectional stream per RPC.
    Quic,
    /// SMT over UDP.
    Smt,
    /// SMT over UDP with busy-polling endpoints on both sides.
    SmtBusy,
    /// SMT directly over IP (raw sockets, protocol 253).
    SmtIp,
    /// SMT over UDP with the insecure null cipher after the handshake (feature
    /// `insecure-null-cipher`, benchmarks only): what SMT costs without encryption.
    SmtPlain,
}

impl Kind {
    pub const ALL: [Kind; 13] = [
        Kind::RawUdp,
        Kind::RawUdpBusy,
        Kind::RawUdpGso,
        Kind::RawUdpGsoAead,
        Kind::Tcp,
        Kind::TcpBusy,
        Kind::TlsTcp,
        Kind::TlsTcpPool,
        Kind::Quic,
        Kind::Smt,
        Kind::SmtBusy,
        Kind::SmtIp,
        Kind::SmtPlain,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::RawUdp => "raw-udp",
            Kind::RawUdpBusy => "raw-udp-busy",
            Kind::RawUdpGso => "raw-udp-gso",
            Kind::RawUdpGsoAead => "raw-udp-gso-aead",
            Kind::Tcp => "tcp",
            Kind::TcpBusy => "tcp-busy",
            Kind::TlsTcp => "tls-tcp",
            Kind::TlsTcpPool => "tls-tcp-pool",
            Kind::Quic => "quic",
            Kind::Smt => "smt",
            Kind::SmtBusy => "smt-busy",
            Kind::SmtIp => "smt-ip",
            Kind::SmtPlain => "smt-plain",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The server a client of this kind talks to (the pool uses the TLS server).
    pub fn server_kind(self) -> Kind {
        match self {
            Kind::TlsTcpPool => Kind::TlsTcp,
            k => k,
        }
    }

    pub fn is_raw_udp(self) -> bool {
        matches!(self, Kind::RawUdp | Kind::RawUdpBusy)
    }

    /// A floor: plain std socket code on a thread, one RPC at a time (RTT only).
    pub fn is_floor(self) -> bool {
        self.is_raw_udp() || self == Kind::TcpBusy || self.is_bulk_floor()
    }

    /// A bulk floor: large-message echo over UDP GSO/GRO (throughput only).
    pub fn is_bulk_floor(self) -> bool {
        matches!(self, Kind::RawUdpGso | Kind::RawUdpGsoAead)
    }

    pub fn busy_poll(self) -> bool {
        matches!(self, Kind::RawUdpBusy | Kind::SmtBusy | Kind::TcpBusy)
    }

    /// Largest message this kind can carry (one UDP datagram for raw UDP).
    pub fn max_message(self) -> usize {
        if self.is_raw_udp() {
            RAW_UDP_MAX
        } else {
            usize::MAX
        }
    }

    /// Whether the kind needs root (raw IP sockets).
    pub fn needs_root(self) -> bool {
        self == Kind::SmtIp
    }
}

/// Largest raw-UDP payload used (the IPv4 limit is 65 507 B).
pub const RAW_UDP_MAX: usize = 60_000;

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_clap() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_name(k.name()), Some(k));
            let clap_name = k.to_possible_value().unwrap().get_name().to_owned();
            assert_eq!(clap_name, k.name());
        }
        assert_eq!(Kind::TlsTcpPool.server_kind(), Kind::TlsTcp);
    }
}
