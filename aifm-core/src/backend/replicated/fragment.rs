//! The fragment format of erasure coding: how one object becomes `k` data and `m` parity
//! fragments, and how `k` of them become the object again.
//!
//! # Format
//!
//! An object of `len` bytes is padded with zeros to `k * shard` bytes, where `shard` is
//! `ceil(len / k)`, at least 1, and cut into `k` *data shards*; `m` *parity shards* are
//! computed from them with the Reed-Solomon code over GF(2^8) of [`reed_solomon_erasure`]
//! (a Vandermonde-derived systematic matrix: decoding inverts a `k x k` matrix, cached, and
//! costs a few multiply-adds per byte, which suits the few, small shards of one object).
//! Fragment `i` (data `0..k`, then parity `k..k + m`) is a [`HEADER`]-byte header followed
//! by shard `i`:
//!
//! | bytes | field |
//! |---|---|
//! | 1 | magic `0xEC` |
//! | 1 | `k` |
//! | 1 | `m` |
//! | 1 | the fragment's index `i` |
//! | 8 | the object's length, little-endian |
//! | 8 | the *write id*, little-endian |
//!
//! # Invariants
//!
//! * Every fragment of one write carries the same write id, and two writes never share one
//!   (the backend draws them from a counter): [`decode`] refuses fragments of different
//!   writes, so pieces of an old and a new value are never mixed.
//! * Encoding is deterministic: the fragment `i` of a write can be computed again from the
//!   value and the write id alone (which is how a replacement server gets its fragment).
//! * Nothing here touches a server; the backend does (see `super::erasure`).

use crate::error::{Error, Result};
use reed_solomon_erasure::galois_8::ReedSolomon;
use std::sync::Arc;

/// Bytes of a fragment's header.
pub(crate) const HEADER: usize = 20;

const MAGIC: u8 = 0xEC;

/// A Reed-Solomon code: `data` data shards and `parity` parity shards per object.
#[derive(Clone)]
pub(crate) struct Code {
    pub(crate) data: usize,
    pub(crate) parity: usize,
    rs: Arc<ReedSolomon>,
}

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Code({}+{})", self.data, self.parity)
    }
}

/// A fragment read back from a server, its header checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fragment<'a> {
    /// Its index: data `0..k`, parity `k..k + m`.
    pub(crate) index: usize,
    /// The length of the object.
    pub(crate) len: u64,
    /// The write it belongs to.
    pub(crate) write: u64,
    /// Its shard.
    pub(crate) shard: &'a [u8],
}

impl Code {
    /// A code with `data` data and `parity` parity shards.
    ///
    /// # Errors
    /// [`Error::Config`] unless `1 <= data`, `1 <= parity` and `data + parity <= 255`.
    pub(crate) fn new(data: usize, parity: usize) -> Result<Code> {
        if data == 0 || parity == 0 || data + parity > 255 {
            return Err(Error::Config(format!(
                "erasure coding needs at least 1 data and 1 parity fragment, at most 255 in all (asked {data}+{parity})"
            )));
        }
        let rs = ReedSolomon::new(data, parity)
            .map_err(|e| Error::Config(format!("erasure code {data}+{parity}: {e:?}")))?;
        Ok(Code {
            data,
            parity,
            rs: Arc::new(rs),
        })
    }

    /// Fragments per object.
    pub(crate) fn total(&self) -> usize {
        self.data + self.parity
    }

    /// The bytes of each shard for an object of `len` bytes.
    fn shard_len(&self, len: u64) -> Result<usize> {
        let len = usize::try_from(len)
            .map_err(|_| Error::Codec(format!("an object of {len} bytes does not fit here")))?;
        Ok(len.div_ceil(self.data).max(1))
    }

    /// Cuts `value` into `k + m` fragments (index order) tagged with `write`.
    ///
    /// # Errors
    /// [`Error::Codec`] if the Reed-Solomon encoder refuses (it does not for valid codes).
    pub(crate) fn encode(&self, write: u64, value: &[u8]) -> Result<Vec<Vec<u8>>> {
        let len = value.len() as u64;
        let shard = self.shard_len(len)?;
        let mut out: Vec<Vec<u8>> = (0..self.total())
            .map(|i| {
                let mut f = Vec::with_capacity(HEADER + shard);
                f.extend_from_slice(&[MAGIC, self.data as u8, self.parity as u8, i as u8]);
                f.extend_from_slice(&len.to_le_bytes());
                f.extend_from_slice(&write.to_le_bytes());
                f
            })
            .collect();
        for (i, f) in out.iter_mut().enumerate() {
            let from = (i * shard).min(value.len());
            let to = ((i + 1) * shard).min(value.len());
            if i < self.data {
                f.extend_from_slice(&value[from..to]);
            }
            f.resize(HEADER + shard, 0);
        }
        let (data, parity) = out.split_at_mut(self.data);
        let data: Vec<&[u8]> = data.iter().map(|f| &f[HEADER..]).collect();
        let mut parity: Vec<&mut [u8]> = parity.iter_mut().map(|f| &mut f[HEADER..]).collect();
        self.rs
            .encode_sep(&data, &mut parity)
            .map_err(|e| Error::Codec(format!("erasure encoding failed: {e:?}")))?;
        Ok(out)
    }

    /// Reads a fragment's header; `None` when `bytes` is not a fragment of this code (another
    /// code, a bad index, a shard of the wrong size, or no header at all).
    pub(crate) fn parse<'a>(&self, bytes: &'a [u8]) -> Option<Fragment<'a>> {
        let (head, shard) = bytes.split_at_checked(HEADER)?;
        if head[0] != MAGIC
            || usize::from(head[1]) != self.data
            || usize::from(head[2]) != self.parity
            || usize::from(head[3]) >= self.total()
        {
            return None;
        }
        let len = u64::from_le_bytes(head[4..12].try_into().ok()?);
        let write = u64::from_le_bytes(head[12..20].try_into().ok()?);
        (self.shard_len(len).ok()? == shard.len()).then_some(Fragment {
            index: usize::from(head[3]),
            len,
            write,
            shard,
        })
    }

    /// The object `fragments` (of one write, at least `k` distinct indices) were cut from.
    ///
    /// # Errors
    /// [`Error::Codec`] when the fragments are of different writes or lengths, or fewer than
    /// `k` distinct indices are given.
    pub(crate) fn decode(&self, fragments: &[Fragment<'_>]) -> Result<Vec<u8>> {
        let first = fragments
            .first()
            .ok_or_else(|| Error::Codec("no fragment to decode".into()))?;
        if fragments
            .iter()
            .any(|f| f.write != first.write || f.len != first.len)
        {
            return Err(Error::Codec(
                "fragments of different writes cannot be decoded together".into(),
            ));
        }
        let mut shards: Vec<Option<Vec<u8>>> = vec![None; self.total()];
        for f in fragments {
            if f.shard.len() != first.shard.len() {
                return Err(Error::Codec("fragments of different sizes".into()));
            }
            shards[f.index].get_or_insert_with(|| f.shard.to_vec());
        }
        let have = shards.iter().flatten().count();
        if have < self.data {
            return Err(Error::Codec(format!(
                "{have} distinct fragments cannot rebuild an object of {} data fragments",
                self.data
            )));
        }
        if shards[..self.data].iter().any(Option::is_none) {
            self.rs
                .reconstruct_data(&mut shards)
                .map_err(|e| Error::Codec(format!("erasure decoding failed: {e:?}")))?;
        }
        let len = first.len as usize; // parse checked that it fits in memory
        let mut value = Vec::with_capacity(self.data * first.shard.len());
        for (i, s) in shards[..self.data].iter().enumerate() {
            let s = s
                .as_ref()
                .ok_or_else(|| Error::Codec(format!("the decoder did not restore fragment {i}")))?;
            value.extend_from_slice(s);
        }
        value.truncate(len);
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    /// Every way of choosing `k` of the `k + m` fragments.
    fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
        (0u32..1 << n)
            .filter(|s| s.count_ones() as usize == k)
            .map(|s| (0..n).filter(|&i| s & (1 << i) != 0).collect())
            .collect()
    }

    #[test]
    fn any_k_fragments_give_the_object_back() {
        for (k, m) in [(1, 1), (2, 1), (3, 2), (4, 2)] {
            let code = Code::new(k, m).unwrap();
            for len in [0, 1, 2, 3, 7, 100, 4095, 4096, 4097, 65_537] {
                let v = value(len, len as u8);
                let frags = code.encode(9, &v).unwrap();
                assert_eq!(frags.len(), k + m);
                let parsed: Vec<Fragment<'_>> =
                    frags.iter().map(|f| code.parse(f).unwrap()).collect();
                for (i, f) in parsed.iter().enumerate() {
                    assert_eq!((f.index, f.len, f.write), (i, len as u64, 9));
                }
                for pick in subsets(k + m, k) {
                    let chosen: Vec<Fragment<'_>> = pick.iter().map(|&i| parsed[i]).collect();
                    assert_eq!(
                        code.decode(&chosen).unwrap(),
                        v,
                        "{k}+{m}, {len} bytes, {pick:?}"
                    );
                }
                // Fewer than k fragments do not decode.
                assert!(code.decode(&parsed[..k - 1]).is_err());
                // Fragments are deterministic: a rebuild recomputes the same bytes.
                assert_eq!(code.encode(9, &v).unwrap(), frags);
            }
        }
    }

    #[test]
    fn fragments_are_about_a_kth_of_the_object() {
        let code = Code::new(2, 1).unwrap();
        let frags = code.encode(1, &[7u8; 4096]).unwrap();
        assert!(frags.iter().all(|f| f.len() == HEADER + 2048));
        // The smallest objects still pay a header and a 1-byte shard each.
        let frags = code.encode(1, &[]).unwrap();
        assert!(frags.iter().all(|f| f.len() == HEADER + 1));
    }

    #[test]
    fn fragments_of_different_writes_are_never_decoded_together() {
        let code = Code::new(2, 1).unwrap();
        let old = code.encode(1, &value(100, 1)).unwrap();
        let new = code.encode(2, &value(100, 2)).unwrap();
        let mixed = [code.parse(&old[0]).unwrap(), code.parse(&new[1]).unwrap()];
        assert!(matches!(code.decode(&mixed), Err(Error::Codec(_))));
        let other_len = code.encode(1, &value(300, 1)).unwrap();
        let mixed = [
            code.parse(&old[0]).unwrap(),
            code.parse(&other_len[2]).unwrap(),
        ];
        assert!(code.decode(&mixed).is_err());
        assert!(code.decode(&[]).is_err());
    }

    #[test]
    fn foreign_bytes_are_not_fragments() {
        let code = Code::new(2, 1).unwrap();
        let f = code.encode(5, b"hello").unwrap();
        assert!(code.parse(b"plain value").is_none());
        assert!(code.parse(&[]).is_none());
        assert!(Code::new(3, 1).unwrap().parse(&f[0]).is_none());
        let mut truncated = f[1].clone();
        truncated.pop();
        assert!(code.parse(&truncated).is_none());
        let mut bad_index = f[1].clone();
        bad_index[3] = 3;
        assert!(code.parse(&bad_index).is_none());
        assert!(Code::new(0, 1).is_err());
        assert!(Code::new(2, 0).is_err());
        assert!(Code::new(200, 56).is_err());
    }
}
