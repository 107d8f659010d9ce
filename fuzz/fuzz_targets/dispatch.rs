//! The server's real request handling (engine, quotas, every device) driven by structured
//! random sessions: two clients construct structures, then send random operations of random
//! sizes (see `aifm_server::fuzzing`). Any panic, a reply larger than a frame, a client
//! beyond its quota, or a charge left after the clients are gone is a crash.
//!
//!   cargo +nightly fuzz run dispatch -- -rss_limit_mb=512 -max_len=8192
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| aifm_server::fuzzing::drive(data));
