//! The runtime: configuration, the shared state every handle points at, and the default.
//!
//! A [`Runtime`] is a cheap, cloneable handle. Several may live in one process (each with its
//! own budget, backend and evacuator threads); [`Runtime::global`] is a lazily built
//! process-wide default configured from the environment:
//!
//! * `AIFM_LOCAL_MEMORY`: the local budget (`512MiB`, `2GiB`, or bytes; default 256 MiB);
//! * `AIFM_SERVER`: `host:port` of a memory server, or several separated by commas
//!   (`host1:port,host2:port,...`: replicated, factor 2; default: the embedded far store),
//!   or `redis://host:port,...` for a Redis Cluster (feature `redis`);
//! * `AIFM_REPLICAS`: the replication factor over several servers
//!   ([`RuntimeBuilder::replicas`]);
//! * `AIFM_ERASURE`: `k+m` (`2+1`) to erasure-code the object store over several servers
//!   ([`RuntimeBuilder::erasure`]);
//! * `AIFM_TOKEN_FILE`, `AIFM_TIMEOUT_MS`, `AIFM_SPIN_US`: the connection's token file,
//!   request timeout and spin before parking, read by the TCP backend
//!   ([`crate::backend::tcp::TcpBuilder::from_env`]).
//!
//! Every `RemBox` keeps its runtime alive (it holds one count of the shared state), so a
//! runtime's memory is returned only after its last handle and its last object are gone.

use crate::backend::replicated::ReplicatedBackend;
use crate::backend::{Backend, EmbeddedBackend, Placement, OBJECT_STORE};
use crate::error::{Error, Result};
use crate::evacuator;
use crate::handlers::{EvacuationHandler, HandlerTable, Structure};
use crate::heap::{Header, Heap, Kind, Lane, NoRegion, VTable, HEADER};
use crate::prefetch;
use crate::scope;
use crate::slots::{Slot, SlotTable};
use crate::stats::{Counters, Stats};
use crate::word::MAX_DS;
use crossbeam_utils::CachePadded;
use std::cell::Cell;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

/// Marks a header whose object is still being built (see `heap::header`).
pub(crate) const CONSTRUCTING: *mut Slot = std::ptr::dangling_mut::<Slot>();

/// How long an allocation outside any scope waits for the evacuator before overdrawing.
const ROOM_PATIENCE: Duration = Duration::from_secs(2);

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
    /// Defaults: `start` 5 % (or, in a heap of few regions, the share of the regions that the
    /// allocation lanes hold half filled, plus two, if that is more), `block` half of `start`
    /// (at least 2 %), `target` `start` plus 5 % (or plus `block`). Objects can thus fill about
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
        let (start, block, target) = self.thresholds.unwrap_or_else(|| {
            // Regions the lanes hold while they fill them count as used, so a small heap
            // needs proportionally more headroom for the evacuator to keep up.
            let held = (lanes + self.evacuator_threads + 2) as f64 / budget_regions as f64;
            let start = held.max(0.05);
            let block = (start / 2.0).max(0.02);
            (start, block, start + block.max(0.05))
        });
        if !(0.0 < block && block < start && start < target && target < 1.0) {
            return Err(Error::Config(
                "thresholds must satisfy 0 < block < start < target < 1".into(),
            ));
        }
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
            link: prefetch::Link::new(),
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
                start,
                block,
                target,
            },
            quarantine: Mutex::new(Vec::new()),
        });
        for i in 0..self.evacuator_threads {
            evacuator::spawn(&inner, i)?;
        }
        prefetch::spawn_helpers(Arc::downgrade(&inner), prefetch_rx, self.prefetch_threads)?;
        Ok(Runtime { inner })
    }
}

/// Parses a size as the `bytesize` crate reads one: `"64MiB"`, `"2GiB"`, `"16KiB"` (powers
/// of 1024), `"512MB"`, `"8G"` (powers of 1000), `"1.5GiB"` or plain bytes (`"4096"`).
///
/// # Examples
///
/// ```
/// use aifm_core::runtime::parse_size;
/// assert_eq!(parse_size("64MiB"), Some(64 << 20));
/// assert_eq!(parse_size("8G"), Some(8_000_000_000));
/// assert_eq!(parse_size("4096"), Some(4096));
/// assert_eq!(parse_size("lots"), None);
/// ```
pub fn parse_size(s: &str) -> Option<usize> {
    let bytes = s.trim().parse::<bytesize::ByteSize>().ok()?.as_u64();
    usize::try_from(bytes).ok()
}

/// How an allocation may treat the budget.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Alloc<'a> {
    /// A mutator: inside a scope it may overdraw (it cannot wait: the evacuator may be waiting
    /// for that very scope); outside one it waits for the evacuator, then overdraws.
    Mutator,
    /// The evacuator compacting into its own lane: may overdraw (it frees more than it takes).
    Evacuator(&'a Mutex<LaneState>),
    /// A prefetch: never waits and never overdraws; it is simply skipped when memory is short.
    Prefetch,
}

/// One allocation lane: active regions plus a cache of free slots.
#[derive(Debug, Default)]
pub(crate) struct LaneState {
    pub lane: Lane,
    free_slots: Vec<NonNull<Slot>>,
}

// SAFETY: slot addresses are plain data; the lane is used under its mutex.
unsafe impl Send for LaneState {}

#[derive(Debug, Default)]
struct SlotPool {
    table: SlotTable,
    free: Vec<NonNull<Slot>>,
}

// SAFETY: as for `LaneState`.
unsafe impl Send for SlotPool {}

/// Evacuator wake-ups and thresholds.
#[derive(Debug)]
pub(crate) struct Evacuation {
    pub signal: Mutex<bool>,
    pub wake: Condvar,
    /// A wake-up is pending (so mutators do not notify over and over).
    pub requested: AtomicBool,
    /// This runtime asked new scopes to wait (counted once in the global pressure).
    pub critical: AtomicBool,
    /// Rounds that have begun marking and whose grace period (the wait for scopes open
    /// while they marked) has not ended. While any is unsettled, a mark may belong to a round
    /// whose older scopes still hold references to the marked copy, so a mutator meeting a
    /// mark must not move the object (see `object::slow_path`).
    pub unsettled_rounds: AtomicUsize,
    pub start: f64,
    pub block: f64,
    pub target: f64,
}

/// The state shared by a runtime's handles, objects and evacuator threads.
pub(crate) struct Inner {
    /// Unique in the process (never 0).
    pub id: u64,
    pub heap: Heap,
    /// Mutator lanes, each on its own cache line (threads on different lanes never share one).
    pub lanes: Box<[CachePadded<Mutex<LaneState>>]>,
    /// One compaction lane per evacuator thread.
    pub evacuator_lanes: Box<[CachePadded<Mutex<LaneState>>]>,
    slots: Mutex<SlotPool>,
    pub structures: RwLock<HandlerTable>,
    pub backend: Box<dyn Backend>,
    /// The several-server backend the builder connected (`None` for a backend given to
    /// the builder, which its owner administers through its own handle).
    pub servers: Option<Arc<ReplicatedBackend>>,
    pub counters: Counters,
    pub evacuation: Evacuation,
    /// Work for the prefetch helpers (dropping it stops them).
    pub prefetch_tx: std::sync::mpsc::Sender<prefetch::Task>,
    /// Prefetch tasks queued and not yet taken.
    pub prefetch_queued: AtomicUsize,
    /// The far-memory link's measured round trip and throughput (prefetch windows).
    pub link: prefetch::Link,
    /// Freed object-store slots whose far copies still await a batched remove; they are
    /// reused only after it (a slot's index is its far key).
    pub quarantine: Mutex<Vec<NonNull<Slot>>>,
}

// SAFETY: all raw pointers inside refer to runtime-owned memory shared through atomics/locks.
unsafe impl Send for Inner {}
// SAFETY: as above.
unsafe impl Sync for Inner {}

thread_local! {
    static LANE_HINT: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn lane_hint() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    LANE_HINT.with(|h| {
        if h.get() == usize::MAX {
            h.set(NEXT.fetch_add(1, Ordering::Relaxed));
        }
        h.get()
    })
}

impl Inner {
    /// The calling thread's lane.
    pub fn lane(&self) -> &Mutex<LaneState> {
        &self.lanes[lane_hint() % self.lanes.len()]
    }

    /// Takes a free slot (with the NULL word) owned by this runtime.
    pub fn alloc_slot(&self) -> NonNull<Slot> {
        let mut lane = self.lane().lock().unwrap();
        if let Some(s) = lane.free_slots.pop() {
            return s;
        }
        let mut pool = self.slots.lock().unwrap();
        let take = pool.free.len().min(64);
        let at = pool.free.len() - take;
        lane.free_slots.extend(pool.free.drain(at..));
        if lane.free_slots.is_empty() {
            let owner = self as *const Inner as *const ();
            pool.table.carve(owner, 64, &mut lane.free_slots);
        }
        lane.free_slots.pop().unwrap()
    }

    /// Returns a slot whose word is NULL and whose far copy (if any) is gone.
    pub fn free_slot(&self, slot: NonNull<Slot>) {
        let mut lane = self.lane().lock().unwrap();
        lane.free_slots.push(slot);
        if lane.free_slots.len() > 256 {
            let spill: Vec<_> = lane.free_slots.drain(128..).collect();
            drop(lane);
            self.slots.lock().unwrap().free.extend(spill);
        }
    }

    /// Reserves room for an object of `size` data bytes and writes its header (marked
    /// `CONSTRUCTING`) under the lane lock, so an evacuator never sees a half-written header.
    /// Returns the header.
    ///
    /// How the budget is treated depends on `how` (see [`Alloc`]).
    ///
    /// # Errors
    /// [`Error::ObjectTooLarge`]; [`Error::LocalMemoryExhausted`] when even the overdraft is
    /// used up (or, for a prefetch, when the budget is).
    pub fn alloc_object(
        &self,
        vtable: &'static VTable,
        ds: u32,
        kind: Kind,
        how: Alloc<'_>,
    ) -> Result<NonNull<Header>> {
        let bytes = HEADER + crate::heap::header::padded(vtable.size);
        if bytes > self.heap.region_size {
            return Err(Error::ObjectTooLarge {
                size: bytes,
                max: self.heap.region_size,
            });
        }
        scope::note_runtime(self.id);
        let (lane, may_overdraw, may_wait) = match how {
            Alloc::Evacuator(lane) => (lane, true, false),
            Alloc::Prefetch => (self.lane(), false, false),
            Alloc::Mutator => {
                let in_scope = scope::in_scope();
                (self.lane(), in_scope, !in_scope)
            }
        };
        let mut waited_since: Option<Instant> = None;
        loop {
            let overdraw =
                may_overdraw || waited_since.is_some_and(|t| t.elapsed() > ROOM_PATIENCE);
            let before = self.heap.regions_in_use();
            let mut guard = lane.lock().unwrap();
            match guard.lane.alloc(&self.heap, bytes, kind, overdraw) {
                Ok(p) => {
                    let header = p.cast::<Header>();
                    // SAFETY: `p` is a fresh, 8-aligned reservation of `bytes` >= HEADER bytes.
                    unsafe {
                        header.as_ptr().write(Header::new(CONSTRUCTING, vtable, ds));
                    }
                    drop(guard);
                    self.heap
                        .live_bytes
                        .fetch_add(bytes as i64, Ordering::Relaxed);
                    if self.heap.regions_in_use() != before {
                        self.check_pressure();
                    }
                    return Ok(header);
                }
                Err(NoRegion::Budget) if !may_wait => {
                    drop(guard);
                    self.check_pressure();
                    return Err(Error::LocalMemoryExhausted);
                }
                Err(NoRegion::Budget) => {
                    drop(guard);
                    self.check_pressure();
                    waited_since.get_or_insert_with(|| {
                        Counters::add(&self.counters.memory_waits, 1);
                        Instant::now()
                    });
                    self.heap.wait_for_room(Duration::from_millis(5));
                }
                Err(NoRegion::Overdraft) => return Err(Error::LocalMemoryExhausted),
            }
        }
    }

    /// Wakes the evacuator and raises scope pressure according to the thresholds.
    pub fn check_pressure(&self) {
        let free = self.heap.free_fraction();
        let ev = &self.evacuation;
        if free < ev.block && !ev.critical.swap(true, Ordering::AcqRel) {
            scope::set_pressure(self.id, true);
        }
        if free < ev.start && !ev.requested.swap(true, Ordering::AcqRel) {
            *ev.signal.lock().unwrap() = true;
            ev.wake.notify_all();
        }
    }

    /// Clears scope pressure once the evacuator has made room.
    pub fn relieve_pressure(&self) {
        if self.evacuation.critical.load(Ordering::Acquire)
            && self.heap.free_fraction() >= self.evacuation.block
            && self.evacuation.critical.swap(false, Ordering::AcqRel)
        {
            scope::set_pressure(self.id, false);
        }
    }

    /// The evacuation handler of structure `ds`, if it has one.
    pub fn handler(&self, ds: u32) -> Option<Arc<dyn EvacuationHandler>> {
        self.structures
            .read()
            .unwrap()
            .get(ds as usize)
            .cloned()
            .flatten()
            .flatten()
    }

    pub fn release_structure(&self, id: u32) {
        if let Some(e) = self.structures.write().unwrap().get_mut(id as usize) {
            *e = None;
        }
    }

    /// Removes the far copies of quarantined object-store slots and frees the slots.
    pub fn flush_quarantine(&self) {
        let slots = std::mem::take(&mut *self.quarantine.lock().unwrap());
        if slots.is_empty() {
            return;
        }
        let keys: Vec<[u8; 8]> = slots
            .iter()
            .map(|s| crate::slots::key(*s).to_le_bytes())
            .collect();
        let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
        match self.backend.remove_many(OBJECT_STORE, &refs) {
            Ok(()) => slots.into_iter().for_each(|s| self.free_slot(s)),
            Err(_) => {
                Counters::add(&self.counters.backend_errors, 1);
                self.quarantine.lock().unwrap().extend(slots);
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.flush_quarantine();
        if self.evacuation.critical.load(Ordering::Acquire) {
            scope::set_pressure(self.id, false);
        }
        for lane in self.lanes.iter().chain(self.evacuator_lanes.iter()) {
            lane.lock().unwrap().lane.seal_all(&self.heap);
        }
    }
}

/// A far-memory runtime: a local budget, a backend, and the evacuator threads.
///
/// # Examples
///
/// ```
/// use aifm_core::{RemBox, Runtime, Scope};
/// let rt = Runtime::builder().local_memory(8 << 20).build().unwrap();
/// let boxes: Vec<_> = (0..1000u64).map(|i| RemBox::new_in([i; 64], &rt)).collect();
/// let scope = Scope::new();
/// assert!(boxes.iter().enumerate().all(|(i, b)| b.deref(&scope)[0] == i as u64));
/// ```
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("backend", &self.inner.backend.name())
            .field(
                "budget_bytes",
                &(self.inner.heap.budget_regions * self.inner.heap.region_size),
            )
            .field("region_size", &self.inner.heap.region_size)
            .finish()
    }
}

static GLOBAL: OnceLock<Runtime> = OnceLock::new();

impl Runtime {
    /// A builder with the defaults (256 MiB local, embedded far store, one evacuator).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// assert_eq!(rt.backend_name(), "embedded");
    /// ```
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// The process-wide default runtime, built on first use from the environment
    /// (`AIFM_LOCAL_MEMORY`, `AIFM_SERVER`) unless [`Runtime::set_global`] ran first.
    ///
    /// # Panics
    /// If the environment holds an invalid setting or the server cannot be reached; use
    /// [`Runtime::try_global`] to handle that.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = aifm_core::RemBox::new_in(1u8, aifm_core::Runtime::global());
    /// assert!(b.is_local());
    /// ```
    pub fn global() -> &'static Runtime {
        match Runtime::try_global() {
            Ok(rt) => rt,
            Err(e) => panic!("aifm: cannot build the default runtime: {e}"),
        }
    }

    /// The process-wide default runtime, or why it cannot be built.
    ///
    /// # Errors
    /// As [`RuntimeBuilder::from_env`] and [`RuntimeBuilder::build`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(aifm_core::Runtime::try_global().is_ok());
    /// ```
    pub fn try_global() -> Result<&'static Runtime> {
        if let Some(rt) = GLOBAL.get() {
            return Ok(rt);
        }
        let rt = RuntimeBuilder::from_env()?.build()?;
        Ok(GLOBAL.get_or_init(|| rt))
    }

    /// Installs `self` as the process-wide default.
    ///
    /// # Errors
    /// [`Error::Config`] if the default was already built or set.
    ///
    /// # Examples
    ///
    /// ```
    /// // Once the default exists, it cannot be replaced.
    /// let _ = aifm_core::Runtime::global();
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// assert!(rt.set_global().is_err());
    /// ```
    pub fn set_global(self) -> Result<()> {
        GLOBAL
            .set(self)
            .map_err(|_| Error::Config("the default runtime already exists".into()))
    }

    /// Registers a data structure served in far memory by device type `device` (constructed
    /// with `params`), with an optional evacuation handler.
    ///
    /// # Errors
    /// [`Error::UnknownDevice`] if the backend has no such device; [`Error::Config`] when all
    /// 65 535 structure ids are in use.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let s = rt.register_structure(aifm_core::backend::OBJECT_STORE_DEVICE, &[], None).unwrap();
    /// assert_ne!(s.id(), 0);
    /// ```
    pub fn register_structure(
        &self,
        device: &str,
        params: &[u8],
        handler: Option<Arc<dyn EvacuationHandler>>,
    ) -> Result<Structure> {
        self.register_structure_placed(device, params, handler, Placement::Whole)
    }

    /// [`Runtime::register_structure`], with the structure's [`Placement`] over a backend
    /// of several servers (whole on one replica set, or striped over all; see
    /// [`crate::backend::sharded`]). With one server both placements behave the same.
    ///
    /// # Errors
    /// As [`Runtime::register_structure`].
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::Placement;
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let device = aifm_core::backend::OBJECT_STORE_DEVICE;
    /// let s = rt.register_structure_placed(device, &[], None, Placement::Striped).unwrap();
    /// assert_ne!(s.id(), 0);
    /// ```
    pub fn register_structure_placed(
        &self,
        device: &str,
        params: &[u8],
        handler: Option<Arc<dyn EvacuationHandler>>,
        placement: Placement,
    ) -> Result<Structure> {
        let id = {
            let mut table = self.inner.structures.write().unwrap();
            let id = match table.iter().position(Option::is_none) {
                Some(i) => i,
                None if table.len() <= MAX_DS as usize => {
                    table.push(None);
                    table.len() - 1
                }
                None => return Err(Error::Config("all structure ids are in use".into())),
            };
            table[id] = Some(handler);
            id as u32
        };
        if let Err(e) = self
            .inner
            .backend
            .construct_placed(id, device, params, placement)
        {
            self.inner.release_structure(id);
            return Err(e);
        }
        Ok(Structure {
            runtime: self.clone(),
            id,
        })
    }

    /// A snapshot of the statistics.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let _b = aifm_core::RemBox::new_in([0u8; 8], &rt);
    /// assert_eq!(rt.stats().local_bytes, 16 + 8); // header and value
    /// ```
    pub fn stats(&self) -> Stats {
        let i = &self.inner;
        let c = &i.counters;
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            budget_bytes: (i.heap.budget_regions * i.heap.region_size) as u64,
            local_bytes: i.heap.live_bytes.load(Ordering::Relaxed).max(0) as u64,
            local_owned_bytes: i.heap.owned_bytes.load(Ordering::Relaxed).max(0) as u64,
            local_region_bytes: (i.heap.regions_in_use() * i.heap.region_size) as u64,
            far_bytes: get(&c.far_bytes),
            fetches: get(&c.fetches),
            fetched_bytes: get(&c.fetched_bytes),
            write_backs: get(&c.write_backs),
            written_bytes: get(&c.written_bytes),
            discarded_clean: get(&c.discarded_clean),
            compacted: get(&c.compacted),
            mutator_migrations: get(&c.migrations),
            mutator_unmarks: get(&c.unmarked_in_place),
            evacuation_panics: get(&c.evacuation_panics),
            evacuation_rounds: get(&c.rounds),
            regions_freed: get(&c.regions_freed),
            over_budget_episodes: i.heap.overdrafts.load(Ordering::Relaxed) as u64,
            memory_waits: get(&c.memory_waits),
            backend_errors: get(&c.backend_errors),
            prefetch_issued: get(&c.prefetch_issued),
            prefetch_useful: get(&c.prefetch_useful),
            prefetch_wasted: get(&c.prefetch_wasted),
            prefetch_dropped: get(&c.prefetch_dropped),
            servers: i.backend.replication(),
        }
    }

    /// The several servers this runtime's far memory lives on, when the builder connected
    /// them itself ([`RuntimeBuilder::servers`], `AIFM_SERVER=host:port,host:port,...`):
    /// their state, placement, and replacement of a dead one. `None` for one server, the
    /// embedded store, or a backend given to [`RuntimeBuilder::backend`] (keep your own
    /// handle to that one).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// assert!(rt.servers().is_none());
    /// ```
    pub fn servers(&self) -> Option<&Arc<ReplicatedBackend>> {
        self.inner.servers.as_ref()
    }

    /// Replaces dead server `index` (its position in the configured list) with the memory
    /// server at `addr`, which must be empty; the copies the dead server held are rebuilt on
    /// it in the background while the program runs (see
    /// [`crate::backend::replicated`]). Connects with [`crate::backend::tcp::TcpBuilder::from_env`]
    /// settings. [`Runtime::stats`] shows the progress (`servers.rebuilding`,
    /// `servers.rebuilt_objects`); [`Runtime::wait_rebuilt`] waits for the end.
    ///
    /// # Errors
    /// [`Error::Config`] when the runtime was not built over several servers, when `index`
    /// is out of range or its server is still live; connection errors for `addr`.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let e = rt.replace_server(0, "127.0.0.1:1").unwrap_err();
    /// assert!(matches!(e, aifm_core::Error::Config(_)));
    /// ```
    pub fn replace_server(&self, index: usize, addr: &str) -> Result<()> {
        let far = self.several_servers()?;
        let server = crate::backend::tcp::TcpBuilder::from_env(addr)?.connect()?;
        far.replace_server(index, Box::new(server))
    }

    /// Waits at most `timeout` until the replacement at `index` is rebuilt (at once when
    /// `index` is a live server that was never replaced).
    ///
    /// # Errors
    /// [`Error::Config`] as for [`Runtime::replace_server`]; [`Error::Timeout`] when the
    /// rebuild still runs; the error that condemned the server when it is dead.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// assert!(rt.wait_rebuilt(0, Duration::ZERO).is_err());
    /// ```
    pub fn wait_rebuilt(&self, index: usize, timeout: std::time::Duration) -> Result<()> {
        self.several_servers()?.wait_rebuilt(index, timeout)
    }

    fn several_servers(&self) -> Result<&Arc<ReplicatedBackend>> {
        self.servers().ok_or_else(|| {
            Error::Config(format!(
                "this runtime's far memory is not on several servers it connected itself ({})",
                self.backend_name()
            ))
        })
    }

    /// Name of the backend (`"embedded"`, `"tcp://..."`).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// assert_eq!(rt.backend_name(), "embedded");
    /// ```
    pub fn backend_name(&self) -> String {
        self.inner.backend.name()
    }

    /// The backend holding this runtime's far memory.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// assert_eq!(rt.backend().stored_bytes(), 0);
    /// ```
    pub fn backend(&self) -> &dyn Backend {
        &*self.inner.backend
    }

    /// Evacuates until the free target is reached or nothing more can move, on the calling
    /// thread (which must not be inside a scope). Useful in tests and before measurements.
    ///
    /// # Panics
    /// When called inside a scope (it would wait for itself); and, after the evacuation is
    /// done, when user code (`encode`, `heap_bytes`, `Drop`, an evacuation handler) panicked
    /// during it: every object concerned was kept local and intact, and the runtime works on.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let b = aifm_core::RemBox::new_in([1u64; 64], &rt);
    /// rt.evacuate_now();
    /// assert!(!b.is_local() && rt.stats().write_backs == 1);
    /// ```
    pub fn evacuate_now(&self) {
        assert!(
            !scope::in_scope(),
            "evacuate_now inside a scope would wait for itself"
        );
        for lane in self.inner.lanes.iter() {
            lane.lock().unwrap().lane.seal_all(&self.inner.heap);
        }
        let _ = evacuator::take_caught_panic();
        evacuator::run_until_target(&self.inner, None);
        if let Some(msg) = evacuator::take_caught_panic() {
            // Every object concerned was kept local and intact; the runtime works on.
            panic!("evacuate_now: user code panicked during evacuation: {msg}");
        }
    }
}
