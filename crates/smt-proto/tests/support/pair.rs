//! Two engines wired back to back with no network in between: every datagram one
//! sends is handed to the other at the same virtual instant. For tests and benches
//! that need many RPCs in a known state, fast and without the simulator.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use smt_proto::engine::{Config, Endpoint, Event, Role, SessionHandle, SessionParams};
use smt_proto::record::{CipherSuite, TrafficSecret};
use smt_proto::wire::MessageId;

pub struct Pair {
    pub client: Endpoint,
    pub server: Endpoint,
    pub now: Instant,
    client_addr: SocketAddr,
    server_addr: SocketAddr,
    next_session_id: u64,
    buf: Vec<u8>,
}

impl Pair {
    pub fn new(config: Config) -> Pair {
        let client_addr: SocketAddr = "10.0.0.1:4000".parse().expect("address");
        let server_addr: SocketAddr = "10.0.0.2:4433".parse().expect("address");
        Pair {
            client: Endpoint::new(config.clone(), client_addr.port()).expect("config"),
            server: Endpoint::new(config, server_addr.port()).expect("config"),
            now: Instant::now(),
            client_addr,
            server_addr,
            next_session_id: 1,
            buf: Vec::new(),
        }
    }

    /// Installs a session on both sides: (client handle, server handle).
    pub fn connect(&mut self) -> (SessionHandle, SessionHandle) {
        let session_id = self.next_session_id;
        self.next_session_id += 1;
        let secret = |b: u8| {
            TrafficSecret::new(CipherSuite::Aes128GcmSha256, &[b ^ session_id as u8; 32])
                .expect("32-byte secret")
        };
        let (c2s, s2c) = (secret(1), secret(2));
        let params = |peer, role, tx: &TrafficSecret, rx: &TrafficSecret| SessionParams {
            peer,
            session_id,
            role,
            tx: tx.record_key(),
            rx: rx.record_key(),
            tx_secret: Some(tx.clone()),
            rx_secret: Some(rx.clone()),
        };
        let c = self
            .client
            .install_session(self.now, params(self.server_addr, Role::Client, &c2s, &s2c))
            .expect("client session");
        let s = self
            .server
            .install_session(self.now, params(self.client_addr, Role::Server, &s2c, &c2s))
            .expect("server session");
        (c, s)
    }

    /// Moves datagrams both ways until neither side has anything to send.
    pub fn deliver_all(&mut self) {
        loop {
            let mut moved = false;
            while let Some(t) = self.client.poll_transmit(self.now, &mut self.buf) {
                moved = true;
                let seg = t.segment_size.unwrap_or(t.size);
                for d in self.buf[..t.size].chunks(seg) {
                    self.server.handle_datagram(self.now, self.client_addr, d);
                }
            }
            while let Some(t) = self.server.poll_transmit(self.now, &mut self.buf) {
                moved = true;
                let seg = t.segment_size.unwrap_or(t.size);
                for d in self.buf[..t.size].chunks(seg) {
                    self.client.handle_datagram(self.now, self.server_addr, d);
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Throws away whatever the server would send (a client that went silent).
    pub fn drop_server_output(&mut self) -> usize {
        let mut n = 0;
        while self.server.poll_transmit(self.now, &mut self.buf).is_some() {
            n += 1;
        }
        n
    }

    /// Request IDs the server delivered since the last call.
    pub fn server_requests(&mut self) -> Vec<(SessionHandle, MessageId)> {
        let mut out = Vec::new();
        while let Some(event) = self.server.poll_event() {
            if let Event::Request { session, id, .. } = event {
                out.push((session, id));
            }
        }
        out
    }

    pub fn advance(&mut self, by: Duration) {
        self.now += by;
    }
}
