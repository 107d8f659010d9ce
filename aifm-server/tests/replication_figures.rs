//! Figures for docs/TRANSPORT.md: fetch latency and write-back throughput with one server
//! and with three servers (replication 1 and 2). Not a test: run it by hand.
//!
//! ```text
//! cargo test --release -p aifm-server --test replication_figures -- --ignored --nocapture
//! ```

mod common;

use aifm_core::backend::replicated::ReplicatedBackend;
use aifm_core::backend::{Backend, OBJECT_STORE};
use common::ServerProc;
use std::time::Instant;

const OBJ: usize = 4096;
const OBJECTS: u64 = 8192; // 32 MiB of objects
const BATCH: usize = 64;

fn key(i: u64) -> [u8; 8] {
    i.to_le_bytes()
}

/// Write-back throughput (MB/s, batches of 64), then median and mean fetch latency (µs).
fn measure(far: &dyn Backend) -> (f64, f64, f64) {
    let value = vec![0xa5u8; OBJ];
    let keys: Vec<[u8; 8]> = (0..OBJECTS).map(key).collect();
    let t = Instant::now();
    for chunk in keys.chunks(BATCH) {
        let items: Vec<(&[u8], &[u8])> = chunk.iter().map(|k| (&k[..], &value[..])).collect();
        far.write_many(OBJECT_STORE, &items).unwrap();
    }
    let mbps = (OBJECTS as usize * OBJ) as f64 / t.elapsed().as_secs_f64() / 1e6;
    let mut lat = Vec::with_capacity(OBJECTS as usize);
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..OBJECTS {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let k = key(x % OBJECTS);
        let t = Instant::now();
        let v = far.read(OBJECT_STORE, &k).unwrap();
        lat.push(t.elapsed().as_secs_f64() * 1e6);
        assert_eq!(v.map(|v| v.len()), Some(OBJ));
    }
    let mean = lat.iter().sum::<f64>() / lat.len() as f64;
    lat.sort_by(f64::total_cmp);
    (mbps, lat[lat.len() / 2], mean)
}

#[test]
#[ignore = "figures, run by hand"]
fn replication_figures() {
    let servers: Vec<ServerProc> = (0..3).map(|_| ServerProc::start(&[])).collect();
    let several = |r: usize| {
        let children: Vec<Box<dyn Backend>> = servers
            .iter()
            .map(|s| Box::new(s.client()) as Box<dyn Backend>)
            .collect();
        ReplicatedBackend::new(children).unwrap().with_replicas(r)
    };
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
