//! [`WordRef`]: an arena word reached by its address, for readers that hold no borrow of the
//! arena.
//!
//! A structure with lock-free readers (the hash map's index) cannot let them look at the
//! arena's segment table: a writer grows it under `&mut`. The words themselves never move
//! while their runtime lives, so the structure stores a word's address where its readers look
//! and dereferences it through [`WordRef::deref`]. That borrow is no longer checked by the
//! compiler: the structure promises that the index keeps its object while a reader may hold
//! the address (the map retires removed pairs through `crossbeam-epoch` and only then frees
//! their index for reuse).

use super::SlotArena;
use crate::codec::FarData;
use crate::error::{Error, Result};
use crate::heap::HasVTable;
use crate::object::{self, Mode};
use crate::scope::Scope;
use crate::slots::{self, Slot};
use crate::state::Inner;
use crate::word::*;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;

/// The address of one arena slot's pointer word: how a structure whose readers never look at
/// the arena itself (lock-free readers, while a writer grows the arena's segment table under
/// `&mut`) reaches an object. Words never move while their runtime lives (see the `slots`
/// module), so the address stays valid after the arena grows; it names the object of its index
/// only for as long as that object is not removed, which is the caller's to ensure (a map
/// retires removed pairs through an epoch before their index can be reused).
///
/// # Examples
///
/// ```
/// use aifm_core::{arena::{SlotArena, WordRef}, backend::OBJECT_STORE_DEVICE, Runtime, Scope};
/// let rt = Runtime::builder().local_memory(4 << 20).build().unwrap();
/// let s = rt.register_structure(OBJECT_STORE_DEVICE, &[], None).unwrap();
/// let mut a = SlotArena::new(&s);
/// let i = a.insert([5u64; 64]).unwrap();
/// let bits = a.word_ref(i).unwrap().addr(); // what a lock-free index would store
/// rt.evacuate_now();
/// // SAFETY: `bits` came from a word of `a`, whose runtime lives.
/// let w = unsafe { WordRef::<[u64; 64]>::from_addr(bits) };
/// assert!(!w.is_local());
/// let scope = Scope::new();
/// // SAFETY: index `i` keeps its object while the reference lives, and nothing writes it.
/// assert_eq!(unsafe { w.deref(&scope) }.unwrap()[0], 5);
/// assert_eq!(a.index_of(w), i);
/// ```
pub struct WordRef<T: FarData> {
    slot: NonNull<Slot>,
    _type: PhantomData<fn() -> T>,
}

impl<T: FarData> Clone for WordRef<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: FarData> Copy for WordRef<T> {}

impl<T: FarData> PartialEq for WordRef<T> {
    fn eq(&self, other: &Self) -> bool {
        self.slot == other.slot
    }
}

impl<T: FarData> Eq for WordRef<T> {}

impl<T: FarData> std::fmt::Debug for WordRef<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WordRef({:#x})", self.addr())
    }
}

impl<T: FarData> SlotArena<T> {
    /// The word of index `i`, if `i` holds an object (see [`WordRef`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let s = rt.register_structure(aifm_core::backend::OBJECT_STORE_DEVICE, &[], None).unwrap();
    /// let mut a = aifm_core::arena::SlotArena::new(&s);
    /// a.put(3, 1u8).unwrap();
    /// assert!(a.word_ref(3).is_some() && a.word_ref(2).is_none());
    /// ```
    #[inline]
    pub fn word_ref(&self, i: usize) -> Option<WordRef<T>> {
        let slot = self.slot(i).filter(|_| self.contains(i))?;
        Some(WordRef {
            slot,
            _type: PhantomData,
        })
    }

    /// The index of `w`, a word of this arena.
    ///
    /// # Panics
    /// If `w` is not a word of this arena.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let s = rt.register_structure(aifm_core::backend::OBJECT_STORE_DEVICE, &[], None).unwrap();
    /// let mut a = aifm_core::arena::SlotArena::new(&s);
    /// a.put(700, 1u8).unwrap();
    /// assert_eq!(a.index_of(a.word_ref(700).unwrap()), 700);
    /// ```
    pub fn index_of(&self, w: WordRef<T>) -> usize {
        let i = slots::index_of(w.slot) as usize;
        assert!(
            self.slot(i) == Some(w.slot),
            "WordRef::index_of: the word is not one of this arena's"
        );
        i
    }
}

impl<T: FarData> WordRef<T> {
    /// The word's address, to be stored where readers find it (non-zero, 16-byte aligned).
    #[inline]
    pub fn addr(self) -> usize {
        self.slot.as_ptr() as usize
    }

    /// The word at `addr`.
    ///
    /// # Safety
    /// `addr` came from [`WordRef::addr`] of a word of a `SlotArena<T>` whose runtime still
    /// lives (the word's memory lives as long as the runtime does, whatever became of the
    /// arena).
    #[inline]
    pub unsafe fn from_addr(addr: usize) -> Self {
        WordRef {
            // SAFETY: per the contract, a slot address, which is never null.
            slot: unsafe { NonNull::new_unchecked(addr as *mut Slot) },
            _type: PhantomData,
        }
    }

    #[inline]
    fn load(self) -> u64 {
        slots::word(self.slot).load(Ordering::Acquire)
    }

    /// Whether the word holds an object in local memory right now (a hint: the evacuator may
    /// change it).
    #[inline]
    pub fn is_local(self) -> bool {
        let w = self.load();
        w != NULL && w & REMOTE == 0
    }

    /// Borrows the object for as long as `scope` lives, fetching it if it is remote (heating
    /// it as [`SlotArena::get`] does).
    ///
    /// # Errors
    /// [`Error::Detached`] if the structure's handler took the object out of the runtime's
    /// hands (or the index is empty); backend errors and [`Error::LocalMemoryExhausted`] as
    /// [`SlotArena::try_get`].
    ///
    /// # Safety
    /// The word's arena is alive, and its index keeps its object (no `remove`, `take`,
    /// `put`, `clear` or drop of the arena) while the reference lives; no `&mut` to the object
    /// exists meanwhile. This is what `SlotArena::get` gets from borrowing the arena; a
    /// structure that lets readers in without that borrow must ensure it itself.
    #[inline]
    pub unsafe fn deref(self, scope: &Scope) -> Result<&T> {
        let w = self.load();
        if w & READ_SLOW == 0 && w != NULL {
            // SAFETY: a fast-path word is the address of a live local T (an arena of `T`
            // holds only `T`s); the open scope keeps the evacuator from moving or freeing it,
            // and the caller keeps the index occupied, while the reference lives.
            return Ok(unsafe { &*(addr(w) as *const T) });
        }
        // SAFETY: forwarded.
        unsafe { self.deref_slow(scope) }
    }

    #[cold]
    unsafe fn deref_slow(self, _scope: &Scope) -> Result<&T> {
        if self.load() == NULL {
            return Err(Error::Detached);
        }
        // SAFETY: every segment's header names the runtime that owns it, and the runtime
        // lives (the arena holds it, per the caller's contract).
        let rt = unsafe { &*(slots::chunk_of(self.slot).owner as *const Inner) };
        // SAFETY: the arena owns the slot and keeps its object (caller's contract); a scope is
        // open; T's vtable.
        let p = unsafe { object::slow_path(rt, self.slot, Mode::Read, &T::VTABLE) }?;
        // SAFETY: as in `deref`.
        Ok(unsafe { &*(p as *const T) })
    }
}
