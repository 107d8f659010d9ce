//! The map's guards: [`Ref`] and [`RefMut`].
//!
//! A guard is counted in its node's `state` word (see the `index` essay), never a lock: other
//! guards, inserts, removals and writers of other keys go ahead while it lives, on this thread
//! or any other. A [`Ref`] is a reader of its node (a writer that finds it copies the pair
//! instead of changing it) and holds an epoch pin, so a removed node stays allocated until it
//! is dropped. A [`RefMut`] holds the node's `WRITER` bit: it is exclusive like `&mut`, and a
//! reader or writer of the *same* key waits until it is dropped (std rejects such code at
//! compile time; here taking a second guard on a key while holding its `RefMut` on the same
//! thread waits forever).
//!
//! # No scope
//!
//! A guard holds no dereference scope: the count or bit it set in the node *pins* the pair
//! (the map's evacuation handler answers `pinned` from it, see `far`), and the runtime never
//! moves or evicts a pinned object. The guard is admitted inside the scope that found the
//! node, which ends as the guard is made; from then on the node stays at its address because
//! of the pin alone. So a guard held for long (by a thread that then sleeps) holds up only its
//! own pair and that pair's heap region, never an evacuation round. Sound because a pin taken
//! inside a scope is visible to every move that could follow (the runtime's argument is at
//! `EvacuationHandler::pinned`), and the guard reads the node only while its pin lasts: a
//! `Ref` uncounts itself as the last thing it does with the node, a `RefMut` clears `WRITER`
//! likewise. Dropping the epoch pin afterwards only ends the delay of the node's reclamation.

use super::index::{Node, WRITER};
use aifm_core::{FarData, Scope};
use crossbeam_epoch::Guard;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::Ordering;

/// A shared reference to a pair of a [`RemHashMap`](super::RemHashMap): a count in the pair
/// (which also keeps the runtime from moving it) and an epoch pin; no lock, no scope.
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
/// A guard holds up no evacuation (it pins its pair, and only that pair stays put), so a
/// thread may keep one while it sleeps, or force an evacuation itself:
///
/// ```
/// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
/// let m = aifm_collections::RemHashMap::new_in(&rt);
/// m.insert(1u64, [1u64; 8]);
/// let r = m.get(&1).unwrap();
/// rt.evacuate_now(); // inside a scope this would panic: it would wait for itself
/// assert_eq!(r[0], 1);
/// ```
///
/// A guard holds its thread's epoch pin, so it cannot move to another thread:
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
    node: *const Node<K, V>,
    // Dropped after `Drop::drop` uncounts the guard: the pin keeps the node allocated (the
    // count keeps it in place).
    _pin: Guard,
    _map: PhantomData<&'a (K, V)>,
}

/// A mutable reference to a pair of a [`RemHashMap`](super::RemHashMap): the pair's writer
/// bit (which also keeps the runtime from moving it); no lock, no scope.
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
    node: *const Node<K, V>,
    _map: PhantomData<&'a mut (K, V)>,
}

impl<'a, K: FarData, V: FarData> Ref<'a, K, V> {
    /// Makes the guard and ends `scope`: the guard's count pins the node from here on.
    ///
    /// # Safety
    /// This guard was admitted once as a reader of `node` (its `state` count) inside `scope`,
    /// after `node` was dereferenced through it, and `pin` was pinned before the node's entry
    /// was loaded.
    pub(crate) unsafe fn new(scope: Scope, pin: Guard, node: *const Node<K, V>) -> Self {
        drop(scope);
        Ref {
            node,
            _pin: pin,
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
        // SAFETY: our reader count, taken in the scope that found the node, pins it: the
        // runtime neither moves nor evicts it while the count lasts (the map's handler says
        // so), and writers neither move the value out nor write it (they copy it instead);
        // `_pin` keeps a removed node's box from being dropped.
        unsafe { (*self.node).value() }
    }
}

impl<K: FarData, V: FarData> Drop for Ref<'_, K, V> {
    fn drop(&mut self) {
        // SAFETY: see `Deref`; the node is alive and in place until this decrement (the
        // guard's last touch of it: afterwards it may move), and allocated until `_pin` is
        // dropped, after this.
        unsafe { &*self.node }.state.fetch_sub(1, Ordering::Release);
    }
}

impl<'a, K: FarData, V: FarData> RefMut<'a, K, V> {
    /// Makes the guard and ends `scope`: the guard's `WRITER` bit pins the node from here on.
    ///
    /// # Safety
    /// This guard owns `WRITER` on `node`, set inside `scope` (after `node` was dereferenced
    /// through it, or before the node entered the index), and the node is in its map's index.
    pub(crate) unsafe fn new(scope: Scope, node: *const Node<K, V>) -> Self {
        drop(scope);
        RefMut {
            node,
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
        // SAFETY: `WRITER` pins the node (as a reader count does, see `Ref`), keeps it in
        // the index (writers wait for it), and keeps every other guard and writer off the
        // value.
        unsafe { (*self.node).value() }
    }
}

impl<K: FarData, V: FarData> std::ops::DerefMut for RefMut<'_, K, V> {
    fn deref_mut(&mut self) -> &mut V {
        // SAFETY: as for `Deref`; `WRITER` makes this guard the value's only user (readers
        // are not admitted, writers wait or copy), and `&mut self` makes this reference the
        // guard's only one.
        unsafe { (*self.node).value_mut() }
    }
}

impl<K: FarData, V: FarData> Drop for RefMut<'_, K, V> {
    fn drop(&mut self) {
        // SAFETY: while `WRITER` is set no writer takes the node out of the index (they wait)
        // and the runtime does not move it, so it is alive and in place; the release orders
        // our writes before the next reader's admission (and before a move, which asks the
        // handler with an acquire load of `state`).
        unsafe { &*self.node }
            .state
            .fetch_and(!WRITER, Ordering::Release);
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
