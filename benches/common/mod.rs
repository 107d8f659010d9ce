//! Setup shared by the benchmarks that measure over a loopback memory server (`latency`,
//! `scan`, `transport`); each includes this module with `mod common;`.
//!
//! The server runs in the benchmark's own process (as a thread of `aifm_server`), on an
//! ephemeral port of 127.0.0.1, with the default capacity and no periodic statistics line, so
//! that its output does not interleave with the figures.

use aifm_server::{Config, RunningServer, Server};

/// A memory server on an ephemeral loopback port, running until the value is dropped.
pub fn server() -> RunningServer {
    let config = Config {
        listen: "127.0.0.1:0".into(),
        stats_interval: None,
        ..Config::default()
    };
    Server::bind(config).unwrap().spawn().unwrap()
}
