//! Replacing a dead server and rebuilding, in the background, the copies it held.
//!
//! # Mechanism
//!
//! [`ReplicatedBackend::replace_server`] puts a new server at a dead server's *position*, so
//! the placement of every object is unchanged: the replacement is owed exactly the objects
//! whose replica set contains that position. It first gets every live structure constructed
//! (the backend records `(id, device, parameters)` of each), then enters the *rebuilding*
//! state: from that moment on, writes, removes, computes, constructs and destructs go to it
//! as to any member, but reads do not, since it may still miss older objects. A background
//! thread then lists the keys of every structure on the live servers, keeps those placed on
//! the position, and copies them in batches of [`BATCH`] (one `read_many` from a live member
//! of each key's set, one `write_many` and one `remove_many` to the replacement). When every
//! batch is in, the replacement becomes live and serves reads.
//!
//! # Why a batch never overwrites a newer value
//!
//! Every operation that changes far memory holds a gate *shared* for its whole duration; a
//! rebuild batch holds it *exclusively* from its read on the survivors to its write on the
//! replacement. So no mutation runs between the two: what the batch writes is the latest
//! value, and a mutation that follows it reaches the replacement too (it is a member). A key
//! the survivors no longer hold (removed, or taken by a hash map's `TAKE`, since it was
//! listed) is *removed* on the replacement instead, so nothing is resurrected. Installing the
//! replacement also takes the gate exclusively, so every mutation either finished before
//! (and its keys are in the listing, which starts after) or sees the replacement as a
//! member. The gate is a sharded reader-writer lock: shared acquisitions by different
//! threads touch different cache lines, so it costs mutations next to nothing when no
//! rebuild runs. Reads never take it.
//!
//! An erasure-coded object store (see `super::erasure`) is rebuilt the same way, except
//! that the replacement is owed a *fragment*, not a copy: each object of the batch is
//! decoded from `k` live holders and cut again with its original write id (encoding is
//! deterministic), and the replacement gets the fragment of its position, which therefore
//! matches the other holders' fragments.
//!
//! Device operations (`compute`) run on the replacement as well, and its answer is ignored:
//! an operation must therefore affect each object on its own (a `TAKE` of an object the
//! replacement does not hold yet changes nothing there, and the batch that would have copied
//! it finds it gone and removes it), which every device of aifm-collections satisfies.
//!
//! # Failure
//!
//! If the replacement fails (`Disconnected` or `Timeout`), it is condemned like any server
//! and the rebuild stops; another replacement may then be installed. Any other refusal
//! (`ServerFull`, say) also condemns it, with that error, since it cannot be made whole. A
//! survivor that fails during the rebuild is condemned and the next live member is used;
//! objects no live server holds any more are counted as unrecoverable and left alone.
//! Progress is reported in [`ReplicatedStats`](super::ReplicatedStats) and in the logs.

use super::erasure::Found;
use super::fragment::Code;
use super::{is_failure, LiveReads, ReplicatedBackend, State};
use crate::backend::{Backend, OBJECT_STORE};
use crate::error::{Error, Result};
use crate::sync::{MutexExt, RwLockExt};
use crossbeam_utils::sync::ShardedLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

/// Objects copied per batch (the gate is held exclusively around each batch).
pub(super) const BATCH: usize = 128;

/// The rebuild gate and the progress counters of a [`ReplicatedBackend`].
#[derive(Default)]
pub(super) struct Progress {
    pub(super) gate: ShardedLock<()>,
    pub(super) replaced: AtomicU64,
    pub(super) objects: AtomicU64,
    pub(super) bytes: AtomicU64,
    pub(super) unrecoverable: AtomicU64,
}

impl ReplicatedBackend {
    /// Puts `server` (an empty store) in place of the dead server at position `index` and
    /// rebuilds, on a background thread, the copies the dead server held: see the
    /// [module documentation](super#rebuilding-a-dead-servers-copies). Placement does not
    /// change. The replacement takes writes at once and reads once rebuilt; wait for that
    /// with [`ReplicatedBackend::wait_rebuilt`].
    ///
    /// # Errors
    /// [`Error::Config`] when `index` is out of range or the server there is not dead (a
    /// live or still-rebuilding server cannot be replaced); the error of `server` when a
    /// live structure cannot be constructed on it. Nothing changes on error.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::faulty::Faulty;
    /// use aifm_core::backend::replicated::ReplicatedBackend;
    /// use aifm_core::backend::{Backend, EmbeddedBackend, OBJECT_STORE};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// let first = Arc::new(Faulty::new(EmbeddedBackend::new()));
    /// let servers: Vec<Box<dyn Backend>> = vec![
    ///     Box::new(first.clone()),
    ///     Box::new(EmbeddedBackend::new()),
    ///     Box::new(EmbeddedBackend::new()),
    /// ];
    /// let far = Arc::new(ReplicatedBackend::new(servers).unwrap());
    /// for i in 0..100u32 {
    ///     far.write(OBJECT_STORE, &i.to_le_bytes(), b"value").unwrap();
    /// }
    /// // A live server cannot be replaced.
    /// assert!(far.replace_server(0, Box::new(EmbeddedBackend::new())).is_err());
    /// first.set_down(true);
    /// assert_eq!(far.keys(OBJECT_STORE).unwrap().len(), 100); // asks every server
    /// assert!(!far.is_live(0));
    /// far.replace_server(0, Box::new(EmbeddedBackend::new())).unwrap();
    /// far.wait_rebuilt(0, Duration::from_secs(10)).unwrap();
    /// let s = far.stats();
    /// assert_eq!((s.live, s.dead, s.replaced), (3, 0, 1));
    /// assert!(s.rebuilt_objects > 0);
    /// ```
    pub fn replace_server(self: &Arc<Self>, index: usize, server: Box<dyn Backend>) -> Result<()> {
        let epoch = self.install(index, server)?;
        let far = self.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("aifm-rebuild-{index}"))
            .spawn(move || far.rebuild_and_finish(index, epoch));
        if let Err(e) = spawned {
            let e = Error::Remote(format!("cannot start the rebuild thread: {e}"));
            self.condemn(&self.member(index), e.clone());
            return Err(e);
        }
        Ok(())
    }

    /// Waits until the replacement at position `index` is rebuilt (or `index` is simply a
    /// live server), at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`] when the rebuild is still running after `timeout`; the error that
    /// condemned the server when it is dead (its rebuild failed, or it was never replaced);
    /// [`Error::Config`] when `index` is out of range.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::replicated::ReplicatedBackend;
    /// use aifm_core::backend::{Backend, EmbeddedBackend};
    /// use std::time::Duration;
    /// let two: Vec<Box<dyn Backend>> = (0..2).map(|_| Box::new(EmbeddedBackend::new()) as _).collect();
    /// let far = ReplicatedBackend::new(two).unwrap();
    /// assert!(far.wait_rebuilt(1, Duration::ZERO).is_ok()); // live from the start
    /// assert!(far.wait_rebuilt(2, Duration::ZERO).is_err()); // no such server
    /// ```
    pub fn wait_rebuilt(&self, index: usize, timeout: Duration) -> Result<()> {
        if index >= self.slots.len() {
            return Err(no_such_server(index, self.slots.len()));
        }
        let deadline = Instant::now() + timeout;
        let mut reasons = self.reasons();
        loop {
            match self.state(index) {
                State::Live => return Ok(()),
                State::Dead => {
                    return Err(reasons[index]
                        .clone()
                        .unwrap_or_else(|| Error::Disconnected(format!("server {index} is dead"))))
                }
                State::Rebuilding => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout);
            }
            reasons = self
                .changed
                .wait_timeout(reasons, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Puts `server` at position `index` in the rebuilding state; returns its epoch.
    pub(super) fn install(&self, index: usize, server: Box<dyn Backend>) -> Result<u64> {
        if index >= self.slots.len() {
            return Err(no_such_server(index, self.slots.len()));
        }
        let server: Arc<dyn Backend> = Arc::from(server);
        // No mutation runs while the replacement is installed (see the module docs).
        let _gate = self.exclusive();
        let old = self.member(index);
        if old.state != State::Dead {
            return Err(Error::Config(format!(
                "server {index} ({}) is {}: only a dead server can be replaced",
                old.server.name(),
                if old.state == State::Live {
                    "live"
                } else {
                    "being rebuilt"
                }
            )));
        }
        let structures = self.structures.locked().clone();
        for (ds, (device, params)) in &structures {
            server.construct(*ds, device, params)?;
        }
        let mut reasons = self.reasons();
        let epoch = {
            let mut slot = self.slots[index].writing();
            slot.server = server;
            slot.epoch += 1;
            slot.state = State::Rebuilding;
            slot.epoch
        };
        reasons[index] = None;
        drop(reasons);
        self.changed.notify_all();
        self.rebuild.replaced.fetch_add(1, Ordering::Relaxed);
        Ok(epoch)
    }

    /// The rebuild thread: copies, then makes the replacement live (or dead, on failure).
    pub(super) fn rebuild_and_finish(&self, index: usize, epoch: u64) {
        let started = Instant::now();
        let name = self.member(index).server.name();
        tracing::info!(
            server = %name,
            index,
            "rebuilding the copies of replaced server {index} on {name}"
        );
        let (objects0, bytes0) = (
            self.rebuild.objects.load(Ordering::Relaxed),
            self.rebuild.bytes.load(Ordering::Relaxed),
        );
        let outcome = self.rebuild(index, epoch);
        let objects = self.rebuild.objects.load(Ordering::Relaxed) - objects0;
        let bytes = self.rebuild.bytes.load(Ordering::Relaxed) - bytes0;
        let seconds = started.elapsed().as_secs_f64();
        let mut reasons = self.reasons();
        let mut slot = self.slots[index].writing();
        let ours = slot.epoch == epoch && slot.state == State::Rebuilding;
        match outcome {
            Ok(()) if ours => {
                slot.state = State::Live;
                tracing::info!(
                    server = %name,
                    index,
                    objects,
                    bytes,
                    seconds,
                    "server {index} rebuilt: {objects} objects, {bytes} bytes in {seconds:.2} s"
                );
            }
            Err(e) if ours => {
                slot.state = State::Dead;
                tracing::error!(
                    server = %name,
                    index,
                    error = %e,
                    objects,
                    "rebuild of server {index} failed after {objects} objects: {e}"
                );
                reasons[index] = Some(e);
            }
            _ => {
                let why = reasons[index]
                    .as_ref()
                    .map_or_else(|| "replaced again".to_string(), ToString::to_string);
                tracing::error!(
                    server = %name,
                    index,
                    objects,
                    "rebuild of server {index} abandoned after {objects} objects: the replacement failed ({why})"
                );
            }
        }
        drop(slot);
        drop(reasons);
        self.changed.notify_all();
    }

    /// Copies every object placed on position `index` from the live servers to the
    /// replacement (epoch `epoch`), structure by structure.
    ///
    /// # Errors
    /// The replacement's failure or refusal; a survivor's answer that is not a failure.
    fn rebuild(&self, index: usize, epoch: u64) -> Result<()> {
        let mut ids = vec![OBJECT_STORE];
        ids.extend(
            self.structures
                .locked()
                .keys()
                .copied()
                .filter(|&ds| ds != OBJECT_STORE),
        );
        for ds in ids {
            let keys = match self.keys_placed_on(ds, index) {
                Ok(keys) => keys,
                // Destructed meanwhile: nothing to copy.
                Err(Error::UnknownStructure(_)) => continue,
                Err(e) => return Err(e),
            };
            for batch in keys.chunks(BATCH) {
                match self.copy_batch(ds, index, epoch, batch) {
                    Ok(()) => {}
                    Err(Error::UnknownStructure(_)) => break,
                    Err(e) => return Err(e),
                }
                // Let mutations that queued behind the batch take the gate first.
                std::thread::yield_now();
            }
        }
        Ok(())
    }

    /// The keys of structure `ds` whose replica set contains `index`, listed on the live
    /// servers, sorted, without duplicates.
    pub(super) fn keys_placed_on(&self, ds: u32, index: usize) -> Result<Vec<Vec<u8>>> {
        let sources: super::ReplicaSet = if ds == OBJECT_STORE {
            (0..self.slots.len()).collect()
        } else {
            let set = self.structure_set(ds);
            if !set.contains(&index) {
                return Ok(Vec::new());
            }
            set
        };
        let mut keys: Vec<Vec<u8>> = Vec::new();
        for s in sources.into_iter().filter(|&s| s != index) {
            let m = self.member(s);
            if m.state != State::Live {
                continue;
            }
            match m.server.keys(ds) {
                Ok(ks) => keys.extend(
                    ks.into_iter()
                        .filter(|k| ds != OBJECT_STORE || self.placement(ds, k).contains(&index)),
                ),
                Err(e) if is_failure(&e) => self.condemn(&m, e),
                Err(e) => return Err(e),
            }
        }
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }

    /// Copies one batch under the exclusive gate: the latest value of each key from a live
    /// member, or its removal when no live member holds it any more.
    pub(super) fn copy_batch(
        &self,
        ds: u32,
        index: usize,
        epoch: u64,
        keys: &[Vec<u8>],
    ) -> Result<()> {
        let _gate = self.exclusive();
        let target = self.member(index);
        if target.epoch != epoch || target.state != State::Rebuilding {
            return Err(self.reasons()[index]
                .clone()
                .unwrap_or_else(|| Error::Disconnected("the replacement was replaced".into())));
        }
        let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
        let got = match self.code_for(ds) {
            Some(code) => self.fragments_for(code, index, &refs)?,
            None => self.read_live(ds, &refs, &self.sets(ds, refs.iter()))?.0,
        };
        let mut puts: Vec<(&[u8], &[u8])> = Vec::new();
        let mut gone: Vec<&[u8]> = Vec::new();
        let mut unrecoverable = 0;
        for (k, v) in refs.iter().zip(&got) {
            match v {
                Some(Some(v)) => puts.push((k, v)),
                Some(None) => gone.push(k),
                None => unrecoverable += 1,
            }
        }
        self.rebuild
            .unrecoverable
            .fetch_add(unrecoverable, Ordering::Relaxed);
        let bytes: usize = puts.iter().map(|(_, v)| v.len()).sum();
        let mut result = Ok(());
        if !puts.is_empty() {
            result = target.server.write_many(ds, &puts);
        }
        if result.is_ok() && !gone.is_empty() {
            result = target.server.remove_many(ds, &gone);
        }
        match result {
            Ok(()) => {
                self.rebuild
                    .objects
                    .fetch_add(puts.len() as u64, Ordering::Relaxed);
                self.rebuild
                    .bytes
                    .fetch_add(bytes as u64, Ordering::Relaxed);
                Ok(())
            }
            // Destructed meanwhile: the caller skips the structure.
            Err(e @ Error::UnknownStructure(_)) => Err(e),
            Err(e) => {
                // A failure or a refusal: either way it cannot be made whole.
                self.condemn(&target, e.clone());
                Err(e)
            }
        }
    }
}

impl ReplicatedBackend {
    /// The fragments owed to position `index` for erasure-coded `keys`: each object decoded
    /// from `k` live holders (a batch read, see `ec_fetch_many`) and cut again with its
    /// original write id (`None` for an object no `k` live holders can give back,
    /// `Some(None)` for one that is gone).
    ///
    /// # Errors
    /// A holder's answer that is not a failure.
    fn fragments_for(&self, code: &Code, index: usize, keys: &[&[u8]]) -> Result<LiveReads> {
        let found = self.ec_fetch_many(code, keys, false)?;
        let mut out: LiveReads = Vec::with_capacity(keys.len());
        for (key, found) in keys.iter().zip(found) {
            out.push(match found {
                Ok(Found::Absent) => Some(None),
                Ok(Found::Value(write, value)) => self
                    .placement(OBJECT_STORE, key)
                    .iter()
                    .position(|&s| s == index)
                    .map(|at| {
                        code.encode(write, &value)
                            .map(|mut f| Some(f.swap_remove(at)))
                    })
                    // Not placed here (never listed so): left alone.
                    .transpose()?,
                // Fewer than k holders, or fragments that never agree: cannot be rebuilt.
                Err(_) => None,
            });
        }
        Ok(out)
    }
}

fn no_such_server(index: usize, n: usize) -> Error {
    Error::Config(format!("no server {index} (there are {n})"))
}
