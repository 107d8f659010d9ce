//! Reading and writing an arena's objects by index: the hot paths (`get`, `get_hot`, the
//! unchecked forms a structure uses after its own bounds check), the fallible forms and the
//! nontemporal read. Slots, growth, insertion and removal stay in the parent module.

use super::{read_fast, SlotArena};
use crate::codec::FarData;
use crate::error::Result;
use crate::heap::HasVTable;
use crate::object::{self, Mode};
use crate::scope::Scope;
use crate::slots::{self, ARENA_SHIFT, ARENA_SLOTS};
use crate::word::*;
use std::sync::atomic::Ordering;

impl<T: FarData> SlotArena<T> {
    /// Borrows the object at `i` for as long as `scope` lives, fetching it if it is remote;
    /// `None` for an empty index.
    ///
    /// # Panics
    /// If far memory fails (see [`SlotArena::try_get`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let s = rt.register_structure(aifm_core::backend::OBJECT_STORE_DEVICE, &[], None).unwrap();
    /// let mut a = aifm_core::arena::SlotArena::new(&s);
    /// a.put(2, 5u8).unwrap();
    /// assert_eq!(a.get(2, &aifm_core::Scope::new()), Some(&5));
    /// ```
    #[inline]
    #[track_caller]
    pub fn get<'a>(&'a self, i: usize, scope: &'a Scope) -> Option<&'a T> {
        if let Some(slot) = self.slot(i) {
            if let Some(p) = read_fast(slots::word(slot).load(Ordering::Acquire)) {
                // SAFETY: a fast-path word is the address of a live local T (the arena holds
                // only `T`s); the open scope keeps the evacuator from moving or freeing it
                // while the borrow (of the arena, so no `remove` either) lasts.
                return Some(unsafe { p.cast::<T>().as_ref() });
            }
        }
        self.get_slow(i, scope)
    }

    #[cold]
    #[track_caller]
    pub(super) fn get_slow<'a>(&'a self, i: usize, scope: &'a Scope) -> Option<&'a T> {
        match self.try_get(i, scope) {
            Ok(r) => r,
            Err(e) => panic!("SlotArena::get: {e}"),
        }
    }

    /// The object at `i` if it is local and hot: the dereference fast path alone (one load of
    /// the word), without fetching, heating or waiting. `None` means "ask [`SlotArena::get`]",
    /// not "empty". For structures that want to do something only on a miss (a stride
    /// detector) without a second look at the word on a hit.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let s = rt.register_structure(aifm_core::backend::OBJECT_STORE_DEVICE, &[], None).unwrap();
    /// let mut a = aifm_core::arena::SlotArena::new(&s);
    /// a.put(0, 5u8).unwrap();
    /// let scope = aifm_core::Scope::new();
    /// assert_eq!(a.get_hot(0, &scope), None); // new objects start cold
    /// a.get(0, &scope);
    /// a.get(0, &scope);
    /// assert_eq!(a.get_hot(0, &scope), Some(&5));
    /// ```
    #[inline]
    pub fn get_hot<'a>(&'a self, i: usize, _scope: &'a Scope) -> Option<&'a T> {
        let p = read_fast(slots::word(self.slot(i)?).load(Ordering::Acquire))?;
        // SAFETY: as in `get`.
        Some(unsafe { p.cast::<T>().as_ref() })
    }

    /// [`SlotArena::get_hot`] for an index whose slot the arena is known to have made: no
    /// bounds check of the segment table on the path (a structure that keeps its own count
    /// of the indexes it filled, like a vector's chunks `0..n`, already checked its own).
    ///
    /// # Safety
    /// Index `i` must have been filled by [`SlotArena::put`] or [`SlotArena::insert`] at
    /// some point in this arena's life (it may be empty now): its segment then exists, as
    /// segments are never given back while the arena lives.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let s = rt.register_structure(aifm_core::backend::OBJECT_STORE_DEVICE, &[], None).unwrap();
    /// let mut a = aifm_core::arena::SlotArena::new(&s);
    /// a.put(0, 5u8).unwrap();
    /// let scope = aifm_core::Scope::new();
    /// a.get(0, &scope);
    /// a.get(0, &scope);
    /// // SAFETY: index 0 was put above.
    /// assert_eq!(unsafe { a.get_hot_unchecked(0, &scope) }, Some(&5));
    /// ```
    #[inline]
    pub unsafe fn get_hot_unchecked<'a>(&'a self, i: usize, _scope: &'a Scope) -> Option<&'a T> {
        debug_assert!(i >> ARENA_SHIFT < self.segments.len(), "no segment for {i}");
        // SAFETY: the caller guarantees `i` was filled, which made its segment (and those
        // before it), and `segments` only grows while the arena lives.
        let seg = unsafe { *self.segments.get_unchecked(i >> ARENA_SHIFT) };
        let slot = slots::arena_slot(seg, i & (ARENA_SLOTS - 1));
        let p = read_fast(slots::word(slot).load(Ordering::Acquire))?;
        // SAFETY: as in `get`.
        Some(unsafe { p.cast::<T>().as_ref() })
    }

    /// Borrows the object at `i`, or reports why far memory could not provide it.
    ///
    /// # Errors
    /// Backend errors ([`Error::Disconnected`](crate::Error::Disconnected), [`Error::Timeout`](crate::Error::Timeout), ...),
    /// [`Error::LocalMemoryExhausted`](crate::Error::LocalMemoryExhausted), [`Error::Detached`](crate::Error::Detached).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let s = rt.register_structure(aifm_core::backend::OBJECT_STORE_DEVICE, &[], None).unwrap();
    /// let mut a = aifm_core::arena::SlotArena::new(&s);
    /// a.put(0, 5u8).unwrap();
    /// assert_eq!(a.try_get(0, &aifm_core::Scope::new()).unwrap(), Some(&5));
    /// ```
    #[inline]
    pub fn try_get<'a>(&'a self, i: usize, _scope: &'a Scope) -> Result<Option<&'a T>> {
        // SAFETY: shared access (the borrow of `self`), scope open on this thread.
        Ok(unsafe { self.access(i, Mode::Read) }?.map(|p| unsafe { &*p }))
    }

    /// Borrows the object at `i` for a one-time read: not heated, and fetched into a region
    /// the evacuator empties first (see `RemBox::deref_nt`).
    ///
    /// # Errors
    /// As [`SlotArena::try_get`].
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let s = rt.register_structure(aifm_core::backend::OBJECT_STORE_DEVICE, &[], None).unwrap();
    /// let mut a = aifm_core::arena::SlotArena::new(&s);
    /// a.put(0, 5u8).unwrap();
    /// assert_eq!(a.get_nt(0, &aifm_core::Scope::new()).unwrap(), Some(&5));
    /// ```
    #[inline]
    pub fn get_nt<'a>(&'a self, i: usize, _scope: &'a Scope) -> Result<Option<&'a T>> {
        // SAFETY: as in `try_get`.
        Ok(unsafe { self.access(i, Mode::Nontemporal) }?.map(|p| unsafe { &*p }))
    }

    /// Borrows the object at `i` mutably for as long as `scope` lives (it becomes dirty).
    ///
    /// # Panics
    /// If far memory fails (see [`SlotArena::try_get_mut`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let s = rt.register_structure(aifm_core::backend::OBJECT_STORE_DEVICE, &[], None).unwrap();
    /// let mut a = aifm_core::arena::SlotArena::new(&s);
    /// a.put(0, vec![1u8]).unwrap();
    /// let scope = aifm_core::Scope::new();
    /// a.get_mut(0, &scope).unwrap().push(2);
    /// assert_eq!(a.get(0, &scope).unwrap(), &[1, 2]);
    /// ```
    #[inline]
    #[track_caller]
    pub fn get_mut<'a>(&'a mut self, i: usize, scope: &'a Scope) -> Option<&'a mut T> {
        match self.try_get_mut(i, scope) {
            Ok(r) => r,
            Err(e) => panic!("SlotArena::get_mut: {e}"),
        }
    }

    /// Borrows the object at `i` mutably, or reports why far memory could not provide it.
    ///
    /// # Errors
    /// As [`SlotArena::try_get`].
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let s = rt.register_structure(aifm_core::backend::OBJECT_STORE_DEVICE, &[], None).unwrap();
    /// let mut a = aifm_core::arena::SlotArena::new(&s);
    /// a.put(0, 1u64).unwrap();
    /// *a.try_get_mut(0, &aifm_core::Scope::new()).unwrap().unwrap() += 1;
    /// assert_eq!(a.get(0, &aifm_core::Scope::new()), Some(&2));
    /// ```
    #[inline]
    pub fn try_get_mut<'a>(&'a mut self, i: usize, scope: &'a Scope) -> Result<Option<&'a mut T>> {
        // SAFETY: `&mut self` makes this the only reference to any of the arena's objects.
        unsafe { self.get_mut_unchecked(i, scope) }
    }

    /// Borrows the object at `i` mutably through a shared arena, for structures that keep
    /// their own per-object exclusion (a map's per-entry writer flag).
    ///
    /// # Errors
    /// As [`SlotArena::try_get`].
    ///
    /// # Safety
    /// No other reference to the object at `i` may exist or be created while the returned
    /// one lives (references to other indexes are fine).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let s = rt.register_structure(aifm_core::backend::OBJECT_STORE_DEVICE, &[], None).unwrap();
    /// let mut a = aifm_core::arena::SlotArena::new(&s);
    /// a.put(0, 1u64).unwrap();
    /// a.put(1, 1u64).unwrap();
    /// let scope = aifm_core::Scope::new();
    /// let x = a.get(0, &scope).unwrap();
    /// // SAFETY: nothing else refers to object 1.
    /// *unsafe { a.get_mut_unchecked(1, &scope) }.unwrap().unwrap() += *x;
    /// assert_eq!(a.get(1, &scope), Some(&2));
    /// ```
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get_mut_unchecked<'a>(
        &'a self,
        i: usize,
        _scope: &'a Scope,
    ) -> Result<Option<&'a mut T>> {
        // SAFETY: the caller guarantees exclusivity for index `i`; the scope is open.
        Ok(unsafe { self.access(i, Mode::Write) }?.map(|p| unsafe { &mut *p }))
    }

    /// The address of the object at `i`, made local, heated and dirtied as `mode` asks.
    ///
    /// # Safety
    /// A scope must be open on this thread for as long as the address is used; for
    /// [`Mode::Write`], the caller must hold the only reference to object `i`.
    #[inline]
    unsafe fn access(&self, i: usize, mode: Mode) -> Result<Option<*mut T>> {
        let Some(slot) = self.slot(i) else {
            return Ok(None);
        };
        let w = slots::word(slot).load(Ordering::Acquire);
        if w == NULL {
            return Ok(None);
        }
        let slow = match mode {
            Mode::Read => READ_SLOW,
            Mode::Write => WRITE_SLOW,
            Mode::Nontemporal => NT_SLOW,
        };
        if w & slow == 0 {
            return Ok(Some(addr(w) as *mut T));
        }
        // SAFETY: we own the slot (its word is not NULL, and only `&mut self` methods empty
        // it, which cannot run while `&self` is borrowed); the scope is open; T's vtable.
        unsafe { object::slow_path(self.rt(), slot, mode, &T::VTABLE) }.map(|p| Some(p as *mut T))
    }
}
