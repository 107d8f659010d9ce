//! Edits of `RemVec`: push/pop at the end, and the edits that shift, drop or move
//! elements between chunks (insert, remove, swap, append, extend); the ones that stream the
//! whole vector through a decision (retain, drain, split_off) are in `rebuild`.
//!
//! Every edit of a chunk clears its `SYNCED` flag (far memory no longer holds its current
//! contents, so an offload must write it again). Edits that walk many chunks renew their
//! scope between chunks, so a long edit never keeps the evacuator waiting for more than a
//! chunk.

use super::{RemVec, RENEW_CHUNKS, SYNCED};
use crate::common::fail;
use aifm_core::{FarData, Result, Scope};

impl<T: FarData> RemVec<T> {
    /// Appends an element.
    ///
    /// # Panics
    /// If far memory fails (see [`RemVec::try_push`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut v = aifm_collections::RemVec::new();
    /// v.push("x".to_string());
    /// assert_eq!(v.len(), 1);
    /// ```
    #[track_caller]
    pub fn push(&mut self, value: T) {
        if let Err(e) = self.try_push(value) {
            fail("RemVec::push", e)
        }
    }

    /// Appends an element, reporting far-memory failures (the last chunk may have to be
    /// fetched). On failure the value is dropped: the runtime's allocation does not hand it
    /// back.
    ///
    /// # Errors
    /// As `RemBox::try_deref_mut` and `RemBox::new_in_structure`.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut v = aifm_collections::RemVec::new();
    /// v.try_push(1u8).unwrap();
    /// assert_eq!(v.get_cloned(0), Some(1));
    /// ```
    pub fn try_push(&mut self, value: T) -> Result<()> {
        if self.len & self.mask() == 0 {
            self.push_chunk(vec![value])?;
        } else {
            let cl = self.chunk_len();
            let last = self.chunks.last();
            *self.chunks.flags_mut(last) &= !SYNCED;
            let scope = Scope::new();
            self.chunks.edit(last, &scope)?.push(value, cl);
        }
        self.len += 1;
        Ok(())
    }

    /// Adds a chunk (not counted in `len` yet).
    pub(super) fn push_chunk(&mut self, v: Vec<T>) -> Result<()> {
        self.far.ensure();
        let cl = self.chunk_len();
        self.chunks.push(v, cl, &self.far)
    }

    /// Drops the last chunk (and the far copy the vector wrote of it, if any).
    pub(super) fn pop_chunk(&mut self) -> bool {
        let Some((key, flags)) = self.chunks.pop() else {
            return false;
        };
        self.far.forget(key, flags);
        true
    }

    /// Removes and returns the last element.
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut v: aifm_collections::RemVec<u8> = (0..3).collect();
    /// assert_eq!(v.pop(), Some(2));
    /// assert_eq!(v.len(), 2);
    /// ```
    #[track_caller]
    pub fn pop(&mut self) -> Option<T> {
        match self.try_pop() {
            Ok(v) => v,
            Err(e) => fail("RemVec::pop", e),
        }
    }

    /// [`RemVec::pop`], reporting far-memory failures (the vector is unchanged on error).
    ///
    /// # Errors
    /// As `RemBox::try_deref_mut`.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut v = aifm_collections::RemVec::<u8>::new();
    /// assert_eq!(v.try_pop().unwrap(), None);
    /// ```
    pub fn try_pop(&mut self) -> Result<Option<T>> {
        if self.len == 0 {
            return Ok(None);
        }
        let x = {
            let last = self.chunks.last();
            *self.chunks.flags_mut(last) &= !SYNCED;
            let scope = Scope::new();
            self.chunks.edit(last, &scope)?.pop()
        };
        self.len -= 1;
        if self.len & self.mask() == 0 {
            self.pop_chunk();
        }
        Ok(x)
    }

    /// Shortens the vector to `len` elements (no effect if it is not longer).
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut v: aifm_collections::RemVec<u64> = (0..5000).collect();
    /// v.truncate(600);
    /// assert_eq!((v.len(), v.get_cloned(599)), (600, Some(599)));
    /// ```
    #[track_caller]
    pub fn truncate(&mut self, len: usize) {
        if len >= self.len {
            return;
        }
        let keep_chunks = len.div_ceil(self.chunk_len());
        while self.chunks.len() > keep_chunks {
            self.pop_chunk();
        }
        self.len = len;
        let tail = len & self.mask();
        if tail != 0 {
            let last = self.chunks.last();
            *self.chunks.flags_mut(last) &= !SYNCED;
            let scope = Scope::new();
            self.chunks.edit_now(last, &scope).truncate(tail);
        }
    }

    /// Removes every element (keeping the vector's far-memory structure).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut v: aifm_collections::RemVec<u64> = (0..5000).collect();
    /// v.clear();
    /// assert!(v.is_empty());
    /// ```
    pub fn clear(&mut self) {
        while self.pop_chunk() {}
        self.len = 0;
        self.prefetch.reset();
    }

    /// Inserts `value` at `index`, shifting later elements right (one dereference per later
    /// chunk).
    ///
    /// # Panics
    /// If `index > len`, or far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut v: aifm_collections::RemVec<u8> = (0..3).collect();
    /// v.insert(1, 9);
    /// assert_eq!(v.iter().collect::<Vec<_>>(), [0, 9, 1, 2]);
    /// ```
    #[track_caller]
    pub fn insert(&mut self, index: usize, value: T) {
        assert!(
            index <= self.len,
            "RemVec::insert: index {index} out of bounds for length {}",
            self.len
        );
        if index == self.len {
            return self.push(value);
        }
        let cl = self.chunk_len();
        let mut carry = Some(value);
        let mut scope = Scope::new();
        let first = index >> self.shift;
        for c in first..self.chunks.len() {
            *self.chunks.flags_mut(c) &= !SYNCED;
            let mut v = self.chunks.edit_now(c, &scope);
            let out = if v.len() == cl { v.pop() } else { None };
            let at = if c == first { index & (cl - 1) } else { 0 };
            v.insert(at, carry.take().expect("carried"), cl);
            carry = out;
            if carry.is_none() {
                break;
            }
            drop(scope);
            scope = Scope::new();
        }
        drop(scope);
        self.len += 1;
        if let Some(x) = carry {
            if let Err(e) = self.push_chunk(vec![x]) {
                self.len -= 1;
                fail("RemVec::insert", e);
            }
        }
    }

    /// Removes and returns element `index`, shifting later elements left.
    ///
    /// # Panics
    /// If `index >= len`, or far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut v: aifm_collections::RemVec<u8> = (0..3).collect();
    /// assert_eq!(v.remove(0), 0);
    /// assert_eq!(v.iter().collect::<Vec<_>>(), [1, 2]);
    /// ```
    #[track_caller]
    pub fn remove(&mut self, index: usize) -> T {
        assert!(
            index < self.len,
            "RemVec::remove: index {index} out of bounds for length {}",
            self.len
        );
        let first = index >> self.shift;
        let cl = self.chunk_len();
        let mut scope = Scope::new();
        let off = index & self.mask();
        let out = {
            *self.chunks.flags_mut(first) &= !SYNCED;
            self.chunks.edit_now(first, &scope).remove(off)
        };
        for c in first + 1..self.chunks.len() {
            *self.chunks.flags_mut(c - 1) &= !SYNCED;
            *self.chunks.flags_mut(c) &= !SYNCED;
            let (mut prev, mut next) = self.chunks.edit_two(c - 1, c, &scope);
            let moved = next.remove(0);
            prev.push(moved, cl);
            drop(scope);
            scope = Scope::new();
        }
        drop(scope);
        self.len -= 1;
        if self.len & self.mask() == 0 {
            self.pop_chunk();
        }
        out
    }

    /// Swaps elements `a` and `b`.
    ///
    /// # Panics
    /// If either index is out of bounds, or far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut v: aifm_collections::RemVec<u64> = (0..2000).collect();
    /// v.swap(0, 1999);
    /// assert_eq!((v.get_cloned(0), v.get_cloned(1999)), (Some(1999), Some(0)));
    /// ```
    #[track_caller]
    pub fn swap(&mut self, a: usize, b: usize) {
        assert!(
            a < self.len && b < self.len,
            "RemVec::swap: index out of bounds"
        );
        let (ca, cb) = (a >> self.shift, b >> self.shift);
        let (oa, ob) = (a & self.mask(), b & self.mask());
        let scope = Scope::new();
        if ca == cb {
            *self.chunks.flags_mut(ca) &= !SYNCED;
            self.chunks.edit_now(ca, &scope).into_slice().swap(oa, ob);
            return;
        }
        let (lo, hi, olo, ohi) = if ca < cb {
            (ca, cb, oa, ob)
        } else {
            (cb, ca, ob, oa)
        };
        *self.chunks.flags_mut(lo) &= !SYNCED;
        *self.chunks.flags_mut(hi) &= !SYNCED;
        let (p, q) = self.chunks.edit_two(lo, hi, &scope);
        std::mem::swap(&mut p.into_slice()[olo], &mut q.into_slice()[ohi]);
    }

    /// Calls `f` on every element, mutably, one chunk (and one dereference) at a time.
    /// (`iter_mut` is not offered: a `&mut T` handed out by an iterator would outlive the
    /// scope renewals that long scans need.)
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut v: aifm_collections::RemVec<u32> = (0..1000).collect();
    /// v.for_each_mut(|x| *x *= 2);
    /// assert_eq!(v.get_cloned(999), Some(1998));
    /// ```
    #[track_caller]
    pub fn for_each_mut(&mut self, mut f: impl FnMut(&mut T)) {
        let mut scope = Scope::new();
        for i in 0..self.chunks.len() {
            *self.chunks.flags_mut(i) &= !SYNCED;
            self.chunks
                .edit_now(i, &scope)
                .into_slice()
                .iter_mut()
                .for_each(&mut f);
            if i % RENEW_CHUNKS == RENEW_CHUNKS - 1 {
                drop(scope);
                scope = Scope::new();
            }
        }
    }

    /// Calls `f` on each chunk's elements in order (one dereference per chunk, a scope per
    /// chunk, a prefetch window kept ahead): the fastest way to read everything. Stops at the
    /// first error `f` or far memory reports.
    ///
    /// # Errors
    /// Far-memory errors, or the first error of `f`.
    ///
    /// # Examples
    ///
    /// ```
    /// let v: aifm_collections::RemVec<u64> = (0..100_000).collect();
    /// let mut sum = 0;
    /// v.try_for_each_chunk(|xs| {
    ///     sum += xs.iter().sum::<u64>();
    ///     Ok(())
    /// })
    /// .unwrap();
    /// assert_eq!(sum, 99_999 * 100_000 / 2);
    /// ```
    pub fn try_for_each_chunk(&self, f: impl FnMut(&[T]) -> Result<()>) -> Result<()> {
        self.try_scan(false, f)
    }

    /// Removes and returns element `index`, replacing it with the last element (O(1), does
    /// not preserve order).
    ///
    /// # Panics
    /// If `index >= len` (as `Vec::swap_remove`), or far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut v: aifm_collections::RemVec<u8> = (0..4).collect();
    /// assert_eq!(v.swap_remove(1), 1);
    /// assert_eq!(v, vec![0, 3, 2]);
    /// ```
    #[track_caller]
    pub fn swap_remove(&mut self, index: usize) -> T {
        assert!(
            index < self.len,
            "swap_remove index (is {index}) should be < len (is {})",
            self.len
        );
        self.swap(index, self.len - 1);
        self.pop().expect("non-empty")
    }

    /// Resizes the vector to `new_len`, appending clones of `value` or truncating.
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut v: aifm_collections::RemVec<u8> = (0..2).collect();
    /// v.resize(4, 7);
    /// assert_eq!(v, vec![0, 1, 7, 7]);
    /// v.resize(1, 0);
    /// assert_eq!(v, vec![0]);
    /// ```
    #[track_caller]
    pub fn resize(&mut self, new_len: usize, value: T)
    where
        T: Clone,
    {
        if new_len <= self.len {
            self.truncate(new_len);
        } else {
            let n = new_len - self.len;
            self.extend(std::iter::repeat_n(value, n));
        }
    }

    /// Appends clones of the elements of `other`.
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut v = aifm_collections::RemVec::new();
    /// v.extend_from_slice(&["a".to_string()]);
    /// assert_eq!(v.len(), 1);
    /// ```
    #[track_caller]
    pub fn extend_from_slice(&mut self, other: &[T])
    where
        T: Clone,
    {
        self.extend(other.iter().cloned())
    }

    /// Whether some element equals `x` (reads chunk by chunk).
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let v: aifm_collections::RemVec<u32> = (0..5000).collect();
    /// assert!(v.contains(&4321) && !v.contains(&5000));
    /// ```
    #[track_caller]
    pub fn contains(&self, x: &T) -> bool
    where
        T: PartialEq,
    {
        let mut scope = Scope::new();
        for (i, c) in self.chunks.iter().enumerate() {
            if c.deref(&scope).contains(x) {
                return true;
            }
            if i % RENEW_CHUNKS == RENEW_CHUNKS - 1 {
                scope.renew();
            }
        }
        false
    }

    /// An empty vector in the same runtime, with the same chunk length and placement.
    pub(super) fn empty_twin(&self) -> RemVec<T> {
        let mut out = RemVec::with_chunk_bytes_in(1, &self.far.rt).with_placement(self.placement());
        out.shift = self.shift;
        out
    }

    /// Appends a chunk-capacity buffer of elements as a new chunk (the tail must be full).
    #[track_caller]
    pub(super) fn push_full(&mut self, v: Vec<T>) {
        debug_assert_eq!(self.len & self.mask(), 0);
        let n = v.len();
        if let Err(e) = self.push_chunk(v) {
            fail("RemVec", e);
        }
        self.len += n;
    }

    /// Moves every element of `other` to the end of `self`.
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut a: aifm_collections::RemVec<u8> = (0..3).collect();
    /// let mut b: aifm_collections::RemVec<u8> = (3..6).collect();
    /// a.append(&mut b);
    /// assert_eq!((a.len(), b.len()), (6, 0));
    /// ```
    #[track_caller]
    pub fn append(&mut self, other: &mut RemVec<T>) {
        let fresh = RemVec::with_chunk_bytes_in(1, &other.far.rt).with_placement(other.placement());
        let taken = std::mem::replace(other, fresh);
        other.shift = taken.shift;
        self.extend(taken);
    }

    /// [`Extend::extend`], reporting far-memory failures; elements taken from the iterator
    /// before the failure are kept.
    ///
    /// # Errors
    /// As [`RemVec::try_push`].
    ///
    /// # Examples
    ///
    /// ```
    /// let mut v = aifm_collections::RemVec::new();
    /// v.try_extend(0..10u8).unwrap();
    /// assert_eq!(v.len(), 10);
    /// ```
    pub fn try_extend(&mut self, iter: impl IntoIterator<Item = T>) -> Result<()> {
        let mut iter = iter.into_iter();
        let cl = self.chunk_len();
        if self.len & self.mask() != 0 {
            let last = self.chunks.last();
            *self.chunks.flags_mut(last) &= !SYNCED;
            let scope = Scope::new();
            let mut tail = self.chunks.edit(last, &scope)?;
            while tail.len() < cl {
                match iter.next() {
                    Some(x) => {
                        tail.push(x, cl);
                        self.len += 1;
                    }
                    None => return Ok(()),
                }
            }
        }
        loop {
            let mut v = Vec::with_capacity(cl);
            v.extend(iter.by_ref().take(cl));
            let n = v.len();
            if n == 0 {
                return Ok(());
            }
            self.push_chunk(v)?;
            self.len += n;
            if n < cl {
                return Ok(());
            }
        }
    }
}
