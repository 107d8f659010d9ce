//! From an address string to a backend: the one place that decides which flavour an address
//! names.
//!
//! * `host:port`: one memory server, [`tcp::TcpBackend`];
//! * `host:port,host:port,...`: several, [`replicated::ReplicatedBackend`] (replication
//!   factor `replicas`, default 2), optionally with the object store erasure-coded;
//! * `redis://host:port[,...]` (feature `redis`): a Redis Cluster.
//!
//! The runtime's builder and `AIFM_SERVER` come through [`connect_servers`], which also hands
//! back the several-server backend so the runtime can offer [`crate::Runtime::replace_server`].

#[cfg(feature = "redis")]
use super::redis;
use super::{replicated, tcp, Backend};
use crate::error::Result;

/// Connects to the memory server at `addr` (`host:port`) with [`tcp::TcpBuilder::from_env`]
/// settings (`AIFM_TOKEN_FILE`, `AIFM_TIMEOUT_MS`, `AIFM_SPIN_US`).
///
/// `addr` may also list several servers separated by commas (`host1:port,host2:port,...`):
/// the result is then a [`replicated::ReplicatedBackend`] over all of them with the default
/// replication factor (2); see [`connect_replicated`] to choose another.
///
/// With the `redis` feature, `redis://host:port[,host:port...]` connects to a Redis Cluster
/// (`redis::RedisClusterBackend`, settings from `AIFM_REDIS_*` variables); without it, such an address is a
/// [`crate::Error::Config`] error.
///
/// # Errors
/// [`crate::Error::Disconnected`] when a server cannot be reached,
/// [`crate::Error::AuthFailed`] for a wrong or missing token, [`crate::Error::Config`] for a
/// bad environment variable or an empty address list.
///
/// # Examples
///
/// ```
/// // Nothing listens on port 1: a typed error, no panic.
/// let e = aifm_core::backend::connect("127.0.0.1:1").err().unwrap();
/// assert!(e.is_disconnected());
/// let e = aifm_core::backend::connect("127.0.0.1:1, 127.0.0.1:2").err().unwrap();
/// assert!(e.is_disconnected());
/// ```
pub fn connect(addr: &str) -> Result<Box<dyn Backend>> {
    connect_replicated(addr, None)
}

/// Like [`connect`], with the replication factor of a several-server list chosen by
/// `replicas` (`None`: the default, 2; clamped to the number of servers). A single address
/// gives a plain [`tcp::TcpBackend`] whatever `replicas` says.
///
/// # Errors
/// As [`connect`]; every listed server must be reachable at the start.
///
/// # Examples
///
/// ```
/// let e = aifm_core::backend::connect_replicated("", Some(2)).err().unwrap();
/// assert!(matches!(e, aifm_core::Error::Config(_)));
/// ```
pub fn connect_replicated(addr: &str, replicas: Option<usize>) -> Result<Box<dyn Backend>> {
    Ok(connect_servers(addr, replicas, None)?.0)
}

/// Like [`connect_replicated`], with the object store erasure-coded as `data` data and
/// `parity` parity fragments per object (see
/// [`replicated::ReplicatedBackend::with_erasure`]); other structures keep `replicas` whole
/// copies (`None`: 2).
///
/// # Errors
/// As [`connect`]; [`crate::Error::Config`] when `addr` lists fewer than `data + parity`
/// servers or the code is invalid (checked before connecting).
///
/// # Examples
///
/// ```
/// let e = aifm_core::backend::connect_erasure("127.0.0.1:1,127.0.0.1:2", None, 2, 1).err().unwrap();
/// assert!(matches!(e, aifm_core::Error::Config(_)));
/// ```
pub fn connect_erasure(
    addr: &str,
    replicas: Option<usize>,
    data: usize,
    parity: usize,
) -> Result<Box<dyn Backend>> {
    Ok(connect_servers(addr, replicas, Some((data, parity)))?.0)
}

/// A connected backend, and the several-server backend inside it if there is one.
pub(crate) type Connected = (
    Box<dyn Backend>,
    Option<std::sync::Arc<replicated::ReplicatedBackend>>,
);

/// What [`connect_replicated`] and [`connect_erasure`] build, also returning the
/// [`replicated::ReplicatedBackend`] built for a several-server list (the runtime keeps it
/// for [`crate::Runtime::replace_server`]). A single address ignores `replicas` and
/// `erasure`.
pub(crate) fn connect_servers(
    addr: &str,
    replicas: Option<usize>,
    erasure: Option<(usize, usize)>,
) -> Result<Connected> {
    if addr.trim_start().starts_with("redis://") {
        #[cfg(feature = "redis")]
        return Ok((Box::new(redis::RedisClusterBackend::connect(addr)?), None));
        #[cfg(not(feature = "redis"))]
        return Err(crate::Error::Config(format!(
            "{addr:?} needs aifm built with the `redis` feature"
        )));
    }
    let addrs = split_addresses(addr)?;
    if let Some((data, parity)) = erasure {
        if addrs.len() < data.saturating_add(parity) || data == 0 || parity == 0 {
            return Err(crate::Error::Config(format!(
                "erasure coding {data}+{parity} needs at least {} servers (and 1 data, 1 parity fragment), {addr:?} lists {}",
                data.saturating_add(parity),
                addrs.len()
            )));
        }
    }
    if let [one] = addrs[..] {
        return Ok((Box::new(tcp::TcpBackend::connect(one)?), None));
    }
    let far = several(&addrs, replicas)?;
    let far = std::sync::Arc::new(match erasure {
        Some((data, parity)) => far.with_erasure(data, parity)?,
        None => far,
    });
    Ok((Box::new(far.clone()), Some(far)))
}

/// Reads an erasure code written `k+m` (as `AIFM_ERASURE` takes it): `(k, m)`.
///
/// # Errors
/// [`crate::Error::Config`] when `text` is not two positive numbers joined by `+`.
///
/// # Examples
///
/// ```
/// use aifm_core::backend::parse_erasure;
/// assert_eq!(parse_erasure("2+1").unwrap(), (2, 1));
/// assert!(parse_erasure("2").is_err());
/// assert!(parse_erasure("0+1").is_err());
/// ```
pub fn parse_erasure(text: &str) -> Result<(usize, usize)> {
    let bad = || crate::Error::Config(format!("{text:?} is not an erasure code like 2+1"));
    let (k, m) = text.split_once('+').ok_or_else(bad)?;
    let k: usize = k.trim().parse().map_err(|_| bad())?;
    let m: usize = m.trim().parse().map_err(|_| bad())?;
    if k == 0 || m == 0 {
        return Err(bad());
    }
    Ok((k, m))
}

fn split_addresses(addr: &str) -> Result<Vec<&str>> {
    let addrs: Vec<&str> = addr
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect();
    if addrs.is_empty() {
        return Err(crate::Error::Config(format!(
            "no server address in {addr:?}"
        )));
    }
    Ok(addrs)
}

fn several(addrs: &[&str], replicas: Option<usize>) -> Result<replicated::ReplicatedBackend> {
    let servers = addrs
        .iter()
        .map(|a| Ok(Box::new(tcp::TcpBackend::connect(a)?) as Box<dyn Backend>))
        .collect::<Result<Vec<_>>>()?;
    let far = replicated::ReplicatedBackend::new(servers)?;
    Ok(match replicas {
        Some(r) => far.with_replicas(r),
        None => far,
    })
}
