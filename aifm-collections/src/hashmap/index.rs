//! The local index of one `RemHashMap` shard: a `hashbrown::HashTable` of buckets.
//!
//! # What a bucket holds
//!
//! A bucket is the pair's full 64-bit hash (the table's tag and rehash key, so a probe
//! compares hashes before it touches a pair) and a boxed [`Cell`]. The cell is the pair's
//! stable home outside the heap: the pair's `RemBox` (one pointer to its slot) and a guard
//! word. Buckets move when the table grows; cells never do, so guards point at cells.
//!
//! # The guard word
//!
//! `state` counts the guards ([`crate::hashmap::Ref`], [`crate::hashmap::RefMut`]) on the
//! pair, plus [`WRITER`] while a `RefMut` has it. The rules, all of which keep the runtime's
//! one assumption (no dereference of a box while a `&mut` from it lives):
//!
//! * readers pin (count + 1) **under the shard's read lock**; a cell with `WRITER` set is not
//!   dereferenced at all (the reader backs off and retries);
//! * `WRITER` is set only **under the write lock**, and only on a cell with no guards, so no
//!   reader can be between its pin and its dereference then;
//! * a writer that finds guards does not wait: it copies the pair (through its codec) into
//!   a new cell and *retires* the old one ([`Table::retire`]);
//! * retired cells are freed under the write lock once their count is zero (no new pins can
//!   reach them: they are out of the table, and pins need the table).
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
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
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

/// A pair's stable home: its box and its guard word (see the module essay).
pub(crate) struct Cell<K: FarData, V: FarData> {
    pub(crate) state: AtomicU32,
    pair: UnsafeCell<RemBox<Node<K, V>>>,
}

// SAFETY: the box is reached through `&Cell` only as the guard-word protocol allows: shared
// dereferences while no `WRITER` is set, the one mutable dereference under the write lock
// with `WRITER` held; `K` and `V` are shared between threads through guards, hence `Sync`.
unsafe impl<K: FarData + Sync, V: FarData + Sync> Sync for Cell<K, V> {}

impl<K: FarData, V: FarData> Cell<K, V> {
    pub(crate) fn new(pair: RemBox<Node<K, V>>, state: u32) -> Box<Self> {
        Box::new(Cell {
            state: AtomicU32::new(state),
            pair: UnsafeCell::new(pair),
        })
    }

    /// The box, for shared use.
    ///
    /// # Safety
    /// No `&mut` to the box may exist: the caller holds the shard lock (read or write) and
    /// the cell is not mid-acquisition by a writer (which happens only under the write lock).
    pub(crate) unsafe fn pair(&self) -> &RemBox<Node<K, V>> {
        // SAFETY: per the contract, only shared references exist now.
        unsafe { &*self.pair.get() }
    }

    /// The box, for a mutable dereference.
    ///
    /// # Safety
    /// The caller holds the shard's write lock (so no reader dereferences the cell) and either
    /// owns `WRITER` on it or knows no guard refers to it.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn pair_mut(&self) -> &mut RemBox<Node<K, V>> {
        // SAFETY: per the contract, this is the only reference to the box.
        unsafe { &mut *self.pair.get() }
    }

    /// Clears `PENDING` on the node now that the cell is in the index. Call under the write
    /// lock, before any `RefMut` on the cell takes its pointer.
    pub(crate) fn publish(&self, scope: &Scope) {
        // SAFETY: write lock held, and no guard has dereferenced the new cell yet.
        if let Ok(n) = unsafe { self.pair() }.try_deref(scope) {
            n.flags.fetch_and(!PENDING, Ordering::AcqRel);
        }
    }

    pub(crate) fn into_pair(self) -> RemBox<Node<K, V>> {
        self.pair.into_inner()
    }

    pub(crate) fn guarded(&self) -> bool {
        self.state.load(Ordering::Acquire) != 0
    }
}

/// A slot of the table.
pub(crate) struct Bucket<K: FarData, V: FarData> {
    pub(crate) hash: u64,
    pub(crate) cell: Box<Cell<K, V>>,
}

/// One shard's index.
pub(crate) struct Table<K: FarData, V: FarData> {
    pub(crate) live: HashTable<Bucket<K, V>>,
    /// Cells taken out of `live` while guards held them; freed once unguarded. Boxed because
    /// guards point at them: they must not move.
    #[allow(clippy::vec_box)]
    retired: Vec<Box<Cell<K, V>>>,
}

/// What a probe found.
pub(crate) enum Probe<K: FarData, V: FarData> {
    /// The key's live cell (pinned as a reader if the probe was a read probe), and its node
    /// as dereferenced through the probe's scope.
    Hit(*const Cell<K, V>, *mut Node<K, V>),
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

    /// Finds `q` and pins its cell as a reader. Call under the read lock: no writer can take
    /// a cell while it is held, so the cell is dereferenced first and pinned only if it is
    /// the key's (one atomic add per lookup).
    pub(crate) fn find_read<Q>(&self, h: u64, q: &Q, scope: &Scope) -> Result<Probe<K, V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let mut dead = false;
        for b in self.live.iter_hash(h) {
            if b.hash != h {
                continue;
            }
            let c = &*b.cell;
            if c.state.load(Ordering::Acquire) & WRITER != 0 {
                return Ok(Probe::Busy);
            }
            // SAFETY: no `WRITER`, and we hold the read lock: only shared uses of the box.
            match unsafe { c.pair() }.try_deref(scope) {
                Ok(n) if n.key.borrow() == q => {
                    c.state.fetch_add(1, Ordering::AcqRel);
                    return Ok(Probe::Hit(c, n as *const Node<K, V> as *mut Node<K, V>));
                }
                Ok(_) => {}
                Err(Error::Detached) => dead = true,
                Err(e) => return Err(e),
            }
        }
        Ok(Probe::Miss { dead })
    }

    /// Finds `q` without pinning. Call under the write lock.
    pub(crate) fn find_write<Q>(&self, h: u64, q: &Q, scope: &Scope) -> Result<Probe<K, V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let mut dead = false;
        for b in self.live.iter_hash(h) {
            if b.hash != h {
                continue;
            }
            let c = &*b.cell;
            if c.state.load(Ordering::Acquire) & WRITER != 0 {
                return Ok(Probe::Busy);
            }
            // SAFETY: write lock held and no `WRITER`: only shared uses of the box.
            match unsafe { c.pair() }.try_deref(scope) {
                Ok(n) if n.key.borrow() == q => {
                    return Ok(Probe::Hit(c, n as *const Node<K, V> as *mut Node<K, V>))
                }
                Ok(_) => {}
                Err(Error::Detached) => dead = true,
                Err(e) => return Err(e),
            }
        }
        Ok(Probe::Miss { dead })
    }

    /// Takes `cell`'s bucket out of the table and returns the cell.
    pub(crate) fn unlink(&mut self, h: u64, cell: *const Cell<K, V>) -> Box<Cell<K, V>> {
        match self.live.find_entry(h, |b| std::ptr::eq(&*b.cell, cell)) {
            Ok(e) => e.remove().0.cell,
            Err(_) => unreachable!("the cell was found under this lock"),
        }
    }

    /// Puts `new` in place of `old`'s bucket and returns the old cell.
    pub(crate) fn replace(
        &mut self,
        h: u64,
        old: *const Cell<K, V>,
        new: Box<Cell<K, V>>,
    ) -> Box<Cell<K, V>> {
        match self.live.find_mut(h, |b| std::ptr::eq(&*b.cell, old)) {
            Some(b) => std::mem::replace(&mut b.cell, new),
            None => unreachable!("the cell was found under this lock"),
        }
    }

    pub(crate) fn insert(&mut self, h: u64, cell: Box<Cell<K, V>>) {
        self.live
            .insert_unique(h, Bucket { hash: h, cell }, |b| b.hash);
    }

    /// Parks a cell that guards still hold until they let go; marks its node so that the
    /// evacuator drops it instead of writing it back.
    pub(crate) fn retire(&mut self, cell: Box<Cell<K, V>>, scope: &Scope) {
        // SAFETY: write lock held; the cell is out of the table and not `WRITER`-held.
        if let Ok(n) = unsafe { cell.pair() }.try_deref(scope) {
            n.flags.fetch_or(RETIRED, Ordering::AcqRel);
        }
        self.retired.push(cell);
    }

    /// Frees retired cells no guard holds any more.
    pub(crate) fn reap(&mut self) {
        if !self.retired.is_empty() {
            self.retired.retain(|c| c.guarded());
        }
    }

    /// Drops the buckets of pairs evicted to far memory (unguarded tombstones).
    pub(crate) fn sweep(&mut self) {
        // SAFETY: write lock held; unguarded cells have no references at all.
        self.live
            .retain(|b| b.cell.guarded() || unsafe { b.cell.pair() }.is_local());
    }

    /// Whether a `RefMut` holds any cell of the table.
    pub(crate) fn has_writer(&self) -> bool {
        self.live
            .iter()
            .any(|b| b.cell.state.load(Ordering::Acquire) & WRITER != 0)
    }

    /// Pairs in local memory.
    pub(crate) fn local_len(&self) -> usize {
        // SAFETY: read lock held by the caller; `is_local` only reads the slot word.
        self.live
            .iter()
            .filter(|b| unsafe { b.cell.pair() }.is_local())
            .count()
    }
}

/// One shard: its table behind a reader-writer lock, on its own cache line.
#[repr(align(64))]
pub(crate) struct Shard<K: FarData, V: FarData> {
    table: RwLock<Table<K, V>>,
}

impl<K: FarData + Eq, V: FarData> Shard<K, V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Shard {
            table: RwLock::new(Table::new(capacity)),
        }
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Table<K, V>> {
        self.table.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The write lock, with the retired cells reaped.
    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Table<K, V>> {
        let mut t = self.table.write().unwrap_or_else(|e| e.into_inner());
        t.reap();
        t
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
