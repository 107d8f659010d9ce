//! The engine: what a memory server runs, and what the embedded backend runs in-process.
//!
//! An [`Engine`] owns the [`DeviceRegistry`] (device types by name, `registry.rs`) and hands out
//! [`Namespace`]s, one per client, each with its own [`Quota`] (see [`quota`] for what it
//! charges), all drawing from the engine's [`Pool`] when it has one (a server's capacity). A
//! namespace maps structure ids to live [`RemoteDevice`] instances; structure
//! [`OBJECT_STORE`] exists from the start (uncharged: a namespace's fixed cost is bounded by
//! the sessions a server admits).
//!
//! # Batches
//!
//! [`Namespace::write_many`] and [`Namespace::remove_many`] are all-or-nothing: every key
//! is checked by its device first ([`RemoteDevice::check_key`]), a write batch reserves its
//! worst-case charge before its first write ([`Quota::reserved`]), so once a batch starts
//! nothing can fail half-way. [`Namespace::read_many`] sizes its reply as it reads and stops
//! at the namespace's reply limit, so a few keys naming large objects never build a reply
//! larger than one frame.
//!
//! # Where the engine lives, and why
//!
//! The engine sits in `aifm-core` so that the process-wide default runtime (embedded backend)
//! needs nothing but the core. `aifm-server` is only the network front end over this engine;
//! `aifm-collections` registers its devices here. The arrows point one way:
//! collections → core ← server.

pub mod client;
mod device;
mod object_store;
pub mod quota;
mod registry;

pub use device::{key_page, DeviceFactory, RemoteDevice};
pub use object_store::{ObjectStore, OBJECT_STORE, OBJECT_STORE_DEVICE};
pub use quota::{
    Limits, Peers, Pool, Quota, ReplyHold, MAX_BATCH_KEYS, OBJECT_OVERHEAD, STRUCTURE_COST,
};
pub use registry::DeviceRegistry;
pub(crate) use registry::Factories;

use crate::error::{Error, Result};
use crate::sync::RwLockExt;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

/// The device registry plus namespace factory.
///
/// # Examples
///
/// ```
/// use aifm_core::engine::Engine;
/// let ns = Engine::global().namespace(1 << 20);
/// ns.write(0, b"key", b"value").unwrap();
/// assert_eq!(ns.stored_bytes(), 8);
/// ```
#[derive(Debug)]
pub struct Engine {
    registry: Arc<DeviceRegistry>,
    pool: Option<Arc<Pool>>,
    limits: Limits,
}

impl Default for Engine {
    /// An in-process engine: no shared pool, [`Limits::UNMETERED`].
    fn default() -> Self {
        Engine {
            registry: Arc::default(),
            pool: None,
            limits: Limits::UNMETERED,
        }
    }
}

impl Engine {
    /// An engine whose namespaces all draw from one pool of `capacity` bytes, each with
    /// `limits` (a memory server's).
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::engine::{Engine, Limits};
    /// let e = Engine::with_limits(1 << 20, Limits::server(1 << 16));
    /// let (a, b) = (e.namespace(1 << 20), e.namespace(1 << 20));
    /// a.write(0, b"k", &[0; 600 << 10]).unwrap();
    /// assert!(b.write(0, b"k", &[0; 600 << 10]).unwrap_err().is_server_full());
    /// assert_eq!(e.pool().unwrap().used(), a.charged_bytes());
    /// ```
    pub fn with_limits(capacity: u64, limits: Limits) -> Engine {
        Engine {
            registry: Arc::default(),
            pool: Some(Arc::new(Pool::new(capacity))),
            limits,
        }
    }

    /// The pool shared by this engine's namespaces, if it has one.
    pub fn pool(&self) -> Option<&Pool> {
        self.pool.as_deref()
    }

    /// The limits every namespace of this engine gets.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The process-wide engine (used by the embedded backend and by the server binary).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(aifm_core::engine::Engine::global().registry().contains(aifm_core::engine::OBJECT_STORE_DEVICE));
    /// ```
    pub fn global() -> &'static Engine {
        static GLOBAL: OnceLock<Engine> = OnceLock::new();
        GLOBAL.get_or_init(Engine::default)
    }

    /// The device registry of this engine.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = aifm_core::engine::Engine::default();
    /// assert!(e.registry().contains(aifm_core::engine::OBJECT_STORE_DEVICE));
    /// ```
    pub fn registry(&self) -> &DeviceRegistry {
        &self.registry
    }

    /// A fresh, empty namespace whose objects may use at most `quota_bytes`.
    ///
    /// # Examples
    ///
    /// ```
    /// let ns = aifm_core::engine::Engine::global().namespace(100);
    /// assert!(ns.write(0, b"k", &[0; 200]).unwrap_err().is_server_full());
    /// ```
    pub fn namespace(&self, quota_bytes: u64) -> Namespace {
        let quota = Arc::new(Quota::with_limits(
            quota_bytes,
            self.pool.clone(),
            self.limits,
        ));
        let store: Arc<dyn RemoteDevice> = Arc::new(ObjectStore::new(quota.clone()));
        let devices = RwLock::new(HashMap::from([(OBJECT_STORE, store)]));
        Namespace {
            registry: self.registry.clone(),
            quota,
            devices,
        }
    }
}

/// One client's structures and its quota.
///
/// # Examples
///
/// ```
/// let ns = aifm_core::engine::Engine::global().namespace(1 << 20);
/// ns.write(0, b"k", b"v").unwrap();
/// assert_eq!(ns.structures(), 1);
/// ```
pub struct Namespace {
    registry: Arc<DeviceRegistry>,
    quota: Arc<Quota>,
    devices: RwLock<HashMap<u32, Arc<dyn RemoteDevice>>>,
}

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace")
            .field("structures", &self.devices.reading().len())
            .field("quota", &self.quota)
            .finish()
    }
}

impl Namespace {
    fn device(&self, ds: u32) -> Result<Arc<dyn RemoteDevice>> {
        self.devices
            .reading()
            .get(&ds)
            .cloned()
            .ok_or(Error::UnknownStructure(ds))
    }

    /// Reads object `key` of structure `ds`.
    ///
    /// # Errors
    /// [`Error::UnknownStructure`], or the device's own error.
    ///
    /// # Examples
    ///
    /// ```
    /// let ns = aifm_core::engine::Engine::global().namespace(1 << 20);
    /// assert_eq!(ns.read(0, b"absent").unwrap(), None);
    /// assert!(ns.read(42, b"k").is_err(), "no structure 42");
    /// ```
    pub fn read(&self, ds: u32, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.device(ds)?.read(key)
    }

    /// Lends object `key` of structure `ds` to `f` in place (see
    /// [`RemoteDevice::read_with`]).
    ///
    /// # Errors
    /// [`Error::UnknownStructure`]; device errors.
    ///
    /// # Examples
    ///
    /// ```
    /// let ns = aifm_core::engine::Engine::global().namespace(1 << 20);
    /// ns.write(0, b"k", b"v").unwrap();
    /// let mut len = 0;
    /// ns.read_with(0, b"k", &mut |v| len = v.map_or(0, <[u8]>::len)).unwrap();
    /// assert_eq!(len, 1);
    /// ```
    pub fn read_with(&self, ds: u32, key: &[u8], f: &mut dyn FnMut(Option<&[u8]>)) -> Result<()> {
        self.device(ds)?.read_with(key, f)
    }

    /// Writes object `key` of structure `ds`.
    ///
    /// # Errors
    /// [`Error::ServerFull`] beyond the quota; [`Error::UnknownStructure`].
    ///
    /// # Examples
    ///
    /// ```
    /// let ns = aifm_core::engine::Engine::global().namespace(1 << 20);
    /// ns.write(0, b"k", b"v").unwrap();
    /// assert_eq!(ns.read(0, b"k").unwrap().unwrap(), b"v");
    /// ```
    pub fn write(&self, ds: u32, key: &[u8], value: &[u8]) -> Result<()> {
        self.device(ds)?.write(key, value)
    }

    /// Removes object `key` of structure `ds`.
    ///
    /// # Errors
    /// [`Error::UnknownStructure`].
    ///
    /// # Examples
    ///
    /// ```
    /// let ns = aifm_core::engine::Engine::global().namespace(1 << 20);
    /// ns.write(0, b"k", b"v").unwrap();
    /// assert!(ns.remove(0, b"k").unwrap());
    /// assert!(!ns.remove(0, b"k").unwrap());
    /// ```
    pub fn remove(&self, ds: u32, key: &[u8]) -> Result<bool> {
        self.device(ds)?.remove(key)
    }

    /// Creates structure `ds` with device type `device`, charging the quota one structure.
    /// Re-constructing an existing id with the same device type is a no-op (so a client may
    /// retry after a lost reply).
    ///
    /// # Errors
    /// [`Error::UnknownDevice`]; [`Error::Remote`] if `ds` exists with another type;
    /// [`Error::ServerFull`] when the structure's charge does not fit.
    ///
    /// # Examples
    ///
    /// ```
    /// let ns = aifm_core::engine::Engine::global().namespace(1 << 20);
    /// ns.construct(5, aifm_core::engine::OBJECT_STORE_DEVICE, &[]).unwrap();
    /// assert_eq!(ns.structures(), 2);
    /// ```
    pub fn construct(&self, ds: u32, device: &str, params: &[u8]) -> Result<()> {
        if let Some(existing) = self.devices.reading().get(&ds) {
            return if existing.type_name() == device {
                Ok(())
            } else {
                Err(Error::Remote(format!(
                    "structure {ds} exists as {}",
                    existing.type_name()
                )))
            };
        }
        self.quota.add_structure()?;
        let dev = match self.registry.create(device, params, self.quota.clone()) {
            Ok(dev) => Arc::<dyn RemoteDevice>::from(dev),
            Err(e) => {
                self.quota.remove_structure();
                return Err(e);
            }
        };
        let mut devices = self.devices.writing();
        if devices.contains_key(&ds) {
            // Another connection of this namespace constructed it meanwhile.
            drop(devices);
            self.quota.remove_structure();
            return self.construct(ds, device, params);
        }
        devices.insert(ds, dev);
        Ok(())
    }

    /// Destroys structure `ds`, freeing its bytes.
    ///
    /// # Errors
    /// [`Error::UnknownStructure`]; the object store cannot be destroyed.
    ///
    /// # Examples
    ///
    /// ```
    /// let ns = aifm_core::engine::Engine::global().namespace(1 << 20);
    /// ns.construct(5, aifm_core::engine::OBJECT_STORE_DEVICE, &[]).unwrap();
    /// ns.write(5, b"k", b"v").unwrap();
    /// ns.destruct(5).unwrap();
    /// assert_eq!(ns.stored_bytes(), 0);
    /// ```
    pub fn destruct(&self, ds: u32) -> Result<()> {
        if ds == OBJECT_STORE {
            return Err(Error::Remote(
                "the object store cannot be destructed".into(),
            ));
        }
        let dev = self
            .devices
            .writing()
            .remove(&ds)
            .ok_or(Error::UnknownStructure(ds))?;
        dev.clear();
        self.quota.remove_structure();
        Ok(())
    }

    /// Runs `opcode` on structure `ds`'s device.
    ///
    /// # Errors
    /// [`Error::UnknownOpcode`], [`Error::UnknownStructure`], or the device's own error.
    ///
    /// # Examples
    ///
    /// ```
    /// let ns = aifm_core::engine::Engine::global().namespace(1 << 20);
    /// assert_eq!(ns.compute(0, 1, &[]).unwrap_err(), aifm_core::Error::UnknownOpcode(1));
    /// ```
    pub fn compute(&self, ds: u32, opcode: u32, input: &[u8]) -> Result<Vec<u8>> {
        self.device(ds)?.compute(opcode, input)
    }

    /// One page of the keys of structure `ds`: those greater than `after` (all when `None`),
    /// in increasing bytewise order, at most `limit` (see [`RemoteDevice::keys`]).
    ///
    /// # Errors
    /// [`Error::UnknownStructure`]; [`Error::Unsupported`] when the device cannot list keys.
    ///
    /// # Examples
    ///
    /// ```
    /// let ns = aifm_core::engine::Engine::global().namespace(1 << 20);
    /// ns.write(0, b"b", b"2").unwrap();
    /// ns.write(0, b"a", b"1").unwrap();
    /// assert_eq!(ns.keys(0, None, 10).unwrap(), [b"a".to_vec(), b"b".to_vec()]);
    /// assert_eq!(ns.keys(0, Some(b"a"), 10).unwrap(), [b"b".to_vec()]);
    /// assert!(ns.keys(9, None, 10).unwrap_err() == aifm_core::Error::UnknownStructure(9));
    /// ```
    pub fn keys(&self, ds: u32, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>> {
        self.device(ds)?.keys(after, limit)
    }

    /// Reads objects `keys` of structure `ds`, holding the reply's size in `hold` as it
    /// grows: a reply that would pass the namespace's reply limit stops before it is built
    /// (ask for fewer keys at a time, or read them one by one).
    ///
    /// # Errors
    /// [`Error::Protocol`] for more keys than [`Limits::batch_keys`] or a reply too large;
    /// [`Error::ServerFull`] when the namespace has too many reply bytes in flight;
    /// [`Error::UnknownStructure`]; the device's own error.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::engine::{Engine, Limits};
    /// let ns = Engine::with_limits(1 << 30, Limits::server(1 << 16)).namespace(1 << 30);
    /// ns.write(0, b"big", &[1; 40 << 10]).unwrap();
    /// let mut hold = ns.reply_hold();
    /// assert_eq!(ns.read_many(0, [&b"big"[..]], &mut hold).unwrap().len(), 1);
    /// let mut hold = ns.reply_hold();
    /// assert!(ns.read_many(0, [&b"big"[..]; 2], &mut hold).is_err(), "80 KiB > one frame");
    /// ```
    pub fn read_many<'k>(
        &self,
        ds: u32,
        keys: impl IntoIterator<Item = &'k [u8], IntoIter: ExactSizeIterator>,
        hold: &mut ReplyHold<'_>,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let keys = keys.into_iter();
        self.check_batch(keys.len())?;
        let dev = self.device(ds)?;
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            let v = dev.read(k)?;
            // Encoded: an option tag, a length (at most 10 bytes), the bytes.
            hold.grow(v.as_ref().map_or(1, |v| 11 + v.len() as u64))?;
            out.push(v);
        }
        Ok(out)
    }

    /// Writes objects `items` of structure `ds`, all or none: every key is checked first
    /// and the batch's worst-case charge is reserved before the first write.
    ///
    /// # Errors
    /// [`Error::ServerFull`] (nothing written); [`Error::Protocol`] for more items than
    /// [`Limits::batch_keys`]; [`Error::UnknownStructure`]; a key the device refuses.
    ///
    /// # Examples
    ///
    /// ```
    /// let ns = aifm_core::engine::Engine::global().namespace(100);
    /// let items = [(&b"a"[..], &[0u8; 40][..]), (&b"b"[..], &[0u8; 70][..])];
    /// assert!(ns.write_many(0, items).unwrap_err().is_server_full());
    /// assert_eq!(ns.stored_bytes(), 0, "nothing of a refused batch is stored");
    /// ```
    pub fn write_many<'k>(
        &self,
        ds: u32,
        items: impl IntoIterator<Item = (&'k [u8], &'k [u8]), IntoIter: Clone + ExactSizeIterator>,
    ) -> Result<()> {
        let items = items.into_iter();
        self.check_batch(items.len())?;
        let dev = self.device(ds)?;
        let overhead = self.quota.limits().object_overhead;
        let mut worst = 0u64;
        for (k, v) in items.clone() {
            dev.check_key(k)?;
            worst = worst.saturating_add((k.len() + v.len()) as u64 + overhead);
        }
        self.quota.reserved(worst, || {
            items.clone().try_for_each(|(k, v)| dev.write(k, v))
        })
    }

    /// Removes objects `keys` of structure `ds`, all or none (every key is checked first).
    ///
    /// # Errors
    /// [`Error::Protocol`] for more keys than [`Limits::batch_keys`];
    /// [`Error::UnknownStructure`]; a key the device refuses (nothing removed).
    ///
    /// # Examples
    ///
    /// ```
    /// let ns = aifm_core::engine::Engine::global().namespace(100);
    /// ns.write(0, b"a", b"1").unwrap();
    /// ns.remove_many(0, [&b"a"[..], &b"b"[..]]).unwrap();
    /// assert_eq!(ns.stored_bytes(), 0);
    /// ```
    pub fn remove_many<'k>(
        &self,
        ds: u32,
        keys: impl IntoIterator<Item = &'k [u8], IntoIter: Clone + ExactSizeIterator>,
    ) -> Result<()> {
        let keys = keys.into_iter();
        self.check_batch(keys.len())?;
        let dev = self.device(ds)?;
        keys.clone().try_for_each(|k| dev.check_key(k))?;
        keys.into_iter().try_for_each(|k| dev.remove(k).map(drop))
    }

    fn check_batch(&self, n: usize) -> Result<()> {
        let max = self.quota.limits().batch_keys;
        if n > max {
            return Err(Error::Protocol(format!(
                "a batch of {n} keys: at most {max} per request"
            )));
        }
        Ok(())
    }

    /// An empty hold on this namespace's replies in flight (see [`Quota::hold_reply`]).
    pub fn reply_hold(&self) -> ReplyHold<'_> {
        self.quota
            .hold_reply(0)
            .expect("holding nothing always fits")
    }

    /// This namespace's quota.
    pub fn quota(&self) -> &Quota {
        &self.quota
    }

    /// Everything this namespace is charged: its key and value bytes, each object's and each
    /// structure's overhead (see [`quota`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::engine::{Engine, Limits, OBJECT_OVERHEAD};
    /// let ns = Engine::with_limits(1 << 20, Limits::server(1 << 16)).namespace(1 << 20);
    /// ns.write(0, b"k", b"").unwrap();
    /// assert_eq!((ns.stored_bytes(), ns.charged_bytes()), (1, 1 + OBJECT_OVERHEAD));
    /// ```
    pub fn charged_bytes(&self) -> u64 {
        self.quota.used()
    }

    /// Key and value bytes stored by all structures of this namespace.
    ///
    /// # Examples
    ///
    /// ```
    /// let ns = aifm_core::engine::Engine::global().namespace(1 << 20);
    /// ns.write(0, b"ab", b"cd").unwrap();
    /// assert_eq!(ns.stored_bytes(), 4);
    /// ```
    pub fn stored_bytes(&self) -> u64 {
        self.quota.payload()
    }

    /// Number of live structures (the object store included).
    ///
    /// # Examples
    ///
    /// ```
    /// let ns = aifm_core::engine::Engine::global().namespace(1 << 20);
    /// assert_eq!(ns.structures(), 1); // the object store
    /// ```
    pub fn structures(&self) -> usize {
        self.devices.reading().len()
    }
}

impl Drop for Namespace {
    /// Clears every structure, giving all its charges back (to the pool too).
    fn drop(&mut self) {
        for (&ds, dev) in self.devices.get_mut().unwrap().iter() {
            dev.clear();
            if ds != OBJECT_STORE {
                self.quota.remove_structure();
            }
        }
    }
}
