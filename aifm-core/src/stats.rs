//! Runtime statistics: plain counters, cheap to bump and to read at any time.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters of one runtime (bumped with relaxed atomics).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub fetches: AtomicU64,
    pub fetched_bytes: AtomicU64,
    pub write_backs: AtomicU64,
    pub written_bytes: AtomicU64,
    pub discarded_clean: AtomicU64,
    pub compacted: AtomicU64,
    pub migrations: AtomicU64,
    pub unmarked_in_place: AtomicU64,
    pub pinned_kept: AtomicU64,
    pub evacuation_panics: AtomicU64,
    pub rounds: AtomicU64,
    pub regions_freed: AtomicU64,
    pub far_bytes: AtomicU64,
    pub backend_errors: AtomicU64,
    pub memory_waits: AtomicU64,
    pub prefetch_issued: AtomicU64,
    pub prefetch_useful: AtomicU64,
    pub prefetch_wasted: AtomicU64,
    pub prefetch_dropped: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn sub(counter: &AtomicU64, n: u64) {
        counter.fetch_sub(n, Ordering::Relaxed);
    }
}

/// A snapshot of a runtime's statistics.
///
/// # Examples
///
/// ```
/// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
/// let _b = aifm_core::RemBox::new_in(7u64, &rt);
/// let s = rt.stats();
/// assert_eq!(s.local_bytes, 16 + 8); // a 16-byte header and the value
/// assert_eq!(s.fetches, 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Stats {
    /// Local-memory budget in bytes.
    pub budget_bytes: u64,
    /// Exact bytes of live local objects, headers included.
    pub local_bytes: u64,
    /// Heap bytes owned by local objects (e.g. `String` buffers), as last measured.
    pub local_owned_bytes: u64,
    /// Bytes of regions taken from the budget (free space inside them included).
    pub local_region_bytes: u64,
    /// Bytes of encoded objects this runtime keeps in far memory.
    pub far_bytes: u64,
    /// Objects fetched from far memory.
    pub fetches: u64,
    /// Bytes fetched from far memory.
    pub fetched_bytes: u64,
    /// Objects written back to far memory.
    pub write_backs: u64,
    /// Bytes written back to far memory.
    pub written_bytes: u64,
    /// Cold objects evicted without a write, because far memory already held them.
    pub discarded_clean: u64,
    /// Hot objects the evacuator kept by compacting them into fresh regions.
    pub compacted: u64,
    /// Objects a mutator moved itself because they were under evacuation.
    pub mutator_migrations: u64,
    /// Objects a mutator met under evacuation before the round's grace period was over: it
    /// took the mark off and used them in place (moving them could leave two live copies).
    pub mutator_unmarks: u64,
    /// Times a move (eviction, compaction or mutator migration) left an object where it was
    /// because its structure had pinned it ([`crate::EvacuationHandler::pinned`]).
    pub pinned_kept: u64,
    /// Panics in user code (`encode`, `heap_bytes`, an evacuation handler) that the evacuator
    /// caught on its own thread; each object concerned was kept local, intact.
    pub evacuation_panics: u64,
    /// Evacuation rounds completed.
    pub evacuation_rounds: u64,
    /// Regions returned to the pool by evacuation.
    pub regions_freed: u64,
    /// Regions taken beyond the budget (inside scopes, or by the evacuator).
    pub over_budget_episodes: u64,
    /// Times an allocation outside a scope waited for the evacuator.
    pub memory_waits: u64,
    /// Backend requests that failed (write-backs are retried; nothing is lost).
    pub backend_errors: u64,
    /// Objects brought in by prefetching.
    pub prefetch_issued: u64,
    /// Prefetched objects that were used before being evicted.
    pub prefetch_useful: u64,
    /// Prefetched objects evicted without ever being used.
    pub prefetch_wasted: u64,
    /// Prefetch requests dropped because the helpers were behind or memory was short.
    pub prefetch_dropped: u64,
    /// With several memory servers: how many are live or dead, and the reads served while a
    /// replica was missing (`None` with one server or the embedded store).
    pub servers: Option<crate::backend::ReplicatedStats>,
}

impl Stats {
    /// Useful prefetches over issued ones (1.0 when none were issued).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// assert_eq!(rt.stats().prefetch_accuracy(), 1.0); // nothing issued yet
    /// ```
    pub fn prefetch_accuracy(&self) -> f64 {
        if self.prefetch_issued == 0 {
            1.0
        } else {
            self.prefetch_useful as f64 / self.prefetch_issued as f64
        }
    }

    /// All local bytes charged against the budget.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let _s = aifm_core::RemBox::new_in(String::with_capacity(100), &rt);
    /// assert_eq!(rt.stats().local_total(), 16 + 24 + 100);
    /// ```
    pub fn local_total(&self) -> u64 {
        self.local_bytes + self.local_owned_bytes
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "local: {} B objects + {} B owned heap in {} B of regions (budget {} B)",
            self.local_bytes, self.local_owned_bytes, self.local_region_bytes, self.budget_bytes
        )?;
        writeln!(f, "far:   {} B", self.far_bytes)?;
        writeln!(
            f,
            "moved: {} fetches ({} B), {} write-backs ({} B), {} clean discards",
            self.fetches,
            self.fetched_bytes,
            self.write_backs,
            self.written_bytes,
            self.discarded_clean
        )?;
        write!(
            f,
            "evac:  {} rounds, {} regions freed, {} compacted, {} mutator migrations, \
             {} over-budget, {} waits, {} backend errors\n\
             prefetch: {} issued, {} useful, {} wasted, {} dropped",
            self.evacuation_rounds,
            self.regions_freed,
            self.compacted,
            self.mutator_migrations,
            self.over_budget_episodes,
            self.memory_waits,
            self.backend_errors,
            self.prefetch_issued,
            self.prefetch_useful,
            self.prefetch_wasted,
            self.prefetch_dropped
        )?;
        if let Some(r) = &self.servers {
            write!(
                f,
                "\nservers: {} live, {} rebuilding, {} dead (degraded: {} reads served, {} failovers)",
                r.live, r.rebuilding, r.dead, r.degraded_reads, r.failovers
            )?;
            if r.replaced > 0 {
                write!(
                    f,
                    "\nrebuilds: {} servers replaced, {} objects ({} bytes) copied, {} unrecoverable",
                    r.replaced, r.rebuilt_objects, r.rebuilt_bytes, r.unrecoverable_objects
                )?;
            }
        }
        Ok(())
    }
}
