//! 2000 echo RPCs with Homa W3 message sizes under loss, duplication and reordering:
//! every response arrives exactly once and byte-identical.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use smt_proto::engine::Config;
use smt_proto::record::CipherSuite;
use smt_proto::wire::MessageId;
use smt_sim::workload::{SizeSampler, Workload};
use smt_sim::{LinkConfig, Network};

mod common;
use common::{failures, payload, responses};

/// Runs `count` echo RPCs with W3 sizes, `window` at a time, on one session; returns
/// the virtual completion time.
fn w3_run(seed: u64, loss: f64) -> Duration {
    const COUNT: usize = 2000;
    const WINDOW: usize = 16;
    let link = LinkConfig { loss, duplicate: 0.02, reorder: 0.05, ..LinkConfig::default() };
    let mut net = Network::new(seed, link);
    let client = net.add_host(Config::default());
    let server = net.add_host(Config::default());
    net.set_echo(server);
    let (cs, _) = net.connect(client, server, CipherSuite::Aes128GcmSha256);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let sampler = SizeSampler::new(Workload::W3, None);
    let mut sent: BTreeMap<MessageId, Vec<u8>> = BTreeMap::new();
    let mut issued = 0;
    while issued < WINDOW {
        let len = sampler.sample(&mut rng) as usize;
        let p = payload(&mut rng, len);
        sent.insert(net.call(client, cs, &p), p);
        issued += 1;
    }
    let mut done = 0;
    let finished = net.run_until(Duration::from_secs(600), |n| {
        let now_done = n.events(client).len();
        // Closed loop: one new call per completion.
        for _ in done..now_done {
            if issued < COUNT {
                let len = sampler.sample(&mut rng) as usize;
                let p = payload(&mut rng, len);
                sent.insert(n.call(client, cs, &p), p);
                issued += 1;
            }
        }
        done = now_done;
        done >= COUNT
    });
    assert!(finished, "loss {loss}: only {done} of {COUNT} RPCs finished");
    assert!(failures(&net, client).is_empty(), "loss {loss}: {:?}", failures(&net, client));
    let got = responses(&net, client);
    assert_eq!(got.len(), COUNT);
    for (id, request) in &sent {
        assert!(got[id] == *request, "loss {loss}: response {id} differs from its request");
    }
    // The server ran every request exactly once.
    assert_eq!(net.endpoint_ref(server).stats().requests_delivered, COUNT as u64);
    let elapsed = net.elapsed();
    // Let acknowledgements settle, then all state must be gone.
    net.run_idle(elapsed + Duration::from_secs(5));
    assert_eq!(net.endpoint_ref(client).memory_usage().rpcs, 0);
    assert_eq!(net.endpoint_ref(server).memory_usage().rpcs, 0, "loss {loss}: server kept RPCs");
    elapsed
}

#[test]
fn w3_rpcs_arrive_exactly_once_and_intact_at_0_1_5_and_20_percent_loss() {
    let mut report = String::from("loss  completion (virtual)\n");
    for (seed, loss) in [(11, 0.0), (12, 0.01), (13, 0.05), (14, 0.20)] {
        let t = w3_run(seed, loss);
        report += &format!("{:>3}%  {:?}\n", (loss * 100.0) as u32, t);
        if loss >= 0.2 {
            // Measured 0.44-0.50 s; 1.5 s when every wait for a response after a
            // restart backed off like the restarts (a regression this guards).
            assert!(t < Duration::from_secs(1), "20% loss took {t:?}\n{report}");
        }
    }
    println!("2000 W3 echo RPCs, 16 in flight, 2% duplication, 5% reordering:\n{report}");
}
