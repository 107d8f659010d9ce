//! Sessions: one namespace per client, kept across reconnections for a grace period.
//!
//! A session is created with a random id and a random 32-byte secret; the owner learns both
//! from its welcome ([`ResumeTicket`]). Resuming takes both: a ticket whose secret does not
//! match (compared in constant time) is treated exactly like a ticket for a session that is
//! gone, so the caller cannot tell a wrong guess from an expired session.
//!
//! The table holds at most `max_sessions` sessions: a session outlives its connections for
//! the grace period, so without a cap a client logging in and out in a loop would pile them
//! up. At the cap a new session takes the place of the one that has waited longest for its
//! client (its grace period cut short); when every session has a connection, the login is
//! refused.

use aifm_core::engine::{Engine, Namespace};
use aifm_core::sync::MutexExt;
use aifm_core::wire::{auth, ResumeTicket, SessionId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Entry {
    ns: Arc<Namespace>,
    /// What a resume must present besides the id.
    secret: [u8; 32],
    /// Connections using the session now.
    attached: usize,
    /// When the last connection left (`None` while attached).
    detached_at: Option<Instant>,
}

/// How a login's resume request went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resume {
    /// The login asked for a fresh session.
    NotAsked,
    /// The session was resumed.
    Resumed,
    /// No such session (never was, or reclaimed): a fresh one was made.
    Gone,
    /// The session exists but the secret was wrong: a fresh one was made.
    WrongSecret,
}

/// A connection's place in a session ([`Sessions::attach`]).
pub(crate) struct Attached {
    pub ticket: ResumeTicket,
    pub ns: Arc<Namespace>,
    pub resume: Resume,
    /// The detached session reclaimed (before its grace period ended) to make room.
    pub reclaimed: Option<(SessionId, Arc<Namespace>)>,
}

/// The session table.
#[derive(Default)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<SessionId, Entry>>,
}

/// A fresh, unguessable session id.
fn new_id() -> SessionId {
    SessionId(auth::random_bytes())
}

impl Sessions {
    /// Attaches a connection: to the session of `resume` when it is still held and the
    /// ticket's secret is the session's, else to a fresh session with a namespace of `quota`
    /// bytes. Returns the session's ticket, its namespace, how the resume went, and the
    /// session that was reclaimed to make room for the new one (drop it outside any lock).
    ///
    /// # Errors
    /// When `max` sessions exist and every one has a connection.
    pub fn attach(
        &self,
        engine: &Engine,
        resume: Option<&ResumeTicket>,
        quota: u64,
        max: usize,
    ) -> Result<Attached, &'static str> {
        let mut map = self.map.locked();
        let mut outcome = Resume::NotAsked;
        if let Some(t) = resume {
            outcome = Resume::Gone;
            if let Some(e) = map.get_mut(&t.session) {
                if auth::same_secret(&e.secret, &t.secret) {
                    e.attached += 1;
                    e.detached_at = None;
                    return Ok(Attached {
                        ticket: *t,
                        ns: e.ns.clone(),
                        resume: Resume::Resumed,
                        reclaimed: None,
                    });
                }
                outcome = Resume::WrongSecret;
            }
        }
        let mut reclaimed = None;
        if map.len() >= max {
            // Make room: the session that has waited longest for its client.
            let oldest = map
                .iter()
                .filter_map(|(id, e)| e.detached_at.map(|t| (t, *id)))
                .min_by_key(|&(t, _)| t)
                .map(|(_, id)| id)
                .ok_or("the server is at its session limit")?;
            reclaimed = map.remove(&oldest).map(|e| (oldest, e.ns));
        }
        let mut id = new_id();
        while map.contains_key(&id) {
            id = new_id();
        }
        let ticket = ResumeTicket {
            session: id,
            secret: auth::random_bytes(),
        };
        let ns = Arc::new(engine.namespace(quota));
        map.insert(
            id,
            Entry {
                ns: ns.clone(),
                secret: ticket.secret,
                attached: 1,
                detached_at: None,
            },
        );
        Ok(Attached {
            ticket,
            ns,
            resume: outcome,
            reclaimed,
        })
    }

    /// A connection of session `id` went away.
    pub fn detach(&self, id: SessionId) {
        if let Some(e) = self.map.locked().get_mut(&id) {
            e.attached = e.attached.saturating_sub(1);
            if e.attached == 0 {
                e.detached_at = Some(Instant::now());
            }
        }
    }

    /// Removes sessions detached for longer than `grace` and hands their namespaces back
    /// (dropping one clears its structures).
    pub fn reap(&self, grace: Duration) -> Vec<(SessionId, Arc<Namespace>)> {
        let mut map = self.map.locked();
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
        let map = self.map.locked();
        let structures = map.values().map(|e| e.ns.structures() as u64).sum();
        let bytes = map.values().map(|e| e.ns.stored_bytes()).sum();
        (map.len() as u64, structures, bytes)
    }
}
