//! The workspace's one policy for poisoned locks: **recover**.
//!
//! A std `Mutex` or `RwLock` is *poisoned* when a thread panics while holding it, and every
//! later `lock()` then returns an error. This runtime recovers instead: [`MutexExt::locked`],
//! [`RwLockExt::reading`] and [`RwLockExt::writing`] take the guard whether or not the lock is
//! poisoned, and every lock in `aifm-core`, `aifm-collections` and `aifm-server` is taken
//! through them (tests may still `unwrap`).
//!
//! Why recover rather than propagate: code that is not the runtime's own (a value's `encode`,
//! `decode` or `Drop`, an evacuation handler, a server-side device) is called through the
//! runtime's panic containment (module `panics`) or the server's dispatch, which turn its
//! panic into [`crate::Error::Panicked`] and let the caller go on. If that panic also poisoned a runtime
//! lock, propagating the poison would turn one contained failure into a panic on every later
//! use of the lock: a wedged runtime, or a server that one request takes down.
//!
//! What recovery assumes: the runtime's own critical sections keep the data they protect valid
//! at every point where they can panic (they do not leave half-built indexes behind a
//! fallible call). Data that a panicking user or device operation was changing is left as that
//! operation left it, which is the contract of a panicking `&mut self` method on a std
//! collection.
//!
//! # Examples
//!
//! ```
//! use aifm_core::sync::MutexExt;
//! use std::sync::Mutex;
//!
//! let m = Mutex::new(1);
//! let _ = std::panic::catch_unwind(|| {
//!     let _g = m.locked();
//!     panic!("poisons the lock");
//! });
//! assert!(m.is_poisoned());
//! assert_eq!(*m.locked(), 1);
//! ```

use crossbeam_utils::sync::{ShardedLock, ShardedLockReadGuard, ShardedLockWriteGuard};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// [`Mutex::lock`] under the workspace's policy (see the module docs).
pub trait MutexExt<T: ?Sized> {
    /// Locks the mutex, recovering the guard if the lock is poisoned.
    fn locked(&self) -> MutexGuard<'_, T>;
}

impl<T: ?Sized> MutexExt<T> for Mutex<T> {
    #[inline]
    fn locked(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `read` and `write` of a reader-writer lock (std's `RwLock`, crossbeam's `ShardedLock`)
/// under the workspace's policy (see the module docs).
///
/// # Examples
///
/// ```
/// use aifm_core::sync::RwLockExt;
/// use std::sync::RwLock;
///
/// let l = RwLock::new(vec![1]);
/// l.writing().push(2);
/// assert_eq!(*l.reading(), [1, 2]);
/// ```
pub trait RwLockExt {
    /// The guard of a shared hold.
    type Read<'a>
    where
        Self: 'a;
    /// The guard of an exclusive hold.
    type Write<'a>
    where
        Self: 'a;
    /// Takes the lock shared, recovering the guard if the lock is poisoned.
    fn reading(&self) -> Self::Read<'_>;
    /// Takes the lock exclusive, recovering the guard if the lock is poisoned.
    fn writing(&self) -> Self::Write<'_>;
}

impl<T: ?Sized> RwLockExt for RwLock<T> {
    type Read<'a>
        = RwLockReadGuard<'a, T>
    where
        T: 'a;
    type Write<'a>
        = RwLockWriteGuard<'a, T>
    where
        T: 'a;

    #[inline]
    fn reading(&self) -> RwLockReadGuard<'_, T> {
        self.read().unwrap_or_else(PoisonError::into_inner)
    }

    #[inline]
    fn writing(&self) -> RwLockWriteGuard<'_, T> {
        self.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T: ?Sized> RwLockExt for ShardedLock<T> {
    type Read<'a>
        = ShardedLockReadGuard<'a, T>
    where
        T: 'a;
    type Write<'a>
        = ShardedLockWriteGuard<'a, T>
    where
        T: 'a;

    #[inline]
    fn reading(&self) -> ShardedLockReadGuard<'_, T> {
        self.read().unwrap_or_else(PoisonError::into_inner)
    }

    #[inline]
    fn writing(&self) -> ShardedLockWriteGuard<'_, T> {
        self.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_rwlock_still_reads_and_writes() {
        let l = RwLock::new(vec![1]);
        let _ = std::panic::catch_unwind(|| {
            let _g = l.writing();
            panic!("poisons the lock");
        });
        assert!(l.is_poisoned());
        l.writing().push(2);
        assert_eq!(*l.reading(), [1, 2]);
    }
}
