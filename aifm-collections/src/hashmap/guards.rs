//! The map's guards: [`Ref`] and [`RefMut`].
//!
//! A guard holds a dereference scope and is counted in its node's `state` word (see the
//! `index` essay), never a lock: other guards, inserts, removals and writers of other keys go
//! ahead while it lives, on this thread or any other. A [`Ref`] is a reader of its node (a
//! writer that finds it copies the pair instead of changing it) and holds an epoch pin, so a
//! removed node stays allocated until it is dropped. A [`RefMut`] holds the node's `WRITER`
//! bit: it is exclusive like `&mut`, and a reader or writer of the *same* key waits until it
//! is dropped (std rejects such code at compile time; here taking a second guard on a key
//! while holding its `RefMut` on the same thread waits forever). The scope keeps the
//! evacuator from moving the pair while the guard lives, so a guard also holds up evacuation
//! rounds: keep guards short, as scopes.

use super::index::{Node, WRITER};
use aifm_core::{FarData, Scope};
use crossbeam_epoch::Guard;
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
    node: *const Node<K, V>,
    // Dropped after `Drop::drop` uncounts the guard: the pin keeps the node allocated, the
    // scope keeps it in place.
    _pin: Guard,
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
    node: *const Node<K, V>,
    _scope: Scope,
    _map: PhantomData<&'a mut (K, V)>,
}

impl<'a, K: FarData, V: FarData> Ref<'a, K, V> {
    /// # Safety
    /// This guard was admitted once as a reader of `node` (its `state` count), `node` was
    /// dereferenced through `scope`, and `pin` was pinned before the node's entry was loaded.
    pub(crate) unsafe fn new(scope: Scope, pin: Guard, node: *const Node<K, V>) -> Self {
        Ref {
            node,
            _pin: pin,
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
        // cannot move or evict it; `_pin` keeps a removed node's box from being dropped; our
        // reader count keeps writers from moving the value out or writing it (they copy it
        // instead).
        unsafe { (*self.node).value() }
    }
}

impl<K: FarData, V: FarData> Drop for Ref<'_, K, V> {
    fn drop(&mut self) {
        // SAFETY: see `Deref`; the node is alive until `_pin` is dropped, after this.
        unsafe { &*self.node }.state.fetch_sub(1, Ordering::Release);
    }
}

impl<'a, K: FarData, V: FarData> RefMut<'a, K, V> {
    /// # Safety
    /// This guard owns `WRITER` on `node`, which is in its map's index and was dereferenced
    /// through `scope`.
    pub(crate) unsafe fn new(scope: Scope, node: *const Node<K, V>) -> Self {
        RefMut {
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
        // SAFETY: as for `Ref`; `WRITER` keeps every other guard and writer off the value.
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
        // SAFETY: while `WRITER` is set no writer takes the node out of the index (they wait),
        // so it is alive; the release orders our writes before the next reader's admission.
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
