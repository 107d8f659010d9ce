//! A panic in user code (`Drop`, `encode`, `decode`, `heap_bytes`, an evacuation handler)
//! reaches the caller where there is one and leaves the runtime working: no thread spins on a
//! `BUSY` word or a half-built header, the evacuator keeps running, other objects are intact.

mod common;
use common::within;

use aifm_core::backend::{Backend, OBJECT_STORE_DEVICE};
use aifm_core::{EvacuationHandler, FarData, ObjectView, RemBox, Runtime, Scope, WriteBack};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Which of its methods a [`Bomb`] panics in.
const ON_DROP: u8 = 1;
const ON_ENCODE: u8 = 2;
const ON_DECODE: u8 = 4;
const ON_HEAP_BYTES: u8 = 8;

/// A value that panics in the methods its `fuse` names.
struct Bomb {
    fuse: u8,
    payload: [u64; 16],
}

impl Bomb {
    fn new(fuse: u8, v: u64) -> Self {
        Bomb {
            fuse,
            payload: [v; 16],
        }
    }
}

impl Drop for Bomb {
    fn drop(&mut self) {
        if self.fuse & ON_DROP != 0 && !std::thread::panicking() {
            panic!("Bomb::drop");
        }
    }
}

impl FarData for Bomb {
    fn encode(&self, out: &mut Vec<u8>) -> aifm_core::Result<()> {
        if self.fuse & ON_ENCODE != 0 {
            panic!("Bomb::encode");
        }
        out.push(self.fuse);
        out.extend(self.payload.iter().flat_map(|x| x.to_le_bytes()));
        Ok(())
    }

    fn decode(bytes: &[u8]) -> aifm_core::Result<Self> {
        if bytes[0] & ON_DECODE != 0 {
            panic!("Bomb::decode");
        }
        let mut payload = [0u64; 16];
        for (p, c) in payload.iter_mut().zip(bytes[1..].chunks(8)) {
            *p = u64::from_le_bytes(c.try_into().unwrap());
        }
        Ok(Bomb {
            fuse: bytes[0],
            payload,
        })
    }

    fn heap_bytes(&self) -> usize {
        if self.fuse & ON_HEAP_BYTES != 0 {
            panic!("Bomb::heap_bytes");
        }
        0
    }
}

fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = info.to_string();
            if !msg.contains("Bomb::") && !msg.contains("Panicky::") {
                default(info);
            }
        }));
    });
}

fn runtime() -> Runtime {
    quiet_panics();
    Runtime::builder().local_memory(4 << 20).build().unwrap()
}

/// Bystanders: plain objects that must survive every panic unharmed.
fn bystanders(rt: &Runtime) -> Vec<RemBox<[u64; 32]>> {
    (0..64u64).map(|i| RemBox::new_in([i; 32], rt)).collect()
}

fn check(bystanders: &[RemBox<[u64; 32]>]) {
    let s = Scope::new();
    for (i, b) in bystanders.iter().enumerate() {
        assert_eq!(b.deref(&s)[31], i as u64);
    }
}

#[test]
fn panicking_drop_leaves_the_runtime_working() {
    within(Duration::from_secs(30), || {
        let rt = runtime();
        let others = bystanders(&rt);
        let b = RemBox::new_in(Bomb::new(ON_DROP, 1), &rt);
        assert!(catch_unwind(AssertUnwindSafe(|| drop(b))).is_err());
        rt.evacuate_now();
        check(&others);
        // Evicting a local copy drops it (its far copy is the object now): a panic there is
        // reported to `evacuate_now`'s caller, and the object lives on in far memory.
        let b = RemBox::new_in(Bomb::new(ON_DROP, 2), &rt);
        assert!(catch_unwind(AssertUnwindSafe(|| rt.evacuate_now())).is_err());
        assert!(!b.is_local());
        rt.evacuate_now();
        check(&others);
        assert_eq!(b.deref(&Scope::new()).payload[3], 2, "fetched back");
        assert!(catch_unwind(AssertUnwindSafe(|| drop(b))).is_err());
        rt.evacuate_now();
        check(&others);
        drop(others);
        assert_eq!(rt.stats().local_bytes, 0, "the dead objects were freed");
    });
}

#[test]
fn panicking_decode_leaves_the_object_remote_and_usable() {
    within(Duration::from_secs(30), || {
        let rt = runtime();
        let others = bystanders(&rt);
        let b = RemBox::new_in(Bomb::new(ON_DECODE, 3), &rt);
        rt.evacuate_now();
        assert!(!b.is_local());
        let s = Scope::new();
        assert!(catch_unwind(AssertUnwindSafe(|| b.deref(&s).payload[0])).is_err());
        assert!(catch_unwind(AssertUnwindSafe(|| b.deref(&s).payload[0])).is_err());
        drop(s);
        assert!(!b.is_local(), "still remote, still ours");
        rt.evacuate_now();
        check(&others);
        drop(b); // frees the far copy without decoding it
        let b = RemBox::new_in(Bomb::new(ON_DECODE, 4), &rt);
        rt.evacuate_now();
        assert!(catch_unwind(AssertUnwindSafe(|| b.into_inner())).is_err());
        rt.evacuate_now();
        check(&others);
    });
}

#[test]
fn panicking_heap_bytes_at_construction_leaves_no_half_built_object() {
    within(Duration::from_secs(30), || {
        let rt = runtime();
        let others = bystanders(&rt);
        let before = rt.stats().local_bytes;
        let made = catch_unwind(AssertUnwindSafe(|| {
            RemBox::new_in(Bomb::new(ON_HEAP_BYTES, 5), &rt)
        }));
        assert!(made.is_err());
        assert_eq!(rt.stats().local_bytes, before);
        rt.evacuate_now();
        check(&others);
    });
}

#[test]
fn panics_in_the_evacuators_user_code_reach_the_caller_and_keep_the_object() {
    within(Duration::from_secs(30), || {
        let rt = runtime();
        let others = bystanders(&rt);
        for fuse in [ON_ENCODE, ON_HEAP_BYTES] {
            let mut b = RemBox::new_in(Bomb::new(0, 6), &rt);
            b.deref_mut(&Scope::new()).fuse = fuse; // armed once built
            assert!(
                catch_unwind(AssertUnwindSafe(|| rt.evacuate_now())).is_err(),
                "the panic reaches evacuate_now's caller"
            );
            assert!(b.is_local(), "the object stayed, intact");
            check(&others);
            let s = Scope::new();
            assert_eq!(b.deref(&s).payload[15], 6);
            b.deref_mut(&s).fuse = 0; // defuse
            drop(s);
            // Hot now (it was just used): a forced evacuation may first compact it.
            for _ in 0..3 {
                rt.evacuate_now();
            }
            assert!(!b.is_local(), "evacuation works again");
            assert_eq!(b.deref(&Scope::new()).payload[0], 6);
        }
        assert!(rt.stats().evacuation_panics >= 2);
    });
}

#[test]
fn the_background_evacuator_survives_a_panic() {
    within(Duration::from_secs(60), || {
        let rt = Runtime::builder().local_memory(2 << 20).build().unwrap();
        quiet_panics();
        let bomb = RemBox::new_in(Bomb::new(ON_ENCODE, 7), &rt);
        // Fill local memory several times over: the background evacuator must keep making
        // room, past the object it cannot encode.
        let many: Vec<RemBox<[u64; 64]>> = (0..40_000u64)
            .map(|i| RemBox::new_in([i; 64], &rt))
            .collect();
        let st = rt.stats();
        assert!(st.evacuation_panics >= 1, "{st}");
        assert!(st.write_backs > 20_000, "{st}");
        assert!(bomb.is_local());
        let mut s = Scope::new();
        for (i, m) in many.iter().enumerate() {
            assert_eq!(m.deref(&s)[63], i as u64);
            s.renew();
        }
    });
}

/// A handler that panics while the evacuator holds the round's objects.
struct Panicky(AtomicBool);

impl EvacuationHandler for Panicky {
    fn write_back(
        &self,
        _obj: &ObjectView<'_>,
        _far: &dyn Backend,
    ) -> aifm_core::Result<WriteBack> {
        if self.0.load(Ordering::Relaxed) {
            panic!("Panicky::write_back");
        }
        Ok(WriteBack::Default)
    }
}

#[test]
fn panicking_handler_reaches_the_caller_and_keeps_the_objects() {
    within(Duration::from_secs(30), || {
        let rt = runtime();
        let others = bystanders(&rt);
        let handler = Arc::new(Panicky(AtomicBool::new(true)));
        let s = rt
            .register_structure(OBJECT_STORE_DEVICE, &[], Some(handler.clone()))
            .unwrap();
        let objs: Vec<RemBox<[u64; 8]>> = (0..100u64)
            .map(|i| RemBox::new_in_structure([i; 8], &s, i).unwrap())
            .collect();
        assert!(catch_unwind(AssertUnwindSafe(|| rt.evacuate_now())).is_err());
        assert!(objs.iter().all(|o| o.is_local()));
        check(&others);
        handler.0.store(false, Ordering::Relaxed);
        rt.evacuate_now();
        assert!(objs.iter().all(|o| !o.is_local()));
        let sc = Scope::new();
        assert!(objs
            .iter()
            .enumerate()
            .all(|(i, o)| o.deref(&sc)[7] == i as u64));
    });
}
