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
//! objects keep their sets. (Moving objects when the list grows is not done; a dead server's
//! copies are rebuilt on a replacement at the same position, see below.)
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
//! * **Writes** (and [`Backend::write_many`], grouped per server) are acknowledged only when
//!   every *live* member of each object's replica set has them.
//! * **Batches** (`read_many`, `write_many`, `remove_many`) that span several servers are
//!   pipelined, not threaded: every server's piece is started with
//!   [`Backend::begin_read_many`] (and its siblings), which a networked backend sends at
//!   once, and only then are the answers awaited, in order, on the calling thread. The
//!   mutation gate is held until every answer is in.
//! * **Reads** go to the first live member of the set in rank order and fall over to the next
//!   one when a server answers [`Error::Disconnected`] or [`Error::Timeout`]. A replacement
//!   still being rebuilt is skipped.
//! * **Removes** go to every live member; dead members are skipped.
//! * **`construct` / `destruct`** go to every live server, so each holds the structure.
//! * **`compute`** goes to every live member of the structure's replica set, in rank order,
//!   and the first member's answer is returned (a replacement still being rebuilt runs it
//!   too, but its answer is ignored). Device operations may change the structure
//!   (a hash map's `TAKE` removes the entry it returns), so running them on one replica only
//!   would let the copies drift apart. Read-only operations pay for this with one extra
//!   execution per replica. An operation on a striped structure (the object store, id 0, or
//!   one created [`Placement::Striped`]) sees only the objects of the server that runs it.
//! * **`compute_sharded`** (read-only operations over a key list) sends each key to the first
//!   readable member of its replica set, one request per server with that server's keys, all
//!   sent before any answer is awaited; a server that fails has its keys asked again of the next readable member.
//!
//! A server that fails with `Disconnected` or `Timeout` is marked **dead for good**: it has
//! missed writes from then on, so its copies can no longer be trusted, and it is never asked
//! again (until replaced, see below). The failure is kept (see [`ReplicatedBackend::dead_servers`]) and counted in
//! [`ReplicatedBackend::stats`]. Any other error ([`Error::ServerFull`],
//! [`Error::UnknownStructure`], ...) is the server's answer, not a failure, and is returned to
//! the caller as is. When no member of an object's replica set is live, the operation returns
//! [`Error::Disconnected`].
//!
//! A refused write (`ServerFull` on one member) may leave the members disagreeing about that
//! one object; the caller still holds it and writes it again later, which heals them.
//!
//! Condemning a server is logged (`tracing` at level `warn`: the server, the error, how many
//! servers remain).
//!
//! # Erasure coding of the object store
//!
//! [`ReplicatedBackend::with_erasure`]`(k, m)` stores the plain object store ([`OBJECT_STORE`])
//! erasure-coded instead of replicated: each object as `k` data and `m` Reed-Solomon parity
//! fragments, fragment `i` on the `i`-th of the object's `k + m` top-ranked servers. Any `k`
//! fragments give the object back, so `m` servers may die, for `(k + m) / k` times the
//! objects' bytes in far memory (1.5 with `k = 2, m = 1`, against 2 for replication 2). Reads
//! wait for `k` servers (asked at once, data fragments first); writes are acknowledged when
//! every holder in use has its fragment. Every other structure, striped or whole, keeps
//! `replicas` whole copies, since its device computes on whole objects. Details and
//! trade-offs: the `erasure` and `fragment` modules (private; see docs/TRANSPORT.md).
//!
//! # Rebuilding a dead server's copies
//!
//! Until something is done, a dead server's objects have one copy fewer. A new, empty server
//! can take its place with [`ReplicatedBackend::replace_server`]: it takes the dead server's
//! *position* (so no object changes its replica set), gets every live structure constructed
//! (the backend remembers each constructed structure's device type and parameters), takes
//! every write, remove and compute at once, and serves reads only once a background thread
//! has copied to it every object whose replica set contains its position, in batches, from
//! the live servers (found with [`Backend::keys`]). A rebuild batch never overwrites a newer
//! value or brings back a removed object: mutations and batches exclude each other through
//! a sharded reader-writer gate, and a listed key the survivors no longer hold is removed on
//! the replacement. [`ReplicatedBackend::wait_rebuilt`] waits for the end;
//! [`ReplicatedStats`] counts servers being rebuilt, objects and bytes copied; start, end
//! and failure are logged (`info`, `info`, `error`). A replacement that fails during its
//! rebuild is condemned like any server, and may itself be replaced.
//!
//! [`Backend::keys`] on this backend is the union of the live servers' listings.
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
use super::{Backend, ComputeInFlight, InFlight, ManyInFlight, Placement, OBJECT_STORE};
use crate::error::{Error, Result};
use crossbeam_utils::sync::{ShardedLockReadGuard, ShardedLockWriteGuard};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};

mod erasure;
mod fragment;
mod rebuild;

/// Counters of a [`ReplicatedBackend`].
///
/// `live + rebuilding + dead` is the number of servers.
///
/// # Examples
///
/// ```
/// use aifm_core::backend::replicated::ReplicatedStats;
/// let s = ReplicatedStats::default();
/// assert_eq!(s.live + s.rebuilding + s.dead, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplicatedStats {
    /// Servers in full use (reads and writes).
    pub live: usize,
    /// Replacement servers still being rebuilt: they take writes, not reads.
    pub rebuilding: usize,
    /// Servers marked dead after a `Disconnected` or `Timeout` (or a failed rebuild).
    pub dead: usize,
    /// Reads answered while at least one member of the object's replica set (or, when
    /// erasure-coded, of its data fragment holders) was dead or still being rebuilt, or
    /// failed during the read.
    pub degraded_reads: u64,
    /// Requests that failed on one server and were retried on another replica.
    pub failovers: u64,
    /// Replacement servers installed with [`ReplicatedBackend::replace_server`].
    pub replaced: u64,
    /// Objects copied to replacement servers so far.
    pub rebuilt_objects: u64,
    /// Bytes (values, or fragments when the object store is erasure-coded) copied to
    /// replacement servers so far.
    pub rebuilt_bytes: u64,
    /// Objects a rebuild could not copy because no live server held them any more.
    pub unrecoverable_objects: u64,
}

/// What a server is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reads and writes.
    Live,
    /// A replacement being rebuilt: writes, removes and computes, no reads.
    Rebuilding,
    /// Never asked again (until replaced).
    Dead,
}

/// One position of the server list. A replacement takes the position of a dead server and
/// a new epoch, so that a late failure report about the old server cannot condemn it.
struct Slot {
    server: Arc<dyn Backend>,
    epoch: u64,
    state: State,
}

/// A snapshot of one slot, taken when a request picks its servers.
#[derive(Clone)]
struct Member {
    index: usize,
    server: Arc<dyn Backend>,
    epoch: u64,
    state: State,
}

/// Far memory on several servers with rendezvous placement and replication.
///
/// See the [module documentation](self) for placement, replication, failure handling and
/// rebuilding.
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
    slots: Vec<RwLock<Slot>>,
    seeds: Vec<u64>,
    replicas: usize,
    /// Why each dead server was condemned. Every change of a slot's state happens under
    /// this lock (taken before the slot's), and is announced on `changed`.
    reasons: Mutex<Vec<Option<Error>>>,
    changed: Condvar,
    degraded_reads: AtomicU64,
    failovers: AtomicU64,
    /// The structures constructed and not destructed (id → device type, parameters): a
    /// replacement server gets each of them before it takes any request.
    structures: Mutex<BTreeMap<u32, (String, Vec<u8>)>>,
    /// Rebuild gate and progress counters (see the `rebuild` module).
    rebuild: rebuild::Progress,
    /// Structures created [`Placement::Striped`] (absent: whole; the object store is always
    /// striped).
    placements: RwLock<HashMap<u32, Placement>>,
    /// The erasure code of the object store, when it is erasure-coded (see the `erasure`
    /// module).
    erasure: Option<fragment::Code>,
    /// The next write id of an erasure-coded write.
    writes: AtomicU64,
}

impl std::fmt::Debug for ReplicatedBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicatedBackend")
            .field(
                "servers",
                &self.servers().iter().map(|s| s.name()).collect::<Vec<_>>(),
            )
            .field("replicas", &self.replicas)
            .field("erasure", &self.erasure())
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

/// A write id to start from: different for every backend made, so that the fragments of two
/// clients' writes are not taken for one write's (each backend then counts up from it).
fn first_write_id() -> u64 {
    static MADE: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let salt = u64::from(std::process::id()) << 32 ^ MADE.fetch_add(1, Ordering::Relaxed);
    // Far from wrapping around: 2^62 writes of room.
    mix(nanos ^ mix(salt)) >> 2
}

/// Whether an error means the server is gone (as opposed to the server's answer).
fn is_failure(e: &Error) -> bool {
    matches!(e, Error::Disconnected(_) | Error::Timeout)
}

/// The outcome of reading a batch from the live servers: per key, `None` when no live
/// server holds a copy, else what the server answered.
type LiveReads = Vec<Option<Option<Vec<u8>>>>;

/// One server's part of a batched read: the member asked, the key indices, its answer.
type GroupRead = (Member, Vec<usize>, Result<Vec<Option<Vec<u8>>>>);

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
            slots: servers
                .into_iter()
                .map(|server| {
                    RwLock::new(Slot {
                        server: Arc::from(server),
                        epoch: 0,
                        state: State::Live,
                    })
                })
                .collect(),
            reasons: Mutex::new(vec![None; n]),
            changed: Condvar::new(),
            degraded_reads: AtomicU64::new(0),
            failovers: AtomicU64::new(0),
            structures: Mutex::new(BTreeMap::new()),
            rebuild: rebuild::Progress::default(),
            placements: RwLock::new(HashMap::new()),
            erasure: None,
            writes: AtomicU64::new(first_write_id()),
        })
    }

    /// Erasure-codes the plain object store ([`OBJECT_STORE`]) instead of replicating it:
    /// each object is cut into `data` fragments plus `parity` Reed-Solomon parity fragments,
    /// one on each of the `data + parity` top-ranked servers of the object, so that any
    /// `data` of them give it back and `parity` servers may die. Far memory holds
    /// `(data + parity) / data` times the objects' bytes (plus a 20-byte header per
    /// fragment) instead of `replicas` times. Every other structure keeps
    /// [`ReplicatedBackend::replicas`] whole copies: its device needs whole objects. See
    /// the [module documentation](self#erasure-coding-of-the-object-store).
    ///
    /// # Errors
    /// [`Error::Config`] unless `data >= 1`, `parity >= 1` and `data + parity` is at most
    /// the number of servers (and 255).
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::replicated::ReplicatedBackend;
    /// use aifm_core::backend::{Backend, EmbeddedBackend, OBJECT_STORE};
    /// let three = || (0..3).map(|_| Box::new(EmbeddedBackend::new()) as Box<dyn Backend>).collect();
    /// let far = ReplicatedBackend::new(three()).unwrap().with_erasure(2, 1).unwrap();
    /// assert_eq!(far.erasure(), Some((2, 1)));
    /// assert_eq!(far.placement(OBJECT_STORE, b"k").len(), 3);
    /// far.write(OBJECT_STORE, b"k", &[7u8; 4096]).unwrap();
    /// assert_eq!(far.read(OBJECT_STORE, b"k").unwrap().unwrap(), vec![7u8; 4096]);
    /// assert!(far.stored_bytes() < 2 * 4096); // 1.5x, where replication 2 stores 2x
    /// assert!(ReplicatedBackend::new(three()).unwrap().with_erasure(3, 1).is_err());
    /// ```
    pub fn with_erasure(mut self, data: usize, parity: usize) -> Result<Self> {
        let code = fragment::Code::new(data, parity)?;
        if code.total() > self.slots.len() {
            return Err(Error::Config(format!(
                "erasure coding {data}+{parity} needs {} servers, {} are given",
                code.total(),
                self.slots.len()
            )));
        }
        self.erasure = Some(code);
        Ok(self)
    }

    /// The erasure code of the object store, `(data, parity)`, when it is erasure-coded
    /// ([`ReplicatedBackend::with_erasure`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::replicated::ReplicatedBackend;
    /// use aifm_core::backend::{Backend, EmbeddedBackend};
    /// let two: Vec<Box<dyn Backend>> = (0..2).map(|_| Box::new(EmbeddedBackend::new()) as _).collect();
    /// assert_eq!(ReplicatedBackend::new(two).unwrap().erasure(), None);
    /// ```
    pub fn erasure(&self) -> Option<(usize, usize)> {
        self.erasure.as_ref().map(|c| (c.data, c.parity))
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
        self.replicas = replicas.clamp(1, self.slots.len());
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

    /// The servers, in configuration order (a replaced server's position holds its
    /// replacement).
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::replicated::ReplicatedBackend;
    /// use aifm_core::backend::{Backend, EmbeddedBackend};
    /// let two: Vec<Box<dyn Backend>> = (0..2).map(|_| Box::new(EmbeddedBackend::new()) as _).collect();
    /// assert_eq!(ReplicatedBackend::new(two).unwrap().servers().len(), 2);
    /// ```
    pub fn servers(&self) -> Vec<Arc<dyn Backend>> {
        (0..self.slots.len())
            .map(|i| self.member(i).server)
            .collect()
    }

    /// The replica set of object `key` of structure `ds`: server indices, best rank first.
    /// Dead servers stay in the set (their copies are simply missing). When the object store
    /// is erasure-coded ([`ReplicatedBackend::with_erasure`]), its objects' sets are their
    /// `k + m` fragment holders, fragment `i` on the `i`-th.
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
        if self.is_striped(ds) {
            self.object_set(ds, key)
        } else {
            self.structure_set(ds)
        }
    }

    /// The set of object `key` of a striped structure: its replicas, or its `k + m` fragment
    /// holders when the structure is erasure-coded.
    fn object_set(&self, ds: u32, key: &[u8]) -> Vec<usize> {
        let count = self
            .code_for(ds)
            .map_or(self.replicas, fragment::Code::total);
        self.rank(hash_key(ds, Some(key)), count)
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
                .unwrap_or_else(PoisonError::into_inner)
                .get(&ds)
                .is_some_and(|p| p.is_striped())
    }

    fn set_placement(&self, ds: u32, placement: Placement) {
        let mut map = self
            .placements
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match placement {
            Placement::Striped => map.insert(ds, placement),
            Placement::Whole => map.remove(&ds),
        };
    }

    /// The replica set of a whole structure (where its device operations run).
    fn structure_set(&self, ds: u32) -> Vec<usize> {
        self.rank(hash_key(ds, None), self.replicas)
    }

    /// The `count` servers of highest rendezvous score for hash `h`, best first.
    fn rank(&self, h: u64, count: usize) -> Vec<usize> {
        let mut scored: Vec<(u64, usize)> = self
            .seeds
            .iter()
            .enumerate()
            .map(|(i, seed)| (mix(h ^ seed), i))
            .collect();
        scored.sort_unstable_by(|a, b| b.cmp(a));
        scored.into_iter().take(count).map(|(_, i)| i).collect()
    }

    /// Whether server `i` (configuration order) is still in use: serving, or a replacement
    /// being rebuilt.
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
        self.state(i) != State::Dead
    }

    /// Whether server `i` is a replacement still being rebuilt (it takes writes, not reads).
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
    /// assert!(!ReplicatedBackend::new(two).unwrap().is_rebuilding(0));
    /// ```
    #[track_caller]
    pub fn is_rebuilding(&self, i: usize) -> bool {
        self.state(i) == State::Rebuilding
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
        let reasons = self.reasons();
        reasons
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.clone().map(|e| (i, self.member(i).server.name(), e)))
            .collect()
    }

    /// Live, rebuilding and dead servers, degraded reads, failovers and rebuild progress.
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
    /// assert_eq!((s.live, s.dead, s.failovers, s.rebuilding), (2, 0, 0, 0));
    /// # drop(rt);
    /// ```
    pub fn stats(&self) -> ReplicatedStats {
        let states: Vec<State> = (0..self.slots.len()).map(|i| self.state(i)).collect();
        let count = |s: State| states.iter().filter(|&&x| x == s).count();
        let p = &self.rebuild;
        ReplicatedStats {
            live: count(State::Live),
            rebuilding: count(State::Rebuilding),
            dead: count(State::Dead),
            degraded_reads: self.degraded_reads.load(Ordering::Relaxed),
            failovers: self.failovers.load(Ordering::Relaxed),
            replaced: p.replaced.load(Ordering::Relaxed),
            rebuilt_objects: p.objects.load(Ordering::Relaxed),
            rebuilt_bytes: p.bytes.load(Ordering::Relaxed),
            unrecoverable_objects: p.unrecoverable.load(Ordering::Relaxed),
        }
    }

    fn reasons(&self) -> MutexGuard<'_, Vec<Option<Error>>> {
        self.reasons.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A snapshot of server `i`.
    #[track_caller]
    fn member(&self, i: usize) -> Member {
        let slot = self.slots[i].read().unwrap_or_else(PoisonError::into_inner);
        Member {
            index: i,
            server: slot.server.clone(),
            epoch: slot.epoch,
            state: slot.state,
        }
    }

    #[track_caller]
    fn state(&self, i: usize) -> State {
        self.slots[i]
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .state
    }

    fn readable(&self, i: usize) -> bool {
        self.state(i) == State::Live
    }

    /// Held shared by every operation that changes far memory (writes, removes, computes,
    /// construct / destruct), exclusively by a rebuild batch (see the `rebuild` module).
    fn mutation(&self) -> ShardedLockReadGuard<'_, ()> {
        self.rebuild
            .gate
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn exclusive(&self) -> ShardedLockWriteGuard<'_, ()> {
        self.rebuild
            .gate
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks the server `m` was taken from dead, keeping the first error that condemned
    /// it; nothing happens if its position was replaced since.
    fn condemn(&self, m: &Member, e: Error) {
        let mut reasons = self.reasons();
        {
            let mut slot = self.slots[m.index]
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if slot.epoch != m.epoch || slot.state == State::Dead {
                return;
            }
            slot.state = State::Dead;
        }
        let remaining = (0..self.slots.len()).filter(|&i| self.is_live(i)).count();
        tracing::warn!(
            server = %m.server.name(),
            index = m.index,
            error = %e,
            remaining,
            "far-memory server condemned: it will not be asked again ({remaining} of {} servers remain)",
            self.slots.len()
        );
        reasons[m.index] = Some(e);
        drop(reasons);
        self.changed.notify_all();
    }

    /// The error for an object none of whose replicas is live.
    fn lost(&self, set: &[usize]) -> Error {
        let names: Vec<String> = set.iter().map(|&i| self.member(i).server.name()).collect();
        Error::Disconnected(format!(
            "every replica of the object is on a dead server ({})",
            names.join(", ")
        ))
    }

    /// Whether some member of `set` cannot serve reads.
    fn any_unreadable(&self, set: &[usize]) -> bool {
        set.iter().any(|&i| !self.readable(i))
    }

    /// The replica sets of `keys` (computed once when the structure is placed whole).
    fn sets(&self, ds: u32, keys: impl Iterator<Item = impl AsRef<[u8]>>) -> Vec<Vec<usize>> {
        if self.is_striped(ds) {
            keys.map(|k| self.object_set(ds, k.as_ref())).collect()
        } else {
            let set = self.structure_set(ds);
            keys.map(|_| set.clone()).collect()
        }
    }

    /// Groups item indices by server in use (every live or rebuilding member of each item's
    /// set). Fails when an item has no such member.
    fn groups_all(&self, sets: &[Vec<usize>]) -> Result<Vec<(Member, Vec<usize>)>> {
        let members: Vec<Member> = (0..self.slots.len()).map(|i| self.member(i)).collect();
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (item, set) in sets.iter().enumerate() {
            let mut any = false;
            for &s in set.iter().filter(|&&s| members[s].state != State::Dead) {
                groups.entry(s).or_default().push(item);
                any = true;
            }
            if !any {
                return Err(self.lost(set));
            }
        }
        Ok(groups
            .into_iter()
            .map(|(s, items)| (members[s].clone(), items))
            .collect())
    }

    /// Runs `op` on every server of `set` in use (rank order); returns the first success, or
    /// the first answer that is not a failure, or `lost`.
    fn on_all<T>(&self, set: &[usize], op: impl Fn(&dyn Backend) -> Result<T>) -> Result<T> {
        let mut first: Option<Result<T>> = None;
        for &s in set {
            let m = self.member(s);
            if m.state == State::Dead {
                continue;
            }
            match op(&*m.server) {
                Err(e) if is_failure(&e) => self.condemn(&m, e),
                Err(e) => return Err(e),
                Ok(v) => {
                    first.get_or_insert(Ok(v));
                }
            }
        }
        first.unwrap_or_else(|| Err(self.lost(set)))
    }

    /// Reads `keys` (whose replica sets are `sets`), each from the first live member of its
    /// set, failing over to the next member when a server fails. Returns the values (`None`
    /// for a key no live server holds) and which keys failed over.
    ///
    /// # Errors
    /// A server's answer that is not a failure.
    /// Reads each group's keys (`groups`: server index → indices into `keys`) from that
    /// member, every request sent before the first answer is awaited. Each group comes back
    /// with its answer, whose length matches the group's.
    ///
    /// # Errors
    /// [`Error::Protocol`] when a server answers a different number of values than it was
    /// asked for.
    fn read_groups(
        &self,
        ds: u32,
        keys: &[&[u8]],
        groups: BTreeMap<usize, Vec<usize>>,
        members: &[Member],
    ) -> Result<Vec<GroupRead>> {
        let started: Vec<(Member, Vec<usize>, ManyInFlight)> = groups
            .into_iter()
            .map(|(s, ks)| {
                let m = members[s].clone();
                let asked: Vec<&[u8]> = ks.iter().map(|&k| keys[k]).collect();
                let call = m.server.begin_read_many(ds, &asked);
                (m, ks, call)
            })
            .collect();
        started
            .into_iter()
            .map(|(m, ks, call)| match call.wait() {
                Ok(vs) if vs.len() != ks.len() => Err(Error::Protocol(format!(
                    "{} answered {} values for {} keys",
                    m.server.name(),
                    vs.len(),
                    ks.len()
                ))),
                r => Ok((m, ks, r)),
            })
            .collect()
    }

    fn read_live(
        &self,
        ds: u32,
        keys: &[&[u8]],
        sets: &[Vec<usize>],
    ) -> Result<(LiveReads, Vec<bool>)> {
        let mut out: Vec<Option<Option<Vec<u8>>>> = vec![None; keys.len()];
        let mut pending: Vec<usize> = (0..keys.len()).collect();
        let mut failed_over = vec![false; keys.len()];
        while !pending.is_empty() {
            // Each pending key goes to the first live member of its set.
            let members: Vec<Member> = (0..self.slots.len()).map(|i| self.member(i)).collect();
            let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
            for &k in &pending {
                if let Some(&s) = sets[k].iter().find(|&&s| members[s].state == State::Live) {
                    groups.entry(s).or_default().push(k);
                }
            }
            pending.clear();
            for (m, ks, r) in self.read_groups(ds, keys, groups, &members)? {
                match r {
                    Ok(vs) => {
                        for (k, v) in ks.into_iter().zip(vs) {
                            out[k] = Some(v);
                        }
                    }
                    Err(e) if is_failure(&e) => {
                        self.condemn(&m, e);
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
        Ok((out, failed_over))
    }
}

/// The members as one sharded request found them: a failure condemns the server that was
/// asked, never a replacement installed since.
struct Snapshot<'a> {
    far: &'a ReplicatedBackend,
    members: Vec<Member>,
}

impl ShardTargets for Snapshot<'_> {
    fn live(&self, s: usize) -> bool {
        self.members[s].state == State::Live && self.far.readable(s)
    }
    fn failed(&self, s: usize, e: Error) {
        self.far.condemn(&self.members[s], e);
        self.far.failovers.fetch_add(1, Ordering::Relaxed);
    }
    fn lost(&self, set: &[usize]) -> Error {
        self.far.lost(set)
    }
}

impl Backend for ReplicatedBackend {
    fn name(&self) -> String {
        let names: Vec<String> = self.servers().iter().map(|s| s.name()).collect();
        match &self.erasure {
            Some(c) => format!(
                "replicated(x{}, erasure {}+{}: {})",
                self.replicas,
                c.data,
                c.parity,
                names.join(", ")
            ),
            None => format!("replicated(x{}: {})", self.replicas, names.join(", ")),
        }
    }

    fn read(&self, ds: u32, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(code) = self.code_for(ds) {
            return self.ec_read(code, key);
        }
        let set = self.placement(ds, key);
        let mut degraded = self.any_unreadable(&set);
        for &s in &set {
            let m = self.member(s);
            if m.state != State::Live {
                continue;
            }
            match m.server.read(ds, key) {
                Ok(v) => {
                    if degraded {
                        self.degraded_reads.fetch_add(1, Ordering::Relaxed);
                    }
                    return Ok(v);
                }
                Err(e) if is_failure(&e) => {
                    self.condemn(&m, e);
                    self.failovers.fetch_add(1, Ordering::Relaxed);
                    degraded = true;
                }
                Err(e) => return Err(e),
            }
        }
        Err(self.lost(&set))
    }

    fn write(&self, ds: u32, key: &[u8], value: &[u8]) -> Result<()> {
        if let Some(code) = self.code_for(ds) {
            return self.ec_write(code, key, value);
        }
        let _gate = self.mutation();
        self.on_all(&self.placement(ds, key), |b| b.write(ds, key, value))
    }

    /// Whether the object existed, as the live members say (a replacement being rebuilt may
    /// not have its copy yet).
    fn remove(&self, ds: u32, key: &[u8]) -> Result<bool> {
        let _gate = self.mutation();
        let set = self.placement(ds, key);
        let (mut live, mut rebuilding) = (None, None);
        for &s in &set {
            let m = self.member(s);
            let existed = match m.state {
                State::Dead => continue,
                State::Live => &mut live,
                State::Rebuilding => &mut rebuilding,
            };
            match m.server.remove(ds, key) {
                Err(e) if is_failure(&e) => self.condemn(&m, e),
                Err(e) => return Err(e),
                Ok(b) => *existed.get_or_insert(false) |= b,
            }
        }
        live.or(rebuilding).ok_or_else(|| self.lost(&set))
    }

    fn read_many(&self, ds: u32, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        if let Some(code) = self.code_for(ds) {
            return self.ec_read_many(code, keys);
        }
        let sets = self.sets(ds, keys.iter());
        let (out, failed_over) = self.read_live(ds, keys, &sets)?;
        let mut values = Vec::with_capacity(keys.len());
        for (k, v) in out.into_iter().enumerate() {
            let Some(v) = v else {
                return Err(self.lost(&sets[k]));
            };
            if failed_over[k] || self.any_unreadable(&sets[k]) {
                self.degraded_reads.fetch_add(1, Ordering::Relaxed);
            }
            values.push(v);
        }
        Ok(values)
    }

    fn write_many(&self, ds: u32, items: &[(&[u8], &[u8])]) -> Result<()> {
        if let Some(code) = self.code_for(ds) {
            return self.ec_write_many(code, items);
        }
        let _gate = self.mutation();
        let sets = self.sets(ds, items.iter().map(|(k, _)| k));
        let groups = self.groups_all(&sets)?;
        let started: Vec<InFlight<()>> = groups
            .iter()
            .map(|(m, idx)| {
                let batch: Vec<(&[u8], &[u8])> = idx.iter().map(|&i| items[i]).collect();
                m.server.begin_write_many(ds, &batch)
            })
            .collect();
        let results: Vec<_> = started.into_iter().map(InFlight::wait).collect();
        let mut acked = vec![false; items.len()];
        let mut answer = None;
        for ((m, idx), r) in groups.into_iter().zip(results) {
            match r {
                Ok(()) => idx.into_iter().for_each(|i| acked[i] = true),
                Err(e) if is_failure(&e) => self.condemn(&m, e),
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
        let _gate = self.mutation();
        let sets = self.sets(ds, keys.iter());
        let groups = self.groups_all(&sets)?;
        let started: Vec<InFlight<()>> = groups
            .iter()
            .map(|(m, idx)| {
                let batch: Vec<&[u8]> = idx.iter().map(|&i| keys[i]).collect();
                m.server.begin_remove_many(ds, &batch)
            })
            .collect();
        let results: Vec<_> = started.into_iter().map(InFlight::wait).collect();
        let mut done = vec![false; keys.len()];
        let mut answer = None;
        for ((m, idx), r) in groups.into_iter().zip(results) {
            match r {
                Ok(()) => idx.into_iter().for_each(|i| done[i] = true),
                Err(e) if is_failure(&e) => self.condemn(&m, e),
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
        let _gate = self.mutation();
        // The object store is striped whatever is asked (and its servers refuse to make it).
        let record = ds != OBJECT_STORE;
        if record {
            self.set_placement(ds, placement);
        }
        let all: Vec<usize> = (0..self.slots.len()).collect();
        if let Err(e) = self.on_all(&all, |b| b.construct(ds, device, params)) {
            if record {
                self.set_placement(ds, Placement::Whole);
            }
            return Err(e);
        }
        self.structures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(ds, (device.to_string(), params.to_vec()));
        Ok(())
    }

    fn destruct(&self, ds: u32) -> Result<()> {
        let _gate = self.mutation();
        let all: Vec<usize> = (0..self.slots.len()).collect();
        let r = self.on_all(&all, |b| b.destruct(ds));
        if ds != OBJECT_STORE {
            self.set_placement(ds, Placement::Whole);
        }
        r?;
        self.structures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&ds);
        Ok(())
    }

    /// One request per server holding some of `keys` (the first readable member of each
    /// key's replica set), all sent before any answer is awaited, with failover; see [`super::sharded`].
    fn compute_sharded(
        &self,
        ds: u32,
        opcode: u32,
        keys: &[&[u8]],
        input: &[u8],
    ) -> Result<Vec<Vec<u8>>> {
        if self.code_for(ds).is_some() && !keys.is_empty() {
            return Err(Error::Unsupported(
                "the object store is erasure-coded: its servers hold fragments, not objects".into(),
            ));
        }
        let sets = self.sets(ds, keys.iter());
        let members = Snapshot {
            far: self,
            members: (0..self.slots.len()).map(|i| self.member(i)).collect(),
        };
        run_sharded(&members, &sets, |s, ks| {
            let mine: Vec<&[u8]> = ks.iter().map(|&k| keys[k]).collect();
            members.members[s]
                .server
                .begin_compute_sharded(ds, opcode, &mine, input)
        })
    }

    /// Runs on every member in use, all at once ([`Backend::begin_compute`]: a networked
    /// server gets its request before the first answer is awaited); the first *live*
    /// member's answer is returned (a replacement being rebuilt runs the operation too, so
    /// that its copy changes as the others do, but its answer may miss objects not yet
    /// copied and is ignored). Every answer is awaited before the mutation gate is let go.
    fn compute(&self, ds: u32, opcode: u32, input: &[u8]) -> Result<Vec<u8>> {
        let _gate = self.mutation();
        let set = self.structure_set(ds);
        let started: Vec<(Member, ComputeInFlight)> = set
            .iter()
            .map(|&s| self.member(s))
            .filter(|m| m.state != State::Dead)
            .map(|m| {
                let call = m.server.begin_compute(ds, opcode, input);
                (m, call)
            })
            .collect();
        let answers: Vec<(Member, Result<Vec<u8>>)> =
            started.into_iter().map(|(m, c)| (m, c.wait())).collect();
        let mut first: Option<Result<Vec<u8>>> = None;
        for (m, answer) in answers {
            let counts = m.state == State::Live && first.is_none();
            match answer {
                Err(e) if is_failure(&e) => {
                    self.condemn(&m, e);
                    if counts {
                        self.failovers.fetch_add(1, Ordering::Relaxed);
                    }
                }
                // The first answer decides; a later replica's cannot undo it.
                answer if counts => first = Some(answer),
                _ => {}
            }
        }
        first.unwrap_or_else(|| Err(self.lost(&set)))
    }

    /// The union over the live servers (a replacement being rebuilt is not asked), sorted
    /// and without duplicates.
    fn keys(&self, ds: u32) -> Result<Vec<Vec<u8>>> {
        let mut all: BTreeSet<Vec<u8>> = BTreeSet::new();
        let mut any = false;
        for s in 0..self.slots.len() {
            let m = self.member(s);
            if m.state != State::Live {
                continue;
            }
            match m.server.keys(ds) {
                Ok(ks) => {
                    any = true;
                    all.extend(ks);
                }
                Err(e) if is_failure(&e) => self.condemn(&m, e),
                Err(e) => return Err(e),
            }
        }
        if !any {
            let every: Vec<usize> = (0..self.slots.len()).collect();
            return Err(self.lost(&every));
        }
        Ok(all.into_iter().collect())
    }

    /// Bytes stored on the servers in use, each replica counted.
    fn stored_bytes(&self) -> u64 {
        (0..self.slots.len())
            .map(|i| self.member(i))
            .filter(|m| m.state != State::Dead)
            .map(|m| m.server.stored_bytes())
            .sum()
    }

    fn replication(&self) -> Option<ReplicatedStats> {
        Some(self.stats())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::faulty::{Faulty, TestServers};
    use crate::backend::EmbeddedBackend;
    use std::sync::Arc;
    use std::time::Duration;

    /// The servers (switchable, counting requests) and direct views of each store.
    struct Rig {
        far: ReplicatedBackend,
        faults: Vec<Arc<Faulty<Arc<EmbeddedBackend>>>>,
        stores: Vec<Arc<EmbeddedBackend>>,
    }

    fn rig(n: usize, replicas: usize) -> Rig {
        let TestServers {
            servers,
            faults,
            stores,
        } = TestServers::new(n);
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
        assert!(rt
            .stats()
            .to_string()
            .contains("2 live, 0 rebuilding, 1 dead"));
    }

    /// Takes server `i` down and lets a request notice it.
    fn kill(faults: &[Arc<Faulty<Arc<EmbeddedBackend>>>], far: &ReplicatedBackend, i: usize) {
        faults[i].set_down(true);
        far.keys(OBJECT_STORE).unwrap(); // asks every live server
        assert!(!far.is_live(i));
    }

    /// What a fresh replacement store holds of structure `ds`, as a map.
    fn contents(store: &EmbeddedBackend, ds: u32) -> BTreeMap<Vec<u8>, Vec<u8>> {
        store
            .keys(ds)
            .unwrap()
            .into_iter()
            .map(|k| {
                let v = store.read(ds, &k).unwrap().unwrap();
                (k, v)
            })
            .collect()
    }

    #[test]
    fn rebuild_copies_exactly_the_objects_placed_on_the_index() {
        let r = rig(3, 2);
        let victim = r.far.placement(5, b"")[0]; // holds structure 5 too
        let far = Arc::new(r.far);
        far.construct(5, crate::backend::OBJECT_STORE_DEVICE, &[])
            .unwrap();
        far.construct(6, crate::backend::OBJECT_STORE_DEVICE, &[])
            .unwrap();
        far.destruct(6).unwrap(); // forgotten: not rebuilt
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for i in 0..600 {
            far.write(OBJECT_STORE, &key(i), &key(i + 1)).unwrap();
            model.insert(key(i), key(i + 1));
        }
        for i in 0..50 {
            far.write(5, &key(i), b"five").unwrap();
        }
        kill(&r.faults, &far, victim);
        // Changes while the victim is dead: new objects, new values, removals.
        for i in 600..700 {
            far.write(OBJECT_STORE, &key(i), &key(i * 2)).unwrap();
            model.insert(key(i), key(i * 2));
        }
        for i in (0..600).step_by(3) {
            far.write(OBJECT_STORE, &key(i), b"newer").unwrap();
            model.insert(key(i), b"newer".to_vec());
        }
        for i in (1..600).step_by(7) {
            assert!(far.remove(OBJECT_STORE, &key(i)).unwrap());
            model.remove(&key(i));
        }
        far.remove(5, &key(0)).unwrap();
        let fresh = Arc::new(EmbeddedBackend::new());
        far.replace_server(victim, Box::new(fresh.clone())).unwrap();
        far.wait_rebuilt(victim, Duration::from_secs(30)).unwrap();
        let expect: BTreeMap<Vec<u8>, Vec<u8>> = model
            .iter()
            .filter(|(k, _)| far.placement(OBJECT_STORE, k).contains(&victim))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert!(expect.len() > 300 && expect.len() < model.len());
        assert_eq!(contents(&fresh, OBJECT_STORE), expect);
        let five: BTreeMap<Vec<u8>, Vec<u8>> =
            (1..50).map(|i| (key(i), b"five".to_vec())).collect();
        assert_eq!(contents(&fresh, 5), five);
        assert_eq!(fresh.read(6, b"x").unwrap_err(), Error::UnknownStructure(6));
        let s = far.stats();
        assert_eq!((s.live, s.rebuilding, s.dead, s.replaced), (3, 0, 0, 1));
        assert_eq!(s.rebuilt_objects, (expect.len() + five.len()) as u64);
        let bytes: usize = expect.values().chain(five.values()).map(Vec::len).sum();
        assert_eq!(s.rebuilt_bytes, bytes as u64);
        assert_eq!(s.unrecoverable_objects, 0);
        assert!(far.dead_servers().is_empty());
        // The replacement now serves reads: another server may die.
        let other = (0..3).find(|&i| i != victim).unwrap();
        r.faults[other].set_down(true);
        for (k, v) in &model {
            assert_eq!(far.read(OBJECT_STORE, k).unwrap().as_ref(), Some(v));
        }
        for i in 1..50 {
            assert_eq!(far.read(5, &key(i)).unwrap().as_deref(), Some(&b"five"[..]));
        }
        assert_eq!(far.keys(OBJECT_STORE).unwrap().len(), model.len());
    }

    #[test]
    fn only_a_dead_server_can_be_replaced() {
        let r = rig(3, 2);
        let far = Arc::new(r.far);
        let e = far
            .replace_server(1, Box::new(EmbeddedBackend::new()))
            .unwrap_err();
        assert!(
            matches!(e, Error::Config(ref why) if why.contains("live")),
            "{e}"
        );
        let e = far
            .replace_server(3, Box::new(EmbeddedBackend::new()))
            .unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{e}");
        assert!(far.wait_rebuilt(3, Duration::ZERO).is_err());
        // A dead server that was never replaced: waiting reports why it died.
        r.faults[1].set_down(true);
        let _ = far.keys(OBJECT_STORE).unwrap();
        assert!(far
            .wait_rebuilt(1, Duration::ZERO)
            .unwrap_err()
            .is_disconnected());
        // While a replacement is being rebuilt, it cannot be replaced again.
        let epoch = far.install(1, Box::new(EmbeddedBackend::new())).unwrap();
        assert!(far.is_rebuilding(1) && far.is_live(1));
        assert_eq!(far.stats().rebuilding, 1);
        assert_eq!(
            far.wait_rebuilt(1, Duration::ZERO).unwrap_err(),
            Error::Timeout
        );
        let e = far
            .replace_server(1, Box::new(EmbeddedBackend::new()))
            .unwrap_err();
        assert!(
            matches!(e, Error::Config(ref why) if why.contains("rebuilt")),
            "{e}"
        );
        far.rebuild_and_finish(1, epoch);
        far.wait_rebuilt(1, Duration::ZERO).unwrap();
        // A replacement that cannot take the live structures is refused, and nothing changes.
        far.construct(9, crate::backend::OBJECT_STORE_DEVICE, &[])
            .unwrap();
        r.faults[2].set_down(true);
        let _ = far.keys(OBJECT_STORE).unwrap();
        let down = Faulty::new(EmbeddedBackend::new());
        down.set_down(true);
        assert!(far
            .replace_server(2, Box::new(down))
            .unwrap_err()
            .is_disconnected());
        assert!(!far.is_live(2));
    }

    #[test]
    fn a_rebuilding_replacement_takes_writes_but_not_reads() {
        let r = rig(3, 2);
        let far = Arc::new(r.far);
        for i in 0..300 {
            far.write(OBJECT_STORE, &key(i), b"old").unwrap();
        }
        kill(&r.faults, &far, 0);
        let fresh = Arc::new(EmbeddedBackend::new());
        let epoch = far.install(0, Box::new(fresh.clone())).unwrap();
        let on_0: Vec<Vec<u8>> = (0..300)
            .map(key)
            .filter(|k| far.placement(OBJECT_STORE, k).contains(&0))
            .collect();
        // Reads skip it (it holds nothing yet) and count as degraded.
        let degraded = far.stats().degraded_reads;
        for k in &on_0 {
            assert_eq!(
                far.read(OBJECT_STORE, k).unwrap().as_deref(),
                Some(&b"old"[..])
            );
        }
        assert_eq!(far.stats().degraded_reads, degraded + on_0.len() as u64);
        // The listing is taken, then the objects change before the batch copies them.
        let listed = far.keys_placed_on(OBJECT_STORE, 0).unwrap();
        assert_eq!(listed, {
            let mut l = on_0.clone();
            l.sort();
            l
        });
        let (newer, removed) = (&on_0[0], &on_0[1]);
        far.write(OBJECT_STORE, newer, b"new").unwrap();
        assert!(far.remove(OBJECT_STORE, removed).unwrap());
        let k = (1000..)
            .map(key)
            .find(|k| far.placement(OBJECT_STORE, k).contains(&0))
            .unwrap();
        far.write(OBJECT_STORE, &k, b"later").unwrap();
        // Writes reached the replacement at once.
        assert_eq!(
            fresh.read(OBJECT_STORE, newer).unwrap().as_deref(),
            Some(&b"new"[..])
        );
        assert_eq!(
            fresh.read(OBJECT_STORE, &k).unwrap().as_deref(),
            Some(&b"later"[..])
        );
        // A stale copy on the replacement (as if an old batch had run) is fixed by the batch.
        fresh.write(OBJECT_STORE, removed, b"stale").unwrap();
        for batch in listed.chunks(rebuild::BATCH) {
            far.copy_batch(OBJECT_STORE, 0, epoch, batch).unwrap();
        }
        assert_eq!(
            fresh.read(OBJECT_STORE, newer).unwrap().as_deref(),
            Some(&b"new"[..])
        );
        assert_eq!(fresh.read(OBJECT_STORE, removed).unwrap(), None);
        assert_eq!(
            fresh.read(OBJECT_STORE, &k).unwrap().as_deref(),
            Some(&b"later"[..])
        );
        far.rebuild_and_finish(0, epoch);
        assert!(far.is_live(0) && !far.is_rebuilding(0));
        let mut expect: Vec<Vec<u8>> = on_0.iter().filter(|x| *x != removed).cloned().collect();
        expect.push(k);
        expect.sort();
        assert_eq!(fresh.keys(OBJECT_STORE).unwrap(), expect);
    }

    #[test]
    fn a_replacement_that_fails_during_its_rebuild_is_condemned() {
        let r = rig(3, 2);
        let far = Arc::new(r.far);
        for i in 0..300 {
            far.write(OBJECT_STORE, &key(i), b"v").unwrap();
        }
        kill(&r.faults, &far, 2);
        let replacement = Arc::new(Faulty::new(EmbeddedBackend::new()));
        let epoch = far.install(2, Box::new(replacement.clone())).unwrap();
        replacement.set_down(true);
        far.rebuild_and_finish(2, epoch);
        assert!(!far.is_live(2));
        assert!(far
            .wait_rebuilt(2, Duration::ZERO)
            .unwrap_err()
            .is_disconnected());
        assert_eq!(far.stats().dead, 1);
        // Reads still work from the survivors, and another replacement can be tried.
        for i in 0..300 {
            assert_eq!(
                far.read(OBJECT_STORE, &key(i)).unwrap().as_deref(),
                Some(&b"v"[..])
            );
        }
        far.replace_server(2, Box::new(EmbeddedBackend::new()))
            .unwrap();
        far.wait_rebuilt(2, Duration::from_secs(30)).unwrap();
        assert_eq!(far.stats().replaced, 2);
        // A replacement whose epoch is stale is not condemned by late reports about the old one.
        let old = Member {
            index: 2,
            server: Arc::new(EmbeddedBackend::new()),
            epoch,
            state: State::Live,
        };
        far.condemn(&old, Error::Timeout);
        assert!(far.is_live(2));
    }

    #[test]
    fn concurrent_writers_during_a_rebuild_lose_nothing_and_never_read_stale_values() {
        const KEYS: u32 = 3000;
        const WRITERS: u32 = 3;
        let r = rig(3, 2);
        let far = Arc::new(r.far);
        for i in 0..KEYS {
            far.write(OBJECT_STORE, &key(i), &0u64.to_le_bytes())
                .unwrap();
        }
        kill(&r.faults, &far, 1);
        let stop = std::sync::atomic::AtomicBool::new(false);
        // A slow replacement, so that the rebuild takes many batches' worth of time.
        let fresh = Arc::new(EmbeddedBackend::new().with_latency(Duration::from_micros(50)));
        let models: Vec<BTreeMap<Vec<u8>, Option<u64>>> = std::thread::scope(|s| {
            let writers: Vec<_> = (0..WRITERS)
                .map(|w| {
                    let (far, stop) = (&far, &stop);
                    s.spawn(move || {
                        // Writer w owns the keys i with i % WRITERS == w.
                        let mut model: BTreeMap<Vec<u8>, Option<u64>> = BTreeMap::new();
                        let mut x = 0x9e37_79b9_u64 + u64::from(w);
                        let mut version = 0u64;
                        while !stop.load(Ordering::Acquire) || version < 200 {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            let i = (x % u64::from(KEYS / WRITERS)) as u32 * WRITERS + w;
                            let k = key(i);
                            version += 1;
                            if x % 5 == 0 {
                                far.remove(OBJECT_STORE, &k).unwrap();
                                model.insert(k.clone(), None);
                            } else {
                                far.write(OBJECT_STORE, &k, &version.to_le_bytes()).unwrap();
                                model.insert(k.clone(), Some(version));
                            }
                            let want = model[&k].map(|v| v.to_le_bytes().to_vec());
                            assert_eq!(far.read(OBJECT_STORE, &k).unwrap(), want, "key {i}");
                        }
                        model
                    })
                })
                .collect();
            far.replace_server(1, Box::new(fresh.clone())).unwrap();
            far.wait_rebuilt(1, Duration::from_secs(60)).unwrap();
            stop.store(true, Ordering::Release);
            writers.into_iter().map(|h| h.join().unwrap()).collect()
        });
        // Every object placed on the replacement holds exactly its latest state there.
        for i in 0..KEYS {
            let k = key(i);
            let latest = models
                .iter()
                .find_map(|m| m.get(&k).copied())
                .unwrap_or(Some(0));
            let want = latest.map(|v| v.to_le_bytes().to_vec());
            if far.placement(OBJECT_STORE, &k).contains(&1) {
                assert_eq!(
                    fresh.read(OBJECT_STORE, &k).unwrap(),
                    want,
                    "key {i} on the replacement"
                );
            } else {
                assert_eq!(fresh.read(OBJECT_STORE, &k).unwrap(), None, "key {i} stray");
            }
            assert_eq!(far.read(OBJECT_STORE, &k).unwrap(), want, "key {i}");
        }
        assert_eq!(far.stats().unrecoverable_objects, 0);
    }

    #[test]
    fn keys_are_the_union_of_the_live_servers() {
        let r = rig(4, 2);
        for i in 0..500 {
            r.far.write(OBJECT_STORE, &key(i), b"v").unwrap();
        }
        let mut all: Vec<Vec<u8>> = (0..500).map(key).collect();
        all.sort();
        assert_eq!(r.far.keys(OBJECT_STORE).unwrap(), all);
        r.faults[3].set_down(true);
        assert_eq!(r.far.keys(OBJECT_STORE).unwrap(), all);
        assert_eq!(r.far.stats().dead, 1);
        assert_eq!(r.far.keys(8).unwrap_err(), Error::UnknownStructure(8));
    }

    /// A device with a hash-map-like `TAKE` (opcode 1: remove a key, return its value).
    struct Taking(crate::engine::ObjectStore);

    impl crate::engine::RemoteDevice for Taking {
        fn type_name(&self) -> &str {
            "test.taking"
        }
        fn read(&self, k: &[u8]) -> Result<Option<Vec<u8>>> {
            self.0.read(k)
        }
        fn write(&self, k: &[u8], v: &[u8]) -> Result<()> {
            self.0.write(k, v)
        }
        fn remove(&self, k: &[u8]) -> Result<bool> {
            self.0.remove(k)
        }
        fn compute(&self, opcode: u32, input: &[u8]) -> Result<Vec<u8>> {
            match opcode {
                1 => {
                    let v = self.0.read(input)?;
                    self.0.remove(input)?;
                    Ok(v.unwrap_or_default())
                }
                op => Err(Error::UnknownOpcode(op)),
            }
        }
        fn keys(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>> {
            self.0.keys(after, limit)
        }
        fn clear(&self) {
            self.0.clear()
        }
    }

    #[test]
    fn a_take_during_the_rebuild_is_not_undone_by_it() {
        crate::engine::Engine::global()
            .registry()
            .register("test.taking", |_, quota| {
                Ok(Box::new(Taking(crate::engine::ObjectStore::new(quota))))
            });
        let r = rig(3, 2);
        let far = Arc::new(r.far);
        far.construct(4, "test.taking", &[]).unwrap();
        for i in 0..300 {
            far.write(4, &key(i), &key(i + 7)).unwrap();
        }
        // The first-ranked member dies: its replacement ranks first too.
        let victim = far.placement(4, b"")[0];
        kill(&r.faults, &far, victim);
        let fresh = Arc::new(EmbeddedBackend::new());
        let epoch = far.install(victim, Box::new(fresh.clone())).unwrap();
        let listed = far.keys_placed_on(4, victim).unwrap();
        assert_eq!(listed.len(), 300);
        // Copy a first batch, then TAKE objects both copied and not yet copied.
        let (done, rest) = listed.split_at(rebuild::BATCH);
        far.copy_batch(4, victim, epoch, done).unwrap();
        let taken = [
            done[0].clone(),
            done[5].clone(),
            rest[0].clone(),
            rest[9].clone(),
        ];
        for k in &taken {
            let i = u32::from_le_bytes(k[..].try_into().unwrap());
            // The answer comes from the live member, not from the first-ranked replacement.
            assert_eq!(far.compute(4, 1, k).unwrap(), key(i + 7));
        }
        for batch in rest.chunks(rebuild::BATCH) {
            far.copy_batch(4, victim, epoch, batch).unwrap();
        }
        far.rebuild_and_finish(victim, epoch);
        let held = fresh.keys(4).unwrap();
        assert_eq!(held.len(), 300 - taken.len());
        assert!(taken.iter().all(|k| !held.contains(k)));
        // The replacement alone now answers for the structure, consistently.
        let other = far.placement(4, b"")[1];
        r.faults[other].set_down(true);
        for k in &taken {
            assert_eq!(far.read(4, k).unwrap(), None);
            assert_eq!(far.compute(4, 1, k).unwrap(), Vec::<u8>::new());
        }
        assert_eq!(far.keys(4).unwrap(), held);
    }
}
