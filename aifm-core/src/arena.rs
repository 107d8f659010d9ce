//! `SlotArena<T>`: pointer words that a data structure keeps for its own objects.
//!
//! # Why
//!
//! A `RemBox` costs a 24-byte runtime slot (word, key, far length, generation) plus its
//! 8-byte handle, and reaching the object goes handle → slot → object. A structure that owns
//! many objects (a vector's chunks, a map's pairs) knows each object by an index already, so
//! the arena gives it the pointer words themselves, by index, in never-moving 16-byte arena
//! slots (word, far length, generation): no handle, no key field (the far key *is* the index,
//! within the structure's own far namespace), and `get(i)` goes segment table → word →
//! object.
//!
//! # Layout and the evacuator
//!
//! Slots live in 4 KiB arena segments (module `slots`), 256 to a segment, found from an
//! index with a shift and a mask. Each object's header points back at its arena slot,
//! exactly as at a runtime slot, and the segment header says which kind of slot it is, so the
//! evacuator (mark, write back, free), the dereference slow path and prefetch tickets work on
//! arena objects unchanged. The runtime keeps arena segments for as long as it lives: a
//! dropped arena's segments go back to the runtime's pool for other arenas, so a stale
//! back-reference never reaches freed memory.
//!
//! # Ownership
//!
//! The arena owns the objects in its slots (it drops them when it is dropped or cleared)
//! and shares the [`Structure`] registration: the structure id and its far store stay alive
//! until both the `Structure` handle and the arena are gone. Dropping the arena drops the
//! local values and does not remove far copies one by one (the structure's far store is
//! destroyed with the structure); [`SlotArena::clear`], [`SlotArena::remove`] and
//! [`SlotArena::take`] do remove them, so an arena can be emptied and refilled.
//!
//! # Contract
//!
//! Like `RemBox`: references borrow the arena and a [`Scope`](crate::Scope); `&mut self` methods give
//! exclusive access; a panic in a value's `Drop` frees the object anyway and resumes after
//! the arena's bookkeeping is done. Values must be at most 8-aligned.

use crate::codec::FarData;
use crate::error::{Error, Result};
use crate::heap::HasVTable;
use crate::object::{self, FarCopy};
use crate::prefetch::{FetchFuture, FetchTicket};
use crate::runtime::Runtime;
use crate::runtime::{Registered, Structure};
use crate::slots::{self, Slot, ARENA_SHIFT, ARENA_SLOTS};
use crate::state::Inner;
use crate::word::*;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::sync::Arc;

mod access;
mod word_ref;
pub use word_ref::WordRef;

/// Stable, index-addressed pointer words for the objects of one structure.
///
/// # Examples
///
/// ```
/// use aifm_core::{arena::SlotArena, backend::OBJECT_STORE_DEVICE, Runtime, Scope};
/// let rt = Runtime::builder().local_memory(4 << 20).build().unwrap();
/// let s = rt.register_structure(OBJECT_STORE_DEVICE, &[], None).unwrap();
/// let mut a = SlotArena::new(&s);
/// a.put(3, [7u64; 64]).unwrap();
/// let i = a.insert([1u64; 64]).unwrap();
/// rt.evacuate_now();                       // both leave local memory...
/// let scope = Scope::new();
/// assert_eq!(a.get(3, &scope).unwrap()[0], 7); // ...and come back on use
/// assert_eq!(a.get(i, &scope).unwrap()[0], 1);
/// assert!(a.get(2, &scope).is_none());
/// ```
pub struct SlotArena<T: FarData> {
    /// Segment base addresses; slot `i` is slot `i % ARENA_SLOTS` of segment `i / ARENA_SLOTS`.
    /// The only field the fast path reads; the rest is boxed so that a structure holding an
    /// arena stays small.
    segments: Vec<NonNull<u8>>,
    book: Box<Book>,
    _owns: PhantomData<T>,
}

/// An arena's bookkeeping, off the fast path.
struct Book {
    /// Indexes freed by `take`/`remove` below `high`, for `insert` to reuse.
    free: Vec<usize>,
    /// One past the highest index ever filled.
    high: usize,
    /// Occupied slots.
    count: usize,
    /// The structure (and through it the runtime) the objects belong to.
    registration: Arc<Registered>,
}

// SAFETY: the arena owns its `T`s like a `Vec<Box<T>>` does; the runtime moves them between
// threads only while no reference exists. Segment addresses are plain data.
unsafe impl<T: FarData + Send> Send for SlotArena<T> {}
// SAFETY: `&SlotArena<T>` hands out only `&T` (and `get_mut_unchecked`, whose caller
// guarantees exclusivity); slow paths on shared references synchronise through the words.
unsafe impl<T: FarData + Sync> Sync for SlotArena<T> {}

impl<T: FarData> SlotArena<T> {
    const CHECK: () = assert!(
        std::mem::align_of::<T>() <= 8,
        "far objects are 8-byte aligned; types with larger alignment cannot live in an arena"
    );

    /// An empty arena for objects of `structure` (no memory until the first `put`).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let s = rt.register_structure(aifm_core::backend::OBJECT_STORE_DEVICE, &[], None).unwrap();
    /// let a = aifm_core::arena::SlotArena::<u64>::new(&s);
    /// assert!(a.is_empty());
    /// ```
    pub fn new(structure: &Structure) -> Self {
        let () = Self::CHECK;
        let registration = structure.shared.clone();
        SlotArena {
            segments: Vec::new(),
            book: Box::new(Book {
                free: Vec::new(),
                high: 0,
                count: 0,
                registration,
            }),
            _owns: PhantomData,
        }
    }

    #[inline]
    fn rt(&self) -> &Inner {
        &self.book.registration.runtime.inner
    }

    /// The slot of index `i`, if its segment exists.
    #[inline]
    fn slot(&self, i: usize) -> Option<NonNull<Slot>> {
        let seg = *self.segments.get(i >> ARENA_SHIFT)?;
        Some(slots::arena_slot(seg, i & (ARENA_SLOTS - 1)))
    }

    /// The slot of index `i`, making its segment (and those before it) if needed.
    fn slot_or_grow(&mut self, i: usize) -> NonNull<Slot> {
        while self.segments.len() <= i / ARENA_SLOTS {
            let first = (self.segments.len() * ARENA_SLOTS) as u64;
            let seg = self.rt().arena_segment(first);
            self.segments.push(seg);
        }
        slots::arena_slot(self.segments[i / ARENA_SLOTS], i % ARENA_SLOTS)
    }

    /// The word of index `i` (NULL for an empty or never-made slot).
    #[inline]
    fn word(&self, i: usize) -> u64 {
        self.slot(i)
            .map_or(NULL, |s| slots::word(s).load(Ordering::Acquire))
    }

    /// The structure the objects belong to.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let s = rt.register_structure(aifm_core::backend::OBJECT_STORE_DEVICE, &[], None).unwrap();
    /// assert_eq!(aifm_core::arena::SlotArena::<u8>::new(&s).structure_id(), s.id());
    /// ```
    pub fn structure_id(&self) -> u32 {
        self.book.registration.id
    }

    /// The runtime the arena belongs to.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let s = rt.register_structure(aifm_core::backend::OBJECT_STORE_DEVICE, &[], None).unwrap();
    /// let a = aifm_core::arena::SlotArena::<u8>::new(&s);
    /// assert_eq!(a.runtime().stats().budget_bytes, 4 << 20);
    /// ```
    pub fn runtime(&self) -> &Runtime {
        &self.book.registration.runtime
    }

    /// Number of occupied slots.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let s = rt.register_structure(aifm_core::backend::OBJECT_STORE_DEVICE, &[], None).unwrap();
    /// let mut a = aifm_core::arena::SlotArena::new(&s);
    /// a.put(10, 1u8).unwrap();
    /// assert_eq!((a.len(), a.high()), (1, 11));
    /// ```
    pub fn len(&self) -> usize {
        self.book.count
    }

    /// Whether no slot is occupied.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let s = rt.register_structure(aifm_core::backend::OBJECT_STORE_DEVICE, &[], None).unwrap();
    /// assert!(aifm_core::arena::SlotArena::<u8>::new(&s).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.book.count == 0
    }

    /// One past the highest index ever filled (every occupied index is below it).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let s = rt.register_structure(aifm_core::backend::OBJECT_STORE_DEVICE, &[], None).unwrap();
    /// let mut a = aifm_core::arena::SlotArena::new(&s);
    /// a.put(4, 1u8).unwrap();
    /// assert_eq!(a.high(), 5);
    /// ```
    pub fn high(&self) -> usize {
        self.book.high
    }

    /// Whether index `i` holds an object.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let s = rt.register_structure(aifm_core::backend::OBJECT_STORE_DEVICE, &[], None).unwrap();
    /// let mut a = aifm_core::arena::SlotArena::new(&s);
    /// a.put(1, 1u8).unwrap();
    /// assert!(a.contains(1) && !a.contains(0) && !a.contains(1 << 40));
    /// ```
    #[inline]
    pub fn contains(&self, i: usize) -> bool {
        self.word(i) != NULL
    }

    /// Whether index `i` holds an object in local memory right now (a hint: the evacuator may
    /// change it).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let s = rt.register_structure(aifm_core::backend::OBJECT_STORE_DEVICE, &[], None).unwrap();
    /// let mut a = aifm_core::arena::SlotArena::new(&s);
    /// a.put(0, [0u64; 64]).unwrap();
    /// assert!(a.is_local(0));
    /// rt.evacuate_now();
    /// assert!(!a.is_local(0));
    /// ```
    #[inline]
    pub fn is_local(&self, i: usize) -> bool {
        let w = self.word(i);
        w != NULL && w & REMOTE == 0
    }

    /// Puts `value` at index `i` as a new local object, first dropping (and removing from
    /// far memory) whatever `i` held. Its far key is `i`.
    ///
    /// # Errors
    /// [`Error::ObjectTooLarge`]; [`Error::LocalMemoryExhausted`] inside a scope when the
    /// budget and its overdraft are used up. `value` is dropped, and `i` is left empty.
    ///
    /// # Panics
    /// If the value `i` held panics in `Drop` (after it was freed; `value` is dropped).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let s = rt.register_structure(aifm_core::backend::OBJECT_STORE_DEVICE, &[], None).unwrap();
    /// let mut a = aifm_core::arena::SlotArena::new(&s);
    /// a.put(0, String::from("a")).unwrap();
    /// a.put(0, String::from("b")).unwrap();
    /// assert_eq!(a.get(0, &aifm_core::Scope::new()).unwrap(), "b");
    /// ```
    pub fn put(&mut self, i: usize, value: T) -> Result<()> {
        if i >= (isize::MAX as usize) / 16 {
            return Err(Error::Config(format!("arena index {i} is out of range")));
        }
        self.remove(i);
        let slot = self.slot_or_grow(i);
        // SAFETY: the slot is empty (just removed) and ours: `&mut self` excludes every other
        // user of the arena, and nothing else publishes to an arena's words.
        unsafe { object::construct(self.rt(), value, self.book.registration.id, slot) }?;
        self.book.count += 1;
        self.book.high = self.book.high.max(i + 1);
        Ok(())
    }

    /// Puts `value` at a free index (one freed earlier, or `high()`) and returns the index.
    ///
    /// # Errors
    /// As [`SlotArena::put`].
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let s = rt.register_structure(aifm_core::backend::OBJECT_STORE_DEVICE, &[], None).unwrap();
    /// let mut a = aifm_core::arena::SlotArena::new(&s);
    /// let x = a.insert(1u32).unwrap();
    /// let y = a.insert(2u32).unwrap();
    /// a.remove(x);
    /// assert_eq!(a.insert(3u32).unwrap(), x, "freed indexes are reused");
    /// assert_ne!(x, y);
    /// ```
    pub fn insert(&mut self, value: T) -> Result<usize> {
        let i = loop {
            match self.book.free.pop() {
                // `put` may have filled a freed index since; skip those.
                Some(i) if self.contains(i) => continue,
                Some(i) => break i,
                None => break self.book.high,
            }
        };
        match self.put(i, value) {
            Ok(()) => Ok(i),
            Err(e) => {
                if i < self.book.high {
                    self.book.free.push(i);
                }
                Err(e)
            }
        }
    }

    /// Takes the object at `i` out (fetching it if it is remote), leaving `i` empty and its
    /// far copy removed; `Ok(None)` for an empty index.
    ///
    /// # Errors
    /// As [`SlotArena::try_get`]; the object then stays at `i`.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let s = rt.register_structure(aifm_core::backend::OBJECT_STORE_DEVICE, &[], None).unwrap();
    /// let mut a = aifm_core::arena::SlotArena::new(&s);
    /// a.put(0, [9u64; 64]).unwrap();
    /// rt.evacuate_now();
    /// assert_eq!(a.take(0).unwrap().unwrap()[0], 9);
    /// assert!(a.take(0).unwrap().is_none());
    /// ```
    pub fn take(&mut self, i: usize) -> Result<Option<T>> {
        let Some(slot) = self.slot(i).filter(|_| self.contains(i)) else {
            return Ok(None);
        };
        // SAFETY: the slot holds a `T` owned by this arena; `&mut self` excludes references.
        let v = unsafe { object::take_out::<T>(self.rt(), slot, FarCopy::Remove) }?;
        self.emptied(i);
        Ok(Some(v))
    }

    /// Drops the object at `i` (and removes its far copy); returns whether there was one.
    ///
    /// # Panics
    /// If the value's `Drop` panics: the object is freed first, as with `Box`.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let s = rt.register_structure(aifm_core::backend::OBJECT_STORE_DEVICE, &[], None).unwrap();
    /// let mut a = aifm_core::arena::SlotArena::new(&s);
    /// a.put(0, 1u8).unwrap();
    /// assert!(a.remove(0));
    /// assert!(!a.remove(0));
    /// ```
    pub fn remove(&mut self, i: usize) -> bool {
        let Some(slot) = self.slot(i).filter(|_| self.contains(i)) else {
            return false;
        };
        // SAFETY: as in `take`.
        let unwinding = unsafe { object::destroy::<T>(self.rt(), slot, FarCopy::Remove) };
        self.emptied(i);
        if let Some(p) = unwinding {
            std::panic::resume_unwind(p);
        }
        true
    }

    fn emptied(&mut self, i: usize) {
        self.book.count -= 1;
        self.book.free.push(i);
    }

    /// Drops every object (removing far copies); keeps the segments for reuse. A panic of a
    /// value's `Drop` is resumed once every object is freed.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let s = rt.register_structure(aifm_core::backend::OBJECT_STORE_DEVICE, &[], None).unwrap();
    /// let mut a = aifm_core::arena::SlotArena::new(&s);
    /// (0..1000).for_each(|i| a.put(i, i).unwrap());
    /// a.clear();
    /// assert!(a.is_empty() && !a.contains(5));
    /// ```
    pub fn clear(&mut self) {
        let first = self.free_all(FarCopy::Remove);
        if let Some(p) = first {
            std::panic::resume_unwind(p);
        }
    }

    /// Frees every object; returns the first panic of a value's `Drop`.
    fn free_all(&mut self, far: FarCopy) -> Option<crate::panics::Payload> {
        let mut first = None;
        for i in 0..self.book.high {
            if let Some(slot) = self.slot(i).filter(|_| self.contains(i)) {
                // SAFETY: as in `take`.
                let p = unsafe { object::destroy::<T>(self.rt(), slot, far) };
                first = first.or(p);
            }
        }
        self.book.free.clear();
        self.book.high = 0;
        self.book.count = 0;
        first
    }

    /// A ticket naming the object at `i` for [`Runtime::fetch_many`], [`Runtime::prefetch`]
    /// or [`Runtime::fetch_async`] (`None` for an empty index).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let s = rt.register_structure(aifm_core::backend::OBJECT_STORE_DEVICE, &[], None).unwrap();
    /// let mut a = aifm_core::arena::SlotArena::new(&s);
    /// a.put(0, [0u64; 64]).unwrap();
    /// rt.evacuate_now();
    /// let _scope = aifm_core::Scope::new();
    /// assert_eq!(rt.fetch_many(&[a.ticket(0).unwrap()], false).unwrap(), 1);
    /// assert!(a.is_local(0));
    /// ```
    pub fn ticket(&self, i: usize) -> Option<FetchTicket> {
        let slot = self.slot(i).filter(|_| self.contains(i))?;
        Some(FetchTicket(crate::fetch_queue::Ticket {
            slot,
            generation: slots::generation(slot),
            vtable: &T::VTABLE,
        }))
    }

    /// A future that resolves once the object at `i` is local (see `RemBox::fetch_async`);
    /// an empty index resolves at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::future::Future;
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let s = rt.register_structure(aifm_core::backend::OBJECT_STORE_DEVICE, &[], None).unwrap();
    /// let mut a = aifm_core::arena::SlotArena::new(&s);
    /// a.put(0, [0u64; 64]).unwrap();
    /// rt.evacuate_now();
    /// let mut fut = std::pin::pin!(a.fetch_async(0));
    /// let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// while fut.as_mut().poll(&mut cx).is_pending() {
    ///     std::thread::yield_now();
    /// }
    /// assert!(a.is_local(0));
    /// ```
    pub fn fetch_async(&self, i: usize) -> FetchFuture {
        self.runtime()
            .fetch_async(self.ticket(i).into_iter().collect())
    }
}

/// The object word `w` points at, if a shared dereference may use it without the slow path
/// (`w != NULL && w & READ_SLOW == 0`).
///
/// Tested as one AND, of `w - 1`: for a word whose low 48 bits (address, or remote length
/// and structure) are not all zero, `w - 1` differs from `w` only in those bits, so the
/// verdict is `w & READ_SLOW == 0`. Every other valid word fails the test too: NULL becomes
/// all ones; any other is remote (a local word's address is never 0), and as bits 48..54
/// of a valid word are zero, its lowest set bit is at 55 or above, so `w - 1` keeps
/// `REMOTE` set, or, when `REMOTE` is that lowest bit, sets `COLD`.
#[inline(always)]
fn read_fast(w: u64) -> Option<NonNull<u8>> {
    if w.wrapping_sub(1) & READ_SLOW == 0 {
        // SAFETY: by the argument above, a valid word that passes is a local word, and the
        // address of a local object is never 0; words are only ever made valid.
        Some(unsafe { NonNull::new_unchecked(addr(w)) })
    } else {
        None
    }
}

impl<T: FarData> Drop for SlotArena<T> {
    fn drop(&mut self) {
        // Far copies are not removed one by one: the far store goes with the structure.
        let unwinding = self.free_all(FarCopy::Forget);
        // Every word is NULL now: the segments can serve other arenas.
        self.rt().release_arena_segments(&self.segments);
        if let Some(p) = unwinding {
            if !std::thread::panicking() {
                std::panic::resume_unwind(p);
            }
        }
    }
}

impl<T: FarData> std::fmt::Debug for SlotArena<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotArena")
            .field("structure", &self.book.registration.id)
            .field("len", &self.book.count)
            .field("high", &self.book.high)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `read_fast`'s single test agrees with `w != NULL && w & READ_SLOW == 0` on every
    /// valid word: NULL, local words at small and large addresses with every combination of
    /// flags, and remote words of every flag combination with zero and non-zero length and
    /// structure.
    #[test]
    fn read_fast_agrees_with_the_two_tests_on_valid_words() {
        let flags = [EVACUATING, BUSY, COLD, CLEAN, FRESH, HOTNESS_MASK];
        let mut words = vec![NULL];
        for mask in 0..1u32 << flags.len() {
            let f = flags
                .iter()
                .enumerate()
                .filter(|(k, _)| mask & (1 << k) != 0)
                .fold(0, |a, (_, f)| a | f);
            for a in [8u64, 0x1000, ADDR_MASK & !7] {
                words.push(a | f);
            }
            for (len, ds) in [(0usize, 0u32), (0, 1), (1, 0), (4096, MAX_DS)] {
                words.push(remote(len, ds) | f);
                words.push(remote(len, ds) | f | DETACHED);
            }
        }
        for w in words {
            let want = w != NULL && w & READ_SLOW == 0;
            assert_eq!(read_fast(w).is_some(), want, "word {w:#x}");
            if let Some(p) = read_fast(w) {
                assert_eq!(p.as_ptr(), addr(w));
            }
        }
    }
}
