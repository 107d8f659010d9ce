//! `RemArc` against `Arc`: a quickcheck model under a tiny budget, and threads sharing clones
//! while the evacuator runs.

use aifm_core::{RemArc, RemWeak, Runtime, Scope, Serde};
use quickcheck::{Arbitrary, Gen};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

#[derive(Debug, Clone)]
enum Op {
    New(u64),
    Clone(usize),
    Drop(usize),
    Read(usize),
    Write(usize, u64),
    Downgrade(usize),
    Upgrade(usize),
    Unwrap(usize),
    Evacuate,
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Self {
        let i = usize::arbitrary(g) % 16;
        match u8::arbitrary(g) % 10 {
            0 | 1 => Op::New(u64::arbitrary(g)),
            2 => Op::Clone(i),
            3 => Op::Drop(i),
            4 | 5 => Op::Read(i),
            6 => Op::Write(i, u64::arbitrary(g)),
            7 => Op::Downgrade(i),
            8 => Op::Upgrade(i),
            _ if bool::arbitrary(g) => Op::Unwrap(i),
            _ => Op::Evacuate,
        }
    }
}

type Value = [u64; 64];

fn model(ops: Vec<Op>) -> bool {
    // 1 MiB local for up to a few hundred 512-byte objects plus forced evacuations.
    let rt = Runtime::builder().local_memory(1 << 20).build().unwrap();
    let mut ours: Vec<RemArc<Value>> = Vec::new();
    let mut theirs: Vec<Arc<Value>> = Vec::new();
    let mut our_weak: Vec<RemWeak<Value>> = Vec::new();
    let mut their_weak: Vec<Weak<Value>> = Vec::new();
    for op in ops {
        let n = ours.len();
        match op {
            Op::New(v) => {
                ours.push(RemArc::new_in([v; 64], &rt));
                theirs.push(Arc::new([v; 64]));
            }
            Op::Clone(i) if n > 0 => {
                ours.push(ours[i % n].clone());
                theirs.push(theirs[i % n].clone());
            }
            Op::Drop(i) if n > 0 => {
                ours.swap_remove(i % n);
                theirs.swap_remove(i % n);
            }
            Op::Read(i) if n > 0 => {
                let s = Scope::new();
                if ours[i % n].deref(&s) != &*theirs[i % n] {
                    return false;
                }
            }
            Op::Write(i, v) if n > 0 => {
                let s = Scope::new();
                let a = ours[i % n].get_mut(&s).map(|x| x[1] = v).is_some();
                let b = Arc::get_mut(&mut theirs[i % n]).map(|x| x[1] = v).is_some();
                if a != b {
                    return false;
                }
            }
            Op::Downgrade(i) if n > 0 => {
                our_weak.push(RemArc::downgrade(&ours[i % n]));
                their_weak.push(Arc::downgrade(&theirs[i % n]));
            }
            Op::Upgrade(i) if !our_weak.is_empty() => {
                let k = i % our_weak.len();
                match (our_weak[k].upgrade(), their_weak[k].upgrade()) {
                    (Some(a), Some(b)) => {
                        ours.push(a);
                        theirs.push(b);
                    }
                    (None, None) => {}
                    _ => return false,
                }
            }
            Op::Unwrap(i) if n > 0 => {
                let a = RemArc::try_unwrap(ours.swap_remove(i % n));
                let b = Arc::try_unwrap(theirs.swap_remove(i % n));
                match (a, b) {
                    (Ok(a), Ok(b)) if a == b => {}
                    (Err(a), Err(b)) => {
                        ours.push(a);
                        theirs.push(b);
                        let last = ours.len() - 1;
                        ours.swap(i % n, last);
                        theirs.swap(i % n, last);
                    }
                    _ => return false,
                }
            }
            Op::Evacuate => rt.evacuate_now(),
            _ => {}
        }
        let counts_agree = ours.iter().zip(&theirs).all(|(a, b)| {
            RemArc::strong_count(a) == Arc::strong_count(b)
                && RemArc::weak_count(a) == Arc::weak_count(b)
        });
        if !counts_agree {
            return false;
        }
    }
    drop(ours);
    drop(our_weak);
    rt.evacuate_now();
    rt.stats().local_bytes == 0 && rt.stats().far_bytes == 0
}

#[test]
fn remarc_matches_arc_under_a_tiny_budget() {
    // Long op lists (each case also runs twice over, to pile up objects against the budget),
    // with forced evacuations among the ops.
    fn doubled(ops: Vec<Op>) -> bool {
        let mut all = ops.clone();
        all.extend(ops.iter().cloned().chain(ops.iter().cloned()));
        model(all)
    }
    quickcheck::QuickCheck::new()
        .tests(200)
        .quickcheck(doubled as fn(Vec<Op>) -> bool);
}

#[test]
fn clones_share_one_object_fetched_once() {
    let rt = Runtime::builder().local_memory(1 << 20).build().unwrap();
    let a = RemArc::new_in([3u64; 64], &rt);
    let clones: Vec<_> = (0..100).map(|_| a.clone()).collect();
    rt.evacuate_now();
    assert_eq!(rt.stats().write_backs, 1, "evacuated once for all clones");
    let s = Scope::new();
    assert!(clones.iter().all(|c| c.deref(&s)[63] == 3));
    assert_eq!(rt.stats().fetches, 1, "fetched once for all clones");
}

#[test]
fn threads_share_clones_through_evacuations() {
    let rt = Runtime::builder()
        .local_memory(2 << 20)
        .evacuator_threads(1)
        .build()
        .unwrap();
    let counter = RemArc::new_in(Serde(Mutex::new(0u64)), &rt);
    let done = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let counter = counter.clone();
            let rt = rt.clone();
            let done = done.clone();
            std::thread::spawn(move || {
                // Private objects keep the evacuator busy while the counter is shared.
                let mine: Vec<RemArc<[u64; 64]>> = (0..2000u64)
                    .map(|i| RemArc::new_in([t << 32 | i; 64], &rt))
                    .collect();
                for (i, m) in mine.iter().enumerate() {
                    let s = Scope::new();
                    *counter.deref(&s).0.lock().unwrap() += 1;
                    assert_eq!(m.deref(&s)[0], t << 32 | i as u64);
                }
                done.fetch_add(1, Ordering::Relaxed);
            })
        })
        .collect();
    for _ in 0..5 {
        rt.evacuate_now();
    }
    threads.into_iter().for_each(|t| t.join().unwrap());
    assert_eq!(done.load(Ordering::Relaxed), 4);
    assert_eq!(RemArc::strong_count(&counter), 1);
    let total = RemArc::try_unwrap(counter)
        .ok()
        .unwrap()
        .0
        .into_inner()
        .unwrap();
    assert_eq!(total, 8000);
    assert!(rt.stats().write_backs > 0, "{}", rt.stats());
}
