//! A backend wrapper that can be switched off, for testing how code behaves when far memory
//! goes away: while it is down, every request fails with [`Error::Disconnected`], as a dead
//! server's would. It also counts the requests that reach it.

use super::{Backend, ComputeInFlight, InFlight, ManyInFlight, Placement, ReadInFlight};
use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Wraps a backend so a test can take it down and bring it back.
///
/// Share it as an `Arc<Faulty<B>>` (an `Arc` of a backend is a backend): give the runtime a
/// clone and keep one to flip.
///
/// # Examples
///
/// ```
/// use aifm_core::backend::{faulty::Faulty, Backend, EmbeddedBackend, OBJECT_STORE};
/// let far = Faulty::new(EmbeddedBackend::new());
/// far.write(OBJECT_STORE, b"k", b"v").unwrap();
/// far.set_down(true);
/// assert!(far.read(OBJECT_STORE, b"k").unwrap_err().is_disconnected());
/// far.set_down(false);
/// assert_eq!(far.read(OBJECT_STORE, b"k").unwrap().unwrap(), b"v");
/// assert_eq!(far.requests(), 3);
/// ```
#[derive(Debug, Default)]
pub struct Faulty<B> {
    inner: B,
    down: AtomicBool,
    requests: AtomicU64,
}

impl<B: Backend> Faulty<B> {
    /// `inner`, up.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::{faulty::Faulty, EmbeddedBackend};
    /// let far = Faulty::new(EmbeddedBackend::new());
    /// assert!(!far.is_down());
    /// ```
    pub fn new(inner: B) -> Self {
        Faulty {
            inner,
            down: AtomicBool::new(false),
            requests: AtomicU64::new(0),
        }
    }

    /// Takes the backend down (`true`) or brings it back.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::{faulty::Faulty, EmbeddedBackend};
    /// let far = Faulty::new(EmbeddedBackend::new());
    /// far.set_down(true);
    /// assert!(far.is_down());
    /// ```
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Whether it is down.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::{faulty::Faulty, EmbeddedBackend};
    /// let far = Faulty::new(EmbeddedBackend::new());
    /// assert!(!far.is_down());
    /// ```
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    /// Requests received so far (failed ones included).
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::{faulty::Faulty, EmbeddedBackend};
    /// let far = Faulty::new(EmbeddedBackend::new());
    /// assert_eq!(far.requests(), 0);
    /// ```
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The wrapped backend.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::{faulty::Faulty, EmbeddedBackend};
    /// let far = Faulty::new(EmbeddedBackend::new());
    /// assert_eq!(aifm_core::Backend::stored_bytes(far.inner()), 0);
    /// ```
    pub fn inner(&self) -> &B {
        &self.inner
    }

    fn check(&self) -> Result<()> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if self.is_down() {
            Err(Error::Disconnected("taken down (Faulty backend)".into()))
        } else {
            Ok(())
        }
    }
}

impl<B: Backend> Faulty<B> {
    /// Starts a request on the inner backend, or hands back the switch's refusal.
    fn start<T>(&self, begin: impl FnOnce() -> InFlight<T>) -> InFlight<T> {
        match self.check() {
            Ok(()) => begin(),
            Err(e) => InFlight::done(Err(e)),
        }
    }
}

/// Every request counts and passes the switch, then goes to the inner backend as it came
/// (a batch stays one request); the blocking forms follow from these.
impl<B: Backend> Backend for Faulty<B> {
    fn name(&self) -> String {
        format!("faulty({})", self.inner.name())
    }
    fn begin_read(&self, ds: u32, key: &[u8]) -> ReadInFlight {
        self.start(|| self.inner.begin_read(ds, key))
    }
    fn begin_write(&self, ds: u32, key: &[u8], value: &[u8]) -> InFlight<()> {
        self.start(|| self.inner.begin_write(ds, key, value))
    }
    fn begin_remove(&self, ds: u32, key: &[u8]) -> InFlight<bool> {
        self.start(|| self.inner.begin_remove(ds, key))
    }
    fn begin_compute(&self, ds: u32, opcode: u32, input: &[u8]) -> ComputeInFlight {
        self.start(|| self.inner.begin_compute(ds, opcode, input))
    }
    fn construct_placed(&self, ds: u32, device: &str, params: &[u8], p: Placement) -> Result<()> {
        self.check()?;
        self.inner.construct_placed(ds, device, params, p)
    }
    fn destruct(&self, ds: u32) -> Result<()> {
        self.check()?;
        self.inner.destruct(ds)
    }
    fn stored_bytes(&self) -> u64 {
        self.inner.stored_bytes()
    }
    fn begin_read_many(&self, ds: u32, keys: &[&[u8]]) -> ManyInFlight {
        self.start(|| self.inner.begin_read_many(ds, keys))
    }
    fn begin_write_many(&self, ds: u32, items: &[(&[u8], &[u8])]) -> InFlight<()> {
        self.start(|| self.inner.begin_write_many(ds, items))
    }
    fn begin_remove_many(&self, ds: u32, keys: &[&[u8]]) -> InFlight<()> {
        self.start(|| self.inner.begin_remove_many(ds, keys))
    }
    fn begin_compute_sharded(
        &self,
        ds: u32,
        opcode: u32,
        keys: &[&[u8]],
        input: &[u8],
    ) -> InFlight<Vec<Vec<u8>>> {
        self.start(|| self.inner.begin_compute_sharded(ds, opcode, keys, input))
    }
    fn keys(&self, ds: u32) -> Result<Vec<Vec<u8>>> {
        self.check()?;
        self.inner.keys(ds)
    }
    fn latency_free(&self) -> bool {
        self.inner.latency_free()
    }
    fn replication(&self) -> Option<super::ReplicatedStats> {
        self.inner.replication()
    }
}

/// A test fixture: `n` embedded stores, each behind its own switchable [`Faulty`], ready to
/// hand to a backend that spans servers, with direct views of each store.
#[cfg(test)]
pub(crate) struct TestServers {
    /// The servers as boxed backends, in order.
    pub servers: Vec<Box<dyn Backend>>,
    /// Switches (and request counters) of the servers.
    pub faults: Vec<std::sync::Arc<Faulty<std::sync::Arc<super::EmbeddedBackend>>>>,
    /// The stores behind the switches.
    pub stores: Vec<std::sync::Arc<super::EmbeddedBackend>>,
}

#[cfg(test)]
impl TestServers {
    /// `n` fresh servers.
    pub fn new(n: usize) -> TestServers {
        use std::sync::Arc;
        let stores: Vec<Arc<super::EmbeddedBackend>> = (0..n)
            .map(|_| Arc::new(super::EmbeddedBackend::new()))
            .collect();
        let faults: Vec<_> = stores
            .iter()
            .map(|s| Arc::new(Faulty::new(s.clone())))
            .collect();
        let servers = faults
            .iter()
            .map(|f| Box::new(f.clone()) as Box<dyn Backend>)
            .collect();
        TestServers {
            servers,
            faults,
            stores,
        }
    }
}
