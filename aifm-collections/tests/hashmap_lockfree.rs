//! The map's lock-free read path against everything that can change a pair under a reader:
//! writers of the *same* keys replacing, removing and writing in place, index arrays rebuilt
//! by a stream of fresh keys, and forced evacuation under a budget far below the data. The
//! values are heap strings that spell their own key and version, so a reader that saw a freed,
//! moved-out or half-written value fails its check (or crashes) rather than passing. Each
//! writer keeps a model of its keys; the map must equal the models at the end.

use aifm_collections::RemHashMap;
use aifm_core::Runtime;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

mod common;
use common::no_hang;

/// `(key, "key:version, padded", version)`.
type Val = (u64, String, u64);

fn val(k: u64, version: u64) -> Val {
    (k, format!("{k}:{version}:{}", "x".repeat(400)), version)
}

fn check(k: u64, v: &Val) {
    assert_eq!(v.0, k, "a reader of {k} saw another key's pair");
    assert_eq!(
        v.1,
        format!("{k}:{}:{}", v.2, "x".repeat(400)),
        "torn value of {k}"
    );
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const KEYS: u64 = 4096;
const WRITERS: u64 = 2;

#[test]
fn readers_race_writers_rebuilds_and_evacuation() {
    no_hang("lock-free readers vs writers", || {
        let rt = Runtime::builder().local_memory(1 << 20).build().unwrap();
        let m = Arc::new(RemHashMap::new_in(&rt));
        for k in 0..KEYS {
            m.insert(k, val(k, 0));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let evacuator = {
            let (rt, stop) = (rt.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    rt.evacuate_now();
                    std::thread::yield_now();
                }
            })
        };
        let readers: Vec<_> = (0..2u64)
            .map(|r| {
                let (m, stop) = (m.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut rng = Rng(0x2545_f491_4f6c_dd1d + r);
                    let mut seen = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let k = rng.next() % KEYS;
                        // A guard held across a second lookup and a writer's window.
                        if let Some(a) = m.get(&k) {
                            check(k, &a);
                            if let Some(b) = m.get(&(k ^ 1)) {
                                check(k ^ 1, &b);
                            }
                            std::hint::spin_loop();
                            check(k, &a);
                            seen += 1;
                        }
                        if let Some(v) = m.get_cloned(&((k + 7) % KEYS)) {
                            check((k + 7) % KEYS, &v);
                        }
                    }
                    seen
                })
            })
            .collect();
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let m = m.clone();
                std::thread::spawn(move || {
                    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 + w);
                    let mut model: HashMap<u64, u64> = (0..KEYS)
                        .filter(|k| k % WRITERS == w)
                        .map(|k| (k, 0))
                        .collect();
                    let mut fresh = KEYS + w;
                    for round in 1..20_000u64 {
                        let k = rng.next() % KEYS / WRITERS * WRITERS + w;
                        match rng.next() % 5 {
                            0 | 1 => {
                                let old = m.insert(k, val(k, round));
                                assert_eq!(old.map(|v| v.2), model.insert(k, round));
                            }
                            2 => {
                                let old = m.remove(&k);
                                if let Some(v) = &old {
                                    check(k, v);
                                }
                                assert_eq!(old.map(|v| v.2), model.remove(&k));
                            }
                            3 => {
                                if let Some(mut g) = m.get_mut(&k) {
                                    check(k, &g);
                                    *g = val(k, round);
                                    model.insert(k, round);
                                } else {
                                    assert!(!model.contains_key(&k));
                                }
                            }
                            _ => {
                                // Fresh keys grow the index (its arrays are rebuilt under
                                // the readers); every other one leaves again.
                                m.insert(fresh, val(fresh, round));
                                model.insert(fresh, round);
                                if round % 2 == 0 {
                                    assert_eq!(m.remove(&fresh).map(|v| v.2), Some(round));
                                    model.remove(&fresh);
                                }
                                fresh += WRITERS;
                            }
                        }
                    }
                    model
                })
            })
            .collect();
        let models: Vec<HashMap<u64, u64>> =
            writers.into_iter().map(|w| w.join().unwrap()).collect();
        stop.store(true, Ordering::Relaxed);
        let seen: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
        evacuator.join().unwrap();
        assert!(seen > 0, "the readers never found a pair");
        let mut total = 0;
        for model in &models {
            for (&k, &version) in model {
                let v = m.get_cloned(&k).unwrap_or_else(|| panic!("lost {k}"));
                assert_eq!(v, val(k, version));
                total += 1;
            }
        }
        assert_eq!(m.len(), total);
        assert_eq!(m.iter().count(), total);
        assert!(m.local_len() < total, "the budget forced nothing out");
    });
}

/// A value removed or replaced while readers hold it stays readable through their guards, and
/// the remover still gets it by value.
#[test]
fn removal_and_replacement_under_held_guards() {
    let rt = Runtime::builder().local_memory(4 << 20).build().unwrap();
    let m = RemHashMap::new_in(&rt);
    for k in 0..256u64 {
        m.insert(k, val(k, 0));
    }
    let held: Vec<_> = (0..256u64).map(|k| m.get(&k).unwrap()).collect();
    for k in 0..256u64 {
        match k % 3 {
            0 => assert_eq!(m.remove(&k), Some(val(k, 0))),
            1 => assert_eq!(m.insert(k, val(k, 1)), Some(val(k, 0))),
            _ => *m.get_mut(&k).unwrap() = val(k, 2),
        }
    }
    for (k, g) in (0..256u64).zip(&held) {
        assert_eq!(**g, val(k, 0), "a held guard changed under its reader");
    }
    drop(held);
    for k in 0..256u64 {
        let want = match k % 3 {
            0 => None,
            1 => Some(val(k, 1)),
            _ => Some(val(k, 2)),
        };
        assert_eq!(m.get_cloned(&k), want);
    }
    // With no reader left, a removal moves the value out (no copy) and a writer works in place.
    assert_eq!(m.remove(&1), Some(val(1, 1)));
    *m.get_mut(&2).unwrap() = val(2, 3);
    assert_eq!(m.get_cloned(&2), Some(val(2, 3)));
}

/// A pair removed while guards hold it keeps its arena word and its node until the guards
/// are gone, however much the shard churns meanwhile: the word's index is reused only after
/// the epoch has passed every reader that could hold its address. (Freeing the index at once
/// hands the held nodes' memory and words to the churn's new pairs.)
#[test]
fn held_guards_survive_churn_that_reuses_arena_indexes() {
    let rt = Runtime::builder().local_memory(64 << 20).build().unwrap();
    let m = Arc::new(RemHashMap::new_in(&rt));
    for k in 0..128u64 {
        m.insert(k, val(k, 0));
    }
    let held: Vec<_> = (0..128u64).map(|k| m.get(&k).unwrap()).collect();
    for k in 0..128u64 {
        assert_eq!(m.remove(&k), Some(val(k, 0)));
    }
    // Churn from this thread and another: many writers' holds, each freeing what the epoch
    // lets through and allocating in the same shards.
    let other = {
        let m = m.clone();
        std::thread::spawn(move || {
            for round in 0..20u64 {
                for k in 10_000..12_000u64 {
                    m.insert(k, val(k, round));
                }
                for k in 10_000..12_000u64 {
                    assert_eq!(m.remove(&k), Some(val(k, round)));
                }
            }
        })
    };
    for round in 0..20u64 {
        for k in 1_000..3_000u64 {
            m.insert(k, val(k, round));
        }
        for k in 1_000..3_000u64 {
            m.remove(&k);
        }
    }
    other.join().unwrap();
    for (k, g) in (0..128u64).zip(&held) {
        assert_eq!(*g.key(), k, "a held guard's pair was reused");
        check(k, g);
        assert_eq!(g.2, 0);
    }
    drop(held);
    assert!(m.is_empty());
}
