//! Defects found in `RemVec` (each test failed on the code it was
//! written against): range bounds that wrapped instead of panicking, and iterators that did
//! not say how long they are or could not run backwards.

use aifm_collections::RemVec;
use aifm_core::Scope;
use std::ops::Bound::{Excluded, Included};
use std::panic::{catch_unwind, AssertUnwindSafe};

fn three() -> RemVec<u32> {
    [1, 2, 3].into_iter().collect()
}

/// Whether `f` panics, like std's `Vec` does on the same call.
fn panics(f: impl FnOnce()) -> bool {
    catch_unwind(AssertUnwindSafe(f)).is_err()
}

#[test]
fn drain_start_bound_past_usize_max_panics_like_std() {
    assert!(panics(|| drop(
        vec![1, 2, 3].drain((Excluded(usize::MAX), Included(0)))
    )));
    let mut v = three();
    assert!(panics(|| drop(
        v.drain((Excluded(usize::MAX), Included(0)))
    )));
}

#[test]
fn drain_end_bound_past_usize_max_panics_like_std() {
    assert!(panics(|| drop(
        vec![1, 2, 3].drain((Included(0), Included(usize::MAX)))
    )));
    let mut v = three();
    assert!(panics(|| drop(
        v.drain((Included(0), Included(usize::MAX)))
    )));
    let v = three();
    assert!(panics(|| drop(
        v.copy_range((Included(0), Included(usize::MAX)))
    )));
}

#[test]
fn drain_inclusive_ranges_drain_what_std_drains() {
    let mut v = three();
    assert_eq!(v.drain(0..=1).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(v, vec![3]);
    let mut v = three();
    assert_eq!(
        v.drain((Excluded(0), Included(2))).collect::<Vec<_>>(),
        [2, 3]
    );
}

#[test]
fn iter_is_exact_size_and_double_ended() {
    let v: RemVec<u64> = (0..3000).collect();
    let mut it = v.iter();
    assert_eq!(it.size_hint(), (3000, Some(3000)));
    assert_eq!(it.next_back(), Some(2999));
    assert_eq!(it.next(), Some(0));
    assert_eq!(it.len(), 2998);
    assert_eq!(it.size_hint(), (2998, Some(2998)));
    let rest: Vec<u64> = it.rev().collect();
    assert_eq!(rest, (1..2999).rev().collect::<Vec<_>>());
    // Meeting in the middle of one chunk.
    let mut it = v.iter();
    for i in 0..1500 {
        assert_eq!(it.next(), Some(i));
        assert_eq!(it.next_back(), Some(2999 - i));
    }
    assert_eq!((it.next(), it.next_back(), it.len()), (None, None, 0));
    assert_eq!(v.iter().rfold(0, |a, x| a * 3 % 1_000_003 + x), {
        (0..3000u64).rev().fold(0, |a, x| a * 3 % 1_000_003 + x)
    });
}

#[test]
fn iter_in_yields_references_and_is_sized_both_ways() {
    let v: RemVec<String> = (0..1000).map(|i| i.to_string()).collect();
    let scope = Scope::new();
    let mut it = v.iter_in(&scope);
    assert_eq!(it.len(), 1000);
    let last: &String = it.next_back().unwrap();
    assert_eq!(last, "999");
    assert_eq!(it.next().map(String::as_str), Some("0"));
    assert_eq!(it.size_hint(), (998, Some(998)));
    assert_eq!(it.next_back().map(String::as_str), Some("998"));
}

#[test]
fn into_iter_and_drain_are_double_ended() {
    let v: RemVec<u64> = (0..2000).collect();
    let mut it = v.into_iter();
    assert_eq!(it.next_back(), Some(1999));
    assert_eq!(it.next(), Some(0));
    assert_eq!(it.len(), 1998);
    assert!(it.rev().eq((1..1999).rev()));
    let mut v: RemVec<u64> = (0..2000).collect();
    let mut d = v.drain(100..1900);
    assert_eq!(d.len(), 1800);
    assert_eq!(d.next_back(), Some(1899));
    assert_eq!(d.next(), Some(100));
    drop(d);
    assert_eq!(v.len(), 200);
}

/// Plain-data chunks live inline in their heap objects (no owned buffer per chunk); other
/// element types keep a boxed `Vec` chunk, and both survive evacuation and edits.
#[test]
fn plain_data_chunks_are_inline() {
    let rt = aifm_core::Runtime::builder()
        .local_memory(1 << 20)
        .build()
        .unwrap();
    let mut v = RemVec::new_in(&rt);
    v.extend(0..(1u64 << 18));
    let s = rt.stats();
    assert_eq!(s.local_owned_bytes, 0, "{s}");
    rt.evacuate_now();
    v.insert(3, 99);
    assert_eq!(v.remove(3), 99);
    v.swap(0, (1 << 18) - 1);
    assert_eq!(v.pop(), Some(0));
    v.truncate(1000);
    assert_eq!(v.iter().len(), 1000);
    assert_eq!(v.get_cloned(0), Some((1 << 18) - 1));
    assert!(v.iter().skip(1).eq(1..1000));

    let w: RemVec<String> = RemVec::from_iter_in((0..100).map(|i| i.to_string()), &rt);
    assert!(rt.stats().local_owned_bytes > 0);
    assert_eq!(w.get_cloned(42).as_deref(), Some("42"));
}

/// Live `Counted` values: clones and decodes add one, drops take one away.
static LIVE: std::sync::atomic::AtomicIsize = std::sync::atomic::AtomicIsize::new(0);

struct Counted(u64);

impl Counted {
    fn new(x: u64) -> Self {
        LIVE.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Counted(x)
    }
}

impl Clone for Counted {
    fn clone(&self) -> Self {
        Counted::new(self.0)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl aifm_core::FarData for Counted {
    fn encode(&self, out: &mut Vec<u8>) -> aifm_core::Result<()> {
        self.0.encode(out)
    }
    fn decode(bytes: &[u8]) -> aifm_core::Result<Self> {
        u64::decode(bytes).map(Counted::new)
    }
}

/// The iterators' buffers hand each clone out exactly once and drop what was not taken:
/// partly consumed, from both ends, after meeting, and through `fold`.
#[test]
fn iterator_buffers_neither_leak_nor_double_drop() {
    let live = || LIVE.load(std::sync::atomic::Ordering::SeqCst);
    let v: RemVec<Counted> = (0..5000).map(Counted::new).collect();
    let base = live();
    assert_eq!(base, 5000);
    {
        let mut it = v.iter();
        assert_eq!(it.next().map(|c| c.0), Some(0));
        assert_eq!(it.next_back().map(|c| c.0), Some(4999));
        assert!(live() > base);
    }
    assert_eq!(live(), base);
    {
        let mut it = v.iter();
        let taken: Vec<Counted> = it.by_ref().take(2500).collect();
        assert_eq!(it.next_back().map(|c| c.0), Some(4999));
        assert_eq!(it.map(|c| c.0).sum::<u64>(), (2500..4999).sum::<u64>());
        assert_eq!(taken.len(), 2500);
    }
    assert_eq!(live(), base);
    let small: RemVec<Counted> = (0..10).map(Counted::new).collect();
    {
        let mut it = small.iter();
        // One chunk: the ends meet in it.
        assert_eq!(it.next_back().map(|c| c.0), Some(9));
        assert!(it.by_ref().map(|c| c.0).eq(0..9));
        assert!(it.next().is_none() && it.next_back().is_none());
    }
    assert_eq!(v.iter().rfold(0, |a, c| a + c.0), (0..5000).sum::<u64>());
    drop(small);
    assert_eq!(live(), base);
    drop(v);
    assert_eq!(live(), 0);
}
