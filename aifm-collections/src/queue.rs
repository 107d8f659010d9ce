//! `RemQueue<T>`: a FIFO queue in far memory, chunk by chunk.
//!
//! # Layout
//!
//! Elements live in chunks of `2^k` elements (about [`DEFAULT_CHUNK_BYTES`]), each one remote
//! object (`RemBox<Vec<T>>`, buffer allocated once at chunk capacity), kept in a local
//! `VecDeque` of handles. The producer appends to the back chunk; when it is full a new chunk
//! starts. Chunks never split. The consumer's chunk is reversed in place the first time it
//! pops from it, so that every pop is a `Vec::pop`; a reversed chunk takes no more pushes.
//! A consumed chunk is dropped at once (its far copy, if any, goes with it).
//!
//! # Semantics the structure tells the runtime
//!
//! * Chunks are plain objects of the runtime's object store, written back whole by the default
//!   handler; there is no offloaded operation, so no device of its own.
//! * **Consumer-side prefetch.** When the consumer moves to a new chunk, the chunk after it is
//!   handed to the runtime's prefetch helpers (nontemporally) if it is remote, so the next move
//!   finds it local, and a producer far ahead does not heat chunks that will be read once.

use crate::common::{chunk_shift, fail, DEFAULT_CHUNK_BYTES};
use aifm_core::{FarData, RemBox, Result, Runtime, Scope};
use std::collections::VecDeque;
use std::fmt;

/// A FIFO queue whose chunks may be in local or far memory.
///
/// # Examples
///
/// ```
/// let mut q = aifm_collections::RemQueue::new();
/// q.extend(0..10_000u32);
/// assert_eq!(q.pop(), Some(0));
/// q.push(10_000);
/// assert_eq!(q.len(), 10_000);
/// assert_eq!(q.iter().last(), Some(10_000));
/// ```
pub struct RemQueue<T: FarData> {
    chunks: VecDeque<RemBox<Vec<T>>>,
    /// The front chunk has been reversed for popping.
    front_reversed: bool,
    len: usize,
    shift: u32,
    rt: Runtime,
}

impl<T: FarData> RemQueue<T> {
    /// An empty queue in the default runtime.
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
            front_reversed: false,
            len: 0,
            shift: chunk_shift::<T>(bytes),
            rt: runtime.clone(),
        }
    }

    /// Elements per chunk.
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

    /// Appends `value` at the back.
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
        if let Err(e) = self.try_push(value) {
            fail("RemQueue::push", e)
        }
    }

    /// Appends `value`, reporting far-memory failures (the value is dropped then).
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
        let cl = self.chunk_len();
        let back_open = match self.chunks.len() {
            0 => false,
            1 => !self.front_reversed,
            _ => true,
        };
        if back_open {
            let scope = Scope::new();
            let back = self
                .chunks
                .back_mut()
                .expect("open")
                .try_deref_mut(&scope)?;
            if back.len() < cl {
                if back.capacity() < cl {
                    back.reserve_exact(cl - back.len());
                }
                back.push(value);
                self.len += 1;
                return Ok(());
            }
        }
        let mut v = Vec::with_capacity(cl);
        v.push(value);
        self.chunks.push_back(RemBox::try_new_in(v, &self.rt)?);
        self.len += 1;
        Ok(())
    }

    /// Removes the front element.
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
        match self.try_pop() {
            Ok(v) => v,
            Err(e) => fail("RemQueue::pop", e),
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
        if self.len == 0 {
            return Ok(None);
        }
        let x = {
            let scope = Scope::new();
            let front = self
                .chunks
                .front_mut()
                .expect("non-empty")
                .try_deref_mut(&scope)?;
            if !self.front_reversed {
                front.reverse();
                self.front_reversed = true;
            }
            front.pop()
        };
        self.len -= 1;
        let emptied = {
            let scope = Scope::new();
            self.chunks
                .front()
                .is_some_and(|c| c.try_deref(&scope).is_ok_and(|v| v.is_empty()))
        };
        if emptied {
            self.chunks.pop_front();
            self.front_reversed = false;
            self.prefetch_next();
        }
        Ok(x)
    }

    /// The consumer moved to a new chunk: bring the one after it in, nontemporally.
    fn prefetch_next(&self) {
        if let Some(next) = self.chunks.get(1) {
            self.rt.prefetch([next.ticket()], true);
        }
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
    pub fn front<'a>(&'a self, scope: &'a Scope) -> Option<&'a T> {
        let v = self.chunks.front()?.deref(scope);
        if self.front_reversed {
            v.last()
        } else {
            v.first()
        }
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
        self.front_reversed = false;
        self.len = 0;
    }

    /// Clones of the elements, front to back (one dereference per chunk).
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
    /// ```
    pub fn iter(&self) -> Iter<'_, T>
    where
        T: Clone,
    {
        Iter {
            q: self,
            next_chunk: 0,
            buf: Vec::new().into_iter(),
        }
    }

    /// Removes and yields every element, front to back.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut q: aifm_collections::RemQueue<u8> = (0..3).collect();
    /// assert_eq!(q.drain().collect::<Vec<_>>(), [0, 1, 2]);
    /// assert!(q.is_empty());
    /// ```
    pub fn drain(&mut self) -> IntoIter<T> {
        let taken = RemQueue {
            chunks: std::mem::take(&mut self.chunks),
            front_reversed: std::mem::take(&mut self.front_reversed),
            len: std::mem::take(&mut self.len),
            shift: self.shift,
            rt: self.rt.clone(),
        };
        IntoIter(taken)
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
        let mut all = crate::RemVec::new_in(&self.rt);
        all.extend(self.drain());
        for x in all {
            if keep(&x) {
                self.push(x);
            }
        }
    }
}

/// Iterator over clones of a [`RemQueue`]'s elements; see [`RemQueue::iter`].
///
/// ```
/// let q: aifm_collections::RemQueue<u8> = (0..2).collect();
/// assert_eq!(q.iter().collect::<Vec<_>>(), [0, 1]);
/// ```
pub struct Iter<'a, T: FarData> {
    q: &'a RemQueue<T>,
    next_chunk: usize,
    buf: std::vec::IntoIter<T>,
}

impl<T: FarData + Clone> Iterator for Iter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        loop {
            if let Some(x) = self.buf.next() {
                return Some(x);
            }
            let c = self.q.chunks.get(self.next_chunk)?;
            let scope = Scope::new();
            let mut v = c.deref(&scope).clone();
            if self.next_chunk == 0 && self.q.front_reversed {
                v.reverse();
            }
            self.next_chunk += 1;
            self.buf = v.into_iter();
        }
    }
}

impl<T: FarData> fmt::Debug for Iter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter")
            .field("chunk", &self.next_chunk)
            .finish()
    }
}

/// Owning iterator of a [`RemQueue`] (pops from the front).
///
/// ```
/// let q: aifm_collections::RemQueue<u8> = (0..2).collect();
/// assert_eq!(q.into_iter().len(), 2);
/// ```
pub struct IntoIter<T: FarData>(RemQueue<T>);

impl<T: FarData> Iterator for IntoIter<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.0.pop()
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.0.len, Some(self.0.len))
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

impl<T: FarData> IntoIterator for RemQueue<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;
    fn into_iter(self) -> IntoIter<T> {
        IntoIter(self)
    }
}

impl<'a, T: FarData + Clone> IntoIterator for &'a RemQueue<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

crate::common::sequence_traits!(RemQueue, push);
