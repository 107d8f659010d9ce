//! A memcached-like cache (the original's Fig. 9/10): many small pairs (12 B keys, 4 B
//! values) in a `RemHashMap`, hit by several threads with Zipf-distributed GETs and a few SETs.
//!
//! ```text
//! cargo run --release --example kv_cache -- --help
//! cargo run --release --example kv_cache -- --local-mib 64 --skew 0.99
//! ```
//!
//! Throughput is operations per second over all threads. With `--inflight N` (default 64) each
//! client thread keeps N requests in flight as tasks on tokio's current-thread runtime: GETs
//! use `RemHashMap::get_async` and SETs `RemHashMap::insert_async`, whose misses from all of
//! a thread's tasks travel in one batch.
//! `--inflight 1` is the synchronous loop.

#[path = "common/mod.rs"]
mod common;

use aifm::collections::RemHashMap;
use clap::Parser;
use common::{hashmap_mib, report, run_tasks, share, Common, InFlight, Outcome, Timer, XorShift};
use rand::SeedableRng;
use rand_distr::{Distribution, Zipf};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// A memcached-like cache under Zipf load.
#[derive(Parser, Debug)]
// A later flag overrides an earlier one: the harness appends its sweep's `--threads` and
// `--inflight` after the arguments a user passes to every run.
#[command(args_override_self = true)]
struct Args {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    inflight: InFlight,
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
trait Cache: Send + Sync + 'static {
    fn get(&self, k: &Key) -> Option<u32>;
    fn set(&self, k: Key, v: u32);
    /// `get` for a request task: it may wait for far memory without blocking the thread.
    async fn get_async(&self, k: &Key) -> Option<u32>;
    /// `set` for a request task.
    async fn set_async(&self, k: Key, v: u32);
}

impl Cache for RemHashMap<Key, u32> {
    fn get(&self, k: &Key) -> Option<u32> {
        RemHashMap::get(self, k).map(|v| *v)
    }
    fn set(&self, k: Key, v: u32) {
        self.insert(k, v);
    }
    async fn get_async(&self, k: &Key) -> Option<u32> {
        RemHashMap::get_async(self, k).await.expect("far memory")
    }
    async fn set_async(&self, k: Key, v: u32) {
        self.insert_async(k, v).await.expect("far memory");
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
    async fn get_async(&self, k: &Key) -> Option<u32> {
        self.get(k)
    }
    async fn set_async(&self, k: Key, v: u32) {
        self.set(k, v)
    }
}

/// The request stream of one client (a thread, or a task of one): Zipf keys, a few SETs.
struct Client {
    rng: rand::rngs::StdRng,
    zipf: Zipf<f64>,
    coin: XorShift,
    set_ratio: f64,
}

impl Client {
    fn new(seed: u64, pairs: u64, skew: f64, set_ratio: f64) -> Self {
        Client {
            rng: rand::rngs::StdRng::seed_from_u64(seed.wrapping_mul(0x1234_5678)),
            zipf: Zipf::new(pairs, skew.max(1e-9)).expect("valid Zipf parameters"),
            coin: XorShift::new(seed | 1),
            set_ratio,
        }
    }

    /// The next request: the pair's number, and whether it is a SET.
    fn next(&mut self) -> (u64, bool) {
        let i = self.zipf.sample(&mut self.rng) as u64 - 1;
        (i, self.coin.unit() < self.set_ratio)
    }
}

/// The request mix: how many pairs, the Zipf exponent, the fraction of SETs.
#[derive(Clone, Copy)]
struct Mix {
    pairs: u64,
    skew: f64,
    set_ratio: f64,
}

/// `ops` requests served synchronously by one client; the GETs served.
fn serve<C: Cache>(cache: &C, ops: u64, client: &mut Client) -> u64 {
    let mut hits = 0;
    for _ in 0..ops {
        let (i, set) = client.next();
        if set {
            cache.set(key(i), value(i));
        } else {
            let v = cache.get(&key(i)).expect("every key was loaded");
            assert_eq!(v, value(i), "wrong value for key {i}");
            hits += 1;
        }
    }
    hits
}

/// `ops` requests served by `inflight` tasks of this thread, task `t` a client seeded with
/// `seed + t`; the GETs served.
fn serve_tasks<C: Cache>(cache: &Arc<C>, ops: u64, inflight: u64, seed: u64, mix: Mix) -> u64 {
    run_tasks(inflight, |task| {
        let cache = cache.clone();
        let mut client = Client::new(seed + task, mix.pairs, mix.skew, mix.set_ratio);
        async move {
            let mut hits = 0;
            for _ in 0..share(ops, inflight, task) {
                let (i, set) = client.next();
                if set {
                    cache.set_async(key(i), value(i)).await;
                } else {
                    let v = cache
                        .get_async(&key(i))
                        .await
                        .expect("every key was loaded");
                    assert_eq!(v, value(i), "wrong value for key {i}");
                    hits += 1;
                }
            }
            hits
        }
    })
    .into_iter()
    .sum()
}

/// Runs the client threads: `warmup` untimed operations each, then (after a barrier, where
/// the clock starts) `ops` timed ones. Returns the timed GETs and the timed seconds.
fn drive<C: Cache>(cache: Arc<C>, args: &Args, pairs: u64) -> (u64, f64) {
    let start = Arc::new(std::sync::Barrier::new(args.threads as usize + 1));
    let mix = Mix {
        pairs,
        skew: args.skew,
        set_ratio: args.set_ratio,
    };
    let threads: Vec<_> = (0..args.threads)
        .map(|t| {
            let (cache, start) = (cache.clone(), start.clone());
            let (ops, warmup, inflight) = (args.ops, args.warmup, args.inflight.inflight);
            // Clients of different threads (and tasks) draw different streams.
            let seed = (args.common.seed ^ ((t + 1) << 32)).wrapping_mul(1 << 16);
            std::thread::spawn(move || {
                if inflight == 1 {
                    let mut client = Client::new(seed, mix.pairs, mix.skew, mix.set_ratio);
                    serve(&*cache, warmup, &mut client);
                    start.wait();
                    serve(&*cache, ops, &mut client)
                } else {
                    serve_tasks(&cache, warmup, inflight, seed, mix);
                    start.wait();
                    serve_tasks(&cache, ops, inflight, seed + inflight, mix)
                }
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
    let (gets, seconds) = match &rt {
        None => {
            let shards = (0..256).map(|_| RwLock::new(HashMap::new())).collect();
            let local = LocalCache(shards);
            for i in 0..pairs {
                local.set(key(i), value(i));
                if i % 65_536 == 0 {
                    bar.set_position(i);
                }
            }
            bar.finish_and_clear();
            drive(Arc::new(local), &args, pairs)
        }
        Some(rt) => {
            let map: RemHashMap<Key, u32> = RemHashMap::new_in(rt);
            for i in 0..pairs {
                map.insert(key(i), value(i));
                if i % 65_536 == 0 {
                    bar.set_position(i);
                }
            }
            bar.finish_and_clear();
            drive(Arc::new(map), &args, pairs)
        }
    };
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
            extra: serde_json::json!({ "pairs": pairs, "skew": args.skew, "threads": args.threads, "gets": gets, "inflight": args.inflight.inflight }),
        },
    );
}
