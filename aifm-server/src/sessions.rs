//! Sessions: one namespace per client, kept across reconnections for a grace period.

use aifm_core::engine::{Engine, Namespace};
use aifm_core::wire::SessionId;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Entry {
    ns: Arc<Namespace>,
    /// Connections using the session now.
    attached: usize,
    /// When the last connection left (`None` while attached).
    detached_at: Option<Instant>,
}

/// The session table.
#[derive(Default)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<SessionId, Entry>>,
}

/// `N` random bytes from the operating system.
pub(crate) fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    if getrandom::getrandom(&mut out).is_err() {
        // No OS randomness (never on Linux): fall back to std's randomly keyed hasher.
        let s = RandomState::new();
        let t = Instant::now();
        for (i, chunk) in out.chunks_mut(8).enumerate() {
            let word = s.hash_one((t, i)).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
    out
}

/// A fresh, unguessable session id.
fn new_id() -> SessionId {
    SessionId(random())
}

impl Sessions {
    /// Attaches a connection: to session `resume` when it is still held, else to a fresh
    /// session with a namespace of `quota` bytes. Returns the session, its namespace and
    /// whether it was resumed.
    pub fn attach(
        &self,
        engine: &Engine,
        resume: Option<SessionId>,
        quota: u64,
    ) -> (SessionId, Arc<Namespace>, bool) {
        let mut map = self.map.lock().unwrap();
        if let Some(id) = resume {
            if let Some(e) = map.get_mut(&id) {
                e.attached += 1;
                e.detached_at = None;
                return (id, e.ns.clone(), true);
            }
        }
        let mut id = new_id();
        while map.contains_key(&id) {
            id = new_id();
        }
        let ns = Arc::new(engine.namespace(quota));
        map.insert(
            id,
            Entry {
                ns: ns.clone(),
                attached: 1,
                detached_at: None,
            },
        );
        (id, ns, false)
    }

    /// A connection of session `id` went away.
    pub fn detach(&self, id: SessionId) {
        if let Some(e) = self.map.lock().unwrap().get_mut(&id) {
            e.attached = e.attached.saturating_sub(1);
            if e.attached == 0 {
                e.detached_at = Some(Instant::now());
            }
        }
    }

    /// Removes sessions detached for longer than `grace` and hands their namespaces back
    /// (dropping one clears its structures).
    pub fn reap(&self, grace: Duration) -> Vec<(SessionId, Arc<Namespace>)> {
        let mut map = self.map.lock().unwrap();
        let expired: Vec<SessionId> = map
            .iter()
            .filter(|(_, e)| e.detached_at.is_some_and(|t| t.elapsed() >= grace))
            .map(|(id, _)| *id)
            .collect();
        expired
            .into_iter()
            .filter_map(|id| map.remove(&id).map(|e| (id, e.ns)))
            .collect()
    }

    /// Sessions, structures and stored bytes over all sessions.
    pub fn totals(&self) -> (u64, u64, u64) {
        let map = self.map.lock().unwrap();
        let structures = map.values().map(|e| e.ns.structures() as u64).sum();
        let bytes = map.values().map(|e| e.ns.stored_bytes()).sum();
        (map.len() as u64, structures, bytes)
    }
}
