//! The remote-device contract.

use super::Quota;
use crate::error::{Error, Result};
use std::sync::Arc;

/// Server-side code of one data-structure type: its store and its offloaded operations.
///
/// A device charges every byte it keeps to the [`Quota`] it was built with, so a namespace's
/// capacity holds across all its structures.
///
/// # Examples
///
/// ```
/// use aifm_core::engine::{ObjectStore, Quota, RemoteDevice};
/// use aifm_core::Result;
/// /// A store that can also count its objects next to the data.
/// struct Counting(ObjectStore);
/// impl RemoteDevice for Counting {
///     fn type_name(&self) -> &str { "example.counting" }
///     fn read(&self, k: &[u8]) -> Result<Option<Vec<u8>>> { self.0.read(k) }
///     fn write(&self, k: &[u8], v: &[u8]) -> Result<()> { self.0.write(k, v) }
///     fn remove(&self, k: &[u8]) -> Result<bool> { self.0.remove(k) }
///     fn compute(&self, _op: u32, _in: &[u8]) -> Result<Vec<u8>> {
///         Ok((self.0.len() as u64).to_le_bytes().to_vec())
///     }
///     fn clear(&self) { self.0.clear() }
/// }
/// let d = Counting(ObjectStore::new(std::sync::Arc::new(Quota::new(1 << 20))));
/// d.write(b"a", b"1").unwrap();
/// assert_eq!(d.compute(0, &[]).unwrap(), 1u64.to_le_bytes());
/// ```
pub trait RemoteDevice: Send + Sync + 'static {
    /// The registered type name of this device.
    fn type_name(&self) -> &str;

    /// Reads object `key`.
    ///
    /// # Errors
    /// Device-specific.
    fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Lends object `key`'s bytes to `f` (`None`: no such object) instead of returning a
    /// copy: a device that keeps its objects in memory calls `f` on them in place, so the
    /// in-process backend copies each fetched object once, into its heap place. `f` only
    /// copies; it never calls back into far memory. The default reads, then lends the copy.
    ///
    /// # Errors
    /// As [`RemoteDevice::read`].
    fn read_with(&self, key: &[u8], f: &mut dyn FnMut(Option<&[u8]>)) -> Result<()> {
        f(self.read(key)?.as_deref());
        Ok(())
    }

    /// Writes object `key`.
    ///
    /// # Errors
    /// [`Error::ServerFull`] beyond the quota (the old value stays).
    fn write(&self, key: &[u8], value: &[u8]) -> Result<()>;

    /// Checks that `key` could be written or removed, without doing it: a batch checks every
    /// key first, so that it fails before anything is stored. After a key passed, `write`
    /// may fail only for the quota and `remove` not at all. Any key by default.
    ///
    /// # Errors
    /// Device-specific (a key of the wrong form).
    fn check_key(&self, _key: &[u8]) -> Result<()> {
        Ok(())
    }

    /// Removes object `key`; returns whether it existed.
    ///
    /// # Errors
    /// Device-specific.
    fn remove(&self, key: &[u8]) -> Result<bool>;

    /// Runs operation `opcode` next to the data.
    ///
    /// # Errors
    /// [`Error::UnknownOpcode`] by default.
    fn compute(&self, opcode: u32, _input: &[u8]) -> Result<Vec<u8>> {
        Err(Error::UnknownOpcode(opcode))
    }

    /// One page of the keys this device holds: those greater than `after` (all when `None`),
    /// in increasing bytewise order, at most `limit` of them. An empty page means there are
    /// no more. A replicated backend lists keys to rebuild a dead server's copies, so a device
    /// whose objects should survive that implements it (see [`key_page`]).
    ///
    /// # Errors
    /// [`Error::Unsupported`] by default.
    fn keys(&self, _after: Option<&[u8]>, _limit: usize) -> Result<Vec<Vec<u8>>> {
        Err(Error::Unsupported(format!(
            "device {} cannot list its keys",
            self.type_name()
        )))
    }

    /// Drops everything stored, returning its bytes to the quota.
    fn clear(&self);
}

/// The page [`RemoteDevice::keys`] returns, chosen from `keys` (in any order): the at most
/// `limit` smallest keys greater than `after`, sorted. Linear in the number of keys, plus
/// sorting the page.
///
/// # Examples
///
/// ```
/// use aifm_core::engine::key_page;
/// let keys: [&[u8]; 4] = [b"d", b"a", b"c", b"b"];
/// assert_eq!(key_page(keys.iter().copied(), None, 2), [b"a".to_vec(), b"b".to_vec()]);
/// assert_eq!(key_page(keys.iter().copied(), Some(b"b"), 10), [b"c".to_vec(), b"d".to_vec()]);
/// assert!(key_page(keys.iter().copied(), Some(b"d"), 10).is_empty());
/// ```
pub fn key_page<'a>(
    keys: impl Iterator<Item = &'a [u8]>,
    after: Option<&[u8]>,
    limit: usize,
) -> Vec<Vec<u8>> {
    let mut page: Vec<&[u8]> = match after {
        Some(a) => keys.filter(|k| *k > a).collect(),
        None => keys.collect(),
    };
    if limit == 0 {
        return Vec::new();
    }
    if page.len() > limit {
        page.select_nth_unstable(limit);
        page.truncate(limit);
    }
    page.sort_unstable();
    page.into_iter().map(<[u8]>::to_vec).collect()
}

/// Builds a device from its construction parameters and the namespace's quota.
///
/// # Examples
///
/// ```
/// use aifm_core::engine::{DeviceFactory, DeviceRegistry, ObjectStore};
/// let factory: DeviceFactory = |_params, quota| Ok(Box::new(ObjectStore::new(quota)));
/// let registry = DeviceRegistry::default();
/// registry.register("example.store", factory);
/// assert!(registry.contains("example.store"));
/// ```
pub type DeviceFactory = fn(&[u8], Arc<Quota>) -> Result<Box<dyn RemoteDevice>>;
