//! What the link to far memory is measured to do: its round trip and its throughput, and from
//! them the window a sequential scan keeps in flight (the bandwidth-delay product).
//!
//! Every batched fetch the runtime makes (`Runtime::fetch_many` and the prefetch helpers'
//! batches) reports its object count, bytes and wall time here. A batch of one or two objects
//! is a round-trip sample; a larger batch is a throughput sample once a round trip is known
//! (its bytes over its time beyond one round trip). Both are smoothed (a moving average with
//! weight 1/8 per sample), in relaxed atomics: two racing samples may lose one, which only
//! slows the estimate down.
//!
//! [`Link::window`] turns the estimate into objects ahead of a scan: two bandwidth-delay
//! products (one batch arriving while the scan uses the one before), at least
//! [`MIN_WINDOW`] and at most [`MAX_WINDOW`] objects, and never more than a quarter of the
//! local memory that is free right now, shared among the scans in progress
//! ([`Runtime::enter_scan`](crate::Runtime::enter_scan)), so prefetched objects cannot push the hot set out, nor each other
//! (they are placed nontemporally as well, and are evicted first while unused). Before any
//! sample it returns [`DEFAULT_WINDOW`].

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Objects ahead of a scan before the link has been measured.
///
/// ```
/// assert_eq!(aifm_core::prefetch::DEFAULT_WINDOW, 16);
/// ```
pub const DEFAULT_WINDOW: usize = 16;

/// Fewest objects a measured window keeps ahead (while memory allows).
///
/// ```
/// assert_eq!(aifm_core::prefetch::MIN_WINDOW, 4);
/// ```
pub const MIN_WINDOW: usize = 4;

/// Most objects a window keeps ahead.
///
/// ```
/// assert_eq!(aifm_core::prefetch::MAX_WINDOW, 512);
/// ```
pub const MAX_WINDOW: usize = 512;

/// Batches of at most this many objects are round-trip samples.
const RTT_BATCH: usize = 2;

/// The measured round trip and throughput of a runtime's far memory.
///
/// # Examples
///
/// ```
/// use aifm_core::prefetch::Link;
/// use std::time::Duration;
/// let link = Link::new();
/// assert_eq!(link.window(4096, usize::MAX), aifm_core::prefetch::DEFAULT_WINDOW);
/// link.record(1, 4096, Duration::from_micros(50)); // one object: a 50 µs round trip
/// link.record(64, 64 * 4096, Duration::from_micros(50 + 262)); // 1 GB/s past the round trip
/// assert_eq!(link.round_trip(), Some(Duration::from_micros(50)));
/// // 1 GB/s × 50 µs = 50 KB in flight, twice: 25 objects of 4 KiB.
/// assert_eq!(link.window(4096, usize::MAX), 25);
/// // Short of memory: a quarter of what is free, at most.
/// assert_eq!(link.window(4096, 16 * 4096), 4);
/// ```
#[derive(Debug, Default)]
pub struct Link {
    /// Smoothed round trip in nanoseconds (0: no sample yet).
    rtt_ns: AtomicU64,
    /// Smoothed throughput in bytes per second (0: no sample yet).
    bytes_per_sec: AtomicU64,
    /// Scans in progress (each keeps a window; they share the free memory).
    scans: AtomicUsize,
}

/// Moves `avg` 1/8 of the way to `sample` (or sets it, if it has no value yet).
fn smooth(avg: &AtomicU64, sample: u64) {
    let old = avg.load(Ordering::Relaxed);
    let new = if old == 0 {
        sample
    } else {
        old - old / 8 + sample / 8
    };
    avg.store(new.max(1), Ordering::Relaxed);
}

impl Link {
    /// A link with no samples.
    pub const fn new() -> Self {
        Link {
            rtt_ns: AtomicU64::new(0),
            bytes_per_sec: AtomicU64::new(0),
            scans: AtomicUsize::new(0),
        }
    }

    /// Counts a scan in progress (see [`Runtime::enter_scan`](crate::Runtime::enter_scan)).
    pub(crate) fn scan_started(&self) {
        self.scans.fetch_add(1, Ordering::Relaxed);
    }

    /// Stops counting a scan.
    pub(crate) fn scan_ended(&self) {
        self.scans.fetch_sub(1, Ordering::Relaxed);
    }

    /// Records one batched fetch of `objects` objects, `bytes` in all, that took `took`.
    pub fn record(&self, objects: usize, bytes: usize, took: Duration) {
        let ns = took.as_nanos().min(u64::MAX as u128) as u64;
        if objects == 0 || ns == 0 {
            return;
        }
        if objects <= RTT_BATCH {
            smooth(&self.rtt_ns, ns);
            return;
        }
        let rtt = self.rtt_ns.load(Ordering::Relaxed);
        // The part of the batch's time spent streaming its bytes: past one round trip (all of
        // it while the round trip is unknown), and at least a quarter of it, so a batch that
        // barely outlasts a round trip does not claim an absurd rate.
        let streaming = if rtt != 0 && ns > rtt {
            (ns - rtt).max(ns / 4)
        } else {
            ns
        };
        let rate = (bytes as u128 * 1_000_000_000 / streaming as u128).min(u64::MAX as u128);
        smooth(&self.bytes_per_sec, rate as u64);
    }

    /// The smoothed round trip (`None` before a sample).
    pub fn round_trip(&self) -> Option<Duration> {
        match self.rtt_ns.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }

    /// The smoothed throughput in bytes per second (`None` before a sample).
    pub fn throughput(&self) -> Option<u64> {
        match self.bytes_per_sec.load(Ordering::Relaxed) {
            0 => None,
            b => Some(b),
        }
    }

    /// Objects of `object_bytes` a sequential scan should keep in flight, given `free_bytes`
    /// of free local memory shared by the scans in progress (see the module documentation).
    pub fn window(&self, object_bytes: usize, free_bytes: usize) -> usize {
        let share = self.scans.load(Ordering::Relaxed).max(1);
        let object_bytes = object_bytes.max(1);
        let want = match (self.round_trip(), self.throughput()) {
            (Some(rtt), Some(bw)) => {
                let bdp = bw as f64 * rtt.as_secs_f64();
                ((2.0 * bdp / object_bytes as f64).ceil() as usize).clamp(MIN_WINDOW, MAX_WINDOW)
            }
            _ => DEFAULT_WINDOW,
        };
        want.min(free_bytes / 4 / share / object_bytes).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slower_link_or_a_longer_round_trip_widens_the_window() {
        let fast = Link::new();
        fast.record(1, 4096, Duration::from_micros(20));
        fast.record(32, 32 << 12, Duration::from_micros(20 + 65));
        let far = Link::new();
        far.record(1, 4096, Duration::from_micros(200));
        far.record(32, 32 << 12, Duration::from_micros(200 + 65));
        let (w_fast, w_far) = (fast.window(4096, usize::MAX), far.window(4096, usize::MAX));
        assert!(w_far > 5 * w_fast, "{w_fast} vs {w_far}");
    }

    #[test]
    fn windows_shrink_with_free_memory_but_never_to_zero() {
        let l = Link::new();
        l.record(1, 4096, Duration::from_millis(1));
        l.record(64, 64 << 12, Duration::from_micros(1250));
        assert!(l.window(4096, usize::MAX) >= 64);
        assert_eq!(l.window(4096, 64 << 12), 16);
        assert_eq!(l.window(4096, 0), 1);
    }

    #[test]
    fn samples_are_smoothed_not_replaced() {
        let l = Link::new();
        l.record(1, 64, Duration::from_micros(80));
        l.record(1, 64, Duration::from_micros(8));
        let rtt = l.round_trip().unwrap();
        assert!(rtt > Duration::from_micros(60) && rtt < Duration::from_micros(80));
    }
}
