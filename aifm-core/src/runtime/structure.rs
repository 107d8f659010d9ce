//! The [`Structure`] handle: a registered data structure's id, its runtime and its far store.
//!
//! It lives next to the runtime handle because it holds one (and the runtime hands it out from
//! `register_structure`); `aifm_core::handlers::Structure` re-exports it for structure authors.

use super::Runtime;
use crate::backend::Backend;
use crate::error::Result;
use std::sync::Arc;

/// A registered data structure: its id, its far-memory device, its handler.
///
/// # Examples
///
/// ```
/// use aifm_core::{RemBox, Runtime, Scope};
/// let rt = Runtime::builder().local_memory(4 << 20).build().unwrap();
/// let s = rt.register_structure(aifm_core::backend::OBJECT_STORE_DEVICE, &[], None).unwrap();
/// let b = RemBox::new_in_structure([1u64; 8], &s, 42).unwrap();
/// assert_eq!(b.key(), 42);
/// assert_eq!(b.deref(&Scope::new())[0], 1);
/// ```
pub struct Structure {
    pub(crate) shared: Arc<Registered>,
}

/// What a [`Structure`] handle and its arenas ([`crate::arena::SlotArena`]) share: the id
/// stays registered, and the far store alive, until the last of them is dropped, so an
/// arena's objects can never be evacuated under an id that was released (and perhaps given
/// to another structure).
pub(crate) struct Registered {
    pub runtime: Runtime,
    pub id: u32,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let _ = self.runtime.inner.backend.destruct(self.id);
        self.runtime.inner.release_structure(self.id);
    }
}

impl std::fmt::Debug for Structure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Structure")
            .field("id", &self.shared.id)
            .finish()
    }
}

impl Structure {
    /// The structure id (its far-memory namespace within this runtime's client).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let s = rt.register_structure(aifm_core::backend::OBJECT_STORE_DEVICE, &[], None).unwrap();
    /// assert!(s.id() > 0);
    /// ```
    pub fn id(&self) -> u32 {
        self.shared.id
    }

    /// The runtime the structure belongs to.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let s = rt.register_structure(aifm_core::backend::OBJECT_STORE_DEVICE, &[], None).unwrap();
    /// assert_eq!(s.runtime().backend_name(), "embedded");
    /// ```
    pub fn runtime(&self) -> &Runtime {
        &self.shared.runtime
    }

    /// Runs `opcode` of the structure's remote device next to its data.
    ///
    /// # Errors
    /// Whatever the backend or the device reports.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let s = rt.register_structure(aifm_core::backend::OBJECT_STORE_DEVICE, &[], None).unwrap();
    /// // The plain object store offers no operations.
    /// assert_eq!(s.compute(7, &[]).unwrap_err(), aifm_core::Error::UnknownOpcode(7));
    /// ```
    pub fn compute(&self, opcode: u32, input: &[u8]) -> Result<Vec<u8>> {
        self.shared
            .runtime
            .inner
            .backend
            .compute(self.shared.id, opcode, input)
    }

    /// Counts `objects` objects (`bytes` encoded bytes) that the structure brought home from
    /// far memory itself (a hash map's misses), in [`crate::Stats::fetches`] and
    /// [`crate::Stats::fetched_bytes`] like the runtime's own fetches.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let s = rt.register_structure(aifm_core::backend::OBJECT_STORE_DEVICE, &[], None).unwrap();
    /// s.note_fetches(2, 100);
    /// assert_eq!((rt.stats().fetches, rt.stats().fetched_bytes), (2, 100));
    /// ```
    pub fn note_fetches(&self, objects: u64, bytes: u64) {
        let c = &self.shared.runtime.inner.counters;
        crate::stats::Counters::add(&c.fetches, objects);
        crate::stats::Counters::add(&c.fetched_bytes, bytes);
    }

    /// Runs the read-only `opcode` of the structure's device over the objects `keys`, once
    /// per shard, and returns the shards' answers for the caller to merge (see
    /// [`Backend::compute_sharded`]).
    ///
    /// # Errors
    /// Whatever the backend or the device reports.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let s = rt.register_structure(aifm_core::backend::OBJECT_STORE_DEVICE, &[], None).unwrap();
    /// assert!(s.compute_sharded(7, &[], &[]).unwrap().is_empty());
    /// assert_eq!(s.compute_sharded(7, &[&b"k"[..]], &[]).unwrap_err(), aifm_core::Error::UnknownOpcode(7));
    /// ```
    pub fn compute_sharded(
        &self,
        opcode: u32,
        keys: &[&[u8]],
        input: &[u8],
    ) -> Result<Vec<Vec<u8>>> {
        self.shared
            .runtime
            .inner
            .backend
            .compute_sharded(self.shared.id, opcode, keys, input)
    }

    /// The backend holding the structure's far objects (for structure code that reads or
    /// writes by its own keys).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let s = rt.register_structure(aifm_core::backend::OBJECT_STORE_DEVICE, &[], None).unwrap();
    /// s.backend().write(s.id(), b"own-key", b"v").unwrap();
    /// assert_eq!(s.backend().read(s.id(), b"own-key").unwrap().unwrap(), b"v");
    /// ```
    pub fn backend(&self) -> &dyn Backend {
        &*self.shared.runtime.inner.backend
    }
}
