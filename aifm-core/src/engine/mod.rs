//! The engine: what a memory server runs, and what the embedded backend runs in-process.
//!
//! An [`Engine`] owns the [`DeviceRegistry`] (device types by name) and hands out
//! [`Namespace`]s, one per client, each with its own quota. A namespace maps structure ids to
//! live [`RemoteDevice`] instances; structure [`OBJECT_STORE`]
//! exists from the start.
//!
//! # Where the engine lives, and why
//!
//! The engine sits in `aifm-core` so that the process-wide default runtime (embedded backend)
//! needs nothing but the core. `aifm-server` is only the network front end over this engine;
//! `aifm-collections` registers its devices here. The arrows point one way:
//! collections → core ← server.

mod device;
pub mod local;
mod object_store;

pub use device::{key_page, DeviceFactory, Quota, RemoteDevice};
pub use object_store::ObjectStore;

use crate::backend::{OBJECT_STORE, OBJECT_STORE_DEVICE};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

/// Device types by name. Registering the same name twice keeps the first.
///
/// # Examples
///
/// ```
/// use aifm_core::engine::{DeviceRegistry, ObjectStore};
/// let r = DeviceRegistry::default();
/// assert!(r.contains(aifm_core::backend::OBJECT_STORE_DEVICE));
/// r.register("my.store", |_params, quota| Ok(Box::new(ObjectStore::new(quota))));
/// assert!(r.contains("my.store"));
/// ```
pub struct DeviceRegistry {
    factories: Factories<DeviceFactory>,
}

impl std::fmt::Debug for DeviceRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceRegistry")
            .field("devices", &self.factories.names())
            .finish()
    }
}

impl Default for DeviceRegistry {
    fn default() -> Self {
        let r = DeviceRegistry {
            factories: Factories::default(),
        };
        r.register(OBJECT_STORE_DEVICE, |_params, quota| {
            Ok(Box::new(ObjectStore::new(quota)))
        });
        r
    }
}

impl DeviceRegistry {
    /// Registers device type `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::engine::{DeviceRegistry, ObjectStore};
    /// let r = DeviceRegistry::default();
    /// r.register("store.v2", |_, quota| Ok(Box::new(ObjectStore::new(quota))));
    /// assert!(r.contains("store.v2"));
    /// ```
    pub fn register(&self, name: &str, factory: DeviceFactory) {
        self.factories.register(name, factory);
    }

    /// Whether device type `name` is registered.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!aifm_core::engine::DeviceRegistry::default().contains("nope"));
    /// ```
    pub fn contains(&self, name: &str) -> bool {
        self.factories.contains(name)
    }

    fn create(
        &self,
        name: &str,
        params: &[u8],
        quota: Arc<Quota>,
    ) -> Result<Box<dyn RemoteDevice>> {
        self.factories.get(name)?(params, quota)
    }
}

/// Factories by device type name, registered once each: the shared core of the engine's
/// [`DeviceRegistry`] and the client-side [`local::LocalDeviceRegistry`] (which differ only in
/// what a factory builds). Registering a name twice keeps the first factory.
pub(crate) struct Factories<F> {
    by_name: Mutex<HashMap<String, F>>,
}

impl<F> Default for Factories<F> {
    fn default() -> Self {
        Factories {
            by_name: Mutex::new(HashMap::new()),
        }
    }
}

impl<F: Copy> Factories<F> {
    /// Registers `factory` under `name` unless the name is taken.
    pub(crate) fn register(&self, name: &str, factory: F) {
        self.by_name
            .lock()
            .unwrap()
            .entry(name.to_string())
            .or_insert(factory);
    }

    /// Whether `name` is registered.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.by_name.lock().unwrap().contains_key(name)
    }

    /// The factory of `name`; [`Error::UnknownDevice`] when there is none.
    pub(crate) fn get(&self, name: &str) -> Result<F> {
        self.by_name
            .lock()
            .unwrap()
            .get(name)
            .copied()
            .ok_or_else(|| Error::UnknownDevice(name.to_string()))
    }

    /// The registered names (in no particular order), for `Debug`.
    pub(crate) fn names(&self) -> Vec<String> {
        self.by_name.lock().unwrap().keys().cloned().collect()
    }
}

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
#[derive(Debug, Default)]
pub struct Engine {
    registry: Arc<DeviceRegistry>,
}

impl Engine {
    /// The process-wide engine (used by the embedded backend and by the server binary).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(aifm_core::engine::Engine::global().registry().contains(aifm_core::backend::OBJECT_STORE_DEVICE));
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
    /// assert!(e.registry().contains(aifm_core::backend::OBJECT_STORE_DEVICE));
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
        let quota = Arc::new(Quota::new(quota_bytes));
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
            .field("structures", &self.devices.read().unwrap().len())
            .field("quota", &self.quota)
            .finish()
    }
}

impl Namespace {
    fn device(&self, ds: u32) -> Result<Arc<dyn RemoteDevice>> {
        self.devices
            .read()
            .unwrap()
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

    /// Creates structure `ds` with device type `device`. Re-constructing an existing id with
    /// the same device type is a no-op (so a client may retry after a lost reply).
    ///
    /// # Errors
    /// [`Error::UnknownDevice`]; [`Error::Remote`] if `ds` exists with another type.
    ///
    /// # Examples
    ///
    /// ```
    /// let ns = aifm_core::engine::Engine::global().namespace(1 << 20);
    /// ns.construct(5, aifm_core::backend::OBJECT_STORE_DEVICE, &[]).unwrap();
    /// assert_eq!(ns.structures(), 2);
    /// ```
    pub fn construct(&self, ds: u32, device: &str, params: &[u8]) -> Result<()> {
        if let Some(existing) = self.devices.read().unwrap().get(&ds) {
            return if existing.type_name() == device {
                Ok(())
            } else {
                Err(Error::Remote(format!(
                    "structure {ds} exists as {}",
                    existing.type_name()
                )))
            };
        }
        let dev: Arc<dyn RemoteDevice> =
            Arc::from(self.registry.create(device, params, self.quota.clone())?);
        self.devices.write().unwrap().entry(ds).or_insert(dev);
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
    /// ns.construct(5, aifm_core::backend::OBJECT_STORE_DEVICE, &[]).unwrap();
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
            .write()
            .unwrap()
            .remove(&ds)
            .ok_or(Error::UnknownStructure(ds))?;
        dev.clear();
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

    /// Bytes stored by all structures of this namespace.
    ///
    /// # Examples
    ///
    /// ```
    /// let ns = aifm_core::engine::Engine::global().namespace(1 << 20);
    /// ns.write(0, b"ab", b"cd").unwrap();
    /// assert_eq!(ns.stored_bytes(), 4);
    /// ```
    pub fn stored_bytes(&self) -> u64 {
        self.quota.used()
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
        self.devices.read().unwrap().len()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        for dev in self.devices.get_mut().unwrap().values() {
            dev.clear();
        }
    }
}
