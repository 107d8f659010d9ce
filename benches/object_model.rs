//! The object model's own costs, next to plain Rust, in one run:
//!
//! * `alloc`: `RemBox::new_in` + drop against `Box::new` + drop;
//! * `object_bytes` (printed, not timed): local bytes per object for 16 B, 64 B and 4 KiB
//!   values, from the heap's own accounting (header + value, what the budget is charged) and
//!   from the growth of the resident set (header, value, slot, the handle in a `Vec`, region
//!   slack), against `Box` (value, malloc's header, the pointer in a `Vec`);
//! * `object_bytes` also places the same values in a `SlotArena` (a structure's own pointer
//!   words: 16 B per object, no handle, no runtime slot), as collections do;
//! * `hot_deref` (printed): medians over interleaved rounds of summing 1024 hot `u64`s
//!   through `Box`, `RemBox` and `SlotArena::get`, as ratios to `Box`;
//! * `pauses` (printed): p50/p99/p99.9/max of single hot dereferences on one thread while two
//!   others keep the evacuator running rounds under pressure.

use aifm::{RemBox, Runtime, Scope};
use aifm_core::arena::SlotArena;
use aifm_core::backend::OBJECT_STORE_DEVICE;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

fn alloc(c: &mut Criterion) {
    let rt = Runtime::builder().local_memory(256 << 20).build().unwrap();
    let mut g = c.benchmark_group("alloc");
    g.bench_function("Box::new(u64)", |b| {
        b.iter(|| drop(black_box(Box::new(black_box(7u64)))))
    });
    g.bench_function("RemBox::new_in(u64)", |b| {
        b.iter(|| drop(black_box(RemBox::new_in(black_box(7u64), &rt))))
    });
    g.bench_function("Box::new([u8; 64])", |b| {
        b.iter(|| drop(black_box(Box::new(black_box([7u8; 64])))))
    });
    g.bench_function("RemBox::new_in([u8; 64])", |b| {
        b.iter(|| drop(black_box(RemBox::new_in(black_box([7u8; 64]), &rt))))
    });
    g.finish();
}

/// Resident set size of this process, in bytes.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(0)
        * 4096
}

fn bytes_for<const S: usize>(n: usize) {
    let rt = Runtime::builder().local_memory(1 << 30).build().unwrap();
    let before = rss();
    let rems: Vec<RemBox<[u8; S]>> = (0..n).map(|_| RemBox::new_in([1u8; S], &rt)).collect();
    let rem_rss = rss().saturating_sub(before) as f64 / n as f64;
    let accounted = rt.stats().local_bytes as f64 / n as f64;
    let rt2 = Runtime::builder().local_memory(1 << 30).build().unwrap();
    let s = rt2
        .register_structure(OBJECT_STORE_DEVICE, &[], None)
        .unwrap();
    let before = rss();
    let mut arena = SlotArena::new(&s);
    for i in 0..n {
        arena.put(i, [1u8; S]).unwrap();
    }
    let arena_rss = rss().saturating_sub(before) as f64 / n as f64;
    let arena_accounted = rt2.stats().local_bytes as f64 / n as f64;
    let before = rss();
    let boxes: Vec<Box<[u8; S]>> = (0..n).map(|_| Box::new([1u8; S])).collect();
    let box_rss = rss().saturating_sub(before) as f64 / n as f64;
    println!(
        "object_bytes {S:>5} B: SlotArena charged {arena_accounted:.1} B, RSS {arena_rss:.1} B; \
         RSS ratio to Box {:.3}x, to RemBox {:.3}x; metadata beyond the value: {:.1} B",
        arena_rss / box_rss,
        arena_rss / rem_rss,
        arena_rss - S as f64
    );
    println!(
        "object_bytes {S:>5} B: RemBox charged {accounted:.1} B (value {S}), RSS {rem_rss:.1} B; \
         Box RSS {box_rss:.1} B; RSS ratio {:.3}x; metadata beyond the value: RemBox {:.1} B, Box {:.1} B",
        rem_rss / box_rss,
        rem_rss - S as f64,
        box_rss - S as f64
    );
    // Kept (leaked) so that no later measurement reuses their pages.
    std::mem::forget((rt, rems, boxes, arena, s, rt2));
}

fn object_bytes(_c: &mut Criterion) {
    bytes_for::<16>(1 << 20);
    bytes_for::<64>(1 << 20);
    bytes_for::<4096>(32 << 10);
}

/// Medians over interleaved rounds: each round sums 1024 hot `u64`s 200 times through each
/// of `Box`, `RemBox` and `SlotArena::get`.
fn hot_deref(_c: &mut Criterion) {
    let rt = Runtime::builder().local_memory(64 << 20).build().unwrap();
    let s = rt
        .register_structure(OBJECT_STORE_DEVICE, &[], None)
        .unwrap();
    let boxes: Vec<Box<u64>> = (0..1024).map(Box::new).collect();
    let rems: Vec<RemBox<u64>> = (0..1024).map(|i| RemBox::new_in(i, &rt)).collect();
    let mut arena = SlotArena::new(&s);
    for i in 0..1024 {
        arena.put(i, i as u64).unwrap();
    }
    let scope = Scope::new();
    for _ in 0..2 {
        // Heat them: the fast path serves hot objects.
        rems.iter().for_each(|r| {
            black_box(r.deref(&scope));
        });
        (0..1024).for_each(|i| {
            black_box(arena.get(i, &scope));
        });
    }
    let time = |f: &mut dyn FnMut() -> u64| {
        let t = Instant::now();
        for _ in 0..200 {
            black_box(f());
        }
        t.elapsed().as_secs_f64() / 200.0
    };
    let (mut tb, mut tr, mut ta) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..301 {
        tb.push(time(&mut || {
            black_box(&boxes).iter().map(|b| **b).sum::<u64>()
        }));
        tr.push(time(&mut || {
            black_box(&rems)
                .iter()
                .map(|r| *r.deref(&scope))
                .sum::<u64>()
        }));
        ta.push(time(&mut || {
            let a = black_box(&arena);
            (0..1024).map(|i| *a.get(i, &scope).unwrap()).sum::<u64>()
        }));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (b, r, a) = (median(&mut tb), median(&mut tr), median(&mut ta));
    println!(
        "hot_deref: 1024 hot u64 (medians of 301 interleaved rounds): Box {:.2} us, RemBox {:.2} us \
         ({:.2}x), SlotArena::get {:.2} us ({:.2}x)",
        b * 1e6,
        r * 1e6,
        r / b,
        a * 1e6,
        a / b
    );
}

fn pauses(_c: &mut Criterion) {
    let rt = Runtime::builder().local_memory(16 << 20).build().unwrap();
    let hot: Vec<RemBox<u64>> = (0..64).map(|i| RemBox::new_in(i, &rt)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let pressure: Vec<_> = (0..2u64)
        .map(|t| {
            let rt = rt.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                // 2 x 32 MiB of cold objects against 16 MiB: rounds run all the time.
                let cold: Vec<RemBox<[u64; 64]>> = (0..65536u64)
                    .map(|i| RemBox::new_in([i; 64], &rt))
                    .collect();
                let mut x = t + 1;
                while !stop.load(Ordering::Relaxed) {
                    let s = Scope::new();
                    for _ in 0..64 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        black_box(cold[(x % cold.len() as u64) as usize].deref(&s)[0]);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let rounds_before = rt.stats().evacuation_rounds;
    let mut samples = Vec::with_capacity(2_000_000);
    let start = Instant::now();
    while samples.len() < 2_000_000 {
        let mut s = Scope::new();
        for r in &hot {
            let t = Instant::now();
            black_box(*r.deref(&s));
            samples.push(t.elapsed().as_nanos() as u64);
        }
        s.renew();
    }
    let secs = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    pressure.into_iter().for_each(|t| t.join().unwrap());
    let rounds = rt.stats().evacuation_rounds - rounds_before;
    samples.sort_unstable();
    let q = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!(
        "pauses: {} hot derefs over {secs:.2} s while {rounds} evacuation rounds ran: \
         p50 {} ns, p99 {} ns, p99.9 {} ns, max {} ns (each sample includes ~20-40 ns of clock reads)",
        samples.len(),
        q(0.5),
        q(0.99),
        q(0.999),
        samples[samples.len() - 1]
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    // object_bytes first, in a process whose heap has not yet freed anything.
    targets = object_bytes, hot_deref, alloc, pauses
}
criterion_main!(benches);
