//! Model tests: random operation sequences on many `RemBox`es, compared with plain boxes,
//! under a local budget far smaller than the data.

use aifm_core::{RemBox, Runtime, Scope};
use quickcheck::{Arbitrary, Gen, QuickCheck};

const WORDS: usize = 512; // 4 KiB objects
type Obj = [u64; WORDS];

#[derive(Clone, Debug)]
enum Op {
    Alloc(u64),
    Read(usize),
    Write(usize, u64),
    Drop(usize),
    Evacuate,
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Self {
        match u8::arbitrary(g) % 16 {
            0..=2 => Op::Alloc(u64::arbitrary(g)),
            3..=8 => Op::Read(usize::arbitrary(g)),
            9..=12 => Op::Write(usize::arbitrary(g), u64::arbitrary(g)),
            13..=14 => Op::Drop(usize::arbitrary(g)),
            _ => Op::Evacuate,
        }
    }
}

fn fill(seed: u64) -> Obj {
    let mut v = [0; WORDS];
    let mut x = seed | 1;
    for w in v.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *w = x;
    }
    v
}

/// 4 MiB local for 64 MiB of objects, then the random operations, then a full check.
fn run(ops: Vec<Op>) -> bool {
    let rt = Runtime::builder().local_memory(4 << 20).build().unwrap();
    let mut real: Vec<RemBox<Obj>> = Vec::new();
    let mut model: Vec<Box<Obj>> = Vec::new();
    for i in 0..16 * 1024 {
        real.push(RemBox::new_in(fill(i), &rt));
        model.push(Box::new(fill(i)));
    }
    let mut scope = Scope::new();
    for (n, op) in ops.into_iter().enumerate() {
        if n % 16 == 0 {
            scope.renew();
        }
        match op {
            Op::Alloc(seed) => {
                real.push(RemBox::new_in(fill(seed), &rt));
                model.push(Box::new(fill(seed)));
            }
            Op::Read(i) if !real.is_empty() => {
                let i = i % real.len();
                if real[i].deref(&scope) != &*model[i] {
                    return false;
                }
            }
            Op::Write(i, v) if !real.is_empty() => {
                let i = i % real.len();
                real[i].deref_mut(&scope)[(v as usize) % WORDS] = v;
                model[i][(v as usize) % WORDS] = v;
            }
            Op::Drop(i) if !real.is_empty() => {
                let i = i % real.len();
                real.swap_remove(i);
                model.swap_remove(i);
            }
            Op::Evacuate => {
                drop(scope);
                rt.evacuate_now();
                scope = Scope::new();
            }
            _ => {}
        }
    }
    for (i, (r, m)) in real.iter().zip(&model).enumerate() {
        if i % 16 == 0 {
            scope.renew();
        }
        if r.deref(&scope) != &**m {
            return false;
        }
    }
    drop(scope);
    let s = rt.stats();
    assert!(
        s.write_backs > 0 && s.fetches > 0 && s.evacuation_rounds > 0,
        "no evacuation: {s}"
    );
    assert!(
        s.local_region_bytes <= s.budget_bytes + (s.budget_bytes / 8),
        "over budget: {s}"
    );
    true
}

#[test]
fn rembox_matches_plain_boxes_under_pressure() {
    QuickCheck::new()
        .tests(12)
        .quickcheck(run as fn(Vec<Op>) -> bool);
}

#[test]
fn strings_round_trip_through_evacuation() {
    let rt = Runtime::builder().local_memory(1 << 20).build().unwrap();
    let text = |i: usize| format!("{i}:").repeat(i % 300 + 1);
    let boxes: Vec<RemBox<String>> = (0..20_000).map(|i| RemBox::new_in(text(i), &rt)).collect();
    rt.evacuate_now();
    let s = rt.stats();
    assert!(s.write_backs > 0, "{s}");
    let mut scope = Scope::new();
    for (i, b) in boxes.iter().enumerate() {
        assert_eq!(b.deref(&scope), &text(i));
        scope.renew();
    }
    drop(scope);
    assert!(rt.stats().fetches > 0);
    // Owned heap bytes are charged: the budget holds far fewer strings than were made.
    assert!(rt.stats().local_owned_bytes > 0);
    let back: Vec<String> = boxes.into_iter().map(RemBox::into_inner).collect();
    assert!(back.iter().enumerate().all(|(i, s)| *s == text(i)));
    assert_eq!(rt.stats().local_bytes, 0, "every object freed");
}

#[test]
fn dropping_remote_objects_frees_far_memory() {
    let rt = Runtime::builder().local_memory(1 << 20).build().unwrap();
    let boxes: Vec<RemBox<[u64; 64]>> = (0..10_000).map(|i| RemBox::new_in([i; 64], &rt)).collect();
    rt.evacuate_now();
    assert!(rt.stats().far_bytes > 0);
    drop(boxes);
    // Removes of object-store copies are batched; the evacuator flushes them.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while rt.backend().stored_bytes() > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(rt.stats().far_bytes, 0);
    assert_eq!(rt.backend().stored_bytes(), 0);
    assert_eq!(rt.stats().local_bytes, 0);
}
