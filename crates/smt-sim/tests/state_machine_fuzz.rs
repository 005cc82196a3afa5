//! The state-machine fuzz driver (`smt_sim::fuzz`) on random inputs: the short run
//! CI makes. `cargo fuzz run session_state` (see fuzz/README.md) runs it
//! coverage-guided for as long as you like.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn random_scripts_of_calls_forgeries_and_faults_keep_every_invariant() {
    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    for _ in 0..1000 {
        let len = rng.gen_range(0..4096);
        let input: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        smt_sim::fuzz::run(&input);
    }
}
