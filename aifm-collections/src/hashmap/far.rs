//! The map's far side on the client: the evacuation handler, far keys, per-shard counts.
//!
//! * **Eviction detaches.** The handler hands a cold pair to the runtime as
//!   `WriteBack::DetachAs` under `[shard: u16 LE][key encoding]` (the server device's key,
//!   see [`super::device`]); the runtime writes it in a batch and only then detaches it. The
//!   handler marks the node [`FAR_COPY`] first: if far memory takes only part of the batch,
//!   the pair stays local but a copy may be on the server, and removing the pair later removes
//!   that copy too. A [`RETIRED`] node (replaced or removed while guarded) is dropped without
//!   a write, and a `PENDING` one (not yet in the index) is refused, which keeps it local.
//!   The handler takes no lock, so it never waits for a mutator.
//! * **Guards pin their pair.** The handler's `pinned` answers from the node's `state` (a
//!   reader count or `WRITER`), so the runtime never moves a guarded pair, and a guard needs
//!   no dereference scope once admitted (see [`super::guards`]).
//! * **Counts.** `remote[shard]` counts the pairs of a shard that may be in far memory (one
//!   per `FAR_COPY` pair, detached or not): a miss asks the server only when it is non-zero.
//!   It may over-count (a miss then asks needlessly), never under-count.

use super::index::{Node, DEAD, FAR_COPY, PENDING, RETIRED};
use super::SHARDS;
use aifm_core::{
    Backend, Error, EvacuationHandler, FarData, ObjectView, PinView, Result, WriteBack,
};
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Counters shared by the map and its handler.
pub(crate) struct Counts {
    /// Pairs of each shard that may live in far memory.
    pub(crate) remote: Box<[AtomicUsize]>,
    pub(crate) len: AtomicUsize,
}

impl Counts {
    pub(crate) fn new() -> Self {
        Counts {
            remote: (0..SHARDS).map(|_| AtomicUsize::new(0)).collect(),
            len: AtomicUsize::new(0),
        }
    }

    pub(crate) fn maybe_far(&self, si: usize) -> bool {
        self.remote[si].load(Ordering::Acquire) != 0
    }

    /// One far copy of shard `si` settled (taken home or removed).
    pub(crate) fn settled(&self, si: usize) {
        let _ = self.remote[si].fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            Some(n.saturating_sub(1))
        });
    }
}

/// State shared with the evacuation handler.
pub(crate) struct Shared<S> {
    pub(crate) hasher: S,
    pub(crate) counts: Counts,
}

impl<S: BuildHasher> Shared<S> {
    pub(crate) fn hash<Q: Hash + ?Sized>(&self, k: &Q) -> u64 {
        self.hasher.hash_one(k)
    }
}

/// The shard of a hash (its high bits; the table uses the low ones).
pub(crate) fn shard_index(h: u64) -> usize {
    (h >> 58) as usize % SHARDS
}

/// The server's key of a pair: `[shard: u16 LE][key encoding]`.
pub(crate) fn far_key<K: FarData>(shard: usize, k: &K) -> Result<Vec<u8>> {
    let mut out = (shard as u16).to_le_bytes().to_vec();
    k.encode(&mut out)?;
    Ok(out)
}

pub(crate) struct Handler<K, V, S> {
    pub(crate) shared: Arc<Shared<S>>,
    pub(crate) _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V, S> EvacuationHandler for Handler<K, V, S>
where
    K: FarData + Hash,
    V: FarData,
    S: BuildHasher + Send + Sync + 'static,
{
    fn write_back(&self, obj: &ObjectView<'_>, _far: &dyn Backend) -> Result<WriteBack> {
        let Some(node) = obj.downcast::<Node<K, V>>() else {
            return Ok(WriteBack::Default);
        };
        let flags = node.flags.load(Ordering::Acquire);
        if flags & RETIRED != 0 {
            return Ok(WriteBack::Detached);
        }
        if flags & PENDING != 0 {
            // Not in the map yet: an error keeps it local for a later round.
            return Err(Error::Unsupported("a map pair not yet in its index".into()));
        }
        let shard = shard_index(self.shared.hash(&node.key));
        let key = far_key(shard, &node.key)?;
        let mut value = Vec::new();
        // SAFETY: the runtime evicts an object only once no scope that dereferenced it is
        // open and `pinned` (below) said no guard holds it, so no guard or writer of the map
        // uses the node now; a node whose value was moved out is `RETIRED` (returned above)
        // as well as `TAKEN`.
        unsafe { node.value() }.encode(&mut value)?;
        // Flagged and counted before the pair lands: a miss may ask the server needlessly,
        // but never skips a pair that is there.
        if node.flags.fetch_or(FAR_COPY, Ordering::AcqRel) & FAR_COPY == 0 {
            self.shared.counts.remote[shard].fetch_add(1, Ordering::AcqRel);
        }
        Ok(WriteBack::DetachAs { key, value })
    }

    /// A pair is pinned while a guard holds it: a [`Ref`](super::Ref) counts itself in the
    /// node's `state` and a [`RefMut`](super::RefMut) holds `WRITER` there, both set inside
    /// the scope that found the node, which the guard then ends. `DEAD` alone (a writer
    /// removing the pair under the shard's mutex) pins nothing: that writer still holds its
    /// scope.
    fn pinned(&self, obj: &PinView<'_>) -> bool {
        // Only `state` is read: it is an atomic, and guards write nothing else of the node
        // but the value, which sits in an `UnsafeCell`.
        obj.downcast::<Node<K, V>>()
            .is_some_and(|n| n.state.load(Ordering::Acquire) & !DEAD != 0)
    }
}
