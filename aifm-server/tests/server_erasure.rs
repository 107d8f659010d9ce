//! Three real `aifm-server` processes with the object store erasure-coded 2+1: a runtime with
//! a tiny local budget pushes objects through far memory, one server is SIGKILLed half way,
//! and every object still reads back whole; then the collections (replicated, whole or
//! striped) against their std twins beside erasure-coded objects, across a kill.

mod common;

use aifm_collections::testing::{Fill, Twins, XorShift};
use aifm_core::backend::replicated::ReplicatedBackend;
use aifm_core::backend::{Backend, OBJECT_STORE};
use aifm_core::{RemBox, Scope};
use common::ServerProc;
use std::collections::HashMap;
use std::sync::Arc;

fn value(i: u64) -> [u64; 512] {
    common::pattern(i.wrapping_mul(0x9e37_79b9))
}

fn erasure_coded(servers: &[ServerProc]) -> Arc<ReplicatedBackend> {
    Arc::new(common::replicated(servers).with_erasure(2, 1).unwrap())
}

/// Checks every box against `value`, with the first word of those in `changed` replaced.
fn check(boxes: &[RemBox<[u64; 512]>], changed: &HashMap<usize, u64>, when: &str) {
    let mut scope = Scope::new();
    for (i, b) in boxes.iter().enumerate() {
        let mut want = value(i as u64);
        if let Some(&x) = changed.get(&i) {
            want[0] = x;
        }
        assert_eq!(*b.deref(&scope), want, "object {i} {when}");
        scope.renew();
    }
}

#[test]
fn objects_survive_a_kill_in_the_middle_of_evacuations() {
    let mut servers = common::start_servers(3);
    let far = erasure_coded(&servers);
    let rt = common::small_runtime(far.clone());
    // 8 MiB of 4 KiB objects through 2 MiB of local memory, in two halves.
    let n = 2048u64;
    let mut boxes: Vec<RemBox<[u64; 512]>> =
        (0..n / 2).map(|i| RemBox::new_in(value(i), &rt)).collect();
    rt.evacuate_now();
    let before = rt.stats().write_backs;
    assert!(before > 0);
    // Each server holds fragments of about a half of an object per object pushed out.
    let stored: Vec<u64> = far.servers().iter().map(|s| s.stored_bytes()).collect();
    assert!(stored.iter().all(|&b| b > 0), "{stored:?}");

    servers[1].kill(); // SIGKILL, with half of the objects yet to come

    boxes.extend((n / 2..n).map(|i| RemBox::new_in(value(i), &rt)));
    rt.evacuate_now();
    assert!(rt.stats().write_backs > before);
    check(&boxes, &HashMap::new(), "after the kill");
    // Rewrites after the death land on the two survivors (a data and a parity fragment, or
    // two data fragments) and come back too.
    let mut changed = HashMap::new();
    let mut scope = Scope::new();
    for (i, b) in boxes.iter_mut().enumerate().step_by(3) {
        b.deref_mut(&scope)[0] = u64::MAX - i as u64;
        changed.insert(i, u64::MAX - i as u64);
        scope.renew();
    }
    drop(scope);
    rt.evacuate_now();
    check(&boxes, &changed, "after rewriting");
    let s = far.stats();
    assert_eq!((s.live, s.dead), (2, 1));
    assert!(s.degraded_reads > 0);
    assert_eq!(rt.stats().backend_errors, 0, "{:?}", rt.stats());
    // A second death is one more than the code survives: a typed error, no panic.
    let some_key = far.keys(OBJECT_STORE).unwrap().pop().unwrap();
    servers[2].kill();
    let e = far.read(OBJECT_STORE, &some_key).unwrap_err();
    assert!(e.is_disconnected(), "{e}");
}

#[test]
fn the_runtime_builder_connects_erasure_coded() {
    let servers = common::start_servers(3);
    let rt = common::servers_builder(&servers)
        .erasure(2, 1)
        .build()
        .unwrap();
    assert!(
        rt.backend_name().starts_with("replicated(x2, erasure 2+1:"),
        "{}",
        rt.backend_name()
    );
    let boxes: Vec<RemBox<[u64; 512]>> = (0..1024).map(|i| RemBox::new_in(value(i), &rt)).collect();
    rt.evacuate_now();
    assert!(rt.stats().write_backs > 0);
    check(&boxes, &HashMap::new(), "over the builder's backend");
}

#[test]
fn collections_and_coded_objects_match_their_twins_across_a_kill() {
    const OPS: usize = 20_000;
    let mut servers = common::start_servers(3);
    let far = erasure_coded(&servers);
    let rt = common::small_runtime(far.clone());
    let mut twins = Twins::new_in(
        &rt,
        Fill {
            items: 200_000,
            keys: 20_000,
            key_space: 30_000,
        },
    );
    let mut boxes: Vec<RemBox<[u64; 512]>> = Vec::new();
    let mut box_model: Vec<u64> = Vec::new();
    for i in 0..512u64 {
        boxes.push(RemBox::new_in([i; 512], &rt));
        box_model.push(i);
    }
    rt.evacuate_now();
    assert!(rt.stats().write_backs > 0);
    let mut ops = XorShift::new(0xec21);
    for n in 0..OPS {
        if n == OPS / 2 {
            servers[2].kill(); // SIGKILL, half way through
        }
        let (x, arg) = (ops.next_u64(), ops.next_u64());
        // Ten parts collection operations, one part box reads, one part box writes.
        match x % 12 {
            10 => {
                let i = (arg % boxes.len() as u64) as usize;
                let scope = Scope::new();
                assert!(
                    boxes[i].deref(&scope).iter().all(|&w| w == box_model[i]),
                    "box {i} at op {n}"
                );
            }
            11 => {
                let i = (arg % boxes.len() as u64) as usize;
                let scope = Scope::new();
                *boxes[i].deref_mut(&scope) = [arg; 512];
                box_model[i] = arg;
            }
            _ => twins.apply(x / 12, arg),
        }
        if n % 4_000 == 0 {
            rt.evacuate_now(); // keep far memory in the game on both sides of the kill
        }
    }
    twins.check();
    let mut scope = Scope::new();
    for (i, b) in boxes.iter().enumerate() {
        assert!(
            b.deref(&scope).iter().all(|&w| w == box_model[i]),
            "box {i} at the end"
        );
        scope.renew();
    }
    drop(scope);
    let s = far.stats();
    assert_eq!((s.live, s.dead), (2, 1), "{}", rt.stats());
}
