//! Where far memory lives: the [`Backend`] trait and its flavours.
//!
//! A backend stores opaque byte objects under `(structure id, key)` and hosts the structures'
//! remote devices (see [`crate::engine`]). Structure id [`OBJECT_STORE`] is the runtime's own
//! plain object store, present from the start; every other id is created with
//! [`Backend::construct`] by the data structure that owns it.
//!
//! Flavours, one file each:
//! * [`embedded`]: the in-process far store (the default), optionally with an injected
//!   per-request latency so tests and examples behave like a network.
//! * [`faulty`]: a wrapper that can be switched off, for testing failure handling.
//! * [`tcp`]: one `aifm-server`, over a pipelined TCP connection.
//! * [`replicated`]: several servers, each object on `replicas` of them (rendezvous
//!   placement), surviving the death of servers as long as one replica of each object lives.
//! * `redis` (cargo feature `redis`): a Redis Cluster or Valkey cluster, the structures'
//!   operations run in the client (`redis::RedisClusterBackend`).
//!
//! Batched forms have default implementations that loop; a networked backend overrides them to
//! pay one round trip per batch.

pub mod embedded;
pub mod faulty;
#[cfg(feature = "redis")]
pub mod redis;
pub mod replicated;
pub mod tcp;

use crate::error::Result;

pub use embedded::EmbeddedBackend;

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

    /// Reads many objects of one structure in one request.
    ///
    /// # Errors
    /// As [`Backend::read`]; the batch fails as a whole.
    fn read_many(&self, ds: u32, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        keys.iter().map(|k| self.read(ds, k)).collect()
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

    /// Creates structure `ds` served by the remote device type `device`.
    ///
    /// # Errors
    /// [`crate::Error::UnknownDevice`] when no such device type is registered.
    fn construct(&self, ds: u32, device: &str, params: &[u8]) -> Result<()>;

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

    /// Bytes currently stored (all structures of this client).
    fn stored_bytes(&self) -> u64;

    /// The state of the servers behind a backend that spans several (`None` for one).
    /// [`crate::Runtime::stats`] reports it.
    fn replication(&self) -> Option<replicated::ReplicatedStats> {
        None
    }
}

/// Connects to the memory server at `addr` (`host:port`) with [`tcp::TcpBuilder::from_env`]
/// settings (`AIFM_TOKEN_FILE`, `AIFM_TIMEOUT_MS`, `AIFM_SPIN_US`).
///
/// `addr` may also list several servers separated by commas (`host1:port,host2:port,...`):
/// the result is then a [`replicated::ReplicatedBackend`] over all of them with the default
/// replication factor (2); see [`connect_replicated`] to choose another.
///
/// With the `redis` feature, `redis://host:port[,host:port...]` connects to a Redis Cluster
/// (`redis::RedisClusterBackend`, settings from `AIFM_REDIS_*` variables); without it, such an address is a
/// [`crate::Error::Config`] error.
///
/// # Errors
/// [`crate::Error::Disconnected`] when a server cannot be reached,
/// [`crate::Error::AuthFailed`] for a wrong or missing token, [`crate::Error::Config`] for a
/// bad environment variable or an empty address list.
///
/// # Examples
///
/// ```
/// // Nothing listens on port 1: a typed error, no panic.
/// let e = aifm_core::backend::connect("127.0.0.1:1").err().unwrap();
/// assert!(e.is_disconnected());
/// let e = aifm_core::backend::connect("127.0.0.1:1, 127.0.0.1:2").err().unwrap();
/// assert!(e.is_disconnected());
/// ```
pub fn connect(addr: &str) -> Result<Box<dyn Backend>> {
    connect_replicated(addr, None)
}

/// Like [`connect`], with the replication factor of a several-server list chosen by
/// `replicas` (`None`: the default, 2; clamped to the number of servers). A single address
/// gives a plain [`tcp::TcpBackend`] whatever `replicas` says.
///
/// # Errors
/// As [`connect`]; every listed server must be reachable at the start.
///
/// # Examples
///
/// ```
/// let e = aifm_core::backend::connect_replicated("", Some(2)).err().unwrap();
/// assert!(matches!(e, aifm_core::Error::Config(_)));
/// ```
pub fn connect_replicated(addr: &str, replicas: Option<usize>) -> Result<Box<dyn Backend>> {
    if addr.trim_start().starts_with("redis://") {
        #[cfg(feature = "redis")]
        return Ok(Box::new(redis::RedisClusterBackend::connect(addr)?));
        #[cfg(not(feature = "redis"))]
        return Err(crate::Error::Config(format!(
            "{addr:?} needs aifm built with the `redis` feature"
        )));
    }
    let addrs: Vec<&str> = addr
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect();
    match addrs[..] {
        [] => Err(crate::Error::Config(format!(
            "no server address in {addr:?}"
        ))),
        [one] => Ok(Box::new(tcp::TcpBackend::connect(one)?)),
        _ => {
            let servers = addrs
                .iter()
                .map(|a| Ok(Box::new(tcp::TcpBackend::connect(a)?) as Box<dyn Backend>))
                .collect::<Result<Vec<_>>>()?;
            let far = replicated::ReplicatedBackend::new(servers)?;
            Ok(Box::new(match replicas {
                Some(r) => far.with_replicas(r),
                None => far,
            }))
        }
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
    fn read_many(&self, ds: u32, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        (**self).read_many(ds, keys)
    }
    fn write_many(&self, ds: u32, items: &[(&[u8], &[u8])]) -> Result<()> {
        (**self).write_many(ds, items)
    }
    fn remove_many(&self, ds: u32, keys: &[&[u8]]) -> Result<()> {
        (**self).remove_many(ds, keys)
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
    fn stored_bytes(&self) -> u64 {
        (**self).stored_bytes()
    }
    fn replication(&self) -> Option<replicated::ReplicatedStats> {
        (**self).replication()
    }
}
