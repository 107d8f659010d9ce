//! Model-test harness for structure authors and the project's own tests (feature `testing`).
//!
//! A model test runs a remoteable collection side by side with its std twin, applies the same
//! random operations to both and asserts that every answer agrees, while the scenario around
//! it (servers dying, rebuilds, failovers) does its worst. [`Twins`] holds the four
//! collections of this crate and their twins — [`RemVec`] / `Vec`, [`RemHashMap`] /
//! `HashMap`, [`RemQueue`] / `VecDeque`, [`RemList`] / `LinkedList` — all of `u64`;
//! [`XorShift`] is the deterministic operation stream, so a failure is reproducible from its
//! seed. [`median`] is the one median the project's benches, figures and tests report.
//!
//! Invariants: after every [`Twins::apply`] that returns, each collection holds exactly what
//! its twin holds (the reads that the operation made agreed); [`Twins::check`] compares them in
//! full. The harness touches only the runtime it is given and the structures it creates in it;
//! it reports a divergence by panicking (it is for tests), with the operation's number in the
//! message.
//!
//! The module is behind the non-default `testing` feature, so it costs nothing in ordinary
//! builds; enable it from a `[dev-dependencies]` line:
//!
//! ```toml
//! aifm-collections = { version = "0.1", features = ["testing"] }
//! ```

pub mod executor;

use crate::{RemHashMap, RemList, RemQueue, RemVec};
use aifm_core::Runtime;
use std::collections::{HashMap, LinkedList, VecDeque};
use std::fmt;

/// A deterministic stream of pseudo-random `u64`s (Marsaglia's xorshift64), for reproducible
/// operation sequences: the one seeded generator of the project's tests and benches.
/// Hand-written rather than taken from `rand` on purpose: `rand` does not promise that a seed
/// gives the same stream in its next version, and a failing seed must stay reproducible.
/// Unguessable values come from `aifm_core::wire::auth::random_bytes` instead.
///
/// # Examples
///
/// ```
/// use aifm_collections::testing::XorShift;
/// let (mut a, mut b) = (XorShift::new(7), XorShift::new(7));
/// assert_eq!(a.next_u64(), b.next_u64());
/// assert_ne!(a.next_u64(), a.next_u64());
/// ```
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A stream starting from `seed`; the seed 0 (which xorshift would never leave) is
    /// replaced by a fixed non-zero one.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut ops = aifm_collections::testing::XorShift::new(0);
    /// assert_ne!(ops.next_u64(), 0);
    /// ```
    pub fn new(seed: u64) -> XorShift {
        XorShift(if seed == 0 { 0x5eed } else { seed })
    }

    /// The next number of the stream (never 0).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut ops = aifm_collections::testing::XorShift::new(0x5eed);
    /// let x = ops.next_u64();
    /// assert_eq!(x % 10, x % 10); // pick an operation with `x % n`
    /// ```
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// How much [`Twins::new_in`] puts in the collections before the random operations start, and
/// how wide the map's random keys range.
///
/// # Examples
///
/// ```
/// let fill = aifm_collections::testing::Fill::default();
/// assert!(fill.key_space > fill.keys); // some lookups miss, some inserts are new
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fill {
    /// Elements pushed to the vector, the queue and the list (`0..items`); at least 1.
    pub items: u64,
    /// Keys inserted in the map (`k -> 3k` for `k` in `0..keys`).
    pub keys: u64,
    /// Random map operations use keys in `0..key_space`; at least 1.
    pub key_space: u64,
}

impl Default for Fill {
    /// 300 000 elements each (about 2.3 MiB per collection) and 30 000 pairs, keys drawn from
    /// 0..40 000: enough that most of it lives in far memory under a 2 MiB local budget.
    fn default() -> Fill {
        Fill {
            items: 300_000,
            keys: 30_000,
            key_space: 40_000,
        }
    }
}

/// The four collections of this crate beside their std twins, driven by one random
/// operation at a time.
///
/// [`apply`](Twins::apply) picks one of ten operations from `x % 10` — vector push / read /
/// overwrite, map get / insert / remove, queue push / pop, list push-front / pop-back — does
/// it to both sides with `arg` as its argument, and asserts that what both sides answered
/// agrees. [`check`](Twins::check) compares the whole contents.
///
/// # Examples
///
/// ```
/// use aifm_collections::testing::{Fill, Twins, XorShift};
/// let rt = aifm_core::Runtime::builder().local_memory(1 << 20).build().unwrap();
/// let fill = Fill { items: 50_000, keys: 5_000, key_space: 8_000 };
/// let mut twins = Twins::new_in(&rt, fill);
/// rt.evacuate_now(); // push most of it to far memory
/// twins.run(&mut XorShift::new(1), 5_000, 1_000, |_n| {
///     // A scenario's events go here: kill a server at op `_n`, …
/// });
/// twins.check();
/// assert_eq!(twins.applied(), 5_000);
/// assert!(rt.stats().write_backs > 0);
/// ```
pub struct Twins {
    rt: Runtime,
    key_space: u64,
    applied: u64,
    vec: RemVec<u64>,
    vec_model: Vec<u64>,
    map: RemHashMap<u64, u64>,
    map_model: HashMap<u64, u64>,
    queue: RemQueue<u64>,
    queue_model: VecDeque<u64>,
    list: RemList<u64>,
    list_model: LinkedList<u64>,
}

impl fmt::Debug for Twins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Twins")
            .field("applied", &self.applied)
            .field("vec_len", &self.vec_model.len())
            .field("map_len", &self.map_model.len())
            .field("queue_len", &self.queue_model.len())
            .field("list_len", &self.list_model.len())
            .finish()
    }
}

impl Twins {
    /// Creates the four collections in `rt` (in the order vector, map, queue, list, so their
    /// structure ids are the runtime's next four) and fills them and their twins as `fill`
    /// says. It does not evacuate; call `rt.evacuate_now()` to push the data out.
    ///
    /// # Panics
    ///
    /// If `fill.items` or `fill.key_space` is 0, or if a collection fails (as the collections
    /// themselves panic when far memory is gone for good).
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_collections::testing::{Fill, Twins};
    /// let rt = aifm_core::Runtime::builder().local_memory(1 << 20).build().unwrap();
    /// let twins = Twins::new_in(&rt, Fill { items: 10, keys: 5, key_space: 8 });
    /// assert_eq!(twins.vec_model(), &(0..10).collect::<Vec<u64>>()[..]);
    /// twins.check();
    /// ```
    pub fn new_in(rt: &Runtime, fill: Fill) -> Twins {
        assert!(
            fill.items > 0 && fill.key_space > 0,
            "a fill needs items and a key space: {fill:?}"
        );
        let mut twins = Twins {
            rt: rt.clone(),
            key_space: fill.key_space,
            applied: 0,
            vec: RemVec::new_in(rt),
            vec_model: Vec::new(),
            map: RemHashMap::new_in(rt),
            map_model: HashMap::new(),
            queue: RemQueue::new_in(rt),
            queue_model: VecDeque::new(),
            list: RemList::new_in(rt),
            list_model: LinkedList::new(),
        };
        for i in 0..fill.items {
            twins.vec.push(i);
            twins.vec_model.push(i);
            twins.queue.push(i);
            twins.queue_model.push_back(i);
            twins.list.push_back(i);
            twins.list_model.push_back(i);
        }
        for k in 0..fill.keys {
            twins.map.insert(k, k * 3);
            twins.map_model.insert(k, k * 3);
        }
        twins
    }

    /// Applies the operation `x % 10` with argument `arg` to each collection concerned and
    /// its twin, asserting that their answers agree.
    ///
    /// # Panics
    ///
    /// On a divergence (naming the operation and its number, counted from 0), or if a
    /// collection fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_collections::testing::{Fill, Twins};
    /// let rt = aifm_core::Runtime::builder().local_memory(1 << 20).build().unwrap();
    /// let mut twins = Twins::new_in(&rt, Fill { items: 10, keys: 5, key_space: 8 });
    /// twins.apply(0, 42); // operation 0: push 42 to the vector
    /// assert_eq!(twins.vec_model().last(), Some(&42));
    /// assert_eq!(twins.vec().get_cloned(10), Some(42));
    /// ```
    pub fn apply(&mut self, x: u64, arg: u64) {
        let n = self.applied;
        self.applied += 1;
        let index = |len: usize| (arg % len as u64) as usize;
        let k = arg % self.key_space;
        match x % 10 {
            0 => {
                self.vec.push(arg);
                self.vec_model.push(arg);
            }
            1 => {
                let i = index(self.vec_model.len());
                let want = Some(self.vec_model[i]);
                assert_eq!(self.vec.get_cloned(i), want, "vec[{i}] at op {n}");
            }
            2 => {
                let i = index(self.vec_model.len());
                let old = self.vec.set(i, arg);
                assert_eq!(old, self.vec_model[i], "vec[{i}] overwritten at op {n}");
                self.vec_model[i] = arg;
            }
            3 => assert_eq!(
                self.map.get_cloned(&k),
                self.map_model.get(&k).copied(),
                "map[{k}] at op {n}"
            ),
            4 => assert_eq!(
                self.map.insert(k, arg),
                self.map_model.insert(k, arg),
                "insert {k} at op {n}"
            ),
            5 => assert_eq!(
                self.map.remove(&k),
                self.map_model.remove(&k),
                "remove {k} at op {n}"
            ),
            6 => {
                self.queue.push(arg);
                self.queue_model.push_back(arg);
            }
            7 => assert_eq!(
                self.queue.pop(),
                self.queue_model.pop_front(),
                "queue pop at op {n}"
            ),
            8 => {
                self.list.push_front(arg);
                self.list_model.push_front(arg);
            }
            _ => assert_eq!(
                self.list.pop_back(),
                self.list_model.pop_back(),
                "list pop at op {n}"
            ),
        }
    }

    /// Runs `ops` operations drawn from `rng` (two numbers each: the operation and its
    /// argument). Before operation `n` it calls `before_op(n)`, where a scenario kills,
    /// replaces or checks things; after every operation whose number is a multiple of
    /// `evacuate_every` it evacuates the runtime, so far memory stays in the game throughout.
    ///
    /// # Panics
    ///
    /// If `evacuate_every` is 0, on a divergence (see [`apply`](Twins::apply)), or if
    /// `before_op` panics.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_collections::testing::{Fill, Twins, XorShift};
    /// let rt = aifm_core::Runtime::builder().local_memory(1 << 20).build().unwrap();
    /// let mut twins = Twins::new_in(&rt, Fill { items: 100, keys: 10, key_space: 20 });
    /// let mut seen = Vec::new();
    /// twins.run(&mut XorShift::new(3), 4, 2, |n| seen.push(n));
    /// assert_eq!(seen, [0, 1, 2, 3]);
    /// ```
    pub fn run(
        &mut self,
        rng: &mut XorShift,
        ops: usize,
        evacuate_every: usize,
        mut before_op: impl FnMut(usize),
    ) {
        for n in 0..ops {
            before_op(n);
            let x = rng.next_u64();
            let arg = rng.next_u64();
            self.apply(x, arg);
            if n % evacuate_every == 0 {
                self.rt.evacuate_now();
            }
        }
    }

    /// Compares every collection with its twin in full (the map as sorted pairs).
    ///
    /// # Panics
    ///
    /// On any difference, naming the collection, or if a collection fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_collections::testing::{Fill, Twins};
    /// let rt = aifm_core::Runtime::builder().local_memory(1 << 20).build().unwrap();
    /// Twins::new_in(&rt, Fill::default()).check();
    /// ```
    pub fn check(&self) {
        assert_eq!(
            self.vec.iter().collect::<Vec<_>>(),
            self.vec_model,
            "vec in full"
        );
        let mut pairs: Vec<(u64, u64)> = self.map.iter().collect();
        pairs.sort_unstable();
        let mut model_pairs: Vec<(u64, u64)> =
            self.map_model.iter().map(|(&k, &v)| (k, v)).collect();
        model_pairs.sort_unstable();
        assert_eq!(pairs, model_pairs, "map in full");
        assert_eq!(
            self.queue.iter().collect::<Vec<_>>(),
            self.queue_model.iter().copied().collect::<Vec<_>>(),
            "queue in full"
        );
        assert_eq!(
            self.list.iter().collect::<Vec<_>>(),
            self.list_model.iter().copied().collect::<Vec<_>>(),
            "list in full"
        );
    }

    /// How many operations [`apply`](Twins::apply) has done.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_collections::testing::{Fill, Twins};
    /// let rt = aifm_core::Runtime::builder().local_memory(1 << 20).build().unwrap();
    /// let mut twins = Twins::new_in(&rt, Fill { items: 10, keys: 5, key_space: 8 });
    /// twins.apply(7, 0); // a queue pop
    /// assert_eq!(twins.applied(), 1);
    /// ```
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// The remote vector, for checks of a scenario's own (an offloaded aggregate, say).
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_collections::testing::{Fill, Twins};
    /// let rt = aifm_core::Runtime::builder().local_memory(1 << 20).build().unwrap();
    /// let twins = Twins::new_in(&rt, Fill { items: 10, keys: 5, key_space: 8 });
    /// assert_eq!(twins.vec().len(), 10);
    /// ```
    pub fn vec(&self) -> &RemVec<u64> {
        &self.vec
    }

    /// The vector's std twin.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_collections::testing::{Fill, Twins};
    /// let rt = aifm_core::Runtime::builder().local_memory(1 << 20).build().unwrap();
    /// let twins = Twins::new_in(&rt, Fill { items: 3, keys: 0, key_space: 1 });
    /// assert_eq!(twins.vec_model(), &[0, 1, 2]);
    /// ```
    pub fn vec_model(&self) -> &[u64] {
        &self.vec_model
    }
}

/// The median of `values`, which it sorts in place: the middle one, or the mean of the middle
/// two for an even count; 0 for none.
///
/// # Examples
///
/// ```
/// use aifm_collections::testing::median;
/// assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
/// assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
/// assert_eq!(median(&mut []), 0.0);
/// ```
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}
