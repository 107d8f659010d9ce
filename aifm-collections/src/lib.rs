//! # aifm-collections: remoteable collections for aifm-rs
//!
//! Std-like collections whose elements live in far memory when local memory runs short:
//!
//! | collection | std twin | one remote object is | semantics it tells the runtime |
//! |---|---|---|---|
//! | [`RemVec`] | `Vec` | a chunk of ~4 KiB of elements | stride prefetch over chunks, nontemporal scans, offloaded gather / permute / copy / aggregates on the `aifm.vec` device |
//! | [`RemHashMap`] | `HashMap` | one key-value pair | the local index is a cache: evicted pairs are detached to the `aifm.hashmap` device and looked up there by key on a miss; lock-free lookups, a mutex per shard for writers |
//! | [`RemQueue`] | `VecDeque` | a ring chunk of ~4 KiB of elements | both ends O(1); chunks never split; emptied chunks dropped at once; the next chunk inward prefetched nontemporally |
//! | [`RemList`] | `LinkedList` | a chunk of up to ~4 KiB of elements | chunks split when full and merge when sparse; cursors; prefetch in the direction of travel |
//!
//! Every collection keeps its client side and its server-side device in one module, so this
//! crate doubles as the reference for writing remoteable structures (see
//! `docs/WRITING_A_STRUCTURE.md` in the repository).
//!
//! # Devices
//!
//! The structures' server-side halves are remote devices of the core's engine. They are
//! registered in the process-wide engine on first use (so the embedded backend runs them
//! in-process); a memory server calls [`register_devices`] on its own registry.
//!
//! ```
//! use aifm_collections::RemVec;
//! let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
//! let mut v = RemVec::new_in(&rt);
//! v.extend((0..1_000_000u64).map(|i| i * 3)); // 8 MB of data, 4 MiB of local memory
//! rt.evacuate_now();
//! assert_eq!(v.get_cloned(999_999), Some(2_999_997));
//! assert!(rt.stats().write_backs > 0);
//! ```
//!
//! # Known limits
//!
//! * **Chunks of non-plain data own heap memory.** A `RemVec` of plain data keeps its
//!   elements inline in 4 KiB chunk objects; any other element type (and `RemQueue`,
//!   `RemList`) uses a `RemBox` of a `Vec` or ring: a small header in a heap region plus a
//!   4 KiB buffer the runtime charges as "owned heap". Evacuation works region by region, so
//!   a region of chunk headers can stand for megabytes of buffers: evacuation is coarser than
//!   for inline objects, and `get` follows one more pointer.
//! * **Offloaded results come home.** The core cannot adopt an object that already lives in
//!   far memory (a `RemBox` born remote), so a gather's or copy's output is sent back and
//!   becomes a fresh, local `RemVec` (in batches of 256 chunks per reply).
//! * **Devices cannot see each other.** The engine tells a device neither its structure id
//!   nor its namespace; vector devices find each other through random 128-bit tokens.
//! * **A failed chunk allocation drops the value** (`RemBox::new_in_structure` does not hand it
//!   back), so `try_push` returns the error only.
#![warn(missing_docs)]

#[cfg(test)]
mod client_tests;
mod common;
pub mod hashmap;
pub mod list;
pub mod queue;
#[cfg(feature = "testing")]
pub mod testing;
pub mod vec;

pub use common::{Exec, Rejected, DEFAULT_CHUNK_BYTES};
pub use hashmap::RemHashMap;
pub use list::RemList;
pub use queue::RemQueue;
pub use vec::RemVec;

use aifm_core::engine::client::ClientDeviceRegistry;
use aifm_core::engine::{DeviceRegistry, Engine};

/// Registers the remote devices of every collection of this crate (`aifm.vec`, …) in
/// `registry`. A memory server calls this at start-up; in-process use needs nothing (the
/// collections register with the global engine on first use).
///
/// # Examples
///
/// ```
/// let registry = aifm_core::engine::DeviceRegistry::default();
/// aifm_collections::register_devices(&registry);
/// assert!(registry.contains(aifm_collections::vec::DEVICE));
/// ```
pub fn register_devices(registry: &DeviceRegistry) {
    registry.register(vec::DEVICE, vec::device::factory);
    registry.register(hashmap::DEVICE, hashmap::device::factory);
}

/// Registers the client-side halves of the devices (`aifm.vec`, `aifm.hashmap`) in
/// `registry`: what a backend that runs no aifm code (a Redis Cluster) runs in the client
/// instead (see `aifm_core::engine::client`). In-process use needs nothing: the collections
/// register with [`ClientDeviceRegistry::global`] on first use.
///
/// # Examples
///
/// ```
/// let registry = aifm_core::engine::client::ClientDeviceRegistry::default();
/// aifm_collections::register_client_devices(&registry);
/// assert!(registry.contains(aifm_collections::hashmap::DEVICE));
/// assert!(registry.contains(aifm_collections::vec::DEVICE));
/// ```
pub fn register_client_devices(registry: &ClientDeviceRegistry) {
    registry.register(vec::DEVICE, vec::client::factory);
    registry.register(hashmap::DEVICE, hashmap::client::factory);
}

/// Registers the devices with the process-wide engine and client-side registry, once.
pub(crate) fn ensure_devices() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        register_devices(Engine::global().registry());
        register_client_devices(ClientDeviceRegistry::global());
    });
}
