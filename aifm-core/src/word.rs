//! The remoteable pointer word: one `u64` that is either a local address or a remote handle.
//!
//! # Layout
//!
//! ```text
//!  63      62          61    60    59     58        57..56   55     54..48  47..0
//! REMOTE  EVACUATING  BUSY  COLD  CLEAN  DETACHED  HOTNESS  FRESH  (zero)  local: object address
//!                                                          47..32: remote structure id
//!                                                          31..0:  remote object length
//! ```
//!
//! Two flags are stored inverted (`COLD` = not hot, `CLEAN` = not dirty) so that a single AND
//! decides the fast path: a shared dereference may use the address iff
//! `word & READ_SLOW == 0`, a mutable one iff `word & WRITE_SLOW == 0`. The all-zero word is
//! [`NULL`]: it marks a free slot and is never held by a live `RemBox`.
//!
//! * `REMOTE`: the object lives only in far memory; bits 0..32 hold its encoded length.
//! * `EVACUATING`: the evacuator marked the object; dereferences take the slow path, where a
//!   mutator migrates the object itself.
//! * `BUSY`: one thread (mutator or evacuator) owns the object exclusively while it fetches,
//!   moves, writes back or frees it. Everyone else waits for this one object only.
//! * `COLD` / `HOTNESS`: CLOCK-like recency. A slow-path dereference of a cold object bumps the
//!   2-bit counter; at [`HOT_THRESHOLD`] the object turns hot (`COLD` cleared) and later
//!   dereferences stay on the fast path. The evacuator re-colds objects it keeps.
//! * `CLEAN`: the far copy equals the local one, so evicting it needs no write-back. Set only
//!   on a fetch for reading, of a type that cannot change behind `&T`
//!   ([`crate::FarData::INTERIOR_MUTABLE`] is `false`); cleared by a mutable dereference.
//! * `FRESH`: a prefetch brought the object in and nobody has used it yet. The first
//!   dereference takes the slow path once, clears it and counts a useful prefetch; the
//!   evacuator counts a wasted one if it evicts a still-fresh object.
//! * `DETACHED` (with `REMOTE`): the structure's evacuation handler took the object out of the
//!   runtime's hands; see [`crate::WriteBack::Detached`].

/// The object lives only in far memory.
pub const REMOTE: u64 = 1 << 63;
/// The evacuator marked the object.
pub const EVACUATING: u64 = 1 << 62;
/// One thread owns the object exclusively for a state change.
pub const BUSY: u64 = 1 << 61;
/// Not hot (inverted hot bit).
pub const COLD: u64 = 1 << 60;
/// Not dirty (inverted dirty bit): far memory holds an identical copy.
pub const CLEAN: u64 = 1 << 59;
/// The structure's handler detached the object (only together with `REMOTE`).
pub const DETACHED: u64 = 1 << 58;
/// Brought in by a prefetch and not used yet.
pub const FRESH: u64 = 1 << 55;
/// Shift of the 2-bit hotness counter.
pub const HOTNESS_SHIFT: u32 = 56;
/// Mask of the 2-bit hotness counter.
pub const HOTNESS_MASK: u64 = 0b11 << HOTNESS_SHIFT;
/// Slow-path dereferences of a cold object that make it hot.
pub const HOT_THRESHOLD: u64 = 2;
/// Local address bits.
pub const ADDR_MASK: u64 = (1 << 48) - 1;
/// Remote length bits.
pub const LEN_MASK: u64 = u32::MAX as u64;
/// Shift of the remote structure id.
pub const DS_SHIFT: u32 = 32;
/// Largest structure id a word can carry.
pub const MAX_DS: u32 = u16::MAX as u32;
/// A free slot.
pub const NULL: u64 = 0;

/// Any of these set sends a shared dereference to the slow path.
pub const READ_SLOW: u64 = REMOTE | EVACUATING | BUSY | COLD | FRESH;
/// Any of these set sends a mutable dereference to the slow path.
pub const WRITE_SLOW: u64 = READ_SLOW | CLEAN;
/// Any of these set sends a nontemporal dereference to the slow path (it never heats).
pub const NT_SLOW: u64 = REMOTE | EVACUATING | BUSY | FRESH;

const _: () = {
    // Flags, counter and address are disjoint.
    let flags = REMOTE | EVACUATING | BUSY | COLD | CLEAN | DETACHED | FRESH;
    assert!(flags & HOTNESS_MASK == 0);
    assert!((flags | HOTNESS_MASK) & ADDR_MASK == 0);
    assert!(HOT_THRESHOLD <= 3);
};

/// Composes a local word for an object at `addr` (a freshly placed object is cold).
///
/// # Examples
///
/// ```
/// use aifm_core::word::*;
/// let w = local(0x1000 as *const u8, true);
/// assert_eq!(addr(w) as usize, 0x1000);
/// assert_ne!(w & READ_SLOW, 0, "a fresh object is cold");
/// ```
#[inline]
pub fn local(addr: *const u8, clean: bool) -> u64 {
    let a = addr as u64;
    debug_assert_eq!(a & !ADDR_MASK, 0, "address does not fit in 48 bits");
    debug_assert_eq!(a % 8, 0, "objects are 8-byte aligned");
    a | COLD | if clean { CLEAN } else { 0 }
}

/// Composes a remote word for an object of structure `ds` whose encoding is `len` bytes long.
///
/// # Examples
///
/// ```
/// use aifm_core::word::*;
/// let w = remote(4096, 3);
/// assert_eq!((remote_len(w), remote_ds(w)), (4096, 3));
/// ```
#[inline]
pub fn remote(len: usize, ds: u32) -> u64 {
    debug_assert!(ds <= MAX_DS && len as u64 <= LEN_MASK);
    REMOTE | CLEAN | ((ds as u64) << DS_SHIFT) | (len as u64 & LEN_MASK)
}

/// The structure id held by a remote word.
///
/// # Examples
///
/// ```
/// assert_eq!(aifm_core::word::remote_ds(aifm_core::word::remote(1, 9)), 9);
/// ```
#[inline]
pub fn remote_ds(word: u64) -> u32 {
    ((word & ADDR_MASK) >> DS_SHIFT) as u32
}

/// The encoded length held by a remote word.
///
/// # Examples
///
/// ```
/// assert_eq!(aifm_core::word::remote_len(aifm_core::word::remote(77, 0)), 77);
/// ```
#[inline]
pub fn remote_len(word: u64) -> usize {
    (word & LEN_MASK) as usize
}

/// The local address held by a local word.
///
/// # Examples
///
/// ```
/// use aifm_core::word::*;
/// assert_eq!(addr(local(0x40 as *const u8, false)) as usize, 0x40);
/// ```
#[inline]
pub fn addr(word: u64) -> *mut u8 {
    (word & ADDR_MASK) as *mut u8
}

/// The hotness counter of a word.
///
/// # Examples
///
/// ```
/// use aifm_core::word::*;
/// assert_eq!(hotness(heated(local(0x40 as *const u8, false))), 1);
/// ```
#[inline]
pub fn hotness(word: u64) -> u64 {
    (word & HOTNESS_MASK) >> HOTNESS_SHIFT
}

/// The word after one more slow-path touch: the counter climbs, and at the threshold the
/// object turns hot.
///
/// # Examples
///
/// ```
/// use aifm_core::word::*;
/// let hot = heated(heated(local(0x40 as *const u8, false)));
/// assert_eq!(hot & READ_SLOW, 0, "twice touched: hot, fast path");
/// ```
#[inline]
pub fn heated(word: u64) -> u64 {
    let h = hotness(word) + 1;
    if h >= HOT_THRESHOLD {
        word & !(COLD | HOTNESS_MASK)
    } else {
        (word & !HOTNESS_MASK) | (h << HOTNESS_SHIFT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_local_word_is_slow_until_heated_twice() {
        let w = local(0x1000 as *const u8, false);
        assert_ne!(w & READ_SLOW, 0);
        let w = heated(w);
        assert_ne!(w & READ_SLOW, 0);
        let w = heated(w);
        assert_eq!(w & READ_SLOW, 0);
        assert_eq!(addr(w) as usize, 0x1000);
        assert_eq!(w & WRITE_SLOW, 0, "not clean: writes are fast too");
    }

    #[test]
    fn remote_word_keeps_length() {
        let w = remote(12345, 77);
        assert_eq!(remote_len(w), 12345);
        assert_eq!(remote_ds(w), 77);
        assert_ne!(w & NT_SLOW, 0);
    }
}
