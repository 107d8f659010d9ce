//! The std traits of `RemVec`: `Default`, `Debug`, `Clone`, `PartialEq`/`Eq` (with `Vec`
//! and slices), `Extend`, `FromIterator`, `From<Vec<T>>` and, with the `serde` feature,
//! `Serialize`/`Deserialize` as `Vec`'s sequence encoding.
//!
//! Everything that builds a vector from nothing (`Default`, `FromIterator`, `From`) uses the
//! process-wide default runtime; `RemVec::from_iter_in` and `RemVec::from_vec_in` name one.

use super::RemVec;
use crate::common::fail;
use aifm_core::{FarData, Scope};
use std::fmt;

/// An empty vector in the process-wide default runtime (`Runtime::global()`: 256 MiB of
/// local memory unless configured); [`RemVec::new_in`] chooses the runtime.
impl<T: FarData> Default for RemVec<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: FarData + fmt::Debug> fmt::Debug for RemVec<T> {
    /// Lists the elements (fetching what is remote), like `Vec`'s `Debug`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        let mut scope = Scope::new();
        for c in &self.chunks {
            match c.slice(&scope) {
                Ok(xs) => {
                    list.entries(xs.iter());
                }
                Err(e) => {
                    list.entry(&format_args!("<{e}>"));
                }
            }
            scope.renew();
        }
        list.finish()
    }
}

impl<T: FarData + Clone> Clone for RemVec<T> {
    /// Clones chunk by chunk into a new vector in the same runtime.
    fn clone(&self) -> Self {
        let mut out =
            RemVec::with_chunk_bytes_in(1, &self.far.rt).with_placement(self.far.placement);
        out.shift = self.shift;
        out.clone_from(self);
        out
    }

    fn clone_from(&mut self, source: &Self) {
        self.clear();
        self.shift = source.shift;
        let cl = self.chunk_len();
        let mut scope = Scope::new();
        for c in &source.chunks {
            let mut v = Vec::with_capacity(cl);
            v.extend_from_slice(c.deref(&scope));
            scope.renew();
            self.push_full(v);
        }
    }
}

impl<T: FarData + PartialEq> PartialEq for RemVec<T> {
    fn eq(&self, other: &Self) -> bool {
        if self.len != other.len {
            return false;
        }
        let mut scope = Scope::new();
        if self.shift == other.shift {
            for (a, b) in self.chunks.iter().zip(&other.chunks) {
                if a.deref(&scope) != b.deref(&scope) {
                    return false;
                }
                scope.renew();
            }
            return true;
        }
        for i in 0..self.len {
            if self.get(i, &scope) != other.get(i, &scope) {
                return false;
            }
            if i % 1024 == 1023 {
                scope.renew();
            }
        }
        true
    }
}

impl<T: FarData + Eq> Eq for RemVec<T> {}

impl<T: FarData + PartialEq> PartialEq<[T]> for RemVec<T> {
    fn eq(&self, other: &[T]) -> bool {
        if self.len != other.len() {
            return false;
        }
        let cl = self.chunk_len();
        let mut scope = Scope::new();
        for (c, b) in self.chunks.iter().zip(other.chunks(cl)) {
            if c.deref(&scope) != b {
                return false;
            }
            scope.renew();
        }
        true
    }
}

impl<T: FarData + PartialEq> PartialEq<Vec<T>> for RemVec<T> {
    fn eq(&self, other: &Vec<T>) -> bool {
        *self == other[..]
    }
}

impl<T: FarData> Extend<T> for RemVec<T> {
    #[track_caller]
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        if let Err(e) = self.try_extend(iter) {
            fail("RemVec::extend", e)
        }
    }
}

impl<'a, T: FarData + Copy> Extend<&'a T> for RemVec<T> {
    #[track_caller]
    fn extend<I: IntoIterator<Item = &'a T>>(&mut self, iter: I) {
        self.extend(iter.into_iter().copied())
    }
}

/// `collect()` builds in the process-wide default runtime (`Runtime::global()`: 256 MiB of
/// local memory unless configured), not in a runtime you built: use
/// [`RemVec::from_iter_in`] for that.
impl<T: FarData> FromIterator<T> for RemVec<T> {
    #[track_caller]
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut v = RemVec::new();
        v.extend(iter);
        v
    }
}

/// Builds in the process-wide default runtime (`Runtime::global()`); use
/// [`RemVec::from_vec_in`] to choose one.
impl<T: FarData> From<Vec<T>> for RemVec<T> {
    #[track_caller]
    fn from(v: Vec<T>) -> Self {
        v.into_iter().collect()
    }
}

#[cfg(feature = "serde")]
impl<T: FarData + Clone + serde::Serialize> serde::Serialize for RemVec<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

#[cfg(feature = "serde")]
impl<'de, T: FarData + serde::Deserialize<'de>> serde::Deserialize<'de> for RemVec<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Vec::<T>::deserialize(d).map(RemVec::from)
    }
}
