//! The map device's opcodes, run over any [`PairSource`]: the server device's own tables, or
//! far objects the client reads and removes (`super::super::client`, for a store that runs no
//! aifm code).
//!
//! Everything a request means lives here once: decoding the input, refusing a key without
//! its shard prefix (in a batch, before anything of it is done), the batch limit, sizing a
//! reply against the reply limit before it is built, and encoding the reply. A source only
//! stores: it takes, lists, and clears pairs. The limits are the source's (a server device
//! has its quota's, the client none), so each side keeps the answers it gave before the two
//! shared this code, and both give the same answers on the same pairs.

use super::{CLEAR, CLEAR_SHARD, DEVICE, SCAN, TAKE, TAKE_MANY};
use aifm_core::{Error, Result};

/// The shard of a map device key: its first two bytes, little-endian.
pub(crate) fn shard_of(key: &[u8]) -> Result<u16> {
    match key {
        [a, b, ..] => Ok(u16::from_le_bytes([*a, *b])),
        _ => Err(Error::Remote(format!(
            "{DEVICE}: key without a shard prefix"
        ))),
    }
}

/// Builds a reply from the values a batch took (see [`PairSource::take_many`]).
pub(crate) type TakenReply<'a> = &'a mut dyn FnMut(&[Option<Vec<u8>>]) -> Result<Vec<u8>>;

/// Builds a reply from one shard's pairs (see [`PairSource::with_shard`]).
pub(crate) type ShardReply<'a> = &'a mut dyn FnMut(&[(&[u8], &[u8])]) -> Result<Vec<u8>>;

/// Where a request's pairs are: keys are `[shard: u16 LE][key encoding]`, already checked
/// to carry their shard prefix when a method sees them.
pub(crate) trait PairSource {
    /// Removes `key`'s pair and returns its value (`None` when absent).
    fn take(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Removes the pairs of `keys`, hands their values (in the order of `keys`) to `reply`
    /// and returns what it built. A pair is either taken and in the reply, or still here:
    /// when `reply` fails, or the source can tell beforehand that the reply would not fit its
    /// limit, it keeps (or puts back) every pair it can.
    fn take_many(&self, keys: &[&[u8]], reply: TakenReply<'_>) -> Result<Vec<u8>>;

    /// Hands every pair of `shard` to `reply` (in no particular order) and returns what it
    /// built.
    fn with_shard(&self, shard: u16, reply: ShardReply<'_>) -> Result<Vec<u8>>;

    /// Drops every pair of `shard`.
    fn clear_shard(&self, shard: u16) -> Result<()>;

    /// Drops every pair.
    fn clear(&self) -> Result<()>;

    /// Most keys one [`TAKE_MANY`] may name (`None`: no limit).
    fn batch_keys(&self) -> Option<usize> {
        None
    }

    /// Refuses a reply of `bytes` (the server's reply limit; the client has none).
    fn check_reply(&self, _bytes: u64) -> Result<()> {
        Ok(())
    }
}

/// The reply of [`TAKE`]: `[1] ++ value`, or `[0]` when the key was absent.
fn taken_reply(value: Option<Vec<u8>>) -> Vec<u8> {
    match value {
        Some(v) => {
            let mut out = Vec::with_capacity(v.len() + 1);
            out.push(1);
            out.extend_from_slice(&v);
            out
        }
        None => vec![0],
    }
}

/// Runs one map opcode over `s` and encodes its reply: the whole of the device's `compute`,
/// shared with the client-side device.
pub(crate) fn execute(s: &dyn PairSource, opcode: u32, input: &[u8]) -> Result<Vec<u8>> {
    match opcode {
        TAKE => {
            shard_of(input)?;
            Ok(taken_reply(s.take(input)?))
        }
        TAKE_MANY => {
            let keys: Vec<Vec<u8>> = aifm_core::codec::decode_serde(input)?;
            if let Some(max) = s.batch_keys().filter(|&max| keys.len() > max) {
                return Err(Error::Protocol(format!(
                    "{DEVICE}: {} keys in one TAKE_MANY, at most {max}",
                    keys.len()
                )));
            }
            keys.iter().try_for_each(|k| shard_of(k).map(drop))?;
            let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
            s.take_many(&refs, &mut |values| {
                let mut out = Vec::new();
                aifm_core::codec::encode_serde(&values, &mut out)?;
                s.check_reply(out.len() as u64)?;
                Ok(out)
            })
        }
        SCAN => {
            let shard = shard_of(input)?;
            s.with_shard(shard, &mut |pairs| {
                // Sized before it is built: each pair and its two lengths (at most 10 bytes).
                let size = pairs
                    .iter()
                    .map(|(k, v)| (k.len() + v.len() + 20) as u64)
                    .fold(0u64, u64::saturating_add);
                s.check_reply(size)?;
                let mut out = Vec::new();
                aifm_core::codec::encode_serde(&pairs, &mut out)?;
                Ok(out)
            })
        }
        CLEAR_SHARD => {
            s.clear_shard(shard_of(input)?)?;
            Ok(Vec::new())
        }
        CLEAR => {
            s.clear()?;
            Ok(Vec::new())
        }
        op => Err(Error::UnknownOpcode(op)),
    }
}
