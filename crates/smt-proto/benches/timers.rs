//! Cost of one `handle_timeout` call on a server holding 10 RPCs whose timers fire
//! (responses waiting for an acknowledgement) next to 0 or 100 000 idle RPCs
//! (requests the application is still answering). With deadline-ordered timers both
//! cost the same; the `timers` integration test checks the same claim exactly, by
//! counting the timers examined.
//!
//! Run with `cargo bench -p smt-proto --bench timers`.

#[path = "../tests/support/pair.rs"]
mod pair;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use pair::Pair;
use smt_proto::engine::Config;

fn server_with(idle: usize, active: usize) -> Pair {
    let mut config = Config::default();
    // The active RPCs must not time out while the benchmark advances the clock.
    config.rpc_timeout = Duration::from_secs(1 << 30);
    let mut pair = Pair::new(config);
    let mut delivered = Vec::new();
    while delivered.len() < idle + active {
        let (client, _) = pair.connect();
        let n = 50_000.min(idle + active - delivered.len());
        for i in 0..n {
            pair.client.call(pair.now, client, &(i as u64).to_be_bytes()).expect("call");
            if i % 1000 == 999 {
                pair.deliver_all();
            }
        }
        pair.deliver_all();
        delivered.extend(pair.server_requests());
    }
    for &(session, id) in &delivered[..active] {
        pair.server.respond(pair.now, session, id, b"answer").expect("respond");
    }
    pair.drop_server_output();
    // The first silence looks at every RPC once; idle ones then keep no timer.
    pair.advance(Duration::from_millis(4));
    pair.server.handle_timeout(pair.now);
    pair.drop_server_output();
    pair
}

fn timers(c: &mut Criterion) {
    let mut group = c.benchmark_group("handle_timeout_10_due");
    for idle in [0usize, 100_000] {
        let mut pair = server_with(idle, 10);
        group.bench_with_input(BenchmarkId::new("idle_rpcs", idle), &idle, |b, _| {
            b.iter(|| {
                pair.advance(Duration::from_millis(4));
                pair.server.handle_timeout(black_box(pair.now));
                black_box(pair.drop_server_output());
            })
        });
    }
    group.finish();
}

criterion_group!(benches, timers);
criterion_main!(benches);
