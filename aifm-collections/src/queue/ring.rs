//! A `RemQueue` chunk: a ring of elements, so both ends of a chunk take pushes and pops in
//! O(1). Far encoding: the byte length of the first slice's encoding (u64 LE), then
//! `T::encode_slice` of the ring's first slice, then of its second.

use aifm_core::{Error, FarData, Result};
use std::collections::VecDeque;

/// One chunk of a [`RemQueue`]: a ring of elements.
///
/// Far encoding: the byte length of the first slice's encoding (u64 LE), then
/// `T::encode_slice` of the ring's first slice, then of its second.
pub(crate) struct Ring<T>(pub(super) VecDeque<T>);

impl<T: FarData> FarData for Ring<T> {
    const INTERIOR_MUTABLE: bool = T::INTERIOR_MUTABLE;

    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        let (a, b) = self.0.as_slices();
        let at = out.len();
        out.extend_from_slice(&[0; 8]);
        T::encode_slice(a, out)?;
        let n = (out.len() - at - 8) as u64;
        out[at..at + 8].copy_from_slice(&n.to_le_bytes());
        T::encode_slice(b, out)
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let short = || Error::Codec("truncated ring chunk".into());
        let n: [u8; 8] = bytes
            .get(..8)
            .ok_or_else(short)?
            .try_into()
            .expect("8 bytes");
        let n = usize::try_from(u64::from_le_bytes(n)).map_err(|_| short())?;
        let rest = &bytes[8..];
        let first = rest.get(..n).ok_or_else(short)?;
        let mut ring = VecDeque::from(T::decode_vec(first)?);
        ring.extend(T::decode_vec(&rest[n..])?);
        Ok(Ring(ring))
    }

    fn heap_bytes(&self) -> usize {
        self.0.capacity() * std::mem::size_of::<T>()
            + self.0.iter().map(T::heap_bytes).sum::<usize>()
    }
}

impl<T> Ring<T> {
    /// Makes room for `cl` elements (a fetched chunk comes back with room for its own only).
    pub(super) fn room(&mut self, cl: usize) -> &mut VecDeque<T> {
        if self.0.capacity() < cl {
            self.0.reserve_exact(cl - self.0.len());
        }
        &mut self.0
    }
}
