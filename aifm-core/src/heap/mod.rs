//! The log-structured local heap: a budget of fixed-size regions, bump-allocated.
//!
//! # Regions
//!
//! Local memory is a pool of `region_size` blocks. A region is, in turn: *free* (in the pool),
//! *active* (a lane bumps objects into it), *sealed* (full, waiting, oldest first, for the
//! evacuator) and *evacuating* (owned by one evacuator round, freed when it ends). Nontemporal
//! objects get their own regions, which the evacuator drains first.
//!
//! # Budget and accounting
//!
//! The budget is `budget_regions` regions. A region counts from the moment it leaves the pool
//! until it returns, so the heap never holds more than the budget, plus a bounded overdraft
//! that only scopes (which cannot wait) and the evacuator (which frees more than it takes) may
//! draw on. Heap memory owned by objects (`String` buffers) is charged on top, in bytes.
//! `live_bytes` counts exactly the bytes of live objects with their headers.

pub(crate) mod header;
mod lane;

pub(crate) use header::{HasVTable, Header, VTable, HEADER};
pub(crate) use lane::Lane;

use crate::sync::MutexExt;
use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::collections::VecDeque;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Which regions an object goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Ordinary objects.
    Normal,
    /// Objects read once (fetched by a nontemporal access): evicted first, never kept hot.
    Nontemporal,
}

/// A region that is full and may be evacuated.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sealed {
    pub base: NonNull<u8>,
    /// Bytes of objects from the start of the region.
    pub end: usize,
    pub kind: Kind,
}

// SAFETY: a sealed region is plain memory handed between threads under the pool lock.
unsafe impl Send for Sealed {}

impl Sealed {
    /// Calls `f` on each object header in the region, live or dead.
    pub fn for_each_header(&self, mut f: impl FnMut(&Header)) {
        let mut off = 0;
        while off < self.end {
            // SAFETY: objects are packed from the region start up to `end`; each header was
            // fully written under the lane lock before the region was sealed.
            let h = unsafe { &*(self.base.as_ptr().add(off) as *const Header) };
            off += h.footprint();
            f(h);
        }
    }

    /// Local memory that evacuating this region can give back: the region plus the heap
    /// bytes its live objects own.
    fn weight(&self, region_size: usize) -> usize {
        let mut owned = 0;
        self.for_each_header(|h| {
            if !h.slot(std::sync::atomic::Ordering::Relaxed).is_null() {
                owned += h.heap();
            }
        });
        region_size + owned
    }
}

#[derive(Debug, Default)]
struct Pool {
    free: Vec<NonNull<u8>>,
    sealed: VecDeque<Sealed>,
    sealed_nt: VecDeque<Sealed>,
    /// Regions obtained from the system allocator (free or not).
    allocated: usize,
}

// SAFETY: see `Sealed`.
unsafe impl Send for Pool {}

/// Why a region could not be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoRegion {
    /// The budget is used up; waiting for the evacuator may help.
    Budget,
    /// Budget and overdraft are used up.
    Overdraft,
}

/// The region pool of one runtime.
#[derive(Debug)]
pub(crate) struct Heap {
    pub region_size: usize,
    pub budget_regions: usize,
    pub overdraft_regions: usize,
    pool: Mutex<Pool>,
    room: Condvar,
    in_use: AtomicUsize,
    /// Regions the lanes hold open for bump allocation (counted in `in_use`, partly empty).
    filling: AtomicUsize,
    /// Exact bytes of live objects (headers included).
    pub live_bytes: AtomicI64,
    /// Heap bytes owned by local objects, as last measured.
    pub owned_bytes: AtomicI64,
    /// Times a region was taken beyond the budget.
    pub overdrafts: AtomicUsize,
}

impl Heap {
    pub fn new(region_size: usize, budget_regions: usize, overdraft_regions: usize) -> Self {
        Heap {
            region_size,
            budget_regions,
            overdraft_regions,
            pool: Mutex::new(Pool::default()),
            room: Condvar::new(),
            in_use: AtomicUsize::new(0),
            filling: AtomicUsize::new(0),
            live_bytes: AtomicI64::new(0),
            owned_bytes: AtomicI64::new(0),
            overdrafts: AtomicUsize::new(0),
        }
    }

    fn layout(&self) -> Layout {
        Layout::from_size_align(self.region_size, 4096).unwrap()
    }

    /// Regions not in the pool.
    /// Regions the lanes are filling now (each lane holds at most one per kind).
    pub fn regions_filling(&self) -> usize {
        self.filling.load(Ordering::Relaxed)
    }

    pub fn regions_in_use(&self) -> usize {
        self.in_use.load(Ordering::Acquire)
    }

    /// Fraction of the budget that is free (negative when overdrawn).
    pub fn free_fraction(&self) -> f64 {
        let owned = self.owned_bytes.load(Ordering::Relaxed).max(0) as f64;
        let used = self.regions_in_use() as f64 + owned / self.region_size as f64;
        1.0 - used / self.budget_regions as f64
    }

    /// Takes a region from the pool. `overdraft` allows going past the budget (bounded).
    pub fn take(&self, overdraft: bool) -> Result<NonNull<u8>, NoRegion> {
        let mut pool = self.pool.locked();
        let in_use = self.in_use.load(Ordering::Relaxed);
        let owned_regions =
            self.owned_bytes.load(Ordering::Relaxed).max(0) as usize / self.region_size;
        if in_use + owned_regions >= self.budget_regions {
            if !overdraft {
                return Err(NoRegion::Budget);
            }
            if in_use >= self.budget_regions + self.overdraft_regions {
                return Err(NoRegion::Overdraft);
            }
            self.overdrafts.fetch_add(1, Ordering::Relaxed);
        }
        self.in_use.store(in_use + 1, Ordering::Release);
        if let Some(r) = pool.free.pop() {
            return Ok(r);
        }
        pool.allocated += 1;
        drop(pool);
        // SAFETY: the layout has non-zero size.
        let p = unsafe { alloc(self.layout()) };
        Ok(NonNull::new(p).unwrap_or_else(|| handle_alloc_error(self.layout())))
    }

    /// Queues a full region for evacuation.
    pub fn seal(&self, region: Sealed) {
        let mut pool = self.pool.locked();
        match region.kind {
            Kind::Normal => pool.sealed.push_back(region),
            Kind::Nontemporal => pool.sealed_nt.push_back(region),
        }
    }

    /// Puts back a region an evacuation round had to keep, first in line: what kept it (an
    /// object a mutator was using) is likely done soon, and the rest of the region is dead.
    pub fn reseal(&self, region: Sealed) {
        let mut pool = self.pool.locked();
        match region.kind {
            Kind::Normal => pool.sealed.push_front(region),
            Kind::Nontemporal => pool.sealed_nt.push_front(region),
        }
    }

    /// Puts back a region an evacuation round kept for a pinned object, last in line: a pin may
    /// be held for long, and a round that began with this region would free nothing.
    pub fn requeue(&self, region: Sealed) {
        self.seal(region);
    }

    /// Number of sealed regions waiting for evacuation.
    pub fn sealed_regions(&self) -> usize {
        let pool = self.pool.locked();
        pool.sealed.len() + pool.sealed_nt.len()
    }

    /// Takes sealed regions, nontemporal first, then oldest, until evacuating them would give
    /// back at least `bytes` (at least one region, at most `n`).
    pub fn victims(&self, bytes: usize, n: usize) -> Vec<Sealed> {
        let mut pool = self.pool.locked();
        let mut out = Vec::with_capacity(n.min(64));
        let mut gain = 0;
        while out.len() < n && (out.is_empty() || gain < bytes) {
            match pool
                .sealed_nt
                .pop_front()
                .or_else(|| pool.sealed.pop_front())
            {
                Some(r) => {
                    gain += r.weight(self.region_size);
                    out.push(r);
                }
                None => break,
            }
        }
        out
    }

    /// Returns a region to the pool and wakes threads waiting for room.
    pub fn release(&self, region: NonNull<u8>) {
        self.pool.locked().free.push(region);
        self.in_use.fetch_sub(1, Ordering::AcqRel);
        self.room.notify_all();
    }

    /// Waits (at most `timeout`) for a region to return to the pool.
    pub fn wait_for_room(&self, timeout: Duration) {
        let pool = self.pool.locked();
        let _unused = self.room.wait_timeout(pool, timeout).unwrap();
    }
}

impl Drop for Heap {
    fn drop(&mut self) {
        let pool = self.pool.get_mut().unwrap();
        // Every handle is gone, so every region is free, sealed or held by a lane that has
        // already been dropped (lanes hand their regions back through `free_all`).
        for r in pool.free.drain(..) {
            // SAFETY: allocated in `take` with this layout.
            unsafe {
                dealloc(
                    r.as_ptr(),
                    Layout::from_size_align(self.region_size, 4096).unwrap(),
                )
            };
        }
        for r in pool.sealed.drain(..).chain(pool.sealed_nt.drain(..)) {
            // SAFETY: as above.
            unsafe {
                dealloc(
                    r.base.as_ptr(),
                    Layout::from_size_align(self.region_size, 4096).unwrap(),
                )
            };
        }
    }
}
