//! Placement: which servers hold an object, by rendezvous (highest-random-weight) hashing.
//!
//! A server's score for a placement key is `mix(hash ^ seed)`, its seed derived from its
//! position in the server list; an object's set is the `count` best-scoring servers, best
//! first. Nothing here depends on which servers are alive: a dead server stays in the sets
//! (its copies are missing), so the sets never move, and a replacement at the same position
//! takes exactly the dead server's objects. The hash is FNV-1a then SplitMix64's finalizer,
//! stable across runs and platforms, since every client must compute the same sets.
//!
//! The placement key is `(ds, key)` for a striped structure (always the object store) and
//! `ds` alone for one placed whole (see the parent module's essay).

use super::{fragment, ReplicatedBackend, OBJECT_STORE};
use crate::backend::Placement;
use crate::sync::RwLockExt;
use smallvec::SmallVec;

/// A replica set (or an erasure-coded object's fragment holders): server indices, best rank
/// first. Inline up to 4, so placing an object allocates nothing for the usual 2 or 3
/// replicas (or a 2+1 or 3+1 code).
pub type ReplicaSet = SmallVec<[usize; 4]>;

/// The 64-bit finalizer of SplitMix64: a cheap, well-mixing bijection.
pub(super) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// FNV-1a over `ds` and `key` (stable across runs and platforms), then mixed.
pub(super) fn hash_key(ds: u32, key: Option<&[u8]>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    ds.to_le_bytes().into_iter().for_each(&mut eat);
    if let Some(key) = key {
        eat(1);
        key.iter().copied().for_each(&mut eat);
    }
    mix(h)
}

impl ReplicatedBackend {
    /// The replica set of object `key` of structure `ds`: server indices, best rank first.
    /// Dead servers stay in the set (their copies are simply missing). When the object store
    /// is erasure-coded ([`ReplicatedBackend::with_erasure`]), its objects' sets are their
    /// `k + m` fragment holders, fragment `i` on the `i`-th.
    ///
    /// Structures other than [`OBJECT_STORE`] are placed whole unless they were created
    /// [`Placement::Striped`], so the key does not matter for them.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::replicated::ReplicatedBackend;
    /// use aifm_core::backend::{Backend, EmbeddedBackend};
    /// let five: Vec<Box<dyn Backend>> = (0..5).map(|_| Box::new(EmbeddedBackend::new()) as _).collect();
    /// let far = ReplicatedBackend::new(five).unwrap();
    /// assert_eq!(far.placement(7, b"a"), far.placement(7, b"b"));
    /// let set = far.placement(0, b"a");
    /// assert_eq!(set.len(), 2);
    /// assert_ne!(set[0], set[1]);
    /// ```
    pub fn placement(&self, ds: u32, key: &[u8]) -> ReplicaSet {
        if self.is_striped(ds) {
            self.object_set(ds, key)
        } else {
            self.structure_set(ds)
        }
    }

    /// The set of object `key` of a striped structure: its replicas, or its `k + m` fragment
    /// holders when the structure is erasure-coded.
    pub(super) fn object_set(&self, ds: u32, key: &[u8]) -> ReplicaSet {
        let count = self
            .code_for(ds)
            .map_or(self.replicas, fragment::Code::total);
        self.rank(hash_key(ds, Some(key)), count)
    }

    /// How structure `ds` is placed: the object store is always striped; others as they were
    /// created ([`crate::backend::Backend::construct_placed`]; whole by default).
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::replicated::ReplicatedBackend;
    /// use aifm_core::backend::{Backend, EmbeddedBackend, Placement, OBJECT_STORE, OBJECT_STORE_DEVICE};
    /// let three: Vec<Box<dyn Backend>> = (0..3).map(|_| Box::new(EmbeddedBackend::new()) as _).collect();
    /// let far = ReplicatedBackend::new(three).unwrap();
    /// far.construct_placed(4, OBJECT_STORE_DEVICE, &[], Placement::Striped).unwrap();
    /// assert_eq!(far.structure_placement(4), Placement::Striped);
    /// assert_eq!(far.structure_placement(5), Placement::Whole);
    /// assert_eq!(far.structure_placement(OBJECT_STORE), Placement::Striped);
    /// ```
    pub fn structure_placement(&self, ds: u32) -> Placement {
        if self.is_striped(ds) {
            Placement::Striped
        } else {
            Placement::Whole
        }
    }

    pub(super) fn is_striped(&self, ds: u32) -> bool {
        ds == OBJECT_STORE
            || self
                .placements
                .reading()
                .get(&ds)
                .is_some_and(|p| p.is_striped())
    }

    pub(super) fn set_placement(&self, ds: u32, placement: Placement) {
        let mut map = self.placements.writing();
        match placement {
            Placement::Striped => map.insert(ds, placement),
            Placement::Whole => map.remove(&ds),
        };
    }

    /// The replica set of a whole structure (where its device operations run).
    pub(super) fn structure_set(&self, ds: u32) -> ReplicaSet {
        self.rank(hash_key(ds, None), self.replicas)
    }

    /// The `count` servers of highest rendezvous score for hash `h`, best first.
    /// Scores up to 16 servers without allocating.
    pub(super) fn rank(&self, h: u64, count: usize) -> ReplicaSet {
        let mut scored: SmallVec<[(u64, usize); 16]> = self
            .seeds
            .iter()
            .enumerate()
            .map(|(i, seed)| (mix(h ^ seed), i))
            .collect();
        scored.sort_unstable_by(|a, b| b.cmp(a));
        scored.into_iter().take(count).map(|(_, i)| i).collect()
    }

    /// The replica sets of `keys` (computed once when the structure is placed whole).
    pub(super) fn sets(
        &self,
        ds: u32,
        keys: impl Iterator<Item = impl AsRef<[u8]>>,
    ) -> Vec<ReplicaSet> {
        if self.is_striped(ds) {
            keys.map(|k| self.object_set(ds, k.as_ref())).collect()
        } else {
            let set = self.structure_set(ds);
            keys.map(|_| set.clone()).collect()
        }
    }
}
