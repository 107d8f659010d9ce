//! The map's iterators ([`Iter`], [`Keys`], [`Values`]: clones, shard by shard) and its std
//! traits.
//!
//! The iterators take one shard's snapshot at a time (local pairs and far ones, see the
//! `bulk` module), so each shard's view is consistent and no lock or scope is held between
//! `next` calls. They are sized: they promise the map's length when they were made and stop
//! there; pairs inserted into shards not yet visited may or may not be seen, and if another
//! thread removes pairs meanwhile an iterator ends early, short of its promise.
//!
//! `FromIterator`, `From<[(K, V); N]>` and `Deserialize` build in the process-wide default
//! runtime ([`Runtime::global`](aifm_core::Runtime::global), 256 MiB unless configured);
//! [`RemHashMap::from_iter_in`] builds in a runtime of your own.

use super::{RemHashMap, SHARDS};
use crate::common::fail;
use aifm_core::FarData;
use std::fmt;
use std::hash::{BuildHasher, Hash, RandomState};

/// A sized walk over the shards' snapshots, projecting each pair to a `T`.
struct Walk<'a, K: FarData, V: FarData, S, T> {
    map: &'a RemHashMap<K, V, S>,
    shard: usize,
    buf: std::vec::IntoIter<T>,
    remaining: usize,
    local: fn(&K, &V) -> T,
    far: fn(K, V) -> T,
}

impl<'a, K, V, S, T> Walk<'a, K, V, S, T>
where
    K: FarData + Hash + Eq + Clone,
    V: FarData,
    S: BuildHasher + Send + Sync + 'static,
{
    fn new(map: &'a RemHashMap<K, V, S>, local: fn(&K, &V) -> T, far: fn(K, V) -> T) -> Self {
        Walk {
            map,
            shard: 0,
            buf: Vec::new().into_iter(),
            remaining: map.len(),
            local,
            far,
        }
    }

    #[track_caller]
    fn next(&mut self) -> Option<T> {
        while self.remaining > 0 {
            if let Some(x) = self.buf.next() {
                self.remaining -= 1;
                return Some(x);
            }
            if self.shard == SHARDS {
                self.remaining = 0;
                break;
            }
            match self.map.shard_snapshot(self.shard, self.local, self.far) {
                Ok(v) => self.buf = v.into_iter(),
                Err(e) => fail("RemHashMap::iter", e),
            }
            self.shard += 1;
        }
        None
    }
}

macro_rules! walk_iterator {
    ($name:ident, $item:ty, [$($bound:tt)*], $doc:literal) => {
        #[doc = $doc]
        pub struct $name<'a, K: FarData, V: FarData, S>(Walk<'a, K, V, S, $item>);

        impl<K, V, S> Iterator for $name<'_, K, V, S>
        where
            K: FarData + Hash + Eq + Clone,
            V: FarData $($bound)*,
            S: BuildHasher + Send + Sync + 'static,
        {
            type Item = $item;

            /// # Panics
            /// If far memory fails.
            #[track_caller]
            fn next(&mut self) -> Option<$item> {
                self.0.next()
            }

            fn size_hint(&self) -> (usize, Option<usize>) {
                (self.0.remaining, Some(self.0.remaining))
            }
        }

        impl<K, V, S> ExactSizeIterator for $name<'_, K, V, S>
        where
            K: FarData + Hash + Eq + Clone,
            V: FarData $($bound)*,
            S: BuildHasher + Send + Sync + 'static,
        {
        }

        impl<K, V, S> std::iter::FusedIterator for $name<'_, K, V, S>
        where
            K: FarData + Hash + Eq + Clone,
            V: FarData $($bound)*,
            S: BuildHasher + Send + Sync + 'static,
        {
        }

        impl<K: FarData, V: FarData, S> fmt::Debug for $name<'_, K, V, S> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("shard", &self.0.shard)
                    .field("remaining", &self.0.remaining)
                    .finish()
            }
        }
    };
}

walk_iterator!(
    Iter,
    (K, V),
    [+ Clone],
    "Iterator over clones of a [`RemHashMap`]'s pairs; see [`RemHashMap::iter`].\n\n\
     ```\nlet m: aifm_collections::RemHashMap<u8, u8> = [(1, 2)].into_iter().collect();\n\
     assert_eq!(m.iter().next(), Some((1, 2)));\n```"
);
walk_iterator!(
    Keys,
    K,
    [],
    "Iterator over clones of a [`RemHashMap`]'s keys; see [`RemHashMap::keys`].\n\n\
     ```\nlet m: aifm_collections::RemHashMap<u8, u8> = [(1, 2)].into_iter().collect();\n\
     assert_eq!(m.keys().collect::<Vec<_>>(), [1]);\n```"
);
walk_iterator!(
    Values,
    V,
    [+ Clone],
    "Iterator over clones of a [`RemHashMap`]'s values; see [`RemHashMap::values`].\n\n\
     ```\nlet m: aifm_collections::RemHashMap<u8, u8> = [(1, 2)].into_iter().collect();\n\
     assert_eq!(m.values().collect::<Vec<_>>(), [2]);\n```"
);

impl<K, V, S> RemHashMap<K, V, S>
where
    K: FarData + Hash + Eq + Clone,
    V: FarData,
    S: BuildHasher + Send + Sync + 'static,
{
    /// Every pair, cloned, shard by shard. Each shard's view is consistent; the iterator
    /// promises the map's length when it was made and stops there, so pairs inserted into
    /// shards not yet visited may or may not be seen, and if another thread removes pairs
    /// meanwhile it ends early. A thread holding a [`RefMut`](super::RefMut) of this map must
    /// not iterate it (it would wait for itself).
    ///
    /// # Panics
    /// The iterator panics if far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let m: aifm_collections::RemHashMap<u8, u8> = (0..10).map(|i| (i, i * 2)).collect();
    /// let mut all: Vec<_> = m.iter().collect();
    /// all.sort();
    /// assert_eq!(all[9], (9, 18));
    /// assert_eq!(m.iter().len(), 10);
    /// ```
    pub fn iter(&self) -> Iter<'_, K, V, S>
    where
        V: Clone,
    {
        Iter(Walk::new(
            self,
            |k, v| (k.clone(), v.clone()),
            |k, v| (k, v),
        ))
    }

    /// Every key, cloned (as [`RemHashMap::iter`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let m: aifm_collections::RemHashMap<u8, u8> = (0..10).map(|i| (i, i * 2)).collect();
    /// let mut keys: Vec<u8> = m.keys().collect();
    /// keys.sort();
    /// assert_eq!(keys, (0..10).collect::<Vec<_>>());
    /// ```
    pub fn keys(&self) -> Keys<'_, K, V, S> {
        Keys(Walk::new(self, |k, _| k.clone(), |k, _| k))
    }

    /// Every value, cloned (as [`RemHashMap::iter`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let m: aifm_collections::RemHashMap<u8, u32> = (0..10).map(|i| (i, i as u32)).collect();
    /// assert_eq!(m.values().sum::<u32>(), 45);
    /// ```
    pub fn values(&self) -> Values<'_, K, V, S>
    where
        V: Clone,
    {
        Values(Walk::new(self, |_, v| v.clone(), |_, v| v))
    }
}

impl<'a, K, V, S> IntoIterator for &'a RemHashMap<K, V, S>
where
    K: FarData + Hash + Eq + Clone,
    V: FarData + Clone,
    S: BuildHasher + Send + Sync + 'static,
{
    type Item = (K, V);
    type IntoIter = Iter<'a, K, V, S>;
    fn into_iter(self) -> Iter<'a, K, V, S> {
        self.iter()
    }
}

impl<K, V, S> IntoIterator for RemHashMap<K, V, S>
where
    K: FarData + Hash + Eq + Clone,
    V: FarData,
    S: BuildHasher + Send + Sync + 'static,
{
    type Item = (K, V);
    type IntoIter = crate::vec::IntoIter<(K, V)>;
    /// Drains the map (see [`RemHashMap::drain`]).
    fn into_iter(self) -> Self::IntoIter {
        self.drain()
    }
}

/// An empty map in the process-wide default runtime.
impl<K, V> Default for RemHashMap<K, V, RandomState>
where
    K: FarData + Hash + Eq + Clone,
    V: FarData,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V, S> fmt::Debug for RemHashMap<K, V, S>
where
    K: FarData + Hash + Eq + Clone + fmt::Debug,
    V: FarData + Clone + fmt::Debug,
    S: BuildHasher + Send + Sync + 'static,
{
    /// Lists every pair (fetching far ones), like `HashMap`'s `Debug`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K, V, S> Clone for RemHashMap<K, V, S>
where
    K: FarData + Hash + Eq + Clone,
    V: FarData + Clone,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    /// Copies every pair into a new map in the same runtime.
    fn clone(&self) -> Self {
        let out = match Self::try_with_capacity_and_hasher_in(
            self.len(),
            self.hasher().clone(),
            self.runtime(),
        ) {
            Ok(m) => m,
            Err(e) => fail("RemHashMap::clone", e),
        };
        for (k, v) in self.iter() {
            out.insert(k, v);
        }
        out
    }
}

impl<K, V, S> PartialEq for RemHashMap<K, V, S>
where
    K: FarData + Hash + Eq + Clone,
    V: FarData + Clone + PartialEq,
    S: BuildHasher + Send + Sync + 'static,
{
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .all(|(k, v)| other.get(&k).is_some_and(|r| *r == v))
    }
}

impl<K, V, S> Eq for RemHashMap<K, V, S>
where
    K: FarData + Hash + Eq + Clone,
    V: FarData + Clone + Eq,
    S: BuildHasher + Send + Sync + 'static,
{
}

impl<K, V, S> Extend<(K, V)> for RemHashMap<K, V, S>
where
    K: FarData + Hash + Eq + Clone,
    V: FarData,
    S: BuildHasher + Send + Sync + 'static,
{
    #[track_caller]
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl<'a, K, V, S> Extend<(&'a K, &'a V)> for RemHashMap<K, V, S>
where
    K: FarData + Hash + Eq + Clone,
    V: FarData + Clone,
    S: BuildHasher + Send + Sync + 'static,
{
    #[track_caller]
    fn extend<I: IntoIterator<Item = (&'a K, &'a V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k.clone(), v.clone());
        }
    }
}

/// Builds the map in the process-wide default runtime ([`aifm_core::Runtime::global`]);
/// use [`RemHashMap::from_iter_in`] for a runtime of your own.
impl<K, V> FromIterator<(K, V)> for RemHashMap<K, V, RandomState>
where
    K: FarData + Hash + Eq + Clone,
    V: FarData,
{
    #[track_caller]
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self::from_iter_in(iter, aifm_core::Runtime::global())
    }
}

/// Builds the map in the process-wide default runtime ([`aifm_core::Runtime::global`]);
/// use [`RemHashMap::from_iter_in`] for a runtime of your own.
///
/// ```
/// let m = aifm_collections::RemHashMap::from([(1u8, 'a'), (2, 'b')]);
/// assert_eq!(m.len(), 2);
/// ```
impl<K, V, const N: usize> From<[(K, V); N]> for RemHashMap<K, V, RandomState>
where
    K: FarData + Hash + Eq + Clone,
    V: FarData,
{
    #[track_caller]
    fn from(pairs: [(K, V); N]) -> Self {
        Self::from_iter(pairs)
    }
}

/// Serializes as a map of all pairs, local and remote (as `HashMap` does).
#[cfg(feature = "serde")]
impl<K, V, S> serde::Serialize for RemHashMap<K, V, S>
where
    K: FarData + Hash + Eq + Clone + serde::Serialize,
    V: FarData + Clone + serde::Serialize,
    S: BuildHasher + Send + Sync + 'static,
{
    fn serialize<Se: serde::Serializer>(&self, s: Se) -> std::result::Result<Se::Ok, Se::Error> {
        use serde::ser::SerializeMap;
        let pairs: Vec<(K, V)> = self.iter().collect(); // a consistent length for the header
        let mut map = s.serialize_map(Some(pairs.len()))?;
        pairs
            .iter()
            .try_for_each(|(k, v)| map.serialize_entry(k, v))?;
        map.end()
    }
}

/// Deserializes a map into a new `RemHashMap` in the process-wide default runtime.
#[cfg(feature = "serde")]
impl<'de, K, V> serde::Deserialize<'de> for RemHashMap<K, V, RandomState>
where
    K: FarData + Hash + Eq + Clone + serde::Deserialize<'de>,
    V: FarData + serde::Deserialize<'de>,
{
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(std::collections::HashMap::<K, V>::deserialize(d)?
            .into_iter()
            .collect())
    }
}
