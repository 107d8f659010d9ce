//! The cluster's slot map and the connections to its nodes.
//!
//! [`Topology`] is one snapshot of `CLUSTER SLOTS`: for each of the 16 384 hash slots, the
//! master serving it and how many replicas that master has. It is replaced (never edited) on
//! refresh, so a batch routes against one consistent snapshot. [`Pools`] keeps idle
//! connections per node address; a connection that saw an I/O error or a timeout is dropped,
//! never returned, because its reply stream may be out of step.

use super::keys::SLOTS;
use crate::error::{Error, Result};
use crate::sync::MutexExt;
use ::redis::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One master of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Master {
    /// `host:port`.
    pub addr: String,
    /// Replicas linked to it (from `ROLE` at the last refresh; `usize::MAX`: unknown).
    pub replicas: usize,
    /// Addresses of those replicas (candidates for a later refresh).
    pub replica_addrs: Vec<String>,
}

/// A snapshot of the slot map.
#[derive(Debug)]
pub(crate) struct Topology {
    /// Masters, indexed by `slot_master`.
    pub masters: Vec<Master>,
    /// For every slot, its master's index, or `u16::MAX` when no master serves it.
    pub slot_master: Box<[u16]>,
}

impl Topology {
    /// An empty map (every slot unserved).
    pub fn empty() -> Self {
        Topology {
            masters: Vec::new(),
            slot_master: vec![u16::MAX; SLOTS].into_boxed_slice(),
        }
    }

    /// The master serving `slot`, if any.
    pub fn master_of(&self, slot: u16) -> Option<usize> {
        match self.slot_master[slot as usize] {
            u16::MAX => None,
            i => Some(i as usize),
        }
    }

    /// Every address this snapshot knows (masters first).
    pub fn addrs(&self) -> impl Iterator<Item = &str> {
        self.masters.iter().map(|m| m.addr.as_str()).chain(
            self.masters
                .iter()
                .flat_map(|m| m.replica_addrs.iter().map(String::as_str)),
        )
    }

    /// Parses a `CLUSTER SLOTS` reply; `answering` is the host of the node that sent it (used
    /// when the reply leaves a host empty).
    pub fn parse(reply: &Value, answering: &str) -> Result<Self> {
        let bad = || Error::Remote(format!("unexpected CLUSTER SLOTS reply: {reply:?}"));
        let Value::Array(ranges) = reply else {
            return Err(bad());
        };
        let mut t = Topology::empty();
        let mut index: HashMap<String, usize> = HashMap::new();
        for range in ranges {
            let Value::Array(items) = range else {
                return Err(bad());
            };
            let (Some(Value::Int(start)), Some(Value::Int(end)), Some(master)) =
                (items.first(), items.get(1), items.get(2))
            else {
                return Err(bad());
            };
            let addr = node_addr(master, answering).ok_or_else(bad)?;
            let replica_addrs: Vec<String> = items[3..]
                .iter()
                .filter_map(|n| node_addr(n, answering))
                .collect();
            let i = *index.entry(addr.clone()).or_insert_with(|| {
                t.masters.push(Master {
                    addr,
                    replicas: replica_addrs.len(),
                    replica_addrs,
                });
                t.masters.len() - 1
            });
            let (start, end) = (*start, *end);
            if !(0..SLOTS as i64).contains(&start) || !(start..SLOTS as i64).contains(&end) {
                return Err(bad());
            }
            for s in start..=end {
                t.slot_master[s as usize] = i as u16;
            }
        }
        Ok(t)
    }
}

/// `host:port` of one node entry of `CLUSTER SLOTS` (`[host, port, id, ...]`).
fn node_addr(node: &Value, answering: &str) -> Option<String> {
    let Value::Array(n) = node else { return None };
    let host = match n.first()? {
        Value::BulkString(h) if !h.is_empty() => String::from_utf8(h.clone()).ok()?,
        Value::SimpleString(h) if !h.is_empty() => h.clone(),
        Value::BulkString(_) | Value::SimpleString(_) | Value::Nil => answering.to_string(),
        _ => return None,
    };
    if host == "?" {
        return None;
    }
    let Value::Int(port) = n.get(1)? else {
        return None;
    };
    Some(format!("{host}:{port}"))
}

/// Timeouts of node connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub connect: Duration,
    pub io: Duration,
}

/// Idle connections per node address.
pub(crate) struct Pools {
    idle: Mutex<HashMap<String, Vec<::redis::Connection>>>,
    timeouts: Timeouts,
}

impl std::fmt::Debug for Pools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle: usize = self.idle.locked().values().map(Vec::len).sum();
        f.debug_struct("Pools")
            .field("idle", &idle)
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

/// Idle connections kept per node (more are opened under load and closed on return).
const MAX_IDLE: usize = 32;

impl Pools {
    pub fn new(timeouts: Timeouts) -> Arc<Self> {
        Arc::new(Pools {
            idle: Mutex::new(HashMap::new()),
            timeouts,
        })
    }

    /// An idle connection to `addr`, or a new one.
    pub fn take(
        &self,
        addr: &str,
    ) -> std::result::Result<::redis::Connection, ::redis::RedisError> {
        if let Some(c) = self.idle.locked().get_mut(addr).and_then(Vec::pop) {
            return Ok(c);
        }
        let client = ::redis::Client::open(format!("redis://{addr}/"))?;
        let c = client.get_connection_with_timeout(self.timeouts.connect)?;
        c.set_read_timeout(Some(self.timeouts.io))?;
        c.set_write_timeout(Some(self.timeouts.io))?;
        Ok(c)
    }

    /// Returns a healthy connection (one whose every reply was read).
    pub fn put(&self, addr: &str, c: ::redis::Connection) {
        let mut idle = self.idle.locked();
        let list = idle.entry(addr.to_string()).or_default();
        if list.len() < MAX_IDLE {
            list.push(c);
        }
    }

    /// Drops every idle connection to `addr` (after that node failed).
    pub fn forget(&self, addr: &str) {
        self.idle.locked().remove(addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
            Value::BulkString(b"id".to_vec()),
        ])
    }

    #[test]
    fn parses_cluster_slots() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(8000),
                node("10.0.0.1", 7000),
                node("", 7003),
            ]),
            Value::Array(vec![
                Value::Int(8001),
                Value::Int(16383),
                node("10.0.0.2", 7001),
            ]),
        ]);
        let t = Topology::parse(&reply, "h").unwrap();
        assert_eq!(t.masters.len(), 2);
        assert_eq!(t.masters[0].replica_addrs, vec!["h:7003".to_string()]);
        assert_eq!(t.masters[1].replicas, 0);
        assert_eq!(t.master_of(8000), Some(0));
        assert_eq!(t.master_of(8001), Some(1));
        assert_eq!(t.addrs().count(), 3);
    }

    #[test]
    fn rejects_garbage() {
        assert!(Topology::parse(&Value::Int(3), "h").is_err());
        let reply = Value::Array(vec![Value::Array(vec![
            Value::Int(5),
            Value::Int(99_999),
            node("a", 1),
        ])]);
        assert!(Topology::parse(&reply, "h").is_err());
        assert_eq!(Topology::empty().master_of(3), None);
    }
}
