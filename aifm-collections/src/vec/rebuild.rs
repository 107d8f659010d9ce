//! The edits that stream a whole `RemVec` through a decision: `retain`, `drain`, `split_off`
//! (and the range move under the last two). `rebuild` consumes old chunk `i` before new chunk
//! `i` exists, so far keys never collide; it takes each chunk out by value, so no scope is
//! held while the whole vector streams through.

use super::{to_range, Drain, RemVec};
use crate::common::fail;
use aifm_core::FarData;
use std::ops::{Range, RangeBounds};
use std::sync::atomic::Ordering;

impl<T: FarData> RemVec<T> {
    /// Keeps the elements for which `keep` is true, in order. Chunks are consumed and rebuilt
    /// one at a time, so only a couple of chunks are ever in hand.
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut v: aifm_collections::RemVec<u32> = (0..10_000).collect();
    /// v.retain(|x| x % 3 == 0);
    /// assert_eq!(v.len(), 3334);
    /// assert_eq!(v.get_cloned(1), Some(3));
    /// ```
    #[track_caller]
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        self.rebuild(|_, x| if keep(&x) { Ok(x) } else { Err(x) }, drop);
    }

    /// Removes the elements in `range` and returns them as an iterator (they are moved into
    /// a fresh vector in the same runtime first, so a large drain stays in far memory).
    ///
    /// # Panics
    /// If the range is out of bounds, or far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut v: aifm_collections::RemVec<u32> = (0..10).collect();
    /// let d: Vec<u32> = v.drain(2..5).collect();
    /// assert_eq!(d, [2, 3, 4]);
    /// assert_eq!(v.iter().collect::<Vec<_>>(), [0, 1, 5, 6, 7, 8, 9]);
    /// ```
    #[track_caller]
    pub fn drain(&mut self, range: impl RangeBounds<usize>) -> Drain<T> {
        Drain::new(self.take_range(range).into_iter())
    }

    /// Splits the vector at `at`: `self` keeps `0..at`, the returned vector (same runtime,
    /// chunk size and placement) holds the rest.
    ///
    /// # Panics
    /// If `at > len` (as `Vec::split_off`), or far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut v: aifm_collections::RemVec<u32> = (0..5).collect();
    /// let tail = v.split_off(3);
    /// assert_eq!((v, tail), (vec![0, 1, 2].into(), vec![3, 4].into()));
    /// ```
    #[track_caller]
    pub fn split_off(&mut self, at: usize) -> RemVec<T> {
        assert!(
            at <= self.len,
            "`at` split index (is {at}) should be <= len (is {})",
            self.len
        );
        if at & self.mask() == 0 {
            // Whole chunks move: only the tail's chunks are touched (taken out and stored
            // again under the new vector's keys); the head is not rebuilt.
            let mut out = self.empty_twin();
            let first = at >> self.shift;
            self.len = at;
            for c in first..self.chunks.len() {
                let taken = self.chunks.take(c);
                let flags = taken.flags.load(Ordering::Relaxed);
                let key = taken.key();
                let items = taken.into_vec();
                self.far.forget(key, flags);
                let n = items.len();
                if let Err(e) = out.push_chunk(items) {
                    fail("RemVec::split_off", e);
                }
                out.len += n;
            }
            self.chunks.truncate(first);
            return out;
        }
        self.take_range(at..)
    }

    /// Moves the elements in `range` into a new vector in the same runtime.
    #[track_caller]
    fn take_range(&mut self, range: impl RangeBounds<usize>) -> RemVec<T> {
        let Range { start, end } = to_range(range, self.len);
        let mut out = self.empty_twin();
        let mut buf = Vec::new();
        self.rebuild(
            |i, x| {
                if (start..end).contains(&i) {
                    Err(x)
                } else {
                    Ok(x)
                }
            },
            |x| {
                if buf.capacity() == 0 {
                    buf.reserve_exact(out.chunk_len());
                }
                buf.push(x);
                if buf.len() == out.chunk_len() {
                    out.push_full(std::mem::take(&mut buf));
                }
            },
        );
        if !buf.is_empty() {
            out.push_full(buf);
        }
        out
    }

    /// Streams every element through `decide` (index, value): `Ok` keeps it, `Err` hands it
    /// to `removed`. Old chunk `i` is consumed before new chunk `i` exists, so keys never
    /// collide.
    #[track_caller]
    pub(super) fn rebuild(
        &mut self,
        mut decide: impl FnMut(usize, T) -> std::result::Result<T, T>,
        mut removed: impl FnMut(T),
    ) {
        let old = std::mem::take(&mut self.chunks);
        self.len = 0;
        self.prefetch.reset();
        let cl = self.chunk_len();
        let mut buf = Vec::with_capacity(cl);
        let mut i = 0;
        for c in old.into_taken() {
            let key = c.key();
            let flags = c.flags.load(Ordering::Relaxed);
            let items = c.into_vec();
            self.far.forget(key, flags);
            for x in items {
                match decide(i, x) {
                    Ok(x) => {
                        buf.push(x);
                        if buf.len() == cl {
                            self.push_full(std::mem::replace(&mut buf, Vec::with_capacity(cl)));
                        }
                    }
                    Err(x) => removed(x),
                }
                i += 1;
            }
        }
        if !buf.is_empty() {
            self.push_full(buf);
        }
    }
}
