//! Device types by name: the engine's [`DeviceRegistry`], and the [`Factories`] table it
//! shares with the client-side [`ClientDeviceRegistry`](super::client::ClientDeviceRegistry).
//!
//! Invariants: a name, once registered, keeps its first factory for the registry's life (a
//! second registration is ignored, so a library that registers its devices on first use
//! cannot replace a program's own); the plain object store
//! ([`OBJECT_STORE_DEVICE`]) is registered in every registry from the start.

use super::{DeviceFactory, ObjectStore, Quota, RemoteDevice, OBJECT_STORE_DEVICE};
use crate::error::{Error, Result};
use crate::sync::MutexExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Device types by name. Registering the same name twice keeps the first.
///
/// # Examples
///
/// ```
/// use aifm_core::engine::{DeviceRegistry, ObjectStore};
/// let r = DeviceRegistry::default();
/// assert!(r.contains(aifm_core::engine::OBJECT_STORE_DEVICE));
/// r.register("my.store", |_params, quota| Ok(Box::new(ObjectStore::new(quota))));
/// assert!(r.contains("my.store"));
/// ```
#[derive(Debug)]
pub struct DeviceRegistry {
    devices: Factories<DeviceFactory>,
}

impl Default for DeviceRegistry {
    fn default() -> Self {
        DeviceRegistry {
            devices: Factories::with(OBJECT_STORE_DEVICE, |_params, quota| {
                Ok(Box::new(ObjectStore::new(quota)))
            }),
        }
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
        self.devices.register(name, factory);
    }

    /// Whether device type `name` is registered.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!aifm_core::engine::DeviceRegistry::default().contains("nope"));
    /// ```
    pub fn contains(&self, name: &str) -> bool {
        self.devices.contains(name)
    }

    pub(super) fn create(
        &self,
        name: &str,
        params: &[u8],
        quota: Arc<Quota>,
    ) -> Result<Box<dyn RemoteDevice>> {
        self.devices.get(name)?(params, quota)
    }
}

/// Factories by device type name, registered once each: the shared core of the engine's
/// [`DeviceRegistry`] and the client-side
/// [`ClientDeviceRegistry`](super::client::ClientDeviceRegistry), which differ only in what a
/// factory builds. Registering a name twice keeps the first factory.
pub(crate) struct Factories<F> {
    by_name: Mutex<HashMap<String, F>>,
}

impl<F> std::fmt::Debug for Factories<F> {
    /// The registered names (in no particular order).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.by_name.locked().keys())
            .finish()
    }
}

impl<F: Copy> Factories<F> {
    /// A table holding `factory` under `name` (every registry starts with its object store).
    pub(crate) fn with(name: &str, factory: F) -> Self {
        Factories {
            by_name: Mutex::new(HashMap::from([(name.to_string(), factory)])),
        }
    }

    /// Registers `factory` under `name` unless the name is taken.
    pub(crate) fn register(&self, name: &str, factory: F) {
        self.by_name
            .locked()
            .entry(name.to_string())
            .or_insert(factory);
    }

    /// Whether `name` is registered.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.by_name.locked().contains_key(name)
    }

    /// The factory of `name`; [`Error::UnknownDevice`] when there is none.
    pub(crate) fn get(&self, name: &str) -> Result<F> {
        self.by_name
            .locked()
            .get(name)
            .copied()
            .ok_or_else(|| Error::UnknownDevice(name.to_string()))
    }
}
