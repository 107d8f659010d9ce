//! Request and error counters, and the statistics log line.

use aifm_core::wire::{Op, RequestCounts, ServerStats};
use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters (relaxed atomics).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    read: AtomicU64,
    write: AtomicU64,
    remove: AtomicU64,
    read_many: AtomicU64,
    write_many: AtomicU64,
    remove_many: AtomicU64,
    construct: AtomicU64,
    destruct: AtomicU64,
    compute: AtomicU64,
    other: AtomicU64,
    pub errors: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub auth_failures: AtomicU64,
    pub reclaimed: AtomicU64,
}

impl Counters {
    /// Counts one request of `op`'s kind.
    pub fn count(&self, op: &Op<'_>) {
        let c = match op {
            Op::Read { .. } => &self.read,
            Op::Write { .. } => &self.write,
            Op::Remove { .. } => &self.remove,
            Op::ReadMany { .. } => &self.read_many,
            Op::WriteMany { .. } => &self.write_many,
            Op::RemoveMany { .. } => &self.remove_many,
            Op::Construct { .. } => &self.construct,
            Op::Destruct { .. } => &self.destruct,
            Op::Compute { .. } => &self.compute,
            Op::Ping | Op::StoredBytes | Op::Stats | Op::Keys { .. } => &self.other,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn requests(&self) -> RequestCounts {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RequestCounts {
            read: l(&self.read),
            write: l(&self.write),
            remove: l(&self.remove),
            read_many: l(&self.read_many),
            write_many: l(&self.write_many),
            remove_many: l(&self.remove_many),
            construct: l(&self.construct),
            destruct: l(&self.destruct),
            compute: l(&self.compute),
            other: l(&self.other),
        }
    }
}

/// The one-line summary logged periodically and at exit.
pub(crate) fn line(s: &ServerStats) -> String {
    let r = &s.requests;
    format!(
        "stats: connections={} sessions={} structures={} stored={}B/{}B requests={} \
         (read={} write={} remove={} read_many={} write_many={} remove_many={} construct={} \
         destruct={} compute={} other={}) errors={} protocol_errors={} auth_failures={} \
         reclaimed={}",
        s.connections,
        s.sessions,
        s.structures,
        s.stored_bytes,
        s.capacity_bytes,
        r.total(),
        r.read,
        r.write,
        r.remove,
        r.read_many,
        r.write_many,
        r.remove_many,
        r.construct,
        r.destruct,
        r.compute,
        r.other,
        s.errors,
        s.protocol_errors,
        s.auth_failures,
        s.reclaimed_sessions
    )
}
