//! Client-side devices: a structure's operations run next to the client, for stores that run
//! no aifm code (a Redis Cluster, see `backend::redis`).
//!
//! A [`RemoteDevice`](super::RemoteDevice) runs inside the memory server, next to the data. A
//! plain key-value store cannot host one, so a backend over such a store runs the structure's
//! operations in the client instead, against a [`FarObjects`] view of the structure: batched
//! reads, durable take-and-remove, batched removes and key listing, each a few pipelined round
//! trips. The operation code is the device's own: each collection (the vector, the hash
//! map) writes its opcodes once, as an executor over a source of its objects, and plugs in
//! either the server device's tables or a `FarObjects`, so both paths give the same answers.
//!
//! Device types register a [`ClientDeviceFactory`] in a [`ClientDeviceRegistry`] under the same
//! name as their remote device; the process-wide registry is [`ClientDeviceRegistry::global`]
//! (`aifm-collections` fills it on first use, as it fills the engine's). The plain object store
//! ([`OBJECT_STORE_DEVICE`]) is always present and has no operations.
//!
//! Invariants: a client-side device is built once per structure from its construction parameters
//! and holds no objects itself; everything it reads or changes goes through the `FarObjects`
//! it is handed. It touches nothing else.

use super::Factories;
use super::OBJECT_STORE_DEVICE;
use crate::error::{Error, Result};
use std::sync::OnceLock;

/// One structure's objects in far memory, as a client-side device sees them.
///
/// Keys are the structure's own keys (as the runtime and the device use them). All methods
/// are batched: a networked implementation pays one pipelined round trip per call (per node).
///
/// # Examples
///
/// ```
/// use aifm_core::engine::client::FarObjects;
/// use aifm_core::sync::MutexExt;
/// use aifm_core::Result;
/// use std::collections::BTreeMap;
/// use std::sync::Mutex;
/// /// Far objects in an in-memory map.
/// struct Mem(Mutex<BTreeMap<Vec<u8>, Vec<u8>>>);
/// impl FarObjects for Mem {
///     fn read_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
///         let m = self.0.locked();
///         Ok(keys.iter().map(|k| m.get(*k).cloned()).collect())
///     }
///     fn remove_many(&self, keys: &[&[u8]]) -> Result<()> {
///         let mut m = self.0.locked();
///         keys.iter().for_each(|k| drop(m.remove(*k)));
///         Ok(())
///     }
///     fn keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
///         let m = self.0.locked();
///         Ok(m.keys().filter(|k| k.starts_with(prefix)).cloned().collect())
///     }
///     fn find(&self, _device: &str, _params: &[u8]) -> Result<Option<Box<dyn FarObjects + '_>>> {
///         Ok(None)
///     }
/// }
/// let far = Mem(Mutex::new(BTreeMap::from([(b"a1".to_vec(), b"x".to_vec())])));
/// assert_eq!(far.take_many(&[b"a1", b"a2"]).unwrap(), vec![Some(b"x".to_vec()), None]);
/// assert!(far.keys(b"a").unwrap().is_empty());
/// ```
pub trait FarObjects {
    /// Reads many objects (`None` for an absent key), in the order of `keys`.
    ///
    /// # Errors
    /// Transport errors; the batch fails as a whole.
    fn read_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>>;

    /// Removes many objects (absent keys are skipped). When it returns `Ok`, the removal is
    /// as durable as the store's acknowledged writes.
    ///
    /// # Errors
    /// Transport errors; a prefix of the batch may have been removed.
    fn remove_many(&self, keys: &[&[u8]]) -> Result<()>;

    /// Reads and removes many objects: a value returned is gone from far memory, and a value
    /// not returned (on error) is still there. The default reads first and removes second,
    /// both retryable, so a reply lost in a failover loses nothing.
    ///
    /// # Errors
    /// As [`FarObjects::read_many`] and [`FarObjects::remove_many`].
    fn take_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        let values = self.read_many(keys)?;
        let present: Vec<&[u8]> = keys
            .iter()
            .zip(&values)
            .filter(|(_, v)| v.is_some())
            .map(|(k, _)| *k)
            .collect();
        if !present.is_empty() {
            self.remove_many(&present)?;
        }
        Ok(values)
    }

    /// Every key of the structure that starts with `prefix` (in no particular order).
    ///
    /// # Errors
    /// Transport errors.
    fn keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>>;

    /// Another structure of the same client, found by its device type and construction
    /// parameters (`None` when there is none). Devices name each other this way, e.g. a
    /// vector by its token.
    ///
    /// # Errors
    /// Transport errors.
    fn find(&self, device: &str, params: &[u8]) -> Result<Option<Box<dyn FarObjects + '_>>>;
}

/// The client-side half of one structure: runs its operations against [`FarObjects`].
///
/// # Examples
///
/// ```
/// use aifm_core::engine::client::{FarObjects, ClientDevice};
/// use aifm_core::Result;
/// /// Counts a structure's objects.
/// struct Count;
/// impl ClientDevice for Count {
///     fn type_name(&self) -> &str { "example.count" }
///     fn compute(&self, far: &dyn FarObjects, _op: u32, _input: &[u8]) -> Result<Vec<u8>> {
///         Ok((far.keys(&[])?.len() as u64).to_le_bytes().to_vec())
///     }
/// }
/// assert_eq!(Count.placement_prefix(), 0);
/// ```
pub trait ClientDevice: Send + Sync + 'static {
    /// The registered type name (the same as the remote device's).
    fn type_name(&self) -> &str;

    /// How many leading key bytes choose an object's *group*: objects of one group are
    /// placed together (one hash slot of a Redis Cluster), so that listing the keys with a
    /// prefix at least this long reads one place. 0 (the default) keeps the whole structure
    /// together.
    fn placement_prefix(&self) -> usize {
        0
    }

    /// Runs operation `opcode` on the structure's objects in `far`.
    ///
    /// # Errors
    /// [`Error::UnknownOpcode`] by default; whatever the operation reports.
    fn compute(&self, far: &dyn FarObjects, opcode: u32, input: &[u8]) -> Result<Vec<u8>> {
        let _ = (far, input);
        Err(Error::UnknownOpcode(opcode))
    }
}

/// Builds a client-side device from the structure's construction parameters.
///
/// # Examples
///
/// ```
/// use aifm_core::engine::client::{ClientDevice, ClientDeviceFactory, ClientDeviceRegistry};
/// struct Nothing;
/// impl ClientDevice for Nothing {
///     fn type_name(&self) -> &str { "example.nothing" }
/// }
/// let factory: ClientDeviceFactory = |_params| Ok(Box::new(Nothing));
/// let registry = ClientDeviceRegistry::default();
/// registry.register("example.nothing", factory);
/// assert_eq!(registry.create("example.nothing", &[]).unwrap().type_name(), "example.nothing");
/// ```
pub type ClientDeviceFactory = fn(&[u8]) -> Result<Box<dyn ClientDevice>>;

/// The plain object store: no operations, objects spread over 256 groups by the key's
/// first byte (the runtime's keys are little-endian slot keys, so neighbours spread out).
struct PlainStore;

impl ClientDevice for PlainStore {
    fn type_name(&self) -> &str {
        OBJECT_STORE_DEVICE
    }
    fn placement_prefix(&self) -> usize {
        1
    }
}

/// Client-side device types by name. Registering a name twice keeps the first.
///
/// # Examples
///
/// ```
/// use aifm_core::engine::client::ClientDeviceRegistry;
/// let r = ClientDeviceRegistry::default();
/// assert!(r.contains(aifm_core::engine::OBJECT_STORE_DEVICE));
/// assert!(r.create("nope", &[]).is_err());
/// ```
#[derive(Debug)]
pub struct ClientDeviceRegistry {
    devices: Factories<ClientDeviceFactory>,
}

impl Default for ClientDeviceRegistry {
    fn default() -> Self {
        ClientDeviceRegistry {
            devices: Factories::with(OBJECT_STORE_DEVICE, |_| Ok(Box::new(PlainStore))),
        }
    }
}

impl ClientDeviceRegistry {
    /// The process-wide registry (what `backend::redis` uses unless told otherwise).
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::engine::client::ClientDeviceRegistry;
    /// assert!(ClientDeviceRegistry::global().contains(aifm_core::engine::OBJECT_STORE_DEVICE));
    /// ```
    pub fn global() -> &'static ClientDeviceRegistry {
        static GLOBAL: OnceLock<ClientDeviceRegistry> = OnceLock::new();
        GLOBAL.get_or_init(ClientDeviceRegistry::default)
    }

    /// Registers device type `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::engine::client::{ClientDevice, ClientDeviceRegistry};
    /// struct Nothing;
    /// impl ClientDevice for Nothing { fn type_name(&self) -> &str { "example.nothing" } }
    /// let r = ClientDeviceRegistry::default();
    /// r.register("example.nothing", |_| Ok(Box::new(Nothing)));
    /// assert!(r.contains("example.nothing"));
    /// ```
    pub fn register(&self, name: &str, factory: ClientDeviceFactory) {
        self.devices.register(name, factory);
    }

    /// Whether device type `name` is registered.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!aifm_core::engine::client::ClientDeviceRegistry::default().contains("nope"));
    /// ```
    pub fn contains(&self, name: &str) -> bool {
        self.devices.contains(name)
    }

    /// Builds a device of type `name` from `params`.
    ///
    /// # Errors
    /// [`Error::UnknownDevice`] when `name` is not registered; the factory's own error for bad
    /// parameters.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::engine::client::ClientDeviceRegistry;
    /// let r = ClientDeviceRegistry::default();
    /// let d = r.create(aifm_core::engine::OBJECT_STORE_DEVICE, &[]).unwrap();
    /// assert_eq!(d.placement_prefix(), 1);
    /// assert!(matches!(r.create("nope", &[]), Err(aifm_core::Error::UnknownDevice(_))));
    /// ```
    pub fn create(&self, name: &str, params: &[u8]) -> Result<Box<dyn ClientDevice>> {
        self.devices.get(name)?(params)
    }
}
