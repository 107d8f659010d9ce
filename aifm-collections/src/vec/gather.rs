//! Gather, permute and range copies of plain-data vectors: offloaded to the `aifm.vec`
//! device (results come back in replies of `REPLY_CHUNKS` chunks and become a fresh,
//! local `RemVec` in the same runtime), with local fallbacks built on `get` and `iter`.

use super::device::{Reply, Request, OOB};
use super::offload::{contract, dispatch};
use super::{to_range, RemVec, REPLY_CHUNKS};
use crate::common::fail;
use crate::Exec;
use aifm_core::codec::decode_pod;
use aifm_core::{Error, FarData, Pod, Result, Scope};
use std::ops::{Range, RangeBounds};

/// Whether `perm` holds every index `0..n` exactly once (read here, chunk by chunk).
pub(super) fn local_is_permutation(perm: &RemVec<u64>, n: usize) -> bool {
    if perm.len() != n {
        return false;
    }
    let mut seen = vec![false; n];
    perm.iter().all(|i| match seen.get_mut(i as usize) {
        Some(s) if !*s => {
            *s = true;
            true
        }
        _ => false,
    })
}

/// Whether `T`'s slice encoding is its raw bytes (what the device's gathers and copies move).
pub(super) fn raw_encoding<T: FarData + Pod>() -> bool {
    let size = std::mem::size_of::<T>();
    let Ok(zero) = decode_pod::<T>(&vec![0u8; size]) else {
        return false;
    };
    let mut out = Vec::new();
    T::encode_slice(&[zero, zero], &mut out).is_ok() && out.len() == 2 * size
}

impl<T: FarData + Pod> RemVec<T> {
    /// Appends elements decoded from raw bytes (a device reply).
    pub(super) fn extend_raw(&mut self, bytes: &[u8]) -> Result<()> {
        let size = std::mem::size_of::<T>();
        if size == 0 {
            return Err(Error::Codec("zero-sized elements do not travel".into()));
        }
        self.try_extend(
            bytes
                .chunks_exact(size)
                .map(|b| decode_pod::<T>(b).expect("exact")),
        )
    }

    pub(super) fn empty_like(&self) -> RemVec<T> {
        RemVec::with_chunk_bytes_in(self.chunk_len() * std::mem::size_of::<T>(), &self.far.rt)
            .with_placement(self.far.placement)
    }

    /// Fetches output `0..n` of a device operation in replies of `REPLY_CHUNKS` chunks.
    pub(super) fn remote_build(
        &self,
        n: u64,
        req: impl Fn(u64, u64) -> Request,
    ) -> Result<RemVec<T>> {
        self.build_from(n, |from, to| match self.call(&req(from, to))? {
            Reply::Bytes(b) => Ok(b),
            r => Err(Error::Protocol(format!("unexpected reply {r:?}"))),
        })
    }

    /// A new vector of `n` elements whose raw bytes `window(from, to)` returns, asked in
    /// windows of [`REPLY_CHUNKS`] chunks.
    pub(super) fn build_from(
        &self,
        n: u64,
        mut window: impl FnMut(u64, u64) -> Result<Vec<u8>>,
    ) -> Result<RemVec<T>> {
        if !raw_encoding::<T>() || std::mem::size_of::<T>() == 0 {
            return Err(Error::Remote("elements do not travel as raw bytes".into()));
        }
        let mut out = self.empty_like();
        let step = REPLY_CHUNKS * self.chunk_len() as u64;
        let mut from = 0;
        while from < n {
            let to = (from + step).min(n);
            out.extend_raw(&window(from, to)?)?;
            from = to;
        }
        Ok(out)
    }

    pub(super) fn local_gather(&self, idx: &RemVec<u64>) -> Result<RemVec<T>> {
        let mut out = self.empty_like();
        let mut scope = Scope::new();
        let mut err = None;
        let mut n = 0usize;
        out.try_extend(idx.iter().map_while(|i| {
            n += 1;
            // Random indices pin a different chunk each (4 KiB, counted against the budget):
            // renew often enough that one scope never holds more than a few dozen of them,
            // even under a budget smaller than either vector.
            if n % 16 == 0 {
                scope.renew();
            }
            match self.try_get(i as usize, &scope) {
                Ok(Some(x)) => Some(*x),
                Ok(None) => {
                    err = Some(Error::Remote(format!(
                        "{OOB}: index {i} out of bounds for length {}",
                        self.len
                    )));
                    None
                }
                Err(e) => {
                    err = Some(e);
                    None
                }
            }
        }))?;
        match err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// A new vector of `self[idx[0]], self[idx[1]], …` (a filter when `idx` lists the rows to
    /// keep).
    ///
    /// # Errors
    /// Far-memory errors; with [`Exec::Remote`], also when the device cannot be used.
    ///
    /// # Panics
    /// If an index is out of bounds.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_collections::{Exec, RemVec};
    /// let v: RemVec<u32> = (0..100).map(|i| i * 10).collect();
    /// let idx: RemVec<u64> = [5, 0, 99].into_iter().collect();
    /// let g = v.try_gather(&idx, Exec::Remote).unwrap();
    /// assert_eq!(g.iter().collect::<Vec<_>>(), [50, 0, 990]);
    /// ```
    #[track_caller]
    pub fn try_gather(&self, idx: &RemVec<u64>, exec: Exec) -> Result<RemVec<T>> {
        let r = dispatch(
            exec,
            self.is_empty() || idx.is_empty(),
            || {
                (self.is_striped() || idx.is_striped() || self.same_far(idx).is_ok())
                    && self.worth_offloading(&[idx.local_chunks()])
            },
            || {
                if self.is_striped() || idx.is_striped() {
                    return self.picked_gather(idx);
                }
                self.same_far(idx)?;
                self.sync_far()?;
                idx.sync_far()?;
                let other = idx.other().expect("checked");
                let shape = self.shape();
                self.remote_build(idx.len() as u64, |from, to| Request::Gather {
                    shape,
                    idx: other,
                    from,
                    to,
                })
            },
            || self.local_gather(idx),
        );
        contract(r, "RemVec::gather")
    }

    /// [`RemVec::try_gather`] with [`Exec::Auto`].
    ///
    /// # Panics
    /// If an index is out of bounds, or far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let v: aifm_collections::RemVec<u8> = (0..10).collect();
    /// let idx: aifm_collections::RemVec<u64> = [9, 9].into_iter().collect();
    /// assert_eq!(v.gather(&idx).iter().collect::<Vec<_>>(), [9, 9]);
    /// ```
    #[track_caller]
    pub fn gather(&self, idx: &RemVec<u64>) -> RemVec<T> {
        match self.try_gather(idx, Exec::Auto) {
            Ok(v) => v,
            Err(e) => fail("RemVec::gather", e),
        }
    }

    /// A new vector with `out[j] = self[perm[j]]`, where `perm` must hold every index
    /// `0..len` exactly once (the shuffle step of a sort).
    ///
    /// # Errors
    /// As [`RemVec::try_gather`].
    ///
    /// # Panics
    /// If `perm` is not a permutation of `0..len`.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_collections::{Exec, RemVec};
    /// let v: RemVec<u8> = [10, 20, 30].into_iter().collect();
    /// let p: RemVec<u64> = [2, 0, 1].into_iter().collect();
    /// assert_eq!(v.try_permute(&p, Exec::Local).unwrap().iter().collect::<Vec<_>>(), [30, 10, 20]);
    /// ```
    #[track_caller]
    pub fn try_permute(&self, perm: &RemVec<u64>, exec: Exec) -> Result<RemVec<T>> {
        let n = self.len as u64;
        let is_perm = dispatch(
            exec,
            self.is_empty() || perm.is_empty(),
            || {
                (self.is_striped() || perm.is_striped() || self.same_far(perm).is_ok())
                    && self.worth_offloading(&[perm.local_chunks()])
            },
            || {
                if self.is_striped() || perm.is_striped() {
                    // No device sees all of both: the permutation check runs here.
                    return Ok(local_is_permutation(perm, self.len));
                }
                self.same_far(perm)?;
                perm.sync_far()?;
                match self.call(&Request::IsPermutation {
                    idx: perm.other().expect("checked"),
                    n,
                })? {
                    Reply::Bool(b) => Ok(b),
                    r => Err(Error::Protocol(format!("unexpected reply {r:?}"))),
                }
            },
            || Ok(local_is_permutation(perm, self.len)),
        )?;
        assert!(is_perm, "RemVec::permute: not a permutation of 0..{n}");
        self.try_gather(perm, exec)
    }

    /// [`RemVec::try_permute`] with [`Exec::Auto`].
    ///
    /// # Panics
    /// If `perm` is not a permutation of `0..len`, or far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let v: aifm_collections::RemVec<u8> = [10, 20].into_iter().collect();
    /// let p: aifm_collections::RemVec<u64> = [1, 0].into_iter().collect();
    /// assert_eq!(v.permute(&p).iter().collect::<Vec<_>>(), [20, 10]);
    /// ```
    #[track_caller]
    pub fn permute(&self, perm: &RemVec<u64>) -> RemVec<T> {
        match self.try_permute(perm, Exec::Auto) {
            Ok(v) => v,
            Err(e) => fail("RemVec::permute", e),
        }
    }

    /// A new vector holding a copy of `range` (a column copy, or a slice of one).
    ///
    /// # Errors
    /// As [`RemVec::try_gather`].
    ///
    /// # Panics
    /// If the range is out of bounds.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_collections::{Exec, RemVec};
    /// let v: RemVec<u64> = (0..5000).collect();
    /// let c = v.try_copy_range(1000..1003, Exec::Remote).unwrap();
    /// assert_eq!(c.iter().collect::<Vec<_>>(), [1000, 1001, 1002]);
    /// ```
    #[track_caller]
    pub fn try_copy_range(&self, range: impl RangeBounds<usize>, exec: Exec) -> Result<RemVec<T>> {
        let Range { start, end } = to_range(range, self.len);
        dispatch(
            exec,
            start == end,
            || self.worth_offloading(&[]),
            || {
                if self.is_striped() {
                    return self.striped_copy_range(start as u64, end as u64);
                }
                self.sync_far()?;
                let shape = self.shape();
                self.remote_build((end - start) as u64, |from, to| Request::CopyRange {
                    shape,
                    from: start as u64 + from,
                    to: start as u64 + to,
                })
            },
            || {
                let mut out = self.empty_like();
                out.try_extend(self.iter().skip(start).take(end - start))?;
                Ok(out)
            },
        )
    }

    /// [`RemVec::try_copy_range`] with [`Exec::Auto`].
    ///
    /// # Panics
    /// If the range is out of bounds, or far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let v: aifm_collections::RemVec<u8> = (0..10).collect();
    /// assert_eq!(v.copy_range(8..).iter().collect::<Vec<_>>(), [8, 9]);
    /// ```
    #[track_caller]
    pub fn copy_range(&self, range: impl RangeBounds<usize>) -> RemVec<T> {
        match self.try_copy_range(range, Exec::Auto) {
            Ok(v) => v,
            Err(e) => fail("RemVec::copy_range", e),
        }
    }
}
