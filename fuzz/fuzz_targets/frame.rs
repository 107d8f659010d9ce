//! Any byte sequence through the frame decoder and every message decoder of the protocol
//! must be answered with frames or errors, never a panic, and never an allocation beyond the
//! maximum frame size.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A small maximum so the oversized path is hit often, and a large one for the rest.
    let _ = aifm_core::wire::decode_all(data, 256);
    let _ = aifm_core::wire::decode_all(data, aifm_core::wire::DEFAULT_MAX_FRAME);
});
