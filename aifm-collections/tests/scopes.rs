//! Iterators never hold the evacuator back: a zipped scan feeding a `push`, under a budget far
//! smaller than the data, lets evacuation rounds complete while both iterators are alive.

use aifm_collections::RemVec;
use aifm_core::Runtime;

#[test]
fn zipped_scans_feeding_a_push_let_the_evacuator_run() {
    let rt = Runtime::builder().local_memory(2 << 20).build().unwrap();
    let a: RemVec<u64> = {
        let mut v = RemVec::new_in(&rt);
        v.extend(0..(1u64 << 20));
        v
    };
    let b: RemVec<u64> = {
        let mut v = RemVec::new_in(&rt);
        v.extend((0..(1u64 << 20)).map(|x| x * 2));
        v
    };
    rt.evacuate_now();
    let mut out: RemVec<u64> = RemVec::new_in(&rt);
    let mut pairs = a.iter().zip(b.iter());
    let rounds_before = rt.stats().evacuation_rounds;
    for (x, y) in pairs.by_ref().take(1 << 19) {
        out.push(x + y);
    }
    // Both iterators are still alive here, half way through.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while rt.stats().evacuation_rounds == rounds_before && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(
        rt.stats().evacuation_rounds > rounds_before,
        "no round completed mid-scan"
    );
    for (x, y) in pairs {
        out.push(x + y);
    }
    assert_eq!(out.len(), 1 << 20);
    assert_eq!(out.get_cloned(12345), Some(3 * 12345));
    assert!(rt.stats().over_budget_episodes < 1000, "{}", rt.stats());
}
