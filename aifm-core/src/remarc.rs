//! `RemArc<T>`: a shared remoteable pointer (the original's `SharedPtr`).
//!
//! Clones of a `RemArc` share one far object: it is fetched once for all of them, evacuated
//! once, and freed with the last strong clone. It is an [`Arc`] of the [`RemBox`] that owns
//! the object, so the counting, weak references and `Send`/`Sync` are exactly `Arc`'s:
//! `RemArc<T>` is `Send` and `Sync` when `T` is both, as `Arc<T>` is. The counts live
//! in ordinary memory with the `Arc` (two words), the object in the runtime's heap.
//!
//! Only shared access is offered while other clones exist ([`RemArc::deref`]);
//! [`RemArc::get_mut`] gives `&mut T` to the one clone that is unique, as `Arc::get_mut` does.
//! Types that need shared mutation put a `Mutex` or atomics inside (they are `FarData` through
//! [`crate::Serde`] or their own impl): the runtime never keeps two live copies of an object a
//! reference can reach, so such updates are never lost to a migration.

use crate::codec::FarData;
use crate::error::Result;
use crate::rembox::RemBox;
use crate::runtime::Runtime;
use crate::scope::Scope;
use std::sync::{Arc, Weak};

/// A shared, reference-counted value that may live in local or far memory.
///
/// # Examples
///
/// ```
/// use aifm_core::{RemArc, Runtime, Scope};
/// let rt = Runtime::builder().local_memory(4 << 20).build().unwrap();
/// let a = RemArc::new_in([7u64; 64], &rt);
/// let b = a.clone();                       // the same far object
/// rt.evacuate_now();                       // evacuated once, for both
/// let scope = Scope::new();
/// assert_eq!(b.deref(&scope)[0], 7);      // fetched once, for both
/// assert!(a.is_local() && RemArc::ptr_eq(&a, &b));
/// assert_eq!(RemArc::strong_count(&a), 2);
/// ```
///
/// Like `Arc<T>`, it crosses threads only when `T` is both `Send` and `Sync`:
///
/// ```compile_fail
/// fn send<T: Send>(_: T) {}
/// // `Cell` is `Send` but not `Sync`: two threads could reach it at once.
/// send(aifm_core::RemArc::new(aifm_core::Serde(std::cell::Cell::new(1u8))));
/// ```
pub struct RemArc<T: FarData> {
    shared: Arc<RemBox<T>>,
}

/// A weak reference to a [`RemArc`]'s object: it does not keep the object alive.
///
/// # Examples
///
/// ```
/// let a = aifm_core::RemArc::new(5u32);
/// let w = aifm_core::RemArc::downgrade(&a);
/// assert!(w.upgrade().is_some());
/// drop(a);
/// assert!(w.upgrade().is_none());
/// ```
pub struct RemWeak<T: FarData> {
    shared: Weak<RemBox<T>>,
}

impl<T: FarData> RemArc<T> {
    /// Moves `value` into the default runtime's local heap.
    ///
    /// # Panics
    /// As [`RemBox::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// let a = aifm_core::RemArc::new(String::from("shared"));
    /// assert_eq!(a.deref(&aifm_core::Scope::new()), "shared");
    /// ```
    #[track_caller]
    pub fn new(value: T) -> Self {
        Self::from_box(RemBox::new(value))
    }

    /// Moves `value` into `runtime`'s local heap.
    ///
    /// # Panics
    /// As [`RemBox::new_in`].
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// assert!(aifm_core::RemArc::new_in(1u8, &rt).is_local());
    /// ```
    #[track_caller]
    pub fn new_in(value: T, runtime: &Runtime) -> Self {
        Self::from_box(RemBox::new_in(value, runtime))
    }

    /// Moves `value` into `runtime`'s local heap, or says why it cannot.
    ///
    /// # Errors
    /// As [`RemBox::try_new_in`].
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// assert!(aifm_core::RemArc::try_new_in([0u8; 1 << 20], &rt).is_err());
    /// ```
    pub fn try_new_in(value: T, runtime: &Runtime) -> Result<Self> {
        RemBox::try_new_in(value, runtime).map(Self::from_box)
    }

    /// Shares an existing box's object.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = aifm_core::RemArc::from_box(aifm_core::RemBox::new(3i64));
    /// assert_eq!(*a.deref(&aifm_core::Scope::new()), 3);
    /// ```
    pub fn from_box(b: RemBox<T>) -> Self {
        RemArc {
            shared: Arc::new(b),
        }
    }

    /// Borrows the value for as long as `scope` lives, fetching it if it is remote.
    ///
    /// # Panics
    /// If far memory fails (see [`RemArc::try_deref`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let a = aifm_core::RemArc::new(vec![1u32, 2]);
    /// assert_eq!(a.deref(&aifm_core::Scope::new()).len(), 2);
    /// ```
    #[inline]
    #[track_caller]
    pub fn deref<'a>(&'a self, scope: &'a Scope) -> &'a T {
        self.shared.deref(scope)
    }

    /// Borrows the value, or reports why far memory could not provide it.
    ///
    /// # Errors
    /// As [`RemBox::try_deref`].
    ///
    /// # Examples
    ///
    /// ```
    /// let a = aifm_core::RemArc::new(1u16);
    /// assert_eq!(*a.try_deref(&aifm_core::Scope::new()).unwrap(), 1);
    /// ```
    #[inline]
    pub fn try_deref<'a>(&'a self, scope: &'a Scope) -> Result<&'a T> {
        self.shared.try_deref(scope)
    }

    /// Borrows the value for a one-time read (see [`RemBox::deref_nt`]).
    ///
    /// # Errors
    /// As [`RemBox::try_deref`].
    ///
    /// # Examples
    ///
    /// ```
    /// let a = aifm_core::RemArc::new(4u8);
    /// assert_eq!(*a.deref_nt(&aifm_core::Scope::new()).unwrap(), 4);
    /// ```
    #[inline]
    pub fn deref_nt<'a>(&'a self, scope: &'a Scope) -> Result<&'a T> {
        self.shared.deref_nt(scope)
    }

    /// A mutable borrow if this is the only strong clone and no weak one exists (as
    /// `Arc::get_mut`); `None` otherwise.
    ///
    /// # Panics
    /// If far memory fails while fetching the value.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut a = aifm_core::RemArc::new(1u64);
    /// let scope = aifm_core::Scope::new();
    /// *a.get_mut(&scope).unwrap() += 1;
    /// let b = a.clone();
    /// assert!(a.get_mut(&scope).is_none());
    /// assert_eq!(*b.deref(&scope), 2);
    /// ```
    #[track_caller]
    pub fn get_mut<'a>(&'a mut self, scope: &'a Scope) -> Option<&'a mut T> {
        Arc::get_mut(&mut self.shared).map(|b| b.deref_mut(scope))
    }

    /// The value, if this is the only strong clone; otherwise the `RemArc` back.
    ///
    /// # Errors
    /// The `RemArc` itself when other strong clones exist.
    ///
    /// # Panics
    /// If far memory fails while fetching the value.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = aifm_core::RemArc::new(9u8);
    /// let b = a.clone();
    /// let a = aifm_core::RemArc::try_unwrap(a).unwrap_err();
    /// drop(b);
    /// assert_eq!(aifm_core::RemArc::try_unwrap(a).ok(), Some(9));
    /// ```
    #[track_caller]
    pub fn try_unwrap(this: Self) -> std::result::Result<T, Self> {
        Arc::try_unwrap(this.shared)
            .map(RemBox::into_inner)
            .map_err(|shared| RemArc { shared })
    }

    /// A weak reference to the object.
    pub fn downgrade(this: &Self) -> RemWeak<T> {
        RemWeak {
            shared: Arc::downgrade(&this.shared),
        }
    }

    /// Strong clones of this object.
    pub fn strong_count(this: &Self) -> usize {
        Arc::strong_count(&this.shared)
    }

    /// Weak references to this object.
    pub fn weak_count(this: &Self) -> usize {
        Arc::weak_count(&this.shared)
    }

    /// Whether two `RemArc`s share one object.
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        Arc::ptr_eq(&a.shared, &b.shared)
    }

    /// Whether the value is in local memory right now (a hint).
    pub fn is_local(&self) -> bool {
        self.shared.is_local()
    }

    /// The runtime the object belongs to.
    pub fn runtime(&self) -> Runtime {
        self.shared.runtime()
    }

    /// The box that owns the object (for tickets, prefetching and the like).
    pub fn as_box(&self) -> &RemBox<T> {
        &self.shared
    }
}

impl<T: FarData> Clone for RemArc<T> {
    /// Another handle to the same object (no copy is made).
    fn clone(&self) -> Self {
        RemArc {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T: FarData> RemWeak<T> {
    /// A strong handle, if the object is still alive.
    pub fn upgrade(&self) -> Option<RemArc<T>> {
        self.shared.upgrade().map(|shared| RemArc { shared })
    }

    /// Strong clones of the object (0 once it is gone).
    pub fn strong_count(&self) -> usize {
        self.shared.strong_count()
    }
}

impl<T: FarData> Clone for RemWeak<T> {
    fn clone(&self) -> Self {
        RemWeak {
            shared: self.shared.clone(),
        }
    }
}

impl<T: FarData> std::fmt::Debug for RemArc<T> {
    /// Shows where the value is and how many share it, without fetching it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemArc")
            .field("object", &*self.shared)
            .field("strong", &Arc::strong_count(&self.shared))
            .finish()
    }
}

impl<T: FarData> std::fmt::Debug for RemWeak<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemWeak")
            .field("strong", &self.shared.strong_count())
            .finish()
    }
}

impl<T: FarData> From<RemBox<T>> for RemArc<T> {
    fn from(b: RemBox<T>) -> Self {
        RemArc::from_box(b)
    }
}
