//! The iterators of `RemVec`.
//!
//! * [`Iter`] ([`RemVec::iter`], [`RemVec::iter_nt`]) yields clones from either end; no scope
//!   is open between calls to `next`, and `fold` and its kin (`sum`, `for_each`, `max`, …) run
//!   on each chunk in place, one scope per chunk, renewed between chunks (see `cloned`): for
//!   plain data, `next` copies each chunk once into the iterator's buffer (one `memcpy`), and
//!   `fold` copies nothing. Both ends keep a window of chunks requested ahead of themselves
//!   (see `scan`).
//! * [`Chunks`](super::Chunks) ([`RemVec::chunks`]) borrows each chunk in place with a scope
//!   of its own, one chunk at a time (see `scan`).
//! * [`IterIn`] ([`RemVec::iter_in`]) yields references into the chunks, which stay valid as
//!   long as the scope you lend it: nothing is cloned or copied, and nothing is renewed.
//! * [`IntoIter`] and [`Drain`] take chunks out whole, from either end.
//!
//! All of them are `ExactSizeIterator`, `DoubleEndedIterator` and `FusedIterator`, as std's
//! are.

use super::chunk::{ChunkTable, IntoChunks, Taken};
use super::cloned::Cloned;
use super::scan::Scan;
use super::{Far, RemVec};
use aifm_core::{FarData, Scope};
use std::fmt;
use std::iter::FusedIterator;
use std::sync::atomic::Ordering;

/// Iterator over clones of a [`RemVec`]'s elements, from either end; see [`RemVec::iter`].
pub struct Iter<'a, T: FarData>(Cloned<T, Scan<'a, T>>);

impl<T: FarData> RemVec<T> {
    /// Iterates over clones of the elements, from either end, one dereference per chunk.
    ///
    /// No scope is open between calls to `next`, so a scan never holds the evacuator back
    /// while your code runs; `fold`-based consumers (`sum`, `for_each`, `count`, `max`, …)
    /// read each chunk in place. To borrow elements instead of cloning them, use
    /// [`RemVec::iter_in`].
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
    /// assert_eq!(v.iter().rev().next(), Some(9_999));
    /// assert_eq!(v.iter().len(), 10_000);
    /// ```
    pub fn iter(&self) -> Iter<'_, T>
    where
        T: Clone,
    {
        self.cloned(false)
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
        self.cloned(true)
    }

    fn cloned(&self, nt: bool) -> Iter<'_, T>
    where
        T: Clone,
    {
        let src = Scan::new(self, nt);
        let n = src.len();
        Iter(Cloned::new(src, n, self.len))
    }

    /// Borrowing iteration from a scope you hold: yields `&T` into the chunks for as long as
    /// `scope` lives (no clone, no copy), from either end. The scope is never renewed, so
    /// keep such loops short (or use [`RemVec::iter`]).
    ///
    /// # Panics
    /// The iterator panics if far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let v: aifm_collections::RemVec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
    /// let scope = aifm_core::Scope::new();
    /// let all: Vec<&str> = v.iter_in(&scope).map(|s| s.as_str()).collect();
    /// assert_eq!(all, ["a", "b"]);
    /// assert_eq!(v.iter_in(&scope).rev().next().map(|s| s.as_str()), Some("b"));
    /// ```
    pub fn iter_in<'a>(&'a self, scope: &'a Scope) -> IterIn<'a, T> {
        IterIn {
            front: [].iter(),
            back: [].iter(),
            table: &self.chunks,
            next: 0,
            end: self.chunks.len(),
            scope,
            len: self.len,
            shift: self.shift,
        }
    }
}

impl<T: FarData + Clone> Iterator for Iter<'_, T> {
    type Item = T;

    #[inline]
    fn next(&mut self) -> Option<T> {
        self.0.next()
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }

    fn fold<B, F: FnMut(B, T) -> B>(self, init: B, f: F) -> B {
        self.0.fold(init, f)
    }
}

impl<T: FarData + Clone> DoubleEndedIterator for Iter<'_, T> {
    #[inline]
    fn next_back(&mut self) -> Option<T> {
        self.0.next_back()
    }

    fn rfold<B, F: FnMut(B, T) -> B>(self, init: B, f: F) -> B {
        self.0.rfold(init, f)
    }
}

impl<T: FarData + Clone> ExactSizeIterator for Iter<'_, T> {}
impl<T: FarData + Clone> FusedIterator for Iter<'_, T> {}

impl<T: FarData> fmt::Debug for Iter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter")
            .field("remaining", &self.0.remaining())
            .field("nontemporal", &self.0.source().nt)
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

/// Iterator over references to a [`RemVec`]'s elements, valid while a scope you hold lives;
/// see [`RemVec::iter_in`].
///
/// Each end is a slice cursor over the chunk it reached (`front`, `back`), so `next` is a
/// slice iterator's step, a pointer compare and bump, and only a cursor that runs dry calls
/// out of line (`refill`) for the next chunk. That call takes and returns the iterator's
/// state by value: nothing takes the iterator's address, so the compiler keeps the cursor
/// in registers across the caller's loop (with the address taken, each step was a store and
/// a reload of the cursor, at half of `Vec`'s speed). Each end yields from its own cursor
/// only (once no chunk is left between them, a refill hands one end the other's elements):
/// with a second yield site the compiler merged both cursors into the loop.
///
/// Chunks `next .. end` are between the cursors. How many elements remain follows from the
/// cursors, those chunks and the vector's length (every chunk but the last is full), so no
/// count is kept per step.
pub struct IterIn<'a, T: FarData> {
    front: std::slice::Iter<'a, T>,
    back: std::slice::Iter<'a, T>,
    table: &'a ChunkTable<T>,
    next: usize,
    end: usize,
    scope: &'a Scope,
    /// The vector's length and chunk shift, for `size_hint`.
    len: usize,
    shift: u32,
}

/// The elements of chunk `c` of a vector of `len` elements in chunks of `1 << shift`, read
/// in `scope`. Out of line, so that `IterIn::next` stays small enough to inline into the
/// caller's loop. The chunk's length comes from the vector's, so the elements' first cache
/// line is not waited for before the loop over them can start.
#[inline(never)]
#[track_caller]
fn open<'a, T: FarData>(
    table: &'a ChunkTable<T>,
    c: usize,
    len: usize,
    shift: u32,
    scope: &'a Scope,
) -> &'a [T] {
    let n = (len - (c << shift)).min(1 << shift);
    table.at(c).deref_len(n, scope)
}

/// The refill of a dry cursor of an [`IterIn`] walking `forward` (its front) or backward,
/// with `other` the other cursor's elements: the next chunk between them (chunks `next ..
/// end`), or, once none is left, the other cursor's elements (the other cursor is then
/// empty), so that each end yields from its own cursor only. Returns the new `next`, `end`,
/// cursor and other cursor. Everything goes in and out by value: see [`IterIn`].
#[inline(never)]
#[track_caller]
#[allow(clippy::too_many_arguments)]
fn refill<'a, T: FarData>(
    table: &'a ChunkTable<T>,
    next: usize,
    end: usize,
    len: usize,
    shift: u32,
    scope: &'a Scope,
    other: &'a [T],
    forward: bool,
) -> (usize, usize, &'a [T], &'a [T]) {
    match (next < end, forward) {
        (true, true) => (next + 1, end, open(table, next, len, shift, scope), other),
        (true, false) => (
            next,
            end - 1,
            open(table, end - 1, len, shift, scope),
            other,
        ),
        (false, _) => (next, end, other, &[]),
    }
}

impl<T: FarData> IterIn<'_, T> {
    /// Elements left between and under the cursors.
    fn remaining(&self) -> usize {
        let middle = if self.next < self.end {
            (self.end << self.shift).min(self.len) - (self.next << self.shift)
        } else {
            0
        };
        self.front.len() + middle + self.back.len()
    }

    /// Elements in chunk `c` (every chunk but the last is full).
    fn chunk_len(&self, c: usize) -> usize {
        (self.len - (c << self.shift)).min(1 << self.shift)
    }
}

impl<'a, T: FarData> Iterator for IterIn<'a, T> {
    type Item = &'a T;

    #[inline]
    fn next(&mut self) -> Option<&'a T> {
        loop {
            if let Some(x) = self.front.next() {
                return Some(x);
            }
            if self.next == self.end && self.back.len() == 0 {
                return None;
            }
            let (next, end, front, back) = refill(
                self.table,
                self.next,
                self.end,
                self.len,
                self.shift,
                self.scope,
                self.back.as_slice(),
                true,
            );
            (self.next, self.end) = (next, end);
            self.front = front.iter();
            self.back = back.iter();
        }
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.remaining();
        (n, Some(n))
    }

    /// Skips whole chunks without dereferencing them (`skip` and `nth` reach far into a
    /// vector without pinning, or fetching, what they pass).
    fn nth(&mut self, mut n: usize) -> Option<&'a T> {
        let here = self.front.len();
        if n < here {
            return self.front.nth(n);
        }
        n -= here;
        self.front = [].iter();
        while self.next < self.end {
            let c = self.next;
            let k = self.chunk_len(c);
            self.next += 1;
            if n < k {
                self.front = open(self.table, c, self.len, self.shift, self.scope).iter();
                return self.front.nth(n);
            }
            n -= k;
        }
        self.back.nth(n)
    }

    fn fold<B, F: FnMut(B, &'a T) -> B>(self, init: B, mut f: F) -> B {
        let scope = self.scope;
        let acc = self.front.fold(init, &mut f);
        let acc = self
            .table
            .range(self.next..self.end)
            .fold(acc, |acc, c| c.deref(scope).iter().fold(acc, &mut f));
        self.back.fold(acc, f)
    }
}

impl<'a, T: FarData> DoubleEndedIterator for IterIn<'a, T> {
    #[inline]
    fn next_back(&mut self) -> Option<&'a T> {
        loop {
            if let Some(x) = self.back.next_back() {
                return Some(x);
            }
            if self.next == self.end && self.front.len() == 0 {
                return None;
            }
            let (next, end, back, front) = refill(
                self.table,
                self.next,
                self.end,
                self.len,
                self.shift,
                self.scope,
                self.front.as_slice(),
                false,
            );
            (self.next, self.end) = (next, end);
            self.back = back.iter();
            self.front = front.iter();
        }
    }

    /// Skips whole chunks without dereferencing them, as `nth` does.
    fn nth_back(&mut self, mut n: usize) -> Option<&'a T> {
        let here = self.back.len();
        if n < here {
            return self.back.nth_back(n);
        }
        n -= here;
        self.back = [].iter();
        while self.next < self.end {
            self.end -= 1;
            let c = self.end;
            let k = self.chunk_len(c);
            if n < k {
                self.back = open(self.table, c, self.len, self.shift, self.scope).iter();
                return self.back.nth_back(n);
            }
            n -= k;
        }
        self.front.nth_back(n)
    }
}

impl<T: FarData> ExactSizeIterator for IterIn<'_, T> {}
impl<T: FarData> FusedIterator for IterIn<'_, T> {}

impl<T: FarData> fmt::Debug for IterIn<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IterIn")
            .field("remaining", &self.remaining())
            .finish()
    }
}

/// Owning iterator over a [`RemVec`]: each chunk is taken out of far or local memory whole,
/// then yielded element by element, from either end.
///
/// # Examples
///
/// ```
/// let v: aifm_collections::RemVec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
/// let mut it = v.into_iter();
/// assert_eq!(it.len(), 2);
/// assert_eq!(it.next_back().as_deref(), Some("b"));
/// assert_eq!(it.next().as_deref(), Some("a"));
/// ```
pub struct IntoIter<T: FarData> {
    // Field order is drop order: chunks before their structure.
    front: std::vec::IntoIter<T>,
    back: std::vec::IntoIter<T>,
    rest: IntoChunks<T>,
    remaining: usize,
    far: Far,
}

impl<T: FarData> IntoIter<T> {
    /// Takes chunk `c`'s elements out (removing the far copy the vector wrote, if any).
    #[track_caller]
    fn take_chunk(&self, c: Taken<T>) -> std::vec::IntoIter<T> {
        let key = c.key();
        let flags = c.flags.load(Ordering::Relaxed);
        let items = c.into_vec().into_iter();
        self.far.forget(key, flags);
        items
    }
}

impl<T: FarData> Iterator for IntoIter<T> {
    type Item = T;

    #[track_caller]
    fn next(&mut self) -> Option<T> {
        loop {
            if let Some(x) = self.front.next() {
                self.remaining -= 1;
                return Some(x);
            }
            match self.rest.next() {
                Some(c) => self.front = self.take_chunk(c),
                None => {
                    let x = self.back.next();
                    self.remaining -= x.is_some() as usize;
                    return x;
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<T: FarData> DoubleEndedIterator for IntoIter<T> {
    #[track_caller]
    fn next_back(&mut self) -> Option<T> {
        loop {
            if let Some(x) = self.back.next_back() {
                self.remaining -= 1;
                return Some(x);
            }
            match self.rest.next_back() {
                Some(c) => self.back = self.take_chunk(c),
                None => {
                    let x = self.front.next_back();
                    self.remaining -= x.is_some() as usize;
                    return x;
                }
            }
        }
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
            front: Vec::new().into_iter(),
            back: Vec::new().into_iter(),
            rest: chunks.into_taken(),
            remaining: len,
            far,
        }
    }
}

/// The elements removed by [`RemVec::drain`], from either end.
///
/// # Examples
///
/// ```
/// let mut v: aifm_collections::RemVec<u8> = (0..4).collect();
/// let mut d = v.drain(..2);
/// assert_eq!(d.len(), 2);
/// assert_eq!(d.next_back(), Some(1));
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

impl<T: FarData> DoubleEndedIterator for Drain<T> {
    fn next_back(&mut self) -> Option<T> {
        self.inner.next_back()
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
