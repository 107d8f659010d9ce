//! Structured random requests for the vector device, for fuzzing the server (feature
//! `arbitrary`). Sizes are drawn from a mix of small values (so requests reach deep into
//! the computations), boundary values and huge ones (so every size check is exercised).

use super::*;
use aifm_core::backend::sharded::encode_shard_input;
use arbitrary::Unstructured;

const KINDS: [NumKind; 10] = [
    NumKind::U8,
    NumKind::U16,
    NumKind::U32,
    NumKind::U64,
    NumKind::I8,
    NumKind::I16,
    NumKind::I32,
    NumKind::I64,
    NumKind::F32,
    NumKind::F64,
];

const AGGS: [Aggregate; 6] = [
    Aggregate::Sum,
    Aggregate::Min,
    Aggregate::Max,
    Aggregate::Mean,
    Aggregate::Count,
    Aggregate::Median,
];

/// A size: mostly small, sometimes a boundary, sometimes anything.
fn size(u: &mut Unstructured<'_>) -> arbitrary::Result<u64> {
    Ok(match u.int_in_range(0u8..=9)? {
        0..=5 => u.int_in_range(0u64..=64)?,
        6 => u.int_in_range(0u64..=4096)?,
        7 => *u.choose(&[0, 1, u32::MAX as u64, 1 << 45, u64::MAX - 1, u64::MAX])?,
        _ => u.arbitrary()?,
    })
}

fn shape(u: &mut Unstructured<'_>) -> arbitrary::Result<Shape> {
    Ok(Shape {
        elem: if u.ratio(3, 4)? {
            *u.choose(&[1, 2, 4, 8])?
        } else {
            size(u)? as u32
        },
        chunk_len: size(u)?,
        len: size(u)?,
    })
}

fn other(u: &mut Unstructured<'_>, tokens: &[u128]) -> arbitrary::Result<Other> {
    let token = if !tokens.is_empty() && u.ratio(7, 8)? {
        *u.choose(tokens)?
    } else {
        u.arbitrary()?
    };
    Ok(Other {
        token,
        shape: shape(u)?,
    })
}

fn request(u: &mut Unstructured<'_>, tokens: &[u128]) -> arbitrary::Result<Request> {
    let kind = |u: &mut Unstructured<'_>| u.choose(&KINDS).copied();
    let agg = |u: &mut Unstructured<'_>| u.choose(&AGGS).copied();
    Ok(match u.int_in_range(0u8..=7)? {
        0 => Request::Aggregate {
            kind: kind(u)?,
            agg: agg(u)?,
            shape: shape(u)?,
        },
        1 => Request::GroupBy {
            kind: kind(u)?,
            agg: agg(u)?,
            shape: shape(u)?,
            key_kind: kind(u)?,
            keys: other(u, tokens)?,
        },
        2 => Request::Gather {
            shape: shape(u)?,
            idx: other(u, tokens)?,
            from: size(u)?,
            to: size(u)?,
        },
        3 => Request::IsPermutation {
            idx: other(u, tokens)?,
            n: size(u)?,
        },
        4 => Request::CopyRange {
            shape: shape(u)?,
            from: size(u)?,
            to: size(u)?,
        },
        5 => Request::Partial {
            kind: kind(u)?,
            shape: shape(u)?,
        },
        6 => Request::Pieces {
            shape: shape(u)?,
            from: size(u)?,
            to: size(u)?,
        },
        _ => {
            let n = u.int_in_range(0usize..=64)?;
            Request::Pick {
                shape: shape(u)?,
                idx: (0..n).map(|_| size(u)).collect::<arbitrary::Result<_>>()?,
            }
        }
    })
}

/// A random `(opcode, input)` for a vector device's `compute`: a whole-vector or sharded
/// request naming the vectors of `tokens` (mostly) or made-up ones, with random shapes and
/// ranges; now and then raw bytes.
///
/// # Errors
/// When `u` runs out of data.
///
/// # Examples
///
/// ```
/// let mut u = arbitrary::Unstructured::new(&[3, 1, 4, 1, 5, 9, 2, 6]);
/// let (opcode, input) = aifm_collections::vec::device::arbitrary_request(&mut u, &[7]).unwrap();
/// assert!(opcode <= 3, "whole, sharded, or a random opcode near them");
/// # let _ = input;
/// ```
pub fn arbitrary_request(
    u: &mut Unstructured<'_>,
    tokens: &[u128],
) -> arbitrary::Result<(u32, Vec<u8>)> {
    let mut input = Vec::new();
    match u.int_in_range(0u8..=9)? {
        0..=4 => {
            aifm_core::codec::encode_serde(&request(u, tokens)?, &mut input)
                .map_err(|_| arbitrary::Error::IncorrectFormat)?;
            Ok((OP, input))
        }
        5..=8 => {
            aifm_core::codec::encode_serde(&request(u, tokens)?, &mut input)
                .map_err(|_| arbitrary::Error::IncorrectFormat)?;
            let n = u.int_in_range(0usize..=16)?;
            let chunks: Vec<[u8; 8]> = (0..n)
                .map(|_| size(u).map(u64::to_le_bytes))
                .collect::<arbitrary::Result<_>>()?;
            let keys: Vec<&[u8]> = chunks.iter().map(|k| &k[..]).collect();
            Ok((OP_SHARD, encode_shard_input(&keys, &input)))
        }
        _ => Ok((u.int_in_range(0u32..=3)?, u.arbitrary()?)),
    }
}
