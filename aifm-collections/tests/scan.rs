//! Scans while other threads write: every sequential reader of a `RemVec` (clones by `next`
//! and by `fold`, from either end, and the borrowing chunk walks) sees each element exactly
//! once, in order, while writers fill and rewrite other far-memory structures of the same
//! runtime and an evacuator loop moves chunks out from under the scan.
//!
//! (Writers on the scanned vector itself cannot race with a scan: the scan borrows it shared,
//! and every mutator of a `RemVec` takes it exclusively.)

use aifm_collections::RemVec;
use aifm_core::backend::faulty::Faulty;
use aifm_core::{RemBox, Runtime};
use std::sync::atomic::{AtomicBool, Ordering};

const N: u64 = 1 << 20; // 8 MiB of u64: four times the budget

/// Runs `scan` (which returns the elements it saw, in the order it saw them) while two
/// writers and an evacuation loop run; returns what it saw and the evacuation rounds that
/// completed meanwhile.
fn racing(rt: &Runtime, scan: impl FnOnce() -> Vec<u64>) -> (Vec<u64>, u64) {
    let stop = AtomicBool::new(false);
    let before = rt.stats().evacuation_rounds;
    let seen = std::thread::scope(|s| {
        for t in 0..2u64 {
            let stop = &stop;
            s.spawn(move || {
                let mut mine: RemVec<u64> = RemVec::new_in(rt);
                let mut boxes = Vec::new();
                let mut x = 0x9e37_79b9 ^ t;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..512 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        mine.push(x);
                    }
                    let i = (x % mine.len() as u64) as usize;
                    mine.set(i, t);
                    boxes.push(RemBox::new_in([x; 64], rt));
                    if boxes.len() > 256 {
                        boxes.clear();
                    }
                    if mine.len() > 1 << 19 {
                        mine.clear();
                    }
                }
            });
        }
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                rt.evacuate_now();
                std::thread::yield_now();
            }
        });
        let seen = scan();
        stop.store(true, Ordering::Relaxed);
        seen
    });
    (seen, rt.stats().evacuation_rounds - before)
}

#[test]
fn scans_racing_with_writers_see_every_element_exactly_once() {
    let rt = Runtime::builder().local_memory(2 << 20).build().unwrap();
    let v: RemVec<u64> = RemVec::from_iter_in(0..N, &rt);
    rt.evacuate_now();
    let forward: Vec<u64> = (0..N).collect();
    let backward: Vec<u64> = (0..N).rev().collect();
    type Scan<'a> = Box<dyn FnOnce() -> Vec<u64> + 'a>;
    let scans: Vec<(&str, Scan<'_>, &Vec<u64>)> = vec![
        (
            "iter next",
            Box::new(|| {
                let mut out = Vec::new();
                for x in v.iter() {
                    out.push(x);
                }
                out
            }),
            &forward,
        ),
        (
            "iter_nt fold",
            Box::new(|| {
                v.iter_nt().fold(Vec::new(), |mut out, x| {
                    out.push(x);
                    out
                })
            }),
            &forward,
        ),
        ("iter rev", Box::new(|| v.iter().rev().collect()), &backward),
        (
            "chunks",
            Box::new(|| v.chunks().flat_map(|c| c.to_vec()).collect()),
            &forward,
        ),
        (
            "chunks_nt rev",
            Box::new(|| {
                v.chunks_nt()
                    .rev()
                    .flat_map(|c| c.iter().rev().copied().collect::<Vec<_>>())
                    .collect()
            }),
            &backward,
        ),
        (
            "both ends meeting",
            Box::new(|| {
                let mut it = v.iter();
                let mut front = Vec::new();
                let mut back = Vec::new();
                while let Some(x) = it.next() {
                    front.push(x);
                    if let Some(y) = it.next_back() {
                        back.push(y);
                    }
                }
                front.extend(back.into_iter().rev());
                front
            }),
            &forward,
        ),
    ];
    let mut rounds = 0;
    for (name, scan, want) in scans {
        let (seen, r) = racing(&rt, scan);
        assert_eq!(seen.len(), want.len(), "{name}: length");
        if let Some(i) = (0..seen.len()).find(|&i| seen[i] != want[i]) {
            panic!("{name}: element {i} is {} (want {})", seen[i], want[i]);
        }
        rounds += r;
    }
    assert!(rounds > 0, "no evacuation round ran during the scans");
    assert!(rt.stats().write_backs > 0);
}

#[test]
fn aggregates_and_chunk_walks_agree_with_a_vec_under_a_small_budget() {
    let rt = Runtime::builder().local_memory(2 << 20).build().unwrap();
    let xs: Vec<u32> = (0..(1u32 << 20))
        .map(|i| i.wrapping_mul(2_654_435_761))
        .collect();
    let v = RemVec::from_iter_in(xs.iter().copied(), &rt);
    rt.evacuate_now();
    let want: u128 = xs.iter().map(|&x| x as u128).sum();
    assert_eq!(v.try_sum(aifm_collections::Exec::Local).unwrap(), want);
    assert_eq!(v.max(), xs.iter().max().copied());
    let walked: u128 = v
        .chunks_nt()
        .map(|c| c.iter().map(|&x| x as u128).sum::<u128>())
        .sum();
    assert_eq!(walked, want);
    assert_eq!(v.chunks().len(), v.local_chunks().1);
}

// A store with a latency (wrapped, as tests wrap stores) has a wait to hide: the scan keeps a
// window ahead, as over a network.
#[test]
fn scans_keep_a_measured_window_ahead_in_either_direction() {
    let backend = aifm_core::backend::EmbeddedBackend::new()
        .with_latency(std::time::Duration::from_micros(50));
    let rt = Runtime::builder()
        .local_memory(2 << 20)
        .backend(Faulty::new(backend))
        .build()
        .unwrap();
    let n = 1u64 << 19; // 1,024 chunks, 4 MiB
    let v: RemVec<u64> = RemVec::from_iter_in(0..n, &rt);
    let chunks = v.local_chunks().1 as u64;
    for (name, walk) in [
        (
            "forward",
            Box::new(|| v.chunks_nt().map(|c| c.len()).sum::<usize>()) as Box<dyn Fn() -> usize>,
        ),
        (
            "backward",
            Box::new(|| v.chunks_nt().rev().map(|c| c.len()).sum::<usize>()),
        ),
        ("iter rev", Box::new(|| v.iter_nt().rev().count())),
    ] {
        rt.evacuate_now();
        let before = rt.stats();
        assert_eq!(walk() as u64, n, "{name}");
        let s = rt.stats();
        let useful = s.prefetch_useful - before.prefetch_useful;
        assert!(
            useful * 2 > chunks,
            "{name}: only {useful} of {chunks} chunks arrived ahead of the scan"
        );
    }
    // The window was measured, not assumed: the link has a round trip of at least the
    // store's latency.
    let rtt = rt.link().round_trip().expect("a measured round trip");
    assert!(rtt >= std::time::Duration::from_micros(50), "{rtt:?}");
}
