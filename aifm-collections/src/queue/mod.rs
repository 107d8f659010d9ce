//! `RemQueue<T>`: a double-ended queue in far memory, chunk by chunk (`VecDeque`'s twin).
//!
//! # Layout
//!
//! Elements live in chunks of at most `2^k` elements (about [`DEFAULT_CHUNK_BYTES`]), each one
//! remote object: a ring buffer (`VecDeque`, allocated once at chunk capacity) kept in a local
//! `VecDeque` of handles. Every chunk is non-empty. A push at either end goes into that end's
//! chunk while it has room and starts a new chunk otherwise; a pop at either end takes from
//! that end's chunk and drops the chunk as soon as it is empty (its far copy goes with it).
//! Both ends cost O(1) whatever the mix of operations: a ring never shifts its elements, so a
//! queue used as a stack, a FIFO or both at once behaves like `VecDeque`. Chunks never split
//! or merge, so inner chunks may be partly full after pushes at the front.
//!
//! # Semantics the structure tells the runtime
//!
//! * Chunks are plain objects of the runtime's object store, written back whole by the default
//!   handler (as two length-framed slices, the ring in order); there is no offloaded operation, so
//!   no device of its own.
//! * **Consumer-side prefetch.** When a pop empties an end's chunk, the next chunk inward is
//!   handed to the runtime's prefetch helpers (nontemporally) if it is remote, so the next
//!   pop finds it local, and a producer far ahead does not heat chunks that will be read once.
//!
//! # Default runtime
//!
//! [`RemQueue::new`], `Default`, `FromIterator` (`collect()`) and `From<Vec<T>>` build in the
//! process-wide default runtime (`Runtime::global()`, 256 MiB of local memory unless
//! configured); [`RemQueue::new_in`] and [`RemQueue::from_iter_in`] choose the runtime.

mod iter;
mod ring;

pub use iter::{IntoIter, Iter};

use crate::common::{chunk_shift, fail, DEFAULT_CHUNK_BYTES};
use crate::vec::cloned::Cloned;
use aifm_core::{FarData, RemBox, Result, Runtime, Scope};
use iter::Chunks;
use ring::Ring;
use std::collections::VecDeque;
use std::fmt;
use std::ops::{Range, RangeBounds};

/// A double-ended queue whose chunks may be in local or far memory.
///
/// [`push`](RemQueue::push) and [`pop`](RemQueue::pop) are the FIFO pair (`push_back` and
/// `pop_front`); `push_back` with `pop_back` make a stack.
///
/// # Examples
///
/// ```
/// let mut q = aifm_collections::RemQueue::new();
/// q.extend(0..10_000u32);
/// assert_eq!(q.pop(), Some(0));
/// q.push(10_000);
/// assert_eq!(q.pop_back(), Some(10_000));
/// q.push_front(0);
/// assert_eq!(q.len(), 10_000);
/// assert_eq!(q.iter().last(), Some(9_999));
/// ```
pub struct RemQueue<T: FarData> {
    chunks: VecDeque<RemBox<Ring<T>>>,
    len: usize,
    shift: u32,
    rt: Runtime,
}

/// Which end of the queue.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Front,
    Back,
}

impl<T: FarData> RemQueue<T> {
    /// An empty queue in the default runtime (see the [module documentation](self)).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(aifm_collections::RemQueue::<u8>::new().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::new_in(Runtime::global())
    }

    /// An empty queue in `runtime`.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let mut q = aifm_collections::RemQueue::new_in(&rt);
    /// q.push(1u8);
    /// ```
    pub fn new_in(runtime: &Runtime) -> Self {
        Self::with_chunk_bytes_in(DEFAULT_CHUNK_BYTES, runtime)
    }

    /// A queue in `runtime` holding the elements of `iter` in order (what `collect()` does in
    /// the default runtime).
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let q = aifm_collections::RemQueue::from_iter_in(0..5u8, &rt);
    /// assert_eq!(q.len(), 5);
    /// ```
    #[track_caller]
    pub fn from_iter_in(iter: impl IntoIterator<Item = T>, runtime: &Runtime) -> Self {
        let mut q = Self::new_in(runtime);
        q.extend(iter);
        q
    }

    /// An empty queue in `runtime` whose chunks hold about `bytes` of elements.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let q = aifm_collections::RemQueue::<u64>::with_chunk_bytes_in(256, &rt);
    /// assert_eq!(q.chunk_len(), 32);
    /// ```
    pub fn with_chunk_bytes_in(bytes: usize, runtime: &Runtime) -> Self {
        RemQueue {
            chunks: VecDeque::new(),
            len: 0,
            shift: chunk_shift::<T>(bytes),
            rt: runtime.clone(),
        }
    }

    /// Elements per chunk (at most).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(aifm_collections::RemQueue::<u32>::new().chunk_len(), 1024);
    /// ```
    pub fn chunk_len(&self) -> usize {
        1 << self.shift
    }

    /// Number of elements.
    ///
    /// # Examples
    ///
    /// ```
    /// let q: aifm_collections::RemQueue<u8> = (0..3).collect();
    /// assert_eq!(q.len(), 3);
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the queue is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(aifm_collections::RemQueue::<u8>::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The runtime the queue lives in.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = aifm_collections::RemQueue::<u8>::new();
    /// assert_eq!(q.runtime().backend_name(), "embedded");
    /// ```
    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }

    /// Appends `value` at the back (FIFO order: [`RemQueue::push_back`]).
    ///
    /// # Panics
    /// If far memory fails (see [`RemQueue::try_push`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut q = aifm_collections::RemQueue::new();
    /// q.push('a');
    /// assert_eq!(q.pop(), Some('a'));
    /// ```
    #[track_caller]
    pub fn push(&mut self, value: T) {
        self.push_back(value)
    }

    /// Appends `value` at the back.
    ///
    /// # Panics
    /// If far memory fails (see [`RemQueue::try_push_back`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut q = aifm_collections::RemQueue::new();
    /// q.push_back(1u8);
    /// q.push_back(2);
    /// assert_eq!(q.pop_back(), Some(2));
    /// ```
    #[track_caller]
    pub fn push_back(&mut self, value: T) {
        if let Err(e) = self.push_at(End::Back, value) {
            fail("RemQueue::push_back", e)
        }
    }

    /// Prepends `value` at the front.
    ///
    /// # Panics
    /// If far memory fails (see [`RemQueue::try_push_front`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut q = aifm_collections::RemQueue::new();
    /// q.push_front(1u8);
    /// q.push_front(2);
    /// assert_eq!(q.pop(), Some(2));
    /// ```
    #[track_caller]
    pub fn push_front(&mut self, value: T) {
        if let Err(e) = self.push_at(End::Front, value) {
            fail("RemQueue::push_front", e)
        }
    }

    /// [`RemQueue::push`], reporting far-memory failures (the value is dropped then).
    ///
    /// # Errors
    /// As `RemBox::try_deref_mut` and `RemBox::try_new_in`.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut q = aifm_collections::RemQueue::new();
    /// q.try_push(1u8).unwrap();
    /// ```
    pub fn try_push(&mut self, value: T) -> Result<()> {
        self.push_at(End::Back, value)
    }

    /// [`RemQueue::push_back`], reporting far-memory failures (the value is dropped then).
    ///
    /// # Errors
    /// As `RemBox::try_deref_mut` and `RemBox::try_new_in`.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut q = aifm_collections::RemQueue::new();
    /// q.try_push_back(1u8).unwrap();
    /// ```
    pub fn try_push_back(&mut self, value: T) -> Result<()> {
        self.push_at(End::Back, value)
    }

    /// [`RemQueue::push_front`], reporting far-memory failures (the value is dropped then).
    ///
    /// # Errors
    /// As `RemBox::try_deref_mut` and `RemBox::try_new_in`.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut q = aifm_collections::RemQueue::new();
    /// q.try_push_front(1u8).unwrap();
    /// ```
    pub fn try_push_front(&mut self, value: T) -> Result<()> {
        self.push_at(End::Front, value)
    }

    fn push_at(&mut self, end: End, value: T) -> Result<()> {
        let cl = self.chunk_len();
        let chunk = match end {
            End::Front => self.chunks.front_mut(),
            End::Back => self.chunks.back_mut(),
        };
        if let Some(chunk) = chunk {
            let scope = Scope::new();
            let ring = chunk.try_deref_mut(&scope)?;
            if ring.0.len() < cl {
                let ring = ring.room(cl);
                match end {
                    End::Front => ring.push_front(value),
                    End::Back => ring.push_back(value),
                }
                self.len += 1;
                return Ok(());
            }
        }
        let mut ring = VecDeque::with_capacity(cl);
        ring.push_back(value);
        let chunk = RemBox::try_new_in(Ring(ring), &self.rt)?;
        match end {
            End::Front => self.chunks.push_front(chunk),
            End::Back => self.chunks.push_back(chunk),
        }
        self.len += 1;
        Ok(())
    }

    /// Removes the front element (FIFO order: [`RemQueue::pop_front`]).
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut q: aifm_collections::RemQueue<u8> = (1..3).collect();
    /// assert_eq!((q.pop(), q.pop(), q.pop()), (Some(1), Some(2), None));
    /// ```
    #[track_caller]
    pub fn pop(&mut self) -> Option<T> {
        self.pop_front()
    }

    /// Removes the front element.
    ///
    /// # Panics
    /// If far memory fails (see [`RemQueue::try_pop_front`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut q: aifm_collections::RemQueue<u8> = (1..3).collect();
    /// assert_eq!(q.pop_front(), Some(1));
    /// ```
    #[track_caller]
    pub fn pop_front(&mut self) -> Option<T> {
        match self.pop_at(End::Front) {
            Ok(v) => v,
            Err(e) => fail("RemQueue::pop_front", e),
        }
    }

    /// Removes the back element.
    ///
    /// # Panics
    /// If far memory fails (see [`RemQueue::try_pop_back`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut q: aifm_collections::RemQueue<u8> = (1..3).collect();
    /// assert_eq!((q.pop_back(), q.pop_back(), q.pop_back()), (Some(2), Some(1), None));
    /// ```
    #[track_caller]
    pub fn pop_back(&mut self) -> Option<T> {
        match self.pop_at(End::Back) {
            Ok(v) => v,
            Err(e) => fail("RemQueue::pop_back", e),
        }
    }

    /// [`RemQueue::pop`], reporting far-memory failures (the queue is unchanged then).
    ///
    /// # Errors
    /// As `RemBox::try_deref_mut`.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut q = aifm_collections::RemQueue::<u8>::new();
    /// assert_eq!(q.try_pop().unwrap(), None);
    /// ```
    pub fn try_pop(&mut self) -> Result<Option<T>> {
        self.pop_at(End::Front)
    }

    /// [`RemQueue::pop_front`], reporting far-memory failures (the queue is unchanged then).
    ///
    /// # Errors
    /// As `RemBox::try_deref_mut`.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut q: aifm_collections::RemQueue<u8> = (0..2).collect();
    /// assert_eq!(q.try_pop_front().unwrap(), Some(0));
    /// ```
    pub fn try_pop_front(&mut self) -> Result<Option<T>> {
        self.pop_at(End::Front)
    }

    /// [`RemQueue::pop_back`], reporting far-memory failures (the queue is unchanged then).
    ///
    /// # Errors
    /// As `RemBox::try_deref_mut`.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut q: aifm_collections::RemQueue<u8> = (0..2).collect();
    /// assert_eq!(q.try_pop_back().unwrap(), Some(1));
    /// ```
    pub fn try_pop_back(&mut self) -> Result<Option<T>> {
        self.pop_at(End::Back)
    }

    fn pop_at(&mut self, end: End) -> Result<Option<T>> {
        let chunk = match end {
            End::Front => self.chunks.front_mut(),
            End::Back => self.chunks.back_mut(),
        };
        let Some(chunk) = chunk else {
            return Ok(None);
        };
        let (x, emptied) = {
            let scope = Scope::new();
            let ring = &mut chunk.try_deref_mut(&scope)?.0;
            let x = match end {
                End::Front => ring.pop_front(),
                End::Back => ring.pop_back(),
            };
            (x, ring.is_empty())
        };
        self.len -= x.is_some() as usize;
        if emptied {
            // The end moved to a new chunk: bring the one after it in, nontemporally.
            let next = match end {
                End::Front => {
                    self.chunks.pop_front();
                    self.chunks.get(1)
                }
                End::Back => {
                    self.chunks.pop_back();
                    self.chunks
                        .len()
                        .checked_sub(2)
                        .and_then(|i| self.chunks.get(i))
                }
            };
            if let Some(next) = next {
                self.rt.prefetch([next.ticket()], true);
            }
        }
        Ok(x)
    }

    /// The front element, valid while `scope` lives.
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let q: aifm_collections::RemQueue<u8> = (5..9).collect();
    /// assert_eq!(q.front(&aifm_core::Scope::new()), Some(&5));
    /// ```
    #[track_caller]
    pub fn front<'a>(&'a self, scope: &'a Scope) -> Option<&'a T> {
        self.chunks.front()?.deref(scope).0.front()
    }

    /// The back element, valid while `scope` lives.
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let q: aifm_collections::RemQueue<u8> = (5..9).collect();
    /// assert_eq!(q.back(&aifm_core::Scope::new()), Some(&8));
    /// ```
    #[track_caller]
    pub fn back<'a>(&'a self, scope: &'a Scope) -> Option<&'a T> {
        self.chunks.back()?.deref(scope).0.back()
    }

    /// The front element, mutably, valid while `scope` lives.
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut q: aifm_collections::RemQueue<u8> = (5..9).collect();
    /// let scope = aifm_core::Scope::new();
    /// *q.front_mut(&scope).unwrap() = 1;
    /// assert_eq!(q.front(&scope), Some(&1));
    /// ```
    #[track_caller]
    pub fn front_mut<'a>(&'a mut self, scope: &'a Scope) -> Option<&'a mut T> {
        self.chunks.front_mut()?.deref_mut(scope).0.front_mut()
    }

    /// The back element, mutably, valid while `scope` lives.
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut q: aifm_collections::RemQueue<u8> = (5..9).collect();
    /// let scope = aifm_core::Scope::new();
    /// *q.back_mut(&scope).unwrap() += 1;
    /// assert_eq!(q.back(&scope), Some(&9));
    /// ```
    #[track_caller]
    pub fn back_mut<'a>(&'a mut self, scope: &'a Scope) -> Option<&'a mut T> {
        self.chunks.back_mut()?.deref_mut(scope).0.back_mut()
    }

    /// Removes every element.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut q: aifm_collections::RemQueue<u8> = (0..9).collect();
    /// q.clear();
    /// assert!(q.is_empty());
    /// ```
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.len = 0;
    }

    /// Clones of the elements, front to back or back to front (one dereference per chunk;
    /// see `Iter` for when a scope is open).
    ///
    /// # Panics
    /// The iterator panics if far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut q: aifm_collections::RemQueue<u8> = (0..5).collect();
    /// q.pop();
    /// assert_eq!(q.iter().collect::<Vec<_>>(), [1, 2, 3, 4]);
    /// assert_eq!(q.iter().rev().next(), Some(4));
    /// ```
    pub fn iter(&self) -> Iter<'_, T>
    where
        T: Clone,
    {
        Iter(Cloned::new(
            Chunks(&self.chunks),
            self.chunks.len(),
            self.len,
        ))
    }

    /// Removes the elements in `range` (positions from the front) and yields them, front to
    /// back (or back to front: the iterator is double-ended).
    ///
    /// # Panics
    /// If the range is out of bounds (as `VecDeque::drain`), or far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut q: aifm_collections::RemQueue<u8> = (0..5).collect();
    /// assert_eq!(q.drain(1..3).collect::<Vec<_>>(), [1, 2]);
    /// assert_eq!(q.drain(..).collect::<Vec<_>>(), [0, 3, 4]);
    /// assert!(q.is_empty());
    /// ```
    #[track_caller]
    pub fn drain(&mut self, range: impl RangeBounds<usize>) -> IntoIter<T> {
        let Range { start, end } = crate::vec::to_range(range, self.len);
        let mut out = RemQueue {
            chunks: VecDeque::new(),
            len: 0,
            shift: self.shift,
            rt: self.rt.clone(),
        };
        if start == 0 && end == self.len {
            std::mem::swap(&mut out.chunks, &mut self.chunks);
            std::mem::swap(&mut out.len, &mut self.len);
        } else {
            // One turn through the queue: what stays goes back in at the back, in order.
            for i in 0..self.len {
                let x = self.pop_front().expect("counted");
                if (start..end).contains(&i) {
                    out.push_back(x);
                } else {
                    self.push_back(x);
                }
            }
        }
        IntoIter(out)
    }

    /// Keeps the elements for which `keep` is true, in order.
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut q: aifm_collections::RemQueue<u8> = (0..10).collect();
    /// q.retain(|x| x % 2 == 1);
    /// assert_eq!(q.iter().collect::<Vec<_>>(), [1, 3, 5, 7, 9]);
    /// ```
    #[track_caller]
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        // Popping from the front while pushing at the back would meet the kept elements
        // again: count the elements once and cycle through them exactly once.
        for _ in 0..self.len {
            let x = self.pop_front().expect("counted");
            if keep(&x) {
                self.push_back(x);
            }
        }
    }
}

crate::common::sequence_traits!(RemQueue, push);
