//! The plain object store device: a sharded map from key to bytes, charged to a quota.
//!
//! Structure devices embed one for their objects and add `compute` on top.

use super::{key_page, Quota, RemoteDevice};
use crate::error::Result;
use crate::sync::MutexExt;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

/// The structure id of the runtime's plain object store, present in every namespace from
/// its start.
pub const OBJECT_STORE: u32 = 0;

/// The device type name of the plain object store.
pub const OBJECT_STORE_DEVICE: &str = "aifm.object-store";

const SHARDS: usize = 64;

type Shard = Mutex<HashMap<Vec<u8>, Vec<u8>>>;

/// A key → bytes map in 64 locked shards, every object charged to the namespace's quota
/// (its key and value bytes and the quota's per-object overhead).
///
/// # Examples
///
/// ```
/// use aifm_core::engine::{ObjectStore, Quota, RemoteDevice};
/// use std::sync::Arc;
/// let s = ObjectStore::new(Arc::new(Quota::new(1024)));
/// s.write(b"a", b"xyz").unwrap();
/// assert_eq!(s.read(b"a").unwrap().unwrap(), b"xyz");
/// s.for_each(|k, v| assert_eq!((k, v), (&b"a"[..], &b"xyz"[..])));
/// ```
pub struct ObjectStore {
    shards: Box<[Shard]>,
    hasher: RandomState,
    quota: Arc<Quota>,
}

impl std::fmt::Debug for ObjectStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStore")
            .field("quota", &self.quota)
            .finish()
    }
}

fn cost(key: &[u8], value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64
}

impl ObjectStore {
    /// An empty store charging `quota`.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::engine::{ObjectStore, Quota, RemoteDevice};
    /// let s = ObjectStore::new(std::sync::Arc::new(Quota::new(1 << 20)));
    /// assert!(s.is_empty());
    /// ```
    pub fn new(quota: Arc<Quota>) -> Self {
        ObjectStore {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            quota,
        }
    }

    fn shard(&self, key: &[u8]) -> &Shard {
        &self.shards[self.hasher.hash_one(key) as usize % SHARDS]
    }

    /// Calls `f` on every stored pair (shard by shard; concurrent writers may or may not be seen).
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::engine::{ObjectStore, Quota, RemoteDevice};
    /// let s = ObjectStore::new(std::sync::Arc::new(Quota::new(1 << 20)));
    /// s.write(b"a", b"1").unwrap();
    /// let mut n = 0;
    /// s.for_each(|_, _| n += 1);
    /// assert_eq!(n, 1);
    /// ```
    pub fn for_each(&self, mut f: impl FnMut(&[u8], &[u8])) {
        for shard in self.shards.iter() {
            for (k, v) in shard.locked().iter() {
                f(k, v);
            }
        }
    }

    /// Number of stored objects.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::engine::{ObjectStore, Quota, RemoteDevice};
    /// let s = ObjectStore::new(std::sync::Arc::new(Quota::new(1 << 20)));
    /// s.write(b"a", b"1").unwrap();
    /// assert_eq!(s.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.locked().len()).sum()
    }

    /// Whether nothing is stored.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::engine::{ObjectStore, Quota, RemoteDevice};
    /// let s = ObjectStore::new(std::sync::Arc::new(Quota::new(1 << 20)));
    /// assert!(s.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl RemoteDevice for ObjectStore {
    fn type_name(&self) -> &str {
        OBJECT_STORE_DEVICE
    }

    fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.shard(key).locked().get(key).cloned())
    }

    fn read_with(&self, key: &[u8], f: &mut dyn FnMut(Option<&[u8]>)) -> Result<()> {
        f(self.shard(key).locked().get(key).map(Vec::as_slice));
        Ok(())
    }

    fn write(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let mut shard = self.shard(key).locked();
        let new = cost(key, value);
        match shard.get_mut(key) {
            Some(v) => {
                self.quota.replace_object(cost(key, v), new)?;
                v.clear();
                v.extend_from_slice(value);
            }
            None => {
                self.quota.add_object(new)?;
                shard.insert(key.to_vec(), value.to_vec());
            }
        }
        Ok(())
    }

    fn remove(&self, key: &[u8]) -> Result<bool> {
        let removed = self.shard(key).locked().remove(key);
        if let Some(v) = &removed {
            self.quota.remove_object(cost(key, v));
        }
        Ok(removed.is_some())
    }

    /// Lists keys shard by shard, holding one shard's lock at a time: a key written or
    /// removed during the listing may or may not be seen.
    fn keys(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>> {
        let mut page: Vec<Vec<u8>> = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.locked();
            page.extend(
                shard
                    .keys()
                    .filter(|k| after.is_none_or(|a| &k[..] > a))
                    .cloned(),
            );
            // Keep only the best `limit` so far, so memory stays near twice the page size.
            if page.len() > limit.saturating_mul(2) {
                page.select_nth_unstable(limit);
                page.truncate(limit);
            }
        }
        Ok(key_page(page.iter().map(|k| &k[..]), None, limit))
    }

    fn clear(&self) {
        for shard in self.shards.iter() {
            for (k, v) in shard.locked().drain() {
                self.quota.remove_object(cost(&k, &v));
            }
        }
    }
}
