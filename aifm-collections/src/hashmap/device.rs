//! The server-side half of `RemHashMap`: the `aifm.hashmap` remote device.
//!
//! It holds the pairs the client evicted, keyed by `[shard: u16 LE][key encoding]` with the
//! value's encoding as the object, in one locked table per client shard, so that one shard's
//! pairs can be listed without touching the others. Besides plain read / write / remove it
//! offers, as `compute` opcodes:
//!
//! * [`TAKE`]: remove a key and return its value (`[1] ++ value`, or `[0]` if absent);
//! * [`TAKE_MANY`]: [`TAKE`] for a batch of keys.
//!
//! * [`SCAN`]: every pair of one shard (postcard `Vec<(key, value)>`), for iteration;
//! * [`CLEAR_SHARD`] / [`CLEAR`]: drop one shard's pairs, or all.
//!
//! `RemHashMap` itself no longer takes: a take removes the pair before the client holds it,
//! so a lost or oversized reply, or a value the client cannot decode, lost the pair. A miss
//! now reads the pair (plain `read` / `read_many`), adopts it, and only then removes it here
//! (`remove` / `remove_many`); see the map's `core` module. The take opcodes stay for other
//! clients.
//!
//! The opcodes themselves (decoding, checks, limits, replies) are `exec`'s, which the
//! client-side device (`super::client`) runs too, over far objects instead of these tables.
//!
//! Each pair is charged as one object (its bytes and the quota's per-object overhead). A
//! key without its 2-byte shard prefix is refused, also in a batch before anything of it is
//! done; a [`SCAN`] reply is sized before it is built and refused beyond the reply limit;
//! a [`TAKE_MANY`] names at most the quota's batch limit of keys.

use aifm_core::engine::{Quota, RemoteDevice};
use aifm_core::sync::MutexExt;
use aifm_core::Result;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[path = "device_exec.rs"]
pub(crate) mod exec;
use exec::{shard_of, PairSource, ShardReply, TakenReply};

/// The device type name of `RemHashMap`.
///
/// ```
/// let r = aifm_core::engine::DeviceRegistry::default();
/// aifm_collections::register_devices(&r);
/// assert!(r.contains(aifm_collections::hashmap::DEVICE));
/// ```
pub const DEVICE: &str = "aifm.hashmap";

/// Opcode: remove a key and return its value.
///
/// ```
/// assert_eq!(aifm_collections::hashmap::device::TAKE, 1);
/// ```
pub const TAKE: u32 = 1;
/// Opcode: list one shard's pairs.
///
/// ```
/// assert_eq!(aifm_collections::hashmap::device::SCAN, 2);
/// ```
pub const SCAN: u32 = 2;
/// Opcode: drop one shard's pairs.
///
/// ```
/// assert_eq!(aifm_collections::hashmap::device::CLEAR_SHARD, 3);
/// ```
pub const CLEAR_SHARD: u32 = 3;
/// Opcode: drop every pair.
///
/// ```
/// assert_eq!(aifm_collections::hashmap::device::CLEAR, 4);
/// ```
pub const CLEAR: u32 = 4;
/// Opcode: [`TAKE`] for many keys at once (postcard `Vec<key>` in, `Vec<Option<value>>` out).
///
/// ```
/// assert_eq!(aifm_collections::hashmap::device::TAKE_MANY, 5);
/// ```
pub const TAKE_MANY: u32 = 5;

/// Server-side tables (a power of two; client shards map onto them by their low bits).
const TABLES: usize = 64;

type Table = Mutex<HashMap<Vec<u8>, Vec<u8>>>;

struct MapDevice {
    tables: Box<[Table]>,
    quota: Arc<Quota>,
}

impl MapDevice {
    fn table(&self, shard: u16) -> &Table {
        &self.tables[shard as usize % TABLES]
    }
    fn cost(k: &[u8], v: &[u8]) -> u64 {
        (k.len() + v.len()) as u64
    }
}

/// Builds a map device (no parameters).
pub(crate) fn factory(_params: &[u8], quota: Arc<Quota>) -> Result<Box<dyn RemoteDevice>> {
    Ok(Box::new(MapDevice {
        tables: (0..TABLES).map(|_| Mutex::new(HashMap::new())).collect(),
        quota,
    }))
}

impl PairSource for MapDevice {
    /// Removes `key` and returns its value, giving its bytes back to the quota.
    fn take(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let old = self.table(shard_of(key)?).locked().remove(key);
        if let Some(v) = &old {
            self.quota.remove_object(Self::cost(key, v));
        }
        Ok(old)
    }

    /// Sizes the reply before anything leaves, then takes; a reply that grew past the limit
    /// since (a value was rewritten) puts every pair back.
    fn take_many(&self, keys: &[&[u8]], reply: TakenReply<'_>) -> Result<Vec<u8>> {
        // Each value and its length prefixes.
        let size = keys
            .iter()
            .map(|k| self.read(k).map(|v| v.map_or(1, |v| v.len() as u64 + 11)))
            .sum::<Result<u64>>()?;
        self.quota.check_reply(size)?;
        let values = keys
            .iter()
            .map(|k| self.take(k))
            .collect::<Result<Vec<_>>>()?;
        reply(&values).or_else(|e| {
            for (k, v) in keys.iter().zip(values) {
                if let Some(v) = v {
                    self.write(k, &v)?;
                }
            }
            Err(e)
        })
    }

    /// Under the shard's table lock, so the reply is one moment's pairs.
    fn with_shard(&self, shard: u16, reply: ShardReply<'_>) -> Result<Vec<u8>> {
        let t = self.table(shard).locked();
        let pairs: Vec<(&[u8], &[u8])> = t
            .iter()
            .filter(|(k, _)| shard_of(k).ok() == Some(shard))
            .map(|(k, v)| (&k[..], &v[..]))
            .collect();
        reply(&pairs)
    }

    fn clear_shard(&self, shard: u16) -> Result<()> {
        let mut t = self.table(shard).locked();
        let quota = &self.quota;
        t.retain(|k, v| {
            let drop_it = shard_of(k).ok() == Some(shard);
            if drop_it {
                quota.remove_object(Self::cost(k, v));
            }
            !drop_it
        });
        Ok(())
    }

    fn clear(&self) -> Result<()> {
        RemoteDevice::clear(self);
        Ok(())
    }

    fn batch_keys(&self) -> Option<usize> {
        Some(self.quota.limits().batch_keys)
    }

    fn check_reply(&self, bytes: u64) -> Result<()> {
        self.quota.check_reply(bytes)
    }
}

impl RemoteDevice for MapDevice {
    fn type_name(&self) -> &str {
        DEVICE
    }

    fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.table(shard_of(key)?).locked().get(key).cloned())
    }

    fn check_key(&self, key: &[u8]) -> Result<()> {
        shard_of(key).map(drop)
    }

    fn write(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let mut t = self.table(shard_of(key)?).locked();
        let new = Self::cost(key, value);
        match t.get(key) {
            Some(v) => self.quota.replace_object(Self::cost(key, v), new)?,
            None => self.quota.add_object(new)?,
        }
        t.insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    fn remove(&self, key: &[u8]) -> Result<bool> {
        Ok(self.take(key)?.is_some())
    }

    fn compute(&self, opcode: u32, input: &[u8]) -> Result<Vec<u8>> {
        exec::execute(self, opcode, input)
    }

    /// Table by table, one lock at a time (see [`RemoteDevice::keys`]).
    fn keys(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>> {
        let mut page: Vec<Vec<u8>> = Vec::new();
        for t in self.tables.iter() {
            let t = t.locked();
            page.extend(
                t.keys()
                    .filter(|k| after.is_none_or(|a| &k[..] > a))
                    .cloned(),
            );
            if page.len() > limit.saturating_mul(2) {
                page.select_nth_unstable(limit);
                page.truncate(limit);
            }
        }
        Ok(aifm_core::engine::key_page(
            page.iter().map(|k| &k[..]),
            None,
            limit,
        ))
    }

    fn clear(&self) {
        for t in self.tables.iter() {
            for (k, v) in t.locked().drain() {
                self.quota.remove_object(Self::cost(&k, &v));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aifm_core::engine::quota::Limits;

    /// Three 400 KiB pairs taken in one call against a 1 MiB frame: the reply cannot fit, so
    /// the call fails and every pair is still there (before, all three were gone).
    #[test]
    fn an_oversized_take_many_loses_no_pair() {
        let quota = Arc::new(Quota::with_limits(u64::MAX, None, Limits::server(1 << 20)));
        let dev = factory(&[], quota).unwrap();
        let keys: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i, 0, 7]).collect();
        for k in &keys {
            dev.write(k, &vec![9u8; 400 << 10]).unwrap();
        }
        let mut input = Vec::new();
        aifm_core::codec::encode_serde(&keys, &mut input).unwrap();
        assert!(dev.compute(TAKE_MANY, &input).is_err());
        for k in &keys {
            assert_eq!(dev.read(k).unwrap().map(|v| v.len()), Some(400 << 10));
        }
        // Two fit: taken, and gone.
        let mut input = Vec::new();
        aifm_core::codec::encode_serde(&keys[..2].to_vec(), &mut input).unwrap();
        let out = dev.compute(TAKE_MANY, &input).unwrap();
        let values: Vec<Option<Vec<u8>>> = aifm_core::codec::decode_serde(&out).unwrap();
        assert_eq!(values.iter().flatten().count(), 2);
        assert!(dev.read(&keys[0]).unwrap().is_none());
        assert!(dev.read(&keys[2]).unwrap().is_some());
    }
}
