//! Requests in flight: what the pipelined `begin_*` forms of [`Backend`] return.
//!
//! An [`InFlight`] is either already answered (a backend that has nothing to wait for, or an
//! error found before sending) or a closure that waits for the answer of a request already
//! sent. The caller starts several requests, then waits for each: that is how a batch over
//! several servers, or a prefetch, costs one round trip instead of one per request. Waiting is
//! the only way to consume it, so an answer is never silently dropped by a caller that meant
//! to read it (dropping an unwaited `InFlight` abandons the answer, not the request).

#[cfg(doc)]
use super::Backend;
use crate::error::Result;

/// A request started with [`Backend::begin_read`] or [`Backend::begin_compute`]: wait for
/// its answer.
///
/// # Examples
///
/// ```
/// use aifm_core::backend::InFlight;
/// let later: InFlight<u32> = InFlight::later(|| Ok(7));
/// assert_eq!(later.wait().unwrap(), 7);
/// assert!(InFlight::<u32>::done(Err(aifm_core::Error::Timeout)).wait().is_err());
/// ```
pub struct InFlight<T>(Pending<T>);

/// A read in flight ([`Backend::begin_read`]).
///
/// # Examples
///
/// ```
/// use aifm_core::backend::ReadInFlight;
/// let later = ReadInFlight::later(|| Ok(Some(b"v".to_vec())));
/// assert_eq!(later.wait().unwrap().as_deref(), Some(&b"v"[..]));
/// ```
pub type ReadInFlight = InFlight<Option<Vec<u8>>>;

/// A device operation in flight ([`Backend::begin_compute`]).
///
/// # Examples
///
/// ```
/// use aifm_core::backend::ComputeInFlight;
/// assert_eq!(ComputeInFlight::done(Ok(vec![1])).wait().unwrap(), [1]);
/// ```
pub type ComputeInFlight = InFlight<Vec<u8>>;

/// A batch read in flight ([`Backend::begin_read_many`]): one value per key, in order.
///
/// # Examples
///
/// ```
/// use aifm_core::backend::ManyInFlight;
/// assert_eq!(ManyInFlight::done(Ok(vec![None])).wait().unwrap(), [None]);
/// ```
pub type ManyInFlight = InFlight<Vec<Option<Vec<u8>>>>;

enum Pending<T> {
    Done(Result<T>),
    Later(Box<dyn FnOnce() -> Result<T> + Send>),
}

impl<T> InFlight<T> {
    /// A request that has already finished with `result`.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = aifm_core::backend::ReadInFlight::done(Ok(None));
    /// assert_eq!(r.wait().unwrap(), None);
    /// ```
    pub fn done(result: Result<T>) -> Self {
        InFlight(Pending::Done(result))
    }

    /// A request whose answer `wait` will get (one already sent, typically).
    ///
    /// # Examples
    ///
    /// ```
    /// let r = aifm_core::backend::ReadInFlight::later(|| Ok(None));
    /// assert_eq!(r.wait().unwrap(), None);
    /// ```
    pub fn later(wait: impl FnOnce() -> Result<T> + Send + 'static) -> Self {
        InFlight(Pending::Later(Box::new(wait)))
    }

    /// The answer passed through `f` once it is in: the form a backend uses to turn one
    /// request's answer into another's (a finished request stays finished, with no
    /// allocation).
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::InFlight;
    /// let n: InFlight<usize> = InFlight::later(|| Ok(vec![1u8, 2])).then(|v| Ok(v.len()));
    /// assert_eq!(n.wait().unwrap(), 2);
    /// ```
    pub fn then<U>(self, f: impl FnOnce(T) -> Result<U> + Send + 'static) -> InFlight<U>
    where
        T: 'static,
    {
        match self.0 {
            Pending::Done(r) => InFlight::done(r.and_then(f)),
            Pending::Later(wait) => InFlight::later(move || wait().and_then(f)),
        }
    }

    /// Every answer of `started`, in order, once all are in: requests started together and
    /// waited for as one (all already finished: finished at once, with no allocation). The
    /// first error wins, once every request has been waited for.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::InFlight;
    /// let both = InFlight::all(vec![InFlight::done(Ok(1)), InFlight::later(|| Ok(2))]);
    /// assert_eq!(both.wait().unwrap(), [1, 2]);
    /// ```
    pub fn all(started: Vec<InFlight<T>>) -> InFlight<Vec<T>>
    where
        T: Send + 'static,
    {
        let collect = |started: Vec<InFlight<T>>| {
            let mut first_err = None;
            let mut out = Vec::with_capacity(started.len());
            for r in started.into_iter().map(InFlight::wait) {
                match r {
                    Ok(v) => out.push(v),
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
            first_err.map_or(Ok(out), Err)
        };
        if started.iter().all(|s| matches!(s.0, Pending::Done(_))) {
            InFlight::done(collect(started))
        } else {
            InFlight::later(move || collect(started))
        }
    }

    /// Waits for the answer.
    ///
    /// # Errors
    /// As the blocking form of the request ([`Backend::read`], [`Backend::compute`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let r = aifm_core::backend::ReadInFlight::done(Ok(Some(vec![1])));
    /// assert_eq!(r.wait().unwrap(), Some(vec![1]));
    /// ```
    pub fn wait(self) -> Result<T> {
        match self.0 {
            Pending::Done(r) => r,
            Pending::Later(f) => f(),
        }
    }
}

impl<T> std::fmt::Debug for InFlight<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Pending::Done(_) => "InFlight(done)",
            Pending::Later(_) => "InFlight(in flight)",
        })
    }
}
