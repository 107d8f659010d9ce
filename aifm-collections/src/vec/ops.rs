//! The offloadable computations of `RemVec`, shared word for word by the local fallback and
//! the server-side device so that both give bit-identical results.
//!
//! Both sides feed elements *in index order* into the same accumulators (`Acc`,
//! `GroupAcc`); floating-point sums are therefore summed in the same order, and order
//! statistics use IEEE total order (`f64::total_cmp`), under which equal elements are
//! bitwise equal. The median is the lower median (element `(n - 1) / 2` in sorted order), so
//! it is always an element of the vector and never an average.

use aifm_core::{FarData, Pod};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Debug;

/// Element types the vector device understands (one tag per [`Numeric`] type).
///
/// ```
/// use aifm_collections::vec::{NumKind, Numeric};
/// assert_eq!(<f32 as Numeric>::KIND, NumKind::F32);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum NumKind {
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    F32,
    F64,
}

mod sealed {
    pub trait Sealed {}
}

/// Numbers the `aifm.vec` device can aggregate: `u8`…`u64`, `i8`…`i64`, `f32`, `f64`.
///
/// Sealed: the device on the far side must know every element type.
///
/// # Examples
///
/// ```
/// use aifm_collections::vec::Numeric;
/// fn total<T: Numeric>(xs: &[T]) -> f64 { xs.iter().map(|x| x.to_f64()).sum() }
/// assert_eq!(total(&[1u8, 2, 3]), 6.0);
/// ```
pub trait Numeric: FarData + Pod + PartialOrd + Debug + sealed::Sealed {
    /// The sum type: `i128` for signed integers, `u128` for unsigned ones, `f64` for floats.
    type Sum: Pod + Debug + PartialEq + Default;
    /// The device's tag for this type.
    const KIND: NumKind;
    /// Adds `x` to a running sum.
    fn add(sum: Self::Sum, x: Self) -> Self::Sum;
    /// Adds two partial sums (of different shards of a striped vector).
    fn merge_sums(a: Self::Sum, b: Self::Sum) -> Self::Sum;
    /// The sum as `f64` (for the mean).
    fn sum_to_f64(sum: Self::Sum) -> f64;
    /// The value as `f64`.
    fn to_f64(self) -> f64;
    /// A total order (IEEE total order for floats).
    fn total_cmp(&self, other: &Self) -> Ordering;
}

/// Integer element types usable as group-by keys (`u8`…`u64`, `i8`…`i64`).
///
/// # Examples
///
/// ```
/// use aifm_collections::vec::GroupKey;
/// assert_eq!(u16::from_i128(u16::MAX.to_i128()), u16::MAX);
/// ```
pub trait GroupKey: Numeric + Ord {
    /// Widens to `i128` (lossless).
    fn to_i128(self) -> i128;
    /// Narrows back (the value came from [`GroupKey::to_i128`]).
    fn from_i128(v: i128) -> Self;
}

macro_rules! int_numeric {
    ($($t:ty => $k:ident, $sum:ty;)*) => { $(
        impl sealed::Sealed for $t {}
        impl Numeric for $t {
            type Sum = $sum;
            const KIND: NumKind = NumKind::$k;
            #[inline]
            fn add(sum: $sum, x: $t) -> $sum { sum.wrapping_add(x as $sum) }
            fn merge_sums(a: $sum, b: $sum) -> $sum { a.wrapping_add(b) }
            fn sum_to_f64(sum: $sum) -> f64 { sum as f64 }
            #[inline]
            fn to_f64(self) -> f64 { self as f64 }
            #[inline]
            fn total_cmp(&self, other: &Self) -> Ordering { self.cmp(other) }
        }
        impl GroupKey for $t {
            fn to_i128(self) -> i128 { self as i128 }
            fn from_i128(v: i128) -> Self { v as $t }
        }
    )* };
}
int_numeric! {
    u8 => U8, u128; u16 => U16, u128; u32 => U32, u128; u64 => U64, u128;
    i8 => I8, i128; i16 => I16, i128; i32 => I32, i128; i64 => I64, i128;
}

macro_rules! float_numeric {
    ($($t:ty => $k:ident;)*) => { $(
        impl sealed::Sealed for $t {}
        impl Numeric for $t {
            type Sum = f64;
            const KIND: NumKind = NumKind::$k;
            #[inline]
            fn add(sum: f64, x: $t) -> f64 { sum + x as f64 }
            fn merge_sums(a: f64, b: f64) -> f64 { a + b }
            fn sum_to_f64(sum: f64) -> f64 { sum }
            #[inline]
            fn to_f64(self) -> f64 { self as f64 }
            #[inline]
            fn total_cmp(&self, other: &Self) -> Ordering { <$t>::total_cmp(self, other) }
        }
    )* };
}
float_numeric! { f32 => F32; f64 => F64; }

/// An aggregate over a vector (or over each group of a group-by).
///
/// # Examples
///
/// ```
/// use aifm_collections::vec::{AggValue, Aggregate};
/// use aifm_collections::{Exec, RemVec};
/// let v: RemVec<u32> = (1..=4).collect();
/// assert_eq!(v.try_aggregate(Aggregate::Max, Exec::Auto).unwrap(), Some(AggValue::Max(4)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Aggregate {
    /// Sum (integers widened to 128 bits, wrapping; floats summed in index order as `f64`).
    Sum,
    /// Smallest element (IEEE total order for floats).
    Min,
    /// Largest element (IEEE total order for floats).
    Max,
    /// Sum divided by count, as `f64`.
    Mean,
    /// Number of elements.
    Count,
    /// Lower median: element `(n - 1) / 2` in sorted (total) order.
    Median,
}

/// The value of an [`Aggregate`].
///
/// # Examples
///
/// ```
/// use aifm_collections::vec::{AggValue, Aggregate};
/// use aifm_collections::{Exec, RemVec};
/// let v: RemVec<i32> = RemVec::from(vec![3, -1, 2]);
/// assert_eq!(v.try_aggregate(Aggregate::Min, Exec::Auto).unwrap(), Some(AggValue::Min(-1)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AggValue<T: Numeric> {
    /// A sum.
    Sum(T::Sum),
    /// A minimum.
    Min(T),
    /// A maximum.
    Max(T),
    /// A mean.
    Mean(f64),
    /// A count.
    Count(u64),
    /// A lower median.
    Median(T),
}

impl<T: Numeric> AggValue<T> {
    /// The value as `f64` (whatever the aggregate).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(aifm_collections::vec::AggValue::<u8>::Count(3).to_f64(), 3.0);
    /// ```
    pub fn to_f64(&self) -> f64 {
        match *self {
            AggValue::Sum(s) => T::sum_to_f64(s),
            AggValue::Min(x) | AggValue::Max(x) | AggValue::Median(x) => x.to_f64(),
            AggValue::Mean(m) => m,
            AggValue::Count(c) => c as f64,
        }
    }

    pub(crate) fn to_wire(self) -> (u8, Vec<u8>) {
        let mut out = Vec::new();
        let tag = match self {
            AggValue::Sum(s) => {
                aifm_core::codec::encode_pod(&s, &mut out);
                0
            }
            AggValue::Min(x) => {
                aifm_core::codec::encode_pod(&x, &mut out);
                1
            }
            AggValue::Max(x) => {
                aifm_core::codec::encode_pod(&x, &mut out);
                2
            }
            AggValue::Mean(m) => {
                aifm_core::codec::encode_pod(&m, &mut out);
                3
            }
            AggValue::Count(c) => {
                aifm_core::codec::encode_pod(&c, &mut out);
                4
            }
            AggValue::Median(x) => {
                aifm_core::codec::encode_pod(&x, &mut out);
                5
            }
        };
        (tag, out)
    }

    pub(crate) fn from_wire(tag: u8, b: &[u8]) -> aifm_core::Result<Self> {
        use aifm_core::codec::decode_pod;
        Ok(match tag {
            0 => AggValue::Sum(decode_pod(b)?),
            1 => AggValue::Min(decode_pod(b)?),
            2 => AggValue::Max(decode_pod(b)?),
            3 => AggValue::Mean(decode_pod(b)?),
            4 => AggValue::Count(decode_pod(b)?),
            5 => AggValue::Median(decode_pod(b)?),
            t => return Err(aifm_core::Error::Protocol(format!("bad aggregate tag {t}"))),
        })
    }
}

/// Accumulates one aggregate over elements fed in index order.
#[derive(Debug)]
pub(crate) struct Acc<T: Numeric> {
    agg: Aggregate,
    sum: T::Sum,
    best: Option<T>,
    count: u64,
    values: Vec<T>,
}

impl<T: Numeric> Acc<T> {
    pub fn new(agg: Aggregate) -> Self {
        Acc {
            agg,
            sum: T::Sum::default(),
            best: None,
            count: 0,
            values: Vec::new(),
        }
    }

    #[inline]
    pub fn push(&mut self, x: T) {
        self.count += 1;
        match self.agg {
            Aggregate::Sum | Aggregate::Mean => self.sum = T::add(self.sum, x),
            Aggregate::Min => {
                if self.best.is_none_or(|b| x.total_cmp(&b) == Ordering::Less) {
                    self.best = Some(x);
                }
            }
            Aggregate::Max => {
                if self
                    .best
                    .is_none_or(|b| x.total_cmp(&b) == Ordering::Greater)
                {
                    self.best = Some(x);
                }
            }
            Aggregate::Count => {}
            Aggregate::Median => self.values.push(x),
        }
    }

    pub fn push_slice(&mut self, xs: &[T]) {
        match self.agg {
            Aggregate::Count => self.count += xs.len() as u64,
            Aggregate::Median => {
                self.count += xs.len() as u64;
                self.values.extend_from_slice(xs);
            }
            _ => xs.iter().for_each(|&x| self.push(x)),
        }
    }

    /// The result; `None` for min, max, mean and median of nothing.
    pub fn finish(mut self) -> Option<AggValue<T>> {
        match self.agg {
            Aggregate::Sum => Some(AggValue::Sum(self.sum)),
            Aggregate::Count => Some(AggValue::Count(self.count)),
            Aggregate::Mean => (self.count > 0)
                .then(|| AggValue::Mean(T::sum_to_f64(self.sum) / self.count as f64)),
            Aggregate::Min => self.best.map(AggValue::Min),
            Aggregate::Max => self.best.map(AggValue::Max),
            Aggregate::Median => {
                if self.values.is_empty() {
                    return None;
                }
                let mid = (self.values.len() - 1) / 2;
                let (_, m, _) = self.values.select_nth_unstable_by(mid, T::total_cmp);
                Some(AggValue::Median(*m))
            }
        }
    }
}

/// Accumulates one aggregate per key, keys widened to `i128`.
#[derive(Debug)]
pub(crate) struct GroupAcc<T: Numeric> {
    agg: Aggregate,
    groups: BTreeMap<i128, Acc<T>>,
}

impl<T: Numeric> GroupAcc<T> {
    pub fn new(agg: Aggregate) -> Self {
        GroupAcc {
            agg,
            groups: BTreeMap::new(),
        }
    }

    #[inline]
    pub fn push(&mut self, key: i128, x: T) {
        let agg = self.agg;
        self.groups
            .entry(key)
            .or_insert_with(|| Acc::new(agg))
            .push(x);
    }

    pub fn finish(self) -> Vec<(i128, AggValue<T>)> {
        self.groups
            .into_iter()
            .map(|(k, a)| (k, a.finish().expect("a group is never empty")))
            .collect()
    }
}

/// The decomposable summary of some elements: enough to merge the sum, minimum, maximum,
/// count and mean of several shards of a striped vector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Partial<T: Numeric> {
    pub count: u64,
    pub sum: T::Sum,
    pub min: Option<T>,
    pub max: Option<T>,
}

/// The wire form of a [`Partial`]: count, then the sum, minimum and maximum as raw bytes.
pub(crate) type WirePartial = (u64, Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>);

impl<T: Numeric> Partial<T> {
    pub fn new() -> Self {
        Partial {
            count: 0,
            sum: T::Sum::default(),
            min: None,
            max: None,
        }
    }

    /// Adds elements (in index order, so a single shard sums exactly like [`Acc`]).
    pub fn push_slice(&mut self, xs: &[T]) {
        for &x in xs {
            self.sum = T::add(self.sum, x);
            if self.min.is_none_or(|m| x.total_cmp(&m) == Ordering::Less) {
                self.min = Some(x);
            }
            if self
                .max
                .is_none_or(|m| x.total_cmp(&m) == Ordering::Greater)
            {
                self.max = Some(x);
            }
        }
        self.count += xs.len() as u64;
    }

    /// Folds in another shard's summary.
    pub fn merge(&mut self, o: Partial<T>) {
        self.count += o.count;
        self.sum = T::merge_sums(self.sum, o.sum);
        for (mine, theirs, keep) in [
            (&mut self.min, o.min, Ordering::Less),
            (&mut self.max, o.max, Ordering::Greater),
        ] {
            if let Some(t) = theirs {
                if mine.is_none_or(|m| t.total_cmp(&m) == keep) {
                    *mine = Some(t);
                }
            }
        }
    }

    /// The aggregate `agg` of everything merged; `None` for `Median` (not decomposable) and
    /// for min, max and mean of nothing.
    pub fn finish(&self, agg: Aggregate) -> Option<AggValue<T>> {
        match agg {
            Aggregate::Sum => Some(AggValue::Sum(self.sum)),
            Aggregate::Count => Some(AggValue::Count(self.count)),
            Aggregate::Mean => (self.count > 0)
                .then(|| AggValue::Mean(T::sum_to_f64(self.sum) / self.count as f64)),
            Aggregate::Min => self.min.map(AggValue::Min),
            Aggregate::Max => self.max.map(AggValue::Max),
            Aggregate::Median => None,
        }
    }

    pub fn to_wire(self) -> WirePartial {
        use aifm_core::codec::encode_pod;
        let pod = |x: &T| {
            let mut out = Vec::new();
            encode_pod(x, &mut out);
            out
        };
        let mut sum = Vec::new();
        encode_pod(&self.sum, &mut sum);
        (
            self.count,
            sum,
            self.min.as_ref().map(pod),
            self.max.as_ref().map(pod),
        )
    }

    pub fn from_wire((count, sum, min, max): WirePartial) -> aifm_core::Result<Self> {
        use aifm_core::codec::decode_pod;
        Ok(Partial {
            count,
            sum: decode_pod(&sum)?,
            min: min.map(|b| decode_pod(&b)).transpose()?,
            max: max.map(|b| decode_pod(&b)).transpose()?,
        })
    }
}

/// A wire form of one group-by result row.
pub(crate) type WireGroup = (i128, u8, Vec<u8>);

#[cfg(test)]
mod tests {
    use super::*;

    /// Merging the summaries of any split equals the aggregate of the whole (exactly for
    /// integers).
    #[test]
    fn partials_merge_like_the_whole() {
        fn prop(xs: Vec<i32>, cuts: Vec<u8>) -> bool {
            let mut parts = Vec::new();
            let mut rest = &xs[..];
            for c in cuts {
                let (a, b) = rest.split_at((c as usize).min(rest.len()));
                parts.push(a);
                rest = b;
            }
            parts.push(rest);
            let mut merged = Partial::<i32>::new();
            for p in parts.iter().rev() {
                let mut one = Partial::new();
                one.push_slice(p);
                let back = Partial::from_wire(one.to_wire()).unwrap();
                merged.merge(back);
            }
            [
                Aggregate::Sum,
                Aggregate::Min,
                Aggregate::Max,
                Aggregate::Count,
                Aggregate::Mean,
            ]
            .into_iter()
            .all(|agg| {
                let mut whole = Acc::<i32>::new(agg);
                whole.push_slice(&xs);
                whole.finish() == merged.finish(agg)
            }) && merged.finish(Aggregate::Median).is_none()
        }
        quickcheck::quickcheck(prop as fn(Vec<i32>, Vec<u8>) -> bool);
    }

    #[test]
    fn lower_median_and_total_order() {
        let mut a = Acc::<f64>::new(Aggregate::Median);
        a.push_slice(&[3.0, f64::NAN, 1.0, 2.0]);
        assert_eq!(a.finish(), Some(AggValue::Median(2.0)));
        let mut a = Acc::<f64>::new(Aggregate::Max);
        a.push_slice(&[1.0, f64::INFINITY, -0.0]);
        assert_eq!(a.finish(), Some(AggValue::Max(f64::INFINITY)));
        assert_eq!(Acc::<u8>::new(Aggregate::Mean).finish(), None);
    }
}
