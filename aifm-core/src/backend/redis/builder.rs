//! The settings of a [`RedisClusterBackend`] and its construction: seed addresses, namespace,
//! replica acknowledgements and deadlines, from code ([`RedisClusterBuilder`]) or from the
//! `AIFM_REDIS_*` environment variables ([`RedisClusterBuilder::from_env`]). Building one reads
//! the slot map from the seeds and constructs the object store; nothing else is sent.

use super::cluster::{Cluster, Policy};
use super::keys;
use super::topology::{Pools, Timeouts};
use super::RedisClusterBackend;
use crate::backend::{Backend, OBJECT_STORE, OBJECT_STORE_DEVICE};
use crate::engine::client::ClientDeviceRegistry;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::RwLock;
use std::time::Duration;

/// Settings of a [`RedisClusterBackend`].
///
/// # Examples
///
/// ```
/// use aifm_core::backend::redis::RedisClusterBuilder;
/// use std::time::Duration;
/// let b = RedisClusterBuilder::new("redis://127.0.0.1:1")
///     .namespace("tests-a")
///     .replica_acks(1)
///     .failover_deadline(Duration::from_millis(100))
///     .build();
/// assert!(b.unwrap_err().is_disconnected()); // nothing listens there
/// ```
#[derive(Debug, Clone)]
pub struct RedisClusterBuilder {
    seeds: String,
    namespace: Option<String>,
    acks: usize,
    ack_timeout: Duration,
    deadline: Duration,
    connect_timeout: Duration,
    io_timeout: Duration,
    devices: &'static ClientDeviceRegistry,
}

impl RedisClusterBuilder {
    /// Settings for the cluster reached through `seeds`: `redis://host:port[,host:port...]`
    /// (the `redis://` is optional; any node of the cluster will do, several for safety).
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = aifm_core::backend::redis::RedisClusterBuilder::new("redis://10.0.0.1:7000,10.0.0.2:7000");
    /// ```
    pub fn new(seeds: &str) -> Self {
        RedisClusterBuilder {
            seeds: seeds.to_string(),
            namespace: None,
            acks: 1,
            ack_timeout: Duration::from_millis(500),
            deadline: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(1),
            io_timeout: Duration::from_secs(5),
            devices: ClientDeviceRegistry::global(),
        }
    }

    /// [`RedisClusterBuilder::new`] with settings from the environment, for programs that
    /// pick their backend by address (`backend::connect`): `AIFM_REDIS_NAMESPACE`,
    /// `AIFM_REDIS_ACKS` (replica acknowledgements) and `AIFM_REDIS_DEADLINE_MS` (failover
    /// deadline), each optional.
    ///
    /// # Errors
    /// [`Error::Config`] for a variable that is not a number.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::redis::RedisClusterBuilder;
    /// assert!(RedisClusterBuilder::from_env("redis://127.0.0.1:7000").is_ok());
    /// ```
    pub fn from_env(seeds: &str) -> Result<Self> {
        let mut b = Self::new(seeds);
        if let Ok(ns) = std::env::var("AIFM_REDIS_NAMESPACE") {
            b = b.namespace(&ns);
        }
        if let Some(n) = crate::backend::env::env_number("AIFM_REDIS_ACKS")? {
            b = b.replica_acks(n as usize);
        }
        if let Some(ms) = crate::backend::env::env_number("AIFM_REDIS_DEADLINE_MS")? {
            b = b.failover_deadline(Duration::from_millis(ms));
        }
        Ok(b)
    }

    /// The key namespace (default: `aifm-` and 16 random hex digits). Letters, digits and
    /// `-_.:` only, at most 64 bytes. Two live backends must not share one.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::redis::RedisClusterBuilder;
    /// let e = RedisClusterBuilder::new("127.0.0.1:1").namespace("a}b").build().unwrap_err();
    /// assert!(matches!(e, aifm_core::Error::Config(_)));
    /// ```
    pub fn namespace(mut self, ns: &str) -> Self {
        self.namespace = Some(ns.to_string());
        self
    }

    /// Replica confirmations a change waits for (default 1; capped by the replicas a master
    /// has; 0 acknowledges on the master alone, and may lose acknowledged writes in a
    /// failover).
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = aifm_core::backend::redis::RedisClusterBuilder::new("127.0.0.1:7000").replica_acks(0);
    /// ```
    pub fn replica_acks(mut self, n: usize) -> Self {
        self.acks = n;
        self
    }

    /// How long one `WAIT` for replicas may block (default 500 ms; retried until the
    /// deadline).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let _ = aifm_core::backend::redis::RedisClusterBuilder::new("127.0.0.1:7000")
    ///     .ack_timeout(Duration::from_millis(100));
    /// ```
    pub fn ack_timeout(mut self, d: Duration) -> Self {
        self.ack_timeout = d;
        self
    }

    /// How long a call keeps retrying through a failover before it fails (default 15 s).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let _ = aifm_core::backend::redis::RedisClusterBuilder::new("127.0.0.1:7000")
    ///     .failover_deadline(Duration::from_secs(30));
    /// ```
    pub fn failover_deadline(mut self, d: Duration) -> Self {
        self.deadline = d;
        self
    }

    /// Timeouts of one connection attempt (default 1 s) and of one read or write on a
    /// connection (default 5 s; raised to twice the ack timeout if below it).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let _ = aifm_core::backend::redis::RedisClusterBuilder::new("127.0.0.1:7000")
    ///     .timeouts(Duration::from_millis(200), Duration::from_secs(2));
    /// ```
    pub fn timeouts(mut self, connect: Duration, io: Duration) -> Self {
        self.connect_timeout = connect;
        self.io_timeout = io;
        self
    }

    /// The registry of client-side devices `construct` uses (default: the global one).
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::engine::client::ClientDeviceRegistry;
    /// let _ = aifm_core::backend::redis::RedisClusterBuilder::new("127.0.0.1:7000")
    ///     .devices(ClientDeviceRegistry::global());
    /// ```
    pub fn devices(mut self, registry: &'static ClientDeviceRegistry) -> Self {
        self.devices = registry;
        self
    }

    /// Connects: reads the slot map from the first seed that answers.
    ///
    /// # Errors
    /// [`Error::Config`] for a bad address list or namespace, or when the node is not in
    /// cluster mode; [`Error::Disconnected`] / [`Error::Timeout`] when no seed answers.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = aifm_core::backend::redis::RedisClusterBuilder::new("redis://").build().unwrap_err();
    /// assert!(matches!(e, aifm_core::Error::Config(_)));
    /// ```
    pub fn build(self) -> Result<RedisClusterBackend> {
        let seeds = parse_seeds(&self.seeds)?;
        let namespace = match self.namespace {
            Some(ns) => ns,
            None => random_namespace()?,
        };
        if !keys::valid_namespace(&namespace) {
            return Err(Error::Config(format!(
                "redis namespace {namespace:?}: use 1..=64 of [A-Za-z0-9-_.:]"
            )));
        }
        let pools = Pools::new(Timeouts {
            connect: self.connect_timeout,
            io: self.io_timeout.max(self.ack_timeout * 2),
        });
        let policy = Policy {
            acks: self.acks,
            ack_timeout: self.ack_timeout,
            deadline: self.deadline,
        };
        let name = format!("redis://{}", seeds.join(","));
        let cluster = Cluster::connect(seeds, pools, policy)?;
        let b = RedisClusterBackend {
            cluster,
            name,
            namespace,
            devices: self.devices,
            structures: RwLock::new(HashMap::new()),
            incarnation: AtomicU64::new(1),
            stored: AtomicI64::new(0),
        };
        b.construct(OBJECT_STORE, OBJECT_STORE_DEVICE, &[])?;
        Ok(b)
    }
}

fn parse_seeds(addr: &str) -> Result<Vec<String>> {
    let list = addr.trim();
    let list = list.strip_prefix("redis://").unwrap_or(list);
    let seeds: Vec<String> = list
        .split(',')
        .map(|a| {
            a.trim()
                .trim_start_matches("redis://")
                .trim_end_matches('/')
        })
        .filter(|a| !a.is_empty())
        .map(|a| match a.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok() => Ok(a.to_string()),
            _ => Err(Error::Config(format!(
                "redis node address {a:?} is not host:port"
            ))),
        })
        .collect::<Result<_>>()?;
    if seeds.is_empty() {
        return Err(Error::Config(format!("no redis node address in {addr:?}")));
    }
    Ok(seeds)
}

/// A random namespace name, from the operating system's random source: two runtimes sharing a
/// cluster must not pick the same one.
fn random_namespace() -> Result<String> {
    let bytes = crate::wire::auth::random_bytes();
    Ok(format!("aifm-{:016x}", u64::from_le_bytes(bytes)))
}
