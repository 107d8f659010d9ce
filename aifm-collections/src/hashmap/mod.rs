//! `RemHashMap<K, V>`: a hash map whose local index is a cache of far memory.
//!
//! # Layout
//!
//! Every key-value pair is one heap object (key, value, a reader-count word and a flag byte)
//! whose pointer word is a 16-byte word in its shard's `SlotArena`: no `RemBox`, no runtime
//! slot. The map is split into [`SHARDS`] shards by the key's hash; each shard is an
//! open-addressing array of 16-byte entries (the pair's word address with 20 hash bits, and a
//! hint of where its node is with 16 more), the arena, and a mutex for writers; see the
//! `index` module. The key is hashed once: the
//! hash's high bits pick the shard, its low bits the first entry probed.
//!
//! # Sharing between threads, and guards
//!
//! All operations take `&self`; wrap the map in an `Arc` and share it. A lookup takes **no
//! lock and writes no shared cache line**: it pins the epoch (`crossbeam-epoch`, a
//! thread-local word), opens a scope (likewise), probes the array and counts itself in the
//! node it found. Inserts, removals and `get_mut` take the shard's mutex. A writer never
//! waits for readers: one that finds readers on a pair copies it (through its codec) and
//! leaves them the old one, which the epoch frees after them. A [`Ref`] or [`RefMut`] holds
//! an epoch pin (`Ref`) and its count or writer bit in the node, never a lock. So
//! the std idioms work: `m.insert(1, *m.get(&1).unwrap() + 1)`, two guards in one expression,
//! a guard held while other keys (or the same key) are written or removed. A `RefMut`
//! excludes other guards of the same key, as `&mut` does.
//!
//! A guard holds no scope either: its count or bit pins the pair, which the runtime then
//! never moves (the handler's `pinned`, see `far` and `guards`), so a guard kept for long,
//! even by a sleeping thread, holds up only its own pair, never an evacuation round.
//!
//! # Semantics the structure tells the runtime
//!
//! * **Evacuation detaches** (see the `far` module): a cold pair goes to the map's
//!   server-side device ([`device`]) under `[shard][encoded key]`, and its arena word becomes
//!   a tombstone that the next write to the shard drops.
//! * **Each pair is found in one place.** A live pair in the local index is the truth;
//!   otherwise the server's copy is. A lookup that misses locally brings the pair home in two
//!   phases (read and adopt, then remove on the server; see the `core` module), so no failure
//!   loses it. Misses skip the round trip when the shard has nothing in far memory, and are
//!   counted in the runtime's `Stats::fetches`.
//! * **It grows**, locally and on the server.
//!
//! # Why `Index` is not offered
//!
//! A reference into a pair is valid only while a scope keeps the evacuator from moving it.
//! `Index::index` returns a bare `&V` tied to `&self` alone, with nowhere to keep the scope;
//! [`RemHashMap::get`] returns a [`Ref`] that carries it.

mod asynch;
mod bulk;
pub(crate) mod client;
mod core;
pub mod device;
mod entry;
mod far;
mod guards;
mod index;
mod node;
mod ops;
mod traits;

use self::core::Core;
use crate::common::fail;
use aifm_core::{EvacuationHandler, FarData, Result, Runtime};
pub use device::DEVICE;
pub use entry::{Entry, VacantEntry};
use far::{Counts, Handler, Shared};
pub use guards::{Ref, RefMut};
use index::Shard;
use std::hash::{BuildHasher, Hash, RandomState};
use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::Arc;
pub use traits::{Iter, Keys, Values};

/// Number of shards (locks) of every map.
///
/// ```
/// assert!(aifm_collections::hashmap::SHARDS.is_power_of_two());
/// ```
pub const SHARDS: usize = 64;

/// A hash map whose pairs live in local or far memory; see the [module docs](self).
///
/// # Examples
///
/// ```
/// use aifm_collections::RemHashMap;
/// let m = RemHashMap::new();
/// m.insert("alice".to_string(), 30u32);
/// assert_eq!(m.get_cloned("alice"), Some(30));
/// *m.get_mut("alice").unwrap() += 1;
/// assert_eq!(*m.get("alice").unwrap(), 31);
/// assert_eq!(m.remove("alice"), Some(31));
/// assert!(m.is_empty());
/// ```
pub struct RemHashMap<K: FarData, V: FarData, S = RandomState> {
    core: Core<K, V>,
    shared: Arc<Shared<S>>,
}

impl<K, V> RemHashMap<K, V, RandomState>
where
    K: FarData + Hash + Eq + Clone,
    V: FarData,
{
    /// An empty map in the default runtime.
    ///
    /// # Panics
    /// If the runtime cannot register the map (all structure ids in use, or a backend
    /// without the `aifm.hashmap` device); see [`RemHashMap::try_new_in`].
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::<u64, u64>::new();
    /// assert_eq!(m.len(), 0);
    /// ```
    #[track_caller]
    pub fn new() -> Self {
        Self::new_in(Runtime::global())
    }

    /// An empty map in the default runtime with room for `capacity` local pairs in its index.
    ///
    /// # Panics
    /// As [`RemHashMap::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::<u64, u64>::with_capacity(1000);
    /// assert!(m.is_empty());
    /// ```
    #[track_caller]
    pub fn with_capacity(capacity: usize) -> Self {
        Self::with_capacity_in(capacity, Runtime::global())
    }

    /// An empty map in `runtime`.
    ///
    /// # Panics
    /// As [`RemHashMap::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let m = aifm_collections::RemHashMap::new_in(&rt);
    /// m.insert(1u8, 1u8);
    /// ```
    #[track_caller]
    pub fn new_in(runtime: &Runtime) -> Self {
        Self::with_capacity_in(0, runtime)
    }

    /// An empty map in `runtime` with room for `capacity` local pairs in its index.
    ///
    /// # Panics
    /// As [`RemHashMap::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let m = aifm_collections::RemHashMap::<u8, u8>::with_capacity_in(64, &rt);
    /// assert!(m.is_empty());
    /// ```
    #[track_caller]
    pub fn with_capacity_in(capacity: usize, runtime: &Runtime) -> Self {
        match Self::try_with_capacity_and_hasher_in(capacity, RandomState::new(), runtime) {
            Ok(m) => m,
            Err(e) => fail("RemHashMap::new_in", e),
        }
    }

    /// An empty map in `runtime`, or why it cannot be registered.
    ///
    /// # Errors
    /// As `Runtime::register_structure`.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let m = aifm_collections::RemHashMap::<u8, u8>::try_new_in(&rt).unwrap();
    /// assert!(m.is_empty());
    /// ```
    pub fn try_new_in(runtime: &Runtime) -> Result<Self> {
        Self::try_with_hasher_in(RandomState::new(), runtime)
    }

    /// A map of the pairs of `iter` in `runtime` (what `collect()` does in the default
    /// runtime; a later pair replaces an earlier one of the same key).
    ///
    /// # Panics
    /// As [`RemHashMap::new`] and [`RemHashMap::insert`].
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let m = aifm_collections::RemHashMap::from_iter_in((0..10u32).map(|i| (i, i * i)), &rt);
    /// assert_eq!(m.get_cloned(&3), Some(9));
    /// assert_eq!(m.runtime().stats().budget_bytes, 4 << 20);
    /// ```
    #[track_caller]
    pub fn from_iter_in<I: IntoIterator<Item = (K, V)>>(iter: I, runtime: &Runtime) -> Self {
        let iter = iter.into_iter();
        let m = Self::with_capacity_in(iter.size_hint().0, runtime);
        for (k, v) in iter {
            m.insert(k, v);
        }
        m
    }
}

impl<K, V, S> RemHashMap<K, V, S>
where
    K: FarData + Hash + Eq + Clone,
    V: FarData,
    S: BuildHasher + Send + Sync + 'static,
{
    /// An empty map in `runtime` hashing with `hasher`.
    ///
    /// # Errors
    /// As `Runtime::register_structure`.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let m = aifm_collections::RemHashMap::<u8, u8, _>::try_with_hasher_in(
    ///     std::hash::RandomState::new(), &rt).unwrap();
    /// m.insert(1, 1);
    /// ```
    pub fn try_with_hasher_in(hasher: S, runtime: &Runtime) -> Result<Self> {
        Self::try_with_capacity_and_hasher_in(0, hasher, runtime)
    }

    /// An empty map in `runtime` hashing with `hasher`, with room for `capacity` local pairs.
    ///
    /// # Errors
    /// As `Runtime::register_structure`.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let m = aifm_collections::RemHashMap::<u8, u8, _>::try_with_capacity_and_hasher_in(
    ///     100, std::hash::RandomState::new(), &rt).unwrap();
    /// assert!(m.is_empty());
    /// ```
    pub fn try_with_capacity_and_hasher_in(
        capacity: usize,
        hasher: S,
        runtime: &Runtime,
    ) -> Result<Self> {
        crate::ensure_devices();
        let shared = Arc::new(Shared {
            hasher,
            counts: Counts::new(),
        });
        let handler: Arc<dyn EvacuationHandler> = Arc::new(Handler::<K, V, S> {
            shared: shared.clone(),
            _types: PhantomData,
        });
        let structure = runtime.register_structure(DEVICE, &[], Some(handler))?;
        let per_shard = capacity.div_ceil(SHARDS);
        Ok(RemHashMap {
            core: Core {
                shards: (0..SHARDS)
                    .map(|_| Shard::new(per_shard, &structure))
                    .collect(),
                structure,
            },
            shared,
        })
    }

    /// The runtime the map lives in.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::<u8, u8>::new();
    /// assert_eq!(m.runtime().backend_name(), "embedded");
    /// ```
    pub fn runtime(&self) -> &Runtime {
        self.core.structure.runtime()
    }

    /// The map's hasher.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::<u8, u8>::new();
    /// let _h: &std::hash::RandomState = m.hasher();
    /// ```
    pub fn hasher(&self) -> &S {
        &self.shared.hasher
    }

    /// Number of pairs (local and remote).
    ///
    /// # Examples
    ///
    /// ```
    /// let m: aifm_collections::RemHashMap<u8, u8> = [(1, 1), (2, 2)].into_iter().collect();
    /// assert_eq!(m.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.shared.counts.len.load(Ordering::Relaxed)
    }

    /// Whether the map is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(aifm_collections::RemHashMap::<u8, u8>::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pairs currently in local memory (a snapshot).
    ///
    /// # Examples
    ///
    /// ```
    /// let m: aifm_collections::RemHashMap<u8, u8> = [(1, 1)].into_iter().collect();
    /// assert_eq!(m.local_len(), 1);
    /// ```
    pub fn local_len(&self) -> usize {
        self.core.shards.iter().map(|s| s.write().local_len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::far::shard_index;
    use super::RemHashMap;
    use aifm_core::Runtime;

    /// A key written over and over (a cache's hot key) must not lengthen its own probe: each
    /// replacement is made in place. (The first lock-free index put the new pair in a fresh
    /// entry and left the old one gone, and kv_cache's hot keys walked thousands of entries.)
    #[test]
    fn rewriting_a_key_does_not_grow_its_probe() {
        let rt = Runtime::builder().local_memory(64 << 20).build().unwrap();
        let m = RemHashMap::new_in(&rt);
        for k in 0..20_000u64 {
            m.insert(k, k);
        }
        for round in 0..20_000u64 {
            m.insert(7, round);
            if round % 2 == 0 {
                // A removal and re-insertion reuses the gone entry too.
                m.remove(&7);
                m.insert(7, round);
            }
        }
        let h = m.shared.hash(&7u64);
        let walked = m.core.shards[shard_index(h)].cluster_len(h);
        assert!(walked < 64, "the hot key's probe walks {walked} entries");
        assert_eq!(m.get_cloned(&7), Some(19_999));
        assert_eq!(m.len(), 20_000);
    }

    /// Removed and replaced pairs wait in their shard's arena only until the epoch lets their
    /// indexes go: a map whose keys are removed and re-inserted over and over keeps about as
    /// many arena objects as it has pairs, not one per write ever made.
    #[test]
    fn retired_pairs_are_freed_and_their_indexes_reused() {
        let rt = Runtime::builder().local_memory(64 << 20).build().unwrap();
        let m = RemHashMap::new_in(&rt);
        let keys = 2_000u64;
        for round in 0..50u64 {
            for k in 0..keys {
                m.insert(k, round);
            }
            for k in (0..keys).step_by(2) {
                assert_eq!(m.remove(&k), Some(round));
            }
            // Readers pin the epoch on their way, which lets it advance.
            for k in (1..keys).step_by(2) {
                assert_eq!(m.get_cloned(&k), Some(round));
            }
        }
        assert_eq!(m.len(), keys as usize / 2);
        let objects: usize = m.core.shards.iter().map(|s| s.arena_len()).sum();
        // 150,000 pairs were retired along the way.
        assert!(
            objects < 4 * keys as usize,
            "{objects} objects in the arenas for {} pairs",
            m.len()
        );
        let local = rt.stats().local_bytes as usize;
        assert!(local < 4 * keys as usize * 64, "{local} local bytes");
    }
}
