//! Aggregates of numeric vectors (sum, min, max, mean, count, median, group-by), offloaded
//! to the `aifm.vec` device when that pays (see `offload`) and computed chunk by chunk on
//! the client otherwise, by the same accumulators (`ops`).

use super::device::{Reply, Request};
use super::offload::dispatch;
use super::ops::{Acc, GroupAcc};
use super::{AggValue, Aggregate, GroupKey, Numeric, RemVec};
use crate::common::fail;
use crate::Exec;
use aifm_core::{Error, Result};
use std::collections::BTreeMap;

impl<T: Numeric> RemVec<T> {
    /// Computes an aggregate of all elements; `None` for min, max, mean and median of an
    /// empty vector.
    ///
    /// # Errors
    /// Far-memory errors; with [`Exec::Remote`], also when the backend cannot run the
    /// `aifm.vec` device.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_collections::vec::{AggValue, Aggregate};
    /// use aifm_collections::{Exec, RemVec};
    /// let v: RemVec<f64> = [1.5, 0.5, 4.0].into_iter().collect();
    /// let r = v.try_aggregate(Aggregate::Mean, Exec::Remote).unwrap();
    /// assert_eq!(r, Some(AggValue::Mean(2.0)));
    /// ```
    pub fn try_aggregate(&self, agg: Aggregate, exec: Exec) -> Result<Option<AggValue<T>>> {
        dispatch(
            exec,
            self.is_empty(),
            || self.worth_offloading(&[]),
            || {
                if self.is_striped() {
                    return self.striped_aggregate(agg);
                }
                self.sync_far()?;
                match self.call(&Request::Aggregate {
                    kind: T::KIND,
                    agg,
                    shape: self.shape(),
                })? {
                    Reply::Agg(None) => Ok(None),
                    Reply::Agg(Some((tag, b))) => AggValue::from_wire(tag, &b).map(Some),
                    r => Err(Error::Protocol(format!("unexpected reply {r:?}"))),
                }
            },
            || {
                let mut acc = Acc::<T>::new(agg);
                self.try_scan(true, |xs| {
                    acc.push_slice(xs);
                    Ok(())
                })?;
                Ok(acc.finish())
            },
        )
    }

    fn agg_or_panic(&self, agg: Aggregate, what: &str) -> Option<AggValue<T>> {
        match self.try_aggregate(agg, Exec::Auto) {
            Ok(v) => v,
            Err(e) => fail(what, e),
        }
    }

    /// Sum of the elements, with [`Exec`] choosing where.
    ///
    /// # Errors
    /// As [`RemVec::try_aggregate`].
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_collections::{Exec, RemVec};
    /// let v: RemVec<i8> = [-100, -100, 50].into_iter().collect();
    /// assert_eq!(v.try_sum(Exec::Local).unwrap(), -150i128);
    /// ```
    pub fn try_sum(&self, exec: Exec) -> Result<T::Sum> {
        match self.try_aggregate(Aggregate::Sum, exec)? {
            Some(AggValue::Sum(s)) => Ok(s),
            _ => unreachable!("a sum is always defined"),
        }
    }

    /// Sum of the elements (widened: `i128`, `u128` or `f64`).
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let v: aifm_collections::RemVec<u8> = [200, 100].into_iter().collect();
    /// assert_eq!(v.sum(), 300u128);
    /// ```
    #[track_caller]
    pub fn sum(&self) -> T::Sum {
        match self.agg_or_panic(Aggregate::Sum, "RemVec::sum") {
            Some(AggValue::Sum(s)) => s,
            _ => unreachable!("a sum is always defined"),
        }
    }

    /// Smallest element (IEEE total order for floats).
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let v: aifm_collections::RemVec<i32> = [3, -7, 5].into_iter().collect();
    /// assert_eq!(v.min(), Some(-7));
    /// ```
    #[track_caller]
    pub fn min(&self) -> Option<T> {
        match self.agg_or_panic(Aggregate::Min, "RemVec::min") {
            Some(AggValue::Min(x)) => Some(x),
            _ => None,
        }
    }

    /// Largest element (IEEE total order for floats).
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let v: aifm_collections::RemVec<f32> = [3.0, -7.0, 5.0].into_iter().collect();
    /// assert_eq!(v.max(), Some(5.0));
    /// ```
    #[track_caller]
    pub fn max(&self) -> Option<T> {
        match self.agg_or_panic(Aggregate::Max, "RemVec::max") {
            Some(AggValue::Max(x)) => Some(x),
            _ => None,
        }
    }

    /// Mean of the elements.
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let v: aifm_collections::RemVec<u16> = [1, 2].into_iter().collect();
    /// assert_eq!(v.mean(), Some(1.5));
    /// ```
    #[track_caller]
    pub fn mean(&self) -> Option<f64> {
        match self.agg_or_panic(Aggregate::Mean, "RemVec::mean") {
            Some(AggValue::Mean(m)) => Some(m),
            _ => None,
        }
    }

    /// Number of elements, counted where the data is (equals [`RemVec::len`]).
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let v: aifm_collections::RemVec<u16> = (0..7).collect();
    /// assert_eq!(v.count(), 7);
    /// ```
    #[track_caller]
    pub fn count(&self) -> u64 {
        match self.agg_or_panic(Aggregate::Count, "RemVec::count") {
            Some(AggValue::Count(c)) => c,
            _ => 0,
        }
    }

    /// Lower median: element `(len - 1) / 2` in sorted (total) order.
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let v: aifm_collections::RemVec<u32> = [9, 1, 5, 3].into_iter().collect();
    /// assert_eq!(v.median(), Some(3));
    /// ```
    #[track_caller]
    pub fn median(&self) -> Option<T> {
        match self.agg_or_panic(Aggregate::Median, "RemVec::median") {
            Some(AggValue::Median(x)) => Some(x),
            _ => None,
        }
    }

    /// Aggregates `self` per distinct key of `keys` (which must have the same length):
    /// `result[k]` is the aggregate of every `self[i]` with `keys[i] == k`.
    ///
    /// # Errors
    /// Far-memory errors; with [`Exec::Remote`], also when the two vectors do not share a
    /// backend that runs the `aifm.vec` device.
    ///
    /// # Panics
    /// If the lengths differ.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_collections::vec::{AggValue, Aggregate};
    /// use aifm_collections::{Exec, RemVec};
    /// let trips: RemVec<f64> = [10.0, 20.0, 5.0, 7.0].into_iter().collect();
    /// let day: RemVec<u8> = [1, 2, 1, 1].into_iter().collect();
    /// let m = trips.try_group_by(&day, Aggregate::Median, Exec::Auto).unwrap();
    /// assert_eq!(m[&1], AggValue::Median(7.0));
    /// assert_eq!(m[&2], AggValue::Median(20.0));
    /// ```
    #[track_caller]
    pub fn try_group_by<K: GroupKey>(
        &self,
        keys: &RemVec<K>,
        agg: Aggregate,
        exec: Exec,
    ) -> Result<BTreeMap<K, AggValue<T>>> {
        assert_eq!(
            keys.len(),
            self.len(),
            "RemVec::group_by: key and value lengths differ"
        );
        dispatch(
            exec,
            self.is_empty(),
            || {
                (self.is_striped() || keys.is_striped() || self.same_far(keys).is_ok())
                    && self.worth_offloading(&[keys.local_chunks()])
            },
            || {
                if self.is_striped() || keys.is_striped() {
                    return self.gathered_group_by(keys, agg);
                }
                self.same_far(keys)?;
                self.sync_far()?;
                keys.sync_far()?;
                let req = Request::GroupBy {
                    kind: T::KIND,
                    agg,
                    shape: self.shape(),
                    key_kind: K::KIND,
                    keys: keys.other().expect("checked"),
                };
                match self.call(&req)? {
                    Reply::Groups(g) => g
                        .into_iter()
                        .map(|(k, tag, b)| Ok((K::from_i128(k), AggValue::from_wire(tag, &b)?)))
                        .collect(),
                    r => Err(Error::Protocol(format!("unexpected reply {r:?}"))),
                }
            },
            || {
                let mut acc = GroupAcc::<T>::new(agg);
                let mut ks = keys.iter();
                self.try_scan(true, |xs| {
                    for &x in xs {
                        acc.push(ks.next().expect("same length").to_i128(), x);
                    }
                    Ok(())
                })?;
                Ok(acc
                    .finish()
                    .into_iter()
                    .map(|(k, v)| (K::from_i128(k), v))
                    .collect())
            },
        )
    }

    /// [`RemVec::try_group_by`] with [`Exec::Auto`].
    ///
    /// # Panics
    /// If the lengths differ, or far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_collections::vec::{AggValue, Aggregate};
    /// let v: aifm_collections::RemVec<u32> = (0..10).collect();
    /// let k: aifm_collections::RemVec<u8> = (0..10).map(|i| (i % 2) as u8).collect();
    /// let m = v.group_by(&k, Aggregate::Count);
    /// assert_eq!(m[&0], AggValue::Count(5));
    /// ```
    #[track_caller]
    pub fn group_by<K: GroupKey>(
        &self,
        keys: &RemVec<K>,
        agg: Aggregate,
    ) -> BTreeMap<K, AggValue<T>> {
        match self.try_group_by(keys, agg, Exec::Auto) {
            Ok(m) => m,
            Err(e) => fail("RemVec::group_by", e),
        }
    }
}
