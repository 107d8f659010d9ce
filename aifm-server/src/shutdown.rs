//! The stop flag: one `AtomicBool` shared by the accept loop, every connection thread and
//! the housekeeper, which all poll it (the accept loop and connections wake at least every
//! 100 ms for that). Setting it is the whole of a graceful shutdown's trigger; what each
//! thread does on seeing it lives with that thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Asks a running server to stop; cloneable, usable from any thread (or a signal handler's
/// flag, see [`ShutdownHandle::flag`]).
///
/// # Examples
///
/// ```
/// let server = aifm_server::Server::bind(aifm_server::Config {
///     listen: "127.0.0.1:0".into(),
///     ..Default::default()
/// })
/// .unwrap();
/// let stop = server.shutdown_handle();
/// let t = std::thread::spawn(move || server.run().unwrap());
/// stop.shutdown();
/// t.join().unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct ShutdownHandle(pub(crate) Arc<AtomicBool>);

impl ShutdownHandle {
    /// Starts a graceful shutdown: no new connections; open ones are told and closed.
    ///
    /// # Examples
    ///
    /// ```
    /// let server = aifm_server::Server::bind(aifm_server::Config {
    ///     listen: "127.0.0.1:0".into(),
    ///     ..Default::default()
    /// })
    /// .unwrap();
    /// let stop = server.shutdown_handle();
    /// stop.shutdown();
    /// assert!(stop.is_shutdown());
    /// server.run().unwrap(); // returns at once
    /// ```
    pub fn shutdown(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether a shutdown was asked for.
    ///
    /// # Examples
    ///
    /// ```
    /// let server = aifm_server::Server::bind(aifm_server::Config {
    ///     listen: "127.0.0.1:0".into(),
    ///     ..Default::default()
    /// })
    /// .unwrap();
    /// assert!(!server.shutdown_handle().is_shutdown());
    /// ```
    pub fn is_shutdown(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// The flag itself, for `signal_hook::flag::register`.
    ///
    /// # Examples
    ///
    /// ```
    /// let server = aifm_server::Server::bind(aifm_server::Config {
    ///     listen: "127.0.0.1:0".into(),
    ///     ..Default::default()
    /// })
    /// .unwrap();
    /// let flag = server.shutdown_handle().flag();
    /// // e.g. signal_hook::flag::register(SIGTERM, flag.clone())
    /// flag.store(true, std::sync::atomic::Ordering::SeqCst);
    /// assert!(server.shutdown_handle().is_shutdown());
    /// ```
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }
}
