//! The embedded far store: the engine in this process, reached by a function call.
//!
//! It runs exactly the code a memory server runs (one [`Namespace`] of the [`Engine`]), so a
//! program behaves the same with and without a network. An optional injected latency is paid
//! once per request (once per batch for the batched forms), by spinning for short delays and
//! sleeping for long ones, so tests and examples can feel like a network.

use super::{Backend, ComputeInFlight, InFlight, ManyInFlight, Placement, ReadInFlight};
use crate::engine::{Engine, Namespace};
use crate::error::Result;
use std::time::{Duration, Instant};

/// The in-process far store (the default backend).
///
/// # Examples
///
/// ```
/// use aifm_core::backend::{Backend, EmbeddedBackend, OBJECT_STORE};
/// use std::time::Duration;
/// let slow = EmbeddedBackend::new()
///     .with_latency(Duration::from_micros(5))
///     .with_capacity(1 << 20);
/// slow.write(OBJECT_STORE, b"k", &[1; 100]).unwrap();
/// assert!(slow.write(OBJECT_STORE, b"big", &vec![0; 2 << 20]).unwrap_err().is_server_full());
/// ```
#[derive(Debug)]
pub struct EmbeddedBackend {
    ns: Namespace,
    latency: Duration,
}

impl Default for EmbeddedBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl EmbeddedBackend {
    /// An unbounded in-process store with no injected latency.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::Backend;
    /// assert_eq!(aifm_core::backend::EmbeddedBackend::new().stored_bytes(), 0);
    /// ```
    pub fn new() -> Self {
        EmbeddedBackend {
            ns: Engine::global().namespace(u64::MAX),
            latency: Duration::ZERO,
        }
    }

    /// Adds `latency` to every request (once per batch).
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::{Backend, EmbeddedBackend, OBJECT_STORE};
    /// let b = EmbeddedBackend::new().with_latency(std::time::Duration::from_micros(10));
    /// let t = std::time::Instant::now();
    /// b.write(OBJECT_STORE, b"k", b"v").unwrap();
    /// assert!(t.elapsed() >= std::time::Duration::from_micros(10));
    /// ```
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Caps the bytes this store holds; writes beyond it fail with `ServerFull`.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::{Backend, EmbeddedBackend, OBJECT_STORE};
    /// let b = EmbeddedBackend::new().with_capacity(10);
    /// assert!(b.write(OBJECT_STORE, b"key", &[0; 100]).unwrap_err().is_server_full());
    /// ```
    pub fn with_capacity(mut self, bytes: u64) -> Self {
        self.ns = Engine::global().namespace(bytes);
        self
    }

    fn delay(&self) {
        if self.latency.is_zero() {
            return;
        }
        if self.latency >= Duration::from_micros(200) {
            std::thread::sleep(self.latency);
        } else {
            let end = Instant::now() + self.latency;
            while Instant::now() < end {
                std::hint::spin_loop();
            }
        }
    }
}

/// Every request is answered before its `begin_*` form returns ([`InFlight::done`]): the
/// engine is a function call away.
impl Backend for EmbeddedBackend {
    fn name(&self) -> String {
        "embedded".into()
    }
    fn begin_read(&self, ds: u32, key: &[u8]) -> ReadInFlight {
        self.delay();
        InFlight::done(self.ns.read(ds, key))
    }
    fn begin_write(&self, ds: u32, key: &[u8], value: &[u8]) -> InFlight<()> {
        self.delay();
        InFlight::done(self.ns.write(ds, key, value))
    }
    fn begin_remove(&self, ds: u32, key: &[u8]) -> InFlight<bool> {
        self.delay();
        InFlight::done(self.ns.remove(ds, key))
    }
    fn begin_compute(&self, ds: u32, opcode: u32, input: &[u8]) -> ComputeInFlight {
        self.delay();
        InFlight::done(self.ns.compute(ds, opcode, input))
    }
    /// Lends each stored object in place: the fetch copies it once, store to heap.
    fn read_many_with(
        &self,
        ds: u32,
        keys: &[&[u8]],
        sink: &mut dyn FnMut(usize, Option<&[u8]>),
    ) -> Result<()> {
        self.delay();
        for (i, k) in keys.iter().enumerate() {
            self.ns.read_with(ds, k, &mut |v| sink(i, v))?;
        }
        Ok(())
    }
    /// One structure lives in one namespace: the placement means nothing here.
    fn construct_placed(&self, ds: u32, device: &str, params: &[u8], _: Placement) -> Result<()> {
        self.delay();
        self.ns.construct(ds, device, params)
    }
    fn destruct(&self, ds: u32) -> Result<()> {
        self.delay();
        self.ns.destruct(ds)
    }
    fn stored_bytes(&self) -> u64 {
        self.ns.stored_bytes()
    }
    /// True unless a latency was injected (then it stands for a network).
    fn latency_free(&self) -> bool {
        self.latency.is_zero()
    }
    /// One latency for the whole batch.
    fn begin_read_many(&self, ds: u32, keys: &[&[u8]]) -> ManyInFlight {
        self.delay();
        InFlight::done(keys.iter().map(|k| self.ns.read(ds, k)).collect())
    }
    /// One latency for the whole batch.
    fn begin_write_many(&self, ds: u32, items: &[(&[u8], &[u8])]) -> InFlight<()> {
        self.delay();
        InFlight::done(items.iter().try_for_each(|(k, v)| self.ns.write(ds, k, v)))
    }
    /// One latency for the whole batch.
    fn begin_remove_many(&self, ds: u32, keys: &[&[u8]]) -> InFlight<()> {
        self.delay();
        InFlight::done(
            keys.iter()
                .try_for_each(|k| self.ns.remove(ds, k).map(drop)),
        )
    }
    fn keys(&self, ds: u32) -> Result<Vec<Vec<u8>>> {
        self.delay();
        self.ns.keys(ds, None, usize::MAX)
    }
}
