//! `RemBox<T>`: the unique remoteable pointer.
//!
//! A `RemBox` is one pointer wide: it points at its *slot* (module `slots`: 16 bytes, or 24
//! for a box under a key of its own), whose word says
//! where the object is. Dereferencing takes a [`Scope`]; the returned reference borrows both
//! the box and the scope. The local, hot case is a load, an AND, a branch and an AND:
//!
//! ```text
//! w = slot.word.load(Acquire)          // a plain mov on x86
//! if w & READ_SLOW == 0 { return &*(w & ADDR_MASK) }
//! ```
//!
//! Everything else (fetching, migrating an object under evacuation, heating, dirtying) is the
//! slow path in the `object` module.

use crate::backend::OBJECT_STORE;
use crate::codec::FarData;
use crate::error::{Error, Result};
use crate::heap::{HasVTable, Header};
use crate::object::{self, FarCopy, Mode};
use crate::runtime::Runtime;
use crate::runtime::Structure;
use crate::scope::Scope;
use crate::slots::{self, Slot};
use crate::state::Inner;
use crate::word::*;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A uniquely owned value that may live in local or far memory.
///
/// # Examples
///
/// ```
/// use aifm_core::{RemBox, Scope};
/// let mut b = RemBox::new(String::from("far"));   // the default runtime
/// let scope = Scope::new();
/// b.deref_mut(&scope).push_str(" memory");
/// assert_eq!(b.deref(&scope), "far memory");
/// drop(scope);
/// assert_eq!(b.into_inner(), "far memory");
/// ```
pub struct RemBox<T: FarData> {
    slot: NonNull<Slot>,
    _owns: PhantomData<T>,
}

// SAFETY: a RemBox owns its T like a Box does; the runtime moves it between threads only
// while no reference exists.
unsafe impl<T: FarData + Send> Send for RemBox<T> {}
// SAFETY: `&RemBox<T>` hands out only `&T`.
unsafe impl<T: FarData + Sync> Sync for RemBox<T> {}

impl<T: FarData> RemBox<T> {
    const CHECK: () = assert!(
        std::mem::align_of::<T>() <= 8,
        "far objects are 8-byte aligned; types with larger alignment cannot be RemBoxed"
    );

    /// Moves `value` into the default runtime's local heap.
    ///
    /// # Panics
    /// If the value is larger than a region, or (inside a scope) local memory and its overdraft
    /// are exhausted. [`RemBox::try_new_in`] reports these instead.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = aifm_core::RemBox::new(7u64);
    /// assert_eq!(*b.deref(&aifm_core::Scope::new()), 7);
    /// ```
    #[track_caller]
    pub fn new(value: T) -> Self {
        Self::new_in(value, Runtime::global())
    }

    /// Moves `value` into `runtime`'s local heap.
    ///
    /// # Panics
    /// As [`RemBox::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let b = aifm_core::RemBox::new_in([1u8; 16], &rt);
    /// assert!(b.is_local());
    /// ```
    #[track_caller]
    pub fn new_in(value: T, runtime: &Runtime) -> Self {
        match Self::try_new_in(value, runtime) {
            Ok(b) => b,
            Err(e) => panic!("RemBox::new_in: {e}"),
        }
    }

    /// Moves `value` into `runtime`'s local heap.
    ///
    /// # Errors
    /// [`Error::ObjectTooLarge`]; [`Error::LocalMemoryExhausted`] inside a scope when the
    /// budget and its overdraft are used up.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let err = aifm_core::RemBox::try_new_in([0u8; 1 << 20], &rt).unwrap_err();
    /// assert!(matches!(err, aifm_core::Error::ObjectTooLarge { .. }));
    /// ```
    pub fn try_new_in(value: T, runtime: &Runtime) -> Result<Self> {
        Self::place(value, &runtime.inner, OBJECT_STORE, None)
    }

    /// Allocates `value` as object `key` of a registered data structure; it is evacuated
    /// through the structure's handler and stored under `(structure, key)` in far memory.
    /// Keys must be unique within the structure while their objects live.
    ///
    /// # Errors
    /// As [`RemBox::try_new_in`].
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let s = rt.register_structure(aifm_core::backend::OBJECT_STORE_DEVICE, &[], None).unwrap();
    /// let b = aifm_core::RemBox::new_in_structure(5u32, &s, 99).unwrap();
    /// assert_eq!(b.key(), 99);
    /// ```
    pub fn new_in_structure(value: T, structure: &Structure, key: u64) -> Result<Self> {
        Self::place(
            value,
            &structure.shared.runtime.inner,
            structure.shared.id,
            Some(key),
        )
    }

    fn place(value: T, rt: &Arc<Inner>, ds: u32, key: Option<u64>) -> Result<Self> {
        let () = Self::CHECK;
        // A box under a key of its own needs a slot that stores it; any other's key is its
        // plain slot's index.
        let slot = match key {
            None => rt.alloc_slot(),
            Some(key) => {
                let slot = rt.alloc_keyed_slot();
                slots::set_key(slot, key);
                slot
            }
        };
        // SAFETY: a free slot from the pool, ours alone.
        if let Err(e) = unsafe { object::construct(rt, value, ds, slot) } {
            rt.free_slot(slot);
            return Err(e);
        }
        // Every box holds one count of its runtime (released in `drop`).
        std::mem::forget(Arc::clone(rt));
        Ok(RemBox {
            slot,
            _owns: PhantomData,
        })
    }

    pub(crate) fn slot_ptr(&self) -> NonNull<Slot> {
        self.slot
    }

    fn inner(&self) -> &Inner {
        // SAFETY: the chunk header names the runtime, which this box keeps alive.
        unsafe { &*(slots::chunk_of(self.slot).owner as *const Inner) }
    }

    #[inline]
    fn word(&self) -> u64 {
        slots::word(self.slot).load(Ordering::Acquire)
    }

    #[cold]
    fn slow(&self, mode: Mode) -> Result<*mut T> {
        // SAFETY: we own the slot; the scope borrowed by our caller is open on this thread;
        // the vtable is T's.
        unsafe { object::slow_path(self.inner(), self.slot, mode, &T::VTABLE) }.map(|p| p as *mut T)
    }

    /// Borrows the value for as long as `scope` lives, fetching it if it is remote.
    ///
    /// # Panics
    /// If far memory fails (see [`RemBox::try_deref`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let b = aifm_core::RemBox::new(String::from("hi"));
    /// let scope = aifm_core::Scope::new();
    /// assert_eq!(b.deref(&scope), "hi");
    /// ```
    #[inline]
    #[track_caller]
    pub fn deref<'a>(&'a self, scope: &'a Scope) -> &'a T {
        let w = self.word();
        if w & READ_SLOW == 0 {
            // SAFETY: a fast-path word is the address of a live local T; the open scope keeps
            // the evacuator from moving or freeing it while the borrow lasts.
            return unsafe { &*(addr(w) as *const T) };
        }
        match self.try_deref(scope) {
            Ok(r) => r,
            Err(e) => panic!("RemBox::deref: {e}"),
        }
    }

    /// Borrows the value, or reports why far memory could not provide it.
    ///
    /// # Errors
    /// Backend errors ([`Error::Disconnected`], [`Error::Timeout`], ...),
    /// [`Error::LocalMemoryExhausted`], [`Error::Detached`].
    ///
    /// # Examples
    ///
    /// ```
    /// let b = aifm_core::RemBox::new(3i32);
    /// let scope = aifm_core::Scope::new();
    /// assert_eq!(*b.try_deref(&scope).unwrap(), 3);
    /// ```
    #[inline]
    pub fn try_deref<'a>(&'a self, _scope: &'a Scope) -> Result<&'a T> {
        let w = self.word();
        if w & READ_SLOW == 0 {
            // SAFETY: as in `deref`.
            return Ok(unsafe { &*(addr(w) as *const T) });
        }
        // SAFETY: as in `deref`; the slow path returns a local, stable address.
        self.slow(Mode::Read).map(|p| unsafe { &*p })
    }

    /// Borrows the value mutably for as long as `scope` lives (and marks it dirty).
    ///
    /// # Panics
    /// If far memory fails (see [`RemBox::try_deref_mut`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut b = aifm_core::RemBox::new(vec![1u32]);
    /// let scope = aifm_core::Scope::new();
    /// b.deref_mut(&scope).push(2);
    /// assert_eq!(b.deref(&scope).len(), 2);
    /// ```
    ///
    /// Two mutable references to one box cannot coexist, even from one scope:
    ///
    /// ```compile_fail
    /// let mut b = aifm_core::RemBox::new(1u64);
    /// let scope = aifm_core::Scope::new();
    /// let x = b.deref_mut(&scope);
    /// let y = b.deref_mut(&scope);
    /// *x += *y;
    /// ```
    #[inline]
    #[track_caller]
    pub fn deref_mut<'a>(&'a mut self, scope: &'a Scope) -> &'a mut T {
        let w = self.word();
        if w & WRITE_SLOW == 0 {
            // SAFETY: as in `deref`, and `&mut self` makes this the only reference.
            return unsafe { &mut *(addr(w) as *mut T) };
        }
        match self.try_deref_mut(scope) {
            Ok(r) => r,
            Err(e) => panic!("RemBox::deref_mut: {e}"),
        }
    }

    /// Borrows the value mutably, or reports why far memory could not provide it.
    ///
    /// # Errors
    /// As [`RemBox::try_deref`].
    ///
    /// # Examples
    ///
    /// ```
    /// let mut b = aifm_core::RemBox::new(1u64);
    /// let scope = aifm_core::Scope::new();
    /// *b.try_deref_mut(&scope).unwrap() += 1;
    /// assert_eq!(*b.deref(&scope), 2);
    /// ```
    #[inline]
    pub fn try_deref_mut<'a>(&'a mut self, _scope: &'a Scope) -> Result<&'a mut T> {
        let w = self.word();
        if w & WRITE_SLOW == 0 {
            // SAFETY: as in `deref_mut`.
            return Ok(unsafe { &mut *(addr(w) as *mut T) });
        }
        // SAFETY: as in `deref_mut`.
        self.slow(Mode::Write).map(|p| unsafe { &mut *p })
    }

    /// Borrows the value for a one-time read: it is not heated, and if it must be fetched it
    /// lands in a nontemporal region, evicted first, so a scan does not push out the hot set.
    ///
    /// # Errors
    /// As [`RemBox::try_deref`].
    ///
    /// # Examples
    ///
    /// ```
    /// let b = aifm_core::RemBox::new(5u32);
    /// let scope = aifm_core::Scope::new();
    /// assert_eq!(*b.deref_nt(&scope).unwrap(), 5);
    /// ```
    #[inline]
    pub fn deref_nt<'a>(&'a self, _scope: &'a Scope) -> Result<&'a T> {
        let w = self.word();
        if w & NT_SLOW == 0 {
            // SAFETY: as in `deref`.
            return Ok(unsafe { &*(addr(w) as *const T) });
        }
        // SAFETY: as in `deref`.
        self.slow(Mode::Nontemporal).map(|p| unsafe { &*p })
    }

    /// Whether the value is in local memory right now (a hint: the evacuator may change it).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let b = aifm_core::RemBox::new_in([0u64; 64], &rt);
    /// assert!(b.is_local());
    /// rt.evacuate_now();
    /// assert!(!b.is_local());
    /// ```
    pub fn is_local(&self) -> bool {
        self.word() & REMOTE == 0
    }

    /// The object's key in far memory (its slot index, or the key given at construction).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let a = aifm_core::RemBox::new_in(1u8, &rt);
    /// let b = aifm_core::RemBox::new_in(2u8, &rt);
    /// assert_ne!(a.key(), b.key());
    /// ```
    pub fn key(&self) -> u64 {
        slots::key(self.slot)
    }

    /// The runtime this box belongs to.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let b = aifm_core::RemBox::new_in(1u8, &rt);
    /// assert_eq!(b.runtime().stats().budget_bytes, 4 << 20);
    /// ```
    pub fn runtime(&self) -> Runtime {
        let inner = self.inner() as *const Inner;
        // SAFETY: `inner` came from an `Arc<Inner>` that this box keeps a count of; the count
        // taken here is handed to the new Arc.
        let inner = unsafe {
            Arc::increment_strong_count(inner);
            Arc::from_raw(inner)
        };
        Runtime { inner }
    }

    /// Takes the value out, fetching it if it is remote, and frees the box.
    ///
    /// # Panics
    /// If far memory fails (see [`RemBox::try_into_inner`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let b = aifm_core::RemBox::new(String::from("x"));
    /// assert_eq!(b.into_inner(), "x");
    /// ```
    #[track_caller]
    pub fn into_inner(self) -> T {
        match self.try_into_inner() {
            Ok(v) => v,
            Err((e, _)) => panic!("RemBox::into_inner: {e}"),
        }
    }

    /// Takes the value out, or hands the box back with the reason it could not be fetched.
    ///
    /// # Errors
    /// As [`RemBox::try_deref`]; the box is returned intact.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let b = aifm_core::RemBox::new_in([9u64; 64], &rt);
    /// rt.evacuate_now();
    /// assert_eq!(b.try_into_inner().map_err(|(e, _)| e).unwrap()[0], 9);
    /// ```
    pub fn try_into_inner(self) -> std::result::Result<T, (Error, Self)> {
        // SAFETY: we own the slot through this handle, consumed here; no reference lives.
        match unsafe { object::take_out::<T>(self.inner(), self.slot, FarCopy::Remove) } {
            Ok(v) => {
                self.release_runtime();
                std::mem::forget(self);
                Ok(v)
            }
            Err(e) => Err((e, self)),
        }
    }

    fn release_runtime(&self) {
        let inner = self.inner() as *const Inner;
        // SAFETY: drops the count taken in `place`.
        unsafe { Arc::decrement_strong_count(inner) };
    }
}

impl<T: FarData> Drop for RemBox<T> {
    fn drop(&mut self) {
        // SAFETY: we own the slot through this last handle; no reference outlives it.
        let unwinding = unsafe { object::destroy::<T>(self.inner(), self.slot, FarCopy::Remove) };
        self.release_runtime();
        if let Some(p) = unwinding {
            // The value's own `Drop` panicked: the object is freed all the same (as a `Box`
            // does), and the panic continues here.
            std::panic::resume_unwind(p);
        }
    }
}

impl<T: FarData> std::fmt::Debug for RemBox<T> {
    /// Shows where the value is, without fetching it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let w = self.word();
        let mut d = f.debug_struct("RemBox");
        d.field("key", &self.key())
            .field("local", &(w & REMOTE == 0));
        if w & REMOTE == 0 {
            d.field("hot", &(w & COLD == 0))
                .field("dirty", &(w & CLEAN == 0));
        }
        d.finish()
    }
}

impl<T: FarData + Default> Default for RemBox<T> {
    fn default() -> Self {
        RemBox::new(T::default())
    }
}

impl<T: FarData + Clone> Clone for RemBox<T> {
    /// Clones the value into a new box in the same runtime (fetching it if needed).
    fn clone(&self) -> Self {
        let scope = Scope::new();
        let v = self.deref(&scope).clone();
        drop(scope);
        RemBox::new_in(v, &self.runtime())
    }
}

/// Raw access for tests of the runtime itself.
#[doc(hidden)]
impl<T: FarData> RemBox<T> {
    pub fn __is_marked(&self) -> bool {
        self.word() & (EVACUATING | REMOTE) == EVACUATING
    }

    pub fn __header_len(&self) -> Option<usize> {
        let w = self.word();
        // SAFETY: a local word points at a live object's data.
        (w & REMOTE == 0).then(|| unsafe { Header::of(addr(w)) }.footprint())
    }
}
