//! The local index of one `RemHashMap` shard: a `hashbrown::HashTable` of buckets.
//!
//! # What a bucket holds
//!
//! A bucket is 24 bytes, inline in the table: the pair's full 64-bit hash (compared before
//! the pair is touched, and the rehash key), the pair's `RemBox` (one pointer to its slot) and
//! a writer word. A probe reads the bucket, the slot's pointer word and the pair: three
//! dependent loads.
//!
//! # Guards
//!
//! Buckets move when the table grows, so a guard does not point at its bucket: it counts
//! itself in its shard's `guards` (one counter per shard, on the lock's cache line) and keeps
//! the pair's address (stable while its scope lives). The rules, which also keep the
//! runtime's one assumption (no dereference of a box while a `&mut` from it lives):
//!
//! * readers count themselves **under the shard's read lock**; a bucket whose writer word is
//!   set ([`WRITER`]) is not dereferenced at all (the reader backs off and retries);
//! * `WRITER` is set only **under the write lock**, and only when the shard has no guard;
//!   a `RefMut` clears it when dropped (under the read lock, finding its bucket by the pair's
//!   key);
//! * a writer that finds guards in the shard does not wait: it copies the pair (through its
//!   codec) into a new bucket and *retires* the old box ([`Table::retire`]);
//! * retired boxes are freed under the write lock once the shard has no guard (none can reach
//!   them any more: they are out of the table, and guards are counted under its lock).
//!
//! So no guard holds a lock, and no writer waits for a reader; a reader (or a second writer)
//! waits only for a `RefMut` on the same pair.
//!
//! # Node flags
//!
//! The heap object is a [`Node`]: key, value and a flag byte the evacuation handler reads.
//! [`RETIRED`]: the pair was replaced or removed while guards held it; evicting it writes
//! nothing. [`FAR_COPY`]: far memory may hold a copy of this pair under its key (the handler
//! handed it out, or a miss brought it home and could not yet remove the server's copy):
//! removing the pair must remove that copy too, or a later miss would resurrect it.
//! [`PENDING`]: allocated but not yet in the index; the handler refuses to evict it (the
//! runtime then keeps it local), so a pair is never written out before it is in the map.

use aifm_core::{Error, FarData, RemBox, Result, Scope};
use hashbrown::HashTable;
use std::borrow::Borrow;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, AtomicU8, AtomicUsize, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The node flag: far memory may hold a copy of this pair.
pub(crate) const FAR_COPY: u8 = 1;
/// The node flag: the pair left the index while guards held it.
pub(crate) const RETIRED: u8 = 2;
/// The node flag: allocated, not yet in the index; the evacuator must keep it local.
pub(crate) const PENDING: u8 = 4;
/// The guard-word bit of a `RefMut`.
pub(crate) const WRITER: u32 = 1 << 31;

/// A key-value pair as it lives in the heap.
pub(crate) struct Node<K, V> {
    pub(crate) flags: AtomicU8,
    pub(crate) key: K,
    pub(crate) value: V,
}

impl<K: FarData, V: FarData> FarData for Node<K, V> {
    /// `[key length: u32 LE][key][value]`; the flags are local state and are not stored.
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        self.key.encode(out)?;
        let len = u32::try_from(out.len() - at - 4)
            .map_err(|_| Error::Codec("key longer than 4 GiB".into()))?;
        out[at..at + 4].copy_from_slice(&len.to_le_bytes());
        self.value.encode(out)
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let truncated = || Error::Codec("truncated map pair".into());
        let len = u32::from_le_bytes(bytes.get(..4).ok_or_else(truncated)?.try_into().unwrap());
        let key_end = 4usize.checked_add(len as usize).ok_or_else(truncated)?;
        let key = K::decode(bytes.get(4..key_end).ok_or_else(truncated)?)?;
        Ok(Node {
            flags: AtomicU8::new(0),
            key,
            value: V::decode(&bytes[key_end..])?,
        })
    }

    fn heap_bytes(&self) -> usize {
        self.key.heap_bytes() + self.value.heap_bytes()
    }
}

/// A copy of `v` made through its codec (`V` need not be `Clone`).
pub(crate) fn codec_copy<T: FarData>(v: &T) -> Result<T> {
    let mut bytes = Vec::new();
    v.encode(&mut bytes)?;
    T::decode(&bytes)
}

/// A slot of the table: hash, writer word, the pair's box (see the module essay).
pub(crate) struct Bucket<K: FarData, V: FarData> {
    pub(crate) hash: u64,
    pub(crate) state: AtomicU32,
    pair: UnsafeCell<RemBox<Node<K, V>>>,
}

// SAFETY: the box is reached through `&Bucket` only as the module's rules allow: shared
// dereferences while no `WRITER` is set, the one mutable dereference under the write lock
// with `WRITER` held; `K` and `V` are shared between threads through guards, hence `Sync`.
unsafe impl<K: FarData + Sync, V: FarData + Sync> Sync for Bucket<K, V> {}

impl<K: FarData, V: FarData> Bucket<K, V> {
    pub(crate) fn new(hash: u64, pair: RemBox<Node<K, V>>, state: u32) -> Self {
        Bucket {
            hash,
            state: AtomicU32::new(state),
            pair: UnsafeCell::new(pair),
        }
    }

    /// The box, for shared use.
    ///
    /// # Safety
    /// No `&mut` to the box may exist: the caller holds the shard lock (read or write), and
    /// mutable dereferences happen only under the write lock.
    pub(crate) unsafe fn pair(&self) -> &RemBox<Node<K, V>> {
        // SAFETY: per the contract, only shared references exist now.
        unsafe { &*self.pair.get() }
    }

    /// The box, for a mutable dereference.
    ///
    /// # Safety
    /// The caller holds the shard's write lock (so no reader dereferences the bucket) and
    /// either owns `WRITER` on it or knows no guard refers to its pair.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn pair_mut(&self) -> &mut RemBox<Node<K, V>> {
        // SAFETY: per the contract, this is the only reference to the box.
        unsafe { &mut *self.pair.get() }
    }

    /// Clears `PENDING` on the node now that the bucket is in the index. Call under the write
    /// lock, before any `RefMut` takes the node's address.
    pub(crate) fn publish(&self, scope: &Scope) {
        // SAFETY: write lock held, and no guard has dereferenced the new bucket yet.
        if let Ok(n) = unsafe { self.pair() }.try_deref(scope) {
            n.flags.fetch_and(!PENDING, Ordering::AcqRel);
        }
    }

    pub(crate) fn into_pair(self) -> RemBox<Node<K, V>> {
        self.pair.into_inner()
    }
}

/// One shard's index.
pub(crate) struct Table<K: FarData, V: FarData> {
    pub(crate) live: HashTable<Bucket<K, V>>,
    /// Boxes taken out of `live` while the shard had guards; freed once it has none.
    retired: Vec<RemBox<Node<K, V>>>,
}

/// What a probe found.
pub(crate) enum Probe<K: FarData, V: FarData> {
    /// The key's bucket (valid while the lock is held) and its node as dereferenced through
    /// the probe's scope; a read probe has counted a guard in the shard.
    Hit(*const Bucket<K, V>, *mut Node<K, V>),
    /// Not here; `dead` if buckets of the same hash were tombstones (pairs evicted away).
    Miss { dead: bool },
    /// A `RefMut` holds a bucket of this hash: back off and retry.
    Busy,
}

impl<K: FarData + Eq, V: FarData> Table<K, V> {
    fn new(capacity: usize) -> Self {
        Table {
            live: HashTable::with_capacity(capacity),
            retired: Vec::new(),
        }
    }

    /// Finds `q` and counts a guard in `guards` for it. Call under the read lock: no writer
    /// can take a bucket while it is held.
    pub(crate) fn find_read<Q>(
        &self,
        h: u64,
        q: &Q,
        scope: &Scope,
        guards: &AtomicUsize,
    ) -> Result<Probe<K, V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.find(h, q, scope, Some(guards))
    }

    /// Finds `q` without counting a guard. Call under the write lock.
    pub(crate) fn find_write<Q>(&self, h: u64, q: &Q, scope: &Scope) -> Result<Probe<K, V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.find(h, q, scope, None)
    }

    /// The probe behind both: the shard's lock (read or write) is held by the caller; a hit
    /// counts a guard in `guards` if given.
    fn find<Q>(
        &self,
        h: u64,
        q: &Q,
        scope: &Scope,
        guards: Option<&AtomicUsize>,
    ) -> Result<Probe<K, V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let mut dead = false;
        for b in self.live.iter_hash(h) {
            if b.hash != h {
                continue;
            }
            if b.state.load(Ordering::Acquire) & WRITER != 0 {
                return Ok(Probe::Busy);
            }
            // SAFETY: no `WRITER`, and the caller holds the shard's lock (read or write): only
            // shared uses of the box.
            match unsafe { b.pair() }.try_deref(scope) {
                Ok(n) if n.key.borrow() == q => {
                    if let Some(g) = guards {
                        g.fetch_add(1, Ordering::AcqRel);
                    }
                    return Ok(Probe::Hit(b, n as *const Node<K, V> as *mut Node<K, V>));
                }
                Ok(_) => {}
                Err(Error::Detached) => dead = true,
                Err(e) => return Err(e),
            }
        }
        Ok(Probe::Miss { dead })
    }

    /// Takes bucket `b` (found under this lock) out of the table.
    pub(crate) fn unlink(&mut self, h: u64, b: *const Bucket<K, V>) -> Bucket<K, V> {
        match self.live.find_entry(h, |x| std::ptr::eq(x, b)) {
            Ok(e) => e.remove().0,
            Err(_) => unreachable!("the bucket was found under this lock"),
        }
    }

    /// Puts `new` in place of bucket `old` (found under this lock) and returns the old one.
    pub(crate) fn replace(
        &mut self,
        h: u64,
        old: *const Bucket<K, V>,
        new: Bucket<K, V>,
    ) -> Bucket<K, V> {
        match self.live.find_mut(h, |x| std::ptr::eq(x, old)) {
            Some(b) => std::mem::replace(b, new),
            None => unreachable!("the bucket was found under this lock"),
        }
    }

    /// Inserts `b` and returns where it is (valid while the lock is held).
    pub(crate) fn insert(&mut self, b: Bucket<K, V>) -> *const Bucket<K, V> {
        let h = b.hash;
        &*self.live.insert_unique(h, b, |x| x.hash).into_mut()
    }

    /// Parks a pair that guards may still hold until the shard has none; marks its node so
    /// that the evacuator drops it instead of writing it back.
    pub(crate) fn retire(&mut self, b: Bucket<K, V>, scope: &Scope) {
        // SAFETY: write lock held; the bucket is out of the table and not `WRITER`-held.
        if let Ok(n) = unsafe { b.pair() }.try_deref(scope) {
            n.flags.fetch_or(RETIRED, Ordering::AcqRel);
        }
        self.retired.push(b.into_pair());
    }

    /// Frees the retired pairs if the shard has no guard.
    fn reap(&mut self, guards: &AtomicUsize) {
        if !self.retired.is_empty() && guards.load(Ordering::Acquire) == 0 {
            self.retired.clear();
        }
    }

    /// Drops the buckets of pairs evicted to far memory (tombstones).
    pub(crate) fn sweep(&mut self) {
        self.live.retain(|b| {
            // SAFETY: write lock held; `is_local` only reads the slot word.
            let local = || unsafe { b.pair() }.is_local();
            b.state.load(Ordering::Acquire) & WRITER != 0 || local()
        });
    }

    /// Whether a `RefMut` holds any pair of the table.
    pub(crate) fn has_writer(&self) -> bool {
        self.live
            .iter()
            .any(|b| b.state.load(Ordering::Acquire) & WRITER != 0)
    }

    /// Pairs in local memory.
    pub(crate) fn local_len(&self) -> usize {
        // SAFETY: read lock held by the caller; `is_local` only reads the slot word.
        self.live
            .iter()
            .filter(|b| unsafe { b.pair() }.is_local())
            .count()
    }
}

impl<K: FarData, V: FarData> Table<K, V> {
    /// Ends the `RefMut` on the pair whose box has key `id`. Call under the read lock.
    pub(crate) fn clear_writer(&self, h: u64, id: u64) {
        for b in self.live.iter_hash(h) {
            // SAFETY: the lock is held; `key` reads the slot's key only.
            if b.hash == h && unsafe { b.pair() }.key() == id {
                b.state.fetch_and(!WRITER, Ordering::AcqRel);
                return;
            }
        }
    }
}

/// One shard: its table behind a reader-writer lock and its guard count, on one cache line.
#[repr(align(64))]
pub(crate) struct Shard<K: FarData, V: FarData> {
    table: RwLock<Table<K, V>>,
    /// Live guards (`Ref`, `RefMut`) on pairs of this shard.
    pub(crate) guards: AtomicUsize,
}

impl<K: FarData, V: FarData> Shard<K, V> {
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Table<K, V>> {
        self.table.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl<K: FarData + Eq, V: FarData> Shard<K, V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Shard {
            table: RwLock::new(Table::new(capacity)),
            guards: AtomicUsize::new(0),
        }
    }

    /// The write lock, with the retired pairs freed if no guard is left.
    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Table<K, V>> {
        let mut t = self.table.write().unwrap_or_else(|e| e.into_inner());
        t.reap(&self.guards);
        t
    }

    /// Whether any guard holds a pair of the shard (a writer then copies instead).
    pub(crate) fn guarded(&self) -> bool {
        self.guards.load(Ordering::Acquire) != 0
    }
}

/// Waits a little for another thread's progress (a `RefMut` to end).
pub(crate) fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < 16 {
        std::hint::spin_loop();
    } else if *spins < 64 {
        std::thread::yield_now();
    } else {
        std::thread::sleep(std::time::Duration::from_micros(50));
    }
}
