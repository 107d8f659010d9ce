//! Latency hiding through the collections: nontemporal scans and async lookups.

use aifm_collections::{RemHashMap, RemVec};
use aifm_core::Runtime;

#[test]
fn nontemporal_scan_keeps_the_hot_map_local() {
    let rt = Runtime::builder().local_memory(4 << 20).build().unwrap();
    // 32 MiB of vector: eight times the local budget, written out before the scan.
    let mut big: RemVec<u64> = RemVec::new_in(&rt);
    big.extend(0..(4u64 << 20));
    rt.evacuate_now();
    // A small hot map (a few hundred KiB with its headers), touched throughout.
    let hot: RemHashMap<u64, u64> = RemHashMap::new_in(&rt);
    (0..2000u64).for_each(|k| {
        hot.insert(k, k * 3);
    });
    let touch = || (0..2000u64).for_each(|k| assert_eq!(*hot.get(&k).unwrap(), k * 3));
    touch();
    touch();
    let before = rt.stats();
    let mut sum = 0u64;
    for (i, x) in big.iter_nt().enumerate() {
        sum = sum.wrapping_add(x);
        if i % (256 << 10) == 0 {
            touch();
        }
    }
    assert_eq!(sum, (4u64 << 20) * ((4u64 << 20) - 1) / 2);
    let after = rt.stats();
    assert!(
        after.fetches - before.fetches >= 4096,
        "the scan came from far memory: {after}"
    );
    assert!(
        after.evacuation_rounds > before.evacuation_rounds,
        "the scan made the evacuator run"
    );
    assert_eq!(
        hot.local_len(),
        2000,
        "the scan evicted part of the hot map"
    );
}

#[test]
fn many_async_lookups_in_flight_resolve_to_the_right_elements() {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let rt = Runtime::builder().local_memory(2 << 20).build().unwrap();
    let mut v: RemVec<u64> = RemVec::new_in(&rt);
    v.extend((0..(2u64 << 20)).map(|i| i * 7));
    rt.evacuate_now();
    let indices: Vec<usize> = (0..1000).map(|k| (k * 2_097) % (2 << 20)).collect();
    let mut futs: Vec<_> = indices.iter().map(|&i| Box::pin(v.get_async(i))).collect();
    let mut done = vec![None; futs.len()];
    let mut cx = Context::from_waker(Waker::noop());
    while done.iter().any(Option::is_none) {
        for (k, f) in futs.iter_mut().enumerate() {
            if done[k].is_none() {
                if let Poll::Ready(r) = f.as_mut().poll(&mut cx) {
                    done[k] = Some(r.unwrap());
                }
            }
        }
        std::thread::yield_now();
    }
    for (k, &i) in indices.iter().enumerate() {
        assert_eq!(done[k], Some(Some(i as u64 * 7)));
    }
    assert!(rt.stats().fetches > 0);
}

#[test]
fn batched_map_lookups_equal_single_lookups() {
    let rt = Runtime::builder().local_memory(1 << 20).build().unwrap();
    let map: RemHashMap<u64, String> = RemHashMap::new_in(&rt);
    (0..20_000u64).for_each(|k| {
        map.insert(k, format!("v{k}"));
    });
    rt.evacuate_now();
    assert!(
        map.local_len() < 20_000,
        "some pairs live only in far memory"
    );
    let keys: Vec<u64> = (0..64u64).map(|i| i * 331 % 25_000).collect(); // some absent
    let batched = map.get_many_cloned(&keys);
    let single: Vec<Option<String>> = keys.iter().map(|k| map.get_cloned(k)).collect();
    assert_eq!(batched, single);
    assert_eq!(
        batched.iter().filter(|v| v.is_some()).count(),
        keys.iter().filter(|&&k| k < 20_000).count()
    );
    assert_eq!(map.len(), 20_000, "batched takes keep every pair");
}
