//! Latency hiding, measured over a loopback `aifm-server` (the prefetch engine, batching and
//! async reads). Not a criterion benchmark: each figure is a whole scan or a timed window,
//! repeated, and reported as medians and ratios in one markdown table.
//!
//! ```text
//! cargo bench --bench latency             # all figures (~1 min)
//! cargo bench --bench latency -- --quick  # smaller data, one repeat
//! ```
//!
//! 1. Sequential scan of a `RemVec<u64>` 20x larger than local memory (5 % local) vs the same
//!    scan of a `Vec<u64>`.
//! 2. Random reads of 64 B objects with 25 % local: throughput with 1, 8 and 64 requests in
//!    flight (1 thread, 8 threads, 64 async tasks on one thread).
//! 3. Prefetch accuracy (useful / issued) and coverage (useful / objects read) of the stride
//!    detector for forward, reverse, stride-3 and random walks.

mod common;
use common::server;

use aifm::collections::RemVec;
use aifm::prefetch::Prefetcher;
use aifm::{RemBox, Runtime, Scope};
use aifm_collections::testing::{median, XorShift};
use aifm_server::RunningServer;
use std::future::Future;
use std::hint::black_box;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

fn runtime(server: &RunningServer, local: usize) -> Runtime {
    Runtime::builder()
        .local_memory(local)
        .server(server.addr().to_string())
        .build()
        .unwrap()
}

/// Figure 1: elements per second of a full scan, far vs local.
fn scan(server: &RunningServer, mib: usize, repeats: usize) -> (f64, f64, aifm::Stats) {
    let n = (mib << 20) / 8;
    let local: Vec<u64> = (0..n as u64).map(|i| i.wrapping_mul(0x9e37_79b9)).collect();
    let rt = runtime(server, (mib << 20) / 20);
    let far: RemVec<u64> = {
        let mut v = RemVec::new_in(&rt);
        v.extend(local.iter().copied());
        v
    };
    let mut t_local = Vec::new();
    let mut t_far = Vec::new();
    for _ in 0..repeats {
        let t = Instant::now();
        black_box(local.iter().fold(0u64, |a, &x| a.wrapping_add(x)));
        t_local.push(n as f64 / t.elapsed().as_secs_f64());
        rt.evacuate_now();
        let t = Instant::now();
        black_box(far.iter_nt().fold(0u64, |a, x| a.wrapping_add(x)));
        t_far.push(n as f64 / t.elapsed().as_secs_f64());
    }
    (median(&mut t_local), median(&mut t_far), rt.stats())
}

fn first(v: &[u64; 8]) -> u64 {
    v[0]
}

/// Figure 2: reads per second of random 64 B objects with 25 % local, `inflight` at a time.
fn random_reads(server: &RunningServer, objects: usize, inflight: usize, secs: f64) -> f64 {
    let rt = runtime(server, (objects * 64 / 4).max(16 << 20));
    let boxes: Vec<RemBox<[u64; 8]>> = (0..objects as u64)
        .map(|i| RemBox::new_in([i; 8], &rt))
        .collect();
    rt.evacuate_now();
    let boxes = &boxes;
    let deadline = Instant::now() + std::time::Duration::from_secs_f64(secs);
    let start = Instant::now();
    let reads: u64 = if inflight <= 8 {
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..inflight)
                .map(|t| {
                    s.spawn(move || {
                        let mut x = XorShift::new(0x1234_5678 + t as u64);
                        let mut n = 0u64;
                        let mut scope = Scope::new();
                        while Instant::now() < deadline {
                            for _ in 0..64 {
                                let i = (x.next_u64() % objects as u64) as usize;
                                assert_eq!(boxes[i].deref(&scope)[0], i as u64);
                                scope.renew();
                            }
                            n += 64;
                        }
                        n
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        })
    } else {
        // `inflight` async tasks on this one thread, polled round-robin (any executor would do).
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut x = XorShift::new(0x9876_5432);
        let next = |x: &mut XorShift| (x.next_u64() % objects as u64) as usize;
        let mut tasks: Vec<_> = (0..inflight)
            .map(|_| {
                let i = next(&mut x);
                (i, Box::pin(boxes[i].read_async(first)))
            })
            .collect();
        let mut n = 0u64;
        while Instant::now() < deadline {
            let before = n;
            for (i, fut) in tasks.iter_mut() {
                if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                    assert_eq!(v.unwrap(), *i as u64);
                    n += 1;
                    *i = next(&mut x);
                    *fut = Box::pin(boxes[*i].read_async(first));
                }
            }
            if n == before {
                std::thread::yield_now(); // nothing ready: leave the cores to the helpers
            }
        }
        n
    };
    reads as f64 / start.elapsed().as_secs_f64()
}

/// Figure 3: (accuracy, coverage) of the stride detector on a walk over 4 KiB objects.
fn accuracy(server: &RunningServer, order: &[usize], objects: usize) -> (f64, f64) {
    let rt = runtime(server, 4 << 20);
    let boxes: Vec<RemBox<[u64; 512]>> = (0..objects as u64)
        .map(|i| RemBox::new_in([i; 512], &rt))
        .collect();
    rt.evacuate_now();
    let before = rt.stats();
    let detector = Prefetcher::new(4096).with_window_bytes(256 << 10);
    let mut scope = Scope::new();
    for &i in order {
        let plan = detector.record(i as u64, objects as u64);
        rt.prefetch(plan.map(|j| boxes[j as usize].ticket()), true);
        assert_eq!(boxes[i].deref_nt(&scope).unwrap()[0], i as u64);
        scope.renew();
    }
    drop(scope);
    let s = rt.stats();
    let issued = (s.prefetch_issued - before.prefetch_issued) as f64;
    let useful = (s.prefetch_useful - before.prefetch_useful) as f64;
    (
        if issued == 0.0 {
            f64::NAN
        } else {
            useful / issued
        },
        useful / order.len() as f64,
    )
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (mib, repeats, objects, secs) = if quick {
        (64, 1, 200_000, 1.0)
    } else {
        (256, 3, 1_000_000, 3.0)
    };
    let server = server();
    println!(
        "# Latency hiding over loopback TCP ({})\n",
        if quick { "quick" } else { "full" }
    );

    let (local, far, stats) = scan(&server, mib, repeats);
    println!("## Sequential scan of a {mib} MiB RemVec<u64>, 5 % local\n");
    println!(
        "| all-local (elem/s) | aifm-rs (elem/s) | ratio | prefetch issued | useful | fetches |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {:.3e} | {:.3e} | **{:.2}x** | {} | {} | {} |\n",
        local,
        far,
        far / local,
        stats.prefetch_issued,
        stats.prefetch_useful,
        stats.fetches
    );

    println!("## Random reads of 64 B objects, 25 % local ({objects} objects)\n");
    println!("| in flight | reads/s | vs 1 in flight |");
    println!("|---:|---:|---:|");
    let mut base = 0.0;
    for inflight in [1, 8, 64] {
        let r = median(
            &mut (0..repeats)
                .map(|_| random_reads(&server, objects, inflight, secs))
                .collect::<Vec<_>>(),
        );
        if inflight == 1 {
            base = r;
        }
        let how = match inflight {
            1 => "1 (1 thread)",
            8 => "8 (8 threads)",
            _ => "64 (64 async tasks, 1 thread)",
        };
        println!("| {how} | {r:.3e} | {:.2}x |", r / base);
    }

    let n = if quick { 1024 } else { 4096 };
    let mut x = XorShift::new(42);
    let walks: [(&str, Vec<usize>); 4] = [
        ("forward", (0..n).collect()),
        ("reverse", (0..n).rev().collect()),
        ("stride 3", (0..n).step_by(3).collect()),
        (
            "random",
            (0..n).map(|_| (x.next_u64() % n as u64) as usize).collect(),
        ),
    ];
    println!("\n## Prefetch accuracy over {n} objects of 4 KiB (4 MiB local)\n");
    println!("| walk | accuracy (useful / issued) | coverage (useful / reads) |");
    println!("|---|---:|---:|");
    for (name, order) in walks {
        let (acc, cov) = accuracy(&server, &order, n);
        let acc = if acc.is_nan() {
            "– (none issued)".to_string()
        } else {
            format!("{:.1} %", acc * 100.0)
        };
        println!("| {name} | {acc} | {:.1} % |", cov * 100.0);
    }
    server.stop();
}
