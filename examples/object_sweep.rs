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
//! the same tasks on a `Vec`. `--inflight 1` is the synchronous loop; `--threads T` splits
//! the reads between T threads. The checksum depends on N and T (each thread and task draws
//! its own stream) but not on the system.

#[path = "common/mod.rs"]
mod common;

use aifm::{RemBox, Scope};
use clap::Parser;
use common::{report, run_tasks, share, Common, InFlight, Outcome, Timer, XorShift};
use std::sync::Arc;

/// Random reads of objects of one size.
#[derive(Parser, Debug)]
// A later flag overrides an earlier one: the harness appends its sweep's `--threads` and
// `--inflight` after the arguments a user passes to every run.
#[command(args_override_self = true)]
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
    /// Reader threads (the reads are split between them).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    threads: u64,
}

fn object<const N: usize>(i: u64) -> [u8; N] {
    let mut r = XorShift::new(i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
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

/// The objects, either way.
trait Objects: Send + Sync + 'static {
    /// `reads` random reads from the stream `rng`, synchronously; the sum of the checksums.
    fn read_sync(&self, reads: u64, rng: &mut XorShift) -> u64;
    /// The checksum of object `i`, for a request task.
    async fn read(&self, i: u64) -> u64;
    fn len(&self) -> u64;
}

impl<const N: usize> Objects for Vec<[u8; N]> {
    fn read_sync(&self, reads: u64, rng: &mut XorShift) -> u64 {
        let n = self.len() as u64;
        (0..reads).fold(0u64, |s, _| {
            s.wrapping_add(checksum(&self[rng.below(n) as usize]))
        })
    }
    async fn read(&self, i: u64) -> u64 {
        checksum(&self[i as usize])
    }
    fn len(&self) -> u64 {
        <[_]>::len(self) as u64
    }
}

impl<const N: usize> Objects for Vec<RemBox<[u8; N]>> {
    fn read_sync(&self, reads: u64, rng: &mut XorShift) -> u64 {
        let n = self.len() as u64;
        let mut scope = Scope::new();
        let mut sum = 0u64;
        for k in 0..reads {
            sum = sum.wrapping_add(checksum(self[rng.below(n) as usize].deref(&scope)));
            if k % 16 == 15 {
                scope.renew();
            }
        }
        sum
    }
    async fn read(&self, i: u64) -> u64 {
        self[i as usize]
            .read_async(|o| checksum(o))
            .await
            .expect("far memory")
    }
    fn len(&self) -> u64 {
        <[_]>::len(self) as u64
    }
}

/// `reads` random reads by `threads` threads, each with `inflight` tasks (or the synchronous
/// loop for 1), thread `t` (task `k`) drawing from its own stream; the sum of the checksums.
/// One thread with one request in flight reads the stream of `seed` itself.
fn sweep<D: Objects>(data: Arc<D>, threads: u64, inflight: u64, reads: u64, seed: u64) -> u64 {
    let n = data.len();
    let stream = move |t: u64| XorShift::new((seed ^ t.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1);
    let serve = move |data: Arc<D>, t: u64| {
        let reads = share(reads, threads, t);
        if inflight == 1 {
            return data.read_sync(reads, &mut stream(t));
        }
        run_tasks(inflight, |k| {
            let data = data.clone();
            let mut rng = stream(t * inflight + k + 1);
            async move {
                let mut sum = 0u64;
                for _ in 0..share(reads, inflight, k) {
                    sum = sum.wrapping_add(data.read(rng.below(n)).await);
                }
                sum
            }
        })
        .into_iter()
        .fold(0, u64::wrapping_add)
    };
    if threads == 1 {
        return serve(data, 0);
    }
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let data = data.clone();
            std::thread::spawn(move || serve(data, t))
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("a reader thread panicked"))
        .fold(0, u64::wrapping_add)
}

fn run<const N: usize>(args: &Args) {
    let c = &args.common;
    let inflight = args.inflight.inflight;
    let n = ((args.data_mib as f64 * c.scale) as usize * (1 << 20) / N).max(1024) as u64;
    let reads = (n as f64 * args.passes) as u64;
    let bar = c.progress(n, "loading");
    let rt = (!c.all_local).then(|| c.runtime());
    let (sum, seconds) = match &rt {
        None => {
            let data: Vec<[u8; N]> = (0..n)
                .inspect(|&i| bar.set_position(i))
                .map(object::<N>)
                .collect();
            bar.finish_and_clear();
            // Dropped after the clock stops (freeing the objects is not part of the reads).
            let data = Arc::new(data);
            let t = Timer::start();
            let sum = sweep(data.clone(), args.threads, inflight, reads, c.seed);
            (sum, t.seconds())
        }
        Some(rt) => {
            let data: Vec<RemBox<[u8; N]>> = (0..n)
                .inspect(|&i| bar.set_position(i))
                .map(|i| RemBox::new_in(object::<N>(i), rt))
                .collect();
            bar.finish_and_clear();
            // Dropped after the clock stops (freeing the objects is not part of the reads).
            let data = Arc::new(data);
            let t = Timer::start();
            let sum = sweep(data.clone(), args.threads, inflight, reads, c.seed);
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
            extra: serde_json::json!({ "object_bytes": N, "objects": n, "checksum": format!("{sum:016x}"), "inflight": inflight, "threads": args.threads }),
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
