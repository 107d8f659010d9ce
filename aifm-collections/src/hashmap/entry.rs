//! The entry API of [`RemHashMap`](super::RemHashMap): [`Entry`] and [`VacantEntry`].
//!
//! An occupied entry is a [`RefMut`] (a scope and the pair's writer bit). A vacant entry
//! holds the key and nothing else, no lock: [`VacantEntry::insert`] inserts like
//! `RemHashMap::insert` (so if another thread inserted the key meanwhile, this value replaces
//! that one) and returns the writer guard of the new pair.

use super::core::Core;
use super::far::Counts;
use super::guards::RefMut;
use crate::common::fail;
use aifm_core::FarData;
use std::fmt;

/// A view into one key of a [`RemHashMap`](super::RemHashMap) (see
/// [`RemHashMap::entry`](super::RemHashMap::entry)).
///
/// # Examples
///
/// ```
/// let m = aifm_collections::RemHashMap::new();
/// *m.entry("word".to_string()).or_insert(0u32) += 1;
/// *m.entry("word".to_string()).or_insert(0u32) += 1;
/// assert_eq!(m.get_cloned("word"), Some(2));
/// ```
pub enum Entry<'a, K: FarData, V: FarData> {
    /// The key is present.
    Occupied(RefMut<'a, K, V>),
    /// The key is absent.
    Vacant(VacantEntry<'a, K, V>),
}

/// An absent key of a [`RemHashMap`](super::RemHashMap).
///
/// # Examples
///
/// ```
/// use aifm_collections::hashmap::Entry;
/// let m = aifm_collections::RemHashMap::<u8, u8>::new();
/// if let Entry::Vacant(v) = m.entry(3) {
///     assert_eq!(*v.key(), 3);
///     v.insert(4);
/// }
/// assert_eq!(m.get_cloned(&3), Some(4));
/// ```
pub struct VacantEntry<'a, K: FarData, V: FarData> {
    key: K,
    shard: usize,
    hash: u64,
    core: &'a Core<K, V>,
    counts: &'a Counts,
}

impl<'a, K: FarData + Eq + Clone, V: FarData> VacantEntry<'a, K, V> {
    pub(crate) fn new(
        key: K,
        shard: usize,
        hash: u64,
        core: &'a Core<K, V>,
        counts: &'a Counts,
    ) -> Self {
        VacantEntry {
            key,
            shard,
            hash,
            core,
            counts,
        }
    }

    /// The key.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_collections::hashmap::Entry;
    /// let m = aifm_collections::RemHashMap::<u8, u8>::new();
    /// let Entry::Vacant(v) = m.entry(3) else { unreachable!() };
    /// assert_eq!(*v.key(), 3);
    /// ```
    pub fn key(&self) -> &K {
        &self.key
    }

    /// Takes the key back.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_collections::hashmap::Entry;
    /// let m = aifm_collections::RemHashMap::<u8, u8>::new();
    /// let Entry::Vacant(v) = m.entry(9) else { unreachable!() };
    /// assert_eq!(v.into_key(), 9);
    /// ```
    pub fn into_key(self) -> K {
        self.key
    }

    /// Inserts `value` and returns a mutable reference to it.
    ///
    /// # Panics
    /// If local or far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_collections::hashmap::Entry;
    /// let m = aifm_collections::RemHashMap::<u8, u8>::new();
    /// let Entry::Vacant(v) = m.entry(1) else { unreachable!() };
    /// assert_eq!(*v.insert(2), 2);
    /// ```
    #[track_caller]
    pub fn insert(self, value: V) -> RefMut<'a, K, V> {
        let VacantEntry {
            key,
            shard,
            hash,
            core,
            counts,
        } = self;
        let put = core.put(counts, shard, hash, (key, value), true);
        match put {
            Ok((_, Some(r))) => r,
            Ok((_, None)) => unreachable!("put with a guard returns one"),
            Err(e) => fail("RemHashMap::insert", e),
        }
    }
}

impl<'a, K: FarData + Eq + Clone, V: FarData> Entry<'a, K, V> {
    /// The value, inserting `default` if the key is absent.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::new();
    /// assert_eq!(*m.entry(1u8).or_insert(5u8), 5);
    /// ```
    #[track_caller]
    pub fn or_insert(self, default: V) -> RefMut<'a, K, V> {
        match self {
            Entry::Occupied(r) => r,
            Entry::Vacant(v) => v.insert(default),
        }
    }

    /// The value, inserting `f()` if the key is absent.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::new();
    /// assert_eq!(*m.entry(1u8).or_insert_with(|| 6u8), 6);
    /// ```
    #[track_caller]
    pub fn or_insert_with(self, f: impl FnOnce() -> V) -> RefMut<'a, K, V> {
        match self {
            Entry::Occupied(r) => r,
            Entry::Vacant(v) => v.insert(f()),
        }
    }

    /// The value, inserting `f(&key)` if the key is absent.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::new();
    /// assert_eq!(*m.entry(3u8).or_insert_with_key(|k| k * 2), 6);
    /// ```
    #[track_caller]
    pub fn or_insert_with_key(self, f: impl FnOnce(&K) -> V) -> RefMut<'a, K, V> {
        match self {
            Entry::Occupied(r) => r,
            Entry::Vacant(v) => {
                let value = f(v.key());
                v.insert(value)
            }
        }
    }

    /// The value, inserting `V::default()` if the key is absent.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::<u8, Vec<u8>>::new();
    /// m.entry(1).or_default().push(3);
    /// assert_eq!(m.get_cloned(&1), Some(vec![3]));
    /// ```
    #[track_caller]
    pub fn or_default(self) -> RefMut<'a, K, V>
    where
        V: Default,
    {
        self.or_insert_with(V::default)
    }

    /// Calls `f` on the value if the key is present.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::new();
    /// m.insert(1u8, 1u8);
    /// assert_eq!(*m.entry(1).and_modify(|v| *v += 1).or_insert(0), 2);
    /// ```
    pub fn and_modify(mut self, f: impl FnOnce(&mut V)) -> Self {
        if let Entry::Occupied(r) = &mut self {
            f(r);
        }
        self
    }

    /// The entry's key.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::<u8, u8>::new();
    /// assert_eq!(*m.entry(4).key(), 4);
    /// ```
    pub fn key(&self) -> &K {
        match self {
            Entry::Occupied(r) => r.key(),
            Entry::Vacant(v) => v.key(),
        }
    }
}

impl<K: FarData + fmt::Debug, V: FarData + fmt::Debug> fmt::Debug for Entry<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::Occupied(r) => f.debug_tuple("Occupied").field(r).finish(),
            Entry::Vacant(v) => f.debug_tuple("Vacant").field(&v.key).finish(),
        }
    }
}

impl<K: FarData + fmt::Debug, V: FarData> fmt::Debug for VacantEntry<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("VacantEntry").field(&self.key).finish()
    }
}
