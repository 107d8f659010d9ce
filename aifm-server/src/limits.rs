//! The table of open connections and the admission rule that keeps idle or slow clients from
//! locking real ones out.
//!
//! Every accepted connection gets a [`Slot`] before its thread starts. A slot records the
//! peer's address and when the connection last *completed* something (its accept, its login,
//! a batch of requests) — not when its last byte arrived, so a client that trickles one byte
//! of a frame now and then looks exactly as stale as one that sends nothing.
//!
//! Admission ([`ConnTable::admit`]): a connection is let in while its address holds fewer
//! than `max_per_ip` connections and the server fewer than `max_connections`. At either
//! limit the server looks, among the connections of that address (per-address limit) or all
//! of them (global limit), for the one that has gone longest without completing anything;
//! if it has been quiet for at least `evict_after` and is not in the middle of answering, it
//! is asked to close (it sends a fatal frame and goes within one `poll(2)` nap, 100 ms) and
//! the newcomer takes its place. Otherwise the newcomer is refused. A well-behaved client
//! loses nothing by being evicted: its session stays for the grace period and the TCP
//! backend resumes it on its next call.
//!
//! Evicted connections still occupy their threads until they notice, so the table may hold
//! up to [`EVICTION_SLACK`] more connections than `max_connections` for that moment; past
//! that, newcomers are refused.

use aifm_core::sync::MutexExt;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Connections asked to close but not yet gone that may sit on top of `max_connections`.
pub(crate) const EVICTION_SLACK: usize = 64;

/// One open connection, as the admission rule sees it.
#[derive(Debug)]
pub(crate) struct Slot {
    /// The connection's number (log lines).
    pub id: u64,
    ip: IpAddr,
    /// Milliseconds since the table's epoch when the connection last completed something.
    since_ms: AtomicU64,
    /// Answering requests or sending answers now (never evicted then).
    busy: AtomicBool,
    /// Asked to close to make room.
    evicted: AtomicBool,
}

impl Slot {
    /// Whether the connection was asked to close to make room.
    pub fn evicted(&self) -> bool {
        self.evicted.load(Ordering::Acquire)
    }

    /// Marks the connection as working (`true`) or waiting for its client (`false`).
    pub fn set_busy(&self, busy: bool) {
        self.busy.store(busy, Ordering::Release);
    }
}

/// Connection limits (see the module docs).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnLimits {
    pub max_connections: usize,
    pub max_per_ip: usize,
    pub evict_after: Duration,
}

/// The open connections.
#[derive(Debug)]
pub(crate) struct ConnTable {
    epoch: Instant,
    slots: Mutex<HashMap<u64, Arc<Slot>>>,
    limits: ConnLimits,
}

impl ConnTable {
    pub fn new(limits: ConnLimits) -> Self {
        ConnTable {
            epoch: Instant::now(),
            slots: Mutex::new(HashMap::new()),
            limits,
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Records that `slot`'s connection completed something just now.
    pub fn touch(&self, slot: &Slot) {
        slot.since_ms.store(self.now_ms(), Ordering::Release);
    }

    /// Lets connection `id` from `ip` in (making room by evicting a stale connection if
    /// needed), or says why not.
    pub fn admit(&self, id: u64, ip: IpAddr) -> Result<Arc<Slot>, &'static str> {
        let now = self.now_ms();
        let mut slots = self.slots.locked();
        let live = |s: &&Arc<Slot>| !s.evicted();
        let total = slots.values().filter(live).count();
        let from_ip = slots.values().filter(live).filter(|s| s.ip == ip).count();
        let scope = if from_ip >= self.limits.max_per_ip {
            Some(Some(ip))
        } else if total >= self.limits.max_connections {
            Some(None)
        } else {
            None
        };
        if let Some(scope) = scope {
            if slots.len() >= self.limits.max_connections + EVICTION_SLACK {
                return Err("the server is at its connection limit");
            }
            let stale_ms = self.limits.evict_after.as_millis() as u64;
            let victim = slots
                .values()
                .filter(live)
                .filter(|s| scope.is_none_or(|ip| s.ip == ip))
                .filter(|s| !s.busy.load(Ordering::Acquire))
                .map(|s| (s.since_ms.load(Ordering::Acquire), s))
                .filter(|&(since, _)| now.saturating_sub(since) >= stale_ms)
                .min_by_key(|&(since, _)| since);
            match victim {
                Some((since, s)) => {
                    s.evicted.store(true, Ordering::Release);
                    tracing::info!(
                        conn = s.id,
                        quiet_ms = now.saturating_sub(since),
                        "closing the stalest connection to make room"
                    );
                }
                None if scope.is_some() => {
                    return Err("this address is at its connection limit");
                }
                None => return Err("the server is at its connection limit"),
            }
        }
        let slot = Arc::new(Slot {
            id,
            ip,
            since_ms: AtomicU64::new(now),
            busy: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
        });
        slots.insert(id, slot.clone());
        Ok(slot)
    }

    /// Connection `id` is gone.
    pub fn remove(&self, id: u64) {
        self.slots.locked().remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(max: usize, per_ip: usize, evict_after: Duration) -> ConnTable {
        ConnTable::new(ConnLimits {
            max_connections: max,
            max_per_ip: per_ip,
            evict_after,
        })
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn at_the_limit_the_stalest_idle_connection_makes_room() {
        let t = table(2, 2, Duration::ZERO);
        let first = t.admit(1, A).unwrap();
        let second = t.admit(2, A).unwrap();
        second.since_ms.store(0, Ordering::Release);
        first.since_ms.store(5, Ordering::Release);
        let third = t.admit(3, B).unwrap();
        assert!(second.evicted() && !first.evicted() && !third.evicted());
    }

    #[test]
    fn busy_or_fresh_connections_are_never_evicted() {
        let t = table(1, 1, Duration::from_secs(3600));
        let _fresh = t.admit(1, A).unwrap();
        assert!(t.admit(2, B).is_err()); // fresh: refused
        let t = table(1, 1, Duration::ZERO);
        let busy = t.admit(1, A).unwrap();
        busy.set_busy(true);
        assert!(t.admit(2, B).is_err());
        busy.set_busy(false);
        assert!(t.admit(2, B).is_ok());
        assert!(busy.evicted());
    }

    #[test]
    fn the_per_address_limit_evicts_only_that_address() {
        let t = table(10, 1, Duration::ZERO);
        let a = t.admit(1, A).unwrap();
        let b = t.admit(2, B).unwrap();
        a.since_ms.store(10, Ordering::Release);
        b.since_ms.store(0, Ordering::Release); // staler, but another address
        let a2 = t.admit(3, A).unwrap();
        assert!(a.evicted() && !b.evicted() && !a2.evicted());
        a2.set_busy(true);
        assert_eq!(
            t.admit(4, A).unwrap_err(),
            "this address is at its connection limit"
        );
    }

    #[test]
    fn evicted_connections_still_count_up_to_the_slack() {
        let t = table(1, 1000, Duration::ZERO);
        let mut admitted = 1;
        let _first = t.admit(0, A).unwrap();
        for id in 1..10 * EVICTION_SLACK as u64 {
            if t.admit(id, A).is_ok() {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 1 + EVICTION_SLACK);
        t.remove(0);
        assert!(t.admit(100_000, A).is_ok());
    }
}
