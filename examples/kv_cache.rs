//! A memcached-like cache (the original's Fig. 9/10): many small pairs (12 B keys, 4 B
//! values) in a `RemHashMap`, hit by several threads with Zipf-distributed GETs and a few SETs.
//!
//! ```text
//! cargo run --release --example kv_cache -- --help
//! cargo run --release --example kv_cache -- --local-mib 64 --skew 0.99
//! ```
//!
//! Throughput is operations per second over all threads.

#[path = "common/mod.rs"]
mod common;

use aifm::collections::RemHashMap;
use clap::Parser;
use common::{hashmap_mib, report, Common, Outcome, Timer, XorShift};
use rand::SeedableRng;
use rand_distr::{Distribution, Zipf};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// A memcached-like cache under Zipf load.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    common: Common,
    /// Pairs at scale 1.0.
    #[arg(long, default_value_t = 4_000_000)]
    pairs: u64,
    /// Zipf exponent of key popularity (0 = uniform).
    #[arg(long, default_value_t = 0.99)]
    skew: f64,
    /// Operations per thread.
    #[arg(long, default_value_t = 2_000_000)]
    ops: u64,
    /// Client threads.
    #[arg(long, default_value_t = 2)]
    threads: u64,
    /// Fraction of operations that are SETs.
    #[arg(long, default_value_t = 0.05)]
    set_ratio: f64,
    /// Untimed operations per thread before the timed ones (so every system reaches its
    /// steady state).
    #[arg(long, default_value_t = 100_000)]
    warmup: u64,
}

type Key = [u8; 12];

/// The key of pair `i`: 12 bytes, all of them depending on `i`.
fn key(i: u64) -> Key {
    let h = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&h.to_le_bytes());
    k[8..].copy_from_slice(&(i as u32).to_le_bytes());
    k
}

/// The value every pair holds (SETs write the same value again, so GETs can check it).
fn value(i: u64) -> u32 {
    (i as u32).wrapping_mul(2_654_435_761)
}

/// The cache, either way.
trait Cache: Send + Sync {
    fn get(&self, k: &Key) -> Option<u32>;
    fn set(&self, k: Key, v: u32);
}

impl Cache for RemHashMap<Key, u32> {
    fn get(&self, k: &Key) -> Option<u32> {
        RemHashMap::get(self, k).map(|v| *v)
    }
    fn set(&self, k: Key, v: u32) {
        self.insert(k, v);
    }
}

/// The all-local cache: a std `HashMap` behind a reader-writer lock per shard.
struct LocalCache(Vec<RwLock<HashMap<Key, u32>>>);

impl LocalCache {
    fn shard(&self, k: &Key) -> &RwLock<HashMap<Key, u32>> {
        &self.0[k[0] as usize % self.0.len()]
    }
}

impl Cache for LocalCache {
    fn get(&self, k: &Key) -> Option<u32> {
        self.shard(k).read().unwrap().get(k).copied()
    }
    fn set(&self, k: Key, v: u32) {
        self.shard(&k).write().unwrap().insert(k, v);
    }
}

/// Runs the client threads: `warmup` untimed operations each, then (after a barrier, where
/// the clock starts) `ops` timed ones. Returns the timed GETs and the timed seconds.
fn drive(cache: Arc<dyn Cache>, args: &Args, pairs: u64) -> (u64, f64) {
    let start = Arc::new(std::sync::Barrier::new(args.threads as usize + 1));
    let threads: Vec<_> = (0..args.threads)
        .map(|t| {
            let (cache, start) = (cache.clone(), start.clone());
            let (ops, warmup, skew, set_ratio, seed) = (
                args.ops,
                args.warmup,
                args.skew,
                args.set_ratio,
                args.common.seed,
            );
            std::thread::spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ ((t + 1) * 0x1234_5678));
                let zipf = Zipf::new(pairs, skew.max(1e-9)).expect("valid Zipf parameters");
                let mut coin = XorShift((seed + t) | 1);
                let mut hits = 0u64;
                for n in 0..warmup + ops {
                    if n == warmup {
                        start.wait();
                        hits = 0;
                    }
                    let i = zipf.sample(&mut rng) as u64 - 1;
                    let k = key(i);
                    if coin.unit() < set_ratio {
                        cache.set(k, value(i));
                    } else {
                        let v = cache.get(&k).expect("every key was loaded");
                        assert_eq!(v, value(i), "wrong value for key {i}");
                        hits += 1;
                    }
                }
                hits
            })
        })
        .collect();
    start.wait();
    let timer = Timer::start();
    let hits = threads.into_iter().map(|t| t.join().unwrap()).sum();
    (hits, timer.seconds())
}

fn main() {
    let args = Args::parse();
    let c = &args.common;
    let pairs = ((args.pairs as f64 * c.scale) as u64).max(1000);
    let bar = c.progress(pairs, "loading");
    let rt = (!c.all_local).then(|| c.runtime());
    let cache: Arc<dyn Cache> = match &rt {
        None => {
            let shards = (0..256).map(|_| RwLock::new(HashMap::new())).collect();
            let local = LocalCache(shards);
            for i in 0..pairs {
                local.set(key(i), value(i));
                if i % 65_536 == 0 {
                    bar.set_position(i);
                }
            }
            Arc::new(local)
        }
        Some(rt) => {
            let map: RemHashMap<Key, u32> = RemHashMap::new_in(rt);
            for i in 0..pairs {
                map.insert(key(i), value(i));
                if i % 65_536 == 0 {
                    bar.set_position(i);
                }
            }
            Arc::new(map)
        }
    };
    bar.finish_and_clear();
    let (gets, seconds) = drive(cache.clone(), &args, pairs);
    let data_mib = hashmap_mib(pairs, 16);
    report(
        c,
        rt.as_ref(),
        Outcome {
            workload: "kv_cache",
            data_mib,
            ops: (args.ops * args.threads) as f64,
            seconds,
            unit: "ops/s",
            extra: serde_json::json!({ "pairs": pairs, "skew": args.skew, "threads": args.threads, "gets": gets }),
        },
    );
}
