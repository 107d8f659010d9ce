//! A deliberately tiny workload for the evaluation harness (`aifm-eval`): its stand-in for the
//! paper's workloads, and its self-test.
//!
//! It fills `data_mib` MiB with non-trivial 64-bit words (zram would compress zeros away) in
//! 4 KiB chunks, then reads every chunk back `--passes` times, each pass in a fresh random
//! order, and checks the sum. Under `--all-local` the chunks live in one `Vec<u64>`; otherwise
//! each chunk is a `RemBox<[u64; 512]>` on a runtime with `--local-mib` of local memory.
//!
//! It follows the harness's example contract (see `eval/src/main.rs`): the last line
//! on stdout is one JSON object with the throughput, in chunk reads per second of the timed
//! read passes (loading is not timed).
//!
//! ```text
//! cargo run --release --example eval_probe -- --local-mib 16 --scale 1
//! cargo run --release --example eval_probe -- --all-local
//! ```

use aifm::{RemBox, Runtime, Scope};
use clap::Parser;
use std::time::Instant;

/// Words per chunk: 4 KiB objects, one page each.
const CHUNK_WORDS: usize = 512;
/// Data size at `--scale 1.0`.
const DEFAULT_DATA_MIB: f64 = 64.0;

/// Reads a few MiB of 4 KiB chunks back in random order, local or far.
#[derive(Debug, Parser)]
struct Args {
    /// Local-memory budget of the far-memory runtime, in MiB (ignored with --all-local).
    #[arg(long, default_value_t = 16)]
    local_mib: u64,
    /// Far memory: `embedded`, or `HOST:PORT` of an aifm-server.
    #[arg(long, default_value = "embedded")]
    backend: String,
    /// Run the same program on a plain `Vec<u64>` (the all-local baseline).
    #[arg(long)]
    all_local: bool,
    /// Data size as a multiple of 64 MiB.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Seed of the fill values and of the read order.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Read passes over the whole data.
    #[arg(long, default_value_t = 2)]
    passes: u32,
    /// Print only the JSON line.
    #[arg(long)]
    quiet: bool,
}

/// splitmix64: a small, good, seedable generator (no dependency needed for a probe).
fn mix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A chunk's contents: deterministic from the seed and the chunk's index.
fn fill(seed: u64, index: usize) -> [u64; CHUNK_WORDS] {
    let mut state = seed ^ (index as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93);
    std::array::from_fn(|_| mix(&mut state))
}

/// A seeded random permutation of `0..n` (Fisher-Yates).
fn order(n: usize, state: &mut u64) -> Vec<u32> {
    let mut v: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        let j = (mix(state) % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

/// The data, in one of the two forms.
enum Store {
    Local(Vec<u64>),
    Far(Vec<RemBox<[u64; CHUNK_WORDS]>>),
}

fn main() {
    let args = Args::parse();
    let data_mib = (DEFAULT_DATA_MIB * args.scale).max(1.0).round() as u64;
    let chunks = (data_mib << 20) as usize / (CHUNK_WORDS * 8);

    let runtime = if args.all_local {
        None
    } else {
        let mut b = Runtime::builder().local_memory((args.local_mib as usize) << 20);
        if args.backend != "embedded" {
            b = b.server(args.backend.clone());
        }
        match b.build() {
            Ok(rt) => Some(rt),
            Err(e) => {
                eprintln!("eval_probe: cannot start the runtime: {e}");
                std::process::exit(2);
            }
        }
    };

    let mut expected = 0u64;
    let store = match &runtime {
        None => {
            let mut v = Vec::with_capacity(chunks * CHUNK_WORDS);
            for i in 0..chunks {
                let c = fill(args.seed, i);
                expected = c.iter().fold(expected, |a, &w| a.wrapping_add(w));
                v.extend_from_slice(&c);
            }
            Store::Local(v)
        }
        Some(rt) => Store::Far(
            (0..chunks)
                .map(|i| {
                    let c = fill(args.seed, i);
                    expected = c.iter().fold(expected, |a, &w| a.wrapping_add(w));
                    RemBox::new_in(c, rt)
                })
                .collect(),
        ),
    };

    let mut rng = args.seed.wrapping_add(0x5EED);
    let orders: Vec<Vec<u32>> = (0..args.passes).map(|_| order(chunks, &mut rng)).collect();
    let start = Instant::now();
    for perm in &orders {
        let mut sum = 0u64;
        match &store {
            Store::Local(v) => {
                for &i in perm {
                    let c = &v[i as usize * CHUNK_WORDS..][..CHUNK_WORDS];
                    sum = c.iter().fold(sum, |a, &w| a.wrapping_add(w));
                }
            }
            Store::Far(v) => {
                let mut scope = Scope::new();
                for (k, &i) in perm.iter().enumerate() {
                    let c = v[i as usize].deref(&scope);
                    sum = c.iter().fold(sum, |a, &w| a.wrapping_add(w));
                    if k % 64 == 63 {
                        scope.renew(); // let the evacuator past
                    }
                }
            }
        }
        assert_eq!(sum, expected, "a pass read back wrong data");
    }
    let seconds = start.elapsed().as_secs_f64();
    let ops = chunks as u64 * u64::from(args.passes);

    let stats = match &runtime {
        None => serde_json::json!({}),
        Some(rt) => {
            let s = rt.stats();
            serde_json::json!({
                "fetches": s.fetches,
                "fetched_bytes": s.fetched_bytes,
                "write_backs": s.write_backs,
                "written_bytes": s.written_bytes,
                "far_bytes": s.far_bytes,
                "budget_bytes": s.budget_bytes,
                "prefetch_issued": s.prefetch_issued,
            })
        }
    };
    if !args.quiet {
        println!(
            "eval_probe: {chunks} chunks ({data_mib} MiB), {} passes in {seconds:.3} s, {} local, checksum {expected:#x}",
            args.passes,
            if args.all_local { "all".to_string() } else { format!("{} MiB", args.local_mib) },
        );
    }
    let report = serde_json::json!({
        "workload": "eval_probe",
        "system": if args.all_local { "all-local" } else { "aifm" },
        "backend": if args.all_local || args.backend == "embedded" { "embedded" } else { "tcp" },
        "local_mib": if args.all_local { serde_json::Value::Null } else { args.local_mib.into() },
        "data_mib": data_mib,
        "ops": ops,
        "seconds": seconds,
        "throughput": ops as f64 / seconds.max(1e-9),
        "unit": "ops/s",
        "stats": stats,
    });
    println!("{report}");
}
