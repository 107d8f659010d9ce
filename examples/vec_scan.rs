//! A sequential scan of a large `RemVec<u64>`: the simplest streaming workload, where the
//! prefetcher should hide nearly all of far memory's latency.
//!
//! It fills `--mib` MiB (times `--scale`) with non-trivial words (zram would compress zeros
//! away), then sums the vector from front to back `--passes` times, checking every sum.
//! Loading is not timed; the throughput is MiB scanned per second. Under `--all-local` the
//! same program runs on a plain `Vec<u64>`.
//!
//! ```text
//! cargo run --release --example vec_scan -- --local-mib 16
//! cargo run --release --example vec_scan -- --local-mib 16 --backend HOST:PORT,HOST:PORT
//! cargo run --release --example vec_scan -- --local-mib 16 --backend HOST:PORT,HOST:PORT --striped
//! cargo run --release --example vec_scan -- --all-local
//! ```

#[path = "common/mod.rs"]
mod common;

use aifm::collections::RemVec;
use clap::Parser;
use common::{report, Common, Outcome, Timer, XorShift};

/// Sums a large vector front to back, several times.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    common: Common,
    /// Data size in MiB at scale 1.0.
    #[arg(long, default_value_t = 256.0)]
    mib: f64,
    /// Timed passes over the whole vector.
    #[arg(long, default_value_t = 3)]
    passes: u32,
    /// Stripe the vector's chunks over every server (`RemVec::striped_in`) instead of
    /// keeping it whole on one replica set.
    #[arg(long)]
    striped: bool,
}

/// The words of the vector: a seeded stream, so every system scans the same data.
fn words(seed: u64, n: usize) -> impl Iterator<Item = u64> {
    let mut rng = XorShift::new(seed | 1);
    (0..n).map(move |_| rng.next_u64() >> 8)
}

fn main() {
    let args = Args::parse();
    let c = &args.common;
    let n = ((args.mib * c.scale * (1 << 20) as f64) as usize / 8).max(1);
    let data_mib = (n * 8) as f64 / (1 << 20) as f64;
    let expected = words(c.seed, n).fold(0u64, u64::wrapping_add);
    let passes = args.passes.max(1);

    let (seconds, rt) = if c.all_local {
        let v: Vec<u64> = words(c.seed, n).collect();
        let t = Timer::start();
        for _ in 0..passes {
            let s = std::hint::black_box(&v)
                .iter()
                .fold(0u64, |s, &x| s.wrapping_add(x));
            assert_eq!(s, expected, "all-local scan sum");
        }
        (t.seconds(), None)
    } else {
        let rt = c.runtime();
        let mut v: RemVec<u64> = if args.striped {
            RemVec::striped_in(&rt)
        } else {
            RemVec::new_in(&rt)
        };
        let bar = c.progress(n as u64, "loading");
        v.extend(words(c.seed, n));
        bar.finish_and_clear();
        let t = Timer::start();
        for _ in 0..passes {
            let s = v.iter().fold(0u64, |s, x| s.wrapping_add(x));
            assert_eq!(s, expected, "far-memory scan sum");
        }
        (t.seconds(), Some(rt))
    };
    report(
        c,
        rt.as_ref(),
        Outcome {
            workload: "vec_scan",
            data_mib,
            ops: data_mib * passes as f64,
            seconds,
            unit: "MiB/s",
            extra: serde_json::json!({
                "passes": passes,
                "variant": if args.striped { "striped" } else { "whole" },
            }),
        },
    );
}
