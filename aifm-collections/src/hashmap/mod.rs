//! `RemHashMap<K, V>`: a hash map whose local index is a cache of far memory.
//!
//! # Layout
//!
//! Every key-value pair is one remote object, a `RemBox<(K, V)>`. The map is split into
//! [`SHARDS`] shards by the key's hash; each shard is a `Mutex` around a local index from the
//! 64-bit hash to the pair's box (pairs whose full hashes collide wait in a small overflow
//! list). The key is hashed once: its hash picks the shard and is the index's key.
//!
//! # Semantics the structure tells the runtime
//!
//! * **Evacuation detaches.** The map registers an [`EvacuationHandler`] with its structure.
//!   When the evacuator picks a cold pair, the handler hands it back encoded for the map's
//!   server-side device (`aifm.hashmap`, in [`device`]) as `WriteBack::DetachAs` under
//!   `[shard][encoded key]`; the runtime stores it in a batch with the round's other
//!   write-backs and only then detaches it: the pair leaves the runtime's hands, and its box
//!   becomes a tombstone that the next operation on that shard drops. The handler takes no
//!   lock, so it never waits for a mutator.
//! * **Each pair lives in exactly one place.** A live box in the local index is the truth;
//!   otherwise the server's copy is. A lookup that misses locally asks the server to *take*
//!   the pair (one round trip), and the pair becomes local again. Misses skip the round trip
//!   when the shard has nothing in far memory (a per-shard count the handler bumps).
//! * **It grows.** The local index is a std `HashMap` and the server's tables grow too (the
//!   original's hopscotch table could not).
//!
//! # Sharing between threads
//!
//! All operations take `&self`; wrap the map in an `Arc` and share it. Operations lock one
//! shard (a `Mutex`), then open a scope; [`Ref`] and [`RefMut`] guards hold both, so other
//! threads wait for that shard (only) while a guard lives. Do not hold a guard while calling
//! into the same map: the shard lock is not reentrant. [`RemHashMap::iter`] and
//! [`RemHashMap::retain`] lock one shard at a time and see a consistent view of each shard.
//!
//! # Why `get` returns a guard and `Index` is not offered
//!
//! A reference into a pair is valid only while a scope keeps the evacuator from moving the
//! pair out and the shard lock keeps other threads from removing it. `Index::index` returns a
//! bare `&V` tied to `&self` alone, with nowhere to keep the scope and the lock, so it cannot be
//! offered soundly; [`RemHashMap::get`] returns a [`Ref`] that carries both.

pub mod device;
pub(crate) mod local;

use crate::common::fail;
use crate::vec::RemVec;
use aifm_core::codec::decode_serde;
use aifm_core::{
    Backend, Error, EvacuationHandler, FarData, ObjectView, RemBox, Result, Runtime, Scope,
    Structure, WriteBack,
};
pub use device::DEVICE;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Number of shards (locks) of every map.
///
/// ```
/// assert!(aifm_collections::hashmap::SHARDS.is_power_of_two());
/// ```
pub const SHARDS: usize = 64;

/// The local index is keyed by a hash already: use it as is.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ b as u64;
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Pair<K, V> = RemBox<(K, V)>;

/// A locked shard and where a key is in it.
type Found<'a, K, V> = (MutexGuard<'a, Shard<K, V>>, Option<Loc>);

struct Shard<K: FarData, V: FarData> {
    table: HashMap<u64, Pair<K, V>, BuildHasherDefault<IdHasher>>,
    /// Pairs whose full hash collides with a pair in `table`.
    overflow: Vec<(u64, Pair<K, V>)>,
}

impl<K: FarData, V: FarData> Default for Shard<K, V> {
    fn default() -> Self {
        Shard {
            table: HashMap::default(),
            overflow: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Loc {
    Main(u64),
    Over(usize),
}

impl<K: FarData, V: FarData> Shard<K, V> {
    fn get_mut(&mut self, loc: Loc) -> &mut Pair<K, V> {
        match loc {
            Loc::Main(h) => self.table.get_mut(&h).expect("located"),
            Loc::Over(i) => &mut self.overflow[i].1,
        }
    }

    fn take(&mut self, loc: Loc) -> Pair<K, V> {
        match loc {
            Loc::Main(h) => {
                let b = self.table.remove(&h).expect("located");
                if let Some(i) = self.overflow.iter().position(|(oh, _)| *oh == h) {
                    let (_, o) = self.overflow.swap_remove(i);
                    self.table.insert(h, o);
                }
                b
            }
            Loc::Over(i) => self.overflow.swap_remove(i).1,
        }
    }

    fn put(&mut self, h: u64, b: Pair<K, V>) -> Loc {
        if let std::collections::hash_map::Entry::Vacant(e) = self.table.entry(h) {
            e.insert(b);
            Loc::Main(h)
        } else {
            self.overflow.push((h, b));
            Loc::Over(self.overflow.len() - 1)
        }
    }

    /// Drops every tombstone (pair detached to far memory).
    fn sweep(&mut self) {
        let overflow = std::mem::take(&mut self.overflow);
        self.table.retain(|_, b| b.is_local());
        for (h, b) in overflow {
            if b.is_local() {
                self.put(h, b);
            }
        }
    }
}

/// State shared with the evacuation handler.
struct Shared<S> {
    hasher: S,
    /// Pairs of each shard that live in far memory.
    remote: Box<[AtomicUsize]>,
    len: AtomicUsize,
    next_key: AtomicU64,
}

impl<S: BuildHasher> Shared<S> {
    fn hash<K: Hash>(&self, k: &K) -> u64 {
        self.hasher.hash_one(k)
    }
}

fn shard_index(h: u64) -> usize {
    // The index uses the hash itself; take the shard from its high bits.
    (h >> 58) as usize % SHARDS
}

fn far_key<K: FarData>(shard: usize, k: &K) -> Result<Vec<u8>> {
    let mut out = (shard as u16).to_le_bytes().to_vec();
    k.encode(&mut out)?;
    Ok(out)
}

struct Handler<K, V, S> {
    shared: Arc<Shared<S>>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V, S> EvacuationHandler for Handler<K, V, S>
where
    K: FarData + Hash,
    V: FarData,
    S: BuildHasher + Send + Sync + 'static,
{
    fn write_back(&self, obj: &ObjectView<'_>, _far: &dyn Backend) -> Result<WriteBack> {
        let Some((k, v)) = obj.downcast::<(K, V)>() else {
            return Ok(WriteBack::Default);
        };
        let shard = shard_index(self.shared.hash(k));
        let key = far_key(shard, k)?;
        let mut value = Vec::new();
        v.encode(&mut value)?;
        // Counted before the pair lands (the runtime writes it in a batch with the round's
        // other evictions, then detaches it): a miss may ask the server needlessly, but never
        // skips a pair that is there.
        self.shared.remote[shard].fetch_add(1, Ordering::AcqRel);
        Ok(WriteBack::DetachAs { key, value })
    }
}

/// A hash map whose pairs live in local or far memory; see the [module docs](self).
///
/// # Examples
///
/// ```
/// use aifm_collections::RemHashMap;
/// let m = RemHashMap::new();
/// m.insert("alice".to_string(), 30u32);
/// assert_eq!(m.get_cloned(&"alice".to_string()), Some(30));
/// *m.get_mut(&"alice".to_string()).unwrap() += 1;
/// assert_eq!(*m.get(&"alice".to_string()).unwrap(), 31);
/// assert_eq!(m.remove(&"alice".to_string()), Some(31));
/// assert!(m.is_empty());
/// ```
pub struct RemHashMap<K: FarData, V: FarData, S = RandomState> {
    // Field order is drop order: pairs before their structure.
    shards: Box<[Mutex<Shard<K, V>>]>,
    shared: Arc<Shared<S>>,
    structure: Structure,
}

/// A shared reference to a value in a [`RemHashMap`]; holds its shard's lock and a scope.
///
/// # Examples
///
/// ```
/// let m = aifm_collections::RemHashMap::new();
/// m.insert(1u64, 2u64);
/// let r = m.get(&1).unwrap();
/// assert_eq!((*r.key(), *r), (1, 2));
/// ```
pub struct Ref<'a, K: FarData, V: FarData> {
    pair: *const (K, V),
    _scope: Scope,
    _guard: MutexGuard<'a, Shard<K, V>>,
}

/// A mutable reference to a value in a [`RemHashMap`]; holds its shard's lock and a scope.
///
/// # Examples
///
/// ```
/// let m = aifm_collections::RemHashMap::new();
/// m.insert(1u64, 2u64);
/// *m.get_mut(&1).unwrap() = 5;
/// assert_eq!(m.get_cloned(&1), Some(5));
/// ```
pub struct RefMut<'a, K: FarData, V: FarData> {
    pair: *mut (K, V),
    _scope: Scope,
    _guard: MutexGuard<'a, Shard<K, V>>,
}

impl<K: FarData, V: FarData> Ref<'_, K, V> {
    /// The key.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::new();
    /// m.insert(7u8, ());
    /// assert_eq!(*m.get(&7).unwrap().key(), 7);
    /// ```
    pub fn key(&self) -> &K {
        // SAFETY: see `Deref`.
        unsafe { &(*self.pair).0 }
    }
}

impl<K: FarData, V: FarData> std::ops::Deref for Ref<'_, K, V> {
    type Target = V;
    fn deref(&self) -> &V {
        // SAFETY: `pair` came from a dereference through `_scope`, which is still open, so the
        // evacuator cannot move or drop the pair; `_guard` holds the shard's lock, so no other
        // thread can reach (and so migrate, change or remove) the pair's box.
        unsafe { &(*self.pair).1 }
    }
}

impl<K: FarData, V: FarData> RefMut<'_, K, V> {
    /// The key.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::new();
    /// m.insert(7u8, ());
    /// assert_eq!(*m.get_mut(&7).unwrap().key(), 7);
    /// ```
    pub fn key(&self) -> &K {
        // SAFETY: see `Deref for Ref`.
        unsafe { &(*self.pair).0 }
    }
}

impl<K: FarData, V: FarData> std::ops::Deref for RefMut<'_, K, V> {
    type Target = V;
    fn deref(&self) -> &V {
        // SAFETY: as for `Ref`; the pointer came from a mutable dereference.
        unsafe { &(*self.pair).1 }
    }
}

impl<K: FarData, V: FarData> std::ops::DerefMut for RefMut<'_, K, V> {
    fn deref_mut(&mut self) -> &mut V {
        // SAFETY: as for `Ref`; the box was dereferenced mutably (so it is marked dirty) and the
        // shard lock makes this the only access path.
        unsafe { &mut (*self.pair).1 }
    }
}

impl<K: FarData + fmt::Debug, V: FarData + fmt::Debug> fmt::Debug for Ref<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Ref")
            .field(self.key())
            .field(&**self)
            .finish()
    }
}

impl<K: FarData + fmt::Debug, V: FarData + fmt::Debug> fmt::Debug for RefMut<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RefMut")
            .field(self.key())
            .field(&**self)
            .finish()
    }
}

/// A view into one key of a [`RemHashMap`] (see [`RemHashMap::entry`]).
///
/// # Examples
///
/// ```
/// let m = aifm_collections::RemHashMap::new();
/// *m.entry("word".to_string()).or_insert(0u32) += 1;
/// *m.entry("word".to_string()).or_insert(0u32) += 1;
/// assert_eq!(m.get_cloned(&"word".to_string()), Some(2));
/// ```
pub enum Entry<'a, K: FarData, V: FarData> {
    /// The key is present.
    Occupied(RefMut<'a, K, V>),
    /// The key is absent.
    Vacant(VacantEntry<'a, K, V>),
}

/// An absent key of a [`RemHashMap`], with its shard locked.
///
/// # Examples
///
/// ```
/// use aifm_collections::hashmap::Entry;
/// let m = aifm_collections::RemHashMap::<u8, u8>::new();
/// if let Entry::Vacant(v) = m.entry(3) {
///     assert_eq!(*v.key(), 3);
///     v.insert(4);
/// }
/// assert_eq!(m.get_cloned(&3), Some(4));
/// ```
pub struct VacantEntry<'a, K: FarData, V: FarData> {
    key: K,
    hash: u64,
    len: &'a AtomicUsize,
    structure: &'a Structure,
    next_key: &'a AtomicU64,
    guard: MutexGuard<'a, Shard<K, V>>,
}

impl<'a, K: FarData, V: FarData> VacantEntry<'a, K, V> {
    /// The key.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_collections::hashmap::Entry;
    /// let m = aifm_collections::RemHashMap::<u8, u8>::new();
    /// let Entry::Vacant(v) = m.entry(3) else { unreachable!() };
    /// assert_eq!(v.into_key(), 3);
    /// ```
    pub fn key(&self) -> &K {
        &self.key
    }

    /// Takes the key back.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_collections::hashmap::Entry;
    /// let m = aifm_collections::RemHashMap::<u8, u8>::new();
    /// let Entry::Vacant(v) = m.entry(9) else { unreachable!() };
    /// assert_eq!(v.into_key(), 9);
    /// ```
    pub fn into_key(self) -> K {
        self.key
    }

    /// Inserts `value` and returns a mutable reference to it.
    ///
    /// # Panics
    /// If local memory cannot take the pair.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_collections::hashmap::Entry;
    /// let m = aifm_collections::RemHashMap::<u8, u8>::new();
    /// let Entry::Vacant(v) = m.entry(1) else { unreachable!() };
    /// assert_eq!(*v.insert(2), 2);
    /// ```
    #[track_caller]
    pub fn insert(self, value: V) -> RefMut<'a, K, V> {
        let VacantEntry {
            key,
            hash,
            len,
            structure,
            next_key,
            mut guard,
        } = self;
        let id = next_key.fetch_add(1, Ordering::Relaxed);
        let b = match RemBox::new_in_structure((key, value), structure, id) {
            Ok(b) => b,
            Err(e) => fail("RemHashMap::insert", e),
        };
        let loc = guard.put(hash, b);
        len.fetch_add(1, Ordering::Relaxed);
        let scope = Scope::new();
        let pair: *mut (K, V) = guard.get_mut(loc).deref_mut(&scope);
        RefMut {
            pair,
            _scope: scope,
            _guard: guard,
        }
    }
}

impl<'a, K: FarData, V: FarData> Entry<'a, K, V> {
    /// The value, inserting `default` if the key is absent.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::new();
    /// assert_eq!(*m.entry(1u8).or_insert(5u8), 5);
    /// ```
    #[track_caller]
    pub fn or_insert(self, default: V) -> RefMut<'a, K, V> {
        match self {
            Entry::Occupied(r) => r,
            Entry::Vacant(v) => v.insert(default),
        }
    }

    /// The value, inserting `f()` if the key is absent.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::new();
    /// assert_eq!(*m.entry(1u8).or_insert_with(|| 6u8), 6);
    /// ```
    #[track_caller]
    pub fn or_insert_with(self, f: impl FnOnce() -> V) -> RefMut<'a, K, V> {
        match self {
            Entry::Occupied(r) => r,
            Entry::Vacant(v) => v.insert(f()),
        }
    }

    /// The value, inserting `V::default()` if the key is absent.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::<u8, Vec<u8>>::new();
    /// m.entry(1).or_default().push(3);
    /// assert_eq!(m.get_cloned(&1), Some(vec![3]));
    /// ```
    #[track_caller]
    pub fn or_default(self) -> RefMut<'a, K, V>
    where
        V: Default,
    {
        self.or_insert_with(V::default)
    }

    /// Calls `f` on the value if the key is present.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::new();
    /// m.insert(1u8, 1u8);
    /// assert_eq!(*m.entry(1).and_modify(|v| *v += 1).or_insert(0), 2);
    /// ```
    pub fn and_modify(mut self, f: impl FnOnce(&mut V)) -> Self {
        if let Entry::Occupied(r) = &mut self {
            f(r);
        }
        self
    }

    /// The entry's key.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::<u8, u8>::new();
    /// assert_eq!(*m.entry(4).key(), 4);
    /// ```
    pub fn key(&self) -> &K {
        match self {
            Entry::Occupied(r) => r.key(),
            Entry::Vacant(v) => v.key(),
        }
    }
}

impl<K: FarData + fmt::Debug, V: FarData + fmt::Debug> fmt::Debug for Entry<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::Occupied(r) => f.debug_tuple("Occupied").field(r).finish(),
            Entry::Vacant(v) => f.debug_tuple("Vacant").field(v.key()).finish(),
        }
    }
}

impl<K: FarData + fmt::Debug, V: FarData> fmt::Debug for VacantEntry<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("VacantEntry").field(&self.key).finish()
    }
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
        match Self::try_new_in(runtime) {
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
        crate::ensure_devices();
        let shared = Arc::new(Shared {
            hasher,
            remote: (0..SHARDS).map(|_| AtomicUsize::new(0)).collect(),
            len: AtomicUsize::new(0),
            next_key: AtomicU64::new(0),
        });
        let handler: Arc<dyn EvacuationHandler> = Arc::new(Handler::<K, V, S> {
            shared: shared.clone(),
            _types: PhantomData,
        });
        let structure = runtime.register_structure(DEVICE, &[], Some(handler))?;
        Ok(RemHashMap {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            shared,
            structure,
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
        self.structure.runtime()
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
        self.shared.len.load(Ordering::Relaxed)
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

    /// Pairs currently in local memory (a snapshot; tombstones not yet swept are excluded).
    ///
    /// # Examples
    ///
    /// ```
    /// let m: aifm_collections::RemHashMap<u8, u8> = [(1, 1)].into_iter().collect();
    /// assert_eq!(m.local_len(), 1);
    /// ```
    pub fn local_len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let s = s.lock().unwrap();
                s.table.values().filter(|b| b.is_local()).count()
                    + s.overflow.iter().filter(|(_, b)| b.is_local()).count()
            })
            .sum()
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, Shard<K, V>> {
        self.shards[shard].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Finds `k` in its locked shard, bringing it home from far memory if it lives there.
    fn locate(
        &self,
        shard: &mut Shard<K, V>,
        si: usize,
        h: u64,
        k: &K,
        scope: &Scope,
    ) -> Result<Option<Loc>> {
        if let Some(loc) = self.locate_local(shard, h, k, scope)? {
            return Ok(Some(loc));
        }
        if self.shared.remote[si].load(Ordering::Acquire) == 0 {
            return Ok(None);
        }
        let key = far_key(si, k)?;
        let got = self.structure.compute(device::TAKE, &key)?;
        match got.split_first() {
            Some((1, v)) => Ok(Some(self.adopt(shard, si, h, k.clone(), V::decode(v)?)?)),
            _ => Ok(None),
        }
    }

    /// Puts a pair just taken back from far memory into its locked shard.
    fn adopt(&self, shard: &mut Shard<K, V>, si: usize, h: u64, k: K, v: V) -> Result<Loc> {
        self.shared.remote[si].fetch_sub(1, Ordering::AcqRel);
        let id = self.shared.next_key.fetch_add(1, Ordering::Relaxed);
        let b = RemBox::new_in_structure((k, v), &self.structure, id)?;
        Ok(shard.put(h, b))
    }

    /// Finds `k` among the pairs of its locked shard that are in local memory.
    fn locate_local(
        &self,
        shard: &mut Shard<K, V>,
        h: u64,
        k: &K,
        scope: &Scope,
    ) -> Result<Option<Loc>> {
        let mut dead = false;
        let candidates = shard
            .table
            .get(&h)
            .map(|b| (Loc::Main(h), b))
            .into_iter()
            .chain(
                shard
                    .overflow
                    .iter()
                    .enumerate()
                    .filter(|(_, (oh, _))| *oh == h)
                    .map(|(i, (_, b))| (Loc::Over(i), b)),
            );
        let mut found = None;
        for (loc, b) in candidates {
            match b.try_deref(scope) {
                Ok((kk, _)) if kk == k => {
                    found = Some(loc);
                    break;
                }
                Ok(_) => {}
                Err(Error::Detached) => dead = true,
                Err(e) => return Err(e),
            }
        }
        if found.is_none() && dead {
            shard.sweep();
        }
        Ok(found)
    }

    fn find<'a>(&'a self, k: &K, scope: &Scope) -> Result<Found<'a, K, V>> {
        let h = self.shared.hash(k);
        let si = shard_index(h);
        let mut g = self.lock(si);
        let loc = self.locate(&mut g, si, h, k, scope)?;
        Ok((g, loc))
    }

    /// A guard for the value of `k`, fetching the pair from far memory if needed.
    ///
    /// # Panics
    /// If far memory fails (see [`RemHashMap::try_get`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::new();
    /// m.insert(1u32, "one".to_string());
    /// assert_eq!(m.get(&1).as_deref().map(String::as_str), Some("one"));
    /// assert!(m.get(&2).is_none());
    /// ```
    #[track_caller]
    pub fn get(&self, k: &K) -> Option<Ref<'_, K, V>> {
        match self.try_get(k) {
            Ok(r) => r,
            Err(e) => fail("RemHashMap::get", e),
        }
    }

    /// [`RemHashMap::get`], reporting far-memory failures.
    ///
    /// # Errors
    /// Backend errors, [`Error::Codec`].
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::new();
    /// m.insert(1u32, 1u32);
    /// assert_eq!(*m.try_get(&1).unwrap().unwrap(), 1);
    /// ```
    pub fn try_get(&self, k: &K) -> Result<Option<Ref<'_, K, V>>> {
        let scope = Scope::new();
        let (g, loc) = self.find(k, &scope)?;
        let Some(loc) = loc else { return Ok(None) };
        let mut g = g;
        let pair: *const (K, V) = g.get_mut(loc).try_deref(&scope)?;
        Ok(Some(Ref {
            pair,
            _scope: scope,
            _guard: g,
        }))
    }

    /// A mutable guard for the value of `k`.
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::new();
    /// m.insert(1u32, vec![1u8]);
    /// m.get_mut(&1).unwrap().push(2);
    /// assert_eq!(m.get_cloned(&1), Some(vec![1, 2]));
    /// ```
    #[track_caller]
    pub fn get_mut(&self, k: &K) -> Option<RefMut<'_, K, V>> {
        match self.try_get_mut(k) {
            Ok(r) => r,
            Err(e) => fail("RemHashMap::get_mut", e),
        }
    }

    /// [`RemHashMap::get_mut`], reporting far-memory failures.
    ///
    /// # Errors
    /// As [`RemHashMap::try_get`].
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::new();
    /// m.insert(1u32, 1u32);
    /// *m.try_get_mut(&1).unwrap().unwrap() = 3;
    /// assert_eq!(m.get_cloned(&1), Some(3));
    /// ```
    pub fn try_get_mut(&self, k: &K) -> Result<Option<RefMut<'_, K, V>>> {
        let scope = Scope::new();
        let (g, loc) = self.find(k, &scope)?;
        let Some(loc) = loc else { return Ok(None) };
        let mut g = g;
        let pair: *mut (K, V) = g.get_mut(loc).try_deref_mut(&scope)?;
        Ok(Some(RefMut {
            pair,
            _scope: scope,
            _guard: g,
        }))
    }

    /// A clone of the value of `k`.
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::new();
    /// m.insert(1u32, 1u32);
    /// assert_eq!(m.get_cloned(&1), Some(1));
    /// ```
    #[track_caller]
    pub fn get_cloned(&self, k: &K) -> Option<V>
    where
        V: Clone,
    {
        self.get(k).map(|r| (*r).clone())
    }

    /// Clones of the values of many keys, with **one** far-memory round trip for all the keys
    /// that missed locally (instead of one each): what a request that needs several lookups
    /// should use.
    ///
    /// # Panics
    /// If far memory fails (see [`RemHashMap::try_get_many_cloned`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let m: aifm_collections::RemHashMap<u32, u32> = (0..100).map(|i| (i, i * 2)).collect();
    /// assert_eq!(m.get_many_cloned(&[3, 200, 7]), [Some(6), None, Some(14)]);
    /// ```
    #[track_caller]
    pub fn get_many_cloned(&self, keys: &[K]) -> Vec<Option<V>>
    where
        V: Clone,
    {
        match self.try_get_many_cloned(keys) {
            Ok(v) => v,
            Err(e) => fail("RemHashMap::get_many_cloned", e),
        }
    }

    /// [`RemHashMap::get_many_cloned`], reporting far-memory failures.
    ///
    /// # Errors
    /// Backend errors, [`Error::Codec`].
    ///
    /// # Examples
    ///
    /// ```
    /// let m: aifm_collections::RemHashMap<u32, u32> = (0..10).map(|i| (i, i)).collect();
    /// assert_eq!(m.try_get_many_cloned(&[1, 2]).unwrap(), [Some(1), Some(2)]);
    /// ```
    pub fn try_get_many_cloned(&self, keys: &[K]) -> Result<Vec<Option<V>>>
    where
        V: Clone,
    {
        let mut out: Vec<Option<V>> = keys.iter().map(|_| None).collect();
        // (position in `keys`, shard, hash) of the keys that may be in far memory.
        let mut misses: Vec<(usize, usize, u64)> = Vec::new();
        let mut far_keys: Vec<Vec<u8>> = Vec::new();
        {
            let scope = Scope::new();
            for (i, k) in keys.iter().enumerate() {
                let h = self.shared.hash(k);
                let si = shard_index(h);
                let mut g = self.lock(si);
                match self.locate_local(&mut g, h, k, &scope)? {
                    Some(loc) => out[i] = Some(g.get_mut(loc).try_deref(&scope)?.1.clone()),
                    None if self.shared.remote[si].load(Ordering::Acquire) > 0 => {
                        misses.push((i, si, h));
                        far_keys.push(far_key(si, k)?);
                    }
                    None => {}
                }
            }
        }
        if misses.is_empty() {
            return Ok(out);
        }
        let mut request = Vec::new();
        aifm_core::codec::encode_serde(&far_keys, &mut request)?;
        let reply = self.structure.compute(device::TAKE_MANY, &request)?;
        let values: Vec<Option<Vec<u8>>> = decode_serde(&reply)?;
        if values.len() != misses.len() {
            return Err(Error::Protocol(
                "TAKE_MANY answered a different number of keys".into(),
            ));
        }
        for ((i, si, h), v) in misses.into_iter().zip(values) {
            match v {
                Some(bytes) => {
                    let v = V::decode(&bytes)?;
                    let mut g = self.lock(si);
                    self.adopt(&mut g, si, h, keys[i].clone(), v.clone())?;
                    out[i] = Some(v);
                }
                // Taken home by another thread meanwhile (or never there): ask again.
                None => out[i] = self.try_get(&keys[i])?.map(|r| (*r).clone()),
            }
        }
        Ok(out)
    }

    /// Whether `k` is in the map (asking far memory if needed).
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::new();
    /// m.insert(1u32, ());
    /// assert!(m.contains_key(&1) && !m.contains_key(&2));
    /// ```
    #[track_caller]
    pub fn contains_key(&self, k: &K) -> bool {
        match self.find(k, &Scope::new()) {
            Ok((_, loc)) => loc.is_some(),
            Err(e) => fail("RemHashMap::contains_key", e),
        }
    }

    /// Inserts a pair, returning the old value of the key if there was one.
    ///
    /// # Panics
    /// If far memory fails (see [`RemHashMap::try_insert`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::new();
    /// assert_eq!(m.insert(1u8, 'a'), None);
    /// assert_eq!(m.insert(1u8, 'b'), Some('a'));
    /// ```
    #[track_caller]
    pub fn insert(&self, k: K, v: V) -> Option<V> {
        match self.try_insert(k, v) {
            Ok(old) => old,
            Err(e) => fail("RemHashMap::insert", e),
        }
    }

    /// [`RemHashMap::insert`], reporting far-memory failures (the map is unchanged then).
    ///
    /// # Errors
    /// Backend errors; [`Error::LocalMemoryExhausted`].
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::new();
    /// assert_eq!(m.try_insert(1u8, 2u8).unwrap(), None);
    /// ```
    pub fn try_insert(&self, k: K, v: V) -> Result<Option<V>> {
        let h = self.shared.hash(&k);
        let si = shard_index(h);
        let mut g = self.lock(si);
        let scope = Scope::new();
        match self.locate(&mut g, si, h, &k, &scope)? {
            Some(loc) => {
                let pair = g.get_mut(loc).try_deref_mut(&scope)?;
                Ok(Some(std::mem::replace(&mut pair.1, v)))
            }
            None => {
                // Allocate outside the scope: it may wait for the evacuator instead of
                // overdrawing.
                drop(scope);
                let id = self.shared.next_key.fetch_add(1, Ordering::Relaxed);
                let b = RemBox::new_in_structure((k, v), &self.structure, id)?;
                g.put(h, b);
                self.shared.len.fetch_add(1, Ordering::Relaxed);
                Ok(None)
            }
        }
    }

    /// Removes `k`, returning its value.
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::new();
    /// m.insert(1u8, 2u8);
    /// assert_eq!(m.remove(&1), Some(2));
    /// assert_eq!(m.remove(&1), None);
    /// ```
    #[track_caller]
    pub fn remove(&self, k: &K) -> Option<V> {
        match self.try_remove(k) {
            Ok(v) => v,
            Err(e) => fail("RemHashMap::remove", e),
        }
    }

    /// [`RemHashMap::remove`], reporting far-memory failures.
    ///
    /// # Errors
    /// Backend errors.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::<u8, u8>::new();
    /// assert_eq!(m.try_remove(&1).unwrap(), None);
    /// ```
    pub fn try_remove(&self, k: &K) -> Result<Option<V>> {
        let (mut g, loc) = self.find(k, &Scope::new())?;
        let Some(loc) = loc else { return Ok(None) };
        let b = g.take(loc);
        self.shared.len.fetch_sub(1, Ordering::Relaxed);
        match b.try_into_inner() {
            Ok((_, v)) => Ok(Some(v)),
            Err((e, b)) => {
                g.put(self.shared.hash(k), b);
                self.shared.len.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// The entry of `k`, for in-place manipulation; locks `k`'s shard until it is dropped.
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::new();
    /// for w in "a b a".split(' ') {
    ///     *m.entry(w.to_string()).or_insert(0u32) += 1;
    /// }
    /// assert_eq!(m.get_cloned(&"a".to_string()), Some(2));
    /// ```
    #[track_caller]
    pub fn entry(&self, k: K) -> Entry<'_, K, V> {
        let h = self.shared.hash(&k);
        let si = shard_index(h);
        let mut g = self.lock(si);
        let scope = Scope::new();
        match self.locate(&mut g, si, h, &k, &scope) {
            Ok(Some(loc)) => {
                let pair: *mut (K, V) = g.get_mut(loc).deref_mut(&scope);
                Entry::Occupied(RefMut {
                    pair,
                    _scope: scope,
                    _guard: g,
                })
            }
            Ok(None) => Entry::Vacant(VacantEntry {
                key: k,
                hash: h,
                len: &self.shared.len,
                structure: &self.structure,
                next_key: &self.shared.next_key,
                guard: g,
            }),
            Err(e) => fail("RemHashMap::entry", e),
        }
    }

    /// The far-memory pairs of shard `si` (its lock held by the caller).
    fn scan(&self, si: usize) -> Result<Vec<(K, V)>> {
        if self.shared.remote[si].load(Ordering::Acquire) == 0 {
            return Ok(Vec::new());
        }
        let out = self
            .structure
            .compute(device::SCAN, &(si as u16).to_le_bytes())?;
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = decode_serde(&out)?;
        pairs
            .into_iter()
            .map(|(k, v)| Ok((K::decode(&k[2..])?, V::decode(&v)?)))
            .collect()
    }

    /// Every pair, cloned, shard by shard (each shard's view is consistent; pairs inserted
    /// into other shards meanwhile may or may not be seen).
    ///
    /// # Panics
    /// The iterator panics if far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let m: aifm_collections::RemHashMap<u8, u8> = (0..10).map(|i| (i, i * 2)).collect();
    /// let mut all: Vec<_> = m.iter().collect();
    /// all.sort();
    /// assert_eq!(all[9], (9, 18));
    /// ```
    pub fn iter(&self) -> Iter<'_, K, V, S>
    where
        V: Clone,
    {
        Iter {
            map: self,
            shard: 0,
            buf: Vec::new().into_iter(),
        }
    }

    fn shard_pairs(&self, si: usize) -> Result<Vec<(K, V)>>
    where
        V: Clone,
    {
        let mut g = self.lock(si);
        g.sweep();
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        {
            let mut scope = Scope::new();
            for (n, b) in g
                .table
                .values()
                .chain(g.overflow.iter().map(|(_, b)| b))
                .enumerate()
            {
                match b.try_deref(&scope) {
                    Ok((k, v)) => {
                        seen.insert(far_key(si, k)?);
                        out.push((k.clone(), v.clone()));
                    }
                    Err(Error::Detached) => {}
                    Err(e) => return Err(e),
                }
                if n % 256 == 255 {
                    scope.renew();
                }
            }
        }
        // Pairs evicted while we looked appear in both halves: keep the local copy.
        for (k, v) in self.scan(si)? {
            if !seen.contains(&far_key(si, &k)?) {
                out.push((k, v));
            }
        }
        Ok(out)
    }

    /// Keeps the pairs for which `keep` is true (it may also change the value). Far pairs
    /// are decoded, judged and written back (or removed) one shard at a time.
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let m: aifm_collections::RemHashMap<u8, u8> = (0..10).map(|i| (i, i)).collect();
    /// m.retain(|k, v| { *v += 1; k % 2 == 0 });
    /// assert_eq!(m.len(), 5);
    /// assert_eq!(m.get_cloned(&4), Some(5));
    /// ```
    #[track_caller]
    pub fn retain(&self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        for si in 0..SHARDS {
            if let Err(e) = self.retain_shard(si, &mut keep) {
                fail("RemHashMap::retain", e)
            }
        }
    }

    fn retain_shard(&self, si: usize, keep: &mut impl FnMut(&K, &mut V) -> bool) -> Result<()> {
        let ds = self.structure.id();
        let mut g = self.lock(si);
        g.sweep();
        // One scope over the local pass and the scan: a pair judged locally cannot be evicted
        // (and so appear in the scan) until the scope ends; one evicted before we reached it
        // fails with `Detached` here and is judged from the scan instead.
        let scope = Scope::new();
        let mut dropped = 0;
        let old_table = std::mem::take(&mut g.table);
        let old_over = std::mem::take(&mut g.overflow);
        for (h, mut b) in old_table.into_iter().chain(old_over) {
            match b.try_deref_mut(&scope) {
                Ok((k, v)) => {
                    if keep(k, v) {
                        g.put(h, b);
                    } else {
                        dropped += 1;
                    }
                }
                Err(Error::Detached) => {}
                Err(e) => {
                    g.put(h, b);
                    return Err(e);
                }
            }
        }
        let backend = self.structure.backend();
        for (k, mut v) in self.scan(si)? {
            let key = far_key(si, &k)?;
            if keep(&k, &mut v) {
                let mut bytes = Vec::new();
                v.encode(&mut bytes)?;
                backend.write(ds, &key, &bytes)?;
            } else {
                backend.remove(ds, &key)?;
                self.shared.remote[si].fetch_sub(1, Ordering::AcqRel);
                dropped += 1;
            }
        }
        drop(scope);
        self.shared.len.fetch_sub(dropped, Ordering::Relaxed);
        Ok(())
    }

    /// Removes every pair.
    ///
    /// # Examples
    ///
    /// ```
    /// let m: aifm_collections::RemHashMap<u8, u8> = (0..10).map(|i| (i, i)).collect();
    /// m.clear();
    /// assert!(m.is_empty() && m.get(&1).is_none());
    /// ```
    pub fn clear(&self) {
        let guards: Vec<_> = (0..SHARDS).map(|si| self.lock(si)).collect();
        for mut g in guards {
            g.table.clear();
            g.overflow.clear();
        }
        let _ = self.structure.compute(device::CLEAR, &[]);
        for r in self.shared.remote.iter() {
            r.store(0, Ordering::Release);
        }
        self.shared.len.store(0, Ordering::Relaxed);
    }

    /// Removes every pair and returns them (moved into a [`RemVec`] in the same runtime
    /// first, so a large drain stays in far memory).
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let m: aifm_collections::RemHashMap<u8, u8> = (0..3).map(|i| (i, i)).collect();
    /// let mut d: Vec<_> = m.drain().collect();
    /// d.sort();
    /// assert_eq!(d, [(0, 0), (1, 1), (2, 2)]);
    /// assert!(m.is_empty());
    /// ```
    #[track_caller]
    pub fn drain(&self) -> crate::vec::IntoIter<(K, V)> {
        let mut out = RemVec::new_in(self.runtime());
        for si in 0..SHARDS {
            if let Err(e) = self.drain_shard(si, &mut out) {
                fail("RemHashMap::drain", e)
            }
        }
        out.into_iter()
    }

    fn drain_shard(&self, si: usize, out: &mut RemVec<(K, V)>) -> Result<()> {
        let mut g = self.lock(si);
        let table = std::mem::take(&mut g.table);
        let over = std::mem::take(&mut g.overflow);
        let mut n = 0;
        for (_, b) in table.into_iter().chain(over) {
            match b.try_into_inner() {
                Ok(p) => {
                    out.try_push(p)?;
                    n += 1;
                }
                // Evicted meanwhile: the scan below finds it.
                Err((Error::Detached, _)) => {}
                Err((e, _)) => return Err(e),
            }
        }
        // Nothing of this shard is local any more, so nothing more can be evicted into it.
        for p in self.scan(si)? {
            out.try_push(p)?;
            n += 1;
        }
        self.structure
            .compute(device::CLEAR_SHARD, &(si as u16).to_le_bytes())?;
        self.shared.remote[si].store(0, Ordering::Release);
        self.shared.len.fetch_sub(n, Ordering::Relaxed);
        Ok(())
    }
}

/// Iterator over clones of a [`RemHashMap`]'s pairs; see [`RemHashMap::iter`].
///
/// ```
/// let m: aifm_collections::RemHashMap<u8, u8> = [(1, 2)].into_iter().collect();
/// assert_eq!(m.iter().next(), Some((1, 2)));
/// ```
pub struct Iter<'a, K: FarData, V: FarData, S> {
    map: &'a RemHashMap<K, V, S>,
    shard: usize,
    buf: std::vec::IntoIter<(K, V)>,
}

impl<K, V, S> Iterator for Iter<'_, K, V, S>
where
    K: FarData + Hash + Eq + Clone,
    V: FarData + Clone,
    S: BuildHasher + Send + Sync + 'static,
{
    type Item = (K, V);

    #[track_caller]
    fn next(&mut self) -> Option<(K, V)> {
        loop {
            if let Some(p) = self.buf.next() {
                return Some(p);
            }
            if self.shard == SHARDS {
                return None;
            }
            match self.map.shard_pairs(self.shard) {
                Ok(v) => self.buf = v.into_iter(),
                Err(e) => fail("RemHashMap::iter", e),
            }
            self.shard += 1;
        }
    }
}

impl<K: FarData, V: FarData, S> std::iter::FusedIterator for Iter<'_, K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher + Send + Sync + 'static,
{
}

impl<K: FarData, V: FarData, S> fmt::Debug for Iter<'_, K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter").field("shard", &self.shard).finish()
    }
}

impl<'a, K, V, S> IntoIterator for &'a RemHashMap<K, V, S>
where
    K: FarData + Hash + Eq + Clone,
    V: FarData + Clone,
    S: BuildHasher + Send + Sync + 'static,
{
    type Item = (K, V);
    type IntoIter = Iter<'a, K, V, S>;
    fn into_iter(self) -> Iter<'a, K, V, S> {
        self.iter()
    }
}

impl<K, V, S> IntoIterator for RemHashMap<K, V, S>
where
    K: FarData + Hash + Eq + Clone,
    V: FarData,
    S: BuildHasher + Send + Sync + 'static,
{
    type Item = (K, V);
    type IntoIter = crate::vec::IntoIter<(K, V)>;
    /// Drains the map (see [`RemHashMap::drain`]).
    fn into_iter(self) -> Self::IntoIter {
        self.drain()
    }
}

impl<K, V> Default for RemHashMap<K, V, RandomState>
where
    K: FarData + Hash + Eq + Clone,
    V: FarData,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V, S> fmt::Debug for RemHashMap<K, V, S>
where
    K: FarData + Hash + Eq + Clone + fmt::Debug,
    V: FarData + Clone + fmt::Debug,
    S: BuildHasher + Send + Sync + 'static,
{
    /// Lists every pair (fetching far ones), like `HashMap`'s `Debug`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K, V, S> Clone for RemHashMap<K, V, S>
where
    K: FarData + Hash + Eq + Clone,
    V: FarData + Clone,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    /// Copies every pair into a new map in the same runtime.
    fn clone(&self) -> Self {
        let out = match Self::try_with_hasher_in(self.shared.hasher.clone(), self.runtime()) {
            Ok(m) => m,
            Err(e) => fail("RemHashMap::clone", e),
        };
        for (k, v) in self.iter() {
            out.insert(k, v);
        }
        out
    }
}

impl<K, V, S> PartialEq for RemHashMap<K, V, S>
where
    K: FarData + Hash + Eq + Clone,
    V: FarData + Clone + PartialEq,
    S: BuildHasher + Send + Sync + 'static,
{
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .all(|(k, v)| other.get(&k).is_some_and(|r| *r == v))
    }
}

impl<K, V, S> Extend<(K, V)> for RemHashMap<K, V, S>
where
    K: FarData + Hash + Eq + Clone,
    V: FarData,
    S: BuildHasher + Send + Sync + 'static,
{
    #[track_caller]
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl<K, V> FromIterator<(K, V)> for RemHashMap<K, V, RandomState>
where
    K: FarData + Hash + Eq + Clone,
    V: FarData,
{
    #[track_caller]
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut m = RemHashMap::new();
        m.extend(iter);
        m
    }
}

/// Serializes as a map of all pairs, local and remote (as `HashMap` does).
#[cfg(feature = "serde")]
impl<K, V, S> serde::Serialize for RemHashMap<K, V, S>
where
    K: FarData + Hash + Eq + Clone + serde::Serialize,
    V: FarData + Clone + serde::Serialize,
    S: BuildHasher + Send + Sync + 'static,
{
    fn serialize<Se: serde::Serializer>(&self, s: Se) -> std::result::Result<Se::Ok, Se::Error> {
        use serde::ser::SerializeMap;
        let pairs: Vec<(K, V)> = self.iter().collect(); // a consistent length for the header
        let mut map = s.serialize_map(Some(pairs.len()))?;
        pairs
            .iter()
            .try_for_each(|(k, v)| map.serialize_entry(k, v))?;
        map.end()
    }
}

/// Deserializes a map into a new `RemHashMap` in the default runtime.
#[cfg(feature = "serde")]
impl<'de, K, V> serde::Deserialize<'de> for RemHashMap<K, V, RandomState>
where
    K: FarData + Hash + Eq + Clone + serde::Deserialize<'de>,
    V: FarData + serde::Deserialize<'de>,
{
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(HashMap::<K, V>::deserialize(d)?.into_iter().collect())
    }
}
