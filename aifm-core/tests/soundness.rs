//! A dereference must never create a second live copy of an object while a reference taken
//! earlier (in a scope that is still open) may point at the first.
//!
//! The evacuator marks an object, then waits for every scope that was open while it marked.
//! A dereference that meets the mark before that wait is over may not move the object: an
//! older reference can still point at it. These tests open a scope, take a reference, let an
//! evacuation mark the object (it then blocks on the open scope), and dereference again.

mod common;
use common::within;

use aifm_core::{RemBox, Runtime, Scope, Serde};
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Waits until the evacuator has marked `b` (it then waits for our open scope).
fn wait_marked<T: aifm_core::FarData>(b: &RemBox<T>) {
    let start = Instant::now();
    while !b.__is_marked() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the evacuation never marked the object"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn deref_during_marking_keeps_one_copy_refcell() {
    within(Duration::from_secs(60), || {
        let rt = Runtime::builder().local_memory(4 << 20).build().unwrap();
        let b = RemBox::new_in(Serde(RefCell::new(vec![1u8; 16])), &rt);
        let s = Scope::new();
        let r1 = b.deref(&s);
        let evacuating = {
            let rt = rt.clone();
            std::thread::spawn(move || rt.evacuate_now())
        };
        wait_marked(&b);
        let r2 = b.deref(&s);
        assert!(
            std::ptr::eq(r1, r2),
            "a dereference moved the object while an older reference lived"
        );
        // Grow the buffer through the first reference: the second must see it (with two
        // copies, the second would point at the freed buffer).
        r1.0.borrow_mut().extend_from_slice(&[2u8; 4096]);
        assert_eq!(r2.0.borrow().len(), 16 + 4096);
        drop(s);
        evacuating.join().unwrap();
        let s = Scope::new();
        assert_eq!(b.deref(&s).0.borrow().len(), 16 + 4096);
    });
}

#[test]
fn mutex_counter_through_migrations_loses_nothing() {
    within(Duration::from_secs(120), || {
        const ROUNDS: u64 = 40;
        const PER_ROUND: u64 = 200;
        let rt = Runtime::builder().local_memory(4 << 20).build().unwrap();
        let b = Arc::new(RemBox::new_in(Serde(Mutex::new(0u64)), &rt));
        let stop = Arc::new(AtomicBool::new(false));
        // A second thread increments in short scopes of its own the whole time.
        let other = {
            let b = b.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Acquire) {
                    let s = Scope::new();
                    *b.deref(&s).0.lock().unwrap() += 1;
                    n += 1;
                    drop(s);
                    std::thread::yield_now();
                }
                n
            })
        };
        let mut mine = 0u64;
        for _ in 0..ROUNDS {
            // Hold a reference from before the mark, and keep incrementing through it while
            // the evacuation marks the object and the other thread dereferences it anew.
            let s = Scope::new();
            let r = b.deref(&s);
            let evacuating = {
                let rt = rt.clone();
                std::thread::spawn(move || rt.evacuate_now())
            };
            // The round marks at once, then waits for `s`; the other thread meets the mark.
            std::thread::sleep(Duration::from_millis(10));
            for _ in 0..PER_ROUND {
                *r.0.lock().unwrap() += 1;
                mine += 1;
                std::thread::yield_now();
            }
            drop(s);
            evacuating.join().unwrap();
        }
        stop.store(true, Ordering::Release);
        let theirs = other.join().unwrap();
        let s = Scope::new();
        assert_eq!(
            *b.deref(&s).0.lock().unwrap(),
            mine + theirs,
            "increments were lost to a second copy"
        );
    });
}

/// Forced evacuations until `b` is far (asserting that it gets there).
fn push_far<T: aifm_core::FarData>(rt: &Runtime, b: &RemBox<T>) {
    for _ in 0..10 {
        if !b.is_local() {
            return;
        }
        rt.evacuate_now();
    }
    assert!(
        !b.is_local(),
        "forced evacuations never moved the object out"
    );
}

/// A value changed through a shared reference (a `Mutex` inside) is not "clean": fetched
/// back with its far copy kept, then changed under `deref` (not `deref_mut`), it must be
/// written again when it leaves, or the change is lost to the stale far copy.
#[test]
fn a_change_through_a_shared_reference_survives_the_next_eviction() {
    within(Duration::from_secs(60), || {
        let rt = Runtime::builder().local_memory(4 << 20).build().unwrap();
        let b = RemBox::new_in(Serde(Mutex::new(0u64)), &rt);
        push_far(&rt, &b);
        for round in 1..=3u64 {
            {
                let s = Scope::new();
                *b.deref(&s).0.lock().unwrap() += 1;
            }
            push_far(&rt, &b);
            let s = Scope::new();
            assert_eq!(*b.deref(&s).0.lock().unwrap(), round, "round {round}");
        }
    });
}

/// Which types may be dropped unwritten after a read: plain data and the std containers of
/// it, never a type whose `&self` can change it.
#[test]
fn interior_mutability_is_declared_where_it_can_exist() {
    use aifm_core::FarData;
    let declared = [
        <(u64, String, Vec<[u8; 4]>, Option<Box<char>>)>::INTERIOR_MUTABLE,
        <Serde<Mutex<u64>>>::INTERIOR_MUTABLE,
        <Vec<Serde<RefCell<u8>>>>::INTERIOR_MUTABLE,
        // Serde types cannot say, so they count as interior-mutable.
        <(u8, Serde<u8>)>::INTERIOR_MUTABLE,
    ];
    assert_eq!(declared, [false, true, true, true]);
}
