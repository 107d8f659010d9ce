//! Figures for docs/TRANSPORT.md: fetch latency and write-back throughput with one server
//! and with three servers (replication 1 and 2), and how fast a replacement server is
//! rebuilt. Not a test: run it by hand.
//!
//! ```text
//! cargo test --release -p aifm-server --test replication_figures -- --ignored --nocapture --test-threads 1
//! ```

mod common;

use aifm_core::backend::replicated::ReplicatedBackend;
use aifm_core::backend::{Backend, OBJECT_STORE};
use common::figures::{fetch_latencies, key, quantile, write_objects, OBJ};
use common::ServerProc;
use std::sync::Arc;
use std::time::{Duration, Instant};

const OBJECTS: u64 = 8192; // 32 MiB of objects

/// Write-back throughput (MB/s, batches of 64), then median and mean fetch latency (µs).
fn measure(far: &dyn Backend) -> (f64, f64, f64) {
    let value = vec![0xa5u8; OBJ];
    let mbps = write_objects(far, OBJECTS, &value);
    let lat = fetch_latencies(far, OBJECTS, &value);
    let mean = lat.iter().sum::<f64>() / lat.len() as f64;
    (mbps, quantile(&lat, 0.5), mean)
}

#[test]
#[ignore = "figures, run by hand"]
fn replication_figures() {
    let servers = common::start_servers(3);
    let several = |r: usize| common::replicated(&servers).with_replicas(r);
    for round in 0..2 {
        let one = servers[0].client();
        let (w, med, mean) = measure(&one);
        println!("round {round} 1 server:         write-back {w:.0} MB/s, fetch median {med:.1} us, mean {mean:.1} us");
        drop(one);
        let wrapped = ReplicatedBackend::new(vec![Box::new(servers[0].client())]).unwrap();
        let (w, med, mean) = measure(&wrapped);
        println!("round {round} 1 server, wrapped: write-back {w:.0} MB/s, fetch median {med:.1} us, mean {mean:.1} us");
        drop(wrapped);
        let (w, med, mean) = measure(&several(1));
        println!("round {round} 3 servers, r = 1: write-back {w:.0} MB/s, fetch median {med:.1} us, mean {mean:.1} us");
        let (w, med, mean) = measure(&several(2));
        println!("round {round} 3 servers, r = 2: write-back {w:.0} MB/s, fetch median {med:.1} us, mean {mean:.1} us");
    }
}

/// Rebuild throughput: 64 MiB of 4 KiB objects on three servers with replication 2, one
/// server SIGKILLed and replaced; the clock runs from `replace_server` to the end of the
/// rebuild (listing the survivors' keys included).
#[test]
#[ignore = "figures, run by hand"]
fn rebuild_figures() {
    const REBUILD_OBJECTS: u64 = 16_384; // 64 MiB
    for round in 0..3 {
        let mut servers = common::start_servers(3);
        let far = Arc::new(common::replicated(&servers));
        let value = vec![0x5au8; OBJ];
        write_objects(&*far, REBUILD_OBJECTS, &value);
        servers[1].kill();
        far.keys(OBJECT_STORE).unwrap(); // notices the death
        assert!(!far.is_live(1));
        let new = ServerProc::start(&[]);
        let t = Instant::now();
        far.replace_server(1, Box::new(new.client())).unwrap();
        // Meanwhile, the application keeps writing (one 4 KiB object at a time).
        let mut lat: Vec<f64> = Vec::new();
        let mut i = REBUILD_OBJECTS;
        while far.is_rebuilding(1) {
            let w = Instant::now();
            far.write(OBJECT_STORE, &key(i), &value).unwrap();
            lat.push(w.elapsed().as_secs_f64() * 1e6);
            i += 1;
        }
        far.wait_rebuilt(1, Duration::from_secs(600)).unwrap();
        let secs = t.elapsed().as_secs_f64();
        lat.sort_by(f64::total_cmp);
        let pct = |p: f64| quantile(&lat, p);
        println!(
            "round {round} foreground writes during the rebuild: {}, median {:.1} us, p99 {:.0} us, max {:.0} us",
            lat.len(),
            pct(0.5),
            pct(0.99),
            pct(1.0)
        );
        let s = far.stats();
        println!(
            "round {round} rebuild: {} objects, {:.1} MiB in {secs:.2} s = {:.0} MB/s ({:.0} objects/s)",
            s.rebuilt_objects,
            s.rebuilt_bytes as f64 / (1 << 20) as f64,
            s.rebuilt_bytes as f64 / secs / 1e6,
            s.rebuilt_objects as f64 / secs
        );
        // The replacement now serves: the other original servers may go.
        servers[0].kill();
        for k in (0..REBUILD_OBJECTS).step_by(97).map(key) {
            if far.placement(OBJECT_STORE, &k).contains(&0) {
                assert_eq!(
                    far.read(OBJECT_STORE, &k).unwrap().map(|v| v.len()),
                    Some(OBJ)
                );
            }
        }
    }
}
