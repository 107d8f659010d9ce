//! The map's guards: [`Ref`] and [`RefMut`].
//!
//! A guard holds a dereference scope and counts itself in its shard (see the `index` essay),
//! never a lock: other guards, inserts, removals and writers of other keys go ahead while it
//! lives, on this thread or any other. A `RefMut` is exclusive like `&mut`: a reader or
//! writer of the *same* key waits until it is dropped (std rejects such code at compile time;
//! here taking a second guard on a key while holding its `RefMut` on the same thread waits
//! forever). The scope keeps the evacuator from moving the pair while the guard lives, so a
//! guard also holds up evacuation rounds: keep guards short, as scopes.

use super::index::{Node, Shard};
use aifm_core::{FarData, Scope};
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::Ordering;

/// A shared reference to a pair of a [`RemHashMap`](super::RemHashMap): a scope and a pin,
/// no lock.
///
/// # Examples
///
/// ```
/// let m = aifm_collections::RemHashMap::new();
/// m.insert(1u64, 2u64);
/// let r = m.get(&1).unwrap();
/// assert_eq!((*r.key(), *r), (1, 2));
/// m.insert(1, 3); // no deadlock: the guard keeps reading the value it pinned
/// assert_eq!(*r, 2);
/// ```
///
/// A guard holds its thread's dereference scope, so it cannot move to another thread:
///
/// ```compile_fail
/// let m = aifm_collections::RemHashMap::new();
/// m.insert(1u64, 2u64);
/// let r = m.get(&1).unwrap();
/// std::thread::scope(|s| {
///     s.spawn(move || assert_eq!(*r, 2));
/// });
/// ```
pub struct Ref<'a, K: FarData, V: FarData> {
    shard: *const Shard<K, V>,
    node: *const Node<K, V>,
    // Dropped after `Drop::drop` uncounts the guard.
    _scope: Scope,
    _map: PhantomData<&'a (K, V)>,
}

/// A mutable reference to a pair of a [`RemHashMap`](super::RemHashMap): a scope and the
/// pair's writer bit, no lock.
///
/// # Examples
///
/// ```
/// let m = aifm_collections::RemHashMap::new();
/// m.insert(1u64, 2u64);
/// *m.get_mut(&1).unwrap() = 5;
/// assert_eq!(m.get_cloned(&1), Some(5));
/// ```
pub struct RefMut<'a, K: FarData, V: FarData> {
    shard: *const Shard<K, V>,
    /// The pair's hash and box key, to find its bucket and clear `WRITER` on drop.
    hash: u64,
    id: u64,
    node: *mut Node<K, V>,
    _scope: Scope,
    _map: PhantomData<&'a mut (K, V)>,
}

impl<'a, K: FarData, V: FarData> Ref<'a, K, V> {
    /// # Safety
    /// This guard is counted once in `shard.guards`, and `node` was dereferenced from a pair
    /// of the shard through `scope`.
    pub(crate) unsafe fn new(scope: Scope, shard: &Shard<K, V>, node: *mut Node<K, V>) -> Self {
        Ref {
            shard,
            node,
            _scope: scope,
            _map: PhantomData,
        }
    }

    /// The key.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::new();
    /// m.insert(7u8, ());
    /// assert_eq!(*m.get(&7).unwrap().key(), 7);
    /// ```
    pub fn key(&self) -> &K {
        // SAFETY: see `Deref`.
        unsafe { &(*self.node).key }
    }
}

impl<K: FarData, V: FarData> std::ops::Deref for Ref<'_, K, V> {
    type Target = V;
    fn deref(&self) -> &V {
        // SAFETY: the node was dereferenced through `_scope`, still open, so the evacuator
        // cannot move or free it; our count in the shard keeps its box alive (a removed or
        // replaced box is retired until the shard has no guard) and writers off it (they copy
        // it instead).
        unsafe { &(*self.node).value }
    }
}

impl<K: FarData, V: FarData> Drop for Ref<'_, K, V> {
    fn drop(&mut self) {
        // SAFETY: the shard lives as long as the map, which this guard borrows.
        unsafe { &*self.shard }
            .guards
            .fetch_sub(1, Ordering::AcqRel);
    }
}

impl<'a, K: FarData, V: FarData> RefMut<'a, K, V> {
    /// # Safety
    /// This guard owns `WRITER` on the bucket of hash `hash` whose box has key `id`, is
    /// counted once in `shard.guards`, and `node` was dereferenced mutably from that box
    /// through `scope`.
    pub(crate) unsafe fn new(
        scope: Scope,
        shard: &Shard<K, V>,
        hash: u64,
        id: u64,
        node: *mut Node<K, V>,
    ) -> Self {
        RefMut {
            shard,
            hash,
            id,
            node,
            _scope: scope,
            _map: PhantomData,
        }
    }

    /// The key.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::new();
    /// m.insert(7u8, ());
    /// assert_eq!(*m.get_mut(&7).unwrap().key(), 7);
    /// ```
    pub fn key(&self) -> &K {
        // SAFETY: see `Deref for Ref`; nothing mutates the key.
        unsafe { &(*self.node).key }
    }
}

impl<K: FarData, V: FarData> std::ops::Deref for RefMut<'_, K, V> {
    type Target = V;
    fn deref(&self) -> &V {
        // SAFETY: as for `Ref`; `WRITER` keeps every other guard and probe off the node.
        unsafe { &(*self.node).value }
    }
}

impl<K: FarData, V: FarData> std::ops::DerefMut for RefMut<'_, K, V> {
    fn deref_mut(&mut self) -> &mut V {
        // SAFETY: as for `Deref`; the node was dereferenced mutably (so it is marked dirty)
        // and `WRITER` makes this guard its only user.
        unsafe { &mut (*self.node).value }
    }
}

impl<K: FarData, V: FarData> Drop for RefMut<'_, K, V> {
    fn drop(&mut self) {
        // SAFETY: the shard lives as long as the map, which this guard borrows.
        let shard = unsafe { &*self.shard };
        // While `WRITER` is set nobody moves the pair out of the table, so it is there.
        shard.read().clear_writer(self.hash, self.id);
        shard.guards.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<K: FarData + fmt::Debug, V: FarData + fmt::Debug> fmt::Debug for Ref<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Ref")
            .field(self.key())
            .field(&**self)
            .finish()
    }
}

impl<K: FarData + fmt::Debug, V: FarData + fmt::Debug> fmt::Debug for RefMut<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RefMut")
            .field(self.key())
            .field(&**self)
            .finish()
    }
}
