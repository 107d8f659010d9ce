//! The iterators of `RemVec`.

use super::{Chunk, Far, RemVec, PREFETCH_AHEAD, RENEW_CHUNKS};
use aifm_core::{FarData, Scope};
use std::fmt;
use std::iter::FusedIterator;

/// Iterator over clones of a [`RemVec`]'s elements; see [`RemVec::iter`].
///
/// It dereferences each chunk once and walks the chunk's elements in place; its internal
/// scope is renewed between chunks (never while an element of the current chunk is in use).
/// `fold` (and so `sum`, `for_each`, `count`, …) runs chunk by chunk over plain slices.
///
/// ```
/// let v: aifm_collections::RemVec<u8> = (0..4).collect();
/// let mut it = v.iter();
/// assert_eq!((it.len(), it.next()), (4, Some(0)));
/// ```
pub struct Iter<'a, T: FarData> {
    chunks: &'a [Chunk<T>],
    scope: Option<Scope>,
    rt: &'a aifm_core::Runtime,
    nt: bool,
    next_chunk: usize,
    /// Chunks before this one have been handed to the prefetch helpers.
    prefetched: usize,
    /// The current chunk's elements: valid while `scope` is not renewed.
    ptr: *const T,
    pos: usize,
    end: usize,
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
            scope: Some(Scope::new()),
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
            ptr: std::ptr::null(),
            pos: 0,
            end: 0,
            remaining: v.len,
        }
    }

    /// Dereferences chunk `next_chunk` (renewing the scope first now and then).
    #[track_caller]
    fn chunk_slice(&mut self) -> &[T] {
        let c = self.next_chunk;
        self.next_chunk += 1;
        if c % RENEW_CHUNKS == 0 && c > 0 {
            // End the scope (no element of the last chunk is in use), let the evacuator in,
            // and open a fresh one.
            self.scope = None;
        }
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
        let scope = self.scope.get_or_insert_with(Scope::new);
        let rem = &self.chunks[c].rem;
        if self.nt {
            match rem.deref_nt(scope) {
                Ok(v) => v,
                Err(e) => crate::common::fail("RemVec::iter_nt", e),
            }
        } else {
            rem.deref(scope)
        }
    }

    #[track_caller]
    fn load_next(&mut self) {
        let s = self.chunk_slice();
        let (ptr, len) = (s.as_ptr(), s.len());
        self.ptr = ptr;
        self.pos = 0;
        self.end = len;
    }
}

impl<T: FarData + Clone> Iterator for Iter<'_, T> {
    type Item = T;

    #[inline]
    fn next(&mut self) -> Option<T> {
        if self.pos == self.end {
            if self.remaining == 0 {
                return None;
            }
            self.load_next();
        }
        // SAFETY: `ptr[..end]` is the current chunk's element slice, obtained from a
        // dereference through `self.scope`, which has not been renewed or dropped since; the
        // vector is borrowed shared for `'a`, so nothing can mutate or free the chunk, and the
        // open scope keeps the evacuator from dropping it. `pos < end`.
        let x = unsafe { &*self.ptr.add(self.pos) }.clone();
        self.pos += 1;
        self.remaining -= 1;
        Some(x)
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }

    fn fold<B, F: FnMut(B, T) -> B>(mut self, init: B, mut f: F) -> B {
        let mut acc = init;
        while self.pos < self.end {
            // SAFETY: as in `next`.
            let x = unsafe { &*self.ptr.add(self.pos) }.clone();
            self.pos += 1;
            acc = f(acc, x);
        }
        while self.next_chunk < self.chunks.len() {
            let s = self.chunk_slice();
            acc = s.iter().cloned().fold(acc, &mut f);
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
