//! A live session pair driven by a script of calls, forged packets (right session ID,
//! every other field from the input), loss, duplication and time; see
//! `smt_sim::fuzz` for the invariants it checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    smt_sim::fuzz::run(data);
});
