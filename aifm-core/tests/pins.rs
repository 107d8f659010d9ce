//! Per-object pins (`EvacuationHandler::pinned`): a structure that records in an object that
//! someone holds its address keeps the runtime from moving it, with no scope held. Checked with
//! a structure of its own here, whose objects count their pin holders.

mod common;

use aifm_core::backend::OBJECT_STORE_DEVICE;
use aifm_core::{Error, EvacuationHandler, FarData, PinView, RemBox, Runtime, Scope};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// An object whose first field counts the holders of its address (not stored far: a far
/// object has no holders).
struct Pinnable {
    users: AtomicU32,
    value: [u64; 8],
}

impl FarData for Pinnable {
    fn encode(&self, out: &mut Vec<u8>) -> aifm_core::Result<()> {
        self.value.encode(out)
    }
    fn decode(bytes: &[u8]) -> aifm_core::Result<Self> {
        Ok(Pinnable {
            users: AtomicU32::new(0),
            value: <[u64; 8]>::decode(bytes)?,
        })
    }
}

/// Answers from the count; with `panic` set, panics instead for the object of key 0. With a gate, the first question
/// about the object of key `gate.0` reports itself and waits for the test's go.
#[derive(Default)]
struct ByCount {
    panic: AtomicBool,
    gate: Mutex<Option<Gate>>,
}

/// The key to stop at, where to report, and where to wait for the go.
type Gate = (u64, mpsc::Sender<()>, mpsc::Receiver<()>);

impl EvacuationHandler for ByCount {
    fn pinned(&self, obj: &PinView<'_>) -> bool {
        assert!(obj.downcast::<u8>().is_none());
        if self.panic.load(Ordering::Relaxed) && obj.key() == 0 {
            panic!("pinned() failed");
        }
        let gate = self
            .gate
            .lock()
            .unwrap()
            .take_if(|(k, _, _)| *k == obj.key());
        if let Some((_, entered, go)) = gate {
            entered.send(()).unwrap();
            go.recv_timeout(Duration::from_secs(30)).unwrap();
        }
        obj.downcast::<Pinnable>()
            .is_some_and(|p| p.users.load(Ordering::Acquire) != 0)
    }
}

/// A held address: counted in the object inside the scope that dereferenced it, after the
/// dereference, as the pin protocol asks; the scope ends before this is returned.
struct Pin<'a> {
    /// The address, as an integer so that pins can be shared by the test's threads.
    at: usize,
    _box: PhantomData<&'a RemBox<Pinnable>>,
}

fn pin(b: &RemBox<Pinnable>) -> Pin<'_> {
    let scope = Scope::new();
    let p = b.deref(&scope);
    p.users.fetch_add(1, Ordering::AcqRel);
    Pin {
        at: p as *const Pinnable as usize,
        _box: PhantomData,
    }
}

impl Pin<'_> {
    fn get(&self) -> &Pinnable {
        // SAFETY: our count pins the object (the handler says so), so the runtime has not
        // moved or evicted it since the dereference; the box outlives `'a`.
        unsafe { &*(self.at as *const Pinnable) }
    }
}

impl Drop for Pin<'_> {
    fn drop(&mut self) {
        // The last touch: afterwards the object may move.
        self.get().users.fetch_sub(1, Ordering::Release);
    }
}

fn setup() -> (Runtime, Arc<ByCount>, aifm_core::Structure) {
    let rt = Runtime::builder().local_memory(1 << 20).build().unwrap();
    let h = Arc::new(ByCount::default());
    let s = rt
        .register_structure(OBJECT_STORE_DEVICE, &[], Some(h.clone()))
        .unwrap();
    (rt, h, s)
}

fn boxes(s: &aifm_core::Structure, n: u64) -> Vec<RemBox<Pinnable>> {
    (0..n)
        .map(|i| {
            let v = Pinnable {
                users: AtomicU32::new(0),
                value: [i; 8],
            };
            RemBox::new_in_structure(v, s, i).unwrap()
        })
        .collect()
}

#[test]
fn pinned_objects_stay_put_through_forced_evacuations_and_leave_once_unpinned() {
    let (rt, _h, s) = setup();
    let objs = boxes(&s, 4000);
    let pinned: Vec<usize> = (0..objs.len()).step_by(16).collect();
    let pins: Vec<Pin<'_>> = pinned.iter().map(|&i| pin(&objs[i])).collect();
    for _ in 0..4 {
        rt.evacuate_now();
        for (&i, p) in pinned.iter().zip(&pins) {
            assert!(objs[i].is_local(), "pinned object {i} was evicted");
            assert_eq!(p.get().value, [i as u64; 8]);
            let scope = Scope::new();
            assert!(
                std::ptr::eq(objs[i].deref(&scope), p.get()),
                "pinned object {i} moved"
            );
        }
    }
    let local_unpinned = (0..objs.len())
        .filter(|i| i % 16 != 0 && objs[*i].is_local())
        .count();
    assert!(
        local_unpinned < objs.len() / 4,
        "the others left: {local_unpinned} still local"
    );
    assert!(rt.stats().pinned_kept >= pinned.len() as u64);

    drop(pins);
    rt.evacuate_now();
    rt.evacuate_now();
    let still = pinned.iter().filter(|&&i| objs[i].is_local()).count();
    assert_eq!(still, 0, "unpinned objects may leave like any other");
    let mut scope = Scope::new();
    for (i, o) in objs.iter().enumerate() {
        assert_eq!(o.deref(&scope).value, [i as u64; 8]);
        scope.renew();
    }
}

/// Readers dereference pinned and unpinned objects while another thread forces evacuation
/// over and over: a pinned object is found at its pinned address every time (neither the
/// evacuator nor a reader's migration moved it), and every value reads right.
#[test]
fn readers_and_evacuation_never_move_a_pinned_object() {
    let (rt, _h, s) = setup();
    let objs = boxes(&s, 3000);
    let pins: Vec<(usize, Pin<'_>)> = (0..objs.len())
        .step_by(7)
        .map(|i| (i, pin(&objs[i])))
        .collect();
    let stop = AtomicBool::new(false);
    std::thread::scope(|t| {
        for r in 0..2 {
            let (objs, pins, stop) = (&objs, &pins, &stop);
            t.spawn(move || {
                let mut k = r;
                while !stop.load(Ordering::Acquire) {
                    let scope = Scope::new();
                    let (i, p) = &pins[k % pins.len()];
                    let got = objs[*i].deref(&scope);
                    assert!(std::ptr::eq(got, p.get()), "pinned object {i} moved");
                    assert_eq!(got.value[3], *i as u64);
                    let j = (k * 13) % objs.len();
                    assert_eq!(objs[j].deref(&scope).value[7], j as u64);
                    k += 1;
                }
            });
        }
        for _ in 0..200 {
            rt.evacuate_now();
        }
        stop.store(true, Ordering::Release);
    });
    // With readers running, a reader may meet every marked pinned object first and take
    // the mark off (the round then has nothing to ask about): one more evacuation with the
    // pins still held and no reader makes sure the rounds' own check was exercised.
    rt.evacuate_now();
    for (i, p) in &pins {
        assert!(objs[*i].is_local());
        assert_eq!(p.get().value, [*i as u64; 8]);
    }
    assert!(rt.stats().pinned_kept > 0);
}

/// A handler that panics in `pinned` keeps the object where it is (staying is always safe),
/// and `evacuate_now` reports the panic.
#[test]
fn a_panicking_pinned_counts_as_pinned() {
    let (rt, h, s) = setup();
    let objs = boxes(&s, 2000);
    h.panic.store(true, Ordering::Relaxed);
    let rt2 = rt.clone();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt2.evacuate_now()));
    assert!(r.is_err(), "evacuate_now reports the handler's panic");
    h.panic.store(false, Ordering::Relaxed);
    assert!(objs[0].is_local(), "the object asked about stayed");
    assert!(objs[1..].iter().any(|o| !o.is_local()), "the others left");
    assert!(rt.stats().evacuation_panics > 0);
    rt.evacuate_now();
    rt.evacuate_now();
    assert!(!objs[0].is_local());
    let scope = Scope::new();
    assert!(objs
        .iter()
        .enumerate()
        .all(|(i, o)| o.deref(&scope).value == [i as u64; 8]));
}

/// The mutator's migration path, made certain: the evacuator is held in `pinned` on object A,
/// past the round's wait, with B (same region, pinned elsewhere) still marked. A reader of B
/// then meets the mark with every round settled, where it would migrate an unpinned object;
/// it must use B in place instead.
#[test]
fn a_reader_meeting_a_marked_pinned_object_uses_it_in_place() {
    // A budget the background evacuator leaves alone: only `evacuate_now` runs rounds.
    let rt = Runtime::builder().local_memory(16 << 20).build().unwrap();
    let h = Arc::new(ByCount::default());
    let s = rt
        .register_structure(OBJECT_STORE_DEVICE, &[], Some(h.clone()))
        .unwrap();
    let objs = boxes(&s, 2); // A (key 0), then B, in one region
    let held = pin(&objs[1]);
    let (entered_tx, entered) = mpsc::channel();
    let (go, go_rx) = mpsc::channel();
    *h.gate.lock().unwrap() = Some((0, entered_tx, go_rx));
    std::thread::scope(|t| {
        let rt = &rt;
        let ev = t.spawn(move || rt.evacuate_now());
        entered
            .recv_timeout(Duration::from_secs(30))
            .expect("the round asked about A");
        let migrations = rt.stats().mutator_migrations;
        let (same, value) = {
            let scope = Scope::new();
            let b = objs[1].deref(&scope);
            (std::ptr::eq(b, held.get()), b.value)
        };
        let migrated = rt.stats().mutator_migrations - migrations;
        go.send(()).unwrap();
        ev.join().unwrap();
        assert!(same, "a reader moved a pinned object");
        assert_eq!((value, migrated), ([1; 8], 0));
    });
    assert!(objs[1].is_local());
    assert_eq!(held.get().value, [1; 8]);
    drop(held);
}

/// Pins that fill the whole budget: the evacuator cannot free anything, yet nothing spins for
/// ever: allocations get a typed error once the overdraft is used up, and once the pins are
/// gone the memory comes back.
#[test]
fn pins_filling_the_budget_end_in_a_typed_error_not_a_hang() {
    common::within(Duration::from_secs(120), || {
        let (rt, _h, s) = setup();
        let mut objs: Vec<RemBox<Pinnable>> = Vec::new();
        let mut pins: Vec<usize> = Vec::new();
        // 1 MiB of budget plus its overdraft hold far fewer than this many 80-byte objects.
        // Pinned 200 at a time, in one scope: a scope opened while memory is short waits a
        // little for the evacuator, which a scope per object would make slow.
        let err = loop {
            assert!(objs.len() < 100_000, "allocations never ran out");
            let mut err = None;
            for _ in 0..200 {
                let i = objs.len() as u64;
                let v = Pinnable {
                    users: AtomicU32::new(0),
                    value: [i; 8],
                };
                match RemBox::new_in_structure(v, &s, i) {
                    Ok(b) => objs.push(b),
                    Err(e) => {
                        err = Some(e);
                        break;
                    }
                }
            }
            let scope = Scope::new();
            for o in &objs[pins.len()..] {
                let p = o.deref(&scope);
                p.users.fetch_add(1, Ordering::AcqRel);
                pins.push(p as *const Pinnable as usize);
            }
            drop(scope);
            if let Some(e) = err {
                break e;
            }
        };
        assert_eq!(err, Error::LocalMemoryExhausted);
        assert!(objs.iter().all(|o| o.is_local()), "pinned objects stayed");
        for (i, at) in pins.iter().enumerate() {
            // SAFETY: each object is still pinned (the count below is not yet dropped).
            let p = unsafe { &*(*at as *const Pinnable) };
            assert_eq!(p.value, [i as u64; 8]);
            p.users.fetch_sub(1, Ordering::Release);
        }
        rt.evacuate_now();
        rt.evacuate_now();
        assert!(objs.iter().any(|o| !o.is_local()), "unpinned, they leave");
        let more = (0..1000u64).map(|i| {
            let v = Pinnable {
                users: AtomicU32::new(0),
                value: [i; 8],
            };
            RemBox::new_in_structure(v, &s, 1_000_000 + i)
        });
        assert!(more.collect::<Result<Vec<_>, _>>().is_ok(), "room again");
    });
}
