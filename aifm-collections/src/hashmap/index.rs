//! The local index of one `RemHashMap` shard: an open-addressing array that readers probe
//! with no lock, the arena of the shard's pairs, and the pair nodes with their reader counts.
//!
//! # The pairs: an arena per shard
//!
//! Each pair is one heap object (a [`Node`]) whose pointer word lives in the shard's
//! [`SlotArena`], owned under the shard's mutex: no `RemBox`, no runtime slot and no handle
//! per pair, only a 16-byte arena word (its index is the arena's business; the far key is the
//! pair's own key, see the `far` module). Readers never look at the arena itself (its segment
//! table grows under `&mut`): the index holds each pair's word *address*, which stays put for
//! as long as the runtime lives, and readers dereference it as a [`WordRef`].
//!
//! # The array
//!
//! A power-of-two array of 16-byte entries, probed linearly from the hash's low bits. An
//! entry's first word is the pair's word address (shifted right by 4; slots are 16-aligned
//! below 2^48) with the hash's low 20 bits above it; its *hint* word is where the node was
//! when the entry was filled, with 16 more hash bits above it. [`EMPTY`] and [`GONE`] are
//! first words no pair can have. A probe compares the 36 kept hash bits before it touches a
//! pair, and a rebuild recomputes every entry's home position from them (arrays are capped at
//! 2^36 entries). A hit costs three dependent loads: the entry, the pair's pointer word and
//! the node; the last two overlap, because the probe prefetches the node at the hinted address
//! while it loads the pointer word (a hint made stale by the evacuator costs a wasted
//! prefetch, never a wrong read; without it `get` took 1.2x as long). A replacement swaps the
//! pair in place, and an insertion reuses a `GONE` entry of its probe, so a key written over
//! and over does not grow its probe (a hot key of a cache is). The array is replaced (never
//! resized in place) when live and gone entries fill three quarters of it; the old array is
//! freed by `crossbeam-epoch` once no reader that could see it is pinned. (At seven eighths,
//! the bytes per entry fell only for some sizes and a lookup of an absent key walks about
//! four times as far, so the bound stays at three quarters.)
//!
//! # Who writes what (the rules the `unsafe` code relies on)
//!
//! * **Writers hold the shard's mutex** ([`Shard::write`]); readers hold none. Only a
//!   writer stores an entry, swaps the array, or allocates or frees in the arena.
//! * **Both words of an entry are atomics**, so a reader may load an entry while a writer
//!   refills it. A writer stores the hint word, then the first word (release); a reader loads
//!   the first word (acquire), then the hint, and whatever pair the first word names is alive
//!   (next rule) and is checked by its key, so a reader that meets an entry refilled for
//!   another key just moves on (the hint word, possibly of a newer fill, only filters and
//!   prefetches: a newer fill of the same entry for another key means ours was removed).
//! * **A pair taken out of the index keeps its arena index until the epoch has passed**:
//!   [`Writer::retire`] marks it and, when the writer is done, hands its index to
//!   `crossbeam-epoch`, whose deferred function (run once every thread pinned before has
//!   unpinned) only puts the index on the shard's reclaim list; the next writer frees the
//!   object there and the index goes back to the arena. Readers (and [`Ref`](super::Ref)
//!   guards) are pinned, so the word and the node they reach stay allocated, and the word is
//!   not reused for another pair, while they look. A shard dropped with indexes still waiting
//!   frees them with its arena (no reader is left), and the late deferred functions push to a
//!   list nobody reads.
//! * **Values are guarded by the node's `state` word**: a reader count and two bits.
//!   A reader is admitted by incrementing the count and backs off if [`WRITER`] or [`DEAD`]
//!   was set; a writer claims a node with a compare-exchange from zero (no readers) to
//!   `WRITER` or `DEAD`. One atomic word, so either the reader sees the bit or the writer sees
//!   the reader. A writer that finds readers leaves them the node: it copies the value
//!   (through its codec) instead of moving it out or writing it in place.
//! * **The key is never written after construction**, so readers compare keys before being
//!   admitted, even on a node being removed.
//! * The evacuator moves a node only while no scope that dereferenced it is open (the
//!   runtime's scope protocol) and no guard pins it: every access above happens inside such a
//!   scope, or while a guard's reader count or `WRITER` bit pins the node (see `guards`).
//!
//! The nodes themselves, their flags and state bits, are in the `node` module.

use super::node::READERS;
pub(crate) use writer::Writer;
mod writer;

pub(crate) use super::node::{codec_copy, Node, DEAD, FAR_COPY, PENDING, RETIRED, WRITER};
use aifm_core::arena::{SlotArena, WordRef};
use aifm_core::sync::MutexExt;
use aifm_core::{Error, FarData, Result, Scope, Structure};
use crossbeam_epoch::{self as epoch, Atomic, Guard, Owned};
use smallvec::SmallVec;
use std::borrow::Borrow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// A pair's pointer word in its shard's arena, as the index holds it.
pub(crate) type Pair<K, V> = WordRef<Node<K, V>>;

/// The bits of an `EMPTY` entry's first word.
const EMPTY: u64 = 0;
/// The bits of a `GONE` entry's first word (a word address of 16 is impossible).
const GONE: u64 = 1;
/// Where the first word keeps the hash's low bits.
const LOW_SHIFT: u32 = 44;
/// The word-address bits of the first word (the address shifted right by 4).
const WORD_BITS: u64 = (1 << LOW_SHIFT) - 1;
/// Where the hint word keeps the hash's middle bits.
const MID_SHIFT: u32 = 48;
/// The hash bits an entry keeps: 20 low ones in the first word, 16 more in the hint word.
const LOW: u64 = (1 << (64 - LOW_SHIFT)) - 1;
const MID: u64 = (1 << (64 - MID_SHIFT)) - 1;
/// The node-address bits of the hint word.
const HINT_BITS: u64 = (1 << MID_SHIFT) - 1;
/// The largest array whose home positions the kept hash bits can recompute.
const MAX_ENTRIES: usize = 1 << (64 - LOW_SHIFT + 64 - MID_SHIFT);

/// The first word of an entry for pair `p` of hash `h`.
fn pack(h: u64, p: Pair<impl FarData, impl FarData>) -> u64 {
    let a = p.addr() as u64;
    debug_assert!(a >> 48 == 0 && a % 16 == 0 && a >= 4096);
    ((h & LOW) << LOW_SHIFT) | (a >> 4)
}

/// The hint word of an entry for hash `h` whose node is at `at`.
fn pack_hint<K, V>(h: u64, at: *const Node<K, V>) -> u64 {
    (((h >> 20) & MID) << MID_SHIFT) | (at as u64 & HINT_BITS)
}

/// Whether first word `x` (not `EMPTY`) holds a pair of hash `h`, on its low bits.
#[inline(always)]
fn low_match(x: u64, h: u64) -> bool {
    x >> LOW_SHIFT == h & LOW && x > GONE
}

/// Whether hint word `y` is of hash `h`, on its middle bits.
#[inline(always)]
fn mid_match(y: u64, h: u64) -> bool {
    y >> MID_SHIFT == (h >> 20) & MID
}

/// The pair of a live first word.
///
/// # Safety
/// `x` is a live first word of a shard's array (it came from [`pack`] of a word of the
/// shard's arena, whose runtime the map keeps alive).
#[inline(always)]
unsafe fn unpack<K: FarData, V: FarData>(x: u64) -> Pair<K, V> {
    // SAFETY: per the contract, the bits are a word address of an arena of nodes.
    unsafe { WordRef::from_addr(((x & WORD_BITS) << 4) as usize) }
}

/// The hash bits an entry keeps (the low 36), from its two words.
fn kept_hash(x: u64, y: u64) -> u64 {
    ((y >> MID_SHIFT) << 20) | (x >> LOW_SHIFT)
}

/// One entry of the array, 16 bytes: its first word holds the pair's pointer-word address
/// and the hash's low 20 bits, its hint word where the node was when the entry was filled
/// (only ever prefetched, never dereferenced: the evacuator may have moved the node since)
/// and 16 more bits of the hash. Both are atomics: a writer may refill an entry (a
/// replacement in place, or a `GONE` entry reused) while a reader that loaded it still looks.
struct Entry {
    word: AtomicU64,
    hint: AtomicU64,
}

const _: () = assert!(std::mem::size_of::<Entry>() == 16);

/// Starts loading the cache line at `p` (any address: a prefetch never faults).
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of the x86_64 baseline, and a prefetch reads no memory the
    // program can observe and never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// A shard's array. It owns nothing but its entries: the pairs are the shard's arena's.
struct Array {
    entries: Box<[Entry]>,
}

impl Array {
    fn new(capacity: usize) -> Self {
        let n = capacity.max(8).next_power_of_two().min(MAX_ENTRIES);
        Array {
            entries: (0..n)
                .map(|_| Entry {
                    word: AtomicU64::new(EMPTY),
                    hint: AtomicU64::new(0),
                })
                .collect(),
        }
    }

    fn mask(&self) -> usize {
        self.entries.len() - 1
    }

    /// Fills entry `i` with first word `x` and hint word `y`, in the order a reader relies on:
    /// hint first, first word last (release). The caller holds the mutex, and the entry is
    /// `EMPTY` or `GONE`.
    fn fill(&self, i: usize, x: u64, y: u64) {
        let e = &self.entries[i];
        e.hint.store(y, Ordering::Relaxed);
        e.word.store(x, Ordering::Release);
    }

    /// Places an entry of hash `h` at the first free entry of its probe (an `EMPTY` one, or a
    /// `GONE` one if `reuse`); whether it used an `EMPTY` entry, and where.
    fn place(&self, h: u64, x: u64, y: u64, reuse: bool) -> (bool, usize) {
        let mask = self.mask();
        let mut i = h as usize & mask;
        loop {
            let old = self.entries[i].word.load(Ordering::Relaxed);
            if old == EMPTY || (reuse && old == GONE) {
                self.fill(i, x, y);
                return (old == EMPTY, i);
            }
            i = (i + 1) & mask;
        }
    }
}

/// What a probe found.
pub(crate) enum Probe<K, V> {
    /// The key's entry and its node, dereferenced through the probe's scope; a read probe
    /// has been admitted as a reader of the node.
    Hit(usize, *const Node<K, V>),
    /// Not here; `dead` if entries of the same hash were tombstones (pairs evicted away).
    Miss { dead: bool },
    /// A writer holds the node of this key (a `RefMut`, or a removal in progress): back off.
    Busy,
}

/// The shard's bookkeeping and its arena, under its mutex.
pub(crate) struct Meta<K: FarData, V: FarData> {
    /// Entries holding a pair (live pairs and tombstones of evicted ones).
    live: usize,
    /// `live` plus the `GONE` entries.
    used: usize,
    /// The pairs' pointer words: those in the index, pending ones not yet in it, and
    /// retired ones waiting for the epoch.
    arena: SlotArena<Node<K, V>>,
}

/// Arena indexes of retired pairs whose epoch has passed: no reader can reach them any more,
/// so the next writer frees them and their indexes go back to the arena.
#[derive(Default)]
struct Reclaim {
    any: AtomicBool,
    list: Mutex<Vec<usize>>,
}

impl Reclaim {
    fn push(&self, indexes: &[usize]) {
        self.list.locked().extend_from_slice(indexes);
        self.any.store(true, Ordering::Release);
    }
}

/// One shard: its current array, the writers' mutex (with the arena) and the reclaim list.
/// Readers only load the array pointer from it.
#[repr(align(64))]
pub(crate) struct Shard<K: FarData, V: FarData> {
    array: Atomic<Array>,
    lock: Mutex<Meta<K, V>>,
    reclaim: Arc<Reclaim>,
}

// SAFETY: the array is reached as the module's rules allow: readers only read entries and
// the pairs published to them, writers serialise on the mutex; the pairs are shared between
// threads by guards, hence `K` and `V` must be `Send + Sync` (`FarData` implies `Send`).
unsafe impl<K: FarData + Sync, V: FarData + Sync> Sync for Shard<K, V> {}

/// Finds `q` in `a`; `admit` admits the caller as a reader of a hit.
///
/// # Safety
/// `a` is the shard's array loaded by a thread still pinned (or holding the mutex).
unsafe fn probe<K, V, Q>(
    a: &Array,
    h: u64,
    q: &Q,
    scope: &Scope,
    admit: bool,
) -> Result<Probe<K, V>>
where
    K: FarData + Borrow<Q>,
    V: FarData,
    Q: Eq + ?Sized,
{
    let mask = a.mask();
    let mut i = h as usize & mask;
    let mut dead = false;
    for _ in 0..=mask {
        let e = &a.entries[i];
        let x = e.word.load(Ordering::Acquire);
        if x == EMPTY {
            break;
        }
        if low_match(x, h) {
            let y = e.hint.load(Ordering::Relaxed);
            if mid_match(y, h) {
                // The node's line loads while the pointer word does (two misses overlap).
                prefetch((y & HINT_BITS) as *const u8);
                // SAFETY: a live first word, loaded with acquire after the entry was filled.
                let pair = unsafe { unpack::<K, V>(x) };
                // SAFETY: whatever pair the entry held when loaded keeps its object while we
                // are pinned (or hold the mutex): a pair taken out of the index is retired,
                // and its index is freed only once the epoch has passed every thread pinned
                // before. No `&mut` to a node exists (values are in `UnsafeCell`s).
                match unsafe { pair.deref(scope) } {
                    Ok(n) if n.key.borrow() == q => {
                        if admit {
                            let s = n.state.fetch_add(1, Ordering::Acquire);
                            if s & (WRITER | DEAD) != 0 {
                                n.state.fetch_sub(1, Ordering::Release);
                                return Ok(Probe::Busy);
                            }
                        } else if n.state.load(Ordering::Acquire) & (WRITER | DEAD) != 0 {
                            return Ok(Probe::Busy);
                        }
                        return Ok(Probe::Hit(i, n));
                    }
                    Ok(_) => {}
                    Err(Error::Detached) => dead = true,
                    Err(e) => return Err(e),
                }
            }
        }
        i = (i + 1) & mask;
    }
    Ok(Probe::Miss { dead })
}

impl<K: FarData + Eq, V: FarData> Shard<K, V> {
    pub(crate) fn new(capacity: usize, structure: &Structure) -> Self {
        Shard {
            array: Atomic::new(Array::new(capacity * 2)),
            lock: Mutex::new(Meta {
                live: 0,
                used: 0,
                arena: SlotArena::new(structure),
            }),
            reclaim: Arc::default(),
        }
    }

    /// Finds `q` with no lock and, on a hit, admits the caller as a reader of the node (it
    /// must decrement `state` when done). `guard` must stay pinned while the node is used.
    pub(crate) fn find_read<Q>(
        &self,
        h: u64,
        q: &Q,
        scope: &Scope,
        guard: &Guard,
    ) -> Result<Probe<K, V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let a = self.array.load(Ordering::Acquire, guard);
        // SAFETY: never null (set at construction, swapped only for another array), and
        // freed only through the epoch, which `guard` pins.
        let a = unsafe { a.deref() };
        // SAFETY: loaded just now under `guard`.
        unsafe { probe(a, h, q, scope, true) }
    }

    /// Starts loading what a lookup of hash `h` will touch, for a batch of lookups to
    /// overlap their misses: at `stage` 0 the first entry of the probe, at stage 1 (once
    /// that has arrived) the pair's pointer word and the hinted node.
    pub(crate) fn prefetch(&self, h: u64, stage: u8, guard: &Guard) {
        // SAFETY: as in `find_read`.
        let a = unsafe { self.array.load(Ordering::Acquire, guard).deref() };
        let e = &a.entries[h as usize & a.mask()];
        if stage == 0 {
            prefetch(e);
        } else {
            let x = e.word.load(Ordering::Relaxed);
            if low_match(x, h) {
                // Addresses only; a prefetch of any address is harmless.
                prefetch(((x & WORD_BITS) << 4) as *const u8);
                prefetch((e.hint.load(Ordering::Relaxed) & HINT_BITS) as *const u8);
            }
        }
    }

    /// The writers' mutex. Frees the pairs whose retirement the epoch has let through first.
    pub(crate) fn write(&self) -> Writer<'_, K, V> {
        let mut w = Writer {
            meta: self.lock.locked(),
            shard: self,
            pin: None,
            retired: SmallVec::new(),
        };
        if self.reclaim.any.load(Ordering::Acquire) {
            w.reclaim();
        }
        w
    }
}

impl<K: FarData, V: FarData> Drop for Shard<K, V> {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no reader or writer is left, and the array was never shared
        // beyond this shard. It owns no pair: the arena (dropped after this) frees them all,
        // retired ones included; reclaims the epoch runs later only push to a list no one
        // reads.
        drop(unsafe {
            std::mem::replace(&mut self.array, Atomic::null())
                .into_owned()
                .into_box()
        });
    }
}

#[cfg(test)]
impl<K: FarData + Eq, V: FarData> Shard<K, V> {
    /// Objects in the shard's arena: pairs in the index, plus retired ones not yet freed.
    pub(crate) fn arena_len(&self) -> usize {
        self.write().meta.arena.len()
    }

    /// Entries a lookup of `h` walks before it may stop (the cluster from its first entry
    /// to the next `EMPTY`).
    pub(crate) fn cluster_len(&self, h: u64) -> usize {
        let w = self.write();
        let a = w.array();
        let mask = a.mask();
        let mut i = h as usize & mask;
        let mut n = 0;
        while n <= mask && a.entries[i].word.load(Ordering::Relaxed) != EMPTY {
            n += 1;
            i = (i + 1) & mask;
        }
        n
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
