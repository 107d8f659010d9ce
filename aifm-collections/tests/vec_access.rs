//! `RemVec`'s read fast paths against a slice: `get` (its constant index split for inline
//! chunks, its one-test word check) and `iter_in` (slice cursors that take each chunk's length
//! from the vector's), for inline and boxed chunks, full and partial last chunks, local and
//! far chunks, and vectors edited after they were read.

use aifm_collections::RemVec;
use aifm_core::{FarData, Runtime, Scope};
use quickcheck::{QuickCheck, TestResult};

fn runtime() -> Runtime {
    Runtime::builder().local_memory(4 << 20).build().unwrap()
}

/// Every way `RemVec` stores chunks: inline `u64` pages (512 a chunk), boxed `u64` chunks
/// (64 KiB, past a page), inline `u16` pages (2048 a chunk), and boxed `String`s.
fn shapes(rt: &Runtime, n: u64) -> (RemVec<u64>, RemVec<u64>, RemVec<u16>, RemVec<String>) {
    let inline = RemVec::from_iter_in(0..n, rt);
    let mut boxed = RemVec::with_chunk_bytes_in(64 << 10, rt);
    boxed.extend(0..n);
    let small = RemVec::from_iter_in((0..n).map(|i| i as u16), rt);
    let strings = RemVec::from_iter_in((0..n).map(|i| i.to_string()), rt);
    (inline, boxed, small, strings)
}

/// `get` of every index (and the two past the end) equals the slice's.
fn gets_match<T: FarData + PartialEq + std::fmt::Debug>(v: &RemVec<T>, m: &[T]) {
    let mut scope = Scope::new();
    for i in 0..m.len() + 2 {
        assert_eq!(v.get(i, &scope), m.get(i), "get({i}) of {}", m.len());
        if i % 256 == 0 {
            scope.renew();
        }
    }
}

/// One step of an iterator: `next`, `next_back`, `nth(k)` or `nth_back(k)`.
#[derive(Debug, Clone, Copy)]
enum Step {
    Next,
    Back,
    Nth(usize),
    NthBack(usize),
}

/// `iter_in` driven by `steps` (cycled) yields what a slice iterator does, with the same
/// exact size after every step, until both are done.
fn iter_in_matches<T: FarData + PartialEq + std::fmt::Debug>(
    v: &RemVec<T>,
    m: &[T],
    steps: &[Step],
) {
    let scope = Scope::new();
    let mut got = v.iter_in(&scope);
    let mut want = m.iter();
    assert_eq!(got.len(), want.len());
    for (k, &step) in steps.iter().cycle().take(m.len() + 3).enumerate() {
        let (g, w) = match step {
            Step::Next => (got.next(), want.next()),
            Step::Back => (got.next_back(), want.next_back()),
            Step::Nth(n) => (got.nth(n), want.nth(n)),
            Step::NthBack(n) => (got.nth_back(n), want.nth_back(n)),
        };
        assert_eq!(g, w, "step {k} ({step:?}) of {}", m.len());
        assert_eq!(
            got.size_hint(),
            want.size_hint(),
            "after step {k} of {}",
            m.len()
        );
    }
}

#[test]
fn get_and_iter_in_match_a_slice_at_every_length_near_chunk_edges() {
    let rt = runtime();
    for n in [0u64, 1, 511, 512, 513, 1024, 2047, 2048, 2049, 8192 + 7] {
        let (inline, boxed, small, strings) = shapes(&rt, n);
        let m: Vec<u64> = (0..n).collect();
        let m16: Vec<u16> = (0..n).map(|i| i as u16).collect();
        let ms: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        let walks: [&[Step]; 4] = [
            &[Step::Next],
            &[Step::Back],
            &[Step::Next, Step::Back, Step::Back],
            &[
                Step::Nth(600),
                Step::NthBack(1),
                Step::Next,
                Step::NthBack(2047),
            ],
        ];
        for steps in walks {
            iter_in_matches(&inline, &m, steps);
            iter_in_matches(&boxed, &m, steps);
            iter_in_matches(&small, &m16, steps);
            iter_in_matches(&strings, &ms, steps);
        }
        gets_match(&inline, &m);
        gets_match(&boxed, &m);
        gets_match(&small, &m16);
        gets_match(&strings, &ms);
    }
}

/// With most chunks far, `get` and `iter_in` fetch them through their slow paths and still
/// see every element once; `skip` passes whole chunks without dereferencing them (before
/// `IterIn::nth` did so, it pinned every chunk it passed in the one scope, and a walk over
/// twice the budget ran out of local memory).
#[test]
fn far_chunks_come_back_through_get_and_iter_in() {
    let rt = Runtime::builder().local_memory(1 << 20).build().unwrap();
    let n = 300_000u64; // 2.3 MiB of u64, over twice the budget
    let v = RemVec::from_iter_in(0..n, &rt);
    let m: Vec<u64> = (0..n).collect();
    rt.evacuate_now();
    assert!(v.local_chunks().0 < v.local_chunks().1 / 2);
    gets_match(&v, &m);
    rt.evacuate_now();
    // `iter_in` never renews its scope, so walk it in pieces of a few chunks.
    let mut seen = 0u64;
    for start in (0..n as usize).step_by(4096) {
        let scope = Scope::new();
        let end = (start + 4096).min(n as usize);
        let s: u64 = v.iter_in(&scope).skip(start).take(end - start).sum();
        assert_eq!(s, (start as u64..end as u64).sum::<u64>());
        seen += (end - start) as u64;
    }
    assert_eq!(seen, n);
    assert!(rt.stats().fetches > 0);
}

/// Shrinking a vector inside a chunk leaves stale elements in the page past the new end:
/// `iter_in` takes each chunk's length from the vector's, so it must not show them.
#[test]
fn iter_in_sees_no_stale_elements_after_shrinking_and_regrowing() {
    let rt = runtime();
    let mut v = RemVec::from_iter_in(0..5_000u64, &rt);
    let mut m: Vec<u64> = (0..5_000).collect();
    for (cut, more) in [
        (4_700usize, 0u64),
        (4_096, 3),
        (1_000, 700),
        (3, 0),
        (0, 513),
    ] {
        v.truncate(cut);
        m.truncate(cut);
        for x in 0..more {
            v.push(x + 1_000_000);
            m.push(x + 1_000_000);
        }
        let _ = v.pop();
        m.pop();
        iter_in_matches(&v, &m, &[Step::Next]);
        iter_in_matches(&v, &m, &[Step::Back]);
        iter_in_matches(&v, &m, &[Step::Nth(511), Step::NthBack(0)]);
        gets_match(&v, &m);
    }
}

/// A vector emptied by `clone_from` from one with boxed chunks, then refilled with inline
/// ones (and the reverse), reads right through `get`'s constant split.
#[test]
fn get_follows_a_change_of_chunk_representation() {
    let rt = runtime();
    let mut v = RemVec::<u64>::with_chunk_bytes_in(64 << 10, &rt);
    v.extend(0..20_000);
    v.clone_from(&RemVec::from_iter_in(0..3_000u64, &rt));
    gets_match(&v, &(0..3_000).collect::<Vec<_>>());
    let mut boxed = RemVec::<u64>::with_chunk_bytes_in(64 << 10, &rt);
    boxed.extend(5..9_000u64);
    v.clone_from(&boxed);
    gets_match(&v, &(5..9_000).collect::<Vec<_>>());
}

/// Random mixes of `next`, `next_back`, `nth` and `nth_back` over random lengths and chunk
/// sizes.
#[test]
fn iter_in_from_both_ends_matches_a_slice() {
    fn prop(n: u16, chunk_log: u8, steps: Vec<(u8, u16)>) -> TestResult {
        if steps.is_empty() {
            return TestResult::discard();
        }
        let steps: Vec<Step> = steps
            .into_iter()
            .map(|(op, k)| match op % 6 {
                0 | 1 => Step::Next,
                2 | 3 => Step::Back,
                4 => Step::Nth(k as usize % 3000),
                _ => Step::NthBack(k as usize % 3000),
            })
            .collect();
        let rt = Runtime::builder().local_memory(4 << 20).build().unwrap();
        let mut v = RemVec::with_chunk_bytes_in(8 << (chunk_log % 12), &rt);
        v.extend(0..n as u64);
        let m: Vec<u64> = (0..n as u64).collect();
        iter_in_matches(&v, &m, &steps);
        TestResult::passed()
    }
    QuickCheck::new()
        .tests(60)
        .quickcheck(prop as fn(u16, u8, Vec<(u8, u16)>) -> TestResult);
}

/// An element whose `Drop` panics once its flag is set.
#[derive(Clone, Debug, PartialEq)]
struct Fuse(u64, bool);

impl Drop for Fuse {
    fn drop(&mut self) {
        if self.1 && !std::thread::panicking() {
            panic!("Fuse::drop");
        }
    }
}

impl FarData for Fuse {
    fn encode(&self, out: &mut Vec<u8>) -> aifm_core::Result<()> {
        out.extend_from_slice(&self.0.to_le_bytes());
        out.push(self.1 as u8);
        Ok(())
    }

    fn decode(bytes: &[u8]) -> aifm_core::Result<Self> {
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap());
        Ok(Fuse(n, bytes[8] != 0))
    }
}

/// `get` skips the arena's bounds check on the strength of the vector's length; a `clear`
/// cut short by a panicking `Drop` leaves that length past the chunks left. Reads of every
/// old index must then find the chunks that are left, and `None` (never a stray read) where
/// a chunk is gone.
#[test]
fn get_after_a_clear_cut_short_by_a_panic_finds_no_dropped_chunk() {
    let rt = runtime();
    let mut v = RemVec::with_chunk_bytes_in(64, &rt); // 4 elements of 16 B a chunk
    let n = 40u64;
    v.extend((0..n).map(|i| Fuse(i, i == 21)));
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| v.clear()));
    assert!(unwound.is_err(), "the fuse blew");
    assert_eq!(v.len(), n as usize, "the length stays past the chunks left");
    let scope = Scope::new();
    for i in 0..n as usize {
        // Chunks from the last down to the one holding element 21 were dropped.
        let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            v.get(i, &scope).map(|x| x.0)
        }));
        match got {
            Ok(Some(x)) => assert!(i < 20 && x == i as u64, "get({i}) = {x}"),
            Ok(None) => assert!(i >= 20, "get({i}) lost a chunk that is left"),
            Err(_) => assert!(i >= 20, "get({i}) panicked on a chunk that is left"),
        }
    }
    drop(scope);
    v.clear();
    assert!(v.is_empty());
}
