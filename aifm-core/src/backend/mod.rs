//! Where far memory lives: the [`Backend`] trait and its flavours.
//!
//! A backend stores opaque byte objects under `(structure id, key)` and hosts the structures'
//! remote devices (see [`crate::engine`]). Structure id [`OBJECT_STORE`] is the runtime's own
//! plain object store, present from the start; every other id is created with
//! [`Backend::construct`] by the data structure that owns it.
//!
//! Flavours; a flavour of several files (a *family*) is a folder with a `mod.rs` whose essay
//! lists its files:
//! * [`embedded`]: the in-process far store (the default), optionally with an injected
//!   per-request latency so tests and examples behave like a network.
//! * [`faulty`]: a wrapper that can be switched off, for testing failure handling.
//! * [`tcp`]: one `aifm-server`, over a pipelined TCP connection.
//! * [`replicated`]: several servers, each object on `replicas` of them (rendezvous
//!   placement), surviving the death of servers as long as one replica of each object lives;
//!   optionally with the object store erasure-coded instead (`k` data + `m` parity fragments
//!   per object, surviving `m` dead servers for `(k + m) / k` times the memory).
//! * `redis` (cargo feature `redis`): a Redis Cluster or Valkey cluster, the structures'
//!   operations run in the client (`redis::RedisClusterBackend`).
//!
//! Shared by the flavours:
//! * [`sharded`]: the per-structure [`Placement`] and the key-list wrapping of
//!   [`Backend::compute_sharded`];
//! * `inflight`: [`InFlight`], what the pipelined `begin_*` forms return;
//! * `env`: how the builders read numbers from `AIFM_*` variables;
//! * `connect`: [`connect`] and its variants, from an address string (`AIFM_SERVER`) to the
//!   flavour it names.
//!
//! # Which module may use which
//!
//! The engine ([`crate::engine`]) uses nothing here: the plain object store's id and device
//! name are the engine's ([`OBJECT_STORE`], re-exported here). This file (the trait and
//! [`ReplicatedStats`]), `inflight`, `sharded` and `env` use no flavour. A flavour uses those
//! and the engine, never another flavour (a wrapper such as `replicated` holds its servers as
//! `dyn Backend`; tests wrap embedded stores in `faulty`); only `connect` names the
//! flavours, to build the one an address asks for.
//! The `pub use` lines below re-export, they are not uses.
//!
//! This file holds the [`Backend`] trait itself and its forwarding impl for `Arc<B>`.
//! Batched forms have default implementations that loop; a networked backend overrides them to
//! pay one round trip per batch.

mod connect;
pub mod embedded;
mod env;
pub mod faulty;
mod inflight;
#[cfg(feature = "redis")]
pub mod redis;
pub mod replicated;
pub mod sharded;
pub mod tcp;

use crate::error::Result;

/// Defined by the engine, which creates the store in every namespace; re-exported here
/// because every backend user names it.
pub use crate::engine::{OBJECT_STORE, OBJECT_STORE_DEVICE};
pub(crate) use connect::connect_servers;
pub use connect::{connect, connect_erasure, connect_replicated, parse_erasure};
pub use embedded::EmbeddedBackend;
pub use inflight::{ComputeInFlight, InFlight, ManyInFlight, ReadInFlight};
pub use sharded::Placement;

/// A far-memory store: objects by `(structure, key)`, plus remote-device calls.
///
/// Every method may be called from many threads at once.
///
/// # What to implement
///
/// Each kind of request has one form a backend implements, the *pipelined* one: `begin_*`
/// starts the request and returns an [`InFlight`] at once (a networked backend sends it
/// before returning; a backend with nothing to wait for does the work and hands back
/// [`InFlight::done`]). Eight methods are required: [`name`](Backend::name),
/// [`begin_read`](Backend::begin_read), [`begin_write`](Backend::begin_write),
/// [`begin_remove`](Backend::begin_remove), [`begin_compute`](Backend::begin_compute),
/// [`construct_placed`](Backend::construct_placed), [`destruct`](Backend::destruct) and
/// [`stored_bytes`](Backend::stored_bytes).
///
/// The batched forms ([`begin_read_many`](Backend::begin_read_many), ...),
/// [`begin_compute_sharded`](Backend::begin_compute_sharded), [`keys`](Backend::keys) and
/// [`replication`](Backend::replication) have defaults (loops over the single forms; one
/// request with every key; unsupported; none) that a backend overrides when it does better,
/// and that a wrapper forwards. The blocking forms ([`read`](Backend::read),
/// [`write`](Backend::write), ...) are provided as `begin_*(..).wait()` and need no
/// override: a wrapper that forwards the pipelined forms forwards the blocking ones with them.
///
/// # Examples
///
/// ```
/// use aifm_core::backend::{Backend, EmbeddedBackend, OBJECT_STORE};
/// let b = EmbeddedBackend::new();
/// b.write(OBJECT_STORE, b"k", b"v").unwrap();
/// assert_eq!(b.read(OBJECT_STORE, b"k").unwrap().as_deref(), Some(&b"v"[..]));
/// assert!(b.remove(OBJECT_STORE, b"k").unwrap());
/// assert_eq!(b.read(OBJECT_STORE, b"k").unwrap(), None);
/// ```
///
/// A wrapper that counts the requests it passes on:
///
/// ```
/// use aifm_core::backend::{Backend, ComputeInFlight, EmbeddedBackend, InFlight, Placement, ReadInFlight};
/// use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
/// struct Counted<B>(B, AtomicU64);
/// impl<B: Backend> Counted<B> {
///     fn count(&self) { self.1.fetch_add(1, Relaxed); }
/// }
/// impl<B: Backend> Backend for Counted<B> {
///     fn name(&self) -> String { format!("counted({})", self.0.name()) }
///     fn begin_read(&self, ds: u32, key: &[u8]) -> ReadInFlight {
///         self.count();
///         self.0.begin_read(ds, key)
///     }
///     fn begin_write(&self, ds: u32, key: &[u8], value: &[u8]) -> InFlight<()> {
///         self.count();
///         self.0.begin_write(ds, key, value)
///     }
///     fn begin_remove(&self, ds: u32, key: &[u8]) -> InFlight<bool> {
///         self.count();
///         self.0.begin_remove(ds, key)
///     }
///     fn begin_compute(&self, ds: u32, opcode: u32, input: &[u8]) -> ComputeInFlight {
///         self.count();
///         self.0.begin_compute(ds, opcode, input)
///     }
///     fn construct_placed(&self, ds: u32, device: &str, params: &[u8], p: Placement) -> aifm_core::Result<()> {
///         self.0.construct_placed(ds, device, params, p)
///     }
///     fn destruct(&self, ds: u32) -> aifm_core::Result<()> { self.0.destruct(ds) }
///     fn stored_bytes(&self) -> u64 { self.0.stored_bytes() }
/// }
/// let b = Counted(EmbeddedBackend::new(), AtomicU64::new(0));
/// b.write(0, b"k", b"v").unwrap(); // the blocking forms come with the pipelined ones
/// assert_eq!(b.read(0, b"k").unwrap().as_deref(), Some(&b"v"[..]));
/// assert_eq!(b.1.load(Relaxed), 2);
/// ```
pub trait Backend: Send + Sync + 'static {
    /// A short name for logs and statistics (`"embedded"`, `"tcp://host:port"`).
    fn name(&self) -> String;

    /// Starts reading one object and returns at once; [`ReadInFlight::wait`] gives what
    /// [`Backend::read`] gives. A networked backend sends the request now, so reads started
    /// one after the other on different servers overlap without a thread each.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::{Backend, EmbeddedBackend, OBJECT_STORE};
    /// let b = EmbeddedBackend::new();
    /// b.write(OBJECT_STORE, b"k", b"v").unwrap();
    /// let (one, two) = (b.begin_read(OBJECT_STORE, b"k"), b.begin_read(OBJECT_STORE, b"x"));
    /// assert_eq!(one.wait().unwrap().as_deref(), Some(&b"v"[..]));
    /// assert_eq!(two.wait().unwrap(), None);
    /// ```
    fn begin_read(&self, ds: u32, key: &[u8]) -> ReadInFlight;

    /// Starts storing (or replacing) one object; [`InFlight::wait`] gives what
    /// [`Backend::write`] gives.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::{Backend, EmbeddedBackend, OBJECT_STORE};
    /// let b = EmbeddedBackend::new();
    /// b.begin_write(OBJECT_STORE, b"k", b"v").wait().unwrap();
    /// assert_eq!(b.read(OBJECT_STORE, b"k").unwrap().as_deref(), Some(&b"v"[..]));
    /// ```
    fn begin_write(&self, ds: u32, key: &[u8], value: &[u8]) -> InFlight<()>;

    /// Starts removing one object; [`InFlight::wait`] gives what [`Backend::remove`] gives.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::{Backend, EmbeddedBackend, OBJECT_STORE};
    /// let b = EmbeddedBackend::new();
    /// b.write(OBJECT_STORE, b"k", b"v").unwrap();
    /// assert!(b.begin_remove(OBJECT_STORE, b"k").wait().unwrap());
    /// ```
    fn begin_remove(&self, ds: u32, key: &[u8]) -> InFlight<bool>;

    /// Starts [`Backend::compute`] and returns at once; [`InFlight::wait`] gives its answer.
    /// A networked backend sends the request now, so operations started one after the other
    /// on different servers (a replicated structure's replicas) run at the same time.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::{Backend, EmbeddedBackend, OBJECT_STORE};
    /// let b = EmbeddedBackend::new();
    /// // The plain object store offers no operations: the error comes back from `wait`.
    /// assert!(b.begin_compute(OBJECT_STORE, 1, b"").wait().is_err());
    /// ```
    fn begin_compute(&self, ds: u32, opcode: u32, input: &[u8]) -> ComputeInFlight;

    /// Creates structure `ds` served by the remote device type `device`, placed as
    /// `placement` says on a backend that spans several servers (see [`sharded`]). On one
    /// server placement means nothing, and such a backend ignores it.
    ///
    /// # Errors
    /// [`crate::Error::UnknownDevice`] when no such device type is registered.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::{Backend, EmbeddedBackend, Placement, OBJECT_STORE_DEVICE};
    /// let b = EmbeddedBackend::new();
    /// b.construct_placed(3, OBJECT_STORE_DEVICE, &[], Placement::Striped).unwrap();
    /// b.write(3, b"k", b"v").unwrap();
    /// assert!(b.construct_placed(4, "no.such.device", &[], Placement::Whole).is_err());
    /// ```
    fn construct_placed(
        &self,
        ds: u32,
        device: &str,
        params: &[u8],
        placement: Placement,
    ) -> Result<()>;

    /// Destroys structure `ds` and frees everything it stored.
    ///
    /// # Errors
    /// [`crate::Error::UnknownStructure`].
    fn destruct(&self, ds: u32) -> Result<()>;

    /// Bytes currently stored (all structures of this client).
    fn stored_bytes(&self) -> u64;

    /// Starts [`Backend::read_many`] and returns at once; [`InFlight::wait`] gives its answer.
    /// A networked backend sends every request of the batch now, so batches started one after
    /// the other on different servers travel at the same time without a thread each. The
    /// default starts one [`Backend::begin_read`] per key, then waits for each in order.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::{Backend, EmbeddedBackend, OBJECT_STORE};
    /// let b = EmbeddedBackend::new();
    /// b.write(OBJECT_STORE, b"k", b"v").unwrap();
    /// let batch = b.begin_read_many(OBJECT_STORE, &[&b"k"[..], &b"x"[..]]);
    /// assert_eq!(batch.wait().unwrap(), [Some(b"v".to_vec()), None]);
    /// ```
    fn begin_read_many(&self, ds: u32, keys: &[&[u8]]) -> ManyInFlight {
        InFlight::all(keys.iter().map(|k| self.begin_read(ds, k)).collect())
    }

    /// Starts [`Backend::write_many`] and returns at once; [`InFlight::wait`] gives its
    /// outcome (the same as `write_many`'s, prefix rule included). The default writes one
    /// object after the other and stops at the first error.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::{Backend, EmbeddedBackend, OBJECT_STORE};
    /// let b = EmbeddedBackend::new();
    /// let items: [(&[u8], &[u8]); 2] = [(b"a", b"1"), (b"b", b"2")];
    /// b.begin_write_many(OBJECT_STORE, &items).wait().unwrap();
    /// assert_eq!(b.read(OBJECT_STORE, b"b").unwrap().as_deref(), Some(&b"2"[..]));
    /// ```
    fn begin_write_many(&self, ds: u32, items: &[(&[u8], &[u8])]) -> InFlight<()> {
        InFlight::done(
            items
                .iter()
                .try_for_each(|(k, v)| self.begin_write(ds, k, v).wait()),
        )
    }

    /// Starts [`Backend::remove_many`] and returns at once; [`InFlight::wait`] gives its
    /// outcome. The default removes one object after the other and stops at the first error.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::{Backend, EmbeddedBackend, OBJECT_STORE};
    /// let b = EmbeddedBackend::new();
    /// b.write(OBJECT_STORE, b"a", b"1").unwrap();
    /// b.begin_remove_many(OBJECT_STORE, &[&b"a"[..]]).wait().unwrap();
    /// assert_eq!(b.read(OBJECT_STORE, b"a").unwrap(), None);
    /// ```
    fn begin_remove_many(&self, ds: u32, keys: &[&[u8]]) -> InFlight<()> {
        InFlight::done(
            keys.iter()
                .try_for_each(|k| self.begin_remove(ds, k).wait().map(drop)),
        )
    }

    /// Starts [`Backend::compute_sharded`] and returns at once; [`InFlight::wait`] gives its
    /// answers. A networked backend sends the request now, so the shards of a striped
    /// structure, each on its own server, work at the same time without a thread each. The
    /// default (one server) starts one [`Backend::begin_compute`] carrying every key, wrapped
    /// around `input` by [`sharded::encode_shard_input`]; an empty `keys` asks nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::{Backend, EmbeddedBackend, OBJECT_STORE};
    /// let b = EmbeddedBackend::new();
    /// assert!(b.begin_compute_sharded(OBJECT_STORE, 1, &[], b"").wait().unwrap().is_empty());
    /// ```
    fn begin_compute_sharded(
        &self,
        ds: u32,
        opcode: u32,
        keys: &[&[u8]],
        input: &[u8],
    ) -> InFlight<Vec<Vec<u8>>> {
        if keys.is_empty() {
            return InFlight::done(Ok(Vec::new()));
        }
        let wrapped = sharded::encode_shard_input(keys, input);
        self.begin_compute(ds, opcode, &wrapped)
            .then(|answer| Ok(vec![answer]))
    }

    /// Every key structure `ds` holds, in increasing bytewise order. A networked backend
    /// fetches them in pages (so a huge structure never needs one giant frame); keys written
    /// or removed during the listing may or may not appear.
    ///
    /// # Errors
    /// [`crate::Error::Unsupported`] by default (and when the structure's device cannot list
    /// keys); [`crate::Error::UnknownStructure`]; transport errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::{Backend, EmbeddedBackend, OBJECT_STORE};
    /// let b = EmbeddedBackend::new();
    /// b.write(OBJECT_STORE, b"y", b"1").unwrap();
    /// b.write(OBJECT_STORE, b"x", b"2").unwrap();
    /// assert_eq!(b.keys(OBJECT_STORE).unwrap(), [b"x".to_vec(), b"y".to_vec()]);
    /// ```
    fn keys(&self, ds: u32) -> Result<Vec<Vec<u8>>> {
        Err(crate::Error::Unsupported(format!(
            "{} cannot list the keys of structure {ds}",
            self.name()
        )))
    }

    /// Whether a request costs no wait worth hiding: each is answered in this process, on the
    /// calling thread, for the price of the work itself (the embedded store without an
    /// injected latency). Readers that overlap requests with their own work, such as a vector
    /// scan's prefetch window on the runtime's helper threads, skip that when it holds: with
    /// nothing to wait for, the helpers would only compete for the cores.
    ///
    /// A hint: `false` (the default) is never wrong, only slower over such a store. A wrapper
    /// forwards its inner backend's answer; a backend over several servers keeps the default.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::{faulty::Faulty, Backend, EmbeddedBackend};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// assert!(Arc::new(Faulty::new(EmbeddedBackend::new())).latency_free());
    /// // A store that simulates a network has a wait to hide.
    /// assert!(!EmbeddedBackend::new().with_latency(Duration::from_micros(5)).latency_free());
    /// ```
    fn latency_free(&self) -> bool {
        false
    }

    /// The state of the servers behind a backend that spans several (`None` for one).
    /// [`crate::Runtime::stats`] reports it.
    fn replication(&self) -> Option<ReplicatedStats> {
        None
    }

    /// Reads one object; `None` when the structure holds no such key. Provided:
    /// [`Backend::begin_read`], waited for.
    ///
    /// # Errors
    /// Transport errors, or [`crate::Error::UnknownStructure`].
    fn read(&self, ds: u32, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.begin_read(ds, key).wait()
    }

    /// Stores (or replaces) one object. Provided: [`Backend::begin_write`], waited for.
    ///
    /// # Errors
    /// [`crate::Error::ServerFull`] when capacity is used up (the old value, if any, stays).
    fn write(&self, ds: u32, key: &[u8], value: &[u8]) -> Result<()> {
        self.begin_write(ds, key, value).wait()
    }

    /// Removes one object; returns whether it existed. Provided: [`Backend::begin_remove`],
    /// waited for.
    ///
    /// # Errors
    /// Transport errors, or [`crate::Error::UnknownStructure`].
    fn remove(&self, ds: u32, key: &[u8]) -> Result<bool> {
        self.begin_remove(ds, key).wait()
    }

    /// Reads many objects of one structure in one request. Provided:
    /// [`Backend::begin_read_many`], waited for.
    ///
    /// # Errors
    /// As [`Backend::read`]; the batch fails as a whole.
    fn read_many(&self, ds: u32, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        self.begin_read_many(ds, keys).wait()
    }

    /// [`Backend::read_many`], lending each object's bytes to `sink` with its index in
    /// `keys` (`None`: no such object) instead of returning them, so a backend that holds the
    /// bytes (the in-process store) lets the runtime copy each object once, into its heap
    /// place. `sink` only copies; it never calls back into far memory. On an error, `sink`
    /// may have seen a prefix of the batch (in any order). Provided: [`Backend::read_many`],
    /// lent from its answer.
    ///
    /// # Errors
    /// As [`Backend::read_many`].
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::{Backend, EmbeddedBackend, OBJECT_STORE};
    /// let b = EmbeddedBackend::new();
    /// b.write(OBJECT_STORE, b"k", b"value").unwrap();
    /// let mut seen = Vec::new();
    /// b.read_many_with(OBJECT_STORE, &[b"x", b"k"], &mut |i, v| seen.push((i, v.map(<[u8]>::len))))
    ///     .unwrap();
    /// assert_eq!(seen, [(0, None), (1, Some(5))]);
    /// ```
    fn read_many_with(
        &self,
        ds: u32,
        keys: &[&[u8]],
        sink: &mut dyn FnMut(usize, Option<&[u8]>),
    ) -> Result<()> {
        for (i, v) in self.read_many(ds, keys)?.into_iter().enumerate() {
            sink(i, v.as_deref());
        }
        Ok(())
    }

    /// Writes many objects of one structure in one request. On error, a prefix of the batch
    /// may have been stored; nothing stored before the call is harmed. Provided:
    /// [`Backend::begin_write_many`], waited for.
    ///
    /// # Errors
    /// As [`Backend::write`].
    fn write_many(&self, ds: u32, items: &[(&[u8], &[u8])]) -> Result<()> {
        self.begin_write_many(ds, items).wait()
    }

    /// Removes many objects of one structure in one request. Provided:
    /// [`Backend::begin_remove_many`], waited for.
    ///
    /// # Errors
    /// As [`Backend::remove`].
    fn remove_many(&self, ds: u32, keys: &[&[u8]]) -> Result<()> {
        self.begin_remove_many(ds, keys).wait()
    }

    /// Creates structure `ds` served by the remote device type `device`, placed
    /// [`Placement::Whole`]. Provided: [`Backend::construct_placed`].
    ///
    /// # Errors
    /// [`crate::Error::UnknownDevice`] when no such device type is registered.
    fn construct(&self, ds: u32, device: &str, params: &[u8]) -> Result<()> {
        self.construct_placed(ds, device, params, Placement::Whole)
    }

    /// Runs operation `opcode` of structure `ds`'s device next to the data. Provided:
    /// [`Backend::begin_compute`], waited for.
    ///
    /// # Errors
    /// [`crate::Error::UnknownOpcode`], or whatever the device reports.
    fn compute(&self, ds: u32, opcode: u32, input: &[u8]) -> Result<Vec<u8>> {
        self.begin_compute(ds, opcode, input).wait()
    }

    /// Runs the read-only operation `opcode` of structure `ds`'s device over the objects
    /// `keys`, once per *shard*: each key goes to exactly one server holding it, each server
    /// gets one request (its own keys, wrapped around `input` by
    /// [`sharded::encode_shard_input`]), and the answers come back one per shard, in no
    /// particular order, for the caller to merge. An empty `keys` asks no server and yields
    /// no answer. Provided: [`Backend::begin_compute_sharded`], waited for.
    ///
    /// The operation must not change the structure: on a replicated backend it runs on one
    /// replica of each object only.
    ///
    /// # Errors
    /// As [`Backend::compute`]; a backend that spans servers retries a failed server's keys
    /// on the next live replica and fails only when a key has none left.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::{Backend, EmbeddedBackend, OBJECT_STORE};
    /// let b = EmbeddedBackend::new();
    /// assert!(b.compute_sharded(OBJECT_STORE, 1, &[], b"").unwrap().is_empty());
    /// // The plain object store offers no operations.
    /// assert!(b.compute_sharded(OBJECT_STORE, 1, &[&b"k"[..]], b"").is_err());
    /// ```
    fn compute_sharded(
        &self,
        ds: u32,
        opcode: u32,
        keys: &[&[u8]],
        input: &[u8],
    ) -> Result<Vec<Vec<u8>>> {
        self.begin_compute_sharded(ds, opcode, keys, input).wait()
    }
}

/// A shared backend is a backend: keep a handle to it (for statistics, or to share one store
/// between runtimes) and give the runtime a clone. It forwards every form a backend may
/// implement; the blocking forms follow from them.
///
/// # Examples
///
/// ```
/// use aifm_core::backend::{Backend, EmbeddedBackend};
/// use std::sync::Arc;
/// let store = Arc::new(EmbeddedBackend::new());
/// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).backend(store.clone()).build().unwrap();
/// assert_eq!(store.stored_bytes(), rt.backend().stored_bytes());
/// ```
impl<B: Backend + ?Sized> Backend for std::sync::Arc<B> {
    fn name(&self) -> String {
        (**self).name()
    }
    fn begin_read(&self, ds: u32, key: &[u8]) -> ReadInFlight {
        (**self).begin_read(ds, key)
    }
    fn begin_write(&self, ds: u32, key: &[u8], value: &[u8]) -> InFlight<()> {
        (**self).begin_write(ds, key, value)
    }
    fn begin_remove(&self, ds: u32, key: &[u8]) -> InFlight<bool> {
        (**self).begin_remove(ds, key)
    }
    fn begin_compute(&self, ds: u32, opcode: u32, input: &[u8]) -> ComputeInFlight {
        (**self).begin_compute(ds, opcode, input)
    }
    fn construct_placed(&self, ds: u32, device: &str, params: &[u8], p: Placement) -> Result<()> {
        (**self).construct_placed(ds, device, params, p)
    }
    fn destruct(&self, ds: u32) -> Result<()> {
        (**self).destruct(ds)
    }
    fn stored_bytes(&self) -> u64 {
        (**self).stored_bytes()
    }
    fn begin_read_many(&self, ds: u32, keys: &[&[u8]]) -> ManyInFlight {
        (**self).begin_read_many(ds, keys)
    }
    fn read_many_with(
        &self,
        ds: u32,
        keys: &[&[u8]],
        sink: &mut dyn FnMut(usize, Option<&[u8]>),
    ) -> Result<()> {
        (**self).read_many_with(ds, keys, sink)
    }
    fn begin_write_many(&self, ds: u32, items: &[(&[u8], &[u8])]) -> InFlight<()> {
        (**self).begin_write_many(ds, items)
    }
    fn begin_remove_many(&self, ds: u32, keys: &[&[u8]]) -> InFlight<()> {
        (**self).begin_remove_many(ds, keys)
    }
    fn begin_compute_sharded(
        &self,
        ds: u32,
        opcode: u32,
        keys: &[&[u8]],
        input: &[u8],
    ) -> InFlight<Vec<Vec<u8>>> {
        (**self).begin_compute_sharded(ds, opcode, keys, input)
    }
    fn keys(&self, ds: u32) -> Result<Vec<Vec<u8>>> {
        (**self).keys(ds)
    }
    fn latency_free(&self) -> bool {
        (**self).latency_free()
    }
    fn replication(&self) -> Option<ReplicatedStats> {
        (**self).replication()
    }
}

/// Counters of a backend that spans several servers ([`replicated::ReplicatedBackend`]),
/// as [`Backend::replication`] reports them.
///
/// `live + rebuilding + dead` is the number of servers.
///
/// # Examples
///
/// ```
/// use aifm_core::backend::ReplicatedStats;
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
    /// Replacement servers installed with [`replicated::ReplicatedBackend::replace_server`].
    pub replaced: u64,
    /// Objects copied to replacement servers so far.
    pub rebuilt_objects: u64,
    /// Bytes (values, or fragments when the object store is erasure-coded) copied to
    /// replacement servers so far.
    pub rebuilt_bytes: u64,
    /// Objects a rebuild could not copy because no live server held them any more.
    pub unrecoverable_objects: u64,
}
