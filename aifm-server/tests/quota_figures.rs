//! What an object and a structure really cost the server, against what the quota charges
//! (`OBJECT_OVERHEAD`, `STRUCTURE_COST`). Not a test: run it by hand.
//!
//! ```text
//! cargo test --release -p aifm-server --test quota_figures -- --ignored --nocapture
//! ```

use aifm_core::backend::{OBJECT_STORE, OBJECT_STORE_DEVICE};
use aifm_core::engine::{OBJECT_OVERHEAD, STRUCTURE_COST};
use aifm_core::wire::{Blob, Op};
use aifm_server::{Config, Dispatcher};

fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        << 10
}

#[test]
#[ignore = "a figure, measured by hand"]
fn figure_object_and_structure_cost() {
    let d = Dispatcher::new(Config {
        devices: vec![aifm_collections::register_devices],
        ..Config::default()
    })
    .unwrap();
    let s = d.session();
    const OBJECTS: u64 = 300_000;
    let before = rss();
    for batch in 0..OBJECTS / 1000 {
        let keys: Vec<[u8; 8]> = (0..1000)
            .map(|i| (batch * 1000 + i).to_le_bytes())
            .collect();
        let items = keys.iter().map(|k| (Blob(&k[..]), Blob(b""))).collect();
        s.call(&Op::WriteMany {
            ds: OBJECT_STORE,
            items,
        })
        .unwrap();
    }
    let per_object = (rss() - before) as f64 / OBJECTS as f64;
    const STRUCTURES: u32 = 20_000;
    let before = rss();
    for ds in 1..=STRUCTURES {
        s.call(&Op::Construct {
            ds,
            device: OBJECT_STORE_DEVICE,
            params: Blob(b""),
        })
        .unwrap();
    }
    let per_structure = (rss() - before) as f64 / STRUCTURES as f64;
    println!(
        "an empty object with an 8-byte key: {per_object:.0} bytes of RSS, charged {}; \
         a structure: {per_structure:.0} bytes of RSS, charged {STRUCTURE_COST}",
        8 + OBJECT_OVERHEAD
    );
}
