//! The client-side `aifm.vec` device: a vector's operations for backends that run no aifm
//! code (a Redis Cluster).
//!
//! It runs the device's own request code (`device::run`) over [`FarChunks`], a chunk source
//! that reads the vector's chunks from far memory in pipelined windows of [`WINDOW`]
//! consecutive chunks (every request walks chunks in ascending order, so one window serves
//! many chunks), keeping one window at a time so memory stays bounded. The other vector of a
//! request (an index or key vector) is found by its token, the construction parameter both
//! sides record, and read the same way, with its own window kept for the whole request.

use super::device::{self, ChunkSource, DEVICE};
use aifm_core::engine::client::{ClientDevice, FarObjects};
use aifm_core::{Error, Result};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

/// Chunks read per round trip.
pub(crate) const WINDOW: u64 = 64;

/// The client-side vector device (stateless: everything is in far memory).
struct ClientVec;

/// Builds a client-side vector device; `params` is the vector's 16-byte token.
pub(crate) fn factory(params: &[u8]) -> Result<Box<dyn ClientDevice>> {
    if params.len() != 16 {
        return Err(Error::Remote(format!(
            "{DEVICE}: parameters are a 16-byte token"
        )));
    }
    Ok(Box::new(ClientVec))
}

impl ClientDevice for ClientVec {
    fn type_name(&self) -> &str {
        DEVICE
    }

    fn compute(&self, far: &dyn FarObjects, opcode: u32, input: &[u8]) -> Result<Vec<u8>> {
        device::execute(&FarChunks::new(far, None), opcode, input)
    }
}

/// The first chunk index of a window and its chunks (`None`: not in far memory).
type Window = (u64, Vec<Option<Arc<[u8]>>>);

/// A vector's chunks in far memory, read a window at a time.
pub(crate) struct FarChunks<'a> {
    /// Where other vectors are looked up.
    root: &'a dyn FarObjects,
    /// This vector's objects when they are not `root`'s.
    own: Option<Box<dyn FarObjects + 'a>>,
    /// The chunks read last.
    window: RefCell<Window>,
    /// Other vectors already found, by token.
    others: RefCell<HashMap<u128, Arc<FarChunks<'a>>>>,
}

impl<'a> FarChunks<'a> {
    pub(crate) fn new(root: &'a dyn FarObjects, own: Option<Box<dyn FarObjects + 'a>>) -> Self {
        FarChunks {
            root,
            own,
            window: RefCell::new((0, Vec::new())),
            others: RefCell::new(HashMap::new()),
        }
    }

    fn far(&self) -> &dyn FarObjects {
        self.own.as_deref().unwrap_or(self.root)
    }
}

impl ChunkSource for FarChunks<'_> {
    fn chunk(&self, i: u64) -> Result<Arc<[u8]>> {
        {
            let (start, chunks) = &*self.window.borrow();
            if let Some(Some(c)) = i.checked_sub(*start).and_then(|d| chunks.get(d as usize)) {
                return Ok(c.clone());
            }
        }
        let keys: Vec<[u8; 8]> = (i..i.saturating_add(WINDOW))
            .map(u64::to_le_bytes)
            .collect();
        let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
        let chunks: Vec<Option<Arc<[u8]>>> = self
            .far()
            .read_many(&refs)?
            .into_iter()
            .map(|c| c.map(Arc::from))
            .collect();
        let first = chunks[0].clone();
        *self.window.borrow_mut() = (i, chunks);
        first.ok_or_else(|| Error::Remote(format!("{DEVICE}: chunk {i} is not in far memory")))
    }

    fn other(&self, token: u128) -> Result<Arc<dyn ChunkSource + '_>> {
        if let Some(o) = self.others.borrow().get(&token) {
            return Ok(o.clone());
        }
        let root = self.root;
        let objects = root.find(DEVICE, &token.to_le_bytes())?.ok_or_else(|| {
            Error::Remote(format!("{DEVICE}: no vector with the given token here"))
        })?;
        // An `Arc` only because the device's sources are shared ones; this one stays on the
        // request's thread.
        #[allow(clippy::arc_with_non_send_sync)]
        let o = Arc::new(FarChunks::new(root, Some(objects)));
        self.others.borrow_mut().insert(token, o.clone());
        Ok(o)
    }
}
