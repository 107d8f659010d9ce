//! Pieces every collection shares: chunk sizing, the offload policy, the error that hands a
//! value back, and the capability tokens that let one device find another.

use aifm_core::Error;
use std::fmt;

/// Default bytes of elements in one chunk (one remote object).
///
/// ```
/// let v = aifm_collections::RemVec::<u64>::new();
/// assert_eq!(v.chunk_len() * 8, aifm_collections::DEFAULT_CHUNK_BYTES);
/// ```
pub const DEFAULT_CHUNK_BYTES: usize = 4096;

/// Elements per chunk for a chunk of about `bytes`: a power of two (so an index splits into
/// chunk and offset with a shift and a mask), at least 1.
/// A `const fn`, so that a vector can split indexes by a constant where the chunk length is
/// fixed by the element type (inline chunks).
pub(crate) const fn chunk_shift<T>(bytes: usize) -> u32 {
    let size = std::mem::size_of::<T>();
    let per = bytes / if size == 0 { 1 } else { size };
    // Round down to a power of two.
    usize::BITS - 1 - if per == 0 { 1 } else { per }.leading_zeros()
}

/// Where an offloadable operation runs.
///
/// # Examples
///
/// ```
/// use aifm_collections::{Exec, RemVec};
/// let v: RemVec<u32> = (1..=100).collect();
/// assert_eq!(v.try_sum(Exec::Local).unwrap(), v.try_sum(Exec::Remote).unwrap());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Exec {
    /// Run next to the data when enough of it is in far memory, locally otherwise; if the
    /// offload fails for any reason, fall back to the local code (same result).
    #[default]
    Auto,
    /// Always run in this process (fetching what is remote).
    Local,
    /// Always run on the far-memory side (after writing back what is only local); fails if
    /// the backend cannot run the structure's device.
    Remote,
}

/// An operation failed and hands its value back (like `crossbeam_queue::ArrayQueue::push`).
///
/// # Examples
///
/// ```
/// use aifm_collections::Rejected;
/// let r = Rejected { error: aifm_core::Error::Timeout, value: 5 };
/// assert_eq!(r.to_string(), "far-memory request timed out");
/// assert_eq!(r.into_value(), 5);
/// ```
pub struct Rejected<T> {
    /// Why.
    pub error: Error,
    /// The value that was not stored.
    pub value: T,
}

impl<T> Rejected<T> {
    /// The value that was not stored.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = aifm_collections::Rejected { error: aifm_core::Error::Timeout, value: "v" };
    /// assert_eq!(r.into_value(), "v");
    /// ```
    pub fn into_value(self) -> T {
        self.value
    }
}

impl<T> fmt::Debug for Rejected<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejected")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for Rejected<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl<T> std::error::Error for Rejected<T> {}

/// A fresh 128-bit capability token, from the operating system's random source.
pub(crate) fn new_token() -> u128 {
    u128::from_le_bytes(aifm_core::wire::auth::random_bytes())
}

/// Panics with a core error (the panicking twin of a `try_*` method).
#[track_caller]
#[cold]
pub(crate) fn fail(what: &str, e: Error) -> ! {
    panic!("{what}: {e}")
}

/// The std trait family of a chunked sequence (`Default`, `Debug`, `Clone` (same chunk size),
/// `PartialEq`, `Extend` by `$push`, `FromIterator` and `From<Vec<T>>` into the default
/// runtime) and, with the
/// `serde` feature, `Serialize`/`Deserialize` as its std twin's sequence encoding.
///
/// The type needs `new`, `with_chunk_bytes_in`, `iter`, `len` and the fields `rt`, `shift`
/// and `len`.
macro_rules! sequence_traits {
    ($ty:ident, $push:ident) => {
        /// An empty sequence in the process-wide default runtime (`Runtime::global()`: 256
        /// MiB of local memory unless configured); `new_in` chooses the runtime.
        impl<T: FarData> Default for $ty<T> {
            fn default() -> Self {
                Self::new()
            }
        }

        impl<T: FarData + Clone + fmt::Debug> fmt::Debug for $ty<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list().entries(self.iter()).finish()
            }
        }

        impl<T: FarData + Clone> Clone for $ty<T> {
            fn clone(&self) -> Self {
                let mut c = $ty::with_chunk_bytes_in(1, &self.rt);
                c.shift = self.shift;
                c.extend(self.iter());
                c
            }
        }

        impl<T: FarData + Clone + PartialEq> PartialEq for $ty<T> {
            fn eq(&self, other: &Self) -> bool {
                self.len == other.len && self.iter().eq(other.iter())
            }
        }

        impl<T: FarData> Extend<T> for $ty<T> {
            #[track_caller]
            fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
                iter.into_iter().for_each(|x| self.$push(x));
            }
        }

        /// `collect()` builds in the process-wide default runtime (`Runtime::global()`: 256
        /// MiB of local memory unless configured), not in a runtime you built: use
        /// `from_iter_in` for that.
        impl<T: FarData> FromIterator<T> for $ty<T> {
            #[track_caller]
            fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
                let mut c = $ty::new();
                c.extend(iter);
                c
            }
        }

        /// Builds in the process-wide default runtime (`Runtime::global()`); use
        /// `from_iter_in` to choose one.
        impl<T: FarData> From<Vec<T>> for $ty<T> {
            #[track_caller]
            fn from(v: Vec<T>) -> Self {
                v.into_iter().collect()
            }
        }

        #[cfg(feature = "serde")]
        impl<T: FarData + Clone + serde::Serialize> serde::Serialize for $ty<T> {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                use serde::ser::SerializeSeq;
                let mut seq = s.serialize_seq(Some(self.len()))?;
                self.iter().try_for_each(|x| seq.serialize_element(&x))?;
                seq.end()
            }
        }

        #[cfg(feature = "serde")]
        impl<'de, T: FarData + serde::Deserialize<'de>> serde::Deserialize<'de> for $ty<T> {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> std::result::Result<Self, D::Error> {
                Ok(Vec::<T>::deserialize(d)?.into_iter().collect())
            }
        }
    };
}
pub(crate) use sequence_traits;
