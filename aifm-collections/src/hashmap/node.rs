//! A map pair as it lives in the heap: [`Node`], its state word and its flags.
//!
//! The heap object is a [`Node`]: state, a flag byte the evacuation handler reads, key and
//! value. [`RETIRED`]: the pair left the index; evicting it writes nothing. [`FAR_COPY`]:
//! far memory may hold a copy of this pair under its key (the handler handed it out, or a
//! miss brought it home and could not yet remove the server's copy): removing the pair must
//! remove that copy too, or a later miss would resurrect it. [`PENDING`]: allocated but not
//! yet in the index; the handler refuses to evict it (the runtime then keeps it local), so a
//! pair is never written out before it is in the map. [`TAKEN`]: the value was moved out
//! (by a removal that found no reader); dropping the node leaves it alone.
//!
//! The state word (a reader count, [`WRITER`] and [`DEAD`]) is the per-pair protocol between
//! lock-free readers and writers; the `index` essay states its rules.

use aifm_core::{Error, FarData, Result};
use std::cell::UnsafeCell;
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};

/// The node flag: far memory may hold a copy of this pair.
pub(crate) const FAR_COPY: u8 = 1;
/// The node flag: the pair left the index.
pub(crate) const RETIRED: u8 = 2;
/// The node flag: allocated, not yet in the index; the evacuator must keep it local.
pub(crate) const PENDING: u8 = 4;
/// The node flag: the value was moved out; the node's drop skips it.
pub(crate) const TAKEN: u8 = 8;

/// The state bit of a node held by a `RefMut` (or a writer judging it in place).
pub(crate) const WRITER: u32 = 1 << 31;
/// The state bit of a node being removed or replaced.
pub(crate) const DEAD: u32 = 1 << 30;
/// The state's reader count.
pub(crate) const READERS: u32 = DEAD - 1;

/// A key-value pair as it lives in the heap.
pub(crate) struct Node<K, V> {
    pub(crate) state: AtomicU32,
    pub(crate) flags: AtomicU8,
    pub(crate) key: K,
    /// Written in place only by the holder of `WRITER`; moved out only by a writer that set
    /// `DEAD` with no reader admitted (then `TAKEN` is set).
    value: UnsafeCell<ManuallyDrop<V>>,
}

// SAFETY: the value is shared between threads (`Sync` needed) and written only under the
// `state` protocol of the module essay (exclusive `WRITER` or `DEAD` with no reader), which
// orders every write before other threads' reads with release/acquire on `state`.
unsafe impl<K: Sync, V: Send + Sync> Sync for Node<K, V> {}

impl<K, V> Node<K, V> {
    pub(crate) fn new(key: K, value: V, flags: u8) -> Self {
        Node {
            state: AtomicU32::new(0),
            flags: AtomicU8::new(flags),
            key,
            value: UnsafeCell::new(ManuallyDrop::new(value)),
        }
    }

    /// The value, for reading.
    ///
    /// # Safety
    /// The caller is an admitted reader of the node, or holds `WRITER`, or holds the shard's
    /// mutex (writers) and has not given the value away; or the node is out of every guard's
    /// reach (the evacuator).
    pub(crate) unsafe fn value(&self) -> &V {
        // SAFETY: per the contract no `&mut` to the value exists meanwhile.
        unsafe { &*self.value.get() }
    }

    /// Moves the value out and sets `TAKEN`, so that the node's drop (and encoding) leaves it
    /// alone.
    ///
    /// # Safety
    /// The caller set `DEAD` with no reader admitted (none will be) and holds the shard's
    /// mutex; the value is taken at most once.
    pub(crate) unsafe fn take_value(&self) -> V {
        // SAFETY: per the contract no other reference to the value exists or will.
        let v = unsafe { ManuallyDrop::take(&mut *self.value.get()) };
        self.flags.fetch_or(TAKEN, Ordering::AcqRel);
        v
    }

    /// The value, for writing.
    ///
    /// # Safety
    /// The caller holds `WRITER` on the node (no reader is admitted meanwhile), and makes no
    /// other reference to the value while this one lives.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn value_mut(&self) -> &mut V {
        // SAFETY: per the contract this is the only reference to the value.
        unsafe { &mut *self.value.get() }
    }
}

impl<K, V> Drop for Node<K, V> {
    fn drop(&mut self) {
        if *self.flags.get_mut() & TAKEN == 0 {
            // SAFETY: the value was not moved out (`TAKEN` is set exactly when it was), and
            // this is the node's drop: nothing uses it afterwards.
            unsafe { ManuallyDrop::drop(self.value.get_mut()) }
        }
    }
}

impl<K: FarData, V: FarData> FarData for Node<K, V> {
    // `state` and `flags` change behind `&Node`, but they are not encoded.
    const INTERIOR_MUTABLE: bool = K::INTERIOR_MUTABLE || V::INTERIOR_MUTABLE;

    /// `[key length: u32 LE][key][value]`; state and flags are local and are not stored.
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        if self.flags.load(Ordering::Acquire) & TAKEN != 0 {
            return Err(Error::Codec("a map pair whose value was moved out".into()));
        }
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        self.key.encode(out)?;
        let len = u32::try_from(out.len() - at - 4)
            .map_err(|_| Error::Codec("key longer than 4 GiB".into()))?;
        out[at..at + 4].copy_from_slice(&len.to_le_bytes());
        // SAFETY: encoding happens on eviction (no guard reaches the node) or by a writer
        // under the mutex that has not given the value away (`TAKEN` checked above).
        unsafe { self.value() }.encode(out)
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let truncated = || Error::Codec("truncated map pair".into());
        let len = u32::from_le_bytes(bytes.get(..4).ok_or_else(truncated)?.try_into().unwrap());
        let key_end = 4usize.checked_add(len as usize).ok_or_else(truncated)?;
        let key = K::decode(bytes.get(4..key_end).ok_or_else(truncated)?)?;
        Ok(Node::new(key, V::decode(&bytes[key_end..])?, 0))
    }

    fn heap_bytes(&self) -> usize {
        let value = match self.flags.load(Ordering::Acquire) & TAKEN {
            // SAFETY: as in `encode`.
            0 => unsafe { self.value() }.heap_bytes(),
            _ => 0,
        };
        self.key.heap_bytes() + value
    }
}

/// A copy of `v` made through its codec (`V` need not be `Clone`).
pub(crate) fn codec_copy<T: FarData>(v: &T) -> Result<T> {
    let mut bytes = Vec::new();
    v.encode(&mut bytes)?;
    T::decode(&bytes)
}
