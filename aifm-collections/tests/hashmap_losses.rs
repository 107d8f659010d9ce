//! No pair is ever lost: a miss brings a pair home in two phases (read, adopt, then remove on
//! the server), so a failure at any point leaves the pair where it was; and a write-back batch
//! that far memory accepts only in part leaves no stale copy that a later lookup resurrects.

use aifm_collections::RemHashMap;
use aifm_core::backend::{
    Backend, ComputeInFlight, EmbeddedBackend, InFlight, ManyInFlight, Placement, ReadInFlight,
};
use aifm_core::{Error, FarData, Result, Runtime};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Far memory that can lose replies (the request is carried out, then the answer is lost to
/// a disconnect), refuse replies larger than a frame, and accept only part of a write batch.
#[derive(Default)]
struct Lossy {
    inner: EmbeddedBackend,
    lose_replies: AtomicBool,
    /// Largest reply delivered (0: no limit).
    reply_limit: AtomicUsize,
    /// Items of a batched write stored before it fails (`usize::MAX`: all).
    accept: AtomicUsize,
}

impl Lossy {
    fn new() -> Arc<Lossy> {
        let l = Lossy::default();
        l.accept.store(usize::MAX, Ordering::SeqCst);
        Arc::new(l)
    }

    fn deliver<T>(&self, r: Result<T>, size: impl Fn(&T) -> usize) -> Result<T> {
        let r = r?;
        if self.lose_replies.load(Ordering::SeqCst) {
            return Err(Error::Disconnected("reply lost".into()));
        }
        let limit = self.reply_limit.load(Ordering::SeqCst);
        if limit != 0 && size(&r) > limit {
            return Err(Error::Protocol("the reply does not fit in a frame".into()));
        }
        Ok(r)
    }
}

impl Backend for Lossy {
    fn name(&self) -> String {
        "lossy".into()
    }
    fn begin_read(&self, ds: u32, key: &[u8]) -> ReadInFlight {
        InFlight::done(self.deliver(self.inner.read(ds, key), |v| v.as_ref().map_or(0, Vec::len)))
    }
    fn begin_read_many(&self, ds: u32, keys: &[&[u8]]) -> ManyInFlight {
        InFlight::done(self.deliver(self.inner.read_many(ds, keys), |v| {
            v.iter().flatten().map(Vec::len).sum()
        }))
    }
    fn begin_write(&self, ds: u32, key: &[u8], value: &[u8]) -> InFlight<()> {
        self.inner.begin_write(ds, key, value)
    }
    fn begin_write_many(&self, ds: u32, items: &[(&[u8], &[u8])]) -> InFlight<()> {
        let n = self.accept.load(Ordering::SeqCst);
        for (i, (k, v)) in items.iter().enumerate() {
            if i >= n {
                return InFlight::done(Err(Error::ServerFull {
                    needed: v.len() as u64,
                }));
            }
            if let Err(e) = self.inner.write(ds, k, v) {
                return InFlight::done(Err(e));
            }
        }
        InFlight::done(Ok(()))
    }
    fn begin_remove(&self, ds: u32, key: &[u8]) -> InFlight<bool> {
        InFlight::done(self.deliver(self.inner.remove(ds, key), |_| 0))
    }
    fn construct_placed(&self, ds: u32, device: &str, params: &[u8], p: Placement) -> Result<()> {
        self.inner.construct_placed(ds, device, params, p)
    }
    fn destruct(&self, ds: u32) -> Result<()> {
        self.inner.destruct(ds)
    }
    fn begin_compute(&self, ds: u32, opcode: u32, input: &[u8]) -> ComputeInFlight {
        InFlight::done(self.deliver(self.inner.compute(ds, opcode, input), Vec::len))
    }
    fn stored_bytes(&self) -> u64 {
        self.inner.stored_bytes()
    }
}

fn runtime(far: &Arc<Lossy>, budget: usize) -> Runtime {
    Runtime::builder()
        .local_memory(budget)
        .backend(far.clone())
        .build()
        .unwrap()
}

const N: u64 = 20_000;

fn filled(far: &Arc<Lossy>) -> (Runtime, RemHashMap<u64, [u64; 8]>) {
    let rt = runtime(far, 1 << 20);
    let m = RemHashMap::new_in(&rt);
    for i in 0..N {
        m.insert(i, [i; 8]);
    }
    rt.evacuate_now();
    assert!(m.local_len() < m.len() / 2, "most pairs are far");
    (rt, m)
}

#[test]
fn a_reply_lost_to_a_disconnect_loses_no_pair() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let far = Lossy::new();
    let (_rt, m) = filled(&far);
    far.lose_replies.store(true, Ordering::SeqCst);
    let failed = (0..N).filter(|i| m.try_get(i).is_err()).count();
    far.lose_replies.store(false, Ordering::SeqCst);
    assert!(failed > 0, "far pairs were asked for");
    for i in 0..N {
        assert_eq!(m.get_cloned(&i), Some([i; 8]), "pair {i}");
    }
    assert_eq!(m.len(), N as usize);
}

#[test]
fn a_batch_whose_reply_is_lost_loses_no_pair() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let far = Lossy::new();
    let (_rt, m) = filled(&far);
    far.lose_replies.store(true, Ordering::SeqCst);
    let keys: Vec<u64> = (0..N).collect();
    assert!(m.try_get_many_cloned(&keys).is_err());
    far.lose_replies.store(false, Ordering::SeqCst);
    let got = m.get_many_cloned(&keys);
    assert!(got.iter().zip(0..N).all(|(v, i)| *v == Some([i; 8])));
}

/// A value whose decoding can be made to fail.
#[derive(Debug, Clone, PartialEq)]
struct Fragile(u64);
static BREAK_DECODE: AtomicBool = AtomicBool::new(false);

impl FarData for Fragile {
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        self.0.encode(out)
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        if BREAK_DECODE.load(Ordering::SeqCst) {
            return Err(Error::Codec("broken on purpose".into()));
        }
        u64::decode(bytes).map(Fragile)
    }
}

#[test]
fn a_pair_that_fails_to_decode_stays_in_far_memory() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let far = Lossy::new();
    let rt = runtime(&far, 1 << 20);
    let m = RemHashMap::new_in(&rt);
    for i in 0..60_000u64 {
        m.insert(i, Fragile(i));
    }
    rt.evacuate_now();
    assert!(m.local_len() < m.len());
    BREAK_DECODE.store(true, Ordering::SeqCst);
    let failed = (0..60_000u64).filter(|i| m.try_get(i).is_err()).count();
    let batch = m.try_get_many_cloned(&(0..60_000u64).collect::<Vec<_>>());
    BREAK_DECODE.store(false, Ordering::SeqCst);
    assert!(failed > 0 && batch.is_err());
    for i in 0..60_000u64 {
        assert_eq!(m.get_cloned(&i), Some(Fragile(i)), "pair {i}");
    }
}

#[test]
fn an_oversized_batch_reply_loses_no_pair() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let far = Lossy::new();
    let rt = runtime(&far, 4 << 20);
    let m: RemHashMap<u64, Vec<u8>> = RemHashMap::new_in(&rt);
    for i in 0..3u64 {
        m.insert(i, vec![i as u8; 400 << 10]);
    }
    rt.evacuate_now();
    rt.evacuate_now();
    assert_eq!(m.local_len(), 0, "all three pairs are far");
    far.reply_limit.store(1 << 20, Ordering::SeqCst);
    // The three values do not fit in one reply; the map must not lose them either way.
    let _ = m.try_get_many_cloned(&[0, 1, 2]);
    for i in 0..3u64 {
        let v = m.get_cloned(&i);
        assert!(v == Some(vec![i as u8; 400 << 10]), "pair {i} lost");
    }
}

#[test]
fn a_partly_accepted_write_back_resurrects_nothing() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let far = Lossy::new();
    let rt = runtime(&far, 1 << 20);
    let m = RemHashMap::new_in(&rt);
    for i in 0..N {
        m.insert(i, [i; 8]);
    }
    // Far memory stores the first 10 pairs of every batch, then refuses the rest: the runtime
    // keeps the whole batch local, and 10 copies per batch are left behind on the server.
    far.accept.store(10, Ordering::SeqCst);
    rt.evacuate_now();
    far.accept.store(usize::MAX, Ordering::SeqCst);
    for i in 0..N {
        assert_eq!(m.remove(&i), Some([i; 8]), "pair {i}");
    }
    assert!(m.is_empty());
    for i in 0..N {
        assert_eq!(m.get_cloned(&i), None, "pair {i} came back");
    }
    assert_eq!(m.iter().count(), 0);
}

#[test]
fn a_far_key_named_twice_in_one_batch_comes_home_once() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let far = Lossy::new();
    let rt = runtime(&far, 1 << 20);
    let m = RemHashMap::new_in(&rt);
    for i in 0..N {
        m.insert(i, [i; 8]);
    }
    rt.evacuate_now();
    let keys: Vec<u64> = (0..200).flat_map(|k| [k, k]).collect();
    let got = m.get_many_cloned(&keys);
    for (k, v) in keys.iter().zip(&got) {
        assert_eq!(*v, Some([*k; 8]), "pair {k}");
    }
    assert_eq!(m.len(), N as usize, "a pair was adopted twice");
    for i in 0..200 {
        assert_eq!(m.remove(&i), Some([i; 8]), "pair {i}");
        assert_eq!(
            m.get_cloned(&i),
            None,
            "pair {i} came back after its removal"
        );
    }
    assert_eq!(m.iter().count(), N as usize - 200);
}
