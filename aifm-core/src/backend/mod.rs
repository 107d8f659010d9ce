//! Where far memory lives: the [`Backend`] trait and its flavours.
//!
//! A backend stores opaque byte objects under `(structure id, key)` and hosts the structures'
//! remote devices (see [`crate::engine`]). Structure id [`OBJECT_STORE`] is the runtime's own
//! plain object store, present from the start; every other id is created with
//! [`Backend::construct`] by the data structure that owns it.
//!
//! Flavours, one module each (a flavour of several files is a folder with a `mod.rs`):
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
//! * [`sharded`]: what every flavour shares about structures spread over several servers:
//!   the per-structure [`Placement`] and the key-list wrapping of [`Backend::compute_sharded`];
//! * `inflight`: [`InFlight`], what the pipelined `begin_*` forms return;
//! * `connect`: [`connect`] and its variants, from an address string (`AIFM_SERVER`) to the
//!   flavour it names.
//!
//! This file holds the [`Backend`] trait itself and its forwarding impl for `Arc<B>`.
//! Batched forms have default implementations that loop; a networked backend overrides them to
//! pay one round trip per batch.

mod connect;
pub mod embedded;
pub mod faulty;
mod inflight;
#[cfg(feature = "redis")]
pub mod redis;
pub mod replicated;
pub mod sharded;
pub mod tcp;

use crate::error::Result;

pub(crate) use connect::connect_servers;
pub use connect::{connect, connect_erasure, connect_replicated, parse_erasure};
pub use embedded::EmbeddedBackend;
pub use inflight::{ComputeInFlight, InFlight, ManyInFlight, ReadInFlight};
pub use sharded::Placement;

/// The structure id of the runtime's plain object store (always present).
pub const OBJECT_STORE: u32 = 0;

/// The device type name of the plain object store.
pub const OBJECT_STORE_DEVICE: &str = "aifm.object-store";

/// A far-memory store: objects by `(structure, key)`, plus remote-device calls.
///
/// Every method may be called from many threads at once.
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
pub trait Backend: Send + Sync + 'static {
    /// A short name for logs and statistics (`"embedded"`, `"tcp://host:port"`).
    fn name(&self) -> String;

    /// Reads one object; `None` when the structure holds no such key.
    ///
    /// # Errors
    /// Transport errors, or [`crate::Error::UnknownStructure`].
    fn read(&self, ds: u32, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Stores (or replaces) one object.
    ///
    /// # Errors
    /// [`crate::Error::ServerFull`] when capacity is used up (the old value, if any, stays).
    fn write(&self, ds: u32, key: &[u8], value: &[u8]) -> Result<()>;

    /// Removes one object; returns whether it existed.
    ///
    /// # Errors
    /// Transport errors, or [`crate::Error::UnknownStructure`].
    fn remove(&self, ds: u32, key: &[u8]) -> Result<bool>;

    /// Starts reading one object and returns at once; [`ReadInFlight::wait`] gives what
    /// [`Backend::read`] would have. A networked backend sends the request now, so reads
    /// started one after the other on different servers overlap without a thread each. The
    /// default reads at once (blocking) and hands back the finished result.
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
    fn begin_read(&self, ds: u32, key: &[u8]) -> ReadInFlight {
        ReadInFlight::done(self.read(ds, key))
    }

    /// Reads many objects of one structure in one request.
    ///
    /// # Errors
    /// As [`Backend::read`]; the batch fails as a whole.
    fn read_many(&self, ds: u32, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        keys.iter().map(|k| self.read(ds, k)).collect()
    }

    /// [`Backend::read_many`], lending each object's bytes to `sink` with its index in
    /// `keys` (`None`: no such object) instead of returning them, so a backend that holds the
    /// bytes (the in-process store) lets the runtime copy each object once, into its heap
    /// place. `sink` only copies; it never calls back into far memory. On an error, `sink`
    /// may have seen a prefix of the batch (in any order). The default calls `read_many`
    /// and lends from its answer.
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
    /// may have been stored; nothing stored before the call is harmed.
    ///
    /// # Errors
    /// As [`Backend::write`].
    fn write_many(&self, ds: u32, items: &[(&[u8], &[u8])]) -> Result<()> {
        items.iter().try_for_each(|(k, v)| self.write(ds, k, v))
    }

    /// Removes many objects of one structure in one request.
    ///
    /// # Errors
    /// As [`Backend::remove`].
    fn remove_many(&self, ds: u32, keys: &[&[u8]]) -> Result<()> {
        keys.iter().try_for_each(|k| self.remove(ds, k).map(drop))
    }

    /// Starts [`Backend::read_many`] and returns at once; [`InFlight::wait`] gives its answer.
    /// A networked backend sends every request of the batch now, so batches started one after
    /// the other on different servers travel at the same time without a thread each. The
    /// default reads at once (blocking) and hands back the finished result.
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
        InFlight::done(self.read_many(ds, keys))
    }

    /// Starts [`Backend::write_many`] and returns at once; [`InFlight::wait`] gives its
    /// outcome (the same as `write_many`'s, prefix rule included). The default writes at once.
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
        InFlight::done(self.write_many(ds, items))
    }

    /// Starts [`Backend::remove_many`] and returns at once; [`InFlight::wait`] gives its
    /// outcome. The default removes at once.
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
        InFlight::done(self.remove_many(ds, keys))
    }

    /// Creates structure `ds` served by the remote device type `device`.
    ///
    /// # Errors
    /// [`crate::Error::UnknownDevice`] when no such device type is registered.
    fn construct(&self, ds: u32, device: &str, params: &[u8]) -> Result<()>;

    /// Creates structure `ds` like [`Backend::construct`], placed as `placement` says on a
    /// backend that spans several servers (see [`sharded`]). On one server placement means
    /// nothing: the default ignores it and calls [`Backend::construct`].
    ///
    /// # Errors
    /// As [`Backend::construct`].
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
    ) -> Result<()> {
        let _ = placement;
        self.construct(ds, device, params)
    }

    /// Destroys structure `ds` and frees everything it stored.
    ///
    /// # Errors
    /// [`crate::Error::UnknownStructure`].
    fn destruct(&self, ds: u32) -> Result<()>;

    /// Runs operation `opcode` of structure `ds`'s device next to the data.
    ///
    /// # Errors
    /// [`crate::Error::UnknownOpcode`], or whatever the device reports.
    fn compute(&self, ds: u32, opcode: u32, input: &[u8]) -> Result<Vec<u8>>;

    /// Starts [`Backend::compute`] and returns at once; [`InFlight::wait`] gives its answer.
    /// A networked backend sends the request now, so operations started one after the other
    /// on different servers (a replicated structure's replicas) run at the same time. The
    /// default runs it at once (blocking) and hands back the finished result.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::{Backend, EmbeddedBackend, OBJECT_STORE};
    /// let b = EmbeddedBackend::new();
    /// // The plain object store offers no operations: the error comes back from `wait`.
    /// assert!(b.begin_compute(OBJECT_STORE, 1, b"").wait().is_err());
    /// ```
    fn begin_compute(&self, ds: u32, opcode: u32, input: &[u8]) -> ComputeInFlight {
        InFlight::done(self.compute(ds, opcode, input))
    }

    /// Runs the read-only operation `opcode` of structure `ds`'s device over the objects
    /// `keys`, once per *shard*: each key goes to exactly one server holding it, each server
    /// gets one request (its own keys, wrapped around `input` by
    /// [`sharded::encode_shard_input`]), and the answers come back one per shard, in no
    /// particular order, for the caller to merge. An empty `keys` asks no server and yields
    /// no answer. The default (one server) sends one request with every key.
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
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let wrapped = sharded::encode_shard_input(keys, input);
        Ok(vec![self.compute(ds, opcode, &wrapped)?])
    }

    /// Starts [`Backend::compute_sharded`] and returns at once; [`InFlight::wait`] gives its
    /// answers. A networked backend sends the request now, so the shards of a striped
    /// structure, each on its own server, work at the same time without a thread each. The
    /// default runs it at once (blocking) and hands back the finished result.
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
        InFlight::done(self.compute_sharded(ds, opcode, keys, input))
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

    /// Bytes currently stored (all structures of this client).
    fn stored_bytes(&self) -> u64;

    /// The state of the servers behind a backend that spans several (`None` for one).
    /// [`crate::Runtime::stats`] reports it.
    fn replication(&self) -> Option<replicated::ReplicatedStats> {
        None
    }
}

/// A shared backend is a backend: keep a handle to it (for statistics, or to share one store
/// between runtimes) and give the runtime a clone.
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
    fn read(&self, ds: u32, key: &[u8]) -> Result<Option<Vec<u8>>> {
        (**self).read(ds, key)
    }
    fn write(&self, ds: u32, key: &[u8], value: &[u8]) -> Result<()> {
        (**self).write(ds, key, value)
    }
    fn remove(&self, ds: u32, key: &[u8]) -> Result<bool> {
        (**self).remove(ds, key)
    }
    fn begin_read(&self, ds: u32, key: &[u8]) -> ReadInFlight {
        (**self).begin_read(ds, key)
    }
    fn read_many(&self, ds: u32, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        (**self).read_many(ds, keys)
    }
    fn read_many_with(
        &self,
        ds: u32,
        keys: &[&[u8]],
        sink: &mut dyn FnMut(usize, Option<&[u8]>),
    ) -> Result<()> {
        (**self).read_many_with(ds, keys, sink)
    }
    fn write_many(&self, ds: u32, items: &[(&[u8], &[u8])]) -> Result<()> {
        (**self).write_many(ds, items)
    }
    fn remove_many(&self, ds: u32, keys: &[&[u8]]) -> Result<()> {
        (**self).remove_many(ds, keys)
    }
    fn begin_read_many(&self, ds: u32, keys: &[&[u8]]) -> ManyInFlight {
        (**self).begin_read_many(ds, keys)
    }
    fn begin_write_many(&self, ds: u32, items: &[(&[u8], &[u8])]) -> InFlight<()> {
        (**self).begin_write_many(ds, items)
    }
    fn begin_remove_many(&self, ds: u32, keys: &[&[u8]]) -> InFlight<()> {
        (**self).begin_remove_many(ds, keys)
    }
    fn construct(&self, ds: u32, device: &str, params: &[u8]) -> Result<()> {
        (**self).construct(ds, device, params)
    }
    fn destruct(&self, ds: u32) -> Result<()> {
        (**self).destruct(ds)
    }
    fn compute(&self, ds: u32, opcode: u32, input: &[u8]) -> Result<Vec<u8>> {
        (**self).compute(ds, opcode, input)
    }
    fn begin_compute(&self, ds: u32, opcode: u32, input: &[u8]) -> ComputeInFlight {
        (**self).begin_compute(ds, opcode, input)
    }
    fn construct_placed(
        &self,
        ds: u32,
        device: &str,
        params: &[u8],
        placement: Placement,
    ) -> Result<()> {
        (**self).construct_placed(ds, device, params, placement)
    }
    fn compute_sharded(
        &self,
        ds: u32,
        opcode: u32,
        keys: &[&[u8]],
        input: &[u8],
    ) -> Result<Vec<Vec<u8>>> {
        (**self).compute_sharded(ds, opcode, keys, input)
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
    fn stored_bytes(&self) -> u64 {
        (**self).stored_bytes()
    }
    fn replication(&self) -> Option<replicated::ReplicatedStats> {
        (**self).replication()
    }
}
