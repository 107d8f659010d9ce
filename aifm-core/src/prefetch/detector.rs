//! The per-structure stride detector with its lock-free trace ring.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};

const RING: usize = 256;
const NO_WINDOW: i64 = i64::MIN;

/// Watches the indices a structure's mutators touch and plans prefetches ahead of them.
///
/// # Examples
///
/// ```
/// use aifm_core::prefetch::Prefetcher;
/// let p = Prefetcher::new(4096).with_window_bytes(16 * 4096).with_threshold(4);
/// let mut planned = Vec::new();
/// for i in 0..10 {
///     planned.extend(p.record(i, 100));
/// }
/// // After 4 equal strides: a 16-object window ahead, then one more per touch.
/// assert_eq!(planned.first(), Some(&5));
/// assert_eq!(planned.last(), Some(&(9 + 16)));
/// // Never past the end:
/// assert!(p.record(10, 12).all(|i| i < 12));
/// ```
#[derive(Debug)]
pub struct Prefetcher {
    ring: Box<[AtomicU64]>,
    head: AtomicU64,
    /// Last index touched, plus one (0: none yet).
    last: AtomicU64,
    stride: AtomicI64,
    hits: AtomicU32,
    /// Next index to plan (`NO_WINDOW`: none yet; may be -1 or `len` once the end is reached).
    frontier: AtomicI64,
    enabled: AtomicBool,
    /// Objects planned ahead (see [`Prefetcher::set_window`]).
    window: AtomicU64,
    object_bytes: usize,
    threshold: u32,
}

impl Prefetcher {
    /// A detector for objects of `object_bytes` each, with a 1 MiB window and threshold 8.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = aifm_core::prefetch::Prefetcher::new(4096);
    /// assert_eq!(p.window(), 256); // 1 MiB of 4 KiB objects
    /// ```
    pub fn new(object_bytes: usize) -> Self {
        Prefetcher {
            ring: (0..RING).map(|_| AtomicU64::new(0)).collect(),
            head: AtomicU64::new(0),
            last: AtomicU64::new(0),
            stride: AtomicI64::new(0),
            hits: AtomicU32::new(0),
            frontier: AtomicI64::new(NO_WINDOW),
            enabled: AtomicBool::new(true),
            window: AtomicU64::new(((1 << 20) / object_bytes.max(1)).max(1) as u64),
            object_bytes: object_bytes.max(1),
            threshold: 8,
        }
    }

    /// Sizes the window ahead in bytes (at least one object).
    ///
    /// # Examples
    ///
    /// ```
    /// let p = aifm_core::prefetch::Prefetcher::new(4096).with_window_bytes(64 << 10);
    /// assert_eq!(p.window(), 16);
    /// ```
    pub fn with_window_bytes(self, bytes: usize) -> Self {
        self.set_window((bytes / self.object_bytes).max(1));
        self
    }

    /// Sets the objects planned ahead from now on (at least one): a structure sizes it from
    /// [`Runtime::scan_window`](crate::Runtime::scan_window), the link's bandwidth-delay
    /// product within the free memory.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = aifm_core::prefetch::Prefetcher::new(4096);
    /// p.set_window(40);
    /// assert_eq!(p.window(), 40);
    /// ```
    pub fn set_window(&self, objects: usize) {
        self.window.store(objects.max(1) as u64, Ordering::Relaxed);
    }

    /// Consecutive equal strides needed before prefetching starts.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = aifm_core::prefetch::Prefetcher::new(64).with_threshold(2);
    /// assert_eq!(p.record(0, 100).count() + p.record(1, 100).count(), 0);
    /// assert!(p.record(2, 100).count() > 0);
    /// ```
    pub fn with_threshold(mut self, hits: u32) -> Self {
        self.threshold = hits.max(1);
        self
    }

    /// Turns prefetching on or off for this structure.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = aifm_core::prefetch::Prefetcher::new(64);
    /// p.set_enabled(false);
    /// assert!((0..100).all(|i| p.record(i, 100).count() == 0));
    /// ```
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
        self.reset();
    }

    /// Whether prefetching is on.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(aifm_core::prefetch::Prefetcher::new(64).is_enabled());
    /// ```
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Objects in the window ahead.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(aifm_core::prefetch::Prefetcher::new(1 << 20).window(), 1);
    /// ```
    pub fn window(&self) -> u64 {
        self.window.load(Ordering::Relaxed)
    }

    /// Forgets the pattern (after the structure changed shape, say): prefetching starts
    /// again only after `threshold` equal strides.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = aifm_core::prefetch::Prefetcher::new(1 << 19).with_threshold(2);
    /// let _ = (p.record(0, 100), p.record(1, 100));
    /// p.reset();
    /// assert_eq!(p.record(2, 100).count(), 0);
    /// ```
    pub fn reset(&self) {
        self.hits.store(0, Ordering::Relaxed);
        self.frontier.store(NO_WINDOW, Ordering::Relaxed);
    }

    /// Records a touch of `index` in a structure of `len` objects; returns what to prefetch
    /// now (often nothing). Lock-free and allocation-free.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = aifm_core::prefetch::Prefetcher::new(1 << 18).with_threshold(3); // 4-object window
    /// let planned: Vec<u64> = (0..6).flat_map(|i| p.record(i, 100)).collect();
    /// assert_eq!(planned, [4, 5, 6, 7, 8, 9]);
    /// ```
    #[inline]
    pub fn record(&self, index: u64, len: u64) -> Plan {
        let none = Plan {
            next: 0,
            stride: 1,
            remaining: 0,
        };
        if !self.enabled.load(Ordering::Relaxed) {
            return none;
        }
        let h = self.head.fetch_add(1, Ordering::Relaxed);
        self.ring[h as usize % RING].store(index, Ordering::Relaxed);
        let prev = self.last.swap(index + 1, Ordering::Relaxed);
        if prev == 0 {
            return none;
        }
        let mut d = index as i64 - (prev - 1) as i64;
        if d == 0 {
            return none;
        }
        let stride = self.stride.load(Ordering::Relaxed);
        let hits = if d == stride || self.continues(stride, d, index) {
            // The pattern goes on (past the objects its window brought in, if any).
            d = stride;
            self.hits.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            // A new pattern: this touch is its first hit.
            self.stride.store(d, Ordering::Relaxed);
            self.frontier.store(NO_WINDOW, Ordering::Relaxed);
            self.hits.store(1, Ordering::Relaxed);
            1
        };
        if hits < self.threshold {
            return none;
        }
        let i = index as i64;
        let frontier = self.frontier.load(Ordering::Relaxed);
        let mut start = if frontier == NO_WINDOW {
            i + d
        } else {
            frontier
        };
        // A window left behind (the mutator outran it) restarts just ahead of the mutator.
        if (start - i).signum() != d.signum() {
            start = i + d;
        }
        let window = self.window.load(Ordering::Relaxed) as i64;
        let end = (i + d * (window + 1)).clamp(-1, len as i64);
        let remaining = if d > 0 {
            ((end - start).max(0) + d - 1) / d
        } else {
            ((start - end).max(0) + (-d) - 1) / (-d)
        } as u64;
        let next_frontier = start + d * remaining as i64;
        self.frontier.store(next_frontier, Ordering::Relaxed);
        Plan {
            next: start,
            stride: d,
            remaining,
        }
    }

    /// Whether a touch `d` away from the last one continues a confirmed `stride` although
    /// it skipped objects: structures record only misses, so the objects a window brought in
    /// go unrecorded, and the next miss lands past them, in the stride's direction, on its
    /// grid, and no further than the first object not yet planned.
    fn continues(&self, stride: i64, d: i64, index: u64) -> bool {
        let frontier = self.frontier.load(Ordering::Relaxed);
        stride != 0
            && frontier != NO_WINDOW
            && self.hits.load(Ordering::Relaxed) >= self.threshold
            && d % stride == 0
            && d / stride > 0
            && (frontier - index as i64) * stride.signum() >= 0
    }

    /// The most recent touches, oldest first (at most 256).
    ///
    /// # Examples
    ///
    /// ```
    /// let p = aifm_core::prefetch::Prefetcher::new(64);
    /// p.record(3, 10);
    /// p.record(7, 10);
    /// assert_eq!(p.trace(), [3, 7]);
    /// ```
    pub fn trace(&self) -> Vec<u64> {
        let head = self.head.load(Ordering::Relaxed);
        let n = head.min(RING as u64);
        (head - n..head)
            .map(|h| self.ring[h as usize % RING].load(Ordering::Relaxed))
            .collect()
    }
}

/// Indices to prefetch, in the direction of travel.
///
/// # Examples
///
/// ```
/// let p = aifm_core::prefetch::Prefetcher::new(1 << 19).with_threshold(1); // 2-object window
/// p.record(10, 100);
/// let plan: Vec<u64> = p.record(9, 100).collect(); // walking down
/// assert_eq!(plan, [8, 7]);
/// ```
#[derive(Debug, Clone)]
pub struct Plan {
    next: i64,
    stride: i64,
    remaining: u64,
}

impl Iterator for Plan {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        if self.remaining == 0 || self.next < 0 {
            return None;
        }
        self.remaining -= 1;
        let i = self.next;
        self.next += self.stride;
        Some(i as u64)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(p: &Prefetcher, touches: impl IntoIterator<Item = u64>, len: u64) -> Vec<u64> {
        touches
            .into_iter()
            .flat_map(|i| p.record(i, len).collect::<Vec<_>>())
            .collect()
    }

    #[test]
    fn reverse_scans_prefetch_downwards_and_stop_at_zero() {
        let p = Prefetcher::new(1 << 16).with_threshold(3); // 16-object window
        let planned = run(&p, (0..100).rev(), 100);
        assert!(planned.windows(2).all(|w| w[1] < w[0]));
        assert_eq!(planned.last(), Some(&0));
        assert!(planned.len() <= 100);
    }

    #[test]
    fn strides_are_followed_and_never_planned_twice() {
        let p = Prefetcher::new(1 << 16).with_threshold(2);
        let planned = run(&p, (0..50).map(|i| i * 3), 1000);
        let mut sorted = planned.clone();
        sorted.dedup();
        assert_eq!(sorted, planned);
        assert!(planned.iter().all(|i| i % 3 == 0));
    }

    #[test]
    fn a_walk_that_records_only_misses_keeps_its_stride_past_each_window() {
        // Structures record only the objects that miss; those a window brought in are hits
        // and go unrecorded, so the next miss lands one window past the previous one.
        for stride in [1i64, -1, 3] {
            let p = Prefetcher::new(1 << 16).with_threshold(3); // 16-object window
            let mut planned = std::collections::HashSet::new();
            let mut misses = 0;
            let walk: Vec<u64> = match stride {
                -1 => (0..3000).rev().collect(),
                s => (0..3000).step_by(s as usize).collect(),
            };
            let n = walk.len();
            for i in walk {
                if !planned.contains(&i) {
                    misses += 1;
                    planned.extend(p.record(i, 3000));
                }
            }
            assert!(misses < n / 12, "stride {stride}: {misses} misses of {n}");
        }
    }

    #[test]
    fn random_touches_plan_nothing() {
        let p = Prefetcher::new(64);
        let mut x = 12345u64;
        let touches: Vec<u64> = (0..1000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x % 100_000
            })
            .collect();
        assert!(run(&p, touches, 100_000).is_empty());
    }

    #[test]
    fn disabled_detectors_stay_quiet_and_trace_keeps_the_last_256() {
        let p = Prefetcher::new(64);
        p.set_enabled(false);
        assert!(run(&p, 0..100, 100).is_empty());
        p.set_enabled(true);
        run(&p, 0..300, 1000);
        assert_eq!(p.trace(), (44..300).collect::<Vec<_>>());
    }
}
