//! Random reads of small objects (the original's Fig. 1): a structure of `--object-bytes`
//! objects (64 B … 4 KiB) larger than local memory, read in random order. Far memory moves
//! single objects; kernel paging moves whole 4 KiB pages, so small objects are where
//! object granularity should pay most.
//!
//! ```text
//! cargo run --release --example object_sweep -- --object-bytes 64 --local-mib 16
//! ```
//!
//! Throughput is object reads per second. With `--inflight N` (default 64) the reads are
//! served by N tasks on tokio's current-thread runtime, each reading with
//! `RemBox::read_async`, so the misses of all of them are fetched together; `--all-local` runs
//! the same tasks on a `Vec`. `--inflight 1` is the synchronous loop. The checksum depends on
//! N (each task draws its own stream) but not on the system.

#[path = "common/mod.rs"]
mod common;

use aifm::{RemBox, Scope};
use clap::Parser;
use common::{report, run_tasks, share, Common, InFlight, Outcome, Timer, XorShift};
use std::rc::Rc;

/// Random reads of objects of one size.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    inflight: InFlight,
    /// Object size: 64, 128, 256, 512, 1024, 2048 or 4096 bytes.
    #[arg(long, default_value_t = 64)]
    object_bytes: usize,
    /// Data size in MiB at scale 1.0.
    #[arg(long, default_value_t = 64)]
    data_mib: usize,
    /// Reads, as a multiple of the number of objects.
    #[arg(long, default_value_t = 2.0)]
    passes: f64,
}

fn object<const N: usize>(i: u64) -> [u8; N] {
    let mut r = XorShift(i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut o = [0u8; N];
    o.chunks_mut(8)
        .for_each(|w| w.copy_from_slice(&r.next_u64().to_le_bytes()[..w.len()]));
    o
}

fn checksum(o: &[u8]) -> u64 {
    o.chunks(8).fold(0u64, |s, w| {
        s.wrapping_add(u64::from_le_bytes(w.try_into().unwrap()))
    })
}

/// `reads` random reads of `n` objects by `tasks` tasks, task `t` drawing from its own
/// stream; `read(i)` reads object `i` and returns its checksum. The sum of the checksums.
fn read_tasks<F, Fut>(tasks: u64, reads: u64, n: u64, seed: u64, read: F) -> u64
where
    F: Fn(u64) -> Fut + 'static,
    Fut: std::future::Future<Output = u64>,
{
    let read = Rc::new(read);
    run_tasks(tasks, |t| {
        let read = read.clone();
        let mut rng = XorShift((seed ^ (t + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1);
        async move {
            let mut sum = 0u64;
            for _ in 0..share(reads, tasks, t) {
                sum = sum.wrapping_add(read(rng.below(n)).await);
            }
            sum
        }
    })
    .into_iter()
    .fold(0, u64::wrapping_add)
}

fn run<const N: usize>(args: &Args) {
    let c = &args.common;
    let inflight = args.inflight.inflight;
    let n = ((args.data_mib as f64 * c.scale) as usize * (1 << 20) / N).max(1024) as u64;
    let reads = (n as f64 * args.passes) as u64;
    let bar = c.progress(n, "loading");
    let mut rng = XorShift(c.seed | 1);
    let rt = (!c.all_local).then(|| c.runtime());
    let (sum, seconds) = match &rt {
        None => {
            let data: Vec<[u8; N]> = (0..n)
                .inspect(|&i| bar.set_position(i))
                .map(object::<N>)
                .collect();
            bar.finish_and_clear();
            let t = Timer::start();
            let sum = if inflight == 1 {
                (0..reads).fold(0u64, |s, _| {
                    s.wrapping_add(checksum(&data[rng.below(n) as usize]))
                })
            } else {
                let data = Rc::new(data);
                read_tasks(inflight, reads, n, c.seed, move |i| {
                    let data = data.clone();
                    async move { checksum(&data[i as usize]) }
                })
            };
            (sum, t.seconds())
        }
        Some(rt) => {
            let data: Vec<RemBox<[u8; N]>> = (0..n)
                .inspect(|&i| bar.set_position(i))
                .map(|i| RemBox::new_in(object::<N>(i), rt))
                .collect();
            bar.finish_and_clear();
            let t = Timer::start();
            let sum = if inflight == 1 {
                let mut scope = Scope::new();
                let mut sum = 0u64;
                for k in 0..reads {
                    sum = sum.wrapping_add(checksum(data[rng.below(n) as usize].deref(&scope)));
                    if k % 16 == 15 {
                        scope.renew();
                    }
                }
                sum
            } else {
                let data = Rc::new(data);
                read_tasks(inflight, reads, n, c.seed, move |i| {
                    let data = data.clone();
                    async move {
                        let o = &data[i as usize];
                        o.read_async(|o| checksum(o)).await.expect("far memory")
                    }
                })
            };
            (sum, t.seconds())
        }
    };
    // The same seed reads the same objects in every system: the sums must agree.
    report(
        c,
        rt.as_ref(),
        Outcome {
            workload: "object_sweep",
            data_mib: (n * N as u64) as f64 / (1 << 20) as f64,
            ops: reads as f64,
            seconds,
            unit: "reads/s",
            extra: serde_json::json!({ "object_bytes": N, "objects": n, "checksum": format!("{sum:016x}"), "inflight": inflight }),
        },
    );
}

fn main() {
    let args = Args::parse();
    match args.object_bytes {
        64 => run::<64>(&args),
        128 => run::<128>(&args),
        256 => run::<256>(&args),
        512 => run::<512>(&args),
        1024 => run::<1024>(&args),
        2048 => run::<2048>(&args),
        4096 => run::<4096>(&args),
        other => {
            eprintln!("--object-bytes must be a power of two from 64 to 4096, not {other}");
            std::process::exit(2);
        }
    }
}
