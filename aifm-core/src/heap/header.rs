//! Per-object headers and the type-erased vtable the evacuator uses.
//!
//! # Layout of one object in a region
//!
//! ```text
//! | Header (32 B) | T, padded to 8 B | next Header ...
//! ```
//!
//! Invariant (the one the evacuator relies on): `header.slot` is non-null **iff** the slot's
//! word points at this header's data. Both change only while the changing thread holds the
//! word's `BUSY` bit, and `header.slot` is nulled *before* the word is re-published.

use crate::codec::FarData;
use crate::error::Result;
use crate::panics::{contain, to_error};
use crate::slots::Slot;
use std::any::TypeId;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

/// Bytes of header before every object.
pub(crate) const HEADER: usize = std::mem::size_of::<Header>();

/// Type-erased operations on a `T: FarData` in place.
#[derive(Debug)]
pub(crate) struct VTable {
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
    pub type_id: fn() -> TypeId,
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
    let value = contain(|| T::decode(bytes)).map_err(to_error)??;
    // SAFETY: the caller passes writable, aligned room for a T.
    unsafe { (dst as *mut T).write(value) };
    Ok(())
}

/// The header in front of every local object.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Header {
    /// The slot whose word points here; null once the object is dead or moved.
    pub slot: AtomicPtr<Slot>,
    pub vtable: &'static VTable,
    /// Bytes of data after the header, padded to 8.
    pub len: u32,
    /// Length of the far copy plus one; 0 when far memory holds no copy.
    pub far_len: AtomicU32,
    /// Heap bytes charged for this object at its last measurement.
    pub heap: AtomicU32,
    /// The structure the object belongs to.
    pub ds: u16,
    _pad: u16,
}

const _: () = assert!(HEADER == 32 && HEADER % 8 == 0);

impl Header {
    /// A header for a freshly placed object.
    pub fn new(
        slot: NonNull<Slot>,
        vtable: &'static VTable,
        ds: u32,
        far_len: Option<usize>,
    ) -> Self {
        Header {
            slot: AtomicPtr::new(slot.as_ptr()),
            vtable,
            len: padded(vtable.size) as u32,
            far_len: AtomicU32::new(far_len.map_or(0, |l| l as u32 + 1)),
            heap: AtomicU32::new(0),
            ds: ds as u16,
            _pad: 0,
        }
    }

    /// The object's data.
    pub fn data(&self) -> *mut u8 {
        (self as *const Header as *mut u8).wrapping_add(HEADER)
    }

    /// Bytes this object takes in its region.
    pub fn footprint(&self) -> usize {
        HEADER + self.len as usize
    }

    /// The far copy's length, if far memory holds one.
    pub fn far_len(&self) -> Option<usize> {
        match self.far_len.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n as usize - 1),
        }
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

/// Rounds a data size up to the 8-byte object alignment.
pub(crate) fn padded(size: usize) -> usize {
    (size + 7) & !7
}
