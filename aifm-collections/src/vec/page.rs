//! An inline chunk of a `RemVec`: up to a page of plain-data elements stored in the heap
//! object itself (no inner `Vec`), and the rule that picks this representation.

use aifm_core::codec::PodWitness;
use aifm_core::{Error, FarData, Result};

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
    // Plain-data elements only (the vector checks its element type's `PodWitness`).
    const INTERIOR_MUTABLE: bool = false;

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

    /// One copy, from the fetched bytes to the page's place in the heap (no page built on
    /// the stack, no zeroing of the part the bytes cover).
    fn decode_in_place<'a>(
        bytes: &[u8],
        slot: &'a mut std::mem::MaybeUninit<Self>,
    ) -> Result<&'a mut Self> {
        let n = bytes.len();
        if n > PAGE_BYTES {
            return Err(Error::Codec(format!(
                "a {n}-byte chunk does not fit a {PAGE_BYTES}-byte page"
            )));
        }
        let p = slot.as_mut_ptr();
        // SAFETY: `p` is the slot's (writable, aligned) room for a page; `bytes` is written
        // first, then all `PAGE_BYTES` of `words` (`n <= PAGE_BYTES` copied, the rest
        // zeroed), so every field is initialised before `assume_init_mut`; the source is a
        // separate borrow, so the copy does not overlap.
        unsafe {
            std::ptr::addr_of_mut!((*p).bytes).write(n as u64);
            let words = std::ptr::addr_of_mut!((*p).words) as *mut u8;
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), words, n);
            std::ptr::write_bytes(words.add(n), 0, PAGE_BYTES - n);
            Ok(slot.assume_init_mut())
        }
    }
}

impl Page {
    pub(super) fn empty() -> Self {
        Page {
            bytes: 0,
            words: [0; PAGE_BYTES / 8],
        }
    }

    pub(super) fn raw(&self) -> &[u8; PAGE_BYTES] {
        // SAFETY: `[u64; N]` is `8 N` initialised bytes with no padding, and u8 has
        // alignment 1.
        unsafe { &*(self.words.as_ptr() as *const [u8; PAGE_BYTES]) }
    }

    pub(super) fn raw_mut(&mut self) -> &mut [u8; PAGE_BYTES] {
        // SAFETY: as in `raw`; every byte pattern is a valid u64, so writes through the
        // byte view cannot break the words.
        unsafe { &mut *(self.words.as_mut_ptr() as *mut [u8; PAGE_BYTES]) }
    }

    /// Bytes of elements held.
    #[inline]
    pub(super) fn len_bytes(&self) -> usize {
        self.bytes as usize
    }

    /// Sets the bytes of elements held: the edits' way to grow or shrink the page.
    ///
    /// # Panics
    /// Past [`PAGE_BYTES`] (the bound every read relies on).
    #[inline]
    pub(super) fn set_len_bytes(&mut self, n: usize) {
        assert!(n <= PAGE_BYTES, "an inline chunk holds at most a page");
        self.bytes = n as u64;
    }

    /// The elements, read as `[T]`.
    #[inline]
    pub(super) fn elems<T>(&self, _pod: PodWitness<T>) -> &[T] {
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
    pub(super) fn elem<T>(&self, off: usize, _pod: PodWitness<T>) -> Option<&T> {
        if off < PAGE_BYTES / std::mem::size_of::<T>() {
            // SAFETY: `off` is within the page's `PAGE_BYTES` (checked); `T: Pod` (the
            // witness), 8-aligned words, alignment <= 8 and `size > 0` as in `elems`.
            Some(unsafe { &*(self.words.as_ptr() as *const T).add(off) })
        } else {
            None
        }
    }

    /// The first `n` elements (at most a page of them), read as `[T]` without consulting the
    /// byte count, for a reader that knows the chunk's length from the vector's (as `elem`
    /// does): no load of the count stands between the pointer word and the elements.
    #[inline]
    pub(super) fn prefix<T>(&self, n: usize, _pod: PodWitness<T>) -> &[T] {
        let n = n.min(PAGE_BYTES / std::mem::size_of::<T>());
        // SAFETY: as in `elem`: the `n` elements lie within the page's `PAGE_BYTES` of
        // initialised plain data (clamped above).
        unsafe { std::slice::from_raw_parts(self.words.as_ptr() as *const T, n) }
    }

    /// The elements, mutably.
    #[inline]
    pub(super) fn elems_mut<T>(&mut self, _pod: PodWitness<T>) -> &mut [T] {
        let n = self.bytes as usize / std::mem::size_of::<T>();
        // SAFETY: as in `elems`; `&mut self` makes this the only view.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr() as *mut T, n) }
    }

    /// A page holding `items`.
    pub(super) fn of<T>(items: &[T], _pod: PodWitness<T>) -> Page {
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
pub(super) fn pod<T: FarData>() -> PodWitness<T> {
    match T::POD {
        Some(w) => w,
        None => unreachable!("inline chunks exist only for plain data"),
    }
}
