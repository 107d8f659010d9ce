//! One chunk of a `RemVec`: how its elements are stored, and the few edits the vector makes.
//!
//! # Two representations, chosen per element type
//!
//! * **Inline** ([`Page`], in `page.rs`): for plain data (`T::POD` is `Some`, so `T: Pod` is
//!   proven) whose chunk fills more than half of a page, the elements live *in the heap object itself*: a
//!   fixed [`PAGE_BYTES`] array of 8-aligned words after a byte count, read as `[T]`. A `get`
//!   is then: the chunk's pointer word, its slow-path flag test, the element (no inner `Vec`
//!   header to chase), and the object's bytes are all the runtime moves or charges.
//! * **Boxed**: every other element type (and plain data with chunks far from a page) keeps a
//!   `Vec<T>` object whose buffer is allocated once at chunk capacity.
//!
//! # The chunk table
//!
//! The chunks' pointer words live in the vector's own [`SlotArena`] (one per vector, of one
//! representation): chunk `c` is arena index `c`, and its far key is `c`, under the vector's
//! structure. There is no `RemBox` and no runtime slot per chunk: a chunk costs its 16-byte
//! arena slot and a byte of flags, and a `get` goes arena segment → word → element.
//!
//! Both encode for far memory exactly as `Vec<T>` of plain data does (the elements' raw
//! bytes), so the `aifm.vec` device reads either the same way; a non-plain element type's
//! boxed chunk keeps `Vec<T>`'s own encoding.
//!
//! A vector's chunks all share one representation ([`inline_for`] depends only on the
//! element type and the chunk length), so the match in each accessor always takes the same
//! arm: a well-predicted branch on the table's tag.

use super::page::{inline_for, pod, Page, PAGE_BYTES};
use super::Far;
use crate::common::chunk_shift;
use aifm_core::arena::SlotArena;
use aifm_core::backend::OBJECT_STORE_DEVICE;
use aifm_core::codec::PodWitness;
use aifm_core::prefetch::FetchTicket;
use aifm_core::{Error, FarData, Result, Scope};
use std::sync::atomic::{AtomicU8, Ordering};

/// The chunks' objects, in the vector's own arena: chunk `c` is arena index `c` (and far key
/// `c`). One arena per vector, of one representation.
enum Table<T: FarData> {
    /// No chunk was ever made (no structure, no arena yet).
    Empty,
    Inline(SlotArena<Page>),
    Boxed(SlotArena<Vec<T>>),
}

/// The chunk table of a vector: its chunks' pointer words (in a [`SlotArena`], 16 bytes per
/// chunk, no handle) and a byte of flags per chunk (`SYNCED`, `WROTE`). Chunks `0..len()`
/// exist; edits happen at the end (`push`, `pop`, `truncate`) or in place.
pub(crate) struct ChunkTable<T: FarData> {
    table: Table<T>,
    flags: Vec<AtomicU8>,
}

impl<T: FarData> Default for ChunkTable<T> {
    fn default() -> Self {
        ChunkTable {
            table: Table::Empty,
            flags: Vec::new(),
        }
    }
}

impl<T: FarData> ChunkTable<T> {
    /// Number of chunks.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.flags.len()
    }

    pub(crate) fn reserve(&mut self, chunks: usize) {
        self.flags.reserve(chunks);
    }

    /// Chunk `c` (which must exist).
    #[inline]
    #[track_caller]
    pub(crate) fn at(&self, c: usize) -> ChunkRef<'_, T> {
        ChunkRef {
            table: &self.table,
            c,
            flags: &self.flags[c],
        }
    }

    /// The chunks in order.
    pub(crate) fn iter(&self) -> ChunkIter<'_, T> {
        self.range(0..self.len())
    }

    /// Chunks `r` in order (`r` within `0..len()`).
    pub(crate) fn range(&self, r: std::ops::Range<usize>) -> ChunkIter<'_, T> {
        assert!(r.end <= self.len(), "chunk range past the end");
        ChunkIter { table: self, r }
    }

    /// Element `index` of a vector whose chunks hold `1 << shift` elements (the hot path of
    /// `RemVec::get`; panics on a far-memory failure). `miss` runs first, with the chunk,
    /// when the chunk is not local (the vector's stride detector).
    ///
    /// An inline table exists only for the one chunk length `inline_for` accepts (the
    /// largest power of two whose elements fit a page), so its split of `index` uses
    /// constants: no load of `shift`, and the page's own bound on the offset folds away. The
    /// arena's segment table is not bounds-checked either: the vector's length already was.
    ///
    /// # Safety
    /// Chunk `index >> shift` must have been pushed into this table, as it has for any index
    /// below the length of the vector that owns the table (the invariant on `RemVec::len`).
    #[inline]
    #[track_caller]
    pub(crate) unsafe fn elem<'a>(
        &'a self,
        index: usize,
        shift: u32,
        scope: &'a Scope,
        miss: impl FnOnce(usize),
    ) -> Option<&'a T> {
        /// A chunk that is not local and hot: feeds the detector, dereferences the chunk
        /// through the slow path, and picks the element (so the fast path's tail is its own:
        /// one load from the word's address).
        #[cold]
        #[track_caller]
        fn slow<'a, X: FarData, E>(
            a: &'a SlotArena<X>,
            c: usize,
            scope: &'a Scope,
            miss: impl FnOnce(usize),
            pick: impl FnOnce(&'a X) -> Option<&'a E>,
        ) -> Option<&'a E> {
            if !a.is_local(c) {
                miss(c);
            }
            pick(a.get(c, scope)?)
        }
        match &self.table {
            Table::Inline(a) => {
                let s = const { chunk_shift::<T>(PAGE_BYTES) };
                debug_assert_eq!(s, shift, "an inline table with another chunk length");
                let (c, off) = (index >> s, index & ((1 << s) - 1));
                // SAFETY: the caller guarantees chunk `c` was pushed, and `push` puts
                // chunk `c` at arena index `c` (see `get_hot_unchecked`).
                match unsafe { a.get_hot_unchecked(c, scope) } {
                    Some(p) => p.elem(off, pod()),
                    None => slow(a, c, scope, miss, move |p| p.elem(off, pod())),
                }
            }
            Table::Boxed(a) => {
                let (c, off) = (index >> shift, index & ((1 << shift) - 1));
                // SAFETY: as for inline chunks.
                match unsafe { a.get_hot_unchecked(c, scope) } {
                    Some(v) => v.get(off),
                    None => slow(a, c, scope, miss, move |v| v.get(off)),
                }
            }
            Table::Empty => None,
        }
    }

    /// Chunk `c`'s flags, for an edit.
    #[inline]
    pub(crate) fn flags_mut(&mut self, c: usize) -> &mut u8 {
        self.flags[c].get_mut()
    }

    /// Index of the last chunk.
    #[track_caller]
    pub(crate) fn last(&self) -> usize {
        self.len().checked_sub(1).expect("a chunk")
    }

    /// Appends a chunk holding `items` (at most `chunk_len`, which fixes the representation
    /// when the table makes its arena), in `far`'s structure (or, if the vector has none, in
    /// a plain object-store structure of its own).
    pub(crate) fn push(&mut self, items: Vec<T>, chunk_len: usize, far: &Far) -> Result<()> {
        let inline = inline_for::<T>(chunk_len);
        let fits = match self.table {
            Table::Empty => false,
            Table::Inline(_) => inline,
            Table::Boxed(_) => !inline,
        };
        if !fits {
            // A new table, or an empty one whose vector changed its chunk length (`clone_from`)
            // so that the other representation applies.
            assert_eq!(self.len(), 0, "one representation per vector");
            let own;
            let s = match &far.structure {
                Some(s) => s,
                None => {
                    own = far.rt.register_structure(OBJECT_STORE_DEVICE, &[], None)?;
                    &own
                }
            };
            self.table = if inline {
                Table::Inline(SlotArena::new(s))
            } else {
                Table::Boxed(SlotArena::new(s))
            };
        }
        let c = self.len();
        match &mut self.table {
            Table::Inline(a) => a.put(c, Page::of(&items, pod()))?,
            Table::Boxed(a) => {
                let mut items = items;
                if items.capacity() < chunk_len {
                    items.reserve_exact(chunk_len - items.len());
                }
                a.put(c, items)?
            }
            Table::Empty => unreachable!("made above"),
        }
        self.flags.push(AtomicU8::new(0));
        Ok(())
    }

    /// Takes chunk `c`'s elements out (fetching them if they are remote), leaving a hole that
    /// only `truncate` or `pop` may follow; returns them with the chunk's key and flags.
    #[track_caller]
    pub(crate) fn take(&mut self, c: usize) -> Taken<T> {
        #[track_caller]
        fn taken<X>(r: Result<Option<X>>, c: usize) -> X {
            match r {
                Ok(Some(x)) => x,
                Ok(None) => panic!("RemVec: chunk {c} was taken twice"),
                Err(e) => crate::common::fail("RemVec", e),
            }
        }
        let items = match &mut self.table {
            Table::Inline(a) => {
                let page: Page = taken(a.take(c), c);
                let w = pod::<T>();
                let xs = page.elems(w);
                let mut v = Vec::with_capacity(xs.len());
                // SAFETY: `T: Pod` (the witness), so a bitwise copy is a valid `T`, and
                // dropping the page drops no `T`.
                unsafe {
                    std::ptr::copy_nonoverlapping(xs.as_ptr(), v.as_mut_ptr(), xs.len());
                    v.set_len(xs.len());
                }
                v
            }
            Table::Boxed(a) => taken(a.take(c), c),
            Table::Empty => panic!("RemVec: no chunk {c}"),
        };
        Taken {
            key: c as u64,
            flags: AtomicU8::new(self.flags[c].load(Ordering::Relaxed)),
            items,
        }
    }

    /// Drops the chunks from `n` on (those not taken yet).
    pub(crate) fn truncate(&mut self, n: usize) {
        while self.len() > n {
            self.pop();
        }
    }

    /// Drops the last chunk; returns its key and flags.
    pub(crate) fn pop(&mut self) -> Option<(u64, u8)> {
        let flags = self.flags.pop()?.into_inner();
        let c = self.len();
        match &mut self.table {
            Table::Inline(a) => drop(a.remove(c)),
            Table::Boxed(a) => drop(a.remove(c)),
            Table::Empty => {}
        }
        Some((c as u64, flags))
    }

    /// Chunk `c` opened for edits that change its length (it becomes dirty).
    pub(crate) fn edit<'a>(&'a mut self, c: usize, scope: &'a Scope) -> Result<Edit<'a, T>> {
        let missing = || Error::NotFound;
        Ok(match &mut self.table {
            Table::Inline(a) => Edit::Inline(a.try_get_mut(c, scope)?.ok_or_else(missing)?, pod()),
            Table::Boxed(a) => Edit::Boxed(a.try_get_mut(c, scope)?.ok_or_else(missing)?),
            Table::Empty => return Err(missing()),
        })
    }

    /// [`ChunkTable::edit`], panicking on a far-memory failure (like `RemBox::deref_mut`).
    #[track_caller]
    pub(crate) fn edit_now<'a>(&'a mut self, c: usize, scope: &'a Scope) -> Edit<'a, T> {
        match self.edit(c, scope) {
            Ok(e) => e,
            Err(e) => crate::common::fail("RemVec", e),
        }
    }

    /// Chunks `a` and `b` (distinct) opened for edits at once.
    #[track_caller]
    pub(crate) fn edit_two<'a>(
        &'a mut self,
        a: usize,
        b: usize,
        scope: &'a Scope,
    ) -> (Edit<'a, T>, Edit<'a, T>) {
        assert_ne!(a, b, "two edits of one chunk");
        fn both<'a, X: FarData>(
            arena: &'a mut SlotArena<X>,
            a: usize,
            b: usize,
            scope: &'a Scope,
        ) -> (&'a mut X, &'a mut X) {
            let arena: &'a SlotArena<X> = arena;
            let one = |i| {
                // SAFETY: `a != b`, and `&mut self` of the table excludes every other
                // reference into the arena, so each object has exactly one reference.
                match unsafe { arena.get_mut_unchecked(i, scope) } {
                    Ok(Some(x)) => x,
                    Ok(None) => crate::common::fail("RemVec", Error::NotFound),
                    Err(e) => crate::common::fail("RemVec", e),
                }
            };
            (one(a), one(b))
        }
        match &mut self.table {
            Table::Inline(arena) => {
                let (x, y) = both(arena, a, b, scope);
                (Edit::Inline(x, pod()), Edit::Inline(y, pod()))
            }
            Table::Boxed(arena) => {
                let (x, y) = both(arena, a, b, scope);
                (Edit::Boxed(x), Edit::Boxed(y))
            }
            Table::Empty => crate::common::fail("RemVec", Error::NotFound),
        }
    }

    /// The table as an owning iterator that takes each chunk out as it is reached.
    pub(crate) fn into_taken(self) -> IntoChunks<T> {
        let r = 0..self.len();
        IntoChunks { table: self, r }
    }
}

/// A chunk taken out of its table: its elements, key and flags.
pub(crate) struct Taken<T> {
    key: u64,
    pub(crate) flags: AtomicU8,
    items: Vec<T>,
}

impl<T> Taken<T> {
    pub(crate) fn key(&self) -> u64 {
        self.key
    }

    pub(crate) fn into_vec(self) -> Vec<T> {
        self.items
    }
}

/// Owning iteration over a table's chunks, from either end; each chunk is taken out (fetched
/// if remote) only when reached. The rest are dropped with the iterator.
pub(crate) struct IntoChunks<T: FarData> {
    table: ChunkTable<T>,
    r: std::ops::Range<usize>,
}

impl<T: FarData> Iterator for IntoChunks<T> {
    type Item = Taken<T>;
    #[track_caller]
    fn next(&mut self) -> Option<Taken<T>> {
        let c = self.r.next()?;
        Some(self.table.take(c))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.r.size_hint()
    }
}

impl<T: FarData> DoubleEndedIterator for IntoChunks<T> {
    #[track_caller]
    fn next_back(&mut self) -> Option<Taken<T>> {
        let c = self.r.next_back()?;
        Some(self.table.take(c))
    }
}

impl<T: FarData> ExactSizeIterator for IntoChunks<T> {}

/// Chunks of a table in order, from either end.
pub(crate) struct ChunkIter<'a, T: FarData> {
    table: &'a ChunkTable<T>,
    r: std::ops::Range<usize>,
}

impl<'a, T: FarData> Iterator for ChunkIter<'a, T> {
    type Item = ChunkRef<'a, T>;
    #[inline]
    fn next(&mut self) -> Option<ChunkRef<'a, T>> {
        self.r.next().map(|c| self.table.at(c))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.r.size_hint()
    }
}

impl<T: FarData> DoubleEndedIterator for ChunkIter<'_, T> {
    #[inline]
    fn next_back(&mut self) -> Option<Self::Item> {
        self.r.next_back().map(|c| self.table.at(c))
    }
}

impl<T: FarData> ExactSizeIterator for ChunkIter<'_, T> {}

impl<'a, T: FarData> IntoIterator for &'a ChunkTable<T> {
    type Item = ChunkRef<'a, T>;
    type IntoIter = ChunkIter<'a, T>;
    fn into_iter(self) -> ChunkIter<'a, T> {
        self.iter()
    }
}

/// One chunk of a table, for reading: its object and flags.
pub(crate) struct ChunkRef<'a, T: FarData> {
    table: &'a Table<T>,
    c: usize,
    pub(crate) flags: &'a AtomicU8,
}

impl<T: FarData> Clone for ChunkRef<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: FarData> Copy for ChunkRef<'_, T> {}

impl<'a, T: FarData> ChunkRef<'a, T> {
    /// The elements, valid while `scope` lives.
    #[inline]
    pub(crate) fn slice(self, scope: &'a Scope) -> Result<&'a [T]> {
        Ok(match self.table {
            Table::Inline(a) => a
                .try_get(self.c, scope)?
                .ok_or(Error::NotFound)?
                .elems(pod()),
            Table::Boxed(a) => a.try_get(self.c, scope)?.ok_or(Error::NotFound)?,
            Table::Empty => return Err(Error::NotFound),
        })
    }

    /// The elements (panicking on a far-memory failure). Called once per chunk by loops
    /// over elements, so it stays out of line: inlined, it made `IterIn::next` too large for
    /// the compiler to inline into a `for` loop (a call per element, 0.17x of `Vec` there).
    #[inline(never)]
    #[track_caller]
    pub(crate) fn deref(self, scope: &'a Scope) -> &'a [T] {
        match self.slice(scope) {
            Ok(xs) => xs,
            Err(e) => crate::common::fail("RemVec", e),
        }
    }

    /// The first `n` elements, where the vector's length says the chunk holds exactly `n`
    /// (panicking on a far-memory failure). An inline chunk's slice is cut to `n` without
    /// reading the page's byte count; a boxed chunk's is its own `Vec`'s, cut to `n`.
    #[track_caller]
    pub(crate) fn deref_len(self, n: usize, scope: &'a Scope) -> &'a [T] {
        let got = match self.table {
            Table::Inline(a) => a
                .try_get(self.c, scope)
                .and_then(|p| Ok(p.ok_or(Error::NotFound)?.prefix(n, pod()))),
            Table::Boxed(a) => a.try_get(self.c, scope).and_then(|v| {
                let v = v.ok_or(Error::NotFound)?;
                Ok(&v[..n.min(v.len())])
            }),
            Table::Empty => Err(Error::NotFound),
        };
        match got {
            Ok(xs) => xs,
            Err(e) => crate::common::fail("RemVec", e),
        }
    }

    /// The elements for a one-time read (see `RemBox::deref_nt`).
    pub(crate) fn slice_nt(self, scope: &'a Scope) -> Result<&'a [T]> {
        Ok(match self.table {
            Table::Inline(a) => a
                .get_nt(self.c, scope)?
                .ok_or(Error::NotFound)?
                .elems(pod()),
            Table::Boxed(a) => a.get_nt(self.c, scope)?.ok_or(Error::NotFound)?,
            Table::Empty => return Err(Error::NotFound),
        })
    }

    /// The chunk's far encoding (what evacuation would write), read nontemporally.
    pub(crate) fn encode_nt(self, scope: &Scope, out: &mut Vec<u8>) -> Result<()> {
        match self.table {
            Table::Inline(a) => a.get_nt(self.c, scope)?.ok_or(Error::NotFound)?.encode(out),
            Table::Boxed(a) => a.get_nt(self.c, scope)?.ok_or(Error::NotFound)?.encode(out),
            Table::Empty => Err(Error::NotFound),
        }
    }

    #[inline]
    pub(crate) fn is_local(self) -> bool {
        match self.table {
            Table::Inline(a) => a.is_local(self.c),
            Table::Boxed(a) => a.is_local(self.c),
            Table::Empty => false,
        }
    }

    /// The chunk's far key (its index).
    pub(crate) fn key(self) -> u64 {
        self.c as u64
    }

    pub(crate) fn ticket(self) -> FetchTicket {
        match self.table {
            Table::Inline(a) => a.ticket(self.c),
            Table::Boxed(a) => a.ticket(self.c),
            Table::Empty => None,
        }
        .expect("an existing chunk")
    }
}

/// A chunk opened for edits (see [`ChunkTable::edit`]). The vector never grows a chunk past its
/// chunk length, which fits the page of an inline chunk and the capacity of a boxed one.
pub(crate) enum Edit<'a, T: FarData> {
    Inline(&'a mut Page, PodWitness<T>),
    Boxed(&'a mut Vec<T>),
}

impl<'a, T: FarData> Edit<'a, T> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Edit::Inline(p, _) => p.len_bytes() / std::mem::size_of::<T>(),
            Edit::Boxed(v) => v.len(),
        }
    }

    pub(crate) fn into_slice(self) -> &'a mut [T] {
        match self {
            Edit::Inline(p, w) => p.elems_mut(w),
            Edit::Boxed(v) => v.as_mut_slice(),
        }
    }

    /// Appends `x`; the caller guarantees the chunk is not full (`len < chunk_len`).
    pub(crate) fn push(&mut self, x: T, chunk_len: usize) {
        self.insert(self.len(), x, chunk_len)
    }

    /// Inserts `x` at `at <= len`; the caller guarantees the chunk is not full.
    pub(crate) fn insert(&mut self, at: usize, x: T, chunk_len: usize) {
        match self {
            Edit::Inline(p, w) => {
                let size = std::mem::size_of::<T>();
                assert!(p.len_bytes() + size <= PAGE_BYTES, "a full inline chunk");
                p.set_len_bytes(p.len_bytes() + size);
                let xs = p.elems_mut(*w);
                let n = xs.len();
                assert!(at < n, "insert position past the end");
                // SAFETY: `at < n`, so both ranges `at..n - 1` and `at + 1..n` lie in the
                // slice; `T: Pod` (the witness) is `Copy`, so duplicating and overwriting
                // elements bitwise drops and leaks nothing.
                unsafe {
                    let base = xs.as_mut_ptr();
                    std::ptr::copy(base.add(at), base.add(at + 1), n - 1 - at);
                    std::ptr::write(base.add(at), x);
                }
            }
            Edit::Boxed(v) => {
                if v.capacity() < chunk_len {
                    // A fetched chunk comes back with room for its elements only.
                    v.reserve_exact(chunk_len - v.len());
                }
                v.insert(at, x)
            }
        }
    }

    /// Removes and returns element `at < len`.
    pub(crate) fn remove(&mut self, at: usize) -> T {
        match self {
            Edit::Inline(p, w) => {
                let xs = p.elems_mut(*w);
                let n = xs.len();
                assert!(at < n, "remove position past the end");
                // SAFETY: `at < n`, so `at + 1..n` and `at..n - 1` lie in the slice; `T: Pod`
                // is `Copy`, so reading a copy out and shifting bitwise drops nothing.
                let x = unsafe {
                    let base = xs.as_mut_ptr();
                    let x = std::ptr::read(base.add(at));
                    std::ptr::copy(base.add(at + 1), base.add(at), n - 1 - at);
                    x
                };
                p.set_len_bytes(p.len_bytes() - std::mem::size_of::<T>());
                x
            }
            Edit::Boxed(v) => v.remove(at),
        }
    }

    /// Removes and returns the last element.
    pub(crate) fn pop(&mut self) -> Option<T> {
        match self.len() {
            0 => None,
            n => Some(self.remove(n - 1)),
        }
    }

    /// Keeps the first `n` elements.
    pub(crate) fn truncate(&mut self, n: usize) {
        match self {
            Edit::Inline(p, _) => {
                let size = std::mem::size_of::<T>();
                p.set_len_bytes(p.len_bytes().min(n.saturating_mul(size)));
            }
            Edit::Boxed(v) => v.truncate(n),
        }
    }
}
