//! The prefetch engine end to end: a strided scan over objects far larger than local memory.

use aifm_core::backend::EmbeddedBackend;
use aifm_core::prefetch::Prefetcher;
use aifm_core::{RemBox, Runtime, Scope};
use std::future::Future;
use std::time::Duration;

fn scan(order: &[usize], prefetch: bool) -> aifm_core::Stats {
    let rt = Runtime::builder()
        .local_memory(4 << 20)
        .backend(EmbeddedBackend::new().with_latency(Duration::from_micros(20)))
        .build()
        .unwrap();
    let n = 4096; // 16 MiB of 4 KiB objects
    let objs: Vec<RemBox<[u64; 512]>> = (0..n as u64)
        .map(|i| RemBox::new_in([i; 512], &rt))
        .collect();
    rt.evacuate_now();
    let before = rt.stats();
    let detector = Prefetcher::new(4096).with_window_bytes(256 << 10);
    detector.set_enabled(prefetch);
    let mut scope = Scope::new();
    for (k, &i) in order.iter().enumerate() {
        let plan = detector.record(i as u64, n as u64);
        rt.prefetch(plan.map(|j| objs[j as usize].ticket()), true);
        assert_eq!(objs[i].deref_nt(&scope).unwrap()[7], i as u64);
        if k % 8 == 0 {
            scope.renew();
        }
    }
    drop(scope);
    let after = rt.stats();
    let mut d = after.clone();
    d.fetches -= before.fetches;
    d
}

#[test]
fn forward_and_reverse_scans_are_prefetched_accurately() {
    let forward: Vec<usize> = (0..4096).collect();
    let reverse: Vec<usize> = (0..4096).rev().collect();
    for order in [forward, reverse] {
        let s = scan(&order, true);
        assert!(
            s.prefetch_issued > 1000,
            "a good part of the scan was prefetched: {s}"
        );
        assert!(
            s.prefetch_accuracy() > 0.9,
            "accuracy {}: {s}",
            s.prefetch_accuracy()
        );
    }
}

#[test]
fn random_access_issues_no_prefetches() {
    let mut x = 99u64;
    let order: Vec<usize> = (0..2000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 4096) as usize
        })
        .collect();
    let s = scan(&order, true);
    assert_eq!(s.prefetch_issued, 0, "{s}");
}

#[test]
fn disabled_prefetching_fetches_on_demand_only() {
    let order: Vec<usize> = (0..4096).collect();
    let s = scan(&order, false);
    assert_eq!(s.prefetch_issued, 0);
    assert!(s.fetches >= 4096);
}

#[test]
fn thousands_of_async_reads_in_flight() {
    let rt = Runtime::builder()
        .local_memory(8 << 20)
        .backend(EmbeddedBackend::new().with_latency(Duration::from_micros(50)))
        .build()
        .unwrap();
    let objs: Vec<RemBox<[u64; 8]>> = (0..20_000u64)
        .map(|i| RemBox::new_in([i; 8], &rt))
        .collect();
    rt.evacuate_now();
    // Poll 2000 futures round-robin by hand (any executor would do): the helpers batch them.
    let mut futs: Vec<_> = objs[..2000]
        .iter()
        .map(|o| Box::pin(o.read_async(|v| v[3])))
        .collect();
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut results = vec![None; futs.len()];
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while results.iter().any(Option::is_none) {
        assert!(
            std::time::Instant::now() < deadline,
            "futures never resolved"
        );
        for (i, f) in futs.iter_mut().enumerate() {
            if results[i].is_none() {
                if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                    results[i] = Some(v.unwrap());
                }
            }
        }
        std::thread::yield_now();
    }
    assert!(results
        .iter()
        .enumerate()
        .all(|(i, v)| *v == Some(i as u64)));
    // 2000 misses at 50 µs each would take 100 ms one by one; batching makes it a few requests.
    assert!(rt.stats().fetches >= 1000);
}
