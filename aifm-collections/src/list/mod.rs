//! `RemList<T>`: a chunked doubly-linked list with cursors.
//!
//! # Layout
//!
//! Elements live in chunks of at most `2^k` elements (about [`DEFAULT_CHUNK_BYTES`]), each one
//! remote object (`RemBox<Vec<T>>`, buffer allocated at chunk capacity). The links are local:
//! a slab of nodes `{ chunk, len, prev, next }`, so walking the list never fetches a chunk just
//! to find its neighbour, and `len` per node lets a cursor skip chunks without touching them.
//!
//! * **Split when full.** Inserting into a full chunk moves its upper half to a new chunk
//!   linked right after it.
//! * **Merge when sparse.** After a removal leaves a chunk under a quarter full, it absorbs its
//!   successor if both fit in one chunk; an empty chunk is unlinked and dropped at once.
//!
//! # Default runtime
//!
//! [`RemList::new`], `Default`, `FromIterator` (`collect()`) and `From<Vec<T>>` build in the
//! process-wide default runtime (`Runtime::global()`, 256 MiB of local memory unless
//! configured); [`RemList::new_in`] and [`RemList::from_iter_in`] choose the runtime.
//!
//! # Semantics the structure tells the runtime
//!
//! Chunks are plain objects of the runtime's object store (default write-back). **Prefetch in
//! the direction of travel:** iterators and cursors, when they enter a chunk, bring the next
//! chunk in that direction to the runtime's prefetch helpers (nontemporally) if it is remote.

use crate::common::{chunk_shift, DEFAULT_CHUNK_BYTES};
use aifm_core::{FarData, RemBox, Result, Runtime, Scope};

mod cursor;
mod iter;
mod links;

pub use cursor::CursorMut;
pub use iter::{IntoIter, Iter};

const NIL: usize = usize::MAX;

struct Node<T: FarData> {
    chunk: Option<RemBox<Vec<T>>>,
    len: usize,
    prev: usize,
    next: usize,
}

/// A chunked doubly-linked list whose chunks may be in local or far memory.
///
/// # Examples
///
/// ```
/// let mut l = aifm_collections::RemList::new();
/// l.push_back(2u32);
/// l.push_front(1);
/// l.push_back(3);
/// assert_eq!(l.iter().collect::<Vec<_>>(), [1, 2, 3]);
/// let mut c = l.cursor_front_mut();
/// c.move_next();
/// assert_eq!(c.remove_current(), Some(2));
/// assert_eq!(l.iter().collect::<Vec<_>>(), [1, 3]);
/// ```
pub struct RemList<T: FarData> {
    nodes: Vec<Node<T>>,
    free: Vec<usize>,
    head: usize,
    tail: usize,
    len: usize,
    shift: u32,
    rt: Runtime,
}

impl<T: FarData> RemList<T> {
    /// An empty list in the default runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(aifm_collections::RemList::<u8>::new().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::new_in(Runtime::global())
    }

    /// An empty list in `runtime`.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let mut l = aifm_collections::RemList::new_in(&rt);
    /// l.push_back(1u8);
    /// ```
    pub fn new_in(runtime: &Runtime) -> Self {
        Self::with_chunk_bytes_in(DEFAULT_CHUNK_BYTES, runtime)
    }

    /// A list in `runtime` holding the elements of `iter` in order (what `collect()` does in
    /// the default runtime).
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let l = aifm_collections::RemList::from_iter_in(0..5u8, &rt);
    /// assert_eq!(l.back(), Some(4));
    /// ```
    #[track_caller]
    pub fn from_iter_in(iter: impl IntoIterator<Item = T>, runtime: &Runtime) -> Self {
        let mut l = Self::new_in(runtime);
        l.extend(iter);
        l
    }

    /// An empty list in `runtime` whose chunks hold about `bytes` of elements.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let l = aifm_collections::RemList::<u64>::with_chunk_bytes_in(64, &rt);
    /// assert_eq!(l.chunk_len(), 8);
    /// ```
    pub fn with_chunk_bytes_in(bytes: usize, runtime: &Runtime) -> Self {
        RemList {
            nodes: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            len: 0,
            shift: chunk_shift::<T>(bytes),
            rt: runtime.clone(),
        }
    }

    /// Elements per full chunk.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(aifm_collections::RemList::<u64>::new().chunk_len(), 512);
    /// ```
    pub fn chunk_len(&self) -> usize {
        1 << self.shift
    }

    /// Number of elements.
    ///
    /// # Examples
    ///
    /// ```
    /// let l: aifm_collections::RemList<u8> = (0..4).collect();
    /// assert_eq!(l.len(), 4);
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the list is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(aifm_collections::RemList::<u8>::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of chunks (a measure of how well splits and merges keep chunks full).
    ///
    /// # Examples
    ///
    /// ```
    /// let l: aifm_collections::RemList<u64> = (0..1024).collect();
    /// assert_eq!(l.chunks(), 2);
    /// ```
    pub fn chunks(&self) -> usize {
        self.nodes.len() - self.free.len()
    }

    /// Appends `x`.
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut l = aifm_collections::RemList::new();
    /// l.push_back(1u8);
    /// assert_eq!(l.back(), Some(1));
    /// ```
    #[track_caller]
    pub fn push_back(&mut self, x: T) {
        if self.tail == NIL || self.nodes[self.tail].len == self.chunk_len() {
            let tail = self.tail;
            self.new_node(vec![x], tail, NIL);
            self.len += 1;
        } else {
            let (t, n) = (self.tail, self.nodes[self.tail].len);
            self.insert_at(t, n, x);
        }
    }

    /// Prepends `x`.
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut l = aifm_collections::RemList::new();
    /// l.push_front(1u8);
    /// l.push_front(0);
    /// assert_eq!(l.front(), Some(0));
    /// ```
    #[track_caller]
    pub fn push_front(&mut self, x: T) {
        if self.head == NIL || self.nodes[self.head].len == self.chunk_len() {
            let head = self.head;
            self.new_node(vec![x], NIL, head);
            self.len += 1;
        } else {
            let h = self.head;
            self.insert_at(h, 0, x);
        }
    }

    /// Removes the last element.
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut l: aifm_collections::RemList<u8> = (0..3).collect();
    /// assert_eq!(l.pop_back(), Some(2));
    /// ```
    #[track_caller]
    pub fn pop_back(&mut self) -> Option<T> {
        if self.tail == NIL {
            return None;
        }
        let t = self.tail;
        let at = self.nodes[t].len - 1;
        Some(self.remove_at(t, at).0)
    }

    /// Removes the first element.
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut l: aifm_collections::RemList<u8> = (0..3).collect();
    /// assert_eq!(l.pop_front(), Some(0));
    /// ```
    #[track_caller]
    pub fn pop_front(&mut self) -> Option<T> {
        if self.head == NIL {
            return None;
        }
        let h = self.head;
        Some(self.remove_at(h, 0).0)
    }

    fn peek(&self, node: usize, at: usize) -> Option<T>
    where
        T: Clone,
    {
        let n = self.nodes.get(node)?;
        let scope = Scope::new();
        n.chunk.as_ref()?.deref(&scope).get(at).cloned()
    }

    /// Brings the chunks of `nodes` (and the neighbours a merge may touch) into local memory
    /// inside `scope`, so the operation that follows in the same scope needs no network: an
    /// error here leaves the list untouched.
    fn ready(&self, scope: &Scope, nodes: &[usize]) -> Result<()> {
        for &i in nodes {
            let Some(n) = self.nodes.get(i) else { continue };
            for j in [i, n.next] {
                if let Some(chunk) = self.nodes.get(j).and_then(|n| n.chunk.as_ref()) {
                    chunk.try_deref(scope)?;
                }
            }
        }
        Ok(())
    }

    /// [`RemList::push_back`], reporting far-memory failures; on error the list is unchanged.
    ///
    /// # Errors
    /// Far-memory errors while fetching the last chunk.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut l = aifm_collections::RemList::new();
    /// l.try_push_back(1u8).unwrap();
    /// assert_eq!(l.back(), Some(1));
    /// ```
    pub fn try_push_back(&mut self, x: T) -> Result<()> {
        let scope = Scope::new();
        self.ready(&scope, &[self.tail])?;
        self.push_back(x);
        Ok(())
    }

    /// [`RemList::push_front`], reporting far-memory failures; on error the list is unchanged.
    ///
    /// # Errors
    /// Far-memory errors while fetching the first chunk.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut l = aifm_collections::RemList::new();
    /// l.try_push_front(1u8).unwrap();
    /// assert_eq!(l.front(), Some(1));
    /// ```
    pub fn try_push_front(&mut self, x: T) -> Result<()> {
        let scope = Scope::new();
        self.ready(&scope, &[self.head])?;
        self.push_front(x);
        Ok(())
    }

    /// [`RemList::pop_back`], reporting far-memory failures; on error the list is unchanged.
    ///
    /// # Errors
    /// Far-memory errors while fetching the last chunk.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut l: aifm_collections::RemList<u8> = (0..3).collect();
    /// assert_eq!(l.try_pop_back().unwrap(), Some(2));
    /// ```
    pub fn try_pop_back(&mut self) -> Result<Option<T>> {
        let scope = Scope::new();
        self.ready(&scope, &[self.tail])?;
        Ok(self.pop_back())
    }

    /// [`RemList::pop_front`], reporting far-memory failures; on error the list is unchanged.
    ///
    /// # Errors
    /// Far-memory errors while fetching the first chunks.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut l: aifm_collections::RemList<u8> = (0..3).collect();
    /// assert_eq!(l.try_pop_front().unwrap(), Some(0));
    /// ```
    pub fn try_pop_front(&mut self) -> Result<Option<T>> {
        let scope = Scope::new();
        self.ready(&scope, &[self.head])?;
        Ok(self.pop_front())
    }

    /// [`RemList::front`], reporting far-memory failures.
    ///
    /// # Errors
    /// Far-memory errors while fetching the first chunk.
    ///
    /// # Examples
    ///
    /// ```
    /// let l: aifm_collections::RemList<u8> = (4..6).collect();
    /// assert_eq!(l.try_front().unwrap(), Some(4));
    /// ```
    pub fn try_front(&self) -> Result<Option<T>>
    where
        T: Clone,
    {
        let scope = Scope::new();
        self.ready(&scope, &[self.head])?;
        Ok(self.front())
    }

    /// [`RemList::back`], reporting far-memory failures.
    ///
    /// # Errors
    /// Far-memory errors while fetching the last chunk.
    ///
    /// # Examples
    ///
    /// ```
    /// let l: aifm_collections::RemList<u8> = (4..6).collect();
    /// assert_eq!(l.try_back().unwrap(), Some(5));
    /// ```
    pub fn try_back(&self) -> Result<Option<T>>
    where
        T: Clone,
    {
        let scope = Scope::new();
        self.ready(&scope, &[self.tail])?;
        Ok(self.back())
    }

    /// A clone of the first element.
    ///
    /// # Examples
    ///
    /// ```
    /// let l: aifm_collections::RemList<u8> = (4..6).collect();
    /// assert_eq!(l.front(), Some(4));
    /// ```
    pub fn front(&self) -> Option<T>
    where
        T: Clone,
    {
        self.peek(self.head, 0)
    }

    /// A clone of the last element.
    ///
    /// # Examples
    ///
    /// ```
    /// let l: aifm_collections::RemList<u8> = (4..6).collect();
    /// assert_eq!(l.back(), Some(5));
    /// ```
    pub fn back(&self) -> Option<T>
    where
        T: Clone,
    {
        let t = self.tail;
        self.nodes
            .get(t)
            .and_then(|n| n.len.checked_sub(1))
            .and_then(|at| self.peek(t, at))
    }

    /// Removes every element.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut l: aifm_collections::RemList<u8> = (0..3).collect();
    /// l.clear();
    /// assert!(l.is_empty());
    /// ```
    pub fn clear(&mut self) {
        self.nodes.clear();
        self.free.clear();
        self.head = NIL;
        self.tail = NIL;
        self.len = 0;
    }

    /// Brings node `i`'s chunk in ahead of use (nontemporally) if it is remote.
    fn prefetch(&self, i: usize) {
        if let Some(c) = self.nodes.get(i).and_then(|n| n.chunk.as_ref()) {
            self.rt.prefetch([c.ticket()], true);
        }
    }

    /// Clones of the elements, front to back (one dereference per chunk; the next chunk is
    /// prefetched as each one is entered).
    ///
    /// # Examples
    ///
    /// ```
    /// let l: aifm_collections::RemList<u8> = (0..3).collect();
    /// assert_eq!(l.iter().rev().collect::<Vec<_>>(), [2, 1, 0]);
    /// ```
    pub fn iter(&self) -> Iter<'_, T>
    where
        T: Clone,
    {
        Iter {
            list: self,
            front: self.head,
            back: self.tail,
            fbuf: Vec::new().into_iter(),
            bbuf: Vec::new().into_iter(),
            remaining: self.len,
        }
    }

    /// A cursor at the first element (or at the "ghost" position of an empty list).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut l: aifm_collections::RemList<u8> = (0..3).collect();
    /// let mut c = l.cursor_front_mut();
    /// c.insert_before(9);
    /// assert_eq!(c.current(), Some(0));
    /// assert_eq!(l.iter().collect::<Vec<_>>(), [9, 0, 1, 2]);
    /// ```
    pub fn cursor_front_mut(&mut self) -> CursorMut<'_, T> {
        let node = self.head;
        CursorMut {
            list: self,
            node,
            off: 0,
        }
    }

    /// Keeps the elements for which `keep` is true.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut l: aifm_collections::RemList<u8> = (0..6).collect();
    /// l.retain(|x| x % 2 == 0);
    /// assert_eq!(l.iter().collect::<Vec<_>>(), [0, 2, 4]);
    /// ```
    #[track_caller]
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        let mut c = self.cursor_front_mut();
        while let Some(k) = c.with_current(|x| keep(x)) {
            if k {
                c.move_next();
            } else {
                c.remove_current();
            }
        }
    }
}
