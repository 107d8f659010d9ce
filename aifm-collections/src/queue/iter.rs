//! The iterators of `RemQueue`: clones from either end (built on the shared chunk iterator,
//! no scope open between calls), and the owning iterator that pops from either end.

use super::ring::Ring;
use super::RemQueue;
use crate::vec::cloned::{Cloned, Source};
use aifm_core::{FarData, RemBox, Scope};
use std::collections::VecDeque;
use std::fmt;
use std::iter::FusedIterator;

/// The chunks of a queue as an iterator source.
pub(super) struct Chunks<'a, T: FarData>(pub(super) &'a VecDeque<RemBox<Ring<T>>>);

impl<T: FarData> Source<T> for Chunks<'_, T> {
    #[track_caller]
    fn visit(&self, i: usize, f: &mut dyn FnMut(&[T], &[T])) {
        let scope = Scope::new();
        let (a, b) = self.0[i].deref(&scope).0.as_slices();
        f(a, b)
    }
}

/// Iterator over clones of a [`RemQueue`]'s elements, from either end; see
/// [`RemQueue::iter`]. No scope is open between calls to `next`; `fold` and its kin run on
/// each chunk in place.
///
/// ```
/// let q: aifm_collections::RemQueue<u8> = (0..2).collect();
/// assert_eq!(q.iter().collect::<Vec<_>>(), [0, 1]);
/// ```
pub struct Iter<'a, T: FarData>(pub(super) Cloned<T, Chunks<'a, T>>);

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
            .finish()
    }
}

/// Owning iterator of a [`RemQueue`] (pops from the front, or from the back when reversed).
///
/// ```
/// let q: aifm_collections::RemQueue<u8> = (0..2).collect();
/// assert_eq!(q.into_iter().len(), 2);
/// ```
pub struct IntoIter<T: FarData>(pub(super) RemQueue<T>);

impl<T: FarData> Iterator for IntoIter<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.0.pop_front()
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.0.len, Some(self.0.len))
    }
}

impl<T: FarData> DoubleEndedIterator for IntoIter<T> {
    fn next_back(&mut self) -> Option<T> {
        self.0.pop_back()
    }
}

impl<T: FarData> ExactSizeIterator for IntoIter<T> {}
impl<T: FarData> FusedIterator for IntoIter<T> {}

impl<T: FarData> fmt::Debug for IntoIter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntoIter")
            .field("len", &self.0.len)
            .finish()
    }
}

impl<T: FarData> IntoIterator for RemQueue<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;
    fn into_iter(self) -> IntoIter<T> {
        IntoIter(self)
    }
}

impl<'a, T: FarData + Clone> IntoIterator for &'a RemQueue<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}
