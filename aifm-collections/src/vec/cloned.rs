//! The clone-yielding, double-ended iterator that every chunked sequence (`RemVec`,
//! `RemQueue`) builds its `iter()` from.
//!
//! A [`Source`] is a run of chunks `0..n`; [`Source::visit`] dereferences chunk `i` inside a
//! scope of its own and shows its elements as (at most) two slices, in order. [`Cloned`]
//! walks the run from both ends:
//!
//! * `next` / `next_back` clone one chunk's elements into a buffer (one per end, reused
//!   chunk after chunk) the first time they enter it, so **no scope is open between calls**:
//!   a scan, several zipped scans, or a scan whose body calls `evacuate_now` or blocks never
//!   keep the evacuator waiting;
//! * `fold` / `rfold` (and so `sum`, `for_each`, `count`, `max`, …) run directly on each
//!   chunk's slices, one scope per chunk, renewed between chunks: no buffer, no copy of a
//!   local chunk.
//!
//! The two ends never load the same chunk: when they meet, the end that arrives second takes
//! what is left from the other end's buffer.

use std::iter::FusedIterator;

/// A run of chunks an iterator can visit one at a time.
pub(crate) trait Source<T> {
    /// Calls `f` with chunk `i`'s elements in order (`b` follows `a`; often empty), inside a
    /// scope that ends when `visit` returns. Panics if far memory fails.
    fn visit(&self, i: usize, f: &mut dyn FnMut(&[T], &[T]));

    /// [`Source::visit`] by a walk going `forward` (towards higher chunks) or backward, for
    /// sources that read ahead in the direction of travel.
    fn visit_from(&self, i: usize, forward: bool, f: &mut dyn FnMut(&[T], &[T])) {
        let _ = forward;
        self.visit(i, f)
    }
}

/// Clones of a run of chunks' elements, from either end; see the module documentation.
pub(crate) struct Cloned<T, S> {
    src: S,
    /// Chunks not yet loaded: `front..back`.
    front: usize,
    back: usize,
    /// Elements the front end loaded and has not yielded (the back end's, once they meet).
    fbuf: Buf<T>,
    bbuf: Buf<T>,
    /// Elements in chunks `front..back` (not loaded yet). Counted per chunk, not per element:
    /// a per-element counter in memory would chain every `next` to the one before.
    unloaded: usize,
}

/// A chunk's clones, taken from either end; its allocation is reused chunk after chunk.
///
/// Invariant: `items` has length 0 (so it never drops anything itself); `lo..hi` (pointers
/// into its buffer, like a slice iterator's) are the values the buffer still owns, the
/// slots outside were moved out. For zero-sized `T` the two pointers only count: they
/// advance by one byte per value and are never read through.
struct Buf<T> {
    items: Vec<T>,
    lo: *mut T,
    hi: *mut T,
}

impl<T> Buf<T> {
    const ZST: bool = std::mem::size_of::<T>() == 0;

    fn new() -> Self {
        let mut items = Vec::new();
        let p = items.as_mut_ptr();
        Buf {
            items,
            lo: p,
            hi: p,
        }
    }

    /// Values not yet taken.
    #[inline]
    fn len(&self) -> usize {
        if Self::ZST {
            self.hi as usize - self.lo as usize
        } else {
            // SAFETY: both point into (or one past) the same allocation, `lo <= hi`.
            unsafe { self.hi.offset_from(self.lo) as usize }
        }
    }

    /// Drops what is left and refills the buffer with clones of `a` then `b`.
    fn fill(&mut self, a: &[T], b: &[T])
    where
        T: Clone,
    {
        self.clear();
        self.items.reserve(a.len() + b.len());
        // If a clone panics, `items` owns (and drops) the clones made so far; `lo == hi`.
        self.items.extend_from_slice(a);
        self.items.extend_from_slice(b);
        let n = self.items.len();
        let base = self.items.as_mut_ptr();
        // SAFETY: the `n` initialised values now belong to the buffer (the invariant);
        // length 0 is always valid.
        unsafe { self.items.set_len(0) };
        self.lo = base;
        self.hi = if Self::ZST {
            base.wrapping_byte_add(n)
        } else {
            // SAFETY: `n` values fit the buffer: one past its end at most.
            unsafe { base.add(n) }
        };
    }

    fn clear(&mut self) {
        let n = self.len();
        let first = if Self::ZST {
            self.items.as_mut_ptr()
        } else {
            self.lo
        };
        self.lo = self.items.as_mut_ptr();
        self.hi = self.lo;
        // SAFETY: `first..first + n` are the values the buffer owns (for zero-sized `T`, `n`
        // values at the vector's aligned dangling pointer); `lo` and `hi` are reset first,
        // so a panicking destructor cannot lead to a second drop.
        unsafe { std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(first, n)) };
    }

    #[inline]
    fn pop_front(&mut self) -> Option<T> {
        if self.lo == self.hi {
            return None;
        }
        let p = self.lo;
        if Self::ZST {
            self.lo = p.wrapping_byte_add(1);
            // SAFETY: a zero-sized value is read from an aligned, non-null pointer; the count
            // moved past it, so it is handed out once.
            return Some(unsafe { std::ptr::read(std::ptr::NonNull::<T>::dangling().as_ptr()) });
        }
        // SAFETY: `p` is in `lo..hi`, so it holds an owned value, and moving `lo` past it
        // hands that value out exactly once.
        unsafe {
            self.lo = p.add(1);
            Some(std::ptr::read(p))
        }
    }

    #[inline]
    fn pop_back(&mut self) -> Option<T> {
        if self.lo == self.hi {
            return None;
        }
        if Self::ZST {
            self.hi = self.hi.wrapping_byte_sub(1);
            // SAFETY: as in `pop_front`.
            return Some(unsafe { std::ptr::read(std::ptr::NonNull::<T>::dangling().as_ptr()) });
        }
        // SAFETY: `lo < hi`, so `hi - 1` is in `lo..hi`: an owned value, handed out once.
        unsafe {
            self.hi = self.hi.sub(1);
            Some(std::ptr::read(self.hi))
        }
    }

    fn fold<B>(mut self, init: B, f: impl FnMut(B, T) -> B) -> B {
        std::iter::from_fn(|| self.pop_front()).fold(init, f)
    }

    fn rfold<B>(mut self, init: B, f: impl FnMut(B, T) -> B) -> B {
        std::iter::from_fn(|| self.pop_back()).fold(init, f)
    }
}

impl<T> Drop for Buf<T> {
    fn drop(&mut self) {
        self.clear();
    }
}

// SAFETY: a `Buf<T>` owns `T`s like a `Vec<T>` does.
unsafe impl<T: Send> Send for Buf<T> {}
// SAFETY: `&Buf<T>` gives no access to the values.
unsafe impl<T: Sync> Sync for Buf<T> {}

impl<T: Clone, S: Source<T>> Cloned<T, S> {
    /// Iterates over chunks `0..chunks` of `src`, which hold `len` elements in all.
    pub(crate) fn new(src: S, chunks: usize, len: usize) -> Self {
        Cloned {
            src,
            front: 0,
            back: chunks,
            fbuf: Buf::new(),
            bbuf: Buf::new(),
            unloaded: len,
        }
    }

    /// Clones chunk `i` into `buf` (emptied first; its allocation is reused chunk after
    /// chunk).
    fn load(src: &S, i: usize, forward: bool, buf: &mut Buf<T>, unloaded: &mut usize) {
        src.visit_from(i, forward, &mut |a, b| buf.fill(a, b));
        *unloaded -= buf.len();
    }
}

impl<T: Clone, S: Source<T>> Iterator for Cloned<T, S> {
    type Item = T;

    #[inline]
    fn next(&mut self) -> Option<T> {
        loop {
            if let Some(x) = self.fbuf.pop_front() {
                return Some(x);
            }
            if self.front == self.back {
                return self.bbuf.pop_front();
            }
            Self::load(
                &self.src,
                self.front,
                true,
                &mut self.fbuf,
                &mut self.unloaded,
            );
            self.front += 1;
        }
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.remaining();
        (n, Some(n))
    }

    fn fold<B, F: FnMut(B, T) -> B>(self, init: B, mut f: F) -> B {
        let Cloned {
            src,
            front,
            back,
            fbuf,
            bbuf,
            ..
        } = self;
        let mut acc = Some(fbuf.fold(init, &mut f));
        for i in front..back {
            // Only chunk i's own scope is open while `f` runs on its elements.
            src.visit(i, &mut |a, b| {
                let x = acc.take().expect("folding");
                let x = a.iter().cloned().fold(x, &mut f);
                acc = Some(b.iter().cloned().fold(x, &mut f));
            });
        }
        bbuf.fold(acc.expect("folded"), f)
    }
}

impl<T: Clone, S: Source<T>> DoubleEndedIterator for Cloned<T, S> {
    #[inline]
    fn next_back(&mut self) -> Option<T> {
        loop {
            if let Some(x) = self.bbuf.pop_back() {
                return Some(x);
            }
            if self.front == self.back {
                return self.fbuf.pop_back();
            }
            self.back -= 1;
            Self::load(
                &self.src,
                self.back,
                false,
                &mut self.bbuf,
                &mut self.unloaded,
            );
        }
    }

    fn rfold<B, F: FnMut(B, T) -> B>(self, init: B, mut f: F) -> B {
        let Cloned {
            src,
            front,
            back,
            fbuf,
            bbuf,
            ..
        } = self;
        let mut acc = Some(bbuf.rfold(init, &mut f));
        for i in (front..back).rev() {
            src.visit_from(i, false, &mut |a, b| {
                let x = acc.take().expect("folding");
                let x = b.iter().rev().cloned().fold(x, &mut f);
                acc = Some(a.iter().rev().cloned().fold(x, &mut f));
            });
        }
        fbuf.rfold(acc.expect("folded"), f)
    }
}

impl<T: Clone, S: Source<T>> ExactSizeIterator for Cloned<T, S> {}
impl<T: Clone, S: Source<T>> FusedIterator for Cloned<T, S> {}

/// `remaining` of a [`Cloned`] (for `Debug` impls).
impl<T, S> Cloned<T, S> {
    pub(crate) fn remaining(&self) -> usize {
        self.unloaded + self.fbuf.len() + self.bbuf.len()
    }

    /// The source (for `Debug` impls).
    pub(crate) fn source(&self) -> &S {
        &self.src
    }
}
