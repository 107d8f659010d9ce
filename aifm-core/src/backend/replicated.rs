//! The replicated backend: far memory spread over several servers, each object on `replicas`
//! of them, so that losing a server loses nothing.
//!
//! # Placement
//!
//! Every object is given a *replica set*: the `replicas` servers with the highest
//! rendezvous (highest-random-weight) score for the object's placement key. The score of a
//! server is a mix of the placement key's hash and a per-server seed derived from the
//! server's *position* in the list, so the list order is part of the configuration: give every
//! client the same addresses in the same order. A server appended to the list takes only the
//! objects it now ranks into the top `replicas` for (about `replicas / N` of them); the other
//! objects keep their sets. (Moving objects when the list changes, and rebuilding the copies
//! a dead server held, are not done yet: a dead server's objects stay under-replicated.)
//!
//! The placement key depends on the structure:
//!
//! * **The plain object store** ([`OBJECT_STORE`], id 0) is *striped*: the key is
//!   `(ds, key)`, so the runtime's objects spread evenly over all servers.
//! * **A structure created [`Placement::Whole`]** (the default, [`Backend::construct`]) is
//!   placed *whole*: the key is `ds` alone, so one replica set holds all of the structure's
//!   objects and its remote device (see [`crate::engine`]) sees every one of them.
//!   [`Backend::compute`] therefore behaves exactly as on one server. The price is balance:
//!   a large structure fills its replica set and leaves the other servers idle.
//! * **A structure created [`Placement::Striped`]** ([`Backend::construct_placed`]) is
//!   striped like the object store: each object by `(ds, key)`. No device sees all of it;
//!   its read-only operations run per shard with [`Backend::compute_sharded`] and the caller
//!   merges the answers (see [`super::sharded`]).
//!
//! # Replication and failure
//!
//! * **Writes** (and [`Backend::write_many`], grouped per server and sent to the servers in
//!   parallel) are acknowledged only when every *live* member of each object's replica set
//!   has them.
//! * **Reads** go to the first live member of the set in rank order and fall over to the next
//!   one when a server answers [`Error::Disconnected`] or [`Error::Timeout`].
//! * **Removes** go to every live member; dead members are skipped.
//! * **`construct` / `destruct`** go to every live server, so each holds the structure.
//! * **`compute`** goes to every live member of the structure's replica set, in rank order,
//!   and the first member's answer is returned. Device operations may change the structure
//!   (a hash map's `TAKE` removes the entry it returns), so running them on one replica only
//!   would let the copies drift apart. Read-only operations pay for this with one extra
//!   execution per replica. An operation on a striped structure (the object store, id 0, or
//!   one created [`Placement::Striped`]) sees only the objects of the server that runs it.
//! * **`compute_sharded`** (read-only operations over a key list) sends each key to the first
//!   live member of its replica set, one request per server with that server's keys, all in
//!   parallel; a server that fails has its keys asked again of the next live member.
//!
//! A server that fails with `Disconnected` or `Timeout` is marked **dead for good**: it has
//! missed writes from then on, so its copies can no longer be trusted, and it is never asked
//! again. The failure is kept (see [`ReplicatedBackend::dead_servers`]) and counted in
//! [`ReplicatedBackend::stats`]. Any other error ([`Error::ServerFull`],
//! [`Error::UnknownStructure`], ...) is the server's answer, not a failure, and is returned to
//! the caller as is. When no member of an object's replica set is live, the operation returns
//! [`Error::Disconnected`].
//!
//! A refused write (`ServerFull` on one member) may leave the members disagreeing about that
//! one object; the caller still holds it and writes it again later, which heals them.
//!
//! Statistics are reached through the backend itself, so keep a handle: build the backend,
//! wrap it in an [`std::sync::Arc`], and give the runtime a clone (see the example on
//! [`ReplicatedBackend::stats`]).
//!
//! # Examples
//!
//! ```
//! use aifm_core::backend::replicated::ReplicatedBackend;
//! use aifm_core::backend::{Backend, EmbeddedBackend, OBJECT_STORE};
//! let servers: Vec<Box<dyn Backend>> = (0..3).map(|_| Box::new(EmbeddedBackend::new()) as _).collect();
//! let far = ReplicatedBackend::new(servers).unwrap();
//! assert_eq!(far.replicas(), 2);
//! far.write(OBJECT_STORE, b"k", b"v").unwrap();
//! assert_eq!(far.read(OBJECT_STORE, b"k").unwrap().as_deref(), Some(&b"v"[..]));
//! ```

use super::sharded::{run_sharded, ShardTargets};
use super::{Backend, Placement, OBJECT_STORE};
use crate::error::{Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

/// Counters of a [`ReplicatedBackend`].
///
/// # Examples
///
/// ```
/// use aifm_core::backend::replicated::ReplicatedStats;
/// let s = ReplicatedStats::default();
/// assert_eq!(s.live + s.dead, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplicatedStats {
    /// Servers still in use.
    pub live: usize,
    /// Servers marked dead after a `Disconnected` or `Timeout`.
    pub dead: usize,
    /// Reads answered while at least one member of the object's replica set was dead.
    pub degraded_reads: u64,
    /// Requests that failed on one server and were retried on another replica.
    pub failovers: u64,
}

/// Far memory on several servers with rendezvous placement and replication.
///
/// See the [module documentation](self) for placement, replication and failure handling.
///
/// # Examples
///
/// ```
/// use aifm_core::backend::replicated::ReplicatedBackend;
/// use aifm_core::backend::{Backend, EmbeddedBackend};
/// let servers: Vec<Box<dyn Backend>> = (0..4).map(|_| Box::new(EmbeddedBackend::new()) as _).collect();
/// let far = ReplicatedBackend::new(servers).unwrap().with_replicas(3);
/// assert_eq!(far.replicas(), 3);
/// assert_eq!(far.placement(0, b"some key").len(), 3);
/// ```
pub struct ReplicatedBackend {
    servers: Vec<Box<dyn Backend>>,
    seeds: Vec<u64>,
    replicas: usize,
    dead: Vec<AtomicBool>,
    reasons: Mutex<Vec<Option<Error>>>,
    degraded_reads: AtomicU64,
    failovers: AtomicU64,
    /// Structures created [`Placement::Striped`] (absent: whole; the object store is always
    /// striped).
    placements: RwLock<HashMap<u32, Placement>>,
}

impl std::fmt::Debug for ReplicatedBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicatedBackend")
            .field(
                "servers",
                &self.servers.iter().map(|s| s.name()).collect::<Vec<_>>(),
            )
            .field("replicas", &self.replicas)
            .field("stats", &self.stats())
            .finish()
    }
}

/// The 64-bit finalizer of SplitMix64: a cheap, well-mixing bijection.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// FNV-1a over `ds` and `key` (stable across runs and platforms), then mixed.
fn hash_key(ds: u32, key: Option<&[u8]>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    ds.to_le_bytes().into_iter().for_each(&mut eat);
    if let Some(key) = key {
        eat(1);
        key.iter().copied().for_each(&mut eat);
    }
    mix(h)
}

/// Whether an error means the server is gone (as opposed to the server's answer).
fn is_failure(e: &Error) -> bool {
    matches!(e, Error::Disconnected(_) | Error::Timeout)
}

/// Runs `f` on every job, the first on this thread and the rest on scoped threads.
pub(super) fn fan_out<T: Sync, R: Send>(jobs: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    match jobs {
        [] => Vec::new(),
        [one] => vec![f(one)],
        [first, rest @ ..] => std::thread::scope(|s| {
            let f = &f;
            let handles: Vec<_> = rest.iter().map(|j| s.spawn(move || f(j))).collect();
            let mut out = vec![f(first)];
            out.extend(
                handles
                    .into_iter()
                    .map(|h| h.join().expect("replica worker panicked")),
            );
            out
        }),
    }
}

impl ReplicatedBackend {
    /// Spreads far memory over `servers` with the default replication factor: 2 when more
    /// than one server is given, else 1.
    ///
    /// # Errors
    /// [`Error::Config`] when `servers` is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::replicated::ReplicatedBackend;
    /// use aifm_core::backend::{Backend, EmbeddedBackend};
    /// assert!(ReplicatedBackend::new(Vec::new()).is_err());
    /// let one: Vec<Box<dyn Backend>> = vec![Box::new(EmbeddedBackend::new())];
    /// assert_eq!(ReplicatedBackend::new(one).unwrap().replicas(), 1);
    /// ```
    pub fn new(servers: Vec<Box<dyn Backend>>) -> Result<Self> {
        if servers.is_empty() {
            return Err(Error::Config(
                "a replicated backend needs at least one server".into(),
            ));
        }
        let n = servers.len();
        Ok(ReplicatedBackend {
            seeds: (0..n as u64).map(|i| mix(i ^ 0x005e_ed0f_a1f3)).collect(),
            replicas: if n > 1 { 2 } else { 1 },
            dead: (0..n).map(|_| AtomicBool::new(false)).collect(),
            reasons: Mutex::new(vec![None; n]),
            degraded_reads: AtomicU64::new(0),
            failovers: AtomicU64::new(0),
            placements: RwLock::new(HashMap::new()),
            servers,
        })
    }

    /// Sets the replication factor, clamped to `1 ..= number of servers`.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::replicated::ReplicatedBackend;
    /// use aifm_core::backend::{Backend, EmbeddedBackend};
    /// let two: Vec<Box<dyn Backend>> = (0..2).map(|_| Box::new(EmbeddedBackend::new()) as _).collect();
    /// assert_eq!(ReplicatedBackend::new(two).unwrap().with_replicas(5).replicas(), 2);
    /// ```
    pub fn with_replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas.clamp(1, self.servers.len());
        self
    }

    /// The replication factor in use.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::replicated::ReplicatedBackend;
    /// use aifm_core::backend::{Backend, EmbeddedBackend};
    /// let three: Vec<Box<dyn Backend>> = (0..3).map(|_| Box::new(EmbeddedBackend::new()) as _).collect();
    /// assert_eq!(ReplicatedBackend::new(three).unwrap().replicas(), 2);
    /// ```
    pub fn replicas(&self) -> usize {
        self.replicas
    }

    /// The servers, in configuration order.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::replicated::ReplicatedBackend;
    /// use aifm_core::backend::{Backend, EmbeddedBackend};
    /// let two: Vec<Box<dyn Backend>> = (0..2).map(|_| Box::new(EmbeddedBackend::new()) as _).collect();
    /// assert_eq!(ReplicatedBackend::new(two).unwrap().servers().len(), 2);
    /// ```
    pub fn servers(&self) -> &[Box<dyn Backend>] {
        &self.servers
    }

    /// The replica set of object `key` of structure `ds`: server indices, best rank first.
    /// Dead servers stay in the set (their copies are simply missing).
    ///
    /// Structures other than [`OBJECT_STORE`] are placed whole unless they were created
    /// [`Placement::Striped`], so the key does not matter for them.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::replicated::ReplicatedBackend;
    /// use aifm_core::backend::{Backend, EmbeddedBackend};
    /// let five: Vec<Box<dyn Backend>> = (0..5).map(|_| Box::new(EmbeddedBackend::new()) as _).collect();
    /// let far = ReplicatedBackend::new(five).unwrap();
    /// assert_eq!(far.placement(7, b"a"), far.placement(7, b"b"));
    /// let set = far.placement(0, b"a");
    /// assert_eq!(set.len(), 2);
    /// assert_ne!(set[0], set[1]);
    /// ```
    pub fn placement(&self, ds: u32, key: &[u8]) -> Vec<usize> {
        let h = if self.is_striped(ds) {
            hash_key(ds, Some(key))
        } else {
            hash_key(ds, None)
        };
        self.rank(h)
    }

    /// How structure `ds` is placed: the object store is always striped; others as they were
    /// created ([`Backend::construct_placed`]; whole by default).
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::replicated::ReplicatedBackend;
    /// use aifm_core::backend::{Backend, EmbeddedBackend, Placement, OBJECT_STORE, OBJECT_STORE_DEVICE};
    /// let three: Vec<Box<dyn Backend>> = (0..3).map(|_| Box::new(EmbeddedBackend::new()) as _).collect();
    /// let far = ReplicatedBackend::new(three).unwrap();
    /// far.construct_placed(4, OBJECT_STORE_DEVICE, &[], Placement::Striped).unwrap();
    /// assert_eq!(far.structure_placement(4), Placement::Striped);
    /// assert_eq!(far.structure_placement(5), Placement::Whole);
    /// assert_eq!(far.structure_placement(OBJECT_STORE), Placement::Striped);
    /// ```
    pub fn structure_placement(&self, ds: u32) -> Placement {
        if self.is_striped(ds) {
            Placement::Striped
        } else {
            Placement::Whole
        }
    }

    fn is_striped(&self, ds: u32) -> bool {
        ds == OBJECT_STORE
            || self
                .placements
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(&ds)
                .is_some_and(|p| p.is_striped())
    }

    fn set_placement(&self, ds: u32, placement: Placement) {
        let mut map = self.placements.write().unwrap_or_else(|p| p.into_inner());
        match placement {
            Placement::Striped => map.insert(ds, placement),
            Placement::Whole => map.remove(&ds),
        };
    }

    /// The replica set of a whole structure (where its device operations run).
    fn structure_set(&self, ds: u32) -> Vec<usize> {
        self.rank(hash_key(ds, None))
    }

    fn rank(&self, h: u64) -> Vec<usize> {
        let mut scored: Vec<(u64, usize)> = self
            .seeds
            .iter()
            .enumerate()
            .map(|(i, seed)| (mix(h ^ seed), i))
            .collect();
        scored.sort_unstable_by(|a, b| b.cmp(a));
        scored
            .into_iter()
            .take(self.replicas)
            .map(|(_, i)| i)
            .collect()
    }

    /// Whether server `i` (configuration order) is still in use.
    ///
    /// # Panics
    /// When `i` is out of range.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::replicated::ReplicatedBackend;
    /// use aifm_core::backend::{Backend, EmbeddedBackend};
    /// let two: Vec<Box<dyn Backend>> = (0..2).map(|_| Box::new(EmbeddedBackend::new()) as _).collect();
    /// assert!(ReplicatedBackend::new(two).unwrap().is_live(1));
    /// ```
    #[track_caller]
    pub fn is_live(&self, i: usize) -> bool {
        !self.dead[i].load(Ordering::Acquire)
    }

    /// The dead servers: index, name, and the error that condemned each.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::replicated::ReplicatedBackend;
    /// use aifm_core::backend::{Backend, EmbeddedBackend};
    /// let two: Vec<Box<dyn Backend>> = (0..2).map(|_| Box::new(EmbeddedBackend::new()) as _).collect();
    /// assert!(ReplicatedBackend::new(two).unwrap().dead_servers().is_empty());
    /// ```
    pub fn dead_servers(&self) -> Vec<(usize, String, Error)> {
        let reasons = self.reasons.lock().unwrap_or_else(|p| p.into_inner());
        reasons
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.clone().map(|e| (i, self.servers[i].name(), e)))
            .collect()
    }

    /// Live and dead servers, degraded reads and failovers so far.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::replicated::ReplicatedBackend;
    /// use aifm_core::backend::{Backend, EmbeddedBackend};
    /// use std::sync::Arc;
    /// let two: Vec<Box<dyn Backend>> = (0..2).map(|_| Box::new(EmbeddedBackend::new()) as _).collect();
    /// let far = Arc::new(ReplicatedBackend::new(two).unwrap());
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).backend(far.clone()).build().unwrap();
    /// let s = far.stats();
    /// assert_eq!((s.live, s.dead, s.failovers), (2, 0, 0));
    /// # drop(rt);
    /// ```
    pub fn stats(&self) -> ReplicatedStats {
        let dead = self
            .dead
            .iter()
            .filter(|d| d.load(Ordering::Acquire))
            .count();
        ReplicatedStats {
            live: self.servers.len() - dead,
            dead,
            degraded_reads: self.degraded_reads.load(Ordering::Relaxed),
            failovers: self.failovers.load(Ordering::Relaxed),
        }
    }

    /// Marks server `i` dead, keeping the first error that condemned it.
    fn condemn(&self, i: usize, e: Error) {
        if !self.dead[i].swap(true, Ordering::AcqRel) {
            let mut reasons = self.reasons.lock().unwrap_or_else(|p| p.into_inner());
            reasons[i] = Some(e);
        }
    }

    /// The error for an object none of whose replicas is live.
    fn lost(&self, set: &[usize]) -> Error {
        let names: Vec<String> = set.iter().map(|&i| self.servers[i].name()).collect();
        Error::Disconnected(format!(
            "every replica of the object is on a dead server ({})",
            names.join(", ")
        ))
    }

    fn any_dead(&self, set: &[usize]) -> bool {
        set.iter().any(|&i| !self.is_live(i))
    }

    /// The replica sets of `keys` (computed once when the structure is placed whole).
    fn sets(&self, ds: u32, keys: impl Iterator<Item = impl AsRef<[u8]>>) -> Vec<Vec<usize>> {
        if self.is_striped(ds) {
            keys.map(|k| self.placement(ds, k.as_ref())).collect()
        } else {
            let set = self.structure_set(ds);
            keys.map(|_| set.clone()).collect()
        }
    }

    /// Groups item indices by live server (every live member of each item's set). Fails when
    /// an item has no live member.
    fn groups_all(&self, sets: &[Vec<usize>]) -> Result<Vec<(usize, Vec<usize>)>> {
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (item, set) in sets.iter().enumerate() {
            let mut any = false;
            for &s in set.iter().filter(|&&s| self.is_live(s)) {
                groups.entry(s).or_default().push(item);
                any = true;
            }
            if !any {
                return Err(self.lost(set));
            }
        }
        Ok(groups.into_iter().collect())
    }

    /// Runs `op` on every live server of `set` (rank order); returns the first success, or
    /// the first answer that is not a failure, or `lost`.
    fn on_all<T>(&self, set: &[usize], op: impl Fn(&dyn Backend) -> Result<T>) -> Result<T> {
        let mut first: Option<Result<T>> = None;
        for &s in set {
            if !self.is_live(s) {
                continue;
            }
            match op(&*self.servers[s]) {
                Err(e) if is_failure(&e) => self.condemn(s, e),
                Err(e) => return Err(e),
                Ok(v) => {
                    first.get_or_insert(Ok(v));
                }
            }
        }
        first.unwrap_or_else(|| Err(self.lost(set)))
    }
}

impl ShardTargets for ReplicatedBackend {
    fn live(&self, s: usize) -> bool {
        self.is_live(s)
    }
    fn failed(&self, s: usize, e: Error) {
        self.condemn(s, e);
        self.failovers.fetch_add(1, Ordering::Relaxed);
    }
    fn lost(&self, set: &[usize]) -> Error {
        ReplicatedBackend::lost(self, set)
    }
}

impl Backend for ReplicatedBackend {
    fn name(&self) -> String {
        let names: Vec<String> = self.servers.iter().map(|s| s.name()).collect();
        format!("replicated(x{}: {})", self.replicas, names.join(", "))
    }

    fn read(&self, ds: u32, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let set = self.placement(ds, key);
        let mut degraded = self.any_dead(&set);
        for &s in &set {
            if !self.is_live(s) {
                continue;
            }
            match self.servers[s].read(ds, key) {
                Ok(v) => {
                    if degraded {
                        self.degraded_reads.fetch_add(1, Ordering::Relaxed);
                    }
                    return Ok(v);
                }
                Err(e) if is_failure(&e) => {
                    self.condemn(s, e);
                    self.failovers.fetch_add(1, Ordering::Relaxed);
                    degraded = true;
                }
                Err(e) => return Err(e),
            }
        }
        Err(self.lost(&set))
    }

    fn write(&self, ds: u32, key: &[u8], value: &[u8]) -> Result<()> {
        self.on_all(&self.placement(ds, key), |b| b.write(ds, key, value))
    }

    fn remove(&self, ds: u32, key: &[u8]) -> Result<bool> {
        let set = self.placement(ds, key);
        let mut existed = None;
        for &s in &set {
            if !self.is_live(s) {
                continue;
            }
            match self.servers[s].remove(ds, key) {
                Err(e) if is_failure(&e) => self.condemn(s, e),
                Err(e) => return Err(e),
                Ok(b) => *existed.get_or_insert(false) |= b,
            }
        }
        existed.ok_or_else(|| self.lost(&set))
    }

    fn read_many(&self, ds: u32, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        let sets = self.sets(ds, keys.iter());
        let mut out: Vec<Option<Option<Vec<u8>>>> = vec![None; keys.len()];
        let mut pending: Vec<usize> = (0..keys.len()).collect();
        let mut failed_over = vec![false; keys.len()];
        while !pending.is_empty() {
            // Each pending key goes to the first live member of its set.
            let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
            for &k in &pending {
                match sets[k].iter().find(|&&s| self.is_live(s)) {
                    Some(&s) => groups.entry(s).or_default().push(k),
                    None => return Err(self.lost(&sets[k])),
                }
            }
            let groups: Vec<(usize, Vec<usize>)> = groups.into_iter().collect();
            let results = fan_out(&groups, |(s, ks)| {
                let ks: Vec<&[u8]> = ks.iter().map(|&k| keys[k]).collect();
                self.servers[*s].read_many(ds, &ks)
            });
            pending.clear();
            for ((s, ks), r) in groups.into_iter().zip(results) {
                match r {
                    Ok(vs) if vs.len() == ks.len() => {
                        for (k, v) in ks.into_iter().zip(vs) {
                            if failed_over[k] || self.any_dead(&sets[k]) {
                                self.degraded_reads.fetch_add(1, Ordering::Relaxed);
                            }
                            out[k] = Some(v);
                        }
                    }
                    Ok(vs) => {
                        return Err(Error::Protocol(format!(
                            "{} answered {} values for {} keys",
                            self.servers[s].name(),
                            vs.len(),
                            ks.len()
                        )))
                    }
                    Err(e) if is_failure(&e) => {
                        self.condemn(s, e);
                        self.failovers.fetch_add(1, Ordering::Relaxed);
                        for &k in &ks {
                            failed_over[k] = true;
                        }
                        pending.extend(ks);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(out.into_iter().map(|v| v.unwrap_or_default()).collect())
    }

    fn write_many(&self, ds: u32, items: &[(&[u8], &[u8])]) -> Result<()> {
        let sets = self.sets(ds, items.iter().map(|(k, _)| k));
        let groups = self.groups_all(&sets)?;
        let results = fan_out(&groups, |(s, idx)| {
            let batch: Vec<(&[u8], &[u8])> = idx.iter().map(|&i| items[i]).collect();
            self.servers[*s].write_many(ds, &batch)
        });
        let mut acked = vec![false; items.len()];
        let mut answer = None;
        for ((s, idx), r) in groups.into_iter().zip(results) {
            match r {
                Ok(()) => idx.into_iter().for_each(|i| acked[i] = true),
                Err(e) if is_failure(&e) => self.condemn(s, e),
                Err(e) => {
                    answer.get_or_insert(e);
                }
            }
        }
        if let Some(e) = answer {
            return Err(e);
        }
        match acked.iter().position(|a| !a) {
            Some(i) => Err(self.lost(&sets[i])),
            None => Ok(()),
        }
    }

    fn remove_many(&self, ds: u32, keys: &[&[u8]]) -> Result<()> {
        let sets = self.sets(ds, keys.iter());
        let groups = self.groups_all(&sets)?;
        let results = fan_out(&groups, |(s, idx)| {
            let batch: Vec<&[u8]> = idx.iter().map(|&i| keys[i]).collect();
            self.servers[*s].remove_many(ds, &batch)
        });
        let mut done = vec![false; keys.len()];
        let mut answer = None;
        for ((s, idx), r) in groups.into_iter().zip(results) {
            match r {
                Ok(()) => idx.into_iter().for_each(|i| done[i] = true),
                Err(e) if is_failure(&e) => self.condemn(s, e),
                Err(e) => {
                    answer.get_or_insert(e);
                }
            }
        }
        if let Some(e) = answer {
            return Err(e);
        }
        match done.iter().position(|d| !d) {
            Some(i) => Err(self.lost(&sets[i])),
            None => Ok(()),
        }
    }

    fn construct(&self, ds: u32, device: &str, params: &[u8]) -> Result<()> {
        self.construct_placed(ds, device, params, Placement::Whole)
    }

    /// Records the placement first (so no object of the structure is ever placed otherwise),
    /// then constructs the structure on every live server.
    fn construct_placed(
        &self,
        ds: u32,
        device: &str,
        params: &[u8],
        placement: Placement,
    ) -> Result<()> {
        // The object store is striped whatever is asked (and its servers refuse to make it).
        let record = ds != OBJECT_STORE;
        if record {
            self.set_placement(ds, placement);
        }
        let all: Vec<usize> = (0..self.servers.len()).collect();
        let r = self.on_all(&all, |b| b.construct(ds, device, params));
        if r.is_err() && record {
            self.set_placement(ds, Placement::Whole);
        }
        r
    }

    fn destruct(&self, ds: u32) -> Result<()> {
        let all: Vec<usize> = (0..self.servers.len()).collect();
        let r = self.on_all(&all, |b| b.destruct(ds));
        if ds != OBJECT_STORE {
            self.set_placement(ds, Placement::Whole);
        }
        r
    }

    /// One request per server holding some of `keys` (the first live member of each key's
    /// replica set), in parallel, with failover; see [`super::sharded`].
    fn compute_sharded(
        &self,
        ds: u32,
        opcode: u32,
        keys: &[&[u8]],
        input: &[u8],
    ) -> Result<Vec<Vec<u8>>> {
        let sets = self.sets(ds, keys.iter());
        run_sharded(self, &sets, |s, ks| {
            let mine: Vec<&[u8]> = ks.iter().map(|&k| keys[k]).collect();
            self.servers[s].compute_sharded(ds, opcode, &mine, input)
        })
    }

    fn compute(&self, ds: u32, opcode: u32, input: &[u8]) -> Result<Vec<u8>> {
        let set = self.structure_set(ds);
        let mut first: Option<Vec<u8>> = None;
        for &s in &set {
            if !self.is_live(s) {
                continue;
            }
            match self.servers[s].compute(ds, opcode, input) {
                Err(e) if is_failure(&e) => {
                    self.condemn(s, e);
                    if first.is_none() {
                        self.failovers.fetch_add(1, Ordering::Relaxed);
                    }
                }
                // The first answer decides; a later replica's refusal cannot undo it.
                Err(e) if first.is_none() => return Err(e),
                Err(_) => {}
                Ok(v) => {
                    first.get_or_insert(v);
                }
            }
        }
        first.ok_or_else(|| self.lost(&set))
    }

    /// Bytes stored on the live servers, each replica counted.
    fn stored_bytes(&self) -> u64 {
        (0..self.servers.len())
            .filter(|&i| self.is_live(i))
            .map(|i| self.servers[i].stored_bytes())
            .sum()
    }

    fn replication(&self) -> Option<ReplicatedStats> {
        Some(self.stats())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::faulty::Faulty;
    use crate::backend::EmbeddedBackend;
    use std::sync::Arc;

    /// The servers (switchable, counting requests) and direct views of each store.
    struct Rig {
        far: ReplicatedBackend,
        faults: Vec<Arc<Faulty<Arc<EmbeddedBackend>>>>,
        stores: Vec<Arc<EmbeddedBackend>>,
    }

    fn rig(n: usize, replicas: usize) -> Rig {
        let stores: Vec<Arc<EmbeddedBackend>> =
            (0..n).map(|_| Arc::new(EmbeddedBackend::new())).collect();
        let faults: Vec<_> = stores
            .iter()
            .map(|s| Arc::new(Faulty::new(s.clone())))
            .collect();
        let servers: Vec<Box<dyn Backend>> = faults
            .iter()
            .map(|f| Box::new(f.clone()) as Box<dyn Backend>)
            .collect();
        Rig {
            far: ReplicatedBackend::new(servers)
                .unwrap()
                .with_replicas(replicas),
            faults,
            stores,
        }
    }

    fn key(i: u32) -> Vec<u8> {
        i.to_le_bytes().to_vec()
    }

    #[test]
    fn placement_is_stable_distinct_and_balanced() {
        let r = rig(3, 2);
        let mut primaries = [0usize; 3];
        for i in 0..3000 {
            let set = r.far.placement(OBJECT_STORE, &key(i));
            assert_eq!(set, r.far.placement(OBJECT_STORE, &key(i)));
            assert_eq!(set.len(), 2);
            assert_ne!(set[0], set[1]);
            primaries[set[0]] += 1;
        }
        // Striping: every server is primary for a fair share (expected 1000 each).
        assert!(primaries.iter().all(|&p| p > 700), "{primaries:?}");
        // Whole-structure placement: the key does not matter.
        assert_eq!(r.far.placement(9, b"x"), r.far.placement(9, b"y"));
        // Clamping.
        assert_eq!(rig(3, 7).far.replicas(), 3);
        assert_eq!(rig(3, 0).far.replicas(), 1);
    }

    #[test]
    fn writes_reach_exactly_the_replica_set() {
        let r = rig(4, 2);
        for i in 0..200 {
            r.far.write(OBJECT_STORE, &key(i), &key(i + 1)).unwrap();
        }
        let items: Vec<(Vec<u8>, Vec<u8>)> = (200..400).map(|i| (key(i), key(i + 1))).collect();
        let refs: Vec<(&[u8], &[u8])> = items.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        r.far.write_many(OBJECT_STORE, &refs).unwrap();
        for i in 0..400 {
            let set = r.far.placement(OBJECT_STORE, &key(i));
            for (s, store) in r.stores.iter().enumerate() {
                let got = store.read(OBJECT_STORE, &key(i)).unwrap();
                if set.contains(&s) {
                    assert_eq!(got, Some(key(i + 1)), "object {i} missing on server {s}");
                } else {
                    assert_eq!(got, None, "object {i} stray on server {s}");
                }
            }
        }
    }

    #[test]
    fn reads_fail_over_and_count() {
        let r = rig(3, 2);
        for i in 0..300 {
            r.far.write(OBJECT_STORE, &key(i), &key(i * 7)).unwrap();
        }
        r.faults[1].set_down(true);
        for i in 0..300 {
            assert_eq!(r.far.read(OBJECT_STORE, &key(i)).unwrap(), Some(key(i * 7)));
        }
        let s = r.far.stats();
        assert_eq!((s.live, s.dead, s.failovers), (2, 1, 1));
        assert!(s.degraded_reads > 0);
        let dead = r.far.dead_servers();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].0, 1);
        assert!(dead[0].2.is_disconnected());
        // A dead server is never asked again.
        let before = r.faults[1].requests();
        let keys: Vec<Vec<u8>> = (0..300).map(key).collect();
        let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
        let got = r.far.read_many(OBJECT_STORE, &refs).unwrap();
        assert!(got
            .iter()
            .enumerate()
            .all(|(i, v)| *v == Some(key(i as u32 * 7))));
        r.far.write(OBJECT_STORE, b"new", b"v").unwrap();
        assert_eq!(r.faults[1].requests(), before);
    }

    #[test]
    fn read_many_fails_over_mid_batch() {
        let r = rig(3, 2);
        let keys: Vec<Vec<u8>> = (0..500).map(key).collect();
        let items: Vec<(&[u8], &[u8])> = keys.iter().map(|k| (&k[..], &k[..])).collect();
        r.far.write_many(OBJECT_STORE, &items).unwrap();
        r.faults[0].set_down(true);
        let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
        let got = r.far.read_many(OBJECT_STORE, &refs).unwrap();
        for (k, v) in keys.iter().zip(got) {
            assert_eq!(v.as_ref(), Some(k));
        }
        assert_eq!(r.far.stats().dead, 1);
        assert_eq!(r.far.stats().failovers, 1);
    }

    #[test]
    fn writes_after_a_death_go_to_the_survivors_and_are_readable() {
        let r = rig(3, 2);
        r.faults[2].set_down(true);
        for i in 0..300 {
            r.far.write(OBJECT_STORE, &key(i), &key(i)).unwrap();
        }
        for i in 0..300 {
            assert_eq!(r.far.read(OBJECT_STORE, &key(i)).unwrap(), Some(key(i)));
            assert!(r.far.remove(OBJECT_STORE, &key(i)).unwrap());
            assert_eq!(r.far.read(OBJECT_STORE, &key(i)).unwrap(), None);
        }
    }

    #[test]
    fn all_replicas_dead_is_disconnected() {
        let r = rig(3, 2);
        r.far.write(OBJECT_STORE, b"k", b"v").unwrap();
        let set = r.far.placement(OBJECT_STORE, b"k");
        for &s in &set {
            r.faults[s].set_down(true);
        }
        assert!(r
            .far
            .read(OBJECT_STORE, b"k")
            .unwrap_err()
            .is_disconnected());
        assert!(r
            .far
            .write(OBJECT_STORE, b"k", b"w")
            .unwrap_err()
            .is_disconnected());
        assert!(r
            .far
            .remove(OBJECT_STORE, b"k")
            .unwrap_err()
            .is_disconnected());
        assert!(r
            .far
            .read_many(OBJECT_STORE, &[&b"k"[..]])
            .unwrap_err()
            .is_disconnected());
        assert!(r
            .far
            .write_many(OBJECT_STORE, &[(&b"k"[..], &b"w"[..])])
            .unwrap_err()
            .is_disconnected());
        // The third server still serves the objects placed on it.
        let survivor = (0..3).find(|s| !set.contains(s)).unwrap();
        let k = (0..)
            .map(key)
            .find(|k| r.far.placement(OBJECT_STORE, k)[0] == survivor)
            .unwrap();
        r.far.write(OBJECT_STORE, &k, b"ok").unwrap();
        assert_eq!(
            r.far.read(OBJECT_STORE, &k).unwrap().as_deref(),
            Some(&b"ok"[..])
        );
    }

    #[test]
    fn server_answers_are_not_failures() {
        let r = rig(3, 2);
        let e = r.far.read(77, b"k").unwrap_err();
        assert_eq!(e, Error::UnknownStructure(77));
        assert_eq!(r.far.stats().dead, 0);
    }

    #[test]
    fn structures_live_whole_on_their_replica_set() {
        let r = rig(3, 2);
        r.far
            .construct(5, crate::backend::OBJECT_STORE_DEVICE, &[])
            .unwrap();
        for s in &r.stores {
            // Every server has the structure.
            assert_eq!(s.read(5, b"none").unwrap(), None);
        }
        for i in 0..100 {
            r.far.write(5, &key(i), b"v").unwrap();
        }
        let set = r.far.placement(5, b"");
        for (s, store) in r.stores.iter().enumerate() {
            let held = (0..100)
                .filter(|&i| store.read(5, &key(i)).unwrap().is_some())
                .count();
            assert_eq!(held, if set.contains(&s) { 100 } else { 0 });
        }
        r.faults[set[0]].set_down(true);
        for i in 0..100 {
            assert_eq!(r.far.read(5, &key(i)).unwrap().as_deref(), Some(&b"v"[..]));
        }
        r.far.destruct(5).unwrap();
        assert_eq!(
            r.stores[set[1]].read(5, b"x").unwrap_err(),
            Error::UnknownStructure(5)
        );
    }

    #[test]
    fn runtime_over_replicas_survives_a_death() {
        use crate::RemBox;
        let r = rig(3, 2);
        let far = Arc::new(r.far);
        let rt = crate::Runtime::builder()
            .local_memory(2 << 20)
            .backend(far.clone())
            .build()
            .unwrap();
        let boxes: Vec<RemBox<[u64; 64]>> =
            (0..2000u64).map(|i| RemBox::new_in([i; 64], &rt)).collect();
        rt.evacuate_now();
        assert!(rt.stats().write_backs > 0);
        r.faults[0].set_down(true);
        let mut scope = crate::Scope::new();
        for (i, b) in boxes.iter().enumerate() {
            assert!(b.deref(&scope).iter().all(|&x| x == i as u64), "object {i}");
            scope.renew();
        }
        drop(scope);
        assert_eq!(far.stats().dead, 1);
        // The runtime reports it too.
        let servers = rt
            .stats()
            .servers
            .expect("a replicated backend reports its servers");
        assert_eq!((servers.live, servers.dead), (2, 1));
        assert!(servers.degraded_reads > 0);
        assert!(rt.stats().to_string().contains("2 live, 1 dead"));
    }
}
