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

//!
//! # The files
//!
//! * this file: the types ([`ReplicatedBackend`], its server slots) and the constructors
//!   ([`ReplicatedStats`], which the [`Backend`] trait returns, is defined with the trait);
//! * `placement`: rendezvous hashing, from `(ds, key)` to a replica set;
//! * `membership`: which servers are live, rebuilding or dead, condemning a failed server,
//!   and the counters;
//! * `requests`: the [`Backend`] implementation, each request fanned out over the live members
//!   of its sets (and failed over); `shards`: sharded compute over the servers;
//! * `erasure` and `fragment`: the erasure-coded object store; `rebuild`: a replacement
//!   server's background copy.

pub use super::ReplicatedStats;
use super::{Backend, Placement, OBJECT_STORE};
use crate::error::{Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};

mod erasure;
mod fragment;
mod membership;
mod placement;
mod rebuild;
mod requests;
mod shards;
#[cfg(test)]
mod tests;

use membership::is_failure;
use placement::mix;
pub use placement::ReplicaSet;
use requests::LiveReads;

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
}
