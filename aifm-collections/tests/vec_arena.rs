//! `RemVec` on its own arena of pointer words: a vector that changes representation when it
//! is emptied and refilled, chunks that leave and come back, and the local cost per chunk.

use aifm_collections::RemVec;
use aifm_core::{Runtime, Scope};

fn runtime(bytes: usize) -> Runtime {
    Runtime::builder().local_memory(bytes).build().unwrap()
}

/// `clone_from` takes the source's chunk length; an emptied vector whose chunks were boxed
/// (64 KiB of `u64`, past a page) must take inline chunks (one page) from then on.
#[test]
fn clone_from_switches_the_chunk_representation() {
    let rt = runtime(8 << 20);
    let mut boxed = RemVec::<u64>::with_chunk_bytes_in(64 << 10, &rt);
    boxed.extend(0..20_000);
    let inline = RemVec::from_iter_in(0..5_000u64, &rt);
    boxed.clone_from(&inline);
    assert_eq!(boxed, inline);
    let mut back = RemVec::<u64>::new_in(&rt);
    back.extend(0..10u64);
    back.clone_from(&RemVec::from_iter_in(std::iter::repeat_n(7u64, 9_000), &rt));
    assert_eq!(back.len(), 9_000);
}

/// Chunks leave under a small budget and come back on `get`, `get_mut`, edits and
/// iteration, with every value right.
#[test]
fn chunks_leave_and_come_back_through_every_path() {
    let rt = runtime(2 << 20);
    let mut v = RemVec::from_iter_in(0..1_000_000u64, &rt); // 8 MiB
    rt.evacuate_now();
    assert!(v.local_chunks().0 < v.local_chunks().1 / 2);
    let mut scope = Scope::new();
    for i in (0..1_000_000).step_by(997) {
        assert_eq!(v.get(i, &scope), Some(&(i as u64)));
        scope.renew();
    }
    drop(scope);
    for i in (0..1_000_000).step_by(4099) {
        *v.get_mut(i, &Scope::new()).unwrap() += 1;
    }
    rt.evacuate_now();
    v.insert(3, 42);
    assert_eq!(v.remove(3), 42);
    v.swap(0, 999_999);
    v.swap(0, 999_999);
    let tail = v.split_off(600_000);
    assert_eq!(tail.len(), 400_000);
    let sum: u64 = v.iter().chain(tail.iter()).sum();
    let bumped = (0..1_000_000u64).step_by(4099).count() as u64;
    assert_eq!(sum, 999_999 * 1_000_000 / 2 + bumped);
    assert!(rt.stats().write_backs > 0 && rt.stats().fetches > 0);
}
