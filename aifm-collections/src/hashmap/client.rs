//! The client-side `aifm.hashmap` device: the map's operations for backends that run no aifm
//! code (a Redis Cluster).
//!
//! It runs the device's own opcode executor (`device::exec`) over [`FarPairs`], the map's
//! pairs as far objects. Pairs live under the same keys as on the server device
//! (`[shard: u16 LE][key encoding]`), and each client shard is one placement group (the
//! key's first two bytes), so a shard's pairs share a hash slot: [`SCAN`](super::device::SCAN) and
//! [`CLEAR_SHARD`](super::device::CLEAR_SHARD) list one slot. [`TAKE`](super::device::TAKE) and
//! [`TAKE_MANY`](super::device::TAKE_MANY) use the durable take of [`FarObjects::take_many`] (read,
//! then remove). The client has no batch or reply limit of its own; the store's transport
//! has its own.

use super::device::exec::{self, PairSource, ShardReply, TakenReply};
use super::device::DEVICE;
use aifm_core::engine::client::{ClientDevice, FarObjects};
use aifm_core::Result;

/// Keys removed per request when a shard or the map is cleared.
const CLEAR_BATCH: usize = 1024;

/// The client-side map device (stateless: everything is in far memory).
struct ClientMap;

/// Builds a client-side map device (no parameters).
pub(crate) fn factory(_params: &[u8]) -> Result<Box<dyn ClientDevice>> {
    Ok(Box::new(ClientMap))
}

impl ClientDevice for ClientMap {
    fn type_name(&self) -> &str {
        DEVICE
    }

    fn placement_prefix(&self) -> usize {
        2
    }

    fn compute(&self, far: &dyn FarObjects, opcode: u32, input: &[u8]) -> Result<Vec<u8>> {
        exec::execute(&FarPairs(far), opcode, input)
    }
}

/// A map's pairs in far memory, each request a few pipelined round trips.
struct FarPairs<'a>(&'a dyn FarObjects);

impl FarPairs<'_> {
    fn remove_all(&self, keys: &[Vec<u8>]) -> Result<()> {
        for batch in keys.chunks(CLEAR_BATCH) {
            let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
            self.0.remove_many(&refs)?;
        }
        Ok(())
    }
}

impl PairSource for FarPairs<'_> {
    fn take(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.0.take_many(&[key])?.pop().flatten())
    }

    /// The pairs are gone once taken: `reply` only encodes, which does not fail on byte
    /// strings, and there is no reply limit here to refuse it.
    fn take_many(&self, keys: &[&[u8]], reply: TakenReply<'_>) -> Result<Vec<u8>> {
        reply(&self.0.take_many(keys)?)
    }

    fn with_shard(&self, shard: u16, reply: ShardReply<'_>) -> Result<Vec<u8>> {
        let keys = self.0.keys(&shard.to_le_bytes())?;
        let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        let values = self.0.read_many(&refs)?;
        // A pair taken between the listing and the read is simply not there any more.
        let pairs: Vec<(&[u8], &[u8])> = refs
            .iter()
            .zip(&values)
            .filter_map(|(k, v)| Some((*k, v.as_deref()?)))
            .collect();
        reply(&pairs)
    }

    fn clear_shard(&self, shard: u16) -> Result<()> {
        self.remove_all(&self.0.keys(&shard.to_le_bytes())?)
    }

    fn clear(&self) -> Result<()> {
        self.remove_all(&self.0.keys(&[])?)
    }
}
