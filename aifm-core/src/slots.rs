//! Stable storage for pointer words ("slots").
//!
//! # Why slots
//!
//! Rust moves are plain copies, so a pointer word stored inside a movable `RemBox` could never
//! be found again by the evacuator. Instead the runtime owns never-moving chunks of [`Slot`]s;
//! a `RemBox` is a thin handle to its slot, free to move, and each object header points back to
//! its slot. Invariant: **a slot's address never changes while its runtime lives**, and a slot
//! is handed to at most one `RemBox` at a time.
//!
//! Each chunk is [`CHUNK_BYTES`] long and aligned to its size; its first bytes hold a
//! [`ChunkHeader`] naming the runtime, so a handle finds its runtime by masking its own
//! address: `RemBox` stays one pointer wide.

use std::alloc::{alloc_zeroed, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Bytes per slot chunk (also its alignment).
pub(crate) const CHUNK_BYTES: usize = 64 * 1024;
const HEADER_BYTES: usize = 64;
/// Slots per chunk.
pub(crate) const SLOTS_PER_CHUNK: usize =
    (CHUNK_BYTES - HEADER_BYTES) / std::mem::size_of::<Slot>();

/// A pointer word, the object's key within its structure, and what the slot knows of the
/// object's far copy. 24 bytes.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct Slot {
    /// The remoteable pointer word (see [`crate::word`]).
    pub word: AtomicU64,
    /// The object's key in far memory; written before the word is published, then immutable
    /// until the slot is freed.
    pub key: AtomicU64,
    /// Length of the object's far copy plus one; 0 when far memory holds none. Changed only
    /// by the thread holding the word's `BUSY` bit (or building the object).
    pub far_len: AtomicU32,
    /// Bumped each time the slot is handed to a new object, so a fetch ticket for an earlier
    /// owner can tell the slot has changed hands (it wraps after 2^32 owners of one slot; a
    /// ticket lives for one batched fetch).
    pub generation: AtomicU32,
}

const _: () = assert!(std::mem::size_of::<Slot>() == 24);

/// The first bytes of every chunk.
#[repr(C)]
pub(crate) struct ChunkHeader {
    /// The runtime that owns the chunk (`*const runtime::Inner`).
    pub owner: *const (),
    /// Index of the chunk's first slot.
    pub first_index: u64,
}

const _: () = assert!(std::mem::size_of::<ChunkHeader>() <= HEADER_BYTES);
const _: () = assert!(CHUNK_BYTES.is_power_of_two());

fn chunk_layout() -> Layout {
    Layout::from_size_align(CHUNK_BYTES, CHUNK_BYTES).unwrap()
}

/// The header of the chunk holding `slot`.
#[inline]
pub(crate) fn chunk_of(slot: NonNull<Slot>) -> &'static ChunkHeader {
    let base = slot.as_ptr() as usize & !(CHUNK_BYTES - 1);
    // SAFETY: every slot lives in a chunk aligned to CHUNK_BYTES whose first bytes are an
    // initialised ChunkHeader; chunks are freed only with their runtime, after the last handle.
    unsafe { &*(base as *const ChunkHeader) }
}

/// The runtime-wide index of `slot` (its default far-memory key).
pub(crate) fn index_of(slot: NonNull<Slot>) -> u64 {
    let base = slot.as_ptr() as usize & !(CHUNK_BYTES - 1);
    let offset = (slot.as_ptr() as usize - base - HEADER_BYTES) / std::mem::size_of::<Slot>();
    chunk_of(slot).first_index + offset as u64
}

/// All chunks of one runtime plus the never-used tail of the newest.
#[derive(Debug, Default)]
pub(crate) struct SlotTable {
    chunks: Vec<NonNull<u8>>,
    next_in_last: usize,
}

// SAFETY: the table only hands out addresses; chunk memory is shared through atomics.
unsafe impl Send for SlotTable {}

impl SlotTable {
    /// Carves up to `n` never-used slots, making a new chunk when needed.
    pub fn carve(&mut self, owner: *const (), n: usize, out: &mut Vec<NonNull<Slot>>) {
        for _ in 0..n {
            if self.chunks.is_empty() || self.next_in_last == SLOTS_PER_CHUNK {
                // SAFETY: the layout has non-zero size.
                let base = unsafe { alloc_zeroed(chunk_layout()) };
                let Some(base) = NonNull::new(base) else {
                    handle_alloc_error(chunk_layout())
                };
                let header = ChunkHeader {
                    owner,
                    first_index: (self.chunks.len() * SLOTS_PER_CHUNK) as u64,
                };
                // SAFETY: the chunk is fresh, aligned, and large enough for its header.
                unsafe { (base.as_ptr() as *mut ChunkHeader).write(header) };
                self.chunks.push(base);
                self.next_in_last = 0;
            }
            let base = *self.chunks.last().unwrap();
            let offset = HEADER_BYTES + self.next_in_last * std::mem::size_of::<Slot>();
            self.next_in_last += 1;
            // SAFETY: offset is within the chunk; zeroed memory is a valid (NULL) slot.
            out.push(unsafe { NonNull::new_unchecked(base.as_ptr().add(offset) as *mut Slot) });
        }
    }

    /// Number of slots ever carved.
    #[cfg(test)]
    pub fn carved(&self) -> usize {
        self.chunks.len().saturating_sub(1) * SLOTS_PER_CHUNK + self.next_in_last
    }
}

impl Drop for SlotTable {
    fn drop(&mut self) {
        for c in &self.chunks {
            // SAFETY: allocated in `carve` with this layout; no handle outlives the runtime.
            unsafe { dealloc(c.as_ptr(), chunk_layout()) };
        }
    }
}

/// Reads a slot's word.
#[inline]
pub(crate) fn word(slot: NonNull<Slot>) -> &'static AtomicU64 {
    // SAFETY: see `chunk_of`: slot memory outlives every handle.
    unsafe { &(*slot.as_ptr()).word }
}

/// Reads a slot's key.
#[inline]
pub(crate) fn key(slot: NonNull<Slot>) -> u64 {
    // SAFETY: see `chunk_of`.
    unsafe { (*slot.as_ptr()).key.load(Ordering::Relaxed) }
}

/// A slot's generation.
#[inline]
pub(crate) fn generation(slot: NonNull<Slot>) -> u32 {
    // SAFETY: see `chunk_of`.
    unsafe { (*slot.as_ptr()).generation.load(Ordering::Acquire) }
}

/// Starts a new generation of a free slot (before its word is published): no far copy yet.
#[inline]
pub(crate) fn next_generation(slot: NonNull<Slot>) {
    // SAFETY: see `chunk_of`.
    unsafe {
        (*slot.as_ptr()).far_len.store(0, Ordering::Relaxed);
        (*slot.as_ptr()).generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// The length of the object's far copy, if far memory holds one.
#[inline]
pub(crate) fn far_len(slot: NonNull<Slot>) -> Option<usize> {
    // SAFETY: see `chunk_of`.
    match unsafe { (*slot.as_ptr()).far_len.load(Ordering::Relaxed) } {
        0 => None,
        n => Some(n as usize - 1),
    }
}

/// Records the length of the object's far copy (`None`: far memory holds none). Lengths
/// beyond `u32::MAX - 1` are recorded as unknown, so such an object is never discarded as
/// clean.
#[inline]
pub(crate) fn set_far_len(slot: NonNull<Slot>, len: Option<usize>) {
    let v = len.and_then(|l| u32::try_from(l + 1).ok()).unwrap_or(0);
    // SAFETY: see `chunk_of`.
    unsafe { (*slot.as_ptr()).far_len.store(v, Ordering::Relaxed) }
}

/// Sets a slot's key (before its word is published).
#[inline]
pub(crate) fn set_key(slot: NonNull<Slot>, key: u64) {
    // SAFETY: see `chunk_of`.
    unsafe { (*slot.as_ptr()).key.store(key, Ordering::Relaxed) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_and_owner_survive_masking() {
        let mut t = SlotTable::default();
        let mut out = Vec::new();
        t.carve(0x1234 as *const (), SLOTS_PER_CHUNK + 5, &mut out);
        assert_eq!(t.carved(), SLOTS_PER_CHUNK + 5);
        for (i, s) in out.iter().enumerate() {
            assert_eq!(index_of(*s), i as u64);
            assert_eq!(chunk_of(*s).owner as usize, 0x1234);
        }
    }
}
