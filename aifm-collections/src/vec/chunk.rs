//! One chunk of a `RemVec`: how its elements are stored, and the few edits the vector makes.
//!
//! # Two representations, chosen per element type
//!
//! * **Inline** ([`Page`]): for plain data (`T::POD` is `Some`, so `T: Pod` is proven) whose
//!   chunk fills more than half of a page, the elements live *in the heap object itself*: a
//!   fixed [`PAGE_BYTES`] array of 8-aligned words after a byte count, read as `[T]`. A `get`
//!   is then: the chunk's pointer word, its slow-path flag test, the element (no inner `Vec`
//!   header to chase), and the object's bytes are all the runtime moves or charges.
//! * **Boxed**: every other element type (and plain data with chunks far from a page) keeps a
//!   `RemBox<Vec<T>>` whose buffer is allocated once at chunk capacity.
//!
//! Both encode for far memory exactly as `Vec<T>` of plain data does (the elements' raw
//! bytes), so the `aifm.vec` device reads either the same way; a non-plain element type's
//! boxed chunk keeps `Vec<T>`'s own encoding.
//!
//! A vector's chunks all share one representation ([`inline_for`] depends only on the
//! element type and the chunk length), so the match in each accessor always takes the same
//! arm: a well-predicted branch on a byte next to the pointer.

use aifm_core::codec::PodWitness;
use aifm_core::prefetch::FetchTicket;
use aifm_core::{Error, FarData, RemBox, Result, Runtime, Scope, Structure};
use std::sync::atomic::AtomicU8;

/// Bytes of elements an inline chunk holds at most.
pub(crate) const PAGE_BYTES: usize = crate::DEFAULT_CHUNK_BYTES;

/// An inline chunk: up to [`PAGE_BYTES`] of plain-data elements in 8-aligned words.
///
/// Invariant: `bytes <= PAGE_BYTES`; the vector keeps it a multiple of the element size (a
/// corrupt far copy that breaks this only shortens the visible slice).
#[repr(C)]
pub(crate) struct Page {
    bytes: u64,
    words: [u64; PAGE_BYTES / 8],
}

impl FarData for Page {
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(&self.raw()[..self.bytes as usize]);
        Ok(())
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > PAGE_BYTES {
            return Err(Error::Codec(format!(
                "a {}-byte chunk does not fit a {PAGE_BYTES}-byte page",
                bytes.len()
            )));
        }
        let mut p = Page::empty();
        p.raw_mut()[..bytes.len()].copy_from_slice(bytes);
        p.bytes = bytes.len() as u64;
        Ok(p)
    }
}

impl Page {
    fn empty() -> Self {
        Page {
            bytes: 0,
            words: [0; PAGE_BYTES / 8],
        }
    }

    fn raw(&self) -> &[u8; PAGE_BYTES] {
        // SAFETY: `[u64; N]` is `8 N` initialised bytes with no padding, and u8 has
        // alignment 1.
        unsafe { &*(self.words.as_ptr() as *const [u8; PAGE_BYTES]) }
    }

    fn raw_mut(&mut self) -> &mut [u8; PAGE_BYTES] {
        // SAFETY: as in `raw`; every byte pattern is a valid u64, so writes through the
        // byte view cannot break the words.
        unsafe { &mut *(self.words.as_mut_ptr() as *mut [u8; PAGE_BYTES]) }
    }

    /// The elements, read as `[T]`.
    #[inline]
    fn elems<T>(&self, _pod: PodWitness<T>) -> &[T] {
        let n = self.bytes as usize / std::mem::size_of::<T>();
        // SAFETY: the witness proves `T: Pod` (no padding, every bit pattern valid); pages
        // are only made for types with `0 < size <= PAGE_BYTES` and alignment <= 8
        // (`inline_for`), `words` is 8-aligned, and `n * size <= bytes <= PAGE_BYTES`.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr() as *const T, n) }
    }

    /// Element `off` (`None` past the page). Reads the page's words directly without
    /// consulting the byte count: the vector's own length already bounds `off`, and every
    /// word of a page is initialised plain data, so even a page a corrupt far copy shortened
    /// yields a valid `T`.
    #[inline]
    fn elem<T>(&self, off: usize, _pod: PodWitness<T>) -> Option<&T> {
        if off < PAGE_BYTES / std::mem::size_of::<T>() {
            // SAFETY: `off` is within the page's `PAGE_BYTES` (checked); `T: Pod` (the
            // witness), 8-aligned words, alignment <= 8 and `size > 0` as in `elems`.
            Some(unsafe { &*(self.words.as_ptr() as *const T).add(off) })
        } else {
            None
        }
    }

    /// The elements, mutably.
    #[inline]
    fn elems_mut<T>(&mut self, _pod: PodWitness<T>) -> &mut [T] {
        let n = self.bytes as usize / std::mem::size_of::<T>();
        // SAFETY: as in `elems`; `&mut self` makes this the only view.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr() as *mut T, n) }
    }

    /// A page holding `items`.
    fn of<T>(items: &[T], _pod: PodWitness<T>) -> Page {
        let mut p = Page::empty();
        let n = std::mem::size_of_val(items);
        assert!(n <= PAGE_BYTES, "a chunk larger than a page");
        // SAFETY: `T: Pod` (the witness) has no padding, so its bytes are initialised; the
        // page has room for `n` bytes (checked).
        let bytes = unsafe { std::slice::from_raw_parts(items.as_ptr() as *const u8, n) };
        p.raw_mut()[..n].copy_from_slice(bytes);
        p.bytes = n as u64;
        p
    }
}

/// Whether a vector of `T` with chunks of `chunk_len` elements stores them inline.
pub(crate) fn inline_for<T: FarData>(chunk_len: usize) -> bool {
    let size = std::mem::size_of::<T>();
    T::POD.is_some()
        && size > 0
        && std::mem::align_of::<T>() <= 8
        && chunk_len
            .checked_mul(size)
            .is_some_and(|b| b <= PAGE_BYTES && 2 * b > PAGE_BYTES)
}

/// The pod witness of an inline chunk's element type.
#[inline]
fn pod<T: FarData>() -> PodWitness<T> {
    match T::POD {
        Some(w) => w,
        None => unreachable!("inline chunks exist only for plain data"),
    }
}

/// The remote object of a chunk.
pub(crate) enum Store<T: FarData> {
    Inline(RemBox<Page>),
    Boxed(RemBox<Vec<T>>),
}

/// One chunk: its object and the vector's flags for it (`SYNCED`, `WROTE`).
pub(crate) struct Chunk<T: FarData> {
    pub(crate) rem: Store<T>,
    pub(crate) flags: AtomicU8,
}

/// Where a new chunk goes.
pub(crate) enum Home<'a> {
    Structure(&'a Structure, u64),
    Runtime(&'a Runtime),
}

fn place<X: FarData>(x: X, home: &Home<'_>) -> Result<RemBox<X>> {
    match home {
        Home::Structure(s, key) => RemBox::new_in_structure(x, s, *key),
        Home::Runtime(rt) => RemBox::try_new_in(x, rt),
    }
}

impl<T: FarData> Chunk<T> {
    /// A chunk holding `items` (at most `chunk_len`, which fixes the representation).
    pub(crate) fn new(items: Vec<T>, chunk_len: usize, home: Home<'_>) -> Result<Self> {
        let rem = if inline_for::<T>(chunk_len) {
            Store::Inline(place(Page::of(&items, pod()), &home)?)
        } else {
            let mut items = items;
            if items.capacity() < chunk_len {
                items.reserve_exact(chunk_len - items.len());
            }
            Store::Boxed(place(items, &home)?)
        };
        Ok(Chunk {
            rem,
            flags: AtomicU8::new(0),
        })
    }

    /// The elements, valid while `scope` lives.
    #[inline]
    pub(crate) fn slice<'a>(&'a self, scope: &'a Scope) -> Result<&'a [T]> {
        Ok(match &self.rem {
            Store::Inline(b) => b.try_deref(scope)?.elems(pod()),
            Store::Boxed(b) => b.try_deref(scope)?,
        })
    }

    /// The elements (panicking on a far-memory failure).
    #[inline]
    #[track_caller]
    pub(crate) fn deref<'a>(&'a self, scope: &'a Scope) -> &'a [T] {
        match &self.rem {
            Store::Inline(b) => b.deref(scope).elems(pod()),
            Store::Boxed(b) => b.deref(scope),
        }
    }

    /// Element `off` of a chunk the caller knows holds more than `off` elements (the hot
    /// path of `RemVec::get`; panics on a far-memory failure).
    /// `miss` runs first when the chunk is not local (the vector's stride detector).
    #[inline]
    #[track_caller]
    pub(crate) fn elem<'a>(
        &'a self,
        off: usize,
        scope: &'a Scope,
        miss: impl FnOnce(),
    ) -> Option<&'a T> {
        match &self.rem {
            Store::Inline(b) => {
                if !b.is_local() {
                    miss();
                }
                b.deref(scope).elem(off, pod())
            }
            Store::Boxed(b) => {
                if !b.is_local() {
                    miss();
                }
                b.deref(scope).get(off)
            }
        }
    }

    /// The elements for a one-time read (see `RemBox::deref_nt`).
    pub(crate) fn slice_nt<'a>(&'a self, scope: &'a Scope) -> Result<&'a [T]> {
        Ok(match &self.rem {
            Store::Inline(b) => b.deref_nt(scope)?.elems(pod()),
            Store::Boxed(b) => b.deref_nt(scope)?,
        })
    }

    /// The elements, mutably (the chunk becomes dirty).
    #[inline]
    pub(crate) fn slice_mut<'a>(&'a mut self, scope: &'a Scope) -> Result<&'a mut [T]> {
        Ok(self.edit(scope)?.into_slice())
    }

    /// The chunk opened for edits that change its length.
    pub(crate) fn edit<'a>(&'a mut self, scope: &'a Scope) -> Result<Edit<'a, T>> {
        Ok(match &mut self.rem {
            Store::Inline(b) => Edit::Inline(b.try_deref_mut(scope)?, pod()),
            Store::Boxed(b) => Edit::Boxed(b.try_deref_mut(scope)?),
        })
    }

    /// [`Chunk::edit`], panicking on a far-memory failure (like `RemBox::deref_mut`).
    #[track_caller]
    pub(crate) fn edit_now<'a>(&'a mut self, scope: &'a Scope) -> Edit<'a, T> {
        match self.edit(scope) {
            Ok(e) => e,
            Err(e) => crate::common::fail("RemVec", e),
        }
    }

    /// The chunk's far encoding (what evacuation would write), read nontemporally.
    pub(crate) fn encode_nt(&self, scope: &Scope, out: &mut Vec<u8>) -> Result<()> {
        match &self.rem {
            Store::Inline(b) => b.deref_nt(scope)?.encode(out),
            Store::Boxed(b) => b.deref_nt(scope)?.encode(out),
        }
    }

    /// The elements, taken out of the chunk (fetching them if they are remote).
    #[track_caller]
    pub(crate) fn into_vec(self) -> Vec<T> {
        match self.rem {
            Store::Inline(b) => {
                let page = b.into_inner();
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
            Store::Boxed(b) => b.into_inner(),
        }
    }

    #[inline]
    pub(crate) fn is_local(&self) -> bool {
        match &self.rem {
            Store::Inline(b) => b.is_local(),
            Store::Boxed(b) => b.is_local(),
        }
    }

    pub(crate) fn key(&self) -> u64 {
        match &self.rem {
            Store::Inline(b) => b.key(),
            Store::Boxed(b) => b.key(),
        }
    }

    pub(crate) fn ticket(&self) -> FetchTicket {
        match &self.rem {
            Store::Inline(b) => b.ticket(),
            Store::Boxed(b) => b.ticket(),
        }
    }
}

/// A chunk opened for edits (see [`Chunk::edit`]). The vector never grows a chunk past its
/// chunk length, which fits the page of an inline chunk and the capacity of a boxed one.
pub(crate) enum Edit<'a, T: FarData> {
    Inline(&'a mut Page, PodWitness<T>),
    Boxed(&'a mut Vec<T>),
}

impl<'a, T: FarData> Edit<'a, T> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Edit::Inline(p, _) => p.bytes as usize / std::mem::size_of::<T>(),
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
                assert!(p.bytes as usize + size <= PAGE_BYTES, "a full inline chunk");
                p.bytes += size as u64;
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
                p.bytes -= std::mem::size_of::<T>() as u64;
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
                let size = std::mem::size_of::<T>() as u64;
                p.bytes = p.bytes.min(n as u64 * size);
            }
            Edit::Boxed(v) => v.truncate(n),
        }
    }
}
