//! The web front end (the original's Fig. 6): each request does 32 Zipf-distributed lookups
//! in a hash table of small pairs, sums the values to pick an element of an array of 8 KiB
//! values, reads it (nontemporally: it is used once), encrypts it and compresses it with
//! Snappy. Several threads serve requests concurrently.
//!
//! ```text
//! cargo run --release --example web_frontend -- --help
//! cargo run --release --example web_frontend -- --local-mib 64
//! ```
//!
//! Throughput is requests per second. With `--inflight N` (default 64) each serving thread
//! keeps N requests in flight as tasks on tokio's current-thread runtime: the lookups use
//! `RemHashMap::get_many_async` and the array read `RemVec::get_async`, so one request's
//! misses overlap the others' encryption and compression. `--all-local` runs the same task
//! code; `--inflight 1` is the synchronous loop.

#[path = "common/mod.rs"]
mod common;

use aifm::collections::{RemHashMap, RemVec};
use aifm::Scope;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use clap::Parser;
use common::{hashmap_mib, report, run_tasks, share, Common, InFlight, Outcome, Timer, XorShift};
use rand::SeedableRng;
use rand_distr::{Distribution, Zipf};
use std::collections::HashMap;
use std::sync::Arc;

const VALUE: usize = 8 << 10;
type Value = [u8; VALUE];
type Key = [u8; 12];

/// A web front end: hash-table lookups, then one large value encrypted and compressed.
#[derive(Parser, Debug)]
// A later flag overrides an earlier one: the harness appends its sweep's `--threads` and
// `--inflight` after the arguments a user passes to every run.
#[command(args_override_self = true)]
struct Args {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    inflight: InFlight,
    /// Hash-table pairs at scale 1.0.
    #[arg(long, default_value_t = 1_000_000)]
    pairs: u64,
    /// 8 KiB array elements at scale 1.0.
    #[arg(long, default_value_t = 32_768)]
    values: u64,
    /// Zipf exponent of key popularity.
    #[arg(long, default_value_t = 0.85)]
    skew: f64,
    /// Requests per thread.
    #[arg(long, default_value_t = 20_000)]
    requests: u64,
    /// Serving threads.
    #[arg(long, default_value_t = 2)]
    threads: u64,
    /// Untimed requests per thread before the timed ones (so every system reaches its steady
    /// state: hot pairs found by the evacuator, hot pages by the kernel).
    #[arg(long, default_value_t = 1_000)]
    warmup: u64,
}

fn key(i: u64) -> Key {
    let h = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&h.to_le_bytes());
    k[8..].copy_from_slice(&(i as u32).to_le_bytes());
    k
}

fn fill_value(i: u64, out: &mut Value) {
    let mut r = XorShift::new(i.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
    for w in out.chunks_mut(8) {
        // Half-compressible: text-like low bytes, random high bytes.
        let x = r.next_u64() & 0x3f3f_3f3f_0f0f_0f0f | 0x4040_4040_6060_6060;
        w.copy_from_slice(&x.to_le_bytes()[..w.len()]);
    }
}

/// The two structures, either way.
trait Site: Send + Sync + 'static {
    /// The sum of the values of `keys` (one request's lookups).
    fn lookup_sum(&self, keys: &[Key]) -> u64;
    /// Encrypts and compresses element `i`, returning the compressed length.
    fn render(&self, i: u64, out: &mut Vec<u8>) -> usize;
    /// `lookup_sum` for a request task.
    async fn lookup_sum_async(&self, keys: &[Key]) -> u64;
    /// `render` for a request task.
    async fn render_async(&self, i: u64, out: &mut Vec<u8>) -> usize;
}

fn encrypt_and_compress(v: &Value, out: &mut Vec<u8>) -> usize {
    let mut buf = *v;
    let mut cipher = chacha20::ChaCha20::new(&[7u8; 32].into(), &[9u8; 12].into());
    cipher.apply_keystream(&mut buf);
    out.resize(snap::raw::max_compress_len(VALUE), 0);
    snap::raw::Encoder::new()
        .compress(&buf, out)
        .expect("snappy")
}

struct FarSite {
    table: RemHashMap<Key, u32>,
    array: RemVec<Value>,
}

impl Site for FarSite {
    fn lookup_sum(&self, keys: &[Key]) -> u64 {
        // One round trip for all of this request's misses.
        let values = self.table.get_many_cloned(keys);
        values
            .into_iter()
            .map(|v| v.expect("every key was loaded") as u64)
            .sum()
    }
    fn render(&self, i: u64, out: &mut Vec<u8>) -> usize {
        let scope = Scope::new();
        // Read once: nontemporal, so it does not push the hot pairs out.
        let v = self
            .array
            .get_nt(i as usize, &scope)
            .expect("far memory")
            .expect("in range");
        encrypt_and_compress(v, out)
    }
    async fn lookup_sum_async(&self, keys: &[Key]) -> u64 {
        let values = self.table.get_many_async(keys).await.expect("far memory");
        values
            .into_iter()
            .map(|v| v.expect("every key was loaded") as u64)
            .sum()
    }
    async fn render_async(&self, i: u64, out: &mut Vec<u8>) -> usize {
        let v = self
            .array
            .get_async(i as usize)
            .await
            .expect("far memory")
            .expect("in range");
        encrypt_and_compress(&v, out)
    }
}

struct LocalSite {
    table: HashMap<Key, u32>,
    array: Vec<Box<Value>>,
}

impl Site for LocalSite {
    fn lookup_sum(&self, keys: &[Key]) -> u64 {
        keys.iter().map(|k| self.table[k] as u64).sum()
    }
    fn render(&self, i: u64, out: &mut Vec<u8>) -> usize {
        encrypt_and_compress(&self.array[i as usize], out)
    }
    async fn lookup_sum_async(&self, keys: &[Key]) -> u64 {
        self.lookup_sum(keys)
    }
    async fn render_async(&self, i: u64, out: &mut Vec<u8>) -> usize {
        self.render(i, out)
    }
}

/// How requests are drawn.
#[derive(Clone, Copy)]
struct Load {
    pairs: u64,
    values: u64,
    skew: f64,
}

/// One request: 32 Zipf keys.
fn request_keys(zipf: &Zipf<f64>, rng: &mut rand::rngs::StdRng) -> Vec<Key> {
    (0..32).map(|_| key(zipf.sample(rng) as u64 - 1)).collect()
}

/// `requests` requests served synchronously from the stream seeded with `seed`; the bytes
/// rendered.
fn serve<S: Site>(site: &S, requests: u64, rng: &mut rand::rngs::StdRng, load: Load) -> usize {
    let zipf = Zipf::new(load.pairs, load.skew).expect("valid Zipf parameters");
    let mut out = Vec::new();
    let mut bytes = 0;
    for _ in 0..requests {
        let keys = request_keys(&zipf, rng);
        let sum = site.lookup_sum(&keys);
        bytes += site.render(sum % load.values, &mut out);
    }
    bytes
}

/// `requests` requests served by `inflight` tasks, task `t` drawing from the stream seeded
/// with `seed + t`; the bytes rendered.
fn serve_tasks<S: Site>(
    site: &Arc<S>,
    requests: u64,
    inflight: u64,
    seed: u64,
    load: Load,
) -> usize {
    run_tasks(inflight, |t| {
        let site = site.clone();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed + t);
        let zipf = Zipf::new(load.pairs, load.skew).expect("valid Zipf parameters");
        async move {
            let mut out = Vec::new();
            let mut bytes = 0;
            for _ in 0..share(requests, inflight, t) {
                let keys = request_keys(&zipf, &mut rng);
                let sum = site.lookup_sum_async(&keys).await;
                bytes += site.render_async(sum % load.values, &mut out).await;
            }
            bytes
        }
    })
    .into_iter()
    .sum()
}

/// Serves the timed requests after the warm-up ones on every thread; (bytes, seconds).
fn drive<S: Site>(site: Arc<S>, args: &Args, load: Load) -> (usize, f64) {
    // Each thread serves `warmup` untimed requests, meets the others at a barrier, then
    // serves `requests` timed ones; the clock runs from the barrier to the last thread's end.
    let start = Arc::new(std::sync::Barrier::new(args.threads as usize + 1));
    let threads: Vec<_> = (0..args.threads)
        .map(|t| {
            let (site, start) = (site.clone(), start.clone());
            let (requests, warmup, inflight) = (args.requests, args.warmup, args.inflight.inflight);
            let seed = (args.common.seed ^ ((t + 1) * 0x51ed)) << 16;
            std::thread::spawn(move || {
                if inflight == 1 {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
                    serve(&*site, warmup, &mut rng, load);
                    start.wait();
                    serve(&*site, requests, &mut rng, load)
                } else {
                    serve_tasks(&site, warmup, inflight, seed, load);
                    start.wait();
                    serve_tasks(&site, requests, inflight, seed + inflight, load)
                }
            })
        })
        .collect();
    start.wait();
    let timer = Timer::start();
    let compressed: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    (compressed, timer.seconds())
}

fn main() {
    let args = Args::parse();
    let c = &args.common;
    let pairs = ((args.pairs as f64 * c.scale) as u64).max(1000);
    let values = ((args.values as f64 * c.scale) as u64).max(16);
    let bar = c.progress(pairs + values, "loading");
    let rt = (!c.all_local).then(|| c.runtime());
    let mut v = Box::new([0u8; VALUE]);
    let load = Load {
        pairs,
        values,
        skew: args.skew,
    };
    let (compressed, seconds) = match &rt {
        None => {
            let mut table = HashMap::new();
            let mut array = Vec::new();
            for i in 0..pairs {
                table.insert(key(i), i as u32);
            }
            bar.inc(pairs);
            for i in 0..values {
                fill_value(i, &mut v);
                array.push(v.clone());
                bar.inc(1);
            }
            bar.finish_and_clear();
            drive(Arc::new(LocalSite { table, array }), &args, load)
        }
        Some(rt) => {
            let table = RemHashMap::new_in(rt);
            let mut array = RemVec::with_chunk_bytes_in(VALUE, rt);
            for i in 0..pairs {
                table.insert(key(i), i as u32);
            }
            bar.inc(pairs);
            for i in 0..values {
                fill_value(i, &mut v);
                array.push(*v);
                bar.inc(1);
            }
            bar.finish_and_clear();
            drive(Arc::new(FarSite { table, array }), &args, load)
        }
    };
    let data_mib = hashmap_mib(pairs, 16) + (values * VALUE as u64) as f64 / (1 << 20) as f64;
    report(
        c,
        rt.as_ref(),
        Outcome {
            workload: "web_frontend",
            data_mib,
            ops: (args.requests * args.threads) as f64,
            seconds,
            unit: "requests/s",
            extra: serde_json::json!({ "pairs": pairs, "values": values, "threads": args.threads, "compressed_bytes": compressed, "inflight": args.inflight.inflight }),
        },
    );
}
