//! [`RuntimeBuilder`]: a runtime's configuration, read from code or from the environment
//! (the variables are listed in the `runtime` module essay), and the construction of the
//! shared state with its evacuator and prefetch threads.

use super::Runtime;
use crate::backend::{Backend, EmbeddedBackend};
use crate::error::{Error, Result};
use crate::evacuator;
use crate::heap::Heap;
use crate::scope;
use crate::state::{Evacuation, Inner, SlotPool, Thresholds};
use crate::stats::Counters;
use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};

/// Builds a [`Runtime`].
///
/// # Examples
///
/// ```
/// use aifm_core::{backend::EmbeddedBackend, Runtime};
/// use std::time::Duration;
/// let rt = Runtime::builder()
///     .local_memory(64 << 20)
///     .backend(EmbeddedBackend::new().with_latency(Duration::from_micros(2)))
///     .evacuator_threads(2)
///     .thresholds(0.15, 0.03, 0.25)
///     .build()
///     .unwrap();
/// assert_eq!(rt.stats().budget_bytes, 64 << 20);
/// ```
#[must_use]
pub struct RuntimeBuilder {
    local_memory: usize,
    region_size: Option<usize>,
    backend: Option<Box<dyn Backend>>,
    server: Option<String>,
    replicas: Option<usize>,
    erasure: Option<(usize, usize)>,
    evacuator_threads: usize,
    prefetch_threads: usize,
    /// `(start, block, target)`, or `None` for defaults sized to the heap (see `thresholds`).
    thresholds: Option<(f64, f64, f64)>,
    overdraft: Option<usize>,
}

impl std::fmt::Debug for RuntimeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeBuilder")
            .field("local_memory", &self.local_memory)
            .field("region_size", &self.region_size)
            .field("server", &self.server)
            .field("replicas", &self.replicas)
            .field("erasure", &self.erasure)
            .field("evacuator_threads", &self.evacuator_threads)
            .finish_non_exhaustive()
    }
}

impl Default for RuntimeBuilder {
    fn default() -> Self {
        RuntimeBuilder {
            local_memory: 256 << 20,
            region_size: None,
            backend: None,
            server: None,
            replicas: None,
            erasure: None,
            evacuator_threads: 1,
            prefetch_threads: 1,
            thresholds: None,
            overdraft: None,
        }
    }
}

impl RuntimeBuilder {
    /// Reads `AIFM_LOCAL_MEMORY`, `AIFM_SERVER` and `AIFM_REPLICAS` over the defaults.
    /// `AIFM_SERVER` may list several servers separated by commas (as
    /// [`RuntimeBuilder::servers`]); `AIFM_REPLICAS` is their replication factor (as
    /// [`RuntimeBuilder::replicas`]).
    ///
    /// # Errors
    /// [`Error::Config`] when a variable does not parse.
    ///
    /// # Examples
    ///
    /// ```
    /// std::env::set_var("AIFM_LOCAL_MEMORY", "32MiB");
    /// let rt = aifm_core::RuntimeBuilder::from_env().unwrap().build().unwrap();
    /// assert_eq!(rt.stats().budget_bytes, 32 << 20);
    /// ```
    pub fn from_env() -> Result<Self> {
        let mut b = RuntimeBuilder::default();
        if let Ok(v) = std::env::var("AIFM_LOCAL_MEMORY") {
            b.local_memory = parse_size(&v)
                .ok_or_else(|| Error::Config(format!("AIFM_LOCAL_MEMORY={v:?} is not a size")))?;
        }
        if let Ok(v) = std::env::var("AIFM_SERVER") {
            if !v.trim().is_empty() {
                b.server = Some(v);
            }
        }
        if let Ok(v) = std::env::var("AIFM_REPLICAS") {
            let n = v.trim().parse::<usize>().ok().filter(|&n| n > 0);
            b.replicas = Some(n.ok_or_else(|| {
                Error::Config(format!("AIFM_REPLICAS={v:?} is not a positive count"))
            })?);
        }
        if let Ok(v) = std::env::var("AIFM_ERASURE") {
            if !v.trim().is_empty() {
                b.erasure = Some(crate::backend::parse_erasure(&v)?);
            }
        }
        Ok(b)
    }

    /// Local-memory budget in bytes (at least 16 regions).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(16 << 20).build().unwrap();
    /// assert_eq!(rt.stats().budget_bytes, 16 << 20);
    /// ```
    pub fn local_memory(mut self, bytes: usize) -> Self {
        self.local_memory = bytes;
        self
    }

    /// Region size in bytes (a power of two, 64 KiB … 16 MiB). Default: budget / 64, clamped
    /// to 64 KiB … 1 MiB. The largest object is one region minus a 32-byte header.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(64 << 20).region_size(1 << 20).build();
    /// assert!(rt.is_ok());
    /// ```
    pub fn region_size(mut self, bytes: usize) -> Self {
        self.region_size = Some(bytes);
        self
    }

    /// Keeps far memory in `backend` (default: a fresh [`EmbeddedBackend`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::EmbeddedBackend;
    /// let rt = aifm_core::Runtime::builder().backend(EmbeddedBackend::new()).local_memory(4 << 20).build().unwrap();
    /// assert_eq!(rt.backend_name(), "embedded");
    /// ```
    pub fn backend(mut self, backend: impl Backend) -> Self {
        self.backend = Some(Box::new(backend));
        self.server = None;
        self
    }

    /// Keeps far memory on the memory server at `addr` (`host:port`).
    ///
    /// # Examples
    ///
    /// ```
    /// // Nothing listens on port 1: building fails with a typed error, not a panic.
    /// let e = aifm_core::Runtime::builder().server("127.0.0.1:1").build();
    /// assert!(e.is_err());
    /// ```
    pub fn server(mut self, addr: impl Into<String>) -> Self {
        self.server = Some(addr.into());
        self.backend = None;
        self
    }

    /// Keeps far memory on several memory servers, each object replicated on
    /// [`RuntimeBuilder::replicas`] of them (default 2), so that losing a server loses
    /// nothing (see [`crate::backend::replicated`]). One address is the same as
    /// [`RuntimeBuilder::server`]. Every client must list the servers in the same order.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let rt = aifm_core::Runtime::builder()
    ///     .servers(["10.0.0.5:7411", "10.0.0.6:7411", "10.0.0.7:7411"])
    ///     .replicas(2)
    ///     .build()
    ///     .unwrap();
    /// # drop(rt);
    /// ```
    pub fn servers(self, addrs: impl IntoIterator<Item = impl Into<String>>) -> Self {
        let addrs: Vec<String> = addrs.into_iter().map(Into::into).collect();
        self.server(addrs.join(","))
    }

    /// Replication factor when several servers are given (default 2; clamped to the number
    /// of servers; 0 is a configuration error).
    ///
    /// # Examples
    ///
    /// ```
    /// let e = aifm_core::Runtime::builder().servers(["a:1", "b:1"]).replicas(0).build();
    /// assert!(matches!(e.err().unwrap(), aifm_core::Error::Config(_)));
    /// ```
    pub fn replicas(mut self, n: usize) -> Self {
        self.replicas = Some(n);
        self
    }

    /// Erasure-codes the object store over the servers given with
    /// [`RuntimeBuilder::servers`]: `data` data and `parity` parity fragments per object,
    /// surviving `parity` dead servers for `(data + parity) / data` times the memory (see
    /// [`crate::backend::replicated::ReplicatedBackend::with_erasure`]). Other structures keep
    /// [`RuntimeBuilder::replicas`] whole copies. Ignored with [`RuntimeBuilder::backend`].
    ///
    /// # Examples
    ///
    /// ```
    /// // Three fragments need three servers.
    /// let e = aifm_core::Runtime::builder().servers(["a:1", "b:1"]).erasure(2, 1).build();
    /// assert!(matches!(e.err().unwrap(), aifm_core::Error::Config(_)));
    /// ```
    pub fn erasure(mut self, data: usize, parity: usize) -> Self {
        self.erasure = Some((data, parity));
        self
    }

    /// Number of evacuator threads (default 1).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).evacuator_threads(2).build();
    /// assert!(rt.is_ok());
    /// ```
    pub fn evacuator_threads(mut self, n: usize) -> Self {
        self.evacuator_threads = n;
        self
    }

    /// Number of prefetch helper threads (default 1); they also serve async fetches.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).prefetch_threads(2).build();
    /// assert!(rt.is_ok());
    /// ```
    pub fn prefetch_threads(mut self, n: usize) -> Self {
        self.prefetch_threads = n.max(1);
        self
    }

    /// Free-memory thresholds as fractions of the budget: evacuation starts below `start`,
    /// new scopes wait below `block`, and evacuation continues until `target` is free.
    ///
    /// Defaults: `start` 5 % (or, in a heap of few regions, the share of the budget that the
    /// regions the lanes are filling at that moment, one per evacuator thread and two more
    /// make up, if that is more), `block` half of `start` (at least 2 %), `target` `start`
    /// plus 5 % (or plus `block`). Objects can thus fill about
    /// 95 % of a large budget before anything leaves; the original's 0.12, 0.03, 0.22 started
    /// evacuating at 88 % and kept a fifth of the budget empty, so a budget the size of a
    /// program's std working set still saw far traffic.
    ///
    /// # Examples
    ///
    /// ```
    /// let bad = aifm_core::Runtime::builder().thresholds(0.5, 0.6, 0.7).build();
    /// assert!(matches!(bad, Err(aifm_core::Error::Config(_))));
    /// ```
    pub fn thresholds(mut self, start: f64, block: f64, target: f64) -> Self {
        self.thresholds = Some((start, block, target));
        self
    }

    /// Bytes scopes and the evacuator may overdraw past the budget (default: budget / 8).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).overdraft(1 << 20).build();
    /// assert!(rt.is_ok());
    /// ```
    pub fn overdraft(mut self, bytes: usize) -> Self {
        self.overdraft = Some(bytes);
        self
    }

    /// Builds the runtime and starts its evacuator threads.
    ///
    /// # Errors
    /// [`Error::Config`] for inconsistent settings; connection errors for a server backend.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// assert_eq!(rt.stats().fetches, 0);
    /// ```
    pub fn build(self) -> Result<Runtime> {
        let region_size = self.region_size.unwrap_or_else(|| {
            (self.local_memory / 64)
                .next_power_of_two()
                .clamp(64 << 10, 1 << 20)
        });
        if !region_size.is_power_of_two() || !(64 << 10..=16 << 20).contains(&region_size) {
            return Err(Error::Config(format!(
                "region size {region_size} must be a power of two in 64 KiB ..= 16 MiB"
            )));
        }
        let budget_regions = self.local_memory / region_size;
        if budget_regions < 16 {
            return Err(Error::Config(format!(
                "local memory {} B holds fewer than 16 regions of {region_size} B",
                self.local_memory
            )));
        }
        let lanes = (2 * std::thread::available_parallelism().map_or(2, |n| n.get()))
            .min(budget_regions / 8)
            .max(1);
        let thresholds = match self.thresholds {
            Some((start, block, target)) => {
                if !(0.0 < block && block < start && start < target && target < 1.0) {
                    return Err(Error::Config(
                        "thresholds must satisfy 0 < block < start < target < 1".into(),
                    ));
                }
                Thresholds::Fixed {
                    start,
                    block,
                    target,
                }
            }
            None => Thresholds::Sized {
                reserve: self.evacuator_threads + 2,
            },
        };
        if self.evacuator_threads == 0 {
            return Err(Error::Config(
                "at least one evacuator thread is needed".into(),
            ));
        }
        if self.replicas == Some(0) {
            return Err(Error::Config(
                "the replication factor must be at least 1".into(),
            ));
        }
        let overdraft = self.overdraft.unwrap_or(self.local_memory / 8);
        let overdraft_regions = (overdraft / region_size).max(2);
        let (backend, servers): (Box<dyn Backend>, _) = match (self.backend, self.server) {
            (Some(b), _) => (b, None),
            (None, Some(addr)) => {
                crate::backend::connect_servers(&addr, self.replicas, self.erasure)?
            }
            (None, None) => (Box::new(EmbeddedBackend::new()), None),
        };
        scope::init_barriers();
        let (prefetch_tx, prefetch_rx) = std::sync::mpsc::channel();
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let inner = Arc::new(Inner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            prefetch_tx,
            prefetch_queued: AtomicUsize::new(0),
            link: crate::link::Link::new(),
            heap: Heap::new(region_size, budget_regions, overdraft_regions),
            lanes: (0..lanes)
                .map(|_| CachePadded::new(Mutex::default()))
                .collect(),
            evacuator_lanes: (0..self.evacuator_threads)
                .map(|_| CachePadded::new(Mutex::default()))
                .collect(),
            slots: Mutex::new(SlotPool::default()),
            structures: RwLock::new(vec![Some(None)]),
            backend,
            servers,
            counters: Counters::default(),
            evacuation: Evacuation {
                signal: Mutex::new(false),
                wake: Condvar::new(),
                requested: AtomicBool::new(false),
                critical: AtomicBool::new(false),
                unsettled_rounds: AtomicUsize::new(0),
                thresholds,
            },
            quarantine: Mutex::new(Vec::new()),
        });
        for i in 0..self.evacuator_threads {
            evacuator::spawn(&inner, i)?;
        }
        crate::helper_threads::spawn_helpers(
            Arc::downgrade(&inner),
            prefetch_rx,
            self.prefetch_threads,
        )?;
        Ok(Runtime { inner })
    }
}

/// Parses a size: `"64MiB"`, `"2GiB"`, `"16KiB"`, `"1.5GiB"` or plain bytes (`"4096"`), read
/// by the `bytesize` crate. Decimal units spelled out (`"512MB"`, `"8GB"`) are powers of 1000;
/// a bare letter (`"512M"`, `"8G"`, `"16k"`) means the binary unit, as memory limits are
/// usually written.
///
/// # Examples
///
/// ```
/// use aifm_core::runtime::parse_size;
/// assert_eq!(parse_size("64MiB"), Some(64 << 20));
/// assert_eq!(parse_size("8G"), Some(8 << 30));
/// assert_eq!(parse_size("8GB"), Some(8_000_000_000));
/// assert_eq!(parse_size("4096"), Some(4096));
/// assert_eq!(parse_size("lots"), None);
/// ```
pub fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let bare_letter = s.ends_with(|c: char| "kKmMgGtT".contains(c));
    let parsed = if bare_letter {
        format!("{s}iB").parse::<bytesize::ByteSize>()
    } else {
        s.parse::<bytesize::ByteSize>()
    };
    usize::try_from(parsed.ok()?.as_u64()).ok()
}
