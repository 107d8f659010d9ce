//! The offloads of a striped `RemVec`: chunks spread over several servers.
//!
//! A vector made with [`RemVec::striped_in`] has each chunk placed by `(structure, chunk
//! index)`, so every server holds some of it and no `aifm.vec` device holds all of it. Its
//! offloads use [`aifm_core::backend::Backend::compute_sharded`]: the client lists the chunks
//! an operation needs, the backend sends each server the chunks it holds (one replica of
//! each, so nothing is counted twice), and the client merges the answers.
//!
//! Which offloads are decomposable (partials merged here) and which gather what they need is
//! the table in the [parent module's documentation](super). The same paths run when only the
//! *other* vector of an operation (an index or key vector) is striped, since its device
//! cannot see all of it either.
//!
//! Integer results are exactly those of the local code. A floating-point sum (and mean) is
//! summed per shard and the shards' sums added, so it may differ from the index-order sum in
//! the last bits; minimum and maximum are exact.
//!
//! Invariants: before any of these operations, [`RemVec::sync_far`] has written every chunk
//! far memory lacks; every reply is checked to cover exactly what was asked (each chunk once,
//! each position once), else the operation fails with [`Error::Protocol`] and `Exec::Auto`
//! falls back to the local code.

use super::device::{Reply, Request, Shape, OOB, OP_SHARD};
use super::ops::{AggValue, Aggregate, GroupAcc, GroupKey, Numeric, Partial};
use super::{RemVec, REPLY_CHUNKS};
use aifm_core::codec::{decode_pod_vec, decode_serde, encode_serde};
use aifm_core::{Error, FarData, Pod, Result};
use std::collections::BTreeMap;

/// Chunks per sharded aggregate request (12 bytes of key list each: under 1 MiB).
const AGG_WINDOW_CHUNKS: u64 = 1 << 16;

/// Indices per `Pick` request (8 bytes each: 1 MiB), whatever the chunk size.
const PICK_BATCH: usize = 1 << 17;

impl<T: FarData> RemVec<T> {
    /// Whether the vector's chunks are striped over the servers.
    pub(super) fn is_striped(&self) -> bool {
        self.far.placement.is_striped()
    }

    /// Runs `req` once per shard over the chunks `chunks` (ascending; synced by the caller).
    fn call_sharded(
        &self,
        chunks: impl IntoIterator<Item = u64>,
        req: &Request,
    ) -> Result<Vec<Reply>> {
        let s = self
            .far
            .structure
            .as_ref()
            .ok_or_else(|| Error::UnknownDevice(super::DEVICE.into()))?;
        let keys: Vec<[u8; 8]> = chunks.into_iter().map(u64::to_le_bytes).collect();
        let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
        let mut input = Vec::new();
        encode_serde(req, &mut input)?;
        s.compute_sharded(OP_SHARD, &refs, &input)?
            .iter()
            .map(|a| decode_serde(a))
            .collect()
    }

    /// The chunks holding elements `from..to`.
    fn chunks_of(&self, from: u64, to: u64) -> std::ops::Range<u64> {
        let cl = self.chunk_len() as u64;
        if from >= to {
            return 0..0;
        }
        from / cl..to.div_ceil(cl)
    }
}

impl<T: FarData + Pod> RemVec<T> {
    /// The raw bytes of elements `from..to`, each shard sending the part in its chunks.
    pub(super) fn fetch_raw(&self, shape: Shape, from: u64, to: u64) -> Result<Vec<u8>> {
        let e = shape.elem as usize;
        let replies = self.call_sharded(
            self.chunks_of(from, to),
            &Request::Pieces { shape, from, to },
        )?;
        let mut pieces: Vec<(u64, Vec<u8>)> = Vec::new();
        for r in replies {
            match r {
                Reply::Pieces(p) => pieces.extend(p),
                r => return Err(Error::Protocol(format!("unexpected reply {r:?}"))),
            }
        }
        pieces.sort_unstable_by_key(|(c, _)| *c);
        let want = self.chunks_of(from, to);
        let got: Vec<u64> = pieces.iter().map(|(c, _)| *c).collect();
        if !got.iter().copied().eq(want.clone()) {
            return Err(Error::Protocol(format!(
                "shards answered {} pieces for chunks {want:?}",
                got.len()
            )));
        }
        let mut out = Vec::with_capacity((to - from) as usize * e);
        for (_, b) in pieces {
            out.extend_from_slice(&b);
        }
        if out.len() != (to - from) as usize * e {
            return Err(Error::Protocol("shards answered a short range".into()));
        }
        Ok(out)
    }

    /// Copy range, striped: the range's bytes arrive per shard, window by window.
    pub(super) fn striped_copy_range(&self, start: u64, end: u64) -> Result<RemVec<T>> {
        self.sync_far()?;
        let shape = self.shape();
        self.build_from(end - start, |from, to| {
            self.fetch_raw(shape, start + from, start + to)
        })
    }

    /// Gather, when `self` or `idx` is striped: the client reads the index vector window by
    /// window; each shard of `self` returns the elements of its chunks.
    pub(super) fn picked_gather(&self, idx: &RemVec<u64>) -> Result<RemVec<T>> {
        self.sync_far()?;
        let shape = self.shape();
        let e = shape.elem as usize;
        let mut indices = idx.iter();
        self.build_from(idx.len() as u64, |from, to| {
            let mut out = Vec::with_capacity((to - from) as usize * e);
            let mut left = (to - from) as usize;
            while left > 0 {
                let window: Vec<u64> = indices.by_ref().take(left.min(PICK_BATCH)).collect();
                if window.is_empty() {
                    return Err(Error::Protocol("index vector ended early".into()));
                }
                left -= window.len();
                out.extend(self.pick(shape, window)?);
            }
            Ok(out)
        })
    }

    /// The raw bytes of `self[i]` for each `i` of `window`, each shard answering for its
    /// chunks.
    fn pick(&self, shape: Shape, window: Vec<u64>) -> Result<Vec<u8>> {
        let e = shape.elem as usize;
        if let Some(&i) = window.iter().find(|&&i| i >= shape.len) {
            return Err(Error::Remote(format!(
                "{OOB}: index {i} out of bounds for length {}",
                shape.len
            )));
        }
        // Only the chunks the window touches.
        let mut needed: Vec<u64> = window.iter().map(|i| i / shape.chunk_len).collect();
        needed.sort_unstable();
        needed.dedup();
        let n = window.len();
        let replies = self.call_sharded(needed, &Request::Pick { shape, idx: window })?;
        let mut out = vec![0u8; n * e];
        let mut filled = vec![false; n];
        for r in replies {
            let Reply::Picked { positions, bytes } = r else {
                return Err(Error::Protocol(format!("unexpected reply {r:?}")));
            };
            if bytes.len() != positions.len() * e {
                return Err(Error::Protocol("a shard answered short".into()));
            }
            for (k, &p) in positions.iter().enumerate() {
                let p = p as usize;
                match filled.get_mut(p) {
                    Some(f) if !*f => *f = true,
                    _ => return Err(Error::Protocol(format!("position {p} answered twice"))),
                }
                out[p * e..(p + 1) * e].copy_from_slice(&bytes[k * e..(k + 1) * e]);
            }
        }
        if filled.iter().any(|f| !f) {
            return Err(Error::Protocol("a position was not answered".into()));
        }
        Ok(out)
    }
}

impl<T: Numeric> RemVec<T> {
    /// Calls `f` on the elements `from..to` of the vector, window by window, as they arrive
    /// per shard.
    fn for_each_window(&self, mut f: impl FnMut(u64, Vec<T>) -> Result<()>) -> Result<()> {
        self.sync_far()?;
        let shape = self.shape();
        let step = REPLY_CHUNKS * self.chunk_len() as u64;
        let mut from = 0;
        while from < shape.len {
            let to = (from + step).min(shape.len);
            f(from, decode_pod_vec(&self.fetch_raw(shape, from, to)?)?)?;
            from = to;
        }
        Ok(())
    }

    /// An aggregate of a striped vector: partials merged on the client (median: gathered).
    pub(super) fn striped_aggregate(&self, agg: Aggregate) -> Result<Option<AggValue<T>>> {
        if agg == Aggregate::Median {
            let mut acc = super::ops::Acc::<T>::new(agg);
            self.for_each_window(|_, xs| {
                acc.push_slice(&xs);
                Ok(())
            })?;
            return Ok(acc.finish());
        }
        self.sync_far()?;
        let req = Request::Partial {
            kind: T::KIND,
            shape: self.shape(),
        };
        let mut total = Partial::<T>::new();
        let chunks = self.chunks.len() as u64;
        let mut from = 0;
        while from < chunks {
            let to = (from + AGG_WINDOW_CHUNKS).min(chunks);
            for r in self.call_sharded(from..to, &req)? {
                match r {
                    Reply::Partial(w) => total.merge(Partial::from_wire(w)?),
                    r => return Err(Error::Protocol(format!("unexpected reply {r:?}"))),
                }
            }
            from = to;
        }
        if total.count != self.len as u64 {
            return Err(Error::Protocol(format!(
                "shards counted {} elements of {}",
                total.count, self.len
            )));
        }
        Ok(total.finish(agg))
    }

    /// Group-by when either vector is striped: values and keys gathered per shard, grouped
    /// on the client.
    pub(super) fn gathered_group_by<K: GroupKey>(
        &self,
        keys: &RemVec<K>,
        agg: Aggregate,
    ) -> Result<BTreeMap<K, AggValue<T>>> {
        if keys.far.structure.is_some() {
            keys.sync_far()?;
        }
        let kshape = keys.shape();
        let mut acc = GroupAcc::<T>::new(agg);
        self.for_each_window(|from, xs| {
            let to = from + xs.len() as u64;
            let ks: Vec<K> = if keys.far.structure.is_some() {
                decode_pod_vec(&keys.fetch_raw(kshape, from, to)?)?
            } else {
                keys.iter().skip(from as usize).take(xs.len()).collect()
            };
            for (k, x) in ks.into_iter().zip(xs) {
                acc.push(k.to_i128(), x);
            }
            Ok(())
        })?;
        Ok(acc
            .finish()
            .into_iter()
            .map(|(k, v)| (K::from_i128(k), v))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Exec;
    use aifm_core::backend::replicated::ReplicatedBackend;
    use aifm_core::backend::{Backend, EmbeddedBackend};
    use aifm_core::{Placement, Runtime};
    use std::sync::Arc;

    /// A runtime with 1 MiB of local memory over three embedded servers, replication 2.
    fn three_servers() -> (Runtime, Arc<ReplicatedBackend>) {
        let servers: Vec<Box<dyn Backend>> = (0..3)
            .map(|_| Box::new(EmbeddedBackend::new()) as _)
            .collect();
        let far = Arc::new(ReplicatedBackend::new(servers).unwrap().with_replicas(2));
        let rt = Runtime::builder()
            .local_memory(1 << 20)
            .backend(far.clone())
            .build()
            .unwrap();
        (rt, far)
    }

    /// One such runtime for every quickcheck case.
    fn striped_runtime() -> &'static (Runtime, Arc<ReplicatedBackend>) {
        static RT: std::sync::OnceLock<(Runtime, Arc<ReplicatedBackend>)> =
            std::sync::OnceLock::new();
        RT.get_or_init(three_servers)
    }

    fn striped<T: FarData>(chunk_bytes: usize, xs: impl IntoIterator<Item = T>) -> RemVec<T> {
        let mut v = RemVec::with_chunk_bytes_in(chunk_bytes, &striped_runtime().0)
            .with_placement(Placement::Striped);
        v.extend(xs);
        v
    }

    /// Every aggregate and gather-type offload of a striped vector equals the local result
    /// on the same data, for random data, chunk sizes and index vectors.
    fn prop(xs: Vec<i32>, chunk: u8, idx: Vec<u16>, range: (u16, u16)) -> bool {
        let v = striped(4 << (chunk % 6), xs.iter().copied());
        let keys = striped(16, xs.iter().map(|x| x.rem_euclid(5) as u8));
        for agg in [
            Aggregate::Sum,
            Aggregate::Min,
            Aggregate::Max,
            Aggregate::Count,
            Aggregate::Mean,
            Aggregate::Median,
        ] {
            let local = v.try_aggregate(agg, Exec::Local).unwrap();
            assert_eq!(
                v.try_aggregate(agg, Exec::Remote).unwrap(),
                local,
                "{agg:?}"
            );
            assert_eq!(
                v.try_group_by(&keys, agg, Exec::Remote).unwrap(),
                v.try_group_by(&keys, agg, Exec::Local).unwrap()
            );
        }
        if xs.is_empty() {
            return true;
        }
        let n = xs.len();
        let idx = striped(64, idx.iter().map(|&i| u64::from(i) % n as u64));
        let want: Vec<i32> = idx.iter().map(|i| xs[i as usize]).collect();
        assert_eq!(v.try_gather(&idx, Exec::Remote).unwrap(), want);
        let (a, b) = (range.0 as usize % (n + 1), range.1 as usize % (n + 1));
        let (a, b) = (a.min(b), a.max(b));
        assert_eq!(
            v.try_copy_range(a..b, Exec::Remote).unwrap(),
            xs[a..b].to_vec()
        );
        let perm = striped(64, (0..n as u64).rev());
        let rev: Vec<i32> = xs.iter().rev().copied().collect();
        assert_eq!(v.try_permute(&perm, Exec::Remote).unwrap(), rev);
        true
    }

    #[test]
    fn striped_offloads_match_the_local_code() {
        quickcheck::QuickCheck::new()
            .tests(60)
            .quickcheck(prop as fn(Vec<i32>, u8, Vec<u16>, (u16, u16)) -> bool);
        assert_eq!(striped_runtime().1.stats().dead, 0);
    }

    #[test]
    fn striped_chunks_spread_over_every_server_and_whole_ones_do_not() {
        for placement in [Placement::Striped, Placement::Whole] {
            let (rt, far) = three_servers();
            let v: RemVec<u64> = {
                let mut v = RemVec::new_in(&rt).with_placement(placement);
                v.extend(0..64 * 512);
                v
            };
            // Offloading writes every chunk to far memory first.
            assert_eq!(
                v.try_sum(Exec::Remote).unwrap(),
                64 * 512 * (64 * 512 - 1) / 2
            );
            let held: Vec<u64> = far.servers().iter().map(|s| s.stored_bytes()).collect();
            let holders = held.iter().filter(|&&b| b > 0).count();
            match placement {
                Placement::Striped => assert_eq!(holders, 3, "{held:?}"),
                Placement::Whole => assert_eq!(holders, 2, "{held:?}"),
            }
        }
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn striped_gather_out_of_bounds_panics() {
        let v = striped(64, 0..100u32);
        let idx = striped(64, [3u64, 100]);
        let _ = v.try_gather(&idx, Exec::Remote);
    }
}
