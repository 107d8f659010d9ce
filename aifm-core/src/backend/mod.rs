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
//!   placement), surviving the death of servers as long as one replica of each object lives;
//!   optionally with the object store erasure-coded instead (`k` data + `m` parity fragments
//!   per object, surviving `m` dead servers for `(k + m) / k` times the memory).
//! * `redis` (cargo feature `redis`): a Redis Cluster or Valkey cluster, the structures'
//!   operations run in the client (`redis::RedisClusterBackend`).
//!
//! [`sharded`] holds what every flavour shares about structures spread over several servers:
//! the per-structure [`Placement`] and the key-list wrapping of [`Backend::compute_sharded`].
//!
//! Batched forms have default implementations that loop; a networked backend overrides them to
//! pay one round trip per batch.

pub mod embedded;
pub mod faulty;
#[cfg(feature = "redis")]
pub mod redis;
pub mod replicated;
pub mod sharded;
pub mod tcp;

use crate::error::Result;

pub use embedded::EmbeddedBackend;
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

/// A request started with [`Backend::begin_read`] or [`Backend::begin_compute`]: wait for
/// its answer.
///
/// # Examples
///
/// ```
/// use aifm_core::backend::InFlight;
/// let later: InFlight<u32> = InFlight::later(|| Ok(7));
/// assert_eq!(later.wait().unwrap(), 7);
/// assert!(InFlight::<u32>::done(Err(aifm_core::Error::Timeout)).wait().is_err());
/// ```
pub struct InFlight<T>(Pending<T>);

/// A read in flight ([`Backend::begin_read`]).
///
/// # Examples
///
/// ```
/// use aifm_core::backend::ReadInFlight;
/// let later = ReadInFlight::later(|| Ok(Some(b"v".to_vec())));
/// assert_eq!(later.wait().unwrap().as_deref(), Some(&b"v"[..]));
/// ```
pub type ReadInFlight = InFlight<Option<Vec<u8>>>;

/// A device operation in flight ([`Backend::begin_compute`]).
///
/// # Examples
///
/// ```
/// use aifm_core::backend::ComputeInFlight;
/// assert_eq!(ComputeInFlight::done(Ok(vec![1])).wait().unwrap(), [1]);
/// ```
pub type ComputeInFlight = InFlight<Vec<u8>>;

/// A batch read in flight ([`Backend::begin_read_many`]): one value per key, in order.
///
/// # Examples
///
/// ```
/// use aifm_core::backend::ManyInFlight;
/// assert_eq!(ManyInFlight::done(Ok(vec![None])).wait().unwrap(), [None]);
/// ```
pub type ManyInFlight = InFlight<Vec<Option<Vec<u8>>>>;

enum Pending<T> {
    Done(Result<T>),
    Later(Box<dyn FnOnce() -> Result<T> + Send>),
}

impl<T> InFlight<T> {
    /// A request that has already finished with `result`.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = aifm_core::backend::ReadInFlight::done(Ok(None));
    /// assert_eq!(r.wait().unwrap(), None);
    /// ```
    pub fn done(result: Result<T>) -> Self {
        InFlight(Pending::Done(result))
    }

    /// A request whose answer `wait` will get (one already sent, typically).
    ///
    /// # Examples
    ///
    /// ```
    /// let r = aifm_core::backend::ReadInFlight::later(|| Ok(None));
    /// assert_eq!(r.wait().unwrap(), None);
    /// ```
    pub fn later(wait: impl FnOnce() -> Result<T> + Send + 'static) -> Self {
        InFlight(Pending::Later(Box::new(wait)))
    }

    /// Waits for the answer.
    ///
    /// # Errors
    /// As the blocking form of the request ([`Backend::read`], [`Backend::compute`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let r = aifm_core::backend::ReadInFlight::done(Ok(Some(vec![1])));
    /// assert_eq!(r.wait().unwrap(), Some(vec![1]));
    /// ```
    pub fn wait(self) -> Result<T> {
        match self.0 {
            Pending::Done(r) => r,
            Pending::Later(f) => f(),
        }
    }
}

impl<T> std::fmt::Debug for InFlight<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Pending::Done(_) => "InFlight(done)",
            Pending::Later(_) => "InFlight(in flight)",
        })
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
    Ok(connect_servers(addr, replicas, None)?.0)
}

/// Like [`connect_replicated`], with the object store erasure-coded as `data` data and
/// `parity` parity fragments per object (see
/// [`replicated::ReplicatedBackend::with_erasure`]); other structures keep `replicas` whole
/// copies (`None`: 2).
///
/// # Errors
/// As [`connect`]; [`crate::Error::Config`] when `addr` lists fewer than `data + parity`
/// servers or the code is invalid (checked before connecting).
///
/// # Examples
///
/// ```
/// let e = aifm_core::backend::connect_erasure("127.0.0.1:1,127.0.0.1:2", None, 2, 1).err().unwrap();
/// assert!(matches!(e, aifm_core::Error::Config(_)));
/// ```
pub fn connect_erasure(
    addr: &str,
    replicas: Option<usize>,
    data: usize,
    parity: usize,
) -> Result<Box<dyn Backend>> {
    Ok(connect_servers(addr, replicas, Some((data, parity)))?.0)
}

/// A connected backend, and the several-server backend inside it if there is one.
pub(crate) type Connected = (
    Box<dyn Backend>,
    Option<std::sync::Arc<replicated::ReplicatedBackend>>,
);

/// What [`connect_replicated`] and [`connect_erasure`] build, also returning the
/// [`replicated::ReplicatedBackend`] built for a several-server list (the runtime keeps it
/// for [`crate::Runtime::replace_server`]). A single address ignores `replicas` and
/// `erasure`.
pub(crate) fn connect_servers(
    addr: &str,
    replicas: Option<usize>,
    erasure: Option<(usize, usize)>,
) -> Result<Connected> {
    if addr.trim_start().starts_with("redis://") {
        #[cfg(feature = "redis")]
        return Ok((Box::new(redis::RedisClusterBackend::connect(addr)?), None));
        #[cfg(not(feature = "redis"))]
        return Err(crate::Error::Config(format!(
            "{addr:?} needs aifm built with the `redis` feature"
        )));
    }
    let addrs = split_addresses(addr)?;
    if let Some((data, parity)) = erasure {
        if addrs.len() < data.saturating_add(parity) || data == 0 || parity == 0 {
            return Err(crate::Error::Config(format!(
                "erasure coding {data}+{parity} needs at least {} servers (and 1 data, 1 parity fragment), {addr:?} lists {}",
                data.saturating_add(parity),
                addrs.len()
            )));
        }
    }
    if let [one] = addrs[..] {
        return Ok((Box::new(tcp::TcpBackend::connect(one)?), None));
    }
    let far = several(&addrs, replicas)?;
    let far = std::sync::Arc::new(match erasure {
        Some((data, parity)) => far.with_erasure(data, parity)?,
        None => far,
    });
    Ok((Box::new(far.clone()), Some(far)))
}

/// Reads an erasure code written `k+m` (as `AIFM_ERASURE` takes it): `(k, m)`.
///
/// # Errors
/// [`crate::Error::Config`] when `text` is not two positive numbers joined by `+`.
///
/// # Examples
///
/// ```
/// use aifm_core::backend::parse_erasure;
/// assert_eq!(parse_erasure("2+1").unwrap(), (2, 1));
/// assert!(parse_erasure("2").is_err());
/// assert!(parse_erasure("0+1").is_err());
/// ```
pub fn parse_erasure(text: &str) -> Result<(usize, usize)> {
    let bad = || crate::Error::Config(format!("{text:?} is not an erasure code like 2+1"));
    let (k, m) = text.split_once('+').ok_or_else(bad)?;
    let k: usize = k.trim().parse().map_err(|_| bad())?;
    let m: usize = m.trim().parse().map_err(|_| bad())?;
    if k == 0 || m == 0 {
        return Err(bad());
    }
    Ok((k, m))
}

fn split_addresses(addr: &str) -> Result<Vec<&str>> {
    let addrs: Vec<&str> = addr
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect();
    if addrs.is_empty() {
        return Err(crate::Error::Config(format!(
            "no server address in {addr:?}"
        )));
    }
    Ok(addrs)
}

fn several(addrs: &[&str], replicas: Option<usize>) -> Result<replicated::ReplicatedBackend> {
    let servers = addrs
        .iter()
        .map(|a| Ok(Box::new(tcp::TcpBackend::connect(a)?) as Box<dyn Backend>))
        .collect::<Result<Vec<_>>>()?;
    let far = replicated::ReplicatedBackend::new(servers)?;
    Ok(match replicas {
        Some(r) => far.with_replicas(r),
        None => far,
    })
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
