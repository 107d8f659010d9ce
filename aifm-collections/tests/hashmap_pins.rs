//! A map guard pins its pair instead of holding a dereference scope: evacuation goes on around
//! guards held for long, never moves a guarded pair (not the evacuator, not another thread's
//! lookup migrating it), and the pair may leave once its guards are gone. A hang fails a test
//! through a watchdog instead of hanging CI.

use aifm_collections::RemHashMap;
use aifm_core::{FarData, Runtime};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::time::Duration;

mod common;
use common::no_hang;

const KEYS: u64 = 20_000;

/// A 1 MiB map of `KEYS` pairs `k -> [k; 4]`.
fn map() -> (Runtime, Arc<RemHashMap<u64, [u64; 4]>>) {
    let rt = Runtime::builder().local_memory(1 << 20).build().unwrap();
    let m = Arc::new(RemHashMap::new_in(&rt));
    for k in 0..KEYS {
        m.insert(k, [k; 4]);
    }
    (rt, m)
}

/// Two threads hold 64 guards each (and read through them) while the main thread forces
/// evacuation over and over: every round returns, the guarded values stay right and at their
/// address, the other pairs leave, and once the guards are dropped the guarded pairs may
/// leave too.
#[test]
fn guards_held_across_forced_evacuations() {
    no_hang("guards held across forced evacuations", || {
        let (rt, m) = map();
        let held = Arc::new(Barrier::new(3));
        let done = Arc::new(AtomicBool::new(false));
        let holders: Vec<_> = (0..2u64)
            .map(|t| {
                let (m, held, done) = (m.clone(), held.clone(), done.clone());
                std::thread::spawn(move || {
                    let keys: Vec<u64> = (0..64).map(|i| t * 7919 + i * 97).collect();
                    let guards: Vec<_> = keys.iter().map(|k| m.get(k).unwrap()).collect();
                    let at: Vec<*const [u64; 4]> =
                        guards.iter().map(|g| &**g as *const _).collect();
                    held.wait();
                    let mut reads = 0u64;
                    while !done.load(Ordering::Acquire) {
                        for ((k, g), a) in keys.iter().zip(&guards).zip(&at) {
                            assert_eq!(**g, [*k; 4], "the guard of {k} reads wrong");
                            assert!(std::ptr::eq(&**g, *a), "the pair of {k} moved");
                            reads += 1;
                        }
                        std::thread::yield_now();
                    }
                    drop(guards);
                    reads
                })
            })
            .collect();
        held.wait();
        for _ in 0..20 {
            rt.evacuate_now();
            // The guarded pairs are still local; most others are not.
            assert!(m.local_len() >= 128);
        }
        assert!(m.local_len() < KEYS as usize / 2, "the other pairs left");
        done.store(true, Ordering::Release);
        for h in holders {
            assert!(h.join().unwrap() > 0);
        }
        assert!(rt.stats().pinned_kept >= 128);
        rt.evacuate_now();
        rt.evacuate_now();
        assert!(
            m.local_len() < 128,
            "released pairs may leave: {} local",
            m.local_len()
        );
        for k in (0..KEYS).step_by(97) {
            assert_eq!(m.get_cloned(&k), Some([k; 4]));
        }
    });
}

/// A `RefMut` held across forced evacuations, on the very thread that forces them (it holds
/// no scope, so `evacuate_now` may run): its writes land in the pair, which stays put, and
/// survive the pair's eviction once the guard is gone.
#[test]
fn a_ref_mut_held_across_evacuations_keeps_its_writes() {
    no_hang("a RefMut held across evacuations", || {
        let (rt, m) = map();
        let mut g = m.get_mut(&5).unwrap();
        let at = &*g as *const [u64; 4];
        for round in 0..10u64 {
            rt.evacuate_now();
            assert!(std::ptr::eq(&*g, at), "the written pair moved");
            assert_eq!(g[0], if round == 0 { 5 } else { 1000 + round - 1 });
            *g = [1000 + round; 4];
        }
        drop(g);
        rt.evacuate_now();
        rt.evacuate_now();
        assert!(m.local_len() < KEYS as usize / 2);
        assert_eq!(m.get_cloned(&5), Some([1009; 4]));
        assert_eq!(m.get_cloned(&6), Some([6; 4]));
    });
}

/// While one thread holds a guard on a few keys, others look the same keys up while
/// evacuation runs: a lookup that meets a guarded pair under evacuation must use it in place
/// (migrating it would leave the holder on a dead copy). Every read, through the held guard
/// or a fresh one, is right, and the held pair never moves.
#[test]
fn lookups_of_a_guarded_key_during_evacuation() {
    no_hang("lookups of a guarded key during evacuation", || {
        let (rt, m) = map();
        // Held pairs spread over many regions, so a round's claims reach some late, and
        // lookups meet them marked after the round's wait (the migration path).
        let hot: Vec<u64> = (0..256).map(|i| i * 78 + 3).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let holder = {
            let (m, hot, stop) = (m.clone(), hot.clone(), stop.clone());
            std::thread::spawn(move || {
                let guards: Vec<_> = hot.iter().map(|k| m.get(k).unwrap()).collect();
                let at: Vec<*const [u64; 4]> = guards.iter().map(|g| &**g as *const _).collect();
                ready_tx.send(()).unwrap();
                while !stop.load(Ordering::Acquire) {
                    for ((k, g), a) in hot.iter().zip(&guards).zip(&at) {
                        assert_eq!(**g, [*k; 4]);
                        assert!(std::ptr::eq(&**g, *a), "the pair of {k} moved");
                    }
                    std::thread::yield_now();
                }
            })
        };
        ready_rx.recv().unwrap();
        let readers: Vec<_> = (0..2usize)
            .map(|t| {
                let (m, hot, stop) = (m.clone(), hot.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut i = t;
                    while !stop.load(Ordering::Acquire) {
                        let k = hot[i % hot.len()];
                        assert_eq!(*m.get(&k).unwrap(), [k; 4]);
                        // Other keys come and go meanwhile.
                        let o = (i as u64 * 7 + 1) % KEYS;
                        assert_eq!(m.get_cloned(&o), Some([o; 4]));
                        i += 1;
                    }
                })
            })
            .collect();
        for _ in 0..200 {
            rt.evacuate_now();
        }
        stop.store(true, Ordering::Release);
        holder.join().unwrap();
        for r in readers {
            r.join().unwrap();
        }
        assert!(rt.stats().pinned_kept > 0);
        for k in hot {
            assert_eq!(m.get_cloned(&k), Some([k; 4]));
        }
    });
}

/// Where a [`Gated`] value of 0 reports that the evacuator measures it, and waits for the go.
static GATE: Mutex<Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>> = Mutex::new(None);

/// A value whose `heap_bytes` (which the evacuator calls on each unpinned object it claims,
/// once the round is past its wait) can hold the evacuator at a chosen pair.
struct Gated(u64);

impl FarData for Gated {
    fn encode(&self, out: &mut Vec<u8>) -> aifm_core::Result<()> {
        self.0.encode(out)
    }
    fn decode(bytes: &[u8]) -> aifm_core::Result<Self> {
        u64::decode(bytes).map(Gated)
    }
    fn heap_bytes(&self) -> usize {
        if self.0 == 0 {
            if let Some((entered, go)) = GATE.lock().unwrap().take() {
                entered.send(()).unwrap();
                let _ = go.recv_timeout(Duration::from_secs(30));
            }
        }
        0
    }
}

/// The migration path, made certain: the evacuator is held on pair 0, past its round's wait,
/// while pair 1 (same region, guarded by another thread) is still marked. A lookup of key 1
/// meets the mark with every round settled, where it would migrate an unguarded pair: it must
/// use the guarded pair in place, or the holder would be left reading a dead copy.
#[test]
fn a_lookup_meeting_a_guarded_pair_under_evacuation_uses_it_in_place() {
    no_hang("a lookup of a guarded pair under evacuation", || {
        // A budget the background evacuator leaves alone: only `evacuate_now` runs rounds.
        let rt = Runtime::builder().local_memory(16 << 20).build().unwrap();
        let m = Arc::new(RemHashMap::<u64, Gated>::new_in(&rt));
        m.insert(0, Gated(0));
        m.insert(1, Gated(1));
        let (held_tx, held) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let holder = {
            let m = m.clone();
            std::thread::spawn(move || {
                let g = m.get(&1).unwrap();
                held_tx.send(&*g as *const Gated as usize).unwrap();
                let _ = release_rx.recv();
                g.0
            })
        };
        let at = held.recv().unwrap();
        let (entered_tx, entered) = mpsc::channel();
        let (go, go_rx) = mpsc::channel();
        *GATE.lock().unwrap() = Some((entered_tx, go_rx));
        let ev = {
            let rt = rt.clone();
            std::thread::spawn(move || rt.evacuate_now())
        };
        let reached = entered.recv_timeout(Duration::from_secs(30)).is_ok();
        let seen = reached.then(|| {
            let g = m.get(&1).unwrap();
            (&*g as *const Gated as usize, g.0)
        });
        go.send(()).unwrap();
        ev.join().unwrap();
        release.send(()).unwrap();
        assert_eq!(holder.join().unwrap(), 1);
        assert!(reached, "the round measured pair 0");
        assert_eq!(
            seen,
            Some((at, 1)),
            "the lookup used the guarded pair in place"
        );
    });
}
