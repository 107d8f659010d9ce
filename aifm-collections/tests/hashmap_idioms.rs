//! Std idioms that compile against `RemHashMap` and must behave as they do on `HashMap`:
//! guards that hold no lock (no deadlock when two guards meet in one statement or one shard),
//! sized iterators. A hang fails the test through a watchdog instead of hanging CI.

use aifm_collections::RemHashMap;
use aifm_core::Runtime;
use std::sync::mpsc;

mod common;
use common::no_hang;

#[test]
fn insert_of_a_value_read_in_the_same_statement() {
    let got = no_hang("m.insert(1, *m.get(&1).unwrap() + 1)", || {
        let m = RemHashMap::new();
        m.insert(1u64, 1u64);
        let old = m.insert(1, *m.get(&1).unwrap() + 1);
        (old, m.get_cloned(&1))
    });
    assert_eq!(got, (Some(1), Some(2)));
}

#[test]
fn two_guards_in_one_expression_whatever_their_shards() {
    let sum = no_hang("*m.get(&i).unwrap() + *m.get(&j).unwrap()", || {
        let m: RemHashMap<u64, u64> = (0..65).map(|i| (i, i)).collect();
        let mut sum = 0;
        for i in 0..65 {
            for j in 0..65 {
                sum += *m.get(&i).unwrap() + *m.get(&j).unwrap();
            }
        }
        sum
    });
    assert_eq!(sum, 2 * 65 * (64 * 65 / 2));
}

#[test]
fn two_live_guards_then_writes_to_other_keys() {
    let ok = no_hang("let a = m.get(&i); let b = m.get(&j);", || {
        let m: RemHashMap<u64, u64> = (0..65).map(|i| (i, i)).collect();
        for i in 0..65 {
            let a = m.get(&i).unwrap();
            let b = m.get(&((i + 1) % 65)).unwrap();
            // Writers of other keys (same shard or not) go ahead while both guards live.
            m.insert(1000 + i, *a + *b);
            assert_eq!(m.remove(&(1000 + i)), Some(*a + *b));
            assert_eq!((*a, *b), (i, (i + 1) % 65));
        }
        true
    });
    assert!(ok);
}

#[test]
fn a_guard_outlives_the_removal_of_its_key() {
    let m: RemHashMap<u64, String> = RemHashMap::new();
    m.insert(7, "seven".to_string());
    let r = no_hang("remove under a guard", move || {
        let g = m.get(&7).unwrap();
        let removed = m.remove(&7);
        let seen = g.clone();
        drop(g);
        (removed, seen, m.get_cloned(&7))
    });
    assert_eq!(r, (Some("seven".into()), "seven".into(), None));
}

/// A guard held by a thread that then sleeps keeps its pair in place (a per-object pin), not
/// every object of the runtime: a forced evacuation returns and moves the other pairs out.
#[test]
fn a_guard_held_by_a_sleeping_thread_does_not_stop_evacuation() {
    let rt = Runtime::builder().local_memory(1 << 20).build().unwrap();
    let m = std::sync::Arc::new(RemHashMap::new_in(&rt));
    for i in 0..20_000u64 {
        m.insert(i, [i; 4]);
    }
    let (held_tx, held_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let m2 = m.clone();
    let holder = std::thread::spawn(move || {
        let g = m2.get(&1).unwrap();
        held_tx.send(()).unwrap();
        let _ = release_rx.recv();
        g[0]
    });
    held_rx.recv().unwrap();
    let rt2 = rt.clone();
    no_hang("evacuate_now with a guard held elsewhere", move || {
        rt2.evacuate_now()
    });
    release_tx.send(()).unwrap();
    assert_eq!(holder.join().unwrap(), 1);
    assert!(m.local_len() < m.len());
    assert!(
        rt.stats().pinned_kept >= 1,
        "the guarded pair was left in place"
    );
}

#[test]
fn iterators_know_their_length() {
    let m: RemHashMap<u64, u64> = (0..100).map(|i| (i, i)).collect();
    let mut it = m.iter();
    assert_eq!(it.size_hint(), (100, Some(100)));
    it.next();
    assert_eq!(it.len(), 99);
    assert_eq!(m.keys().len(), 100);
    assert_eq!(m.values().map(|v| v as u128).sum::<u128>(), 4950);
    let mut keys: Vec<u64> = m.keys().collect();
    keys.sort();
    assert_eq!(keys, (0..100).collect::<Vec<_>>());
}

#[test]
fn std_extras() {
    let rt = Runtime::builder().local_memory(4 << 20).build().unwrap();
    let m = RemHashMap::<u64, u64>::from_iter_in((0..10).map(|i| (i, i * 3)), &rt);
    assert_eq!(m.runtime().stats().budget_bytes, 4 << 20);
    let kv = m.get_key_value(&4).unwrap();
    assert_eq!((*kv.key(), *kv), (4, 12));
    drop(kv);
    assert_eq!(m.remove_entry(&5), Some((5, 15)));
    assert_eq!(m.remove_entry(&5), None);
    let w = RemHashMap::<u64, u64>::with_capacity(1000);
    assert!(w.is_empty());
}

/// Readers holding guards, writers (in place and by copy), removals and forced evacuation, all
/// at once: no torn value, no lost pair, no hang.
#[test]
fn guards_writers_and_evacuation_across_threads() {
    const KEYS: u64 = 20_000;
    let done = no_hang("guards, writers and evacuation", || {
        let rt = Runtime::builder().local_memory(1 << 20).build().unwrap();
        let m = std::sync::Arc::new(RemHashMap::new_in(&rt));
        for k in 0..KEYS {
            m.insert(k, [k, 0, 0, 0, 0, 0, 0, 0]);
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ev = {
            let (rt, stop) = (rt.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    rt.evacuate_now();
                    std::thread::yield_now();
                }
            })
        };
        let workers: Vec<_> = (0..4u64)
            .map(|t| {
                let m = m.clone();
                std::thread::spawn(move || {
                    let mut x = 0x9e37_79b9u64 + t;
                    for round in 1..3000u64 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let k = x % KEYS;
                        // Everyone reads every key, holding two guards at once.
                        let a = m.get(&k);
                        let b = m.get(&((k + 1) % KEYS));
                        for g in [&a, &b].into_iter().flatten() {
                            assert_eq!(g[1], g[2], "torn value of {}", g[0]);
                            assert!(g[1..].iter().all(|&w| w == g[1]));
                        }
                        drop((a, b));
                        // Thread t writes only its own keys.
                        let own = k - k % 4 + t;
                        if own >= KEYS {
                            continue;
                        }
                        match round % 4 {
                            0 => {
                                if let Some(mut g) = m.get_mut(&own) {
                                    for w in &mut g[1..] {
                                        *w = round;
                                    }
                                }
                            }
                            1 => {
                                m.insert(
                                    own,
                                    [own, round, round, round, round, round, round, round],
                                );
                            }
                            2 => {
                                if let Some(v) = m.remove(&own) {
                                    assert_eq!(v[0], own);
                                    m.insert(own, v);
                                }
                            }
                            _ => {
                                *m.entry(own).or_insert([own, 0, 0, 0, 0, 0, 0, 0]) =
                                    [own, round, round, round, round, round, round, round];
                            }
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        ev.join().unwrap();
        assert_eq!(m.len(), KEYS as usize);
        for k in 0..KEYS {
            let v = m.get_cloned(&k).expect("no pair lost");
            assert_eq!(v[0], k);
            assert!(v[1..].iter().all(|&w| w == v[1]));
        }
        true
    });
    assert!(done);
}
