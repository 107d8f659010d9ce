//! Figures for docs/TRANSPORT.md, "Erasure coding": on three loopback servers, 4 KiB
//! objects, replication 1, replication 2 and erasure coding 2+1 compared by bytes stored on
//! the servers per byte of data, fetch latency (median, p99) and write-back throughput;
//! each figure the median of three runs on fresh servers; then fetch latency again with one
//! server SIGKILLed (degraded reads: erasure coding decodes from a parity fragment). Not a test: run it by hand.
//!
//! ```text
//! cargo test --release -p aifm-server --test erasure_figures -- --ignored --nocapture --test-threads 1
//! ```

mod common;

use aifm_collections::testing::median;
use aifm_core::backend::replicated::ReplicatedBackend;
use aifm_core::backend::{Backend, OBJECT_STORE};
use common::figures::{fetch_latencies, quantile, write_objects, OBJ};
use common::ServerProc;
use std::time::Instant;

const OBJECTS: u64 = 8192; // 32 MiB of objects
const RUNS: usize = 3;

/// One run's figures.
struct Run {
    /// Bytes stored on the servers per byte of objects.
    ratio: f64,
    /// Write-back throughput, MB/s of objects (batches of 64).
    write_mbps: f64,
    /// Fetch latency, µs: median and 99th percentile.
    median_us: f64,
    p99_us: f64,
    /// The same with server 0 SIGKILLed (not for replication 1, which then loses objects).
    degraded_median_us: f64,
    degraded_p99_us: f64,
}

/// Fetch latencies (µs) of `OBJECTS` random objects: median and 99th percentile.
fn fetch(far: &ReplicatedBackend, value: &[u8]) -> (f64, f64) {
    let lat = fetch_latencies(far, OBJECTS, value);
    (quantile(&lat, 0.5), quantile(&lat, 0.99))
}

fn measure(far: &ReplicatedBackend, servers: &mut [ServerProc]) -> Run {
    let value: Vec<u8> = (0..OBJ).map(|i| (i * 31 % 251) as u8).collect();
    let write_mbps = write_objects(far, OBJECTS, &value);
    let ratio = far.stored_bytes() as f64 / (OBJECTS as usize * OBJ) as f64;
    let (median_us, p99_us) = fetch(far, &value);
    let (mut degraded_median_us, mut degraded_p99_us) = (f64::NAN, f64::NAN);
    if far.replicas() > 1 || far.erasure().is_some() {
        servers[0].kill();
        far.keys(OBJECT_STORE).unwrap(); // notices the death
        (degraded_median_us, degraded_p99_us) = fetch(far, &value);
    }
    Run {
        ratio,
        write_mbps,
        median_us,
        p99_us,
        degraded_median_us,
        degraded_p99_us,
    }
}

#[test]
#[ignore = "figures, run by hand"]
fn erasure_figures() {
    let modes = [
        ("replication 1", None::<(usize, usize)>, 1),
        ("replication 2", None, 2),
        ("erasure 2+1", Some((2, 1)), 2),
    ];
    for (name, erasure, replicas) in modes {
        let runs: Vec<Run> = (0..RUNS)
            .map(|_| {
                let mut servers = common::start_servers(3);
                let mut far = common::replicated(&servers).with_replicas(replicas);
                if let Some((k, m)) = erasure {
                    far = far.with_erasure(k, m).unwrap();
                }
                measure(&far, &mut servers)
            })
            .collect();
        let pick = |f: fn(&Run) -> f64| median(&mut runs.iter().map(f).collect::<Vec<_>>());
        println!(
            "{name:>14}: stored {:.3} bytes per byte, write-back {:.0} MB/s, fetch median {:.1} us, p99 {:.1} us; one server dead: median {:.1} us, p99 {:.1} us",
            pick(|r| r.ratio),
            pick(|r| r.write_mbps),
            pick(|r| r.median_us),
            pick(|r| r.p99_us),
            pick(|r| r.degraded_median_us),
            pick(|r| r.degraded_p99_us)
        );
    }
}

/// Rebuild of a SIGKILLed server's share, replication 2 against erasure 2+1: 64 MiB of 4 KiB
/// objects on three servers, the clock from `replace_server` to the end of the rebuild;
/// the median of three runs.
#[test]
#[ignore = "figures, run by hand"]
fn erasure_rebuild_figures() {
    const REBUILD_OBJECTS: u64 = 16_384;
    for (name, erasure) in [("replication 2", None), ("erasure 2+1", Some((2, 1)))] {
        let mut secs = Vec::new();
        let mut objects = 0;
        let mut bytes = 0;
        for _ in 0..RUNS {
            let mut servers = common::start_servers(3);
            let mut far = common::replicated(&servers);
            if let Some((k, m)) = erasure {
                far = far.with_erasure(k, m).unwrap();
            }
            let far = std::sync::Arc::new(far);
            write_objects(&*far, REBUILD_OBJECTS, &[0x5au8; OBJ]);
            servers[1].kill();
            far.keys(OBJECT_STORE).unwrap(); // notices the death
            let new = ServerProc::start(&[]);
            let t = Instant::now();
            far.replace_server(1, Box::new(new.client())).unwrap();
            far.wait_rebuilt(1, std::time::Duration::from_secs(600))
                .unwrap();
            secs.push(t.elapsed().as_secs_f64());
            let s = far.stats();
            (objects, bytes) = (s.rebuilt_objects, s.rebuilt_bytes);
            assert_eq!(s.unrecoverable_objects, 0);
        }
        let secs = median(&mut secs);
        println!(
            "{name:>14}: rebuilt {objects} objects ({:.1} MiB written to the replacement) in {secs:.2} s = {:.0} objects/s",
            bytes as f64 / (1 << 20) as f64,
            objects as f64 / secs
        );
    }
}
