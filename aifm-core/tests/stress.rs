//! Several threads dereferencing and mutating while the evacuator runs.

mod common;
use common::within;

use aifm_core::{RemBox, Runtime, Scope};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

#[test]
fn threads_mutate_while_evacuating() {
    within(Duration::from_secs(120), || {
        let rt = Runtime::builder()
            .local_memory(4 << 20)
            .evacuator_threads(2)
            .build()
            .unwrap();
        // A shared, read-only set every thread reads.
        let shared: Arc<Vec<RemBox<[u64; 64]>>> =
            Arc::new((0..4096u64).map(|i| RemBox::new_in([i; 64], &rt)).collect());
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let rt = rt.clone();
                let shared = shared.clone();
                std::thread::spawn(move || {
                    // 4 MiB of private objects per thread: 16 MiB in all against 4 MiB local.
                    let mut mine: Vec<RemBox<[u64; 128]>> = (0..4096u64)
                        .map(|i| RemBox::new_in([t << 32 | i; 128], &rt))
                        .collect();
                    let mut x = t + 1;
                    let mut scope = Scope::new();
                    for step in 0..60_000u64 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let i = (x % mine.len() as u64) as usize;
                        let v = mine[i].deref_mut(&scope);
                        assert_eq!(v[0] & 0xffff_ffff, v[1] & 0xffff_ffff);
                        v[0] += 1 << 40;
                        v[1] += 1 << 40;
                        let s = &shared[(x >> 20) as usize % shared.len()];
                        let sv = s.deref(&scope);
                        assert_eq!(sv[0], sv[63]);
                        if step % 1000 == 0 {
                            // Boxes move between owners and are dropped and re-made.
                            let b = mine.swap_remove(i);
                            let val = *b.deref(&scope);
                            drop(b);
                            mine.push(RemBox::new_in(val, &rt));
                        }
                        if step % 8 == 0 {
                            scope.renew();
                        }
                    }
                    drop(scope);
                    mine
                })
            })
            .collect();
        let results: Vec<Vec<RemBox<[u64; 128]>>> =
            threads.into_iter().map(|t| t.join().unwrap()).collect();
        let mut scope = Scope::new();
        let mut increments = 0u64;
        for (t, mine) in results.iter().enumerate() {
            let mut ids = Vec::new();
            for b in mine {
                ids.push(b.deref(&scope)[0] & 0xffff_ffff);
                scope.renew();
            }
            ids.sort_unstable();
            assert_eq!(
                ids,
                (0..4096).collect::<Vec<_>>(),
                "thread {t} lost or duplicated objects"
            );
            for b in mine {
                scope.renew();
                let v = b.deref(&scope);
                assert_eq!(v[0] >> 32 & 0xff, t as u64, "value from the wrong thread");
                assert_eq!(v[0], v[1]);
                assert!(v[2..].iter().all(|&w| w == v[2]));
                increments += v[0] >> 40;
            }
        }
        assert_eq!(
            increments,
            4 * 60_000,
            "every increment survived evacuation"
        );
        for (i, s) in shared.iter().enumerate() {
            scope.renew();
            assert_eq!(s.deref(&scope)[0], i as u64);
        }
        drop(scope);
        let s = rt.stats();
        assert!(s.write_backs > 0 && s.fetches > 0, "{s}");
        eprintln!("{s}");
    });
}

#[test]
fn boxes_move_between_threads_and_die_anywhere() {
    within(Duration::from_secs(60), || {
        let rt = Runtime::builder().local_memory(2 << 20).build().unwrap();
        let (tx, rx) = mpsc::sync_channel::<RemBox<Vec<u32>>>(64);
        let producer = {
            let rt = rt.clone();
            std::thread::spawn(move || {
                for i in 0..20_000u32 {
                    tx.send(RemBox::new_in(vec![i; (i % 200) as usize], &rt))
                        .unwrap();
                }
            })
        };
        let mut kept = Vec::new();
        for (n, b) in rx.iter().enumerate() {
            if n % 3 == 0 {
                kept.push(b);
            }
        }
        producer.join().unwrap();
        rt.evacuate_now();
        let mut scope = Scope::new();
        for (k, b) in kept.iter().enumerate() {
            scope.renew();
            let i = (k * 3) as u32;
            assert_eq!(b.deref(&scope), &vec![i; (i % 200) as usize]);
        }
    });
}
