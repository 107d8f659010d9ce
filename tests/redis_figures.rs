//! Figures (ignored by default): raw fetch latency and write-back throughput of the Redis
//! Cluster backend (with and without waiting for a replica) against the native `TcpBackend`
//! on one in-process `aifm-server`, all on loopback.
//!
//! ```text
//! cargo test --release --features redis --test redis_figures -- --ignored --nocapture
//! ```
//!
//! Prints one table; the machine is shared, so read the ratios of one run, not the absolute
//! numbers.

mod support;

use aifm_core::backend::redis::RedisClusterBuilder;
use aifm_core::backend::tcp::TcpBackend;
use aifm_core::backend::{Backend, OBJECT_STORE};
use std::time::{Duration, Instant};
use support::redis_cluster::TestCluster;

const OBJECTS: u64 = 4096;
const SIZE: usize = 4096;
const BATCH: usize = 64;

fn median(v: Vec<Duration>) -> Duration {
    let mut secs: Vec<f64> = v.iter().map(Duration::as_secs_f64).collect();
    Duration::from_secs_f64(aifm_collections::testing::median(&mut secs))
}

/// (median fetch latency, write-back MiB/s, median single-write latency)
fn measure(far: &dyn Backend) -> (Duration, f64, Duration) {
    let keys: Vec<[u8; 8]> = (0..OBJECTS).map(|i| i.to_le_bytes()).collect();
    let value = vec![7u8; SIZE];
    // Write-back: batches of BATCH objects, as the evacuator sends them.
    let t = Instant::now();
    for chunk in keys.chunks(BATCH) {
        let items: Vec<(&[u8], &[u8])> = chunk.iter().map(|k| (&k[..], &value[..])).collect();
        far.write_many(OBJECT_STORE, &items).unwrap();
    }
    let mib_s = (OBJECTS as usize * SIZE) as f64 / (1 << 20) as f64 / t.elapsed().as_secs_f64();
    // Fetch: one object per round trip, as a dereference miss does.
    let reads: Vec<Duration> = keys
        .iter()
        .step_by(2)
        .map(|k| {
            let t = Instant::now();
            let v = far.read(OBJECT_STORE, k).unwrap();
            let d = t.elapsed();
            assert_eq!(v.map(|v| v.len()), Some(SIZE));
            d
        })
        .collect();
    let writes: Vec<Duration> = keys
        .iter()
        .take(1000)
        .map(|k| {
            let t = Instant::now();
            far.write(OBJECT_STORE, k, &value).unwrap();
            t.elapsed()
        })
        .collect();
    let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
    far.remove_many(OBJECT_STORE, &refs).unwrap();
    (median(reads), mib_s, median(writes))
}

#[test]
#[ignore = "a figure, not a check: run with --ignored --nocapture"]
fn redis_against_the_native_server() {
    let cluster = TestCluster::start(17300);
    let server = aifm_server::Server::bind(aifm_server::Config {
        listen: "127.0.0.1:0".into(),
        ..Default::default()
    })
    .unwrap()
    .spawn()
    .unwrap();
    let tcp = TcpBackend::connect(&server.addr().to_string()).unwrap();
    let acked = RedisClusterBuilder::new(&cluster.addr).build().unwrap();
    let unacked = RedisClusterBuilder::new(&cluster.addr)
        .replica_acks(0)
        .build()
        .unwrap();
    println!("| backend | fetch 4 KiB (median) | write-back, batches of {BATCH} x 4 KiB | single write (median) |");
    println!("|---|---:|---:|---:|");
    for round in 0..3 {
        for (name, far) in [
            ("aifm-server (TcpBackend)", &tcp as &dyn Backend),
            ("Redis Cluster, WAIT 1 (default)", &acked),
            ("Redis Cluster, no WAIT (replica_acks 0)", &unacked),
        ] {
            let (fetch, mib_s, write) = measure(far);
            println!(
                "| {name} (run {}) | {:.1} µs | {mib_s:.0} MiB/s | {:.1} µs |",
                round + 1,
                fetch.as_secs_f64() * 1e6,
                write.as_secs_f64() * 1e6
            );
        }
    }
    server.stop();
}
