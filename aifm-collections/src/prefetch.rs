//! Access-pattern detection: the hook the collections call as they move between chunks.
//!
//! A [`StrideDetector`] watches the sequence of chunk indices a structure touches. When the
//! same stride repeats [`CONFIRM`] times in a row it reports a window of chunks to fetch ahead
//! (starting small and widening by one chunk per further hit, up to a cap), and any change of
//! stride resets it: the original's array prefetcher, with chunks in place of elements.
//!
//! The detector is lock-free (relaxed atomics: a lost update only delays detection) and
//! costs one load on the hot path, so a `&RemVec` shared between threads can feed it.
//!
//! What a structure does with a window is its own business; the collections hand the chunks in
//! it to the runtime's prefetch helpers (`Runtime::prefetch`, one batched request, nontemporal
//! so that a wrong guess is evicted first and nothing is heated by a guess).

use std::ops::Range;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};

/// Consecutive equal strides before prefetching starts.
///
/// ```
/// assert_eq!(aifm_collections::prefetch::CONFIRM, 8);
/// ```
pub const CONFIRM: u32 = 8;

/// Largest window, in chunks.
///
/// ```
/// assert_eq!(aifm_collections::prefetch::MAX_WINDOW, 32);
/// ```
pub const MAX_WINDOW: u64 = 32;

/// Detects a constant stride in a sequence of chunk indices.
///
/// # Examples
///
/// ```
/// use aifm_collections::prefetch::StrideDetector;
/// let d = StrideDetector::new();
/// let mut windows = Vec::new();
/// for c in 0..20 {
///     if let Some(w) = d.observe(c) {
///         windows.push(w);
///     }
/// }
/// assert_eq!(windows.first(), Some(&(10..11)));  // after 8 equal strides: one chunk ahead
/// assert!(d.observe(3).is_none());                // a jump resets it
/// ```
#[derive(Debug)]
pub struct StrideDetector {
    last: AtomicU64,
    stride: AtomicI64,
    run: AtomicU32,
    /// First chunk not yet handed out in a window (so windows do not overlap).
    ahead: AtomicU64,
}

impl Default for StrideDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl StrideDetector {
    /// A detector that has seen nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(aifm_collections::prefetch::StrideDetector::new().last(), u64::MAX);
    /// ```
    pub const fn new() -> Self {
        StrideDetector {
            last: AtomicU64::new(u64::MAX),
            stride: AtomicI64::new(0),
            run: AtomicU32::new(0),
            ahead: AtomicU64::new(0),
        }
    }

    /// The last chunk observed (`u64::MAX` before the first).
    ///
    /// # Examples
    ///
    /// ```
    /// let d = aifm_collections::prefetch::StrideDetector::new();
    /// d.observe(4);
    /// assert_eq!(d.last(), 4);
    /// ```
    #[inline]
    pub fn last(&self) -> u64 {
        self.last.load(Ordering::Relaxed)
    }

    /// Records a touch of chunk `chunk`; returns the chunks to fetch ahead, if any. Only
    /// forward strides of +1 (scans) and other positive strides of whole chunks are acted on.
    ///
    /// # Examples
    ///
    /// ```
    /// let d = aifm_collections::prefetch::StrideDetector::new();
    /// assert!((0..9).all(|c| d.observe(c * 3).is_none()));
    /// assert_eq!(d.observe(27), Some(30..31));   // stride 3: every third chunk
    /// ```
    pub fn observe(&self, chunk: u64) -> Option<Range<u64>> {
        let last = self.last.swap(chunk, Ordering::Relaxed);
        if last == u64::MAX {
            return None;
        }
        let stride = chunk.wrapping_sub(last) as i64;
        if stride <= 0 || self.stride.swap(stride, Ordering::Relaxed) != stride {
            self.run.store(0, Ordering::Relaxed);
            self.ahead.store(0, Ordering::Relaxed);
            return None;
        }
        let run = self.run.fetch_add(1, Ordering::Relaxed) + 1;
        if run < CONFIRM {
            return None;
        }
        let stride = stride as u64;
        let window = (1 + (run - CONFIRM) as u64).min(MAX_WINDOW);
        let want_end = chunk + stride * (window + 1);
        let from = self.ahead.load(Ordering::Relaxed).max(chunk + stride);
        if from >= want_end {
            return None;
        }
        self.ahead.store(want_end, Ordering::Relaxed);
        if stride == 1 {
            Some(from..want_end)
        } else {
            // Only the chunk the pattern lands on next is worth fetching.
            let next = chunk + stride;
            (next >= from).then_some(next..next + 1)
        }
    }

    /// Forgets the pattern (after the structure changed shape, say).
    ///
    /// # Examples
    ///
    /// ```
    /// let d = aifm_collections::prefetch::StrideDetector::new();
    /// d.observe(1);
    /// d.reset();
    /// assert_eq!(d.last(), u64::MAX);
    /// ```
    pub fn reset(&self) {
        self.last.store(u64::MAX, Ordering::Relaxed);
        self.run.store(0, Ordering::Relaxed);
        self.stride.store(0, Ordering::Relaxed);
        self.ahead.store(0, Ordering::Relaxed);
    }
}

impl Clone for StrideDetector {
    fn clone(&self) -> Self {
        StrideDetector::new()
    }
}
