//! Membership: which servers are in use, and condemning the ones that fail.
//!
//! Each position of the server list is a slot: a server, an epoch and a state (live,
//! rebuilding, dead). Every state change happens under the `reasons` lock, taken before the
//! slot's, and is announced on `changed`. A request works on [`Member`](super::Member)
//! snapshots of the slots it picked; [`ReplicatedBackend::condemn`] marks a member's slot dead
//! only if its epoch still matches, so a late failure report about a replaced server cannot
//! condemn its replacement. A server is condemned for good on [`Error::Disconnected`] or
//! [`Error::Timeout`] ([`is_failure`]); any other error is the server's answer.
//!
//! Locks here recover from poisoning (`PoisonError::into_inner`), as everywhere in this
//! backend: what they guard is a slot's state and the reasons, each written in one assignment,
//! so a holder that panicked leaves values that are still states a reader can act on.

use super::{Member, ReplicatedBackend, ReplicatedStats, State};
use crate::error::Error;
use crate::sync::{MutexExt, RwLockExt};
use crossbeam_utils::sync::{ShardedLockReadGuard, ShardedLockWriteGuard};
use std::sync::atomic::Ordering;
use std::sync::MutexGuard;

/// Whether an error means the server is gone (as opposed to the server's answer).
pub(super) fn is_failure(e: &Error) -> bool {
    matches!(e, Error::Disconnected(_) | Error::Timeout)
}

impl ReplicatedBackend {
    /// Whether server `i` (configuration order) is still in use: serving, or a replacement
    /// being rebuilt.
    ///
    /// # Panics
    /// When `i` is out of range.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::replicated::ReplicatedBackend;
    /// use aifm_core::backend::{Backend, EmbeddedBackend};
    /// let two: Vec<Box<dyn Backend>> = (0..2).map(|_| Box::new(EmbeddedBackend::new()) as _).collect();
    /// assert!(ReplicatedBackend::new(two).unwrap().is_live(1));
    /// ```
    #[track_caller]
    pub fn is_live(&self, i: usize) -> bool {
        self.state(i) != State::Dead
    }

    /// Whether server `i` is a replacement still being rebuilt (it takes writes, not reads).
    ///
    /// # Panics
    /// When `i` is out of range.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::replicated::ReplicatedBackend;
    /// use aifm_core::backend::{Backend, EmbeddedBackend};
    /// let two: Vec<Box<dyn Backend>> = (0..2).map(|_| Box::new(EmbeddedBackend::new()) as _).collect();
    /// assert!(!ReplicatedBackend::new(two).unwrap().is_rebuilding(0));
    /// ```
    #[track_caller]
    pub fn is_rebuilding(&self, i: usize) -> bool {
        self.state(i) == State::Rebuilding
    }

    /// The dead servers: index, name, and the error that condemned each.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::replicated::ReplicatedBackend;
    /// use aifm_core::backend::{Backend, EmbeddedBackend};
    /// let two: Vec<Box<dyn Backend>> = (0..2).map(|_| Box::new(EmbeddedBackend::new()) as _).collect();
    /// assert!(ReplicatedBackend::new(two).unwrap().dead_servers().is_empty());
    /// ```
    pub fn dead_servers(&self) -> Vec<(usize, String, Error)> {
        let reasons = self.reasons();
        reasons
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.clone().map(|e| (i, self.member(i).server.name(), e)))
            .collect()
    }

    /// Live, rebuilding and dead servers, degraded reads, failovers and rebuild progress.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::replicated::ReplicatedBackend;
    /// use aifm_core::backend::{Backend, EmbeddedBackend};
    /// use std::sync::Arc;
    /// let two: Vec<Box<dyn Backend>> = (0..2).map(|_| Box::new(EmbeddedBackend::new()) as _).collect();
    /// let far = Arc::new(ReplicatedBackend::new(two).unwrap());
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).backend(far.clone()).build().unwrap();
    /// let s = far.stats();
    /// assert_eq!((s.live, s.dead, s.failovers, s.rebuilding), (2, 0, 0, 0));
    /// # drop(rt);
    /// ```
    pub fn stats(&self) -> ReplicatedStats {
        let states: Vec<State> = (0..self.slots.len()).map(|i| self.state(i)).collect();
        let count = |s: State| states.iter().filter(|&&x| x == s).count();
        let p = &self.rebuild;
        ReplicatedStats {
            live: count(State::Live),
            rebuilding: count(State::Rebuilding),
            dead: count(State::Dead),
            degraded_reads: self.degraded_reads.load(Ordering::Relaxed),
            failovers: self.failovers.load(Ordering::Relaxed),
            replaced: p.replaced.load(Ordering::Relaxed),
            rebuilt_objects: p.objects.load(Ordering::Relaxed),
            rebuilt_bytes: p.bytes.load(Ordering::Relaxed),
            unrecoverable_objects: p.unrecoverable.load(Ordering::Relaxed),
        }
    }

    pub(super) fn reasons(&self) -> MutexGuard<'_, Vec<Option<Error>>> {
        self.reasons.locked()
    }

    /// A snapshot of server `i`.
    #[track_caller]
    pub(super) fn member(&self, i: usize) -> Member {
        let slot = self.slots[i].reading();
        Member {
            index: i,
            server: slot.server.clone(),
            epoch: slot.epoch,
            state: slot.state,
        }
    }

    #[track_caller]
    pub(super) fn state(&self, i: usize) -> State {
        self.slots[i].reading().state
    }

    pub(super) fn readable(&self, i: usize) -> bool {
        self.state(i) == State::Live
    }

    /// Held shared by every operation that changes far memory (writes, removes, computes,
    /// construct / destruct), exclusively by a rebuild batch (see the `rebuild` module).
    pub(super) fn mutation(&self) -> ShardedLockReadGuard<'_, ()> {
        self.rebuild.gate.reading()
    }

    pub(super) fn exclusive(&self) -> ShardedLockWriteGuard<'_, ()> {
        self.rebuild.gate.writing()
    }

    /// Marks the server `m` was taken from dead, keeping the first error that condemned
    /// it; nothing happens if its position was replaced since.
    pub(super) fn condemn(&self, m: &Member, e: Error) {
        let mut reasons = self.reasons();
        {
            let mut slot = self.slots[m.index].writing();
            if slot.epoch != m.epoch || slot.state == State::Dead {
                return;
            }
            slot.state = State::Dead;
        }
        let remaining = (0..self.slots.len()).filter(|&i| self.is_live(i)).count();
        tracing::warn!(
            server = %m.server.name(),
            index = m.index,
            error = %e,
            remaining,
            "far-memory server condemned: it will not be asked again ({remaining} of {} servers remain)",
            self.slots.len()
        );
        reasons[m.index] = Some(e);
        drop(reasons);
        self.changed.notify_all();
    }

    /// The error for an object none of whose replicas is live.
    pub(super) fn lost(&self, set: &[usize]) -> Error {
        let names: Vec<String> = set.iter().map(|&i| self.member(i).server.name()).collect();
        Error::Disconnected(format!(
            "every replica of the object is on a dead server ({})",
            names.join(", ")
        ))
    }

    /// Whether some member of `set` cannot serve reads.
    pub(super) fn any_unreadable(&self, set: &[usize]) -> bool {
        set.iter().any(|&i| !self.readable(i))
    }
}
