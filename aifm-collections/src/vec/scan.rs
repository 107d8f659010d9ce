//! Sequential reads of a `RemVec`: the prefetch window ahead of a scan, and the borrowing
//! chunk walk.
//!
//! [`Scan`] is what every sequential reader of the vector goes through (the clone iterators
//! of `iter`, the borrowed chunks of [`RemVec::chunks`], and the client-side aggregates and
//! group-by): before it opens chunk `c` it keeps the chunks ahead of `c`, in the direction of
//! travel (forward or backward), requested from the runtime's prefetch helpers. The window is
//! [`Runtime::scan_window`]: two bandwidth-delay products of the link as measured so far,
//! never more than a quarter of the free local memory shared among the scans in progress
//! (each `Scan` counts itself while it lives), so scans back off when memory is short and
//! zipped scans do not evict each other's prefetches. It is topped up whenever half of it has been used, in one batch; the chunks it
//! brings in are nontemporal until used (placed in the regions the evacuator empties first,
//! not heated). With the in-process store there is no latency to hide, and helper threads
//! would only compete for the cores, so no window is kept: the backend says so
//! ([`aifm_core::Backend::latency_free`]), through any wrapper.
//!
//! A chunk that is still remote when the scan reaches it is fetched *before* its scope opens
//! (outside a scope a fetch may wait for the evacuator to make room; inside one it could only
//! draw on the overdraft), then read inside a scope of its own. With the in-process store the
//! scan fetches the next [`SELF_BATCH`] chunks in that one request, so the work of a request
//! is shared by several chunks.
//!
//! [`Chunks`] yields each chunk as a [`ChunkRef`]: the chunk's elements, borrowed in place
//! (no copy, no clone), together with the scope that keeps them there. The scope lives as
//! long as the `ChunkRef`, one chunk's worth; a `for` loop drops it before it asks for the
//! next chunk, so between chunks nothing holds the evacuator back.

use super::chunk::{self, ChunkTable};
use super::cloned::Source;
use super::RemVec;
use crate::common::fail;
use aifm_core::prefetch::ActiveScan;
use aifm_core::{FarData, Result, Runtime, Scope};
use std::cell::Cell;
use std::fmt;
use std::iter::FusedIterator;
use std::ops::Deref;

/// Chunks a scan without helper threads fetches per request (the in-process store).
const SELF_BATCH: usize = 8;

/// The chunks of a vector as a sequential source, with the scan's prefetch window.
pub(crate) struct Scan<'a, T: FarData> {
    chunks: &'a ChunkTable<T>,
    rt: &'a Runtime,
    pub(crate) nt: bool,
    /// Whether to keep a window at all (not when the backend is latency-free).
    ahead: bool,
    chunk_bytes: usize,
    /// Forward: the first chunk not yet handed to the prefetcher.
    fwd: Cell<usize>,
    /// Backward: the lowest chunk handed to the prefetcher (`len`: none yet).
    bwd: Cell<usize>,
    /// The window as last sized.
    window: Cell<usize>,
    /// Counts this scan among those sharing the free memory (`None`: keeps no window).
    _active: Option<ActiveScan>,
}

impl<'a, T: FarData> Scan<'a, T> {
    pub(crate) fn new(v: &'a RemVec<T>, nt: bool) -> Self {
        let rt = &v.far.rt;
        let ahead = !rt.backend().latency_free();
        Scan {
            chunks: &v.chunks,
            rt,
            nt,
            ahead,
            _active: ahead.then(|| rt.enter_scan()),
            chunk_bytes: v.chunk_len() * std::mem::size_of::<T>(),
            fwd: Cell::new(0),
            bwd: Cell::new(v.chunks.len()),
            window: Cell::new(0),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.chunks.len()
    }

    /// Keeps the window ahead of chunk `c` requested, in the direction of travel.
    fn ahead_of(&self, c: usize, forward: bool) {
        if !self.ahead {
            return;
        }
        let n = self.chunks.len();
        let half = self.window.get() / 2;
        let range = if forward {
            let p = self.fwd.get();
            if p >= n || c + half < p {
                return;
            }
            let w = self.resize();
            let (from, to) = (p.max(c + 1), (c + 1 + w).min(n));
            self.fwd.set(to.max(p));
            from..to
        } else {
            let p = self.bwd.get();
            if p == 0 || c >= p + half {
                return;
            }
            let w = self.resize();
            let (from, to) = (c.saturating_sub(w), p.min(c));
            self.bwd.set(from.min(p));
            from..to
        };
        if range.start < range.end {
            let tickets = self
                .chunks
                .range(range)
                .filter(|ch| !ch.is_local())
                .map(|ch| ch.ticket());
            self.rt.prefetch(tickets, true);
        }
    }

    /// Sizes the window from the link and the free memory now.
    fn resize(&self) -> usize {
        let w = self.rt.scan_window(self.chunk_bytes);
        self.window.set(w);
        w
    }

    /// Tops up the window and brings chunk `c` in (outside a scope, where the fetch may
    /// wait for room); the caller opens the chunk's scope next.
    fn arrive(&self, c: usize, forward: bool) -> Result<()> {
        self.ahead_of(c, forward);
        let chunk = self.chunks.at(c);
        if !chunk.is_local() && !aifm_core::scope::in_scope() {
            // Without helper threads (the in-process store), the scan reads a few chunks ahead
            // itself, in one batch: the per-request work is then shared by several chunks.
            // If the chunk leaves again before the scope opens, the dereference fetches it
            // once more.
            let n = if self.ahead { 1 } else { SELF_BATCH };
            let run = if forward {
                self.chunks.range(c..(c + n).min(self.chunks.len()))
            } else {
                self.chunks.range((c + 1).saturating_sub(n)..c + 1)
            };
            let tickets: Vec<_> = run
                .filter(|ch| !ch.is_local())
                .map(|ch| ch.ticket())
                .collect();
            self.rt.fetch_many(&tickets, self.nt)?;
        }
        Ok(())
    }

    /// Chunk `c`'s elements, valid while `scope` lives.
    fn elems<'s>(&'s self, c: usize, scope: &'s Scope) -> Result<&'s [T]> {
        let chunk = self.chunks.at(c);
        if self.nt {
            chunk.slice_nt(scope)
        } else {
            chunk.slice(scope)
        }
    }

    /// Calls `f` on every chunk's elements in order, one scope per chunk; stops at the first
    /// error.
    pub(crate) fn try_each(&self, mut f: impl FnMut(&[T]) -> Result<()>) -> Result<()> {
        for c in 0..self.chunks.len() {
            self.arrive(c, true)?;
            let scope = Scope::new();
            f(self.elems(c, &scope)?)?;
        }
        Ok(())
    }

    /// Chunk `c` borrowed with a scope of its own. Panics if far memory fails.
    #[track_caller]
    fn open(&self, c: usize, forward: bool) -> ChunkRef<'a, T> {
        let what = if self.nt {
            "RemVec::chunks_nt"
        } else {
            "RemVec::chunks"
        };
        if let Err(e) = self.arrive(c, forward) {
            fail(what, e);
        }
        let r = ChunkRef {
            chunk: self.chunks.at(c),
            nt: self.nt,
            scope: Scope::new(),
        };
        // Dereference once now: a failure shows here, not at some later use.
        if let Err(e) = self.elems(c, &r.scope) {
            fail(what, e);
        }
        r
    }
}

impl<T: FarData> Source<T> for Scan<'_, T> {
    #[track_caller]
    fn visit(&self, c: usize, f: &mut dyn FnMut(&[T], &[T])) {
        self.visit_from(c, true, f)
    }

    #[track_caller]
    fn visit_from(&self, c: usize, forward: bool, f: &mut dyn FnMut(&[T], &[T])) {
        let what = if self.nt {
            "RemVec::iter_nt"
        } else {
            "RemVec::iter"
        };
        if let Err(e) = self.arrive(c, forward) {
            fail(what, e);
        }
        let scope = Scope::new();
        match self.elems(c, &scope) {
            Ok(xs) => f(xs, &[]),
            Err(e) => fail(what, e),
        }
    }
}

/// One chunk of a [`RemVec`], borrowed in place: derefs to the chunk's elements, and holds
/// the scope that keeps them local for as long as it lives (see [`RemVec::chunks`]). Like
/// any scope, it belongs to the thread that made it.
pub struct ChunkRef<'a, T: FarData> {
    chunk: chunk::ChunkRef<'a, T>,
    nt: bool,
    scope: Scope,
}

impl<T: FarData> Deref for ChunkRef<'_, T> {
    type Target = [T];

    #[inline]
    fn deref(&self) -> &[T] {
        // The chunk was dereferenced in this scope when the `ChunkRef` was made, so it is
        // local and stays so: these cannot fetch, and so cannot fail.
        let r = if self.nt {
            self.chunk.slice_nt(&self.scope)
        } else {
            self.chunk.slice(&self.scope)
        };
        match r {
            Ok(xs) => xs,
            Err(e) => fail("RemVec::chunks", e),
        }
    }
}

impl<T: FarData + fmt::Debug> fmt::Debug for ChunkRef<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The chunks of a [`RemVec`] in order, from either end, each borrowed in place; see
/// [`RemVec::chunks`].
pub struct Chunks<'a, T: FarData> {
    scan: Scan<'a, T>,
    /// Chunks not yet handed out: `front..back`.
    front: usize,
    back: usize,
}

impl<T: FarData> RemVec<T> {
    /// The vector's chunks in order, each as a [`ChunkRef`] that derefs to the chunk's
    /// elements in place: no clone and no copy, for any element type. A window of chunks
    /// ahead is kept in flight (see [`Runtime::scan_window`]).
    ///
    /// Each `ChunkRef` holds a scope for its chunk, so drop it before asking for the next
    /// one (a `for` loop does): held across many chunks, the scopes pin them all, and a
    /// chunk fetched inside an open scope draws on the runtime's overdraft.
    ///
    /// # Panics
    /// The iterator panics if far memory fails (use [`RemVec::try_for_each_chunk`] to handle
    /// that).
    ///
    /// # Examples
    ///
    /// ```
    /// let v: aifm_collections::RemVec<u64> = (0..10_000).collect();
    /// let mut sum = 0;
    /// for chunk in v.chunks() {
    ///     sum += chunk.iter().sum::<u64>();
    /// }
    /// assert_eq!(sum, 9_999 * 10_000 / 2);
    /// assert_eq!(v.chunks().len(), v.local_chunks().1);
    /// assert_eq!(v.chunks().next_back().unwrap().last(), Some(&9_999));
    /// ```
    pub fn chunks(&self) -> Chunks<'_, T> {
        self.chunk_walk(false)
    }

    /// Nontemporal [`RemVec::chunks`]: chunks are not heated, and those fetched go to the
    /// regions the evacuator empties first, so a one-time scan does not push the hot set out.
    ///
    /// # Examples
    ///
    /// ```
    /// let v: aifm_collections::RemVec<u32> = (0..10_000).collect();
    /// let max = v.chunks_nt().filter_map(|c| c.iter().max().copied()).max();
    /// assert_eq!(max, Some(9_999));
    /// ```
    pub fn chunks_nt(&self) -> Chunks<'_, T> {
        self.chunk_walk(true)
    }

    fn chunk_walk(&self, nt: bool) -> Chunks<'_, T> {
        Chunks {
            scan: Scan::new(self, nt),
            front: 0,
            back: self.chunks.len(),
        }
    }

    /// Calls `f` on each chunk's elements in order, through the scan's prefetch window, one
    /// scope per chunk (`nt`: nontemporally). Stops at the first error.
    pub(crate) fn try_scan(&self, nt: bool, f: impl FnMut(&[T]) -> Result<()>) -> Result<()> {
        Scan::new(self, nt).try_each(f)
    }
}

impl<'a, T: FarData> Iterator for Chunks<'a, T> {
    type Item = ChunkRef<'a, T>;

    #[track_caller]
    fn next(&mut self) -> Option<ChunkRef<'a, T>> {
        if self.front == self.back {
            return None;
        }
        self.front += 1;
        Some(self.scan.open(self.front - 1, true))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.back - self.front;
        (n, Some(n))
    }
}

impl<'a, T: FarData> DoubleEndedIterator for Chunks<'a, T> {
    #[track_caller]
    fn next_back(&mut self) -> Option<ChunkRef<'a, T>> {
        if self.front == self.back {
            return None;
        }
        self.back -= 1;
        Some(self.scan.open(self.back, false))
    }
}

impl<T: FarData> ExactSizeIterator for Chunks<'_, T> {}
impl<T: FarData> FusedIterator for Chunks<'_, T> {}

impl<T: FarData> fmt::Debug for Chunks<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chunks")
            .field("remaining", &(self.back - self.front))
            .field("nontemporal", &self.scan.nt)
            .finish()
    }
}
