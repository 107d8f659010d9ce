//! The vector device against hostile requests: every size a client sends is checked before
//! anything is allocated, a malformed shape is a typed error (never a panic), and a token
//! names a vector of the caller's own namespace only.

use super::*;
use aifm_core::backend::sharded::encode_shard_input;
use aifm_core::engine::{Engine, Namespace};

const VEC: u32 = 7;
const TOKEN: u128 = 0x5eed_0001;

/// A namespace holding vector `VEC` (token `TOKEN`): 4 chunks of 512 `u64`s (0, 1, 2, ...).
fn namespace(engine: &Engine) -> Namespace {
    let ns = engine.namespace(64 << 20);
    ns.construct(VEC, DEVICE, &TOKEN.to_le_bytes()).unwrap();
    for c in 0..4u64 {
        let chunk: Vec<u8> = (c * 512..(c + 1) * 512)
            .flat_map(u64::to_le_bytes)
            .collect();
        ns.write(VEC, &c.to_le_bytes(), &chunk).unwrap();
    }
    ns
}

fn engine() -> Engine {
    let e = Engine::default();
    crate::register_devices(e.registry());
    e
}

fn shape(len: u64) -> Shape {
    Shape {
        elem: 8,
        chunk_len: 512,
        len,
    }
}

fn call(ns: &Namespace, req: &Request) -> Result<Reply> {
    let mut input = Vec::new();
    aifm_core::codec::encode_serde(req, &mut input).unwrap();
    ns.compute(VEC, OP, &input)
        .and_then(|out| aifm_core::codec::decode_serde(&out))
}

fn call_shard(ns: &Namespace, chunks: &[u64], req: &Request) -> Result<Reply> {
    let mut input = Vec::new();
    aifm_core::codec::encode_serde(req, &mut input).unwrap();
    let keys: Vec<[u8; 8]> = chunks.iter().map(|c| c.to_le_bytes()).collect();
    let keys: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
    ns.compute(VEC, OP_SHARD, &encode_shard_input(&keys, &input))
        .and_then(|out| aifm_core::codec::decode_serde(&out))
}

fn own(len: u64) -> Other {
    Other {
        token: TOKEN,
        shape: shape(len),
    }
}

/// Requests naming far more elements than the vector holds: each would have allocated
/// terabytes (and aborted the process) before its bounds check.
fn huge_requests() -> Vec<Request> {
    let n = 1u64 << 45;
    vec![
        Request::IsPermutation { idx: own(n), n },
        Request::IsPermutation {
            idx: Other {
                token: 0xdead_beef, // a made-up token
                shape: shape(n),
            },
            n,
        },
        Request::CopyRange {
            shape: shape(n),
            from: 0,
            to: n,
        },
        Request::CopyRange {
            shape: Shape {
                elem: u32::MAX,
                chunk_len: 1,
                len: u64::MAX,
            },
            from: 0,
            to: u64::MAX,
        },
        Request::Gather {
            shape: shape(2048),
            idx: own(n),
            from: 0,
            to: n,
        },
        Request::GroupBy {
            kind: NumKind::U64,
            agg: Aggregate::Sum,
            shape: Shape {
                elem: 8,
                chunk_len: 1 << 40,
                len: n,
            },
            key_kind: NumKind::U64,
            keys: Other {
                token: TOKEN,
                shape: Shape {
                    elem: 8,
                    chunk_len: 1 << 40,
                    len: n,
                },
            },
        },
        Request::Aggregate {
            kind: NumKind::U64,
            agg: Aggregate::Median,
            shape: shape(n),
        },
    ]
}

#[test]
fn sizes_from_the_client_are_checked_before_anything_is_allocated() {
    let e = engine();
    let ns = namespace(&e);
    for req in huge_requests() {
        assert!(call(&ns, &req).is_err(), "{req:?} was served");
    }
    let n = 1u64 << 45;
    let sharded = [
        Request::Pieces {
            shape: shape(n),
            from: 0,
            to: n,
        },
        Request::Pieces {
            shape: Shape {
                elem: u32::MAX,
                chunk_len: u64::MAX,
                len: u64::MAX,
            },
            from: 0,
            to: u64::MAX,
        },
        Request::Partial {
            kind: NumKind::U64,
            shape: shape(n),
        },
        // Index 2^39 lies in chunk 2^30: one of the shard's, but not held.
        Request::Pick {
            shape: shape(n),
            idx: vec![n - 1, 0, 1 << 39],
        },
    ];
    for req in &sharded {
        assert!(
            call_shard(&ns, &[0, 1 << 30, u64::MAX], req).is_err(),
            "{req:?} was served"
        );
    }
    // The vector still answers sensible requests.
    match call(
        &ns,
        &Request::CopyRange {
            shape: shape(2048),
            from: 510,
            to: 514,
        },
    )
    .unwrap()
    {
        Reply::Bytes(b) => assert_eq!(b, [510u64, 511, 512, 513].map(u64::to_le_bytes).concat()),
        r => panic!("{r:?}"),
    }
    match call(
        &ns,
        &Request::IsPermutation {
            idx: own(2048),
            n: 2048,
        },
    )
    .unwrap()
    {
        Reply::Bool(b) => assert!(b),
        r => panic!("{r:?}"),
    }
}

/// Shapes that used to divide by zero or overflow: every request answers with an error.
#[test]
fn malformed_shapes_are_errors_in_every_request() {
    let e = engine();
    let ns = namespace(&e);
    let bad = [
        Shape {
            elem: 8,
            chunk_len: 0,
            len: 2048,
        },
        Shape {
            elem: 0,
            chunk_len: 512,
            len: 2048,
        },
        Shape {
            elem: 8,
            chunk_len: u64::MAX,
            len: u64::MAX,
        },
    ];
    for s in bad {
        let other = Other {
            token: TOKEN,
            shape: s,
        };
        let whole = [
            Request::Aggregate {
                kind: NumKind::U64,
                agg: Aggregate::Sum,
                shape: s,
            },
            Request::GroupBy {
                kind: NumKind::U64,
                agg: Aggregate::Sum,
                shape: shape(2048),
                key_kind: NumKind::U64,
                keys: other,
            },
            Request::Gather {
                shape: s,
                idx: own(2048),
                from: 0,
                to: 2048,
            },
            Request::Gather {
                shape: shape(2048),
                idx: other,
                from: 0,
                to: 2048,
            },
            Request::IsPermutation {
                idx: other,
                n: s.len,
            },
            Request::CopyRange {
                shape: s,
                from: 0,
                to: 16,
            },
        ];
        for req in &whole {
            assert!(call(&ns, req).is_err(), "{req:?} was served");
        }
        let sharded = [
            Request::Partial {
                kind: NumKind::U64,
                shape: s,
            },
            Request::Pieces {
                shape: s,
                from: 0,
                to: 16,
            },
            Request::Pick {
                shape: s,
                idx: vec![0, 1, 600],
            },
        ];
        for req in &sharded {
            assert!(call_shard(&ns, &[0, 1], req).is_err(), "{req:?} was served");
        }
    }
}

/// Finding 6: tokens are per namespace. Another client's token names nothing here, and
/// constructing a vector with someone else's token does not take their entry.
#[test]
fn tokens_name_vectors_of_the_callers_namespace_only() {
    let e = engine();
    let a = namespace(&e);
    let b = e.namespace(64 << 20);
    b.construct(VEC, DEVICE, &0xb0b_u128.to_le_bytes()).unwrap();
    b.write(VEC, &0u64.to_le_bytes(), &[0u8; 64]).unwrap();
    // B gathers from A's vector with A's token: refused.
    let steal = Request::Gather {
        shape: shape(8),
        idx: own(8),
        from: 0,
        to: 8,
    };
    assert!(call(&b, &steal).is_err());
    // B constructs a vector with A's token and stores its own chunk under it.
    b.construct(VEC + 1, DEVICE, &TOKEN.to_le_bytes()).unwrap();
    b.write(VEC + 1, &0u64.to_le_bytes(), &[0xffu8; 4096])
        .unwrap();
    // A's token still names A's own index vector.
    match call(
        &a,
        &Request::IsPermutation {
            idx: own(2048),
            n: 2048,
        },
    )
    .unwrap()
    {
        Reply::Bool(b) => assert!(b, "A's index vector was replaced by B's"),
        r => panic!("{r:?}"),
    }
    // Within one namespace, a second vector cannot take a live token either.
    assert!(a.construct(VEC + 1, DEVICE, &TOKEN.to_le_bytes()).is_err());
}
