//! Iterators over a `RemList`: clones from either end (`Iter`), and the owning `IntoIter`.

use super::{RemList, NIL};
use aifm_core::{FarData, Scope};
use std::fmt;

/// Iterator over clones of a [`RemList`]'s elements, from either end; see [`RemList::iter`].
///
/// ```
/// let l: aifm_collections::RemList<u8> = (0..3).collect();
/// let mut it = l.iter();
/// assert_eq!((it.next(), it.next_back()), (Some(0), Some(2)));
/// ```
pub struct Iter<'a, T: FarData> {
    pub(super) list: &'a RemList<T>,
    pub(super) front: usize,
    pub(super) back: usize,
    pub(super) fbuf: std::vec::IntoIter<T>,
    pub(super) bbuf: std::vec::IntoIter<T>,
    pub(super) remaining: usize,
}

impl<T: FarData + Clone> Iter<'_, T> {
    fn load(&self, i: usize) -> Vec<T> {
        let scope = Scope::new();
        self.list.nodes[i]
            .chunk
            .as_ref()
            .expect("live node")
            .deref(&scope)
            .clone()
    }
}

impl<T: FarData + Clone> Iterator for Iter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        if self.remaining == 0 {
            return None;
        }
        loop {
            if let Some(x) = self.fbuf.next() {
                self.remaining -= 1;
                return Some(x);
            }
            if self.front == NIL {
                // The back buffer holds the rest.
                let x = self.bbuf.next();
                self.remaining -= x.is_some() as usize;
                return x;
            }
            let i = self.front;
            self.fbuf = self.load(i).into_iter();
            self.front = if i == self.back {
                self.back = NIL;
                NIL
            } else {
                self.list.nodes[i].next
            };
            self.list.prefetch(self.front);
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<T: FarData + Clone> DoubleEndedIterator for Iter<'_, T> {
    fn next_back(&mut self) -> Option<T> {
        if self.remaining == 0 {
            return None;
        }
        loop {
            if let Some(x) = self.bbuf.next_back() {
                self.remaining -= 1;
                return Some(x);
            }
            if self.back == NIL {
                let x = self.fbuf.next_back();
                self.remaining -= x.is_some() as usize;
                return x;
            }
            let i = self.back;
            self.bbuf = self.load(i).into_iter();
            self.back = if i == self.front {
                self.front = NIL;
                NIL
            } else {
                self.list.nodes[i].prev
            };
            self.list.prefetch(self.back);
        }
    }
}

impl<T: FarData + Clone> ExactSizeIterator for Iter<'_, T> {}

impl<T: FarData> fmt::Debug for Iter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter")
            .field("remaining", &self.remaining)
            .finish()
    }
}

impl<'a, T: FarData + Clone> IntoIterator for &'a RemList<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

/// Owning iterator of a [`RemList`] (pops from the front).
///
/// ```
/// let l: aifm_collections::RemList<u8> = (0..3).collect();
/// assert_eq!(l.into_iter().rev().next(), Some(2));
/// ```
pub struct IntoIter<T: FarData>(RemList<T>);

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

impl<T: FarData> fmt::Debug for IntoIter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntoIter")
            .field("len", &self.0.len)
            .finish()
    }
}

impl<T: FarData> IntoIterator for RemList<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;
    fn into_iter(self) -> IntoIter<T> {
        IntoIter(self)
    }
}

crate::common::sequence_traits!(RemList, push_back);
