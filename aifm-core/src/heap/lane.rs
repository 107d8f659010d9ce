//! Bump allocation lanes. Threads are spread over a runtime's lanes (one lock each, so
//! allocation is uncontended per thread in practice); each evacuator thread has its own lane
//! for compaction.

use super::{Heap, Kind, NoRegion, Sealed, HEADER};
use std::ptr::NonNull;

#[derive(Debug, Clone, Copy)]
struct Cursor {
    base: NonNull<u8>,
    used: usize,
}

/// One lane: an active region per kind.
#[derive(Debug, Default)]
pub(crate) struct Lane {
    normal: Option<Cursor>,
    nontemporal: Option<Cursor>,
}

// SAFETY: a lane only holds addresses of regions it owns; it is used under a mutex.
unsafe impl Send for Lane {}

impl Lane {
    /// Reserves `bytes` (header included, 8-aligned) in a region of `kind`; returns the start.
    /// Seals the active region and takes a new one when it is full.
    pub fn alloc(
        &mut self,
        heap: &Heap,
        bytes: usize,
        kind: Kind,
        overdraft: bool,
    ) -> Result<NonNull<u8>, NoRegion> {
        debug_assert!(bytes % 8 == 0 && bytes >= HEADER && bytes <= heap.region_size);
        let cursor = match kind {
            Kind::Normal => &mut self.normal,
            Kind::Nontemporal => &mut self.nontemporal,
        };
        if let Some(c) = cursor {
            if c.used + bytes <= heap.region_size {
                // SAFETY: the reservation lies inside the region.
                let p = unsafe { NonNull::new_unchecked(c.base.as_ptr().add(c.used)) };
                c.used += bytes;
                return Ok(p);
            }
        }
        let fresh = heap.take(overdraft)?;
        if cursor.is_none() {
            heap.filling
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if let Some(old) = cursor.replace(Cursor {
            base: fresh,
            used: bytes,
        }) {
            heap.seal(Sealed {
                base: old.base,
                end: old.used,
                kind,
            });
        }
        Ok(fresh)
    }

    /// Seals the lane's active regions (so everything can be evacuated).
    pub fn seal_all(&mut self, heap: &Heap) {
        for (cursor, kind) in [
            (&mut self.normal, Kind::Normal),
            (&mut self.nontemporal, Kind::Nontemporal),
        ] {
            if let Some(c) = cursor.take() {
                heap.filling
                    .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                heap.seal(Sealed {
                    base: c.base,
                    end: c.used,
                    kind,
                });
            }
        }
    }
}
