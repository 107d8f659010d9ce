//! The clone-yielding, double-ended iterator that every chunked sequence (`RemVec`,
//! `RemQueue`) builds its `iter()` from.
//!
//! A [`Source`] is a run of chunks `0..n`; [`Source::visit`] dereferences chunk `i` inside a
//! scope of its own and shows its elements as (at most) two slices, in order. [`Cloned`]
//! walks the run from both ends:
//!
//! * `next` / `next_back` clone one chunk's elements into a buffer (one per end, reused
//!   chunk after chunk) the first time they enter it, so **no scope is open between calls**: a scan, several zipped scans, or a scan whose
//!   body calls `evacuate_now` or blocks never keep the evacuator waiting;
//! * `fold` / `rfold` (and so `sum`, `for_each`, `count`, `max`, … and `for` loops that the
//!   compiler turns into them) run directly on each chunk's slices, one scope per chunk,
//!   renewed between chunks: no buffer, no copy of a local chunk.
//!
//! The two ends never load the same chunk: when they meet, the end that arrives second takes
//! what is left from the other end's buffer.

use std::collections::VecDeque;
use std::iter::FusedIterator;

/// A run of chunks an iterator can visit one at a time.
pub(crate) trait Source<T> {
    /// Calls `f` with chunk `i`'s elements in order (`b` follows `a`; often empty), inside a
    /// scope that ends when `visit` returns. Panics if far memory fails.
    fn visit(&self, i: usize, f: &mut dyn FnMut(&[T], &[T]));
}

/// Clones of a run of chunks' elements, from either end; see the module documentation.
pub(crate) struct Cloned<T, S> {
    src: S,
    /// Chunks not yet loaded: `front..back`.
    front: usize,
    back: usize,
    /// Elements the front end loaded and has not yielded (the back end's, once they meet).
    fbuf: VecDeque<T>,
    bbuf: VecDeque<T>,
    remaining: usize,
}

impl<T: Clone, S: Source<T>> Cloned<T, S> {
    /// Iterates over chunks `0..chunks` of `src`, which hold `len` elements in all.
    pub(crate) fn new(src: S, chunks: usize, len: usize) -> Self {
        Cloned {
            src,
            front: 0,
            back: chunks,
            fbuf: VecDeque::new(),
            bbuf: VecDeque::new(),
            remaining: len,
        }
    }

    /// Clones chunk `i` into `buf` (emptied first; its allocation is reused chunk after
    /// chunk).
    fn load(src: &S, i: usize, buf: &mut VecDeque<T>) {
        buf.clear();
        src.visit(i, &mut |a, b| {
            buf.extend(a.iter().cloned());
            buf.extend(b.iter().cloned());
        });
    }
}

impl<T: Clone, S: Source<T>> Iterator for Cloned<T, S> {
    type Item = T;

    #[inline]
    fn next(&mut self) -> Option<T> {
        loop {
            if let Some(x) = self.fbuf.pop_front() {
                self.remaining -= 1;
                return Some(x);
            }
            if self.front == self.back {
                let x = self.bbuf.pop_front();
                self.remaining -= x.is_some() as usize;
                return x;
            }
            Self::load(&self.src, self.front, &mut self.fbuf);
            self.front += 1;
        }
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
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
        let mut acc = Some(fbuf.into_iter().fold(init, &mut f));
        for i in front..back {
            // Only chunk i's own scope is open while `f` runs on its elements.
            src.visit(i, &mut |a, b| {
                let x = acc.take().expect("folding");
                let x = a.iter().cloned().fold(x, &mut f);
                acc = Some(b.iter().cloned().fold(x, &mut f));
            });
        }
        bbuf.into_iter().fold(acc.expect("folded"), f)
    }
}

impl<T: Clone, S: Source<T>> DoubleEndedIterator for Cloned<T, S> {
    #[inline]
    fn next_back(&mut self) -> Option<T> {
        loop {
            if let Some(x) = self.bbuf.pop_back() {
                self.remaining -= 1;
                return Some(x);
            }
            if self.front == self.back {
                let x = self.fbuf.pop_back();
                self.remaining -= x.is_some() as usize;
                return x;
            }
            self.back -= 1;
            Self::load(&self.src, self.back, &mut self.bbuf);
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
        let mut acc = Some(bbuf.into_iter().rfold(init, &mut f));
        for i in (front..back).rev() {
            src.visit(i, &mut |a, b| {
                let x = acc.take().expect("folding");
                let x = b.iter().rev().cloned().fold(x, &mut f);
                acc = Some(a.iter().rev().cloned().fold(x, &mut f));
            });
        }
        fbuf.into_iter().rfold(acc.expect("folded"), f)
    }
}

impl<T: Clone, S: Source<T>> ExactSizeIterator for Cloned<T, S> {}
impl<T: Clone, S: Source<T>> FusedIterator for Cloned<T, S> {}

/// `remaining` of a [`Cloned`] (for `Debug` impls).
impl<T, S> Cloned<T, S> {
    pub(crate) fn remaining(&self) -> usize {
        self.remaining
    }

    /// The source (for `Debug` impls).
    pub(crate) fn source(&self) -> &S {
        &self.src
    }
}
