//! The vector device's requests, run over any [`ChunkSource`]: the server device's own
//! chunks, or far objects read by the client (`super::super::client`). Every size a request
//! carries is checked here before it sizes anything (see the `device` module docs).

use super::*;

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
    fn widen<K: crate::vec::ops::GroupKey>(b: &[u8], out: &mut Vec<i128>) -> Result<()> {
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
/// device that runs it over chunks read from a store without aifm code (`client.rs`).
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
