//! Per-object headers and the type-erased vtable the evacuator uses.
//!
//! # Layout of one object in a region
//!
//! ```text
//! | Header (16 B) | T, padded to 8 B | next Header ...
//! ```
//!
//! Invariant (the one the evacuator relies on): the header's slot is non-null **iff** the
//! slot's word points at this header's data. Both change only while the changing thread holds
//! the word's `BUSY` bit, and the header's slot is nulled *before* the word is re-published.

use crate::codec::FarData;
use crate::error::Result;
use crate::panics::{contain, to_error};
use crate::slots::Slot;
use std::any::TypeId;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes of header before every object.
pub(crate) const HEADER: usize = std::mem::size_of::<Header>();

/// Type-erased operations on a `T: FarData` in place.
///
/// # Contract
///
/// A vtable is built only by [`HasVTable`] for its own `T`, and every pointer handed to its
/// functions is the data address of an object in a heap region whose header names this
/// vtable (so it is aligned for `T` and `size` bytes long). Beyond that:
/// * `drop`: the `T` there is live and the caller owns it exclusively (it holds the word's
///   `BUSY` bit, or the object was never published); afterwards the room is dead.
/// * `encode`, `heap_bytes`: the `T` there is live and nobody holds a `&mut` to it for the
///   call's duration (the caller holds `BUSY`, or a scope and the object is not writable).
/// * `decode_into`: see [`decode_into`]; the room is not yet published.
///
/// None of them unwinds: user code's panics are caught and returned as errors, except in
/// `drop`, whose callers catch them (module `panics`).
#[derive(Debug)]
pub(crate) struct VTable {
    /// `size_of::<T>()`.
    pub size: usize,
    /// Drops the `T` at the pointer.
    pub drop: unsafe fn(*mut u8),
    /// Encodes the `T` at the pointer; a panic in `T::encode` is caught and reported as
    /// [`crate::Error::Panicked`].
    pub encode: unsafe fn(*const u8, &mut Vec<u8>) -> Result<()>,
    /// Heap bytes owned by the `T` at the pointer; a panic in `T::heap_bytes` is caught and
    /// reported as [`crate::Error::Panicked`].
    pub heap_bytes: unsafe fn(*const u8) -> Result<usize>,
    /// Decodes a `T` from far-memory bytes into uninitialised room for one (see
    /// [`decode_into`]).
    pub decode_into: unsafe fn(&[u8], *mut u8) -> Result<()>,
    /// `TypeId::of::<T>()`: checked where a typed handle meets an untyped object.
    pub type_id: fn() -> TypeId,
    /// [`FarData::INTERIOR_MUTABLE`]: a fetched copy may change behind `&T`, so it is never
    /// taken for clean.
    pub interior_mutable: bool,
}

/// Provides the static vtable of a type.
pub(crate) trait HasVTable: FarData {
    const VTABLE: VTable;
}

impl<T: FarData> HasVTable for T {
    const VTABLE: VTable = VTable {
        size: std::mem::size_of::<T>(),
        // SAFETY: callers pass a pointer to a live, aligned T they own exclusively.
        drop: |p| unsafe { std::ptr::drop_in_place(p as *mut T) },
        encode: |p, out| {
            // SAFETY: callers pass a pointer to a live, aligned T.
            let value = unsafe { &*(p as *const T) };
            contain(|| value.encode(out)).unwrap_or_else(|p| Err(to_error(p)))
        },
        heap_bytes: |p| {
            // SAFETY: callers pass a pointer to a live, aligned T.
            let value = unsafe { &*(p as *const T) };
            contain(|| value.heap_bytes()).map_err(to_error)
        },
        decode_into: decode_into::<T>,
        type_id: TypeId::of::<T>,
        interior_mutable: T::INTERIOR_MUTABLE,
    };
}

/// Decodes a `T` from `bytes` and writes it to `dst`. A malformed encoding is an error, and
/// so is a panic in `T::decode` ([`crate::Error::Panicked`]); either way `dst` stays
/// uninitialised.
///
/// # Safety
/// `dst` must be valid for writes of a `T` and aligned for it; whatever it held is
/// overwritten without being dropped.
unsafe fn decode_into<T: FarData>(bytes: &[u8], dst: *mut u8) -> Result<()> {
    // SAFETY: the caller passes writable, aligned room for a T, and `MaybeUninit<T>` has
    // T's layout; nothing else refers to the room while we decode.
    let slot = unsafe { &mut *(dst as *mut std::mem::MaybeUninit<T>) };
    let at =
        contain(|| T::decode_in_place(bytes, slot).map(|r| r as *mut T)).map_err(to_error)??;
    // The slot is initialised only if the reference the decoder handed back is the slot
    // (safe code obtains one there only by writing it); a reference elsewhere leaves it
    // uninitialised, which must not be taken for a value.
    if at != dst as *mut T {
        return Err(crate::Error::Codec(
            "decode_in_place returned a reference outside its slot".into(),
        ));
    }
    Ok(())
}

/// The header in front of every local object: two words, 16 bytes.
///
/// ```text
/// owner: | ds (16) | slot address (48) |   the slot whose word points here; 0 once dead
/// class: | heap (16) | vtable address (48) |   the type, and the owned heap it was charged
/// ```
///
/// Addresses fit in 48 bits on every 64-bit platform this crate builds for (user space is
/// below 2^47; [`Header::new`] checks the vtable's). The data length is not stored: it is
/// the vtable's size, padded to 8. The far copy's length lives in the slot
/// (`slots::far_len`), which outlives local copies. `heap` is a 16-bit float (11-bit
/// mantissa, 5-bit exponent, rounded up; see [`pack_heap`]): the same rounded figure is
/// added to and taken from the budget, so the accounting stays exact in its own terms.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Header {
    owner: AtomicU64,
    class: AtomicU64,
}

const _: () = assert!(HEADER == 16 && HEADER % 8 == 0);

/// Address bits of both header words.
const ADDR_BITS: u64 = (1 << 48) - 1;
/// Shift of the structure id (in `owner`) and of the heap charge (in `class`).
const HIGH_SHIFT: u32 = 48;

/// Packs a byte count into 16 bits, rounding up: `unpack_heap(pack_heap(n)) >= n` (up to
/// about 4.4e12 bytes, beyond which it saturates).
pub(crate) fn pack_heap(bytes: usize) -> u16 {
    let bytes = bytes as u64;
    let mut exp = 0u32;
    while exp < 31 && bytes.div_ceil(1 << exp) >= 2048 {
        exp += 1;
    }
    let mantissa = bytes.div_ceil(1 << exp).min(2047);
    ((exp as u16) << 11) | mantissa as u16
}

/// The byte count a packed heap charge stands for.
pub(crate) fn unpack_heap(code: u16) -> usize {
    ((code as u64 & 2047) << (code >> 11)) as usize
}

impl Header {
    /// A header for a freshly placed object.
    ///
    /// # Panics
    /// If the vtable's address does not fit in 48 bits (never on the platforms supported).
    pub fn new(slot: *mut Slot, vtable: &'static VTable, ds: u32) -> Self {
        let vt = vtable as *const VTable as u64;
        assert_eq!(vt & !ADDR_BITS, 0, "a vtable address beyond 48 bits");
        Header {
            owner: AtomicU64::new(pack_owner(slot, ds)),
            class: AtomicU64::new(vt),
        }
    }

    /// The slot whose word points here (null once dead or moved; `CONSTRUCTING` while
    /// being built).
    #[inline]
    pub fn slot(&self, order: Ordering) -> *mut Slot {
        (self.owner.load(order) & ADDR_BITS) as *mut Slot
    }

    /// Sets the slot. Only the thread that owns the object's transition (`BUSY`, or the
    /// builder of a `CONSTRUCTING` header) calls it, so the structure id it keeps cannot race.
    #[inline]
    pub fn set_slot(&self, slot: *mut Slot, order: Ordering) {
        self.owner.store(pack_owner(slot, self.ds()), order);
    }

    /// The structure the object belongs to.
    #[inline]
    pub fn ds(&self) -> u32 {
        (self.owner.load(Ordering::Relaxed) >> HIGH_SHIFT) as u32
    }

    /// The object's type.
    #[inline]
    pub fn vtable(&self) -> &'static VTable {
        let p = (self.class.load(Ordering::Relaxed) & ADDR_BITS) as *const VTable;
        // SAFETY: `new` stored the address of a `&'static VTable`, which fits in 48 bits.
        unsafe { &*p }
    }

    /// Heap bytes charged for this object at its last measurement (rounded up).
    #[inline]
    pub fn heap(&self) -> usize {
        unpack_heap((self.class.load(Ordering::Relaxed) >> HIGH_SHIFT) as u16)
    }

    /// Records a new measurement; returns `(new, old)` charges as the budget counts them.
    pub fn swap_heap(&self, bytes: usize) -> (usize, usize) {
        let code = pack_heap(bytes) as u64;
        let old = self
            .class
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                Some((c & ADDR_BITS) | (code << HIGH_SHIFT))
            })
            .unwrap_or_else(|c| c);
        (
            unpack_heap(code as u16),
            unpack_heap((old >> HIGH_SHIFT) as u16),
        )
    }

    /// The object's data.
    pub fn data(&self) -> *mut u8 {
        (self as *const Header as *mut u8).wrapping_add(HEADER)
    }

    /// Bytes of data after the header (the type's size, padded to 8).
    pub fn len(&self) -> usize {
        padded(self.vtable().size)
    }

    /// Bytes this object takes in its region.
    pub fn footprint(&self) -> usize {
        HEADER + self.len()
    }

    /// The header in front of `data`.
    ///
    /// # Safety
    /// `data` must be the data pointer of a live object in a region.
    pub unsafe fn of<'a>(data: *mut u8) -> &'a Header {
        // SAFETY: the caller guarantees a header precedes `data`.
        unsafe { &*(data.sub(HEADER) as *const Header) }
    }
}

fn pack_owner(slot: *mut Slot, ds: u32) -> u64 {
    let s = slot as u64;
    debug_assert_eq!(s & !ADDR_BITS, 0, "a slot address beyond 48 bits");
    debug_assert!(ds <= u16::MAX as u32);
    s | (ds as u64) << HIGH_SHIFT
}

/// Rounds a data size up to the 8-byte object alignment.
pub(crate) fn padded(size: usize) -> usize {
    (size + 7) & !7
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes "in place" into a leaked box instead of its slot.
    struct Liar(#[allow(dead_code)] u64);

    impl FarData for Liar {
        fn encode(&self, _: &mut Vec<u8>) -> Result<()> {
            Ok(())
        }
        fn decode(_: &[u8]) -> Result<Self> {
            Ok(Liar(1))
        }
        fn decode_in_place<'a>(
            _: &[u8],
            _: &'a mut std::mem::MaybeUninit<Self>,
        ) -> Result<&'a mut Self> {
            Ok(Box::leak(Box::new(Liar(2))))
        }
    }

    #[test]
    fn an_in_place_decode_that_answers_with_another_place_is_an_error() {
        let mut room = std::mem::MaybeUninit::<u64>::uninit();
        // SAFETY: `room` is writable and aligned for a `Liar` (one u64).
        let r = unsafe { decode_into::<Liar>(&[], room.as_mut_ptr() as *mut u8) };
        assert!(matches!(r, Err(crate::Error::Codec(_))), "{r:?}");
        // SAFETY: as above; the default path writes the slot.
        let r = unsafe { decode_into::<u64>(&9u64.to_le_bytes(), room.as_mut_ptr() as *mut u8) };
        assert!(r.is_ok());
        // SAFETY: decode_into succeeded, so the u64 is initialised.
        assert_eq!(unsafe { room.assume_init() }, 9);
    }

    #[test]
    fn heap_charges_round_up_and_round_trip() {
        for n in [
            0usize,
            1,
            7,
            2047,
            2048,
            2049,
            4095,
            1 << 20,
            (1 << 20) + 1,
            123_456_789,
        ] {
            let u = unpack_heap(pack_heap(n));
            assert!(u >= n, "{n} -> {u}");
            assert!(u - n <= n / 1024 + 1, "{n} -> {u}: within 0.1 %");
            assert_eq!(unpack_heap(pack_heap(u)), u, "a charge packs to itself");
        }
    }
}
