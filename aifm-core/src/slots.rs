//! Stable storage for pointer words: runtime slots and structure-owned arena slots.
//!
//! # Why stable storage
//!
//! Rust moves are plain copies, so a pointer word stored inside a movable `RemBox` could never
//! be found again by the evacuator. Pointer words therefore live in never-moving *segments*,
//! and each object header points back at its word. Invariant: **a segment's address never
//! changes, and its memory is not returned until its runtime is dropped**, so a stale
//! back-reference (read by the evacuator or a prefetch ticket just before the object was
//! freed) always lands on a live atomic word; the claim protocol then sees that the word no
//! longer points at that object.
//!
//! # Two kinds of segment
//!
//! Every segment is one [`SEGMENT_BYTES`] page, aligned to its size, entirely slots. Segments
//! come in [`BLOCK_BYTES`] blocks aligned to the block size; the block's first page holds a
//! [`SegmentHeader`] per segment naming the runtime and the segment's kind and first index.
//! So any word's segment header is found from the word's address alone (mask to the block,
//! index by the page number within it), and an arena finds slot `i` with a shift and a mask
//! (256 arena slots to a page), not a division. The header page costs 1/16 of slot memory.
//!
//! * **Runtime segments** hold the slots of `RemBox`es, handed out one at a time through the
//!   runtime's slot pool; a `RemBox` is one pointer wide (the address of its slot). A box in
//!   the runtime's own object store gets a 16-byte *plain* slot (word, far length,
//!   generation) whose far key is its runtime-wide index; a box placed in a structure under a
//!   key of the caller's choice (`RemBox::new_in_structure`) gets a 24-byte *keyed* [`Slot`]
//!   that also stores the key. The two live in segments of their own kind.
//! * **Arena segments** hold 16-byte arena slots (word, far length, generation): the pointer
//!   words a structure keeps for its own objects in a [`crate::arena::SlotArena`]. The far key
//!   is not stored: it is the slot's index within its arena (segment's first index plus the
//!   offset), and the structure id is in the object header and the remote word.
//!
//! Both layouts start with the word and keep the far length and generation as one pair, so
//! the accessors below ([`word`], [`key`], [`far_len`], [`generation`], ...) work on either,
//! dispatching on the kind in the segment header; the evacuator, the dereference slow path
//! and prefetch tickets never need to know which kind of word they hold.
//!
//! Runtime segments are never released
//! (their slots are recycled one by one); arena segments go back to the runtime's pool when
//! their arena drops and are reused only by other arenas, so a stale pointer into one always
//! finds the same slot layout, and generations are never reset (a stale ticket cannot match).

use std::alloc::{alloc_zeroed, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Bytes per segment (also its alignment).
pub(crate) const SEGMENT_BYTES: usize = 4096;
/// Bytes per block (also its alignment): a header page, then segments.
pub(crate) const BLOCK_BYTES: usize = 16 * SEGMENT_BYTES;
/// Plain runtime slots per segment.
pub(crate) const SLOTS_PER_CHUNK: usize = SEGMENT_BYTES / size_of::<ArenaSlot>();
/// Keyed runtime slots per segment.
pub(crate) const KEYED_SLOTS: usize = SEGMENT_BYTES / size_of::<Slot>();
/// Slots per arena segment (a power of two).
pub(crate) const ARENA_SLOTS: usize = SEGMENT_BYTES / size_of::<ArenaSlot>();
/// `log2(ARENA_SLOTS)`.
pub(crate) const ARENA_SHIFT: u32 = ARENA_SLOTS.trailing_zeros();

/// A keyed runtime slot: a pointer word, the object's key within its structure, and what the
/// slot knows of the object's far copy. 24 bytes.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct Slot {
    /// The remoteable pointer word (see [`crate::word`]).
    pub word: AtomicU64,
    /// The object's key in far memory; written before the word is published, then immutable
    /// until the slot is freed.
    pub key: AtomicU64,
    /// The far copy's length and the slot's generation.
    pub meta: Meta,
}

/// An arena slot or a plain runtime slot: a pointer word and what it knows of the far copy;
/// the key is the index. 16 bytes.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct ArenaSlot {
    /// The remoteable pointer word.
    pub word: AtomicU64,
    /// The far copy's length and the slot's generation.
    pub meta: Meta,
}

/// The address of a runtime slot, as the runtime's pools hold it (free lists, quarantine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlotPtr(pub NonNull<Slot>);

// SAFETY: a `SlotPtr` is the address of a slot in segment memory that lives as long as its
// runtime (which every holder of a `SlotPtr` keeps alive: the pools are inside it), and
// every access through it goes through atomics (`word`, `meta`, `key`), so moving one to
// another thread hands over nothing but the right to do such accesses there. Ownership of
// the slot itself is the pools' protocol (a free slot is in exactly one list).
unsafe impl Send for SlotPtr {}

/// What both kinds of slot know besides the word.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct Meta {
    /// Length of the object's far copy plus one; 0 when far memory holds none. Changed only
    /// by the thread holding the word's `BUSY` bit (or building the object).
    pub far_len: AtomicU32,
    /// Bumped each time the slot is handed to a new object, so a fetch ticket for an earlier
    /// owner can tell the slot has changed hands (it wraps after 2^32 owners of one slot; a
    /// ticket lives for one batched fetch).
    pub generation: AtomicU32,
}

const _: () = assert!(size_of::<Slot>() == 24 && size_of::<ArenaSlot>() == 16);
const _: () = assert!(std::mem::offset_of!(Slot, word) == 0);
const _: () = assert!(std::mem::offset_of!(ArenaSlot, word) == 0);
const _: () = assert!(SEGMENT_BYTES.is_power_of_two() && BLOCK_BYTES.is_power_of_two());
// The block's first page has room for every segment's header.
const _: () = assert!(BLOCK_BYTES / SEGMENT_BYTES * size_of::<SegmentHeader>() <= SEGMENT_BYTES);
const _: () = assert!(ARENA_SLOTS == 1 << ARENA_SHIFT);

/// What the runtime knows of a segment; in the first page of the segment's block.
#[repr(C)]
pub(crate) struct SegmentHeader {
    /// The runtime that owns the segment (`*const runtime::Inner`); written once, before the
    /// segment is first used, and never changed (segments stay with their runtime).
    pub owner: *const (),
    /// The kind ([`ARENA`], [`KEYED`] or neither), plus the index of the segment's first slot
    /// (within the runtime's slots of that kind for runtime segments, within the arena for
    /// arena segments). Rewritten when an arena segment is reused, while every word in it is
    /// NULL.
    meta: AtomicU64,
}

/// The kind bits of [`SegmentHeader::meta`]: an arena segment, a keyed runtime segment, or
/// (neither) a plain runtime segment.
const ARENA: u64 = 1 << 63;
const KEYED: u64 = 1 << 62;
const KIND: u64 = ARENA | KEYED;

fn block_layout() -> Layout {
    Layout::from_size_align(BLOCK_BYTES, BLOCK_BYTES).unwrap()
}

/// Where the header of the segment at or containing `addr` is.
#[inline]
fn header_addr(addr: usize) -> *mut SegmentHeader {
    let block = addr & !(BLOCK_BYTES - 1);
    let page = (addr & (BLOCK_BYTES - 1)) / SEGMENT_BYTES;
    (block + page * size_of::<SegmentHeader>()) as *mut SegmentHeader
}

/// The header of the segment holding `slot`.
#[inline]
pub(crate) fn chunk_of(slot: NonNull<Slot>) -> &'static SegmentHeader {
    // SAFETY: every slot lives in a segment of a block aligned to BLOCK_BYTES whose first
    // page holds an initialised SegmentHeader for each segment handed out; blocks are freed
    // only with their runtime, after the last handle and arena.
    unsafe { &*header_addr(slot.as_ptr() as usize) }
}

/// Whether `slot` is an arena slot.
#[inline]
fn is_arena(slot: NonNull<Slot>) -> bool {
    chunk_of(slot).meta.load(Ordering::Relaxed) & ARENA != 0
}

/// Whether `slot` is a keyed runtime slot (one that stores its key).
#[inline]
pub(crate) fn is_keyed(slot: NonNull<Slot>) -> bool {
    chunk_of(slot).meta.load(Ordering::Relaxed) & KEYED != 0
}

/// Whether `slot` is a runtime slot (one that goes back to the runtime's pool when freed).
#[inline]
pub(crate) fn is_runtime_slot(slot: NonNull<Slot>) -> bool {
    !is_arena(slot)
}

/// The index of `slot`: runtime-wide for a runtime slot (its default far-memory key), within
/// its arena for an arena slot (its far-memory key).
pub(crate) fn index_of(slot: NonNull<Slot>) -> u64 {
    let meta = chunk_of(slot).meta.load(Ordering::Relaxed);
    let size = if meta & KEYED != 0 {
        size_of::<Slot>()
    } else {
        size_of::<ArenaSlot>()
    };
    let offset = (slot.as_ptr() as usize & (SEGMENT_BYTES - 1)) / size;
    (meta & !KIND) + offset as u64
}

/// The segments of one runtime: runtime segments carved into slots, arena segments lent to
/// arenas, and the blocks they came from.
#[derive(Debug, Default)]
pub(crate) struct SlotTable {
    blocks: Vec<NonNull<u8>>,
    /// Never-used segments of the newest block.
    fresh: Vec<NonNull<u8>>,
    /// Arena segments given back by dropped arenas.
    spare_arena: Vec<NonNull<u8>>,
    /// Where plain and keyed runtime slots are carved.
    plain: Cursor,
    keyed: Cursor,
}

/// Runtime segments of one kind carved so far, and the slots used in the newest.
#[derive(Debug, Default)]
struct Cursor {
    segments: usize,
    next_in_last: usize,
    last: Option<NonNull<u8>>,
}

// SAFETY: the table only hands out addresses; segment memory is shared through atomics.
unsafe impl Send for SlotTable {}

impl SlotTable {
    /// A never-used segment with its header written.
    fn segment(&mut self, owner: *const (), meta: u64) -> NonNull<u8> {
        if self.fresh.is_empty() {
            // SAFETY: the layout has non-zero size.
            let block = unsafe { alloc_zeroed(block_layout()) };
            let Some(block) = NonNull::new(block) else {
                handle_alloc_error(block_layout())
            };
            self.blocks.push(block);
            // SAFETY: every offset is within the block. Page 0 is the header page.
            self.fresh.extend(
                (1..BLOCK_BYTES / SEGMENT_BYTES)
                    .rev()
                    .map(|i| unsafe { block.add(i * SEGMENT_BYTES) }),
            );
        }
        let base = self.fresh.pop().unwrap();
        let header = SegmentHeader {
            owner,
            meta: AtomicU64::new(meta),
        };
        // SAFETY: the segment is fresh, so no other thread has the address of its header (in
        // its block's header page, which the block's allocation covers).
        unsafe { header_addr(base.as_ptr() as usize).write(header) };
        base
    }

    /// Carves `n` never-used runtime slots (keyed or plain), making a new segment when
    /// needed.
    pub fn carve(&mut self, owner: *const (), n: usize, keyed: bool, out: &mut Vec<SlotPtr>) {
        let (per, size, kind) = if keyed {
            (KEYED_SLOTS, size_of::<Slot>(), KEYED)
        } else {
            (SLOTS_PER_CHUNK, size_of::<ArenaSlot>(), 0)
        };
        for _ in 0..n {
            let cursor = if keyed { &self.keyed } else { &self.plain };
            let base = match cursor.last {
                Some(b) if cursor.next_in_last < per => b,
                _ => {
                    let first = (cursor.segments * per) as u64;
                    let b = self.segment(owner, kind | first);
                    let cursor = if keyed {
                        &mut self.keyed
                    } else {
                        &mut self.plain
                    };
                    cursor.segments += 1;
                    cursor.last = Some(b);
                    cursor.next_in_last = 0;
                    b
                }
            };
            let cursor = if keyed {
                &mut self.keyed
            } else {
                &mut self.plain
            };
            let offset = cursor.next_in_last * size;
            cursor.next_in_last += 1;
            // SAFETY: offset is within the segment; zeroed memory is a valid (NULL) slot.
            out.push(SlotPtr(unsafe {
                NonNull::new_unchecked(base.as_ptr().add(offset) as *mut Slot)
            }));
        }
    }

    /// An arena segment whose slots are indexes `first ..  first + ARENA_SLOTS` of its arena.
    /// Every word in it is NULL.
    pub fn arena_segment(&mut self, owner: *const (), first: u64) -> NonNull<u8> {
        debug_assert_eq!(first & KIND, 0);
        match self.spare_arena.pop() {
            Some(base) => {
                // SAFETY: a spare arena segment is a segment of this runtime with a header.
                let header = unsafe { &*header_addr(base.as_ptr() as usize) };
                // Stale readers only read the header after claiming a word that points at
                // their object, and every word here is NULL, so they never read this value.
                header.meta.store(ARENA | first, Ordering::Relaxed);
                base
            }
            None => self.segment(owner, ARENA | first),
        }
    }

    /// Takes back an arena segment whose every word is NULL.
    pub fn release_arena_segment(&mut self, base: NonNull<u8>) {
        self.spare_arena.push(base);
    }

    /// Number of plain runtime slots ever carved.
    #[cfg(test)]
    pub fn carved(&self) -> usize {
        self.plain.segments.saturating_sub(1) * SLOTS_PER_CHUNK + self.plain.next_in_last
    }
}

impl Drop for SlotTable {
    fn drop(&mut self) {
        for b in &self.blocks {
            // SAFETY: allocated in `segment` with this layout; no handle, arena or ticket in
            // use outlives the runtime.
            unsafe { dealloc(b.as_ptr(), block_layout()) };
        }
    }
}

/// The address of slot `i` of an arena segment.
#[inline]
pub(crate) fn arena_slot(segment: NonNull<u8>, i: usize) -> NonNull<Slot> {
    debug_assert!(i < ARENA_SLOTS);
    // SAFETY: `i < ARENA_SLOTS`, so the slot lies within the segment.
    unsafe { segment.add(i * size_of::<ArenaSlot>()) }.cast()
}

/// A slot's word (the first field of either kind).
#[inline]
pub(crate) fn word(slot: NonNull<Slot>) -> &'static AtomicU64 {
    // SAFETY: see `chunk_of`: segment memory outlives every handle; the word is at offset 0
    // of both slot layouts.
    unsafe { &*(slot.as_ptr() as *const AtomicU64) }
}

/// A slot's far length and generation.
#[inline]
fn meta(slot: NonNull<Slot>) -> &'static Meta {
    let offset = if is_keyed(slot) {
        std::mem::offset_of!(Slot, meta)
    } else {
        std::mem::offset_of!(ArenaSlot, meta)
    };
    // SAFETY: see `chunk_of`; the offset is that of `meta` in the segment's slot layout.
    unsafe { &*((slot.as_ptr() as *const u8).add(offset) as *const Meta) }
}

/// A slot's far key: the stored key of a keyed slot, the index of any other.
#[inline]
pub(crate) fn key(slot: NonNull<Slot>) -> u64 {
    if is_keyed(slot) {
        // SAFETY: see `chunk_of`; a keyed segment holds `Slot`s.
        unsafe { (*slot.as_ptr()).key.load(Ordering::Relaxed) }
    } else {
        index_of(slot)
    }
}

/// A slot's generation.
#[inline]
pub(crate) fn generation(slot: NonNull<Slot>) -> u32 {
    meta(slot).generation.load(Ordering::Acquire)
}

/// Starts a new generation of a free slot (before its word is published): no far copy yet.
#[inline]
pub(crate) fn next_generation(slot: NonNull<Slot>) {
    let m = meta(slot);
    m.far_len.store(0, Ordering::Relaxed);
    m.generation.fetch_add(1, Ordering::AcqRel);
}

/// The length of the object's far copy, if far memory holds one.
#[inline]
pub(crate) fn far_len(slot: NonNull<Slot>) -> Option<usize> {
    match meta(slot).far_len.load(Ordering::Relaxed) {
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
    meta(slot).far_len.store(v, Ordering::Relaxed)
}

/// Sets a keyed slot's key (before its word is published).
#[inline]
pub(crate) fn set_key(slot: NonNull<Slot>, key: u64) {
    debug_assert!(is_keyed(slot));
    // SAFETY: see `chunk_of`; only keyed slots (which are `Slot`s) have a key field.
    unsafe { (*slot.as_ptr()).key.store(key, Ordering::Relaxed) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_and_owner_survive_masking() {
        let mut t = SlotTable::default();
        let mut out = Vec::new();
        t.carve(
            0x1234 as *const (),
            3 * SLOTS_PER_CHUNK + 5,
            false,
            &mut out,
        );
        assert_eq!(t.carved(), 3 * SLOTS_PER_CHUNK + 5);
        for (i, SlotPtr(s)) in out.iter().enumerate() {
            assert_eq!(index_of(*s), i as u64);
            assert!(is_runtime_slot(*s) && !is_keyed(*s));
            assert_eq!(key(*s), i as u64, "a plain slot's key is its index");
            assert_eq!(chunk_of(*s).owner as usize, 0x1234);
        }
        let mut keyed = Vec::new();
        t.carve(0x1234 as *const (), KEYED_SLOTS + 1, true, &mut keyed);
        for SlotPtr(s) in &keyed {
            assert!(is_runtime_slot(*s) && is_keyed(*s));
            set_key(*s, 77);
            set_far_len(*s, Some(5));
            assert_eq!((key(*s), far_len(*s)), (77, Some(5)));
        }
        assert_eq!(
            key(out[0].0),
            0,
            "plain slots are not disturbed by keyed ones"
        );
    }

    #[test]
    fn arena_slots_derive_their_key_and_keep_generations_on_reuse() {
        let mut t = SlotTable::default();
        let seg = t.arena_segment(0x1234 as *const (), 2 * ARENA_SLOTS as u64);
        for i in 0..ARENA_SLOTS {
            let s = arena_slot(seg, i);
            assert!(!is_runtime_slot(s));
            assert_eq!(key(s), (2 * ARENA_SLOTS + i) as u64);
            assert_eq!(far_len(s), None);
        }
        let s = arena_slot(seg, 7);
        next_generation(s);
        set_far_len(s, Some(100));
        assert_eq!((generation(s), far_len(s)), (1, Some(100)));
        t.release_arena_segment(seg);
        let again = t.arena_segment(0x1234 as *const (), 0);
        assert_eq!(again, seg, "spare segments are reused");
        assert_eq!(key(s), 7, "the key follows the new first index");
        assert_eq!(generation(s), 1, "generations survive reuse");
        // Runtime slots carved after arena segments still mask to their own headers.
        let mut out = Vec::new();
        t.carve(0x1234 as *const (), 2, true, &mut out);
        assert_eq!(
            key(out[1].0),
            0,
            "keys of keyed slots are stored, not derived"
        );
        assert_eq!(index_of(out[1].0), 1);
    }
}
