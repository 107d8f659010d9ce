//! `SlotArena`: a model test under a tiny budget with forced evacuation, dereferences racing
//! the evacuator, panics in `Drop` of arena objects, and no leaked or doubly dropped value.

mod common;
use common::within;

use aifm_core::arena::SlotArena;
use aifm_core::backend::OBJECT_STORE_DEVICE;
use aifm_core::{FarData, Runtime, Scope, Structure};
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn runtime(bytes: usize) -> (Runtime, Structure) {
    let rt = Runtime::builder().local_memory(bytes).build().unwrap();
    let s = rt
        .register_structure(OBJECT_STORE_DEVICE, &[], None)
        .unwrap();
    (rt, s)
}

/// A small deterministic generator (xorshift), so a failure replays.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A value that counts how many of it exist (created by `new` or `decode`, ended by `Drop`)
/// in its own counter, and panics in `Drop` when told to.
struct Counted {
    live: &'static AtomicI64,
    boom: bool,
    payload: [u64; 63],
}

impl Counted {
    fn new(live: &'static AtomicI64, v: u64, boom: bool) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        Counted {
            live,
            boom,
            payload: [v; 63],
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let before = self.live.fetch_sub(1, Ordering::SeqCst);
        assert!(before > 0, "a value dropped twice");
        if self.boom && !std::thread::panicking() {
            panic!("Counted::drop");
        }
    }
}

/// The counters `decode` attaches values to (it has no other way to find theirs).
static DECODE_TARGET: [AtomicI64; 4] = [const { AtomicI64::new(0) }; 4];

impl FarData for Counted {
    fn encode(&self, out: &mut Vec<u8>) -> aifm_core::Result<()> {
        let which = DECODE_TARGET
            .iter()
            .position(|c| std::ptr::eq(c, self.live))
            .expect("a known counter") as u8;
        out.push(which);
        out.push(self.boom as u8);
        out.extend(self.payload.iter().flat_map(|x| x.to_le_bytes()));
        Ok(())
    }

    fn decode(bytes: &[u8]) -> aifm_core::Result<Self> {
        let live = &DECODE_TARGET[bytes[0] as usize];
        let mut v = Counted::new(live, 0, bytes[1] != 0);
        for (p, c) in v.payload.iter_mut().zip(bytes[2..].chunks(8)) {
            *p = u64::from_le_bytes(c.try_into().unwrap());
        }
        Ok(v)
    }
}

/// Random puts, inserts, reads, writes, takes, removes and clears against a `HashMap`, in a
/// 1 MiB budget holding about 4 MiB of values, with forced evacuations: every read equals
/// the model, values really leave and come back, and at the end no value is leaked or
/// dropped twice and the heap holds nothing.
#[test]
fn model_under_a_tiny_budget_with_forced_evacuation() {
    within(Duration::from_secs(120), || {
        let live = &DECODE_TARGET[0];
        let (rt, s) = runtime(1 << 20);
        let mut a: SlotArena<Counted> = SlotArena::new(&s);
        let mut model: HashMap<usize, u64> = HashMap::new();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut evicted_and_back = 0;
        for step in 0..40_000u64 {
            let i = rng.below(8_000) as usize;
            match rng.below(100) {
                0..=39 => {
                    a.put(i, Counted::new(live, step, false)).unwrap();
                    model.insert(i, step);
                }
                40..=44 => {
                    let j = a.insert(Counted::new(live, step, false)).unwrap();
                    assert!(
                        model.insert(j, step).is_none(),
                        "insert reused a full index"
                    );
                }
                45..=74 => {
                    let scope = Scope::new();
                    let was_local = a.is_local(i);
                    let got = a.get(i, &scope).map(|v| v.payload[62]);
                    assert_eq!(got, model.get(&i).copied(), "read of {i} at {step}");
                    if got.is_some() && !was_local {
                        evicted_and_back += 1;
                    }
                }
                75..=84 => {
                    let scope = Scope::new();
                    if let Some(v) = a.get_mut(i, &scope) {
                        v.payload[62] += 1;
                        *model.get_mut(&i).unwrap() += 1;
                    } else {
                        assert!(!model.contains_key(&i));
                    }
                }
                85..=89 => {
                    let got = a.take(i).unwrap().map(|v| v.payload[62]);
                    assert_eq!(got, model.remove(&i));
                }
                90..=97 => assert_eq!(a.remove(i), model.remove(&i).is_some()),
                98 => rt.evacuate_now(),
                _ if step % 97 == 0 => {
                    a.clear();
                    model.clear();
                }
                _ => {}
            }
            assert_eq!(a.len(), model.len());
            assert_eq!(live.load(Ordering::SeqCst) as usize, locals(&a));
        }
        let st = rt.stats();
        assert!(st.write_backs > 1000, "values left local memory: {st:?}");
        assert!(st.fetches > 1000, "values came back: {st:?}");
        assert!(
            evicted_and_back > 100,
            "{evicted_and_back} reads of evicted values"
        );
        // Every remaining value reads back right, wherever it is.
        let mut scope = Scope::new();
        for (i, v) in &model {
            assert_eq!(a.get(*i, &scope).unwrap().payload[62], *v);
            scope.renew();
        }
        drop(scope);
        drop(a);
        assert_eq!(live.load(Ordering::SeqCst), 0, "values leaked");
        assert_eq!(rt.stats().local_bytes, 0, "the heap still holds objects");
    });
}

/// How many values of `a` are local (each local value is one live `Counted`).
fn locals(a: &SlotArena<Counted>) -> usize {
    (0..a.high()).filter(|i| a.is_local(*i)).count()
}

/// Four readers dereference random indexes (each value names its index) while two threads
/// force evacuation rounds and the budget is a quarter of the data: no reader ever sees
/// another index's value or a torn one.
#[test]
fn concurrent_dereferences_race_the_evacuator() {
    within(Duration::from_secs(120), || {
        let rt = Runtime::builder()
            .local_memory(2 << 20)
            .overdraft(2 << 20)
            .build()
            .unwrap();
        let s = rt
            .register_structure(OBJECT_STORE_DEVICE, &[], None)
            .unwrap();
        let mut a: SlotArena<[u64; 64]> = SlotArena::new(&s);
        const N: usize = 16_384; // 8 MiB of values (plus headers)
        for i in 0..N {
            a.put(i, [i as u64; 64]).unwrap();
        }
        let a = Arc::new(a);
        let done = Arc::new(AtomicU64::new(0));
        let mut threads = Vec::new();
        for t in 0..4u64 {
            let a = a.clone();
            let done = done.clone();
            threads.push(std::thread::spawn(move || {
                let mut rng = Rng(t * 7919 + 1);
                let mut scope = Scope::new();
                for k in 0..30_000 {
                    let i = rng.below(N as u64) as usize;
                    let v = a.get(i, &scope).unwrap();
                    assert!(
                        v.iter().all(|x| *x == i as u64),
                        "index {i} read {:?}",
                        v[0]
                    );
                    if k % 4 == 0 {
                        scope.renew();
                    }
                }
                done.fetch_add(1, Ordering::SeqCst);
            }));
        }
        for _ in 0..2 {
            let rt = rt.clone();
            let done = done.clone();
            threads.push(std::thread::spawn(move || {
                while done.load(Ordering::SeqCst) < 4 {
                    rt.evacuate_now();
                }
            }));
        }
        for t in threads {
            t.join().unwrap();
        }
        let st = rt.stats();
        assert!(st.write_backs > 0 && st.fetches > 0, "{st:?}");
    });
}

/// A panic in `Drop` of an arena value reaches `remove`, `put` over it, `clear` and the
/// arena's own drop, frees the object anyway, and leaves the runtime working: the evacuator
/// does not spin, and the other values are intact.
#[test]
fn panics_in_drop_of_arena_values_are_contained() {
    within(Duration::from_secs(60), || {
        let live = &DECODE_TARGET[1];
        let (rt, s) = runtime(2 << 20);
        let mut a: SlotArena<Counted> = SlotArena::new(&s);
        for i in 0..64 {
            a.put(i, Counted::new(live, i as u64, i == 0 || i == 8))
                .unwrap();
        }

        let r = catch_unwind(AssertUnwindSafe(|| a.remove(0)));
        assert!(r.is_err(), "the panic of Drop reached remove");
        assert!(!a.contains(0) && a.len() == 63);

        let r = catch_unwind(AssertUnwindSafe(|| a.put(8, Counted::new(live, 1, false))));
        assert!(r.is_err(), "the panic of the old value's Drop reached put");
        assert!(!a.contains(8), "put did not place its value past the panic");
        assert_eq!(live.load(Ordering::SeqCst), 62);

        rt.evacuate_now(); // does not hang on a BUSY word
        assert!(!a.is_local(5));
        let scope = Scope::new();
        for i in (1..64).filter(|i| *i != 8) {
            assert_eq!(a.get(i, &scope).unwrap().payload[0], i as u64);
        }
        drop(scope);

        a.put(16, Counted::new(live, 16, true)).unwrap();
        a.put(24, Counted::new(live, 24, true)).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| a.clear()));
        assert!(r.is_err(), "the first panic reached clear");
        assert!(a.is_empty());
        assert_eq!(live.load(Ordering::SeqCst), 0, "clear freed every value");

        a.put(3, Counted::new(live, 3, true)).unwrap();
        let r = catch_unwind(AssertUnwindSafe(move || drop(a)));
        assert!(r.is_err(), "the panic reached the arena's drop");
        assert_eq!(live.load(Ordering::SeqCst), 0);
        assert_eq!(rt.stats().local_bytes, 0);
        rt.evacuate_now();
    });
}

/// Values dropped with their arena while far: nothing leaks, nothing is dropped twice; a
/// second arena on the same structure reuses the segments and its indexes start empty.
#[test]
fn dropping_an_arena_frees_local_and_far_values_once() {
    within(Duration::from_secs(60), || {
        let live = &DECODE_TARGET[2];
        let (rt, s) = runtime(1 << 20);
        let mut a: SlotArena<Counted> = SlotArena::new(&s);
        for i in 0..4_000 {
            a.put(i, Counted::new(live, i as u64, false)).unwrap();
        }
        rt.evacuate_now();
        assert!(locals(&a) < 4_000, "some values are far");
        assert_eq!(live.load(Ordering::SeqCst) as usize, locals(&a));
        drop(a);
        assert_eq!(live.load(Ordering::SeqCst), 0);
        assert_eq!(rt.stats().local_bytes, 0);
        assert_eq!(
            rt.stats().far_bytes,
            0,
            "far copies are forgotten with the arena"
        );

        let mut b: SlotArena<Counted> = SlotArena::new(&s);
        assert!(!b.contains(5));
        b.put(5, Counted::new(live, 5, false)).unwrap();
        assert_eq!(b.get(5, &Scope::new()).unwrap().payload[0], 5);
        drop(b);
        assert_eq!(live.load(Ordering::SeqCst), 0);
    });
}

/// The structure's far store outlives its handle while an arena still holds objects: the
/// arena's far values stay readable after the `Structure` is dropped.
#[test]
fn an_arena_keeps_its_structure_alive() {
    let (rt, s) = runtime(1 << 20);
    let mut a: SlotArena<[u64; 64]> = SlotArena::new(&s);
    for i in 0..100 {
        a.put(i, [i as u64; 64]).unwrap();
    }
    let id = s.id();
    drop(s);
    rt.evacuate_now();
    assert!(!a.is_local(7));
    // The id is still taken: a new structure gets another one.
    let other = rt
        .register_structure(OBJECT_STORE_DEVICE, &[], None)
        .unwrap();
    assert_ne!(other.id(), id);
    let scope = Scope::new();
    assert_eq!(a.get(7, &scope).unwrap()[0], 7);
}
