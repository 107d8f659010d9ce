//! Routing batches to the cluster's masters, replication acknowledgements, and failover.
//!
//! A batch is a list of [`Item`]s, each a few commands on one hash slot. [`Cluster::execute`]
//! groups the items by the master serving their slot (one snapshot of the slot map), sends
//! one pipeline to every master it needs before reading any reply, and reads the replies in
//! order. A *durable* batch ends each pipeline with `WAIT n timeout` on the same connection,
//! and its items count as done only when `n` replicas confirmed everything the connection
//! wrote (see the backend's module docs for why and for what `n` is).
//!
//! Items that failed in a way a failover or a resharding explains (`MOVED`, `ASK`,
//! `TRYAGAIN`, `CLUSTERDOWN`, `MASTERDOWN`, `LOADING`, `READONLY`, a refused or broken
//! connection, a read timeout, a `WAIT` that came back short) are sent again, after a fresh
//! slot map and a growing pause, until the configured deadline; then the batch fails with
//! [`Error::Disconnected`] or [`Error::Timeout`]. Any other error reply fails the batch at
//! once. Items must therefore be safe to send twice: the backend only builds items of
//! idempotent commands (`GET`, `SET`, `DEL`, `STRLEN`, `EXISTS`, key listing), and the
//! runtime never has two writes of one key in flight.

use super::topology::{Pools, Topology};
use crate::error::{Error, Result};
use crate::sync::{MutexExt, RwLockExt};
use ::redis::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Commands on one slot, packed, and how many replies they produce.
#[derive(Debug)]
pub(crate) struct Item {
    pub slot: u16,
    pub packed: Vec<u8>,
    pub replies: usize,
}

impl Item {
    /// An item of the given commands (all on `slot`).
    pub fn new(slot: u16, cmds: &[::redis::Cmd]) -> Self {
        let mut packed = Vec::new();
        for c in cmds {
            c.write_packed_command(&mut packed);
        }
        Item {
            slot,
            packed,
            replies: cmds.len(),
        }
    }
}

/// How durable writes must be and how long to keep trying.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    /// Replica acknowledgements a durable batch waits for (capped by the replicas a master has).
    pub acks: usize,
    /// The timeout of one `WAIT`.
    pub ack_timeout: Duration,
    /// How long a batch keeps retrying through a failover.
    pub deadline: Duration,
}

/// Counters (see `RedisStats`).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub retries: AtomicU64,
    pub refreshes: AtomicU64,
    pub unreplicated: AtomicU64,
    pub short_acks: AtomicU64,
}

/// The cluster as one client sees it.
#[derive(Debug)]
pub(crate) struct Cluster {
    seeds: Vec<String>,
    topo: RwLock<(Arc<Topology>, Instant, u64)>,
    refresh_lock: Mutex<()>,
    pub pools: Arc<Pools>,
    pub policy: Policy,
    pub counters: Counters,
}

/// The slot map is refreshed at least this often, to notice replicas that came back.
const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// How a failed item should be retried.
enum Failure {
    /// Retry after a pause.
    Retry(Error),
    /// Give up: the server's answer.
    Fatal(Error),
}

fn classify(e: &::redis::ServerError) -> Failure {
    classify_code(e.code(), &e.to_string())
}

fn classify_code(code: &str, msg: &str) -> Failure {
    match code {
        "MOVED" | "ASK" | "TRYAGAIN" | "CLUSTERDOWN" | "MASTERDOWN" | "LOADING" | "READONLY" => {
            Failure::Retry(Error::Disconnected(format!("cluster: {msg}")))
        }
        "OOM" => Failure::Fatal(Error::ServerFull { needed: 0 }),
        _ => Failure::Fatal(Error::Remote(format!("redis: {msg}"))),
    }
}

/// The error a transport failure of node `addr` stands for.
fn transport(addr: &str, e: &::redis::RedisError) -> Error {
    if e.is_timeout() {
        Error::Timeout
    } else {
        Error::Disconnected(format!("redis node {addr}: {e}"))
    }
}

fn wait_cmd(n: usize, timeout: Duration) -> Vec<u8> {
    ::redis::cmd("WAIT")
        .arg(n)
        .arg(timeout.as_millis().max(1) as u64)
        .get_packed_command()
}

impl Cluster {
    /// A cluster reached through `seeds` (`host:port`), whose slot map is read at once.
    pub fn connect(seeds: Vec<String>, pools: Arc<Pools>, policy: Policy) -> Result<Self> {
        let c = Cluster {
            seeds,
            topo: RwLock::new((Arc::new(Topology::empty()), Instant::now(), 0)),
            refresh_lock: Mutex::new(()),
            pools,
            policy,
            counters: Counters::default(),
        };
        c.refresh(None)?;
        Ok(c)
    }

    /// The current slot map and its generation.
    pub fn topology(&self) -> (Arc<Topology>, u64) {
        let (t, at, generation) = {
            let g = self.topo.reading();
            (g.0.clone(), g.1, g.2)
        };
        if at.elapsed() > REFRESH_EVERY {
            if let Ok(_g) = self.refresh_lock.try_lock() {
                // Best effort: a failed periodic refresh keeps the old map.
                let _ = self.refresh_locked();
            }
        }
        (t, generation)
    }

    /// Reads the slot map again, unless someone did since generation `seen`.
    pub fn refresh(&self, seen: Option<u64>) -> Result<()> {
        let _g = self.refresh_lock.locked();
        if seen.is_some_and(|s| s != self.topo.reading().2) {
            return Ok(());
        }
        self.refresh_locked()
    }

    fn refresh_locked(&self) -> Result<()> {
        self.counters.refreshes.fetch_add(1, Ordering::Relaxed);
        let old = self.topo.reading().0.clone();
        let mut candidates: Vec<String> = old.addrs().map(str::to_string).collect();
        candidates.extend(self.seeds.iter().cloned());
        let mut seen = std::collections::HashSet::new();
        candidates.retain(|a| seen.insert(a.clone()));
        let mut last = Error::Disconnected("no cluster node given".into());
        for addr in &candidates {
            let host = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h);
            let reply = self.pools.take(addr).and_then(|mut c| {
                let v = ::redis::cmd("CLUSTER")
                    .arg("SLOTS")
                    .query::<Value>(&mut c)?;
                self.pools.put(addr, c);
                Ok(v)
            });
            match reply {
                Ok(v) => match Topology::parse(&v, host) {
                    Ok(mut t) if !t.masters.is_empty() => {
                        // `CLUSTER SLOTS` hides replicas that have not replicated a byte
                        // yet, so ask every master how many replicas are linked to it.
                        for m in &mut t.masters {
                            m.replicas = self.linked_replicas(&m.addr).unwrap_or(usize::MAX);
                        }
                        let mut w = self.topo.writing();
                        let generation = w.2 + 1;
                        *w = (Arc::new(t), Instant::now(), generation);
                        return Ok(());
                    }
                    Ok(_) => last = Error::Disconnected(format!("{addr}: no slot is served")),
                    Err(e) => last = e,
                },
                Err(e)
                    if e.kind()
                        == ::redis::ErrorKind::Server(::redis::ServerErrorKind::ResponseError) =>
                {
                    // "ERR This instance has cluster support disabled", for example.
                    last = Error::Config(format!("{addr} is not a Redis Cluster node: {e}"));
                }
                Err(e) => {
                    self.pools.forget(addr);
                    last = transport(addr, &e);
                }
            }
        }
        Err(last)
    }

    /// The number of replicas linked to master `addr` (from `ROLE`).
    fn linked_replicas(&self, addr: &str) -> Option<usize> {
        let mut c = self.pools.take(addr).ok()?;
        let role = ::redis::cmd("ROLE").query::<Value>(&mut c).ok()?;
        self.pools.put(addr, c);
        match role {
            Value::Array(r) => match r.get(2) {
                Some(Value::Array(replicas)) => Some(replicas.len()),
                _ => Some(0),
            },
            _ => None,
        }
    }

    /// Runs `items` (see the module docs); the replies of each item, in order.
    ///
    /// # Errors
    /// [`Error::Disconnected`] / [`Error::Timeout`] when the deadline passes,
    /// [`Error::ServerFull`] on `OOM`, [`Error::Remote`] for other error replies.
    pub fn execute(&self, items: &[Item], durable: bool) -> Result<Vec<Vec<Value>>> {
        self.execute_within(items, durable, self.policy.deadline)
    }

    /// [`Cluster::execute`] with another deadline (zero: one attempt).
    ///
    /// # Errors
    /// As [`Cluster::execute`].
    pub fn execute_within(
        &self,
        items: &[Item],
        durable: bool,
        deadline: Duration,
    ) -> Result<Vec<Vec<Value>>> {
        let mut out: Vec<Option<Vec<Value>>> = (0..items.len()).map(|_| None).collect();
        let mut pending: Vec<usize> = (0..items.len()).collect();
        let start = Instant::now();
        let mut pause = Duration::from_millis(2);
        let mut last = Error::Timeout;
        while !pending.is_empty() {
            let (topo, generation) = self.topology();
            let mut retry = Vec::new();
            let mut fatal = None;
            let mut by_master: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
            for i in pending.drain(..) {
                match topo.master_of(items[i].slot) {
                    Some(m) => by_master.entry(m).or_default().push(i),
                    None => {
                        last = Error::Disconnected(format!(
                            "hash slot {} is served by no master",
                            items[i].slot
                        ));
                        retry.push(i);
                    }
                }
            }
            // Send every pipeline before reading any reply: the masters work in parallel.
            let mut sent = Vec::new();
            for (m, idxs) in by_master {
                let master = &topo.masters[m];
                let need = if durable {
                    self.policy.acks.min(master.replicas)
                } else {
                    0
                };
                let mut buf = Vec::with_capacity(idxs.iter().map(|&i| items[i].packed.len()).sum());
                for &i in &idxs {
                    buf.extend_from_slice(&items[i].packed);
                }
                if need > 0 {
                    buf.extend_from_slice(&wait_cmd(need, self.policy.ack_timeout));
                } else if durable {
                    self.counters.unreplicated.fetch_add(1, Ordering::Relaxed);
                }
                let conn = self.pools.take(&master.addr).and_then(|mut c| {
                    c.send_packed_command(&buf)?;
                    Ok(c)
                });
                match conn {
                    Ok(c) => sent.push((master.addr.as_str(), c, idxs, need)),
                    Err(e) => {
                        self.pools.forget(&master.addr);
                        last = transport(&master.addr, &e);
                        retry.extend(idxs);
                    }
                }
            }
            for (addr, mut conn, idxs, need) in sent {
                let mut healthy = true;
                let mut done = Vec::new();
                'items: for (pos, &i) in idxs.iter().enumerate() {
                    let mut replies = Vec::with_capacity(items[i].replies);
                    let mut again = false;
                    for _ in 0..items[i].replies {
                        let failure = match conn.recv_response() {
                            Ok(Value::ServerError(e)) => classify(&e),
                            Ok(v) => {
                                replies.push(v);
                                continue;
                            }
                            Err(e) => match e.code() {
                                Some(code) => classify_code(code, &e.to_string()),
                                None => {
                                    healthy = false;
                                    last = transport(addr, &e);
                                    retry.extend_from_slice(&idxs[pos..]);
                                    break 'items;
                                }
                            },
                        };
                        match failure {
                            Failure::Retry(e) => {
                                last = e;
                                again = true;
                            }
                            Failure::Fatal(e) => fatal = Some(e),
                        }
                    }
                    if again {
                        retry.push(i);
                    } else {
                        done.push((i, replies));
                    }
                }
                let acked = healthy
                    && (need == 0
                        || self.await_acks(&mut conn, addr, need, start, deadline, &mut last));
                if !acked && need > 0 {
                    healthy = false;
                }
                if healthy {
                    self.pools.put(addr, conn);
                } else {
                    self.pools.forget(addr);
                }
                if acked || !durable {
                    for (i, r) in done {
                        out[i] = Some(r);
                    }
                } else {
                    retry.extend(done.into_iter().map(|(i, _)| i));
                }
            }
            if let Some(e) = fatal {
                return Err(e);
            }
            if retry.is_empty() {
                break;
            }
            if start.elapsed() >= deadline {
                return Err(last);
            }
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(250));
            // A failed refresh (every node unreachable for now) is retried next round.
            let _ = self.refresh(Some(generation));
            pending = retry;
        }
        Ok(out.into_iter().map(|r| r.unwrap_or_default()).collect())
    }

    /// Reads the reply of a pipeline's `WAIT` and, while it comes back short, asks the master
    /// how many replicas it still has and waits again, until the deadline. Returns whether
    /// the writes are acknowledged (false: the connection failed or the deadline passed).
    fn await_acks(
        &self,
        conn: &mut ::redis::Connection,
        addr: &str,
        mut need: usize,
        start: Instant,
        deadline: Duration,
        last: &mut Error,
    ) -> bool {
        let mut reply = conn.recv_response();
        loop {
            match reply {
                Ok(Value::Int(n)) if n as usize >= need => return true,
                Ok(Value::Int(_)) => {
                    self.counters.short_acks.fetch_add(1, Ordering::Relaxed);
                    *last = Error::Timeout;
                }
                Ok(other) => {
                    *last = Error::Remote(format!("redis node {addr}: WAIT answered {other:?}"));
                    return false;
                }
                Err(e) => {
                    *last = transport(addr, &e);
                    return false;
                }
            }
            if start.elapsed() >= deadline {
                return false;
            }
            // Replicas the master has now (a dead one drops its link at once on SIGKILL).
            match ::redis::cmd("ROLE").query::<Value>(conn) {
                Ok(Value::Array(role)) => {
                    let connected = match role.get(2) {
                        Some(Value::Array(replicas)) => replicas.len(),
                        _ => 0,
                    };
                    if role.first() != Some(&Value::BulkString(b"master".to_vec())) {
                        // Demoted: the writes may be lost; send them again to the new master.
                        *last = Error::Disconnected(format!("{addr} is no longer a master"));
                        return false;
                    }
                    if connected < need {
                        need = connected;
                    }
                    if need == 0 {
                        self.counters.unreplicated.fetch_add(1, Ordering::Relaxed);
                        return true;
                    }
                }
                Ok(other) => {
                    *last = Error::Remote(format!("redis node {addr}: ROLE answered {other:?}"));
                    return false;
                }
                Err(e) => {
                    *last = transport(addr, &e);
                    return false;
                }
            }
            reply = ::redis::cmd("WAIT")
                .arg(need)
                .arg(self.policy.ack_timeout.as_millis().max(1) as u64)
                .query::<Value>(conn);
        }
    }

    /// Every key matching `pattern` on every master (for cleanups; O(keys of the cluster)).
    ///
    /// # Errors
    /// As [`Cluster::execute`].
    pub fn scan(&self, pattern: &[u8], deadline: Duration) -> Result<Vec<Vec<u8>>> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            let (topo, generation) = self.topology();
            match self.scan_once(&topo, pattern) {
                Ok(keys) => return Ok(keys),
                Err(e) if matches!(e, Error::Disconnected(_) | Error::Timeout) => {
                    if start.elapsed() >= deadline {
                        return Err(e);
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(250));
                    let _ = self.refresh(Some(generation));
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn scan_once(&self, topo: &Topology, pattern: &[u8]) -> Result<Vec<Vec<u8>>> {
        if topo.slot_master.contains(&u16::MAX) {
            return Err(Error::Disconnected(
                "some hash slots are served by no master".into(),
            ));
        }
        let mut keys = Vec::new();
        for m in &topo.masters {
            let mut conn = self
                .pools
                .take(&m.addr)
                .map_err(|e| transport(&m.addr, &e))?;
            let mut cursor = 0u64;
            loop {
                let (next, batch): (u64, Vec<Vec<u8>>) = ::redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query(&mut conn)
                    .map_err(|e| match e.kind() {
                        ::redis::ErrorKind::Server(_) => Error::Remote(format!("redis: {e}")),
                        _ => transport(&m.addr, &e),
                    })?;
                keys.extend(batch);
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
            self.pools.put(&m.addr, conn);
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_replies_are_classified() {
        for code in [
            "MOVED",
            "ASK",
            "TRYAGAIN",
            "CLUSTERDOWN",
            "MASTERDOWN",
            "LOADING",
            "READONLY",
        ] {
            assert!(
                matches!(
                    classify_code(code, "x"),
                    Failure::Retry(Error::Disconnected(_))
                ),
                "{code}"
            );
        }
        assert!(matches!(
            classify_code("OOM", "x"),
            Failure::Fatal(Error::ServerFull { .. })
        ));
        assert!(matches!(
            classify_code("ERR", "x"),
            Failure::Fatal(Error::Remote(_))
        ));
        assert!(matches!(
            classify_code("WRONGTYPE", "x"),
            Failure::Fatal(Error::Remote(_))
        ));
    }

    #[test]
    fn wait_is_packed_with_at_least_a_millisecond() {
        let w = String::from_utf8(wait_cmd(1, Duration::from_micros(10))).unwrap();
        assert_eq!(w, "*3\r\n$4\r\nWAIT\r\n$1\r\n1\r\n$1\r\n1\r\n");
    }
}
