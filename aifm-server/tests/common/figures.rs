//! Measurement helpers of the figures tests (`*_figures.rs`): batched writes of 4 KiB objects
//! to a backend's object store, timed, and random reads, timed one by one and checked.

use aifm_collections::testing::XorShift;
use aifm_core::backend::{Backend, OBJECT_STORE};
use std::time::Instant;

/// Object size of the figures.
pub const OBJ: usize = 4096;
/// Objects per `write_many` batch.
pub const BATCH: usize = 64;

/// The object store key of object `i`.
pub fn key(i: u64) -> [u8; 8] {
    i.to_le_bytes()
}

/// Writes objects `0..objects`, each `value`, in batches of [`BATCH`]; returns the write
/// throughput in MB/s of objects.
pub fn write_objects(far: &dyn Backend, objects: u64, value: &[u8]) -> f64 {
    let keys: Vec<[u8; 8]> = (0..objects).map(key).collect();
    let t = Instant::now();
    for chunk in keys.chunks(BATCH) {
        let items: Vec<(&[u8], &[u8])> = chunk.iter().map(|k| (&k[..], value)).collect();
        far.write_many(OBJECT_STORE, &items).unwrap();
    }
    (objects as usize * value.len()) as f64 / t.elapsed().as_secs_f64() / 1e6
}

/// Reads `objects` random objects of `0..objects` one at a time, checking each is `value`;
/// returns the latencies in µs, sorted.
pub fn fetch_latencies(far: &dyn Backend, objects: u64, value: &[u8]) -> Vec<f64> {
    let mut lat = Vec::with_capacity(objects as usize);
    let mut rng = XorShift::new(0x2545_f491_4f6c_dd1d);
    for _ in 0..objects {
        let k = key(rng.next_u64() % objects);
        let t = Instant::now();
        let v = far.read(OBJECT_STORE, &k).unwrap();
        lat.push(t.elapsed().as_secs_f64() * 1e6);
        assert_eq!(v.as_deref(), Some(value));
    }
    lat.sort_by(f64::total_cmp);
    lat
}

/// The `p` quantile (0 to 1) of `sorted`, 0 for no samples.
pub fn quantile(sorted: &[f64], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0)
}
