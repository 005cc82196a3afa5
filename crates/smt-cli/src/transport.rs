//! Which network transport carries SMT, and how to open endpoints on it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::ValueEnum;

/// The `--transport` choices. Adding one is a variant here and an arm in
/// [`Transport::builder`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    /// SMT datagrams in UDP (any host, no privileges).
    #[default]
    Udp,
    /// SMT directly over IP with protocol number 253 (needs CAP_NET_RAW).
    Ip,
}

impl Transport {
    /// An endpoint builder for this transport (address and TLS still to be set).
    fn builder(self) -> smt::EndpointBuilder {
        match self {
            Transport::Udp => smt::Endpoint::builder(),
            Transport::Ip => smt::Endpoint::builder().network(smt::Transport::native_ip()),
        }
    }

    /// The name given on the command line.
    pub fn name(self) -> String {
        self.to_possible_value().map(|v| v.get_name().to_owned()).unwrap_or_default()
    }

    /// An endpoint accepting sessions on `listen`.
    pub fn server_endpoint(
        self,
        listen: SocketAddr,
        tls: Arc<rustls::ServerConfig>,
        config: smt::TransportConfig,
    ) -> Result<smt::Endpoint> {
        self.builder()
            .bind(listen)
            .server_config(tls)
            .transport_config(config)
            .build()
            .with_context(|| format!("cannot listen on {} {listen}", self.name()))
    }

    /// An endpoint on an ephemeral local port, able to connect to `peer`.
    pub fn client_endpoint(
        self,
        peer: SocketAddr,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<smt::Endpoint> {
        // Same address family as the peer; stay on loopback for a loopback peer.
        let ip: IpAddr = match peer {
            _ if peer.ip().is_loopback() => peer.ip(),
            SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        };
        let local = SocketAddr::new(ip, 0);
        self.builder()
            .bind(local)
            .client_config(tls)
            .build()
            .with_context(|| format!("cannot open a {} endpoint on {local}", self.name()))
    }
}

/// Every address of `HOST:PORT` (an IP address or a name), the system's order
/// kept. `localhost` always includes both loopback addresses, 127.0.0.1 and ::1
/// (RFC 6761 section 6.3), whatever /etc/hosts lists, so a client finds a server
/// listening on either.
pub async fn resolve_all(addr: &str) -> Result<Vec<SocketAddr>> {
    let mut all: Vec<SocketAddr> = tokio::net::lookup_host(addr)
        .await
        .with_context(|| format!("cannot resolve {addr:?} (expected HOST:PORT)"))?
        .collect();
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    if host.eq_ignore_ascii_case("localhost") {
        if let Some(port) = all.first().map(SocketAddr::port) {
            for ip in [IpAddr::from(Ipv4Addr::LOCALHOST), IpAddr::from(Ipv6Addr::LOCALHOST)] {
                let candidate = SocketAddr::new(ip, port);
                if !all.contains(&candidate) {
                    all.push(candidate);
                }
            }
        }
    }
    all.dedup();
    if all.is_empty() {
        anyhow::bail!("{addr:?} resolves to no address");
    }
    Ok(all)
}
