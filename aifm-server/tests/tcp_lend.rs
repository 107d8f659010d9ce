//! `TcpBackend::read_many_with` over a loopback `aifm-server`: each value is lent with its
//! exact bytes and its index (empty values, missing objects, a batch split into several
//! requests, and a batch whose replies do not fit one frame, fetched again object by object),
//! and it agrees with `read_many`.

mod common;

use aifm_core::backend::{tcp::TcpBuilder, Backend, OBJECT_STORE};
use aifm_server::{Config, RunningServer};

fn server(max_frame: u32) -> RunningServer {
    common::in_process(Config {
        max_frame,
        ..Config::default()
    })
}

/// The value stored under key `i` (`None`: not stored): every third missing, lengths
/// 0, 1, 2, ... cycling through `span`, each byte telling its key and position apart.
fn value(i: usize, span: usize) -> Option<Vec<u8>> {
    (i % 3 != 2).then(|| (0..i % span).map(|j| (i * 31 + j) as u8).collect())
}

/// Stores `n` objects, reads them back in one `read_many_with`, and checks every value was
/// lent exactly once, with its bytes, then compares with `read_many`.
fn lends_exactly(far: &dyn Backend, n: usize, span: usize) {
    let keys: Vec<[u8; 8]> = (0..n as u64).map(u64::to_le_bytes).collect();
    for (i, k) in keys.iter().enumerate() {
        if let Some(v) = value(i, span) {
            far.write(OBJECT_STORE, k, &v).unwrap();
        }
    }
    let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
    let mut seen: Vec<Option<Option<Vec<u8>>>> = vec![None; n];
    far.read_many_with(OBJECT_STORE, &refs, &mut |i, v| {
        assert!(seen[i].is_none(), "value {i} lent twice");
        seen[i] = Some(v.map(<[u8]>::to_vec));
    })
    .unwrap();
    for (i, s) in seen.iter().enumerate() {
        assert_eq!(s.as_ref(), Some(&value(i, span)), "value {i}");
    }
    let owned = far.read_many(OBJECT_STORE, &refs).unwrap();
    let expected: Vec<Option<Vec<u8>>> = (0..n).map(|i| value(i, span)).collect();
    assert_eq!(owned, expected);
}

#[test]
fn a_batch_of_several_requests_lends_each_value() {
    let s = server(aifm_core::wire::DEFAULT_MAX_FRAME);
    let far = TcpBuilder::new(s.addr().to_string()).connect().unwrap();
    // More keys than one request carries (4096): three pieces.
    lends_exactly(&far, 9000, 300);
}

#[test]
fn replies_that_do_not_fit_a_frame_are_lent_one_by_one() {
    // 40 values of up to 20 KiB ask for ~400 KiB of replies; the frames hold 64 KiB.
    let s = server(64 << 10);
    let far = TcpBuilder::new(s.addr().to_string()).connect().unwrap();
    lends_exactly(&far, 40, 20 << 10);
}
