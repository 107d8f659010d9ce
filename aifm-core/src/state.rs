//! The shared state of a runtime (`Inner`): what every handle, object and background thread
//! points at. It owns the allocation lanes and the slot pool, decides how an allocation may
//! treat the budget, raises and clears pressure, and keeps the structures' handlers.
//!
//! It is a layer of its own, below the runtime handle that builds it: it imports the heap,
//! slots, statistics, backends, scopes, the handler trait and the prefetch queue's `Task` and
//! `Link`, never the runtime, the evacuator, `object` or `prefetch`, which all build on it.
//!
//! # Why `Inner` is `Send` and `Sync`
//!
//! There is no blanket `unsafe impl` for it: the compiler derives both from its fields, and
//! the only raw pointers among them carry their own argued impls. Slot addresses in the free
//! lists and the quarantine are [`SlotPtr`]s (segment memory outlives the runtime's users,
//! and every access is atomic); the segments themselves are owned by the `SlotTable`, and
//! each lane's region cursors by its `Lane`, both used only under a mutex.

use crate::backend::replicated::ReplicatedBackend;
use crate::backend::{Backend, OBJECT_STORE};
use crate::error::{Error, Result};
use crate::evacuation_handler::{EvacuationHandler, HandlerTable};
use crate::fetch_queue::Task;
use crate::heap::{Header, Heap, Kind, Lane, NoRegion, VTable, HEADER};
use crate::link::Link;
use crate::scope;
use crate::slots::{Slot, SlotPtr, SlotTable};
use crate::stats::Counters;
use crate::sync::{MutexExt, RwLockExt};
use crossbeam_utils::CachePadded;
use std::cell::Cell;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Marks a header whose object is still being built (see `heap::header`).
pub(crate) const CONSTRUCTING: *mut Slot = std::ptr::dangling_mut::<Slot>();

/// How long an allocation outside any scope waits for the evacuator before overdrawing.
const ROOM_PATIENCE: Duration = Duration::from_secs(2);

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
    free_slots: Vec<SlotPtr>,
}

#[derive(Debug, Default)]
pub(crate) struct SlotPool {
    table: SlotTable,
    /// Plain slots spilled from the lanes' caches.
    free: Vec<SlotPtr>,
    /// Free keyed slots.
    keyed_free: Vec<SlotPtr>,
}

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
    pub thresholds: Thresholds,
}

/// When evacuation starts, when new scopes wait, and where evacuation stops, as free
/// fractions of the budget.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Thresholds {
    /// Chosen by the user.
    Fixed { start: f64, block: f64, target: f64 },
    /// Sized to the heap: the regions the lanes are filling count as used although partly
    /// empty, so evacuation starts early enough that each of them, each evacuator thread and
    /// two more can take a fresh region (at least 5 % free). Counting the lanes that *are*
    /// filling, not every lane there is, lets a program whose objects fit the budget fill
    /// about 95 % of it with no far traffic.
    Sized { reserve: usize },
}

/// The three thresholds at one moment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Levels {
    pub start: f64,
    pub block: f64,
    pub target: f64,
}

impl Evacuation {
    /// The thresholds for the heap as it is now.
    pub fn levels(&self, heap: &crate::heap::Heap) -> Levels {
        match self.thresholds {
            Thresholds::Fixed {
                start,
                block,
                target,
            } => Levels {
                start,
                block,
                target,
            },
            Thresholds::Sized { reserve } => {
                let held = (heap.regions_filling() + reserve) as f64 / heap.budget_regions as f64;
                let start = held.max(0.05);
                let block = (start / 2.0).max(0.02);
                Levels {
                    start,
                    block,
                    target: (start + block.max(0.05)).min(0.9),
                }
            }
        }
    }
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
    pub(super) slots: Mutex<SlotPool>,
    pub structures: RwLock<HandlerTable>,
    pub backend: Box<dyn Backend>,
    /// The several-server backend the builder connected (`None` for a backend given to
    /// the builder, which its owner administers through its own handle).
    pub servers: Option<Arc<ReplicatedBackend>>,
    pub counters: Counters,
    pub evacuation: Evacuation,
    /// Work for the prefetch helpers (dropping it stops them).
    pub prefetch_tx: std::sync::mpsc::Sender<Task>,
    /// Prefetch tasks queued and not yet taken.
    pub prefetch_queued: AtomicUsize,
    /// The far-memory link's measured round trip and throughput (prefetch windows).
    pub link: Link,
    /// Freed object-store slots whose far copies still await a batched remove; they are
    /// reused only after it (a slot's index is its far key).
    pub quarantine: Mutex<Vec<SlotPtr>>,
}

const _: () = {
    fn shared_between_threads<T: Send + Sync>() {}
    let _ = shared_between_threads::<Inner>;
};

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

    /// Takes a free plain slot (with the NULL word) owned by this runtime.
    pub fn alloc_slot(&self) -> NonNull<Slot> {
        let mut lane = self.lane().locked();
        if let Some(SlotPtr(s)) = lane.free_slots.pop() {
            return s;
        }
        let mut pool = self.slots.locked();
        let take = pool.free.len().min(64);
        let at = pool.free.len() - take;
        lane.free_slots.extend(pool.free.drain(at..));
        if lane.free_slots.is_empty() {
            let owner = self as *const Inner as *const ();
            pool.table.carve(owner, 64, false, &mut lane.free_slots);
        }
        lane.free_slots.pop().unwrap().0
    }

    /// Takes a free keyed slot (with the NULL word), for a box under a key of its own. Keyed
    /// boxes are rare (structures keep their objects in arenas), so they share one list.
    pub fn alloc_keyed_slot(&self) -> NonNull<Slot> {
        let mut pool = self.slots.locked();
        if pool.keyed_free.is_empty() {
            let owner = self as *const Inner as *const ();
            let SlotPool {
                table, keyed_free, ..
            } = &mut *pool;
            table.carve(owner, 16, true, keyed_free);
        }
        pool.keyed_free.pop().unwrap().0
    }

    /// Returns a runtime slot whose word is NULL and whose far copy (if any) is gone.
    pub fn free_slot(&self, slot: NonNull<Slot>) {
        if crate::slots::is_keyed(slot) {
            self.slots.locked().keyed_free.push(SlotPtr(slot));
            return;
        }
        let mut lane = self.lane().locked();
        lane.free_slots.push(SlotPtr(slot));
        if lane.free_slots.len() > 256 {
            let spill: Vec<_> = lane.free_slots.drain(128..).collect();
            drop(lane);
            self.slots.locked().free.extend(spill);
        }
    }

    /// An arena segment for slots `first .. first + ARENA_SLOTS` of an arena (every word NULL).
    pub fn arena_segment(&self, first: u64) -> NonNull<u8> {
        let owner = self as *const Inner as *const ();
        self.slots.locked().table.arena_segment(owner, first)
    }

    /// Takes back the segments of a dropped arena (every word NULL).
    pub fn release_arena_segments(&self, segments: &[NonNull<u8>]) {
        let mut pool = self.slots.locked();
        for s in segments {
            pool.table.release_arena_segment(*s);
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
            let mut guard = lane.locked();
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
        let levels = ev.levels(&self.heap);
        if free < levels.block && !ev.critical.swap(true, Ordering::AcqRel) {
            scope::set_pressure(self.id, true);
        }
        if free < levels.start && !ev.requested.swap(true, Ordering::AcqRel) {
            *ev.signal.locked() = true;
            ev.wake.notify_all();
        }
    }

    /// Clears scope pressure once the evacuator has made room.
    pub fn relieve_pressure(&self) {
        if self.evacuation.critical.load(Ordering::Acquire)
            && self.heap.free_fraction() >= self.evacuation.levels(&self.heap).block
            && self.evacuation.critical.swap(false, Ordering::AcqRel)
        {
            scope::set_pressure(self.id, false);
        }
    }

    /// The evacuation handler of structure `ds`, if it has one.
    pub fn handler(&self, ds: u32) -> Option<Arc<dyn EvacuationHandler>> {
        self.structures
            .reading()
            .get(ds as usize)
            .cloned()
            .flatten()
            .flatten()
    }

    pub fn release_structure(&self, id: u32) {
        if let Some(e) = self.structures.writing().get_mut(id as usize) {
            *e = None;
        }
    }

    /// Removes the far copies of quarantined object-store slots and frees the slots.
    pub fn flush_quarantine(&self) {
        let slots = std::mem::take(&mut *self.quarantine.locked());
        if slots.is_empty() {
            return;
        }
        let keys: Vec<[u8; 8]> = slots
            .iter()
            .map(|s| crate::slots::key(s.0).to_le_bytes())
            .collect();
        let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
        match self.backend.remove_many(OBJECT_STORE, &refs) {
            Ok(()) => slots.into_iter().for_each(|s| self.free_slot(s.0)),
            Err(_) => {
                Counters::add(&self.counters.backend_errors, 1);
                self.quarantine.locked().extend(slots);
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
            lane.locked().lane.seal_all(&self.heap);
        }
    }
}
