use std::time::Duration;

use smt_proto::engine::{Config, Event};
use smt_proto::record::CipherSuite;
use smt_sim::{LinkConfig, Network};

#[test]
fn echo_of_various_sizes_without_faults() {
    let mut net = Network::new(1, LinkConfig::default());
    let client = net.add_host(Config::default());
    let server = net.add_host(Config::default());
    net.set_echo(server);
    let (cs, _) = net.connect(client, server, CipherSuite::Aes128GcmSha256);
    let sizes = [0usize, 1, 100, 1412, 5000, 40_000, 100_000, 1 << 20];
    for (i, &size) in sizes.iter().enumerate() {
        let payload: Vec<u8> = (0..size).map(|b| (b + i) as u8).collect();
        let id = net.call(client, cs, &payload);
        let ok = net.run_until(Duration::from_secs(5), |n| {
            n.events(client)
                .iter()
                .any(|(_, e)| matches!(e, Event::Response { id: rid, .. } if *rid == id))
        });
        assert!(ok, "size {size} did not complete; events {:?}", net.events(client).len());
        let events = net.take_events(client);
        match &events.last().unwrap().1 {
            Event::Response { payload: got, .. } => assert_eq!(got, &payload, "size {size}"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
