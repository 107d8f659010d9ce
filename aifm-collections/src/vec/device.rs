//! The server-side half of `RemVec`: the `aifm.vec` remote device.
//!
//! # Storage
//!
//! One device instance per vector. It stores the vector's chunks by chunk index (8-byte
//! little-endian keys, exactly the keys the runtime writes evacuated chunks under), each as the
//! chunk's far encoding (for plain data, the raw bytes of its elements). Values are kept as
//! `Arc<[u8]>` so that computations borrow chunks without copying them; every stored byte is
//! charged to the namespace's quota.
//!
//! # Finding the other vectors of an operation
//!
//! A gather reads an index vector, a group-by a key vector: two devices. The engine gives a
//! device neither its own structure id nor its namespace, so each vector device is created
//! with a random 128-bit *token* (its construction parameter) and enters itself in its
//! namespace's table of peers ([`aifm_core::engine::Peers`], reached through the quota),
//! which it leaves when it is destroyed. A request names the other vector by its token, and
//! a token names a vector of the caller's own namespace only: another client's token names
//! nothing, and constructing with a token that a live vector holds is refused (it cannot
//! take the entry over).
//!
//! # Sizes from the client
//!
//! A request carries shapes, ranges and counts that the client chose. Before anything is
//! allocated, a shape is checked (non-zero element size and chunk length, no overflowing
//! byte counts), a reply's size is checked against the namespace's reply limit, and an
//! allocation is sized by the data actually held (an index vector's elements must all be in
//! far memory before `IsPermutation` marks `n` of them), never by a count alone: buffers
//! grow as chunks are read. A request that fails these checks is a typed error.
//!
//! # Operations
//!
//! Requests and replies are postcard-encoded `Request`s; every computation calls the same
//! accumulators as the local fallback (see `ops`), in the same element order.
//!
//! # Striped vectors
//!
//! A striped vector's chunks are spread over several servers, so no device holds all of them.
//! Its operations arrive under opcode `OP_SHARD` as sharded requests (see
//! [`aifm_core::backend::sharded`]): the request names the chunks this device must cover, and
//! the device answers for exactly those — a `Partial` aggregate (count, sum, minimum,
//! maximum) that the client merges with the other shards', the `Pieces` of a range that fall
//! in its chunks, or the elements of an index list that it holds (`Pick`). A chunk it is asked
//! for but does not hold is an error, never a silent gap.

use super::ops::{
    Acc, AggValue, Aggregate, GroupAcc, NumKind, Numeric, Partial, WireGroup, WirePartial,
};
use aifm_core::engine::{Quota, RemoteDevice};
use aifm_core::sync::MutexExt;
use aifm_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The device type name of `RemVec`.
///
/// ```
/// let r = aifm_core::engine::DeviceRegistry::default();
/// aifm_collections::register_devices(&r);
/// assert!(r.contains(aifm_collections::vec::DEVICE));
/// ```
pub const DEVICE: &str = "aifm.vec";

const SHARDS: usize = 16;

/// The opcode of whole-vector requests: the request says what to do.
pub(crate) const OP: u32 = 1;

/// The opcode of sharded requests (a chunk list wrapped around a `Request`).
pub(crate) const OP_SHARD: u32 = 2;

/// How a vector is laid out in far memory: element size, elements per chunk, length.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Shape {
    pub elem: u32,
    pub chunk_len: u64,
    pub len: u64,
}

impl Shape {
    /// Refuses shapes no vector has: a zero element size or chunk length, or byte counts
    /// (of a chunk, of the whole vector) that overflow. After it, `i / chunk_len` and
    /// `n * elem` for `n <= len` are safe.
    fn check(&self) -> Result<()> {
        let e = self.elem as u64;
        let ok = e > 0
            && self.chunk_len > 0
            && self
                .chunk_len
                .checked_mul(e)
                .is_some_and(|b| b <= u32::MAX as u64)
            && self.len.checked_mul(e).is_some();
        if !ok {
            return Err(Error::Remote(format!("{DEVICE}: bad shape {self:?}")));
        }
        Ok(())
    }

    /// Bytes of elements `from..to` (a checked shape, `from <= to <= len`).
    fn bytes(&self, from: u64, to: u64) -> u64 {
        (to - from) * self.elem as u64
    }
}

/// Refuses a range that is not within `0..=shape.len`.
fn check_range(shape: &Shape, from: u64, to: u64) -> Result<()> {
    if to > shape.len || from > to {
        return Err(Error::Remote(format!(
            "{OOB}: range {from}..{to} of {}",
            shape.len
        )));
    }
    Ok(())
}

/// Most elements a buffer is given up front: beyond, it grows as chunks are actually read.
const PREALLOC: u64 = 1 << 16;

/// An empty buffer for `n` elements of `T` (at most [`PREALLOC`] reserved now).
fn buffer<T>(n: u64) -> Vec<T> {
    Vec::with_capacity(n.min(PREALLOC) as usize)
}

/// Another vector of the same operation.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Other {
    pub token: u128,
    pub shape: Shape,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request {
    Aggregate {
        kind: NumKind,
        agg: Aggregate,
        shape: Shape,
    },
    GroupBy {
        kind: NumKind,
        agg: Aggregate,
        shape: Shape,
        key_kind: NumKind,
        keys: Other,
    },
    /// out[j] = self[idx[j]] for j in from..to.
    Gather {
        shape: Shape,
        idx: Other,
        from: u64,
        to: u64,
    },
    /// Whether the index vector holds every index 0..n exactly once.
    IsPermutation { idx: Other, n: u64 },
    /// The raw bytes of elements from..to.
    CopyRange { shape: Shape, from: u64, to: u64 },
    /// Sharded: the decomposable summary of the shard's chunks.
    Partial { kind: NumKind, shape: Shape },
    /// Sharded: the raw bytes of elements from..to that lie in the shard's chunks.
    Pieces { shape: Shape, from: u64, to: u64 },
    /// Sharded: the elements `self[idx[p]]` whose chunk is one of the shard's.
    Pick { shape: Shape, idx: Vec<u64> },
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Reply {
    Agg(Option<(u8, Vec<u8>)>),
    Groups(Vec<WireGroup>),
    Bytes(Vec<u8>),
    Bool(bool),
    Partial(WirePartial),
    /// (chunk index, raw bytes of the requested part of it), one per chunk.
    Pieces(Vec<(u64, Vec<u8>)>),
    /// The positions `p` of the request's index list that were answered, and their elements
    /// (raw bytes, in the same order).
    Picked {
        positions: Vec<u32>,
        bytes: Vec<u8>,
    },
}

type Shard = Mutex<HashMap<u64, Arc<[u8]>>>;

/// Where a request's chunks come from: the device's own tables, or far objects read by the
/// client when the backend runs no aifm code (see `super::client`). Every computation below
/// runs over this, so both give the same answers.
pub(crate) trait ChunkSource {
    /// The bytes of chunk `i`.
    fn chunk(&self, i: u64) -> Result<Arc<[u8]>>;

    /// The other vector of a request, by its token.
    fn other(&self, token: u128) -> Result<Arc<dyn ChunkSource + '_>>;

    /// Bytes of chunks this source holds, when it knows (a server device does); requests
    /// size their buffers by it, not by the counts they carry.
    fn held(&self) -> Option<u64> {
        None
    }

    /// Refuses a reply of `bytes` before it is built (the server's reply limit).
    fn check_reply(&self, _bytes: u64) -> Result<()> {
        Ok(())
    }

    /// Calls `f` on the raw bytes of elements `from..to`, chunk by chunk, in order.
    fn for_range(
        &self,
        shape: Shape,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        shape.check()?;
        check_range(&shape, from, to)?;
        let e = shape.elem as u64;
        let mut i = from;
        while i < to {
            let c = i / shape.chunk_len;
            let bytes = self.chunk(c)?;
            let start = (i % shape.chunk_len) * e;
            let n = (shape.chunk_len - i % shape.chunk_len).min(to - i);
            let part = bytes
                .get(start as usize..(start + n * e) as usize)
                .ok_or_else(|| Error::Remote(format!("{DEVICE}: chunk {c} is short")))?;
            f(part)?;
            i += n;
        }
        Ok(())
    }
}

/// The chunks of one vector.
pub(crate) struct VecStore {
    shards: Box<[Shard]>,
    quota: Arc<Quota>,
    /// Bytes of all chunks held.
    held: AtomicU64,
}

impl VecStore {
    fn shard(&self, key: u64) -> &Shard {
        &self.shards[key as usize % SHARDS]
    }

    /// A chunk of `bytes` left: its charge (with its 8-byte key) goes back.
    fn forget(&self, bytes: u64) {
        self.quota.remove_object(bytes + 8);
        self.held.fetch_sub(bytes, Ordering::AcqRel);
    }
}

impl ChunkSource for VecStore {
    fn chunk(&self, i: u64) -> Result<Arc<[u8]>> {
        self.shard(i)
            .locked()
            .get(&i)
            .cloned()
            .ok_or_else(|| Error::Remote(format!("{DEVICE}: chunk {i} is not in far memory")))
    }

    fn other(&self, token: u128) -> Result<Arc<dyn ChunkSource + '_>> {
        Ok(self
            .quota
            .peers()
            .find::<VecStore>(DEVICE, token)
            .ok_or_else(|| {
                Error::Remote(format!("{DEVICE}: no vector with the given token here"))
            })?)
    }

    fn held(&self) -> Option<u64> {
        Some(self.held.load(Ordering::Acquire))
    }

    fn check_reply(&self, bytes: u64) -> Result<()> {
        self.quota.check_reply(bytes)
    }
}

fn key_of(key: &[u8]) -> Result<u64> {
    Ok(u64::from_le_bytes(key.try_into().map_err(|_| {
        Error::Remote(format!("{DEVICE}: keys are 8-byte chunk indices"))
    })?))
}

/// The `aifm.vec` device (one per vector).
pub(crate) struct VecDevice {
    token: u128,
    store: Arc<VecStore>,
}

/// Builds a vector device; `params` is the vector's 16-byte token.
pub(crate) fn factory(params: &[u8], quota: Arc<Quota>) -> Result<Box<dyn RemoteDevice>> {
    let token = u128::from_le_bytes(
        params
            .try_into()
            .map_err(|_| Error::Remote(format!("{DEVICE}: parameters are a 16-byte token")))?,
    );
    let store = Arc::new(VecStore {
        shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        quota,
        held: AtomicU64::new(0),
    });
    store.quota.peers().enter(DEVICE, token, &store)?;
    Ok(Box::new(VecDevice { token, store }))
}

impl Drop for VecDevice {
    fn drop(&mut self) {
        self.store
            .quota
            .peers()
            .leave(DEVICE, self.token, &self.store);
    }
}

impl RemoteDevice for VecDevice {
    fn type_name(&self) -> &str {
        DEVICE
    }

    fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let k = key_of(key)?;
        Ok(self.store.shard(k).locked().get(&k).map(|v| v.to_vec()))
    }

    fn read_with(&self, key: &[u8], f: &mut dyn FnMut(Option<&[u8]>)) -> Result<()> {
        let k = key_of(key)?;
        f(self.store.shard(k).locked().get(&k).map(|v| &v[..]));
        Ok(())
    }

    fn check_key(&self, key: &[u8]) -> Result<()> {
        key_of(key).map(drop)
    }

    fn write(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let k = key_of(key)?;
        let store = &self.store;
        let mut shard = store.shard(k).locked();
        let new = value.len() as u64;
        match shard.get(&k) {
            Some(v) => {
                let old = v.len() as u64;
                store.quota.replace_object(old + 8, new + 8)?;
                store.held.fetch_sub(old, Ordering::AcqRel);
            }
            None => store.quota.add_object(new + 8)?,
        }
        store.held.fetch_add(new, Ordering::AcqRel);
        shard.insert(k, Arc::from(value));
        Ok(())
    }

    fn remove(&self, key: &[u8]) -> Result<bool> {
        let k = key_of(key)?;
        let old = self.store.shard(k).locked().remove(&k);
        if let Some(v) = &old {
            self.store.forget(v.len() as u64);
        }
        Ok(old.is_some())
    }

    fn compute(&self, opcode: u32, input: &[u8]) -> Result<Vec<u8>> {
        execute(&*self.store, opcode, input)
    }

    /// Chunk indices as their 8-byte little-endian keys (the order is bytewise, as for every
    /// device, not numeric).
    fn keys(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>> {
        let mut all: Vec<[u8; 8]> = Vec::new();
        for shard in self.store.shards.iter() {
            all.extend(shard.locked().keys().map(|k| k.to_le_bytes()));
        }
        Ok(aifm_core::engine::key_page(
            all.iter().map(|k| &k[..]),
            after,
            limit,
        ))
    }

    fn clear(&self) {
        for shard in self.store.shards.iter() {
            for (_, v) in shard.locked().drain() {
                self.store.forget(v.len() as u64);
            }
        }
    }
}

/// Prefix of the error a device reports for an out-of-bounds index (the client panics on it).
pub(crate) const OOB: &str = "aifm.vec: index out of bounds";

#[path = "device_exec.rs"]
mod exec;
pub(crate) use exec::execute;

#[cfg(feature = "arbitrary")]
#[path = "device_arbitrary.rs"]
mod arbitrary_requests;
#[cfg(feature = "arbitrary")]
pub use arbitrary_requests::arbitrary_request;

#[cfg(test)]
#[path = "device_tests.rs"]
mod tests;
