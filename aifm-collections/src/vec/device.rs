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
/// client when the backend runs no aifm code (see `super::local`). Every computation below
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
            .lock()
            .unwrap()
            .get(&i)
            .cloned()
            .ok_or_else(|| Error::Remote(format!("{DEVICE}: chunk {i} is not in far memory")))
    }

    fn other(&self, token: u128) -> Result<Arc<dyn ChunkSource + '_>> {
        Ok(self
            .quota
            .peers()
            .find::<VecStore>(DEVICE, token)
            .ok_or_else(|| Error::Remote(format!("{DEVICE}: no vector with the given token here")))?)
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
        Ok(self
            .store
            .shard(k)
            .lock()
            .unwrap()
            .get(&k)
            .map(|v| v.to_vec()))
    }

    fn check_key(&self, key: &[u8]) -> Result<()> {
        key_of(key).map(drop)
    }

    fn write(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let k = key_of(key)?;
        let store = &self.store;
        let mut shard = store.shard(k).lock().unwrap();
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
        let old = self.store.shard(k).lock().unwrap().remove(&k);
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
            all.extend(shard.lock().unwrap().keys().map(|k| k.to_le_bytes()));
        }
        Ok(aifm_core::engine::key_page(
            all.iter().map(|k| &k[..]),
            after,
            limit,
        ))
    }

    fn clear(&self) {
        for shard in self.store.shards.iter() {
            for (_, v) in shard.lock().unwrap().drain() {
                self.store.forget(v.len() as u64);
            }
        }
    }
}

/// Calls `$f::<T>` with the Rust type named by a `NumKind`.
macro_rules! by_kind {
    ($kind:expr, $f:ident ( $($arg:expr),* )) => {
        match $kind {
            NumKind::U8 => $f::<u8>($($arg),*),
            NumKind::U16 => $f::<u16>($($arg),*),
            NumKind::U32 => $f::<u32>($($arg),*),
            NumKind::U64 => $f::<u64>($($arg),*),
            NumKind::I8 => $f::<i8>($($arg),*),
            NumKind::I16 => $f::<i16>($($arg),*),
            NumKind::I32 => $f::<i32>($($arg),*),
            NumKind::I64 => $f::<i64>($($arg),*),
            NumKind::F32 => $f::<f32>($($arg),*),
            NumKind::F64 => $f::<f64>($($arg),*),
        }
    };
}

fn check_elem<T>(shape: &Shape) -> Result<()> {
    shape.check()?;
    if shape.elem as usize != std::mem::size_of::<T>() {
        return Err(Error::Remote(format!("{DEVICE}: bad shape {shape:?}")));
    }
    Ok(())
}

fn decode<T: Numeric>(bytes: &[u8]) -> Result<Vec<T>> {
    aifm_core::codec::decode_pod_vec(bytes)
}

fn aggregate<T: Numeric>(s: &dyn ChunkSource, agg: Aggregate, shape: Shape) -> Result<Reply> {
    check_elem::<T>(&shape)?;
    let mut acc = Acc::<T>::new(agg);
    s.for_range(shape, 0, shape.len, &mut |b| {
        acc.push_slice(&decode::<T>(b)?);
        Ok(())
    })?;
    Ok(Reply::Agg(acc.finish().map(AggValue::to_wire)))
}

/// Reads a key or index vector as `i128`s over `from..to`.
fn read_ints(
    s: &dyn ChunkSource,
    other: &Other,
    kind: NumKind,
    from: u64,
    to: u64,
) -> Result<Vec<i128>> {
    fn widen<K: super::ops::GroupKey>(b: &[u8], out: &mut Vec<i128>) -> Result<()> {
        out.extend(decode::<K>(b)?.into_iter().map(K::to_i128));
        Ok(())
    }
    fn go<K: Numeric>(
        s: &dyn ChunkSource,
        o: &Other,
        from: u64,
        to: u64,
        kind: NumKind,
    ) -> Result<Vec<i128>> {
        check_elem::<K>(&o.shape)?;
        check_range(&o.shape, from, to)?;
        let mut out = buffer(to - from);
        s.for_range(o.shape, from, to, &mut |b| match kind {
            NumKind::U8 => widen::<u8>(b, &mut out),
            NumKind::U16 => widen::<u16>(b, &mut out),
            NumKind::U32 => widen::<u32>(b, &mut out),
            NumKind::U64 => widen::<u64>(b, &mut out),
            NumKind::I8 => widen::<i8>(b, &mut out),
            NumKind::I16 => widen::<i16>(b, &mut out),
            NumKind::I32 => widen::<i32>(b, &mut out),
            NumKind::I64 => widen::<i64>(b, &mut out),
            NumKind::F32 | NumKind::F64 => Err(Error::Remote(format!(
                "{DEVICE}: float keys are not supported"
            ))),
        })?;
        Ok(out)
    }
    let store = s.other(other.token)?;
    by_kind!(kind, go(&*store, other, from, to, kind))
}

fn group_by<T: Numeric>(
    s: &dyn ChunkSource,
    agg: Aggregate,
    shape: Shape,
    key_kind: NumKind,
    keys: Other,
) -> Result<Reply> {
    check_elem::<T>(&shape)?;
    if keys.shape.len != shape.len {
        return Err(Error::Remote(format!(
            "{DEVICE}: key and value lengths differ"
        )));
    }
    let mut acc = GroupAcc::<T>::new(agg);
    // Walk in windows of one value chunk, reading the matching keys.
    let mut i = 0;
    while i < shape.len {
        let to = i.saturating_add(shape.chunk_len).min(shape.len);
        let ks = read_ints(s, &keys, key_kind, i, to)?;
        let mut at = 0;
        s.for_range(shape, i, to, &mut |b| {
            for x in decode::<T>(b)? {
                acc.push(ks[at], x);
                at += 1;
            }
            Ok(())
        })?;
        i = to;
    }
    Ok(Reply::Groups(
        acc.finish()
            .into_iter()
            .map(|(k, v)| {
                let (tag, b) = v.to_wire();
                (k, tag, b)
            })
            .collect(),
    ))
}

fn gather(s: &dyn ChunkSource, shape: Shape, idx: Other, from: u64, to: u64) -> Result<Vec<u8>> {
    shape.check()?;
    idx.shape.check()?;
    check_range(&idx.shape, from, to)?;
    let e = shape.elem as usize;
    // The reply: one element per index (the range fits, so no overflow).
    let reply = (to - from)
        .checked_mul(e as u64)
        .ok_or_else(|| Error::Remote(format!("{DEVICE}: gather too large")))?;
    s.check_reply(reply)?;
    let ids = read_ints(s, &idx, NumKind::U64, from, to)?;
    // Visit each needed chunk once: sort output positions by source index.
    let mut order: Vec<(u64, usize)> = Vec::with_capacity(ids.len());
    for (j, &i) in ids.iter().enumerate() {
        let i = i as u64;
        if i >= shape.len {
            return Err(Error::Remote(format!(
                "{OOB}: index {i} out of bounds for length {}",
                shape.len
            )));
        }
        order.push((i, j));
    }
    order.sort_unstable();
    let mut out = Vec::new();
    out.try_reserve_exact(ids.len() * e)
        .map_err(|_| Error::Remote(format!("{DEVICE}: no memory for the gather")))?;
    out.resize(ids.len() * e, 0);
    let mut cur: Option<(u64, Arc<[u8]>)> = None;
    for (i, j) in order {
        let c = i / shape.chunk_len;
        if cur.as_ref().is_none_or(|(cc, _)| *cc != c) {
            cur = Some((c, s.chunk(c)?));
        }
        let bytes = &cur.as_ref().unwrap().1;
        let at = (i % shape.chunk_len) as usize * e;
        let src = bytes
            .get(at..at + e)
            .ok_or_else(|| Error::Remote(format!("{DEVICE}: chunk {c} is short")))?;
        out[j * e..(j + 1) * e].copy_from_slice(src);
    }
    Ok(out)
}

/// Prefix of the error a device reports for an out-of-bounds index (the client panics on it).
pub(crate) const OOB: &str = "aifm.vec: index out of bounds";

fn is_permutation(s: &dyn ChunkSource, idx: Other, n: u64) -> Result<bool> {
    check_elem::<u64>(&idx.shape)?;
    if idx.shape.len != n {
        return Ok(false);
    }
    let store = s.other(idx.token)?;
    // All n indices must be in far memory (n * 8 bytes fits: the shape is checked), so the
    // marks (one bit per index) are sized by what the index vector really holds.
    if store.held().is_some_and(|h| n * 8 > h) {
        return Err(Error::Remote(format!(
            "{DEVICE}: the index vector holds fewer than {n} elements"
        )));
    }
    let words = usize::try_from(n.div_ceil(64))
        .map_err(|_| Error::Remote(format!("{DEVICE}: {n} indices do not fit in memory")))?;
    let mut seen: Vec<u64> = Vec::new();
    seen.try_reserve_exact(words)
        .map_err(|_| Error::Remote(format!("{DEVICE}: no memory to mark {n} indices")))?;
    seen.resize(words, 0);
    let step = idx.shape.chunk_len.saturating_mul(64);
    let mut i = 0;
    while i < n {
        let to = i.saturating_add(step).min(n);
        for x in read_ints(s, &idx, NumKind::U64, i, to)? {
            let Ok(x) = u64::try_from(x) else {
                return Ok(false);
            };
            if x >= n {
                return Ok(false);
            }
            let (w, bit) = ((x / 64) as usize, 1u64 << (x % 64));
            if seen[w] & bit != 0 {
                return Ok(false);
            }
            seen[w] |= bit;
        }
        i = to;
    }
    Ok(true)
}

/// Elements `from..to` of chunk `c` (its whole range clipped to `from..to` and the length);
/// `None` when they do not meet.
fn chunk_part(shape: &Shape, c: u64, from: u64, to: u64) -> Option<(u64, u64)> {
    let start = c.checked_mul(shape.chunk_len)?.max(from);
    let end = c
        .saturating_add(1)
        .saturating_mul(shape.chunk_len)
        .min(to)
        .min(shape.len);
    (start < end).then_some((start, end))
}

fn partial<T: Numeric>(s: &dyn ChunkSource, shape: Shape, chunks: &[u64]) -> Result<Reply> {
    check_elem::<T>(&shape)?;
    let mut p = Partial::<T>::new();
    for &c in chunks {
        let (from, to) = chunk_part(&shape, c, 0, shape.len)
            .ok_or_else(|| Error::Remote(format!("{DEVICE}: chunk {c} is past the end")))?;
        s.for_range(shape, from, to, &mut |b| {
            p.push_slice(&decode::<T>(b)?);
            Ok(())
        })?;
    }
    Ok(Reply::Partial(p.to_wire()))
}

fn pick(s: &dyn ChunkSource, shape: Shape, chunks: &[u64], idx: &[u64]) -> Result<Reply> {
    shape.check()?;
    let e = shape.elem as usize;
    // At most one element per index of the request (which the frame limit bounded).
    s.check_reply((idx.len() as u64).saturating_mul(e as u64 + 5))?;
    let mine: std::collections::HashSet<u64> = chunks.iter().copied().collect();
    // Visit each chunk once: the answered positions sorted by source index.
    let mut order: Vec<(u64, u32)> = Vec::new();
    for (p, &i) in idx.iter().enumerate() {
        if i >= shape.len {
            return Err(Error::Remote(format!(
                "{OOB}: index {i} out of bounds for length {}",
                shape.len
            )));
        }
        if mine.contains(&(i / shape.chunk_len)) {
            let p = u32::try_from(p)
                .map_err(|_| Error::Remote(format!("{DEVICE}: index list too long")))?;
            order.push((i, p));
        }
    }
    order.sort_unstable();
    let mut bytes = Vec::with_capacity(order.len() * e);
    let mut positions = Vec::with_capacity(order.len());
    let mut cur: Option<(u64, Arc<[u8]>)> = None;
    for (i, p) in order {
        let c = i / shape.chunk_len;
        let chunk = match &cur {
            Some((cc, b)) if *cc == c => b.clone(),
            _ => {
                let b = s.chunk(c)?;
                cur = Some((c, b.clone()));
                b
            }
        };
        let at = (i % shape.chunk_len) as usize * e;
        let src = chunk
            .get(at..at + e)
            .ok_or_else(|| Error::Remote(format!("{DEVICE}: chunk {c} is short")))?;
        bytes.extend_from_slice(src);
        positions.push(p);
    }
    Ok(Reply::Picked { positions, bytes })
}

/// Runs a sharded request over the shard's `chunks`.
fn run_shard(s: &dyn ChunkSource, chunks: &[u64], req: Request) -> Result<Reply> {
    match req {
        Request::Partial { kind, shape } => by_kind!(kind, partial(s, shape, chunks)),
        Request::Pieces { shape, from, to } => {
            shape.check()?;
            check_range(&shape, from, to)?;
            let mut out = Vec::with_capacity(chunks.len());
            let mut reply = 0u64;
            for &c in chunks {
                let Some((a, b)) = chunk_part(&shape, c, from, to) else {
                    continue;
                };
                reply = reply.saturating_add(shape.bytes(a, b) + 16);
                s.check_reply(reply)?;
                let mut bytes = buffer(shape.bytes(a, b));
                s.for_range(shape, a, b, &mut |part| {
                    bytes.extend_from_slice(part);
                    Ok(())
                })?;
                out.push((c, bytes));
            }
            Ok(Reply::Pieces(out))
        }
        Request::Pick { shape, idx } => pick(s, shape, chunks, &idx),
        _ => Err(Error::Remote(format!(
            "{DEVICE}: this request does not run per shard"
        ))),
    }
}

/// Runs one encoded operation (`opcode` [`OP`] or [`OP_SHARD`]) over `s`'s chunks and
/// encodes the reply: the whole of the device's `compute`, shared with the client-side
/// device that runs it over chunks read from a store without aifm code (`local.rs`).
pub(crate) fn execute(s: &dyn ChunkSource, opcode: u32, input: &[u8]) -> Result<Vec<u8>> {
    let reply = match opcode {
        OP => run(s, aifm_core::codec::decode_serde(input)?)?,
        OP_SHARD => {
            let shard = aifm_core::backend::sharded::decode_shard_input(input)?;
            let chunks = shard
                .keys
                .iter()
                .map(|k| key_of(k))
                .collect::<Result<Vec<u64>>>()?;
            run_shard(s, &chunks, aifm_core::codec::decode_serde(shard.input)?)?
        }
        _ => return Err(Error::UnknownOpcode(opcode)),
    };
    let mut out = Vec::new();
    aifm_core::codec::encode_serde(&reply, &mut out)?;
    Ok(out)
}

pub(crate) fn run(s: &dyn ChunkSource, req: Request) -> Result<Reply> {
    match req {
        Request::Aggregate { kind, agg, shape } => by_kind!(kind, aggregate(s, agg, shape)),
        Request::GroupBy {
            kind,
            agg,
            shape,
            key_kind,
            keys,
        } => by_kind!(kind, group_by(s, agg, shape, key_kind, keys)),
        Request::Gather {
            shape,
            idx,
            from,
            to,
        } => gather(s, shape, idx, from, to).map(Reply::Bytes),
        Request::IsPermutation { idx, n } => is_permutation(s, idx, n).map(Reply::Bool),
        Request::CopyRange { shape, from, to } => {
            shape.check()?;
            check_range(&shape, from, to)?;
            s.check_reply(shape.bytes(from, to))?;
            let mut out = buffer(shape.bytes(from, to));
            s.for_range(shape, from, to, &mut |b| {
                out.extend_from_slice(b);
                Ok(())
            })?;
            Ok(Reply::Bytes(out))
        }
        Request::Partial { .. } | Request::Pieces { .. } | Request::Pick { .. } => Err(
            Error::Remote(format!("{DEVICE}: a sharded request needs a chunk list")),
        ),
    }
}

#[cfg(test)]
#[path = "device_tests.rs"]
mod tests;
