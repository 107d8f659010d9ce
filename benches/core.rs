//! Hot-path costs of the core runtime next to their plain-Rust twins, in one run:
//! a local `RemBox<u64>` dereference vs a `Box<u64>` dereference, scope enter+exit against a
//! `crossbeam-epoch` pin+unpin (the well-known epoch scheme, whose pin pays a full fence where
//! a scope pays a compiler fence and leaves the fence to the evacuator's `membarrier`), and a
//! dereference that must fetch from far memory (embedded store) vs an all-local one.

use aifm::{RemBox, Runtime, Scope};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};

fn deref(c: &mut Criterion) {
    let rt = Runtime::builder().local_memory(64 << 20).build().unwrap();
    let mut g = c.benchmark_group("deref");
    // 1024 objects read in a loop, so the loads are real (not hoisted) and comparable.
    let boxes: Vec<Box<u64>> = (0..1024).map(Box::new).collect();
    let rems: Vec<RemBox<u64>> = (0..1024).map(|i| RemBox::new_in(i, &rt)).collect();
    {
        let s = Scope::new();
        for _ in 0..2 {
            rems.iter().for_each(|r| {
                black_box(r.deref(&s));
            }); // heat them
        }
    }
    g.bench_function("Box<u64> x1024", |b| {
        b.iter(|| black_box(&boxes).iter().map(|b| **b).sum::<u64>())
    });
    g.bench_function("RemBox<u64> x1024", |b| {
        let s = Scope::new();
        b.iter(|| black_box(&rems).iter().map(|r| *r.deref(&s)).sum::<u64>())
    });
    g.finish();

    let mut g = c.benchmark_group("scope");
    g.bench_function("enter+exit", |b| b.iter(|| drop(black_box(Scope::new()))));
    g.bench_function("nested enter+exit", |b| {
        let _outer = Scope::new();
        b.iter(|| drop(black_box(Scope::new())))
    });
    // The same guard from crossbeam-epoch: a fresh thread-local handle's outermost pin.
    g.bench_function("crossbeam-epoch pin+unpin", |b| {
        b.iter(|| drop(black_box(crossbeam_epoch::pin())))
    });
    g.bench_function("crossbeam-epoch nested pin+unpin", |b| {
        let _outer = crossbeam_epoch::pin();
        b.iter(|| drop(black_box(crossbeam_epoch::pin())))
    });
    g.finish();
}

fn fetch(c: &mut Criterion) {
    let rt = Runtime::builder().local_memory(16 << 20).build().unwrap();
    let mut g = c.benchmark_group("fetch_4KiB");
    g.bench_function("remote (embedded store)", |b| {
        b.iter_batched(
            || {
                let r = RemBox::new_in([7u64; 512], &rt);
                rt.evacuate_now();
                assert!(!r.is_local());
                r
            },
            |r| {
                let s = Scope::new();
                black_box(r.deref(&s)[0]);
                drop(s);
                r
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, deref, fetch);
criterion_main!(benches);
