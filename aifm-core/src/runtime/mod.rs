//! The runtime handle: configuration, building the shared state every handle points at
//! (`crate::state`), and the default.
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
//!
//! # Files
//!
//! | file | what it holds |
//! |---|---|
//! | `mod.rs` | the public handle: [`Runtime`], the process-wide default, structures, statistics |
//! | `structure.rs` | [`Structure`]: a registered data structure's handle (it holds a runtime) |
//! | `builder.rs` | [`RuntimeBuilder`]: configuration, the environment, building the shared state |

use crate::backend::replicated::ReplicatedBackend;
use crate::backend::{Backend, Placement};
use crate::error::{Error, Result};
use crate::evacuation_handler::EvacuationHandler;
use crate::evacuator;
use crate::scope;
use crate::state::Inner;
use crate::stats::Stats;
use crate::sync::{MutexExt, RwLockExt};
use crate::word::MAX_DS;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

mod builder;
mod structure;

pub use builder::{parse_size, RuntimeBuilder};
pub(crate) use structure::Registered;
pub use structure::Structure;

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
            let mut table = self.inner.structures.writing();
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
            shared: Arc::new(structure::Registered {
                runtime: self.clone(),
                id,
            }),
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
            pinned_kept: get(&c.pinned_kept),
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
        // The background evacuators' lanes too: objects they compacted sit there, and would
        // stay until those regions fill.
        let lanes = self.inner.lanes.iter();
        for lane in lanes.chain(self.inner.evacuator_lanes.iter()) {
            lane.locked().lane.seal_all(&self.inner.heap);
        }
        let _ = evacuator::take_caught_panic();
        evacuator::run_until_target(&self.inner, None);
        if let Some(msg) = evacuator::take_caught_panic() {
            // Every object concerned was kept local and intact; the runtime works on.
            panic!("evacuate_now: user code panicked during evacuation: {msg}");
        }
    }
}
