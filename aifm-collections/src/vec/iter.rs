//! The iterators of `RemVec`.

use super::{Chunk, Far, RemVec, PREFETCH_AHEAD};
use aifm_core::{FarData, Scope};
use std::fmt;
use std::iter::FusedIterator;

/// Iterator over clones of a [`RemVec`]'s elements; see [`RemVec::iter`].
///
/// It dereferences each chunk once, inside a scope of its own that ends before the first
/// element is yielded: the chunk's elements are cloned into a buffer first. So the iterator
/// never holds a scope while your code runs, and any number of iterators (zipped scans, a scan
/// feeding a `push`) never keep the evacuator waiting. `fold` (and so `sum`, `for_each`,
/// `count`, …) runs chunk by chunk over plain slices.
pub struct Iter<'a, T: FarData> {
    chunks: &'a [Chunk<T>],
    rt: &'a aifm_core::Runtime,
    nt: bool,
    next_chunk: usize,
    /// First chunk not yet handed to the prefetcher (`usize::MAX`: prefetching is off).
    prefetched: usize,
    /// The current chunk's remaining elements, last first.
    buf: Vec<T>,
    remaining: usize,
}

impl<T: FarData> RemVec<T> {
    /// Iterates over clones of the elements, one dereference per chunk.
    ///
    /// # Panics
    /// The iterator panics if far memory fails (use [`RemVec::try_for_each_chunk`] to handle
    /// that).
    ///
    /// # Examples
    ///
    /// ```
    /// let v: aifm_collections::RemVec<u64> = (0..10_000).collect();
    /// assert_eq!(v.iter().filter(|x| x % 2 == 0).count(), 5000);
    /// ```
    pub fn iter(&self) -> Iter<'_, T>
    where
        T: Clone,
    {
        Iter::new(self, false)
    }

    /// Nontemporal iteration: like [`RemVec::iter`], but chunks are not heated, and those
    /// fetched from far memory go to regions the evacuator empties first, so a one-time scan
    /// does not push the hot set out of local memory.
    ///
    /// # Examples
    ///
    /// ```
    /// let v: aifm_collections::RemVec<u64> = (0..10_000).collect();
    /// assert_eq!(v.iter_nt().max(), Some(9_999));
    /// ```
    pub fn iter_nt(&self) -> Iter<'_, T>
    where
        T: Clone,
    {
        Iter::new(self, true)
    }
}

impl<'a, T: FarData + Clone> Iter<'a, T> {
    fn new(v: &'a RemVec<T>, nt: bool) -> Self {
        Iter {
            chunks: &v.chunks,
            rt: &v.far.rt,
            nt,
            next_chunk: 0,
            // In-process far memory has no latency to hide: a prefetch there only moves the
            // same copying onto helper threads that compete for the same cores.
            prefetched: if v.far.rt.backend_name() == "embedded" {
                usize::MAX
            } else {
                0
            },
            buf: Vec::new(),
            remaining: v.len,
        }
    }

    /// Runs `f` on chunk `next_chunk`'s elements, inside a scope of its own, and moves on.
    #[track_caller]
    fn with_next_chunk<R>(&mut self, f: impl FnOnce(&[T]) -> R) -> R {
        let c = self.next_chunk;
        self.next_chunk += 1;
        // Keep a window of chunks in flight ahead of the scan (one batch per half window).
        if self.prefetched < self.chunks.len() && c + PREFETCH_AHEAD / 2 >= self.prefetched {
            let from = self.prefetched.max(c + 1);
            let to = (c + 1 + PREFETCH_AHEAD).min(self.chunks.len());
            if from < to {
                let tickets = self.chunks[from..to]
                    .iter()
                    .filter(|ch| !ch.rem.is_local())
                    .map(|ch| ch.rem.ticket());
                self.rt.prefetch(tickets, true);
            }
            self.prefetched = to;
        }
        let scope = Scope::new();
        let rem = &self.chunks[c].rem;
        let elements = if self.nt {
            match rem.deref_nt(&scope) {
                Ok(v) => v,
                Err(e) => crate::common::fail("RemVec::iter_nt", e),
            }
        } else {
            rem.deref(&scope)
        };
        f(elements)
    }
}

impl<T: FarData + Clone> Iterator for Iter<'_, T> {
    type Item = T;

    #[inline]
    fn next(&mut self) -> Option<T> {
        if self.buf.is_empty() {
            if self.remaining == 0 {
                return None;
            }
            let mut buf = std::mem::take(&mut self.buf);
            self.with_next_chunk(|xs| buf.extend(xs.iter().rev().cloned()));
            self.buf = buf;
        }
        self.remaining -= 1;
        self.buf.pop()
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }

    fn fold<B, F: FnMut(B, T) -> B>(mut self, init: B, mut f: F) -> B {
        let mut acc = self.buf.drain(..).rev().fold(init, &mut f);
        while self.next_chunk < self.chunks.len() {
            // Only the chunk's own scope is open while `f` runs on its elements.
            acc = self.with_next_chunk(|xs| xs.iter().cloned().fold(acc, &mut f));
        }
        acc
    }
}

impl<T: FarData + Clone> ExactSizeIterator for Iter<'_, T> {}
impl<T: FarData + Clone> FusedIterator for Iter<'_, T> {}

impl<T: FarData> fmt::Debug for Iter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter")
            .field("remaining", &self.remaining)
            .field("nontemporal", &self.nt)
            .finish()
    }
}

impl<'a, T: FarData + Clone> IntoIterator for &'a RemVec<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

/// Owning iterator over a [`RemVec`]: each chunk is taken out of far or local memory whole,
/// then yielded element by element.
///
/// # Examples
///
/// ```
/// let v: aifm_collections::RemVec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
/// let mut it = v.into_iter();
/// assert_eq!(it.len(), 2);
/// assert_eq!(it.next().as_deref(), Some("a"));
/// ```
pub struct IntoIter<T: FarData> {
    // Field order is drop order: chunks before their structure.
    current: std::vec::IntoIter<T>,
    rest: std::vec::IntoIter<Chunk<T>>,
    remaining: usize,
    far: Far,
}

impl<T: FarData> Iterator for IntoIter<T> {
    type Item = T;

    #[track_caller]
    fn next(&mut self) -> Option<T> {
        loop {
            if let Some(x) = self.current.next() {
                self.remaining -= 1;
                return Some(x);
            }
            let c = self.rest.next()?;
            let key = c.rem.key();
            let flags = c.flags.into_inner();
            self.current = c.rem.into_inner().into_iter();
            self.far.forget(key, flags);
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<T: FarData> ExactSizeIterator for IntoIter<T> {}
impl<T: FarData> FusedIterator for IntoIter<T> {}

impl<T: FarData> fmt::Debug for IntoIter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntoIter")
            .field("remaining", &self.remaining)
            .finish()
    }
}

impl<T: FarData> IntoIterator for RemVec<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;
    fn into_iter(self) -> IntoIter<T> {
        let RemVec {
            chunks, len, far, ..
        } = self;
        IntoIter {
            current: Vec::new().into_iter(),
            rest: chunks.into_iter(),
            remaining: len,
            far,
        }
    }
}

/// The elements removed by [`RemVec::drain`].
///
/// # Examples
///
/// ```
/// let mut v: aifm_collections::RemVec<u8> = (0..4).collect();
/// let d = v.drain(..2);
/// assert_eq!(d.len(), 2);
/// ```
pub struct Drain<T: FarData> {
    inner: IntoIter<T>,
}

impl<T: FarData> Drain<T> {
    pub(super) fn new(inner: IntoIter<T>) -> Self {
        Drain { inner }
    }
}

impl<T: FarData> Iterator for Drain<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.inner.next()
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<T: FarData> ExactSizeIterator for Drain<T> {}
impl<T: FarData> FusedIterator for Drain<T> {}

impl<T: FarData> fmt::Debug for Drain<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drain")
            .field("remaining", &self.inner.remaining)
            .finish()
    }
}
