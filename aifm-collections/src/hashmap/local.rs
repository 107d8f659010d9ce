//! The client-side `aifm.hashmap` device: the map's operations for backends that run no aifm
//! code (a Redis Cluster).
//!
//! Pairs live under the same keys as on the server device (`[shard: u16 LE][key encoding]`),
//! and each client shard is one placement group (the key's first two bytes), so a shard's
//! pairs share a hash slot: [`SCAN`] and [`CLEAR_SHARD`] list one slot. [`TAKE`] and
//! [`TAKE_MANY`] use the durable take of [`FarObjects::take_many`] (read, then remove), and
//! answer exactly as the device does.

use super::device::{shard_of, taken_reply, CLEAR, CLEAR_SHARD, DEVICE, SCAN, TAKE, TAKE_MANY};
use aifm_core::engine::local::{FarObjects, LocalDevice};
use aifm_core::{Error, Result};

/// Keys removed per request when a shard or the map is cleared.
const CLEAR_BATCH: usize = 1024;

/// The client-side map device (stateless: everything is in far memory).
struct LocalMap;

/// Builds a client-side map device (no parameters).
pub(crate) fn factory(_params: &[u8]) -> Result<Box<dyn LocalDevice>> {
    Ok(Box::new(LocalMap))
}

fn remove_all(far: &dyn FarObjects, keys: &[Vec<u8>]) -> Result<()> {
    for batch in keys.chunks(CLEAR_BATCH) {
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        far.remove_many(&refs)?;
    }
    Ok(())
}

impl LocalDevice for LocalMap {
    fn type_name(&self) -> &str {
        DEVICE
    }

    fn placement_prefix(&self) -> usize {
        2
    }

    fn compute(&self, far: &dyn FarObjects, opcode: u32, input: &[u8]) -> Result<Vec<u8>> {
        match opcode {
            TAKE => {
                shard_of(input)?;
                Ok(taken_reply(far.take_many(&[input])?.pop().flatten()))
            }
            TAKE_MANY => {
                let keys: Vec<Vec<u8>> = aifm_core::codec::decode_serde(input)?;
                for k in &keys {
                    shard_of(k)?;
                }
                let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
                let values = far.take_many(&refs)?;
                let mut out = Vec::new();
                aifm_core::codec::encode_serde(&values, &mut out)?;
                Ok(out)
            }
            SCAN => {
                shard_of(input)?;
                let keys = far.keys(&input[..2])?;
                let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
                let values = far.read_many(&refs)?;
                // A pair taken between the listing and the read is simply not there any more.
                let pairs: Vec<(&[u8], &[u8])> = refs
                    .iter()
                    .zip(&values)
                    .filter_map(|(k, v)| Some((*k, v.as_deref()?)))
                    .collect();
                let mut out = Vec::new();
                aifm_core::codec::encode_serde(&pairs, &mut out)?;
                Ok(out)
            }
            CLEAR_SHARD => {
                shard_of(input)?;
                remove_all(far, &far.keys(&input[..2])?)?;
                Ok(Vec::new())
            }
            CLEAR => {
                remove_all(far, &far.keys(&[])?)?;
                Ok(Vec::new())
            }
            op => Err(Error::UnknownOpcode(op)),
        }
    }
}
