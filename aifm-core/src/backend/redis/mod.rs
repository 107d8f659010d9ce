//! Far memory in a Redis Cluster (or a Valkey cluster): [`RedisClusterBackend`].
//!
//! `backend::connect("redis://host:port[,host:port...]")` (and so `AIFM_SERVER=redis://...`
//! and the examples' `--backend redis://...`) selects it; [`RedisClusterBuilder`] sets the
//! knobs.
//!
//! # Layout
//!
//! Objects are plain Redis strings under `{namespace/ds.incarnation/group}key` (see
//! [`keys`](self) in the source): the namespace (random unless chosen) lets many runtimes
//! share one cluster; the hash tag puts one *group* of a structure in one hash slot, so a
//! batch pipelines per master and one slot lists a group. The group is the first
//! `placement_prefix` bytes of the key as the structure's client-side device says
//! ([`ClientDevice::placement_prefix`]): the runtime's object store uses one byte (256 groups,
//! spread over every master), a hash map its 2-byte shard (one shard per slot, so a shard's
//! scan lists one slot), a vector 0 (the whole vector on one master, like the replicated
//! backend's whole-structure placement).
//!
//! # Routing
//!
//! The client routes by itself over plain node connections of the `redis` crate: it reads
//! `CLUSTER SLOTS`, groups a batch by master, sends every master its pipeline before reading
//! any reply, and re-reads the slot map on `MOVED` and on failures. (The crate's own cluster
//! client hides its slot map, routes a pipeline whole to the node of its first key, and
//! re-sends single commands on redirects, which would break the pairing of writes with
//! their `WAIT` below.)
//!
//! # No lost acknowledged writes
//!
//! Redis replicates asynchronously: a master acknowledges a write before its replica has it,
//! and a master killed at that moment takes the write with it when its replica is promoted.
//! So every batch that changes objects (writes, removes, and the removal half of a take) ends
//! with `WAIT n ack_timeout` on the same connection, and returns only once `n` replicas
//! confirmed everything the connection wrote, where `n` is
//! [`RedisClusterBuilder::replica_acks`] (default 1) capped by the replicas the master has.
//! A master whose replicas are all gone (after its replica was promoted, say) acknowledges
//! alone, like the replicated backend acknowledges with its live members only; these batches
//! are counted in [`RedisStats::unreplicated_batches`]. The cost is one replica round trip per
//! batch and master (measured in `docs/EVALUATION.md`).
//!
//! A take (a hash map's `TAKE`) reads first and removes second: a destructive read in one
//! round trip (`GETDEL`) cannot be retried after a reply lost in a failover without losing
//! the value. Every command the backend sends is safe to send twice.
//!
//! # Failover
//!
//! Items that fail because a node is gone or the cluster is changing (refused connection,
//! `MOVED`, `CLUSTERDOWN`, a short `WAIT`, ...) are sent again after a fresh slot map and a
//! growing pause (2 ms doubling to 250 ms) until [`RedisClusterBuilder::failover_deadline`]
//! (default 15 s, above a small cluster's failover time); then the call fails with
//! [`Error::Disconnected`] or [`Error::Timeout`]. Error replies that are the server's answer
//! fail at once (`OOM` as [`Error::ServerFull`], others as [`Error::Remote`]). During a
//! resharding, a key being migrated (`ASK`) is retried the same way until its slot has moved
//! (the client sends no `ASKING`).
//!
//! Limits: one client's changes to one key must not overlap (the runtime never has two in
//! flight), since a re-sent batch rewrites what it wrote before; TLS and authentication are
//! not supported.
//!
//! # Devices
//!
//! Redis runs no aifm code, so a structure's operations run in the client, over a
//! [`FarObjects`] view of the structure (see [`crate::engine::client`]); `construct` needs the
//! device type in [`ClientDeviceRegistry::global`] (or the registry given to the builder).
//!
//! # Accounting
//!
//! [`Backend::stored_bytes`] is counted by the client (key plus value bytes, as the engine
//! counts), from the old length each write and remove reads in the same pipeline. It is exact
//! unless a batch is re-sent after a reply was lost: the re-sent batch reads the lengths the
//! lost attempt left, so size changes of that batch's objects are missed.
//!
//! When the backend is dropped it deletes its namespace's keys (best effort, one attempt).
//!
//! # The files
//!
//! This file: the backend's data paths and its client-side devices' view of the cluster.
//! `builder`: [`RedisClusterBuilder`] and the `AIFM_REDIS_*` settings. `keys`: the key layout
//! and hash slots. `topology`: the slot map and node connections. `cluster`: routing a batch
//! per master, the `WAIT` acknowledgements and riding out a failover.

mod builder;
mod cluster;
mod keys;
mod topology;

pub use builder::RedisClusterBuilder;

use super::{Backend, ComputeInFlight, InFlight, ManyInFlight, Placement, ReadInFlight};
use crate::engine::client::{ClientDevice, ClientDeviceRegistry, FarObjects};
use crate::error::{Error, Result};
use crate::sync::RwLockExt;
use ::redis::Value;
use cluster::{Cluster, Item};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Counters of a [`RedisClusterBackend`].
///
/// # Examples
///
/// ```
/// let s = aifm_core::backend::redis::RedisStats::default();
/// assert_eq!(s.retried_rounds, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RedisStats {
    /// Masters in the current slot map.
    pub masters: usize,
    /// Masters of the current slot map that have no replica.
    pub masters_without_replica: usize,
    /// Rounds of a batch re-sent after a failure (failover, redirect, short `WAIT`).
    pub retried_rounds: u64,
    /// Times the slot map was read.
    pub slot_map_refreshes: u64,
    /// `WAIT`s that came back short (then asked again).
    pub short_acks: u64,
    /// Pipelines of changes acknowledged by a master that had no replica left.
    pub unreplicated_batches: u64,
}

/// One constructed structure.
struct Structure {
    device: String,
    params: Vec<u8>,
    /// The device's client-side half, which runs the structure's operations.
    ops: Box<dyn ClientDevice>,
    prefix: usize,
    base: String,
}

impl Structure {
    fn key(&self, key: &[u8]) -> Vec<u8> {
        keys::redis_key(&self.base, self.prefix, key)
    }
}

/// Far memory in a Redis Cluster; see the [module documentation](self).
///
/// # Examples
///
/// ```no_run
/// use aifm_core::backend::{Backend, OBJECT_STORE};
/// let far = aifm_core::backend::redis::RedisClusterBackend::connect("redis://127.0.0.1:7000").unwrap();
/// far.write(OBJECT_STORE, b"k", b"v").unwrap();
/// assert_eq!(far.read(OBJECT_STORE, b"k").unwrap().as_deref(), Some(&b"v"[..]));
/// ```
pub struct RedisClusterBackend {
    cluster: Cluster,
    name: String,
    namespace: String,
    devices: &'static ClientDeviceRegistry,
    structures: RwLock<HashMap<u32, Arc<Structure>>>,
    incarnation: AtomicU64,
    stored: AtomicI64,
}

impl std::fmt::Debug for RedisClusterBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisClusterBackend")
            .field("name", &self.name)
            .field("namespace", &self.namespace)
            .field("structures", &self.structures.reading().len())
            .field("stats", &self.stats())
            .finish()
    }
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(n) => *n,
        _ => 0,
    }
}

impl RedisClusterBackend {
    /// Connects with the settings of [`RedisClusterBuilder::from_env`].
    ///
    /// # Errors
    /// As [`RedisClusterBuilder::from_env`] and [`RedisClusterBuilder::build`].
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::redis::RedisClusterBackend;
    /// assert!(RedisClusterBackend::connect("redis://127.0.0.1:1").unwrap_err().is_disconnected());
    /// ```
    pub fn connect(addr: &str) -> Result<Self> {
        RedisClusterBuilder::from_env(addr)?.build()
    }

    /// The key namespace of this client.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let far = aifm_core::backend::redis::RedisClusterBackend::connect("127.0.0.1:7000").unwrap();
    /// assert!(far.namespace().starts_with("aifm-"));
    /// ```
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A snapshot of the counters.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let far = aifm_core::backend::redis::RedisClusterBackend::connect("127.0.0.1:7000").unwrap();
    /// assert_eq!(far.stats().masters, 3);
    /// ```
    pub fn stats(&self) -> RedisStats {
        let (t, _) = self.cluster.topology();
        let c = &self.cluster.counters;
        RedisStats {
            masters: t.masters.len(),
            masters_without_replica: t.masters.iter().filter(|m| m.replicas == 0).count(),
            retried_rounds: c.retries.load(Ordering::Relaxed),
            slot_map_refreshes: c.refreshes.load(Ordering::Relaxed),
            short_acks: c.short_acks.load(Ordering::Relaxed),
            unreplicated_batches: c.unreplicated.load(Ordering::Relaxed),
        }
    }

    fn structure(&self, ds: u32) -> Result<Arc<Structure>> {
        self.structures
            .reading()
            .get(&ds)
            .cloned()
            .ok_or(Error::UnknownStructure(ds))
    }

    fn read_in(&self, s: &Structure, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        let items: Vec<Item> = keys
            .iter()
            .map(|k| {
                let rk = s.key(k);
                Item::new(keys::slot(&rk), &[::redis::cmd("GET").arg(&rk[..]).clone()])
            })
            .collect();
        self.cluster
            .execute(&items, false)?
            .into_iter()
            .map(|r| match r.into_iter().next() {
                Some(Value::BulkString(v)) => Ok(Some(v)),
                Some(Value::Nil) => Ok(None),
                other => Err(Error::Remote(format!("redis: GET answered {other:?}"))),
            })
            .collect()
    }

    fn write_in(&self, s: &Structure, pairs: &[(&[u8], &[u8])]) -> Result<()> {
        let items: Vec<Item> = pairs
            .iter()
            .map(|(k, v)| {
                let rk = s.key(k);
                Item::new(
                    keys::slot(&rk),
                    &[
                        ::redis::cmd("EXISTS").arg(&rk[..]).clone(),
                        ::redis::cmd("STRLEN").arg(&rk[..]).clone(),
                        ::redis::cmd("SET").arg(&rk[..]).arg(*v).clone(),
                    ],
                )
            })
            .collect();
        let replies = self.cluster.execute(&items, true)?;
        let mut delta = 0i64;
        for ((k, v), r) in pairs.iter().zip(&replies) {
            let old = if r.first().map(int) == Some(1) {
                k.len() as i64 + r.get(1).map_or(0, int)
            } else {
                0
            };
            delta += (k.len() + v.len()) as i64 - old;
        }
        self.stored.fetch_add(delta, Ordering::Relaxed);
        Ok(())
    }

    fn remove_in(&self, s: &Structure, keys: &[&[u8]]) -> Result<Vec<bool>> {
        let items: Vec<Item> = keys
            .iter()
            .map(|k| {
                let rk = s.key(k);
                Item::new(
                    keys::slot(&rk),
                    &[
                        ::redis::cmd("STRLEN").arg(&rk[..]).clone(),
                        ::redis::cmd("DEL").arg(&rk[..]).clone(),
                    ],
                )
            })
            .collect();
        let replies = self.cluster.execute(&items, true)?;
        let mut freed = 0i64;
        let existed = keys
            .iter()
            .zip(&replies)
            .map(|(k, r)| {
                let gone = r.get(1).map(int) == Some(1);
                if gone {
                    freed += k.len() as i64 + r.first().map_or(0, int);
                }
                gone
            })
            .collect();
        self.stored.fetch_sub(freed, Ordering::Relaxed);
        Ok(existed)
    }

    /// The structure's keys that start with `prefix` (raw keys, tags stripped).
    fn keys_in(&self, s: &Structure, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
        let found = if prefix.len() + 1 >= s.prefix {
            // One group (or the 256 groups one more byte names): list their slots.
            let groups: Vec<Vec<u8>> = if prefix.len() >= s.prefix {
                vec![prefix[..s.prefix].to_vec()]
            } else {
                (0..=255u8).map(|b| [prefix, &[b]].concat()).collect()
            };
            let mut slots: Vec<u16> = groups
                .iter()
                .map(|g| keys::slot(&keys::tag(&s.base, g)))
                .collect();
            slots.sort_unstable();
            slots.dedup();
            let items: Vec<Item> = slots
                .iter()
                .map(|&slot| {
                    Item::new(
                        slot,
                        &[::redis::cmd("CLUSTER")
                            .arg("GETKEYSINSLOT")
                            .arg(slot)
                            .arg(i32::MAX)
                            .clone()],
                    )
                })
                .collect();
            let mut all = Vec::new();
            for r in self.cluster.execute(&items, false)? {
                if let Some(Value::Array(ks)) = r.into_iter().next() {
                    all.extend(ks.into_iter().filter_map(|k| match k {
                        Value::BulkString(k) => Some(k),
                        _ => None,
                    }));
                }
            }
            all
        } else {
            let mut pattern = format!("{{{}", s.base).into_bytes();
            pattern.push(b'*');
            self.cluster.scan(&pattern, self.cluster.policy.deadline)?
        };
        let head = format!("{{{}", s.base);
        Ok(found
            .into_iter()
            .filter_map(|rk| {
                let rest = rk.strip_prefix(head.as_bytes())?;
                let close = rest.iter().position(|&b| b == b'}')?;
                let raw = &rest[close + 1..];
                raw.starts_with(prefix).then(|| raw.to_vec())
            })
            .collect())
    }

    /// Deletes every key of the structure (with accounting).
    fn clear_in(&self, s: &Structure) -> Result<()> {
        let all = self.keys_in(s, &[])?;
        for chunk in all.chunks(1024) {
            let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
            self.remove_in(s, &refs)?;
        }
        Ok(())
    }
}

/// One structure's objects, for its client-side device.
struct View<'a> {
    backend: &'a RedisClusterBackend,
    s: Arc<Structure>,
}

impl FarObjects for View<'_> {
    fn read_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        self.backend.read_in(&self.s, keys)
    }
    fn remove_many(&self, keys: &[&[u8]]) -> Result<()> {
        self.backend.remove_in(&self.s, keys).map(drop)
    }
    fn keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
        self.backend.keys_in(&self.s, prefix)
    }
    fn find(&self, device: &str, params: &[u8]) -> Result<Option<Box<dyn FarObjects + '_>>> {
        let found = self
            .backend
            .structures
            .reading()
            .values()
            .find(|s| s.device == device && s.params == params)
            .cloned();
        Ok(found.map(|s| {
            Box::new(View {
                backend: self.backend,
                s,
            }) as Box<dyn FarObjects + '_>
        }))
    }
}

/// Each request is carried out before its `begin_*` form returns: the client-side devices
/// and the cluster connections pipeline their own commands.
impl Backend for RedisClusterBackend {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn begin_read(&self, ds: u32, key: &[u8]) -> ReadInFlight {
        InFlight::done(
            self.structure(ds)
                .and_then(|s| Ok(self.read_in(&s, &[key])?.pop().flatten())),
        )
    }
    fn begin_write(&self, ds: u32, key: &[u8], value: &[u8]) -> InFlight<()> {
        self.begin_write_many(ds, &[(key, value)])
    }
    fn begin_remove(&self, ds: u32, key: &[u8]) -> InFlight<bool> {
        InFlight::done(
            self.structure(ds)
                .and_then(|s| Ok(self.remove_in(&s, &[key])?[0])),
        )
    }
    fn begin_read_many(&self, ds: u32, keys: &[&[u8]]) -> ManyInFlight {
        InFlight::done(self.structure(ds).and_then(|s| self.read_in(&s, keys)))
    }
    fn begin_write_many(&self, ds: u32, items: &[(&[u8], &[u8])]) -> InFlight<()> {
        InFlight::done(self.structure(ds).and_then(|s| self.write_in(&s, items)))
    }
    fn begin_remove_many(&self, ds: u32, keys: &[&[u8]]) -> InFlight<()> {
        InFlight::done(
            self.structure(ds)
                .and_then(|s| self.remove_in(&s, keys).map(drop)),
        )
    }
    /// Every key of the structure, from its slots' listings (or a `SCAN` of its tag), sorted.
    fn keys(&self, ds: u32) -> Result<Vec<Vec<u8>>> {
        let mut keys = self.keys_in(&*self.structure(ds)?, &[])?;
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }
    /// A cluster has no per-structure placement: every structure's keys spread over the
    /// slots.
    fn construct_placed(&self, ds: u32, device: &str, params: &[u8], _: Placement) -> Result<()> {
        if let Some(s) = self.structures.reading().get(&ds) {
            return if s.device == device {
                Ok(())
            } else {
                Err(Error::Remote(format!(
                    "structure {ds} exists as {}",
                    s.device
                )))
            };
        }
        let ops = self.devices.create(device, params)?;
        let incarnation = self.incarnation.fetch_add(1, Ordering::Relaxed);
        let s = Arc::new(Structure {
            device: device.to_string(),
            params: params.to_vec(),
            prefix: ops.placement_prefix(),
            ops,
            base: keys::base(&self.namespace, ds, incarnation),
        });
        self.structures.writing().entry(ds).or_insert(s);
        Ok(())
    }
    fn destruct(&self, ds: u32) -> Result<()> {
        if ds == super::OBJECT_STORE {
            return Err(Error::Remote(
                "the object store cannot be destructed".into(),
            ));
        }
        let s = self
            .structures
            .writing()
            .remove(&ds)
            .ok_or(Error::UnknownStructure(ds))?;
        self.clear_in(&s)
    }
    fn begin_compute(&self, ds: u32, opcode: u32, input: &[u8]) -> ComputeInFlight {
        InFlight::done(self.structure(ds).and_then(|s| {
            let view = View {
                backend: self,
                s: s.clone(),
            };
            s.ops.compute(&view, opcode, input)
        }))
    }
    fn stored_bytes(&self) -> u64 {
        self.stored.load(Ordering::Relaxed).max(0) as u64
    }
}

impl Drop for RedisClusterBackend {
    fn drop(&mut self) {
        // Best effort, one attempt: a dead cluster must not hold the program up.
        let mut pattern = format!("{{{}/", self.namespace).into_bytes();
        pattern.push(b'*');
        let Ok(keys) = self.cluster.scan(&pattern, Duration::ZERO) else {
            return;
        };
        let items: Vec<Item> = keys
            .iter()
            .map(|k| Item::new(keys::slot(k), &[::redis::cmd("UNLINK").arg(&k[..]).clone()]))
            .collect();
        for chunk in items.chunks(4096) {
            if self
                .cluster
                .execute_within(chunk, false, Duration::ZERO)
                .is_err()
            {
                return;
            }
        }
    }
}
