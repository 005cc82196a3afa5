//! `PacketRepr::parse` on arbitrary datagrams.
//!
//! Oracles:
//! * `parse` never panics (the wire module's no-panic contract);
//! * a parsed packet is internally consistent (header type equals body type);
//! * round trip: emitting a parsed packet and parsing the result gives the same
//!   packet back, and emitting that again gives the same bytes;
//! * canonical encoding: the parser accepts no byte it would not emit itself, i.e.
//!   the re-emitted packet equals the input byte for byte, except for the contents
//!   of HANDSHAKE padding (which the parser skips and the emitter writes as zeros).
#![no_main]

use libfuzzer_sys::fuzz_target;
use smt_proto::wire::{Body, PacketRepr};

fuzz_target!(|data: &[u8]| {
    let Ok(first) = PacketRepr::parse(data) else {
        return;
    };
    assert_eq!(first.header.packet_type, first.body.packet_type(), "header/body type mismatch");
    // Display must not panic either: it is used to log received packets.
    let _ = first.to_string();

    let emitted = first.to_vec();
    assert_eq!(emitted.len(), first.buffer_len());
    assert_eq!(emitted.len(), data.len(), "accepted packet has bytes the parser ignored");
    let second = match PacketRepr::parse(&emitted) {
        Ok(second) => second,
        Err(err) => panic!("re-emitted packet does not parse: {err}\n  first: {first:?}"),
    };
    assert_eq!(first, second, "parse(emit(parse(x))) != parse(x)");
    assert_eq!(second.to_vec(), emitted, "emit is not stable");

    let significant = match first.body {
        Body::Handshake(h) => emitted.len() - h.padding_len,
        _ => emitted.len(),
    };
    assert_eq!(
        emitted[..significant],
        data[..significant],
        "parser accepted a non-canonical encoding of {first:?}"
    );
});
