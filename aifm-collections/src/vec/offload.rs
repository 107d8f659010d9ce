//! How `RemVec` hands work to the `aifm.vec` device: syncing chunks to far memory, the
//! request plumbing, and the `Exec` policy shared by every offloaded operation.
//!
//! Before an offload, chunks that are only local (or changed since they were last sent) are
//! written to far memory in batches and marked `SYNCED | WROTE`; chunks already remote are
//! current there by construction. `dispatch` runs the remote or the local path as `Exec`
//! says (`Auto`: remote when at least a quarter of the chunks are remote, falling back to the
//! local path on any failure but a contract violation, which both paths report alike).

use super::device::{Other, Reply, Request, Shape, OOB, OP};
use super::{RemVec, DEVICE, SYNCED, SYNC_BATCH, WROTE};
use crate::Exec;
use aifm_core::codec::{decode_serde, encode_serde};
use aifm_core::{Error, FarData, Result, Scope};
use std::sync::atomic::Ordering;

impl<T: FarData> RemVec<T> {
    /// Writes every chunk far memory does not hold in its current form to far memory, in
    /// batches, so the vector's device can compute on all of it.
    pub(super) fn sync_far(&self) -> Result<()> {
        let Some(s) = &self.far.structure else {
            return Err(Error::UnknownStructure(u32::MAX));
        };
        let mut scope = Scope::new();
        let mut batch: Vec<([u8; 8], Vec<u8>)> = Vec::new();
        let mut marks = Vec::new();
        let flush = |batch: &mut Vec<([u8; 8], Vec<u8>)>, marks: &mut Vec<usize>| -> Result<()> {
            if batch.is_empty() {
                return Ok(());
            }
            let items: Vec<(&[u8], &[u8])> = batch.iter().map(|(k, v)| (&k[..], &v[..])).collect();
            s.backend().write_many(s.id(), &items)?;
            for &i in marks.iter() {
                self.chunks
                    .at(i)
                    .flags
                    .fetch_or(SYNCED | WROTE, Ordering::Relaxed);
            }
            batch.clear();
            marks.clear();
            Ok(())
        };
        for (i, c) in self.chunks.iter().enumerate() {
            if c.flags.load(Ordering::Relaxed) & SYNCED != 0 {
                continue;
            }
            if !c.is_local() {
                // Only the runtime moves chunks out, and it writes what changed.
                c.flags.fetch_or(SYNCED, Ordering::Relaxed);
                continue;
            }
            let mut bytes = Vec::new();
            c.encode_nt(&scope, &mut bytes)?;
            batch.push((c.key().to_le_bytes(), bytes));
            marks.push(i);
            if batch.len() == SYNC_BATCH {
                flush(&mut batch, &mut marks)?;
                scope.renew();
            }
        }
        flush(&mut batch, &mut marks)
    }

    pub(super) fn shape(&self) -> Shape {
        Shape {
            elem: std::mem::size_of::<T>() as u32,
            chunk_len: self.chunk_len() as u64,
            len: self.len as u64,
        }
    }

    pub(super) fn other(&self) -> Option<Other> {
        self.far.structure.as_ref().map(|_| Other {
            token: self.far.token,
            shape: self.shape(),
        })
    }

    /// Whether `Auto` should offload an operation over `self` (and `others`).
    pub(super) fn worth_offloading(&self, others: &[(usize, usize)]) -> bool {
        if self.far.structure.is_none() {
            return false;
        }
        let (local, all) = self.local_chunks();
        let (mut remote, mut total) = (all - local, all);
        for &(l, a) in others {
            remote += a - l;
            total += a;
        }
        total > 0 && remote * 4 >= total
    }

    pub(super) fn call(&self, req: &Request) -> Result<Reply> {
        let s = self
            .far
            .structure
            .as_ref()
            .ok_or_else(|| Error::UnknownDevice(DEVICE.into()))?;
        let mut input = Vec::new();
        encode_serde(req, &mut input)?;
        let out = s.compute(OP, &input)?;
        decode_serde(&out)
    }

    pub(super) fn same_far<U: FarData>(&self, other: &RemVec<U>) -> Result<()> {
        let a = self.far.rt.backend() as *const dyn aifm_core::Backend as *const u8;
        let b = other.far.rt.backend() as *const dyn aifm_core::Backend as *const u8;
        if a == b && other.far.structure.is_some() {
            Ok(())
        } else {
            Err(Error::Remote(
                "the vectors do not share far memory: cannot offload".into(),
            ))
        }
    }
}

/// Runs `remote` or `local` as `exec` says (`Auto`: remote when `offload`, falling back to
/// local on any failure of the remote path).
pub(super) fn dispatch<R>(
    exec: Exec,
    trivial: bool,
    offload: impl FnOnce() -> bool,
    remote: impl FnOnce() -> Result<R>,
    local: impl FnOnce() -> Result<R>,
) -> Result<R> {
    if trivial {
        // Nothing to compute on (and perhaps no far-memory structure yet).
        return local();
    }
    match exec {
        Exec::Local => local(),
        Exec::Remote => remote(),
        Exec::Auto => {
            if offload() {
                match remote() {
                    Ok(r) => return Ok(r),
                    Err(Error::Remote(m)) if m.starts_with(OOB) => {
                        return Err(Error::Remote(m));
                    }
                    Err(_) => {}
                }
            }
            local()
        }
    }
}

/// Panics on a contract violation reported by either path; passes other errors through.
#[track_caller]
pub(super) fn contract<R>(r: Result<R>, what: &str) -> Result<R> {
    match r {
        Err(Error::Remote(m)) if m.starts_with(OOB) => panic!("{what}: {m}"),
        r => r,
    }
}
